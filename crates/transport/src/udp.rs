//! The UDP server runner.
//!
//! A UDP service is a function from (peer, datagram) to a [`UdpReply`]: most answer at once
//! (the echo, the greeting, a cached DNS answer) and the runner sends the reply from the receive
//! loop itself, with no task per datagram; a service that must wait (a resolver asking upstream)
//! returns a future, which runs in its own task and whose reply is sent when it is ready.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A service's answer to one datagram.
pub enum UdpReply {
    /// No reply: the datagram was garbage, or the protocol does not answer it.
    None,
    /// Send this datagram back to the peer now.
    Now(Bytes),
    /// Send what this future yields, if anything, when it is ready.
    Later(Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>),
}

impl std::fmt::Debug for UdpReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Now(b) => f.debug_tuple("Now").field(&b.len()).finish(),
            Self::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Settings of a UDP server.
#[derive(Debug, Clone)]
pub struct UdpServerConfig {
    /// Tasks receiving from the socket at once; more than one lets both cores work.
    pub workers: usize,
    /// Datagrams still waiting for a [`UdpReply::Later`] at once; past it new slow work is
    /// dropped (and counted) rather than queued without bound.
    pub max_pending: usize,
}

impl Default for UdpServerConfig {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_pending: 10_000,
        }
    }
}

/// Counters of a UDP server, readable while it runs.
#[derive(Debug, Default)]
pub struct UdpServerStats {
    /// Datagrams received.
    pub received: AtomicU64,
    /// Replies sent.
    pub replied: AtomicU64,
    /// Datagrams given no reply by the service.
    pub unanswered: AtomicU64,
    /// Slow work dropped because `max_pending` was reached.
    pub overloaded: AtomicU64,
    /// Errors from send or receive.
    pub io_errors: AtomicU64,
}

/// Binds a UDP socket with receive and send buffers of `buffer_bytes` (the kernel may cap it
/// at net.core.rmem_max): a deep buffer is what keeps a burst from being dropped.
///
/// # Errors
/// The bind error, e.g. `AddrInUse`.
pub fn bind_udp(addr: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// The sockets of one SO_REUSEPORT group, blocking with a 100 ms read timeout (so that a
/// worker sees the stop flag), and their common address.
///
/// The kernel hashes each flow (addresses and ports) to one socket of the group, so a service
/// that reads each socket from one thread answers a flow in the order its datagrams came.
///
/// # Errors
/// The bind error, e.g. `AddrInUse` when any socket holds the port.
pub fn bind_udp_group(
    addr: SocketAddr,
    n: usize,
    buffer_bytes: usize,
) -> io::Result<(Vec<std::net::UdpSocket>, SocketAddr)> {
    if addr.port() != 0 {
        // A socket without SO_REUSEPORT is refused where any socket is bound, so a second
        // server on a taken port fails as a port in use instead of joining the group
        // and taking half the flows.
        drop(std::net::UdpSocket::bind(addr)?);
    }
    let mut sockets: Vec<std::net::UdpSocket> = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        // A lone socket joins no group, so no later socket of this user can share its port.
        if n > 1 {
            socket.set_reuse_port(true)?;
        }
        let _ = socket.set_recv_buffer_size(buffer_bytes);
        let _ = socket.set_send_buffer_size(buffer_bytes);
        socket.bind(&bound.into())?;
        let socket: std::net::UdpSocket = socket.into();
        if sockets.is_empty() {
            // The others join the port the first one got (port 0 means "pick one").
            bound = socket.local_addr()?;
        }
        socket.set_read_timeout(Some(std::time::Duration::from_millis(100)))?;
        sockets.push(socket);
    }
    Ok((sockets, bound))
}

/// The sockets [`bind_pair`] bound: a UDP group and, if asked for, a TCP listener on the
/// same port.
#[derive(Debug)]
pub struct BoundPair {
    /// The UDP sockets of one SO_REUSEPORT group (one socket when one worker was asked for),
    /// blocking with a 100 ms read timeout, as [`bind_udp_group`] makes them.
    pub udp: Vec<std::net::UdpSocket>,
    /// The group's address (the port the kernel chose when asked for port 0).
    pub udp_addr: SocketAddr,
    /// The TCP listener on `udp_addr`'s port, when asked for.
    pub tcp: Option<tokio::net::TcpListener>,
}

impl BoundPair {
    /// The addresses as `listening` lines name them: `udp` first, then `tcp` if bound.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut addrs = vec![("udp", self.udp_addr)];
        if let Some(a) = self.tcp.as_ref().and_then(|t| t.local_addr().ok()) {
            addrs.push(("tcp", a));
        }
        addrs
    }
}

/// Binds `workers` UDP sockets in one SO_REUSEPORT group on `addr` with buffers of
/// `udp_buffer_bytes`, and with `with_tcp` a TCP listener on the same port.
///
/// One port for both is what the protocols ask: a DNS client retries a truncated answer over
/// TCP at the address it asked, and a probe switches to `--tcp` without changing its target.
/// With port 0 the UDP port the kernel picks may be taken for TCP, so the pair is tried up to
/// 20 times. The kernel hashes each flow to one socket of the group: a service that reads each
/// socket from one thread answers a flow in the order its datagrams came. A tokio service
/// takes a socket with [`into_tokio`]. The TCP listener needs a tokio runtime's context.
///
/// # Errors
/// The bind error of either protocol, naming it and the address.
pub fn bind_pair(
    addr: SocketAddr,
    workers: usize,
    udp_buffer_bytes: usize,
    with_tcp: bool,
) -> Result<BoundPair, crate::cli::ListenError> {
    use crate::cli::ListenError;
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let (udp, udp_addr) = bind_udp_group(addr, workers.max(1), udp_buffer_bytes)
            .map_err(|e| ListenError::new("udp", addr, e))?;
        if !with_tcp {
            return Ok(BoundPair {
                udp,
                udp_addr,
                tcp: None,
            });
        }
        let tcp_addr = SocketAddr::new(addr.ip(), udp_addr.port());
        match crate::tcp::bind_tcp(tcp_addr) {
            Ok(tcp) => {
                return Ok(BoundPair {
                    udp,
                    udp_addr,
                    tcp: Some(tcp),
                });
            }
            Err(e) => last = Some(ListenError::new("tcp", tcp_addr, e)),
        }
    }
    Err(last.unwrap_or_else(|| ListenError::new("tcp", addr, io::ErrorKind::AddrInUse.into())))
}

/// A blocking socket (of [`bind_pair`] or [`connect_udp`], say) for a tokio service:
/// non-blocking, on the current runtime.
///
/// # Errors
/// Setting the socket non-blocking, or registering it with the runtime.
pub fn into_tokio(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// A client's UDP socket: bound to an ephemeral port of the unspecified address of `target`'s
/// family, connected to `target` (so only its datagrams are received and ICMP errors are
/// reported), blocking, with buffers of `buffer_bytes` (the kernel may cap them at
/// net.core.rmem_max and wmem_max).
///
/// # Errors
/// The socket, bind or connect error.
pub fn connect_udp(target: SocketAddr, buffer_bytes: usize) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    let any: SocketAddr = if target.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    socket.bind(&any.into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// Runs a UDP service until `shutdown` fires, then waits up to a second for pending replies.
///
/// # Errors
/// Only errors of the socket itself (its local address); per-datagram errors are counted.
pub async fn run_udp<H>(
    socket: UdpSocket,
    config: UdpServerConfig,
    shutdown: CancellationToken,
    stats: Arc<UdpServerStats>,
    handler: H,
) -> io::Result<()>
where
    H: Fn(SocketAddr, &[u8]) -> UdpReply + Send + Sync + 'static,
{
    let local = socket.local_addr()?;
    tracing::info!(%local, "listening on UDP");
    let socket = Arc::new(socket);
    let handler = Arc::new(handler);
    let pending = Arc::new(tokio::sync::Semaphore::new(config.max_pending));
    let tracker = TaskTracker::new();
    let mut workers = Vec::new();
    for _ in 0..config.workers.max(1) {
        let (socket, handler, shutdown, stats, pending, tracker) = (
            socket.clone(),
            handler.clone(),
            shutdown.clone(),
            stats.clone(),
            pending.clone(),
            tracker.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (len, peer) = tokio::select! {
                    () = shutdown.cancelled() => break,
                    r = socket.recv_from(&mut buf) => match r {
                        Ok(pair) => pair,
                        Err(e) => {
                            // ICMP errors from earlier sends surface here on Linux; they
                            // concern one peer and must not stop the loop.
                            stats.io_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "recv_from");
                            continue;
                        }
                    },
                };
                stats.received.fetch_add(1, Ordering::Relaxed);
                match handler(peer, &buf[..len]) {
                    UdpReply::None => {
                        stats.unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                    UdpReply::Now(reply) => send(&socket, &stats, &reply, peer).await,
                    UdpReply::Later(fut) => {
                        let Ok(permit) = pending.clone().try_acquire_owned() else {
                            stats.overloaded.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "too much pending work: dropped");
                            continue;
                        };
                        let (socket, stats) = (socket.clone(), stats.clone());
                        tracker.spawn(async move {
                            match fut.await {
                                Some(reply) => send(&socket, &stats, &reply, peer).await,
                                None => {
                                    stats.unanswered.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            drop(permit);
                        });
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    tracker.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tracker.wait()).await;
    Ok(())
}

async fn send(socket: &UdpSocket, stats: &UdpServerStats, reply: &[u8], peer: SocketAddr) {
    match socket.send_to(reply, peer).await {
        Ok(_) => {
            stats.replied.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            stats.io_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, error = %e, "send_to");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pair_shares_one_port_and_a_taken_port_is_named() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        // As dns binds it: one socket, a 4 MiB buffer, always TCP, served from tokio.
        let pair = bind_pair(any, 1, 4 << 20, true).unwrap();
        let tcp = pair.tcp.as_ref().unwrap().local_addr().unwrap();
        assert_eq!(tcp, pair.udp_addr);
        assert_eq!(pair.local_addrs(), [("udp", pair.udp_addr), ("tcp", tcp)]);
        let udp = pair.udp.into_iter().next().unwrap();
        let udp = into_tokio(udp).unwrap();
        let client = connect_udp(pair.udp_addr, 1 << 16).unwrap();
        client.send(b"ping").unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = udp.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"ping"[..], client.local_addr().unwrap())
        );

        // The same port again: refused, naming the protocol that could not have it.
        let err = bind_pair(tcp, 2, 1 << 20, true).unwrap_err();
        assert_eq!((err.proto, err.addr), ("udp", tcp));
        assert_eq!(err.source.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn a_group_without_tcp_is_one_port_for_all_its_sockets() {
        let pair = bind_pair(SocketAddr::from(([127, 0, 0, 1], 0)), 3, 1 << 20, false).unwrap();
        assert!(pair.tcp.is_none());
        assert_eq!(pair.udp.len(), 3);
        for s in &pair.udp {
            assert_eq!(s.local_addr().unwrap(), pair.udp_addr);
        }
        assert_eq!(pair.local_addrs(), [("udp", pair.udp_addr)]);
    }
}
