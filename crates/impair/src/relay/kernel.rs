//! What the kernel knows of a UDP socket that the relay must not miss: the datagrams it dropped
//! before the relay read them, and the size of the next datagram.
//!
//! A socket whose receive buffer is full drops what arrives and counts it (`sk_drops`). Such a
//! datagram never reaches an engine, so without this count the ground truth would silently miss
//! it. With `SO_RXQ_OVFL` set, each datagram read with recvmsg(2) carries the counter as it stood
//! when the datagram was queued, in a control message; `SO_MEMINFO` reads the counter at any
//! moment, which also catches drops after the last datagram read. Both are the same counter, a
//! `u32` that wraps; [`DropCount`] turns its readings into a total.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

// From <asm/socket.h>: the generic values, which every Linux architecture uses but SPARC and
// PA-RISC (the libc crate does not export these two for Linux).
#[cfg(not(target_arch = "sparc64"))]
const SO_RXQ_OVFL: libc::c_int = 40;
#[cfg(not(target_arch = "sparc64"))]
const SO_MEMINFO: libc::c_int = 55;
#[cfg(target_arch = "sparc64")]
const SO_RXQ_OVFL: libc::c_int = 0x0024;
#[cfg(target_arch = "sparc64")]
const SO_MEMINFO: libc::c_int = 0x0039;

/// The total of a socket's drop counter over the relay's life, from readings of the wrapping
/// `u32` the kernel keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropCount {
    last: u32,
    total: u64,
}

impl DropCount {
    /// Takes in a reading. The control message of a datagram read late may carry an older
    /// reading than `SO_MEMINFO` gave: a step back (by the wrapping distance) is ignored.
    pub fn observe(&mut self, reading: u32) {
        let step = reading.wrapping_sub(self.last);
        if step < 1 << 31 {
            self.total += u64::from(step);
            self.last = reading;
        }
    }

    /// Datagrams dropped so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// Asks the kernel to attach its drop counter to every datagram read from `socket`.
///
/// # Errors
/// setsockopt(2) failing (a kernel before 2.6.33).
pub fn enable_drop_count(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_RXQ_OVFL,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket's drop counter now, or `None` when the kernel cannot tell (before Linux 4.12).
pub fn drops_now(socket: &UdpSocket) -> Option<u32> {
    // The counters up to SK_MEMINFO_DROPS (the ninth, in every kernel that has it).
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: a valid descriptor; the kernel writes at most `len` bytes into `info`.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    let index = libc::SK_MEMINFO_DROPS as usize;
    (r == 0 && len as usize >= (index + 1) * size_of::<u32>()).then(|| info[index])
}

/// One datagram read by [`recv_from`].
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    /// The socket's drop counter when the datagram was queued, if the kernel attached it (it
    /// does once the counter is not zero).
    pub drops: Option<u32>,
}

/// Waits for and reads one datagram into `buf`, with the kernel's drop counter.
///
/// # Errors
/// The socket's errors (an ICMP error of an earlier send, for a connected socket).
pub async fn recv_from(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    socket
        .async_io(Interest::READABLE, || recvmsg(socket, buf))
        .await
}

/// As [`recv_from`] without waiting: `WouldBlock` when nothing is there.
///
/// # Errors
/// `WouldBlock`, or the socket's errors.
pub fn try_recv_from(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    socket.try_io(Interest::READABLE, || recvmsg(socket, buf))
}

fn recvmsg(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    // Room for one control message holding a u32, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: sockaddr_storage and msghdr are plain data; zero is a valid value for both.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points to a live buffer of the length given beside it.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut drops = None;
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of well-formed control
    // messages; CMSG_FIRSTHDR/CMSG_NXTHDR stay within them, and a SO_RXQ_OVFL message holds a
    // u32 (read unaligned, as CMSG_DATA promises no alignment for it).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_RXQ_OVFL {
                drops = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<u32>(),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let from = socket_addr(&addr).ok_or_else(|| io::Error::other("a datagram from no address"))?;
    Ok(Received {
        len: n as usize,
        from,
        drops,
    })
}

fn socket_addr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough for and aligned for.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*std::ptr::from_ref(addr).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Waits for and reads one datagram from a connected socket into a buffer of exactly its size,
/// so that an idle session holds no buffer (a 64 KiB buffer per session would cost 64 MiB at a
/// thousand sessions).
///
/// # Errors
/// The socket's errors (an ICMP error of an earlier send).
pub async fn recv_sized(socket: &UdpSocket) -> io::Result<Vec<u8>> {
    loop {
        socket.readable().await?;
        let len = match socket.try_io(Interest::READABLE, || {
            // SAFETY: with MSG_TRUNC and a zero length, recv(2) writes nothing and returns the
            // size of the next datagram; MSG_PEEK leaves it queued.
            let n = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut data = vec![0u8; len];
        match socket.try_recv(&mut data) {
            Ok(n) => {
                data.truncate(n);
                return Ok(data);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_counts_add_up_across_the_wrap_and_ignore_stale_readings() {
        let mut c = DropCount::default();
        c.observe(0);
        c.observe(5);
        c.observe(3); // an older reading, from a datagram queued before the last one
        assert_eq!(c.total(), 5);
        // Counted forward in steps shorter than half the range, as a socket dropping fewer
        // than two billion datagrams between two readings is.
        for reading in [1 << 30, 2 << 30, 3 << 30, u32::MAX] {
            c.observe(reading);
        }
        c.observe(2); // wrapped: 3 more
        assert_eq!(c.total(), u64::from(u32::MAX) + 3);
    }

    #[tokio::test]
    async fn an_overflowing_socket_reports_its_drops() {
        let rx = protolab_transport::bind_udp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        enable_drop_count(&rx).unwrap();
        let to = rx.local_addr().unwrap();
        let tx = protolab_transport::udp::connect_udp(to, 1 << 20).unwrap();
        // Far more than the smallest receive buffer holds.
        for _ in 0..2_000 {
            tx.send(&[7u8; 1_000]).unwrap();
        }
        let total = drops_now(&rx).expect("SO_MEMINFO");
        assert!(total > 0, "nothing dropped");
        rx.readable().await.unwrap();
        let mut buf = [0u8; 2_000];
        let mut read = 0u64;
        let mut seen = DropCount::default();
        while let Ok(r) = try_recv_from(&rx, &mut buf) {
            assert_eq!(r.len, 1_000);
            assert_eq!(r.from, tx.local_addr().unwrap());
            if let Some(d) = r.drops {
                seen.observe(d);
            }
            read += 1;
        }
        seen.observe(drops_now(&rx).expect("SO_MEMINFO"));
        assert_eq!(read + seen.total(), 2_000);
    }
}
