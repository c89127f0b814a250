//! Batched datagram I/O (`recvmmsg` and `sendmmsg` on blocking sockets) and a TCP socket's
//! `TCP_INFO`.
//!
//! At a hundred thousand datagrams a second, two system calls per datagram are most of the cost
//! of an echo; one call per batch of up to [`BATCH`] datagrams is what lets a server and its
//! client keep up on two shared cores. This module is the only unsafe code of the crate: it
//! fills the kernel's `mmsghdr` arrays with pointers into buffers it owns right before each
//! call, and reads `tcp_info` into a zeroed struct of the kernel's size.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

/// Datagrams per system call at most.
pub const BATCH: usize = 64;

/// Receive buffers and the source address of each datagram.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: Vec<usize>,
    truncated: Vec<bool>,
    count: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .finish()
    }
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { std::mem::zeroed() }
}

impl RecvBatch {
    /// Buffers of `buf_len` bytes each; a longer datagram is reported as truncated.
    pub fn new(buf_len: usize) -> Self {
        Self {
            bufs: (0..BATCH).map(|_| vec![0u8; buf_len]).collect(),
            addrs: vec![zeroed_storage(); BATCH],
            lens: vec![0; BATCH],
            truncated: vec![false; BATCH],
            count: 0,
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and takes what else is
    /// queued, up to [`BATCH`]. Returns how many arrived.
    ///
    /// # Errors
    /// The call's error: `WouldBlock` when the read timeout passed with nothing.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_WAITFORONE | libc::MSG_TRUNC)
    }

    /// As [`RecvBatch::recv`] but never waits: `WouldBlock` when nothing is queued. For a
    /// receiver that spins to take each datagram the moment it lands.
    ///
    /// # Errors
    /// The call's error.
    pub fn recv_now(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.recv_flags(socket, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
    }

    fn recv_flags(&mut self, socket: &impl AsRawFd, flags: i32) -> io::Result<usize> {
        self.count = 0;
        let mut iovs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: mmsghdr is plain old data; the fields the kernel reads are set below.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = std::ptr::from_mut(addr).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
                m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: every pointer in `msgs` points into `iovs`, `self.bufs` or `self.addrs`, all
        // alive and unmoved for the duration of the call, with their true lengths.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            // With MSG_TRUNC in the call's flags, a datagram socket reports each datagram's
            // real length here even when the buffer held only its first bytes.
            self.lens[i] = m.msg_len as usize;
            self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last batch: its bytes (mutable, to write a reply in place; a
    /// datagram longer than the buffer is cut to the buffer) and its source address.
    pub fn get(&mut self, i: usize) -> (&mut [u8], Option<SocketAddr>) {
        let len = self.lens[i].min(self.bufs[i].len());
        let addr = to_socket_addr(&self.addrs[i]);
        (&mut self.bufs[i][..len], addr)
    }

    /// Whether datagram `i` of the last batch was longer than its buffer.
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }

    /// The real length of datagram `i` of the last batch, as it arrived, even when it was
    /// longer than its buffer.
    pub fn wire_len(&self, i: usize) -> usize {
        self.lens[i]
    }

    /// Sends datagram `i` of the last batch back to where it came from, cut to `reply_len[i]`
    /// bytes, for each `i` with `Some` length, in one call per [`BATCH`]; on a connected socket
    /// pass `to_source = false`. Returns (sent, failed).
    pub fn send_back(
        &mut self,
        socket: &impl AsRawFd,
        reply_len: &[Option<usize>],
        to_source: bool,
    ) -> (u64, u64) {
        let fd = socket.as_raw_fd();
        let mut iovs = Vec::with_capacity(self.count);
        let mut names = Vec::with_capacity(self.count);
        for (i, len) in reply_len.iter().enumerate().take(self.count) {
            if let Some(len) = len {
                iovs.push(libc::iovec {
                    iov_base: self.bufs[i].as_mut_ptr().cast(),
                    // Never past the datagram, nor past the buffer holding it.
                    iov_len: (*len).min(self.lens[i]).min(self.bufs[i].len()),
                });
                names.push(i);
            }
        }
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(&names)
            .map(|(iov, &i)| {
                // SAFETY: mmsghdr is plain old data; the fields the kernel reads are set below.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                if to_source {
                    m.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
                    m.msg_hdr.msg_namelen = addr_len(&self.addrs[i]);
                }
                m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        send_all(fd, &mut msgs)
    }
}

/// Sends each of `datagrams` on a connected socket, batched. Returns (sent, failed).
pub fn send_connected(socket: &impl AsRawFd, datagrams: &mut [Vec<u8>]) -> (u64, u64) {
    let mut iovs: Vec<libc::iovec> = datagrams
        .iter_mut()
        .map(|d| libc::iovec {
            iov_base: d.as_mut_ptr().cast(),
            iov_len: d.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain old data; the fields the kernel reads are set below.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = std::ptr::from_mut(iov);
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    send_all(socket.as_raw_fd(), &mut msgs)
}

fn send_all(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> (u64, u64) {
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut at = 0;
    let mut retried = false;
    while at < msgs.len() {
        let chunk = (msgs.len() - at).min(BATCH);
        // SAFETY: `msgs[at..at + chunk]` are initialised headers whose pointers refer to buffers
        // the caller keeps alive and unmoved until this function returns.
        let n = unsafe { libc::sendmmsg(fd, msgs[at..].as_mut_ptr(), chunk as u32, 0) };
        if n > 0 {
            sent += n as u64;
            at += n as usize;
            retried = false;
        } else if !retried {
            // An ICMP error left by an earlier datagram is reported once, on this call: the
            // datagram itself did not go, so try it once more.
            retried = true;
        } else {
            failed += 1;
            at += 1;
            retried = false;
        }
    }
    (sent, failed)
}

fn addr_len(a: &libc::sockaddr_storage) -> u32 {
    if i32::from(a.ss_family) == libc::AF_INET6 {
        std::mem::size_of::<libc::sockaddr_in6>() as u32
    } else {
        std::mem::size_of::<libc::sockaddr_in>() as u32
    }
}

fn to_socket_addr(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(a.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let v4 = unsafe { &*std::ptr::from_ref(a).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(a).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(v6.sin6_port))))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn batches_round_trip_on_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        let mut out: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 20 + usize::from(i)]).collect();
        assert_eq!(send_connected(&client, &mut out), (10, 0));
        let mut batch = RecvBatch::new(25);
        let mut got = 0;
        while got < 10 {
            let n = batch.recv(&server).unwrap();
            for i in 0..n {
                assert_eq!(batch.truncated(i), 20 + got + i > 25);
                assert_eq!(
                    batch.wire_len(i),
                    20 + got + i,
                    "the real length, not the buffer's"
                );
                let (_, from) = batch.get(i);
                assert_eq!(from, Some(client.local_addr().unwrap()));
            }
            let replies: Vec<Option<usize>> = (0..n)
                .map(|i| if i % 2 == 0 { Some(3) } else { None })
                .collect();
            let (sent, failed) = batch.send_back(&server, &replies, true);
            assert_eq!((sent, failed), (n.div_ceil(2) as u64, 0));
            got += n;
        }
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0, 0, 0]);
    }
}

/// What the kernel's TCP_INFO says of a connection: the figures protolab's tools report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// Segments retransmitted over the connection's life (tcpi_total_retrans).
    pub total_retrans: u32,
    /// The smoothed round-trip time in microseconds (tcpi_rtt).
    pub rtt_us: u32,
    /// Its mean deviation in microseconds (tcpi_rttvar).
    pub rttvar_us: u32,
    /// Congestion window, in segments (tcpi_snd_cwnd).
    pub snd_cwnd: u32,
    /// Slow-start threshold in segments, as the kernel gives it: 0x7fff_ffff or more while
    /// no loss has been seen (tcpi_snd_ssthresh).
    pub snd_ssthresh: u32,
    /// The kernel's latest delivery rate estimate, bytes per second (tcpi_delivery_rate).
    pub delivery_rate: u64,
    /// Bytes the peer acknowledged (tcpi_bytes_acked; the SYN and the FIN count one each).
    pub bytes_acked: u64,
    /// The sender's maximum segment size (tcpi_snd_mss).
    pub snd_mss: u32,
}

/// Reads TCP_INFO of a connected TCP socket.
///
/// # Errors
/// The getsockopt error.
pub fn tcp_info(socket: &impl AsRawFd) -> io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large, and the
    // descriptor is borrowed from a live socket for the duration of the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpInfo {
        total_retrans: info.tcpi_total_retrans,
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        snd_cwnd: info.tcpi_snd_cwnd,
        snd_ssthresh: info.tcpi_snd_ssthresh,
        delivery_rate: info.tcpi_delivery_rate,
        bytes_acked: info.tcpi_bytes_acked,
        snd_mss: info.tcpi_snd_mss,
    })
}
