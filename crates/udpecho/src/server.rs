//! `udpecho serve`: the echo server over UDP and TCP, on protolab-transport's runners.
//!
//! Both transports share one [`FlowTable`]: a probe's flow is the same whether its packets come
//! as datagrams or as frames. The reply is the request with the server's fields written over
//! its header, so it is never longer than the request (no amplification).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use protolab_transport::cli::ListenError;
use protolab_transport::{
    CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, bind_tcp, run_tcp, u16_frames,
};
use tokio_util::codec::FramedRead;

use crate::flows::{FlowConfig, FlowTable, ServerCounters};
use protolab_transport::batch::{BATCH, RecvBatch};

/// Socket buffer size asked of the kernel: a deep buffer absorbs bursts at high rates.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Reflect any datagram unchanged (RFC 862) instead of only probes.
    pub raw: bool,
    /// With `raw`, also answer peers that are not on loopback.
    pub allow_remote: bool,
    /// UDP receive threads, each on its own socket of one SO_REUSEPORT group: the kernel
    /// hashes each flow (source and destination address and port) to one socket, so a flow's
    /// replies leave in the order its probes came, whatever the number of workers.
    pub workers: usize,
    /// Announce the bound sockets as JSON lines.
    pub json: bool,
    /// Also serve framed probes over TCP on the same port.
    pub tcp: bool,
    /// TCP connections served at once; a client over it is closed at once.
    pub max_connections: usize,
    /// A TCP connection silent (or not reading its replies) for this long is closed.
    pub idle_timeout: Duration,
    pub flows: FlowConfig,
}

/// What the server counted, printed as JSON when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServeReport {
    #[serde(flatten)]
    pub counters: ServerCounters,
    /// All invalid datagrams and frames.
    pub garbage: u64,
    /// With `raw`: datagrams reflected, and datagrams refused for coming from off loopback.
    pub raw_echoed: u64,
    pub raw_refused: u64,
    pub udp_received: u64,
    pub udp_replied: u64,
    /// Failed sends and receives.
    pub udp_io_errors: u64,
    /// Bytes received and sent over UDP: sent is never above received. Bytes in are each
    /// datagram's real size, also for one longer than the receive buffer.
    pub udp_bytes_in: u64,
    pub udp_bytes_out: u64,
    pub tcp_connections: u64,
    /// TCP clients closed at once for being over `max_connections`.
    pub tcp_busy: u64,
    /// TCP connections closed for being idle.
    pub tcp_idle_timeouts: u64,
    /// Datagrams or frames whose handling panicked: dropped unanswered, and the server went
    /// on. Always zero unless there is a bug; counted so that one would show.
    pub handler_panics: u64,
}

#[derive(Debug, Default)]
struct Shared {
    table: FlowTable,
    raw_echoed: u64,
    raw_refused: u64,
    bytes_in: u64,
    bytes_out: u64,
    received: u64,
    replied: u64,
    io_errors: u64,
    handler_panics: u64,
}

/// Errors of the server's set-up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--raw reflects anything, so it listens only on loopback: add --allow-remote to listen on {0}"
    )]
    RawNotLoopback(SocketAddr),
    /// A socket that cannot be bound (a port in use, an address not on this machine).
    #[error("{0}")]
    Listen(#[from] ListenError),
}

/// Binds, prints `listening udp ADDR` (and `listening tcp ADDR`), serves until `shutdown`.
///
/// # Errors
/// Binding failures and a raw echo asked for off loopback without `allow_remote`.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    if cfg.raw && !cfg.allow_remote && !cfg.listen.ip().is_loopback() {
        return Err(ServeError::RawNotLoopback(cfg.listen));
    }
    let (sockets, udp_addr, tcp) = bind_pair(cfg.listen, cfg.workers.max(1), cfg.tcp)?;
    protolab_transport::cli::listening("udp", udp_addr, cfg.json);
    if let Some(tcp) = &tcp {
        if let Ok(a) = tcp.local_addr() {
            protolab_transport::cli::listening("tcp", a, cfg.json);
        }
    }

    let start = Instant::now();
    let shared = Arc::new(Mutex::new(Shared {
        table: FlowTable::new(cfg.flows.clone()),
        ..Shared::default()
    }));
    // The UDP side runs on its own threads with batched system calls (see `protolab_transport::batch`):
    // at a hundred thousand probes a second the per-datagram cost is what decides the rate.
    let stop = Arc::new(AtomicBool::new(false));
    let buf_len = if cfg.raw {
        65_536
    } else {
        cfg.flows.max_size + 1
    };
    let mut workers = Vec::new();
    for socket in sockets {
        let worker = UdpWorker {
            shared: shared.clone(),
            stop: stop.clone(),
            start,
            raw: cfg.raw,
            allow_remote: cfg.allow_remote,
        };
        workers.push(std::thread::spawn(move || worker.run(&socket, buf_len)));
    }
    let tcp_stats = Arc::new(TcpServerStats::default());
    let tcp_task = tcp.map(|listener| {
        let shared = shared.clone();
        let config = TcpServerConfig {
            max_connections: cfg.max_connections,
            idle_timeout: Some(cfg.idle_timeout),
            nodelay: true,
            ..TcpServerConfig::default()
        };
        tokio::spawn(run_tcp(
            listener,
            config,
            shutdown.clone(),
            tcp_stats.clone(),
            move |stream, conn| serve_tcp(stream, conn, shared.clone(), start),
        ))
    });
    if let Some(t) = tcp_task {
        let _ = t.await;
    } else {
        shutdown.cancelled().await;
    }
    stop.store(true, Ordering::Release);
    let _ = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    })
    .await;
    let s = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(ServeReport {
        counters: s.table.counters().clone(),
        garbage: s.table.counters().garbage(),
        raw_echoed: s.raw_echoed,
        raw_refused: s.raw_refused,
        udp_received: s.received,
        udp_replied: s.replied,
        udp_io_errors: s.io_errors,
        udp_bytes_in: s.bytes_in,
        udp_bytes_out: s.bytes_out,
        tcp_connections: tcp_stats.accepted.load(Ordering::Relaxed),
        tcp_busy: tcp_stats.busy.load(Ordering::Relaxed),
        tcp_idle_timeouts: tcp_stats.idle_timeouts.load(Ordering::Relaxed),
        handler_panics: s.handler_panics,
    })
}

/// One UDP receive thread.
struct UdpWorker {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    start: Instant,
    raw: bool,
    allow_remote: bool,
}

impl UdpWorker {
    fn run(self, socket: &std::net::UdpSocket, buf_len: usize) {
        let mut batch = RecvBatch::new(buf_len);
        let mut replies = vec![None; BATCH];
        while !self.stop.load(Ordering::Acquire) {
            let n = match batch.recv(socket) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    // ICMP errors from earlier replies surface here; they concern one peer.
                    tracing::debug!(error = %e, "recvmmsg");
                    self.lock().io_errors += 1;
                    continue;
                }
            };
            let now = self.start.elapsed();
            {
                let mut guard = self.lock();
                let s = &mut *guard;
                for (i, reply) in replies.iter_mut().enumerate().take(n) {
                    let wire_len = batch.wire_len(i);
                    let (bytes, peer) = batch.get(i);
                    let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                    s.received += 1;
                    s.bytes_in = s.bytes_in.saturating_add(wire_len as u64);
                    *reply = if self.raw {
                        if self.allow_remote || peer.ip().is_loopback() {
                            s.raw_echoed += 1;
                            Some(bytes.len())
                        } else {
                            s.raw_refused += 1;
                            tracing::debug!(%peer, "raw echo refused off loopback");
                            None
                        }
                    } else {
                        // A datagram longer than the buffer arrives cut to max_size + 1 bytes,
                        // which the table counts as oversized.
                        let table = &mut s.table;
                        guarded(&mut s.handler_panics, peer, || table.handle(now, bytes)).map(
                            |header| {
                                header.emit(bytes);
                                bytes.len()
                            },
                        )
                    };
                    if let Some(len) = reply {
                        s.bytes_out = s.bytes_out.saturating_add(*len as u64);
                    }
                }
            }
            let (sent, failed) = batch.send_back(socket, &replies[..n], true);
            let mut s = self.lock();
            s.replied += sent;
            s.io_errors += failed;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the handler of one datagram or frame: its result, or `None` when it was garbage
/// (counted by the table, logged at debug) or when the handler panicked.
///
/// A panic must not take a worker down with it: the worker would stop answering for good while
/// the process looks healthy. It is caught here, per datagram, counted in `panics` and logged,
/// and the server goes on. The flow table stays usable: a panic can leave at most the one flow
/// being updated with wrong counts, which is far better than a silent server.
fn guarded<T>(
    panics: &mut u64,
    peer: SocketAddr,
    handle: impl FnOnce() -> Result<T, crate::wire::WireError>,
) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)) {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "dropped");
            None
        }
        Err(_) => {
            *panics = panics.saturating_add(1);
            tracing::debug!(%peer, "handling this datagram panicked: dropped, serving on");
            None
        }
    }
}

/// The reply to one datagram or frame, or `None` for garbage or a panic (see [`guarded`]);
/// a caught panic is added to `panics`.
pub fn echo(
    table: &mut FlowTable,
    panics: &mut u64,
    now: Duration,
    peer: SocketAddr,
    request: &[u8],
) -> Option<BytesMut> {
    let header = guarded(panics, peer, || table.handle(now, request))?;
    let mut reply = BytesMut::from(request);
    header.emit(&mut reply);
    Some(reply)
}

/// Binds `workers` UDP sockets in one SO_REUSEPORT group on one port (and the TCP listener on
/// that port): the kernel then hands every datagram of a flow to the same socket, so one
/// worker answers a flow and its replies keep their order.
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
    tcp: bool,
) -> Result<
    (
        Vec<std::net::UdpSocket>,
        SocketAddr,
        Option<tokio::net::TcpListener>,
    ),
    ServeError,
> {
    // With port 0 the UDP port the kernel picks may be taken for TCP: try a few times.
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let (sockets, udp_addr) =
            protolab_transport::udp::bind_udp_group(addr, workers, SOCKET_BUFFER)
                .map_err(|e| ListenError::new("udp", addr, e))?;
        if !tcp {
            return Ok((sockets, udp_addr, None));
        }
        let mut tcp_addr = addr;
        tcp_addr.set_port(udp_addr.port());
        match bind_tcp(tcp_addr) {
            Ok(l) => return Ok((sockets, udp_addr, Some(l))),
            Err(e) => last = Some(ListenError::new("tcp", tcp_addr, e)),
        }
    }
    Err(last
        .unwrap_or_else(|| ListenError::new("tcp", addr, std::io::ErrorKind::AddrInUse.into()))
        .into())
}

async fn serve_tcp(
    stream: tokio::net::TcpStream,
    conn: Conn,
    shared: Arc<Mutex<Shared>>,
    start: Instant,
) {
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::new(read, u16_frames());
    let mut out = Vec::new();
    loop {
        let frame = match conn.next(&mut frames).await {
            Next::Item(Ok(f)) => f,
            Next::Item(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "bad frame: closing");
                return;
            }
            Next::Eof | Next::IdleTimeout | Next::Closing => return,
        };
        let reply = {
            let mut s = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            {
                let s = &mut *s;
                echo(
                    &mut s.table,
                    &mut s.handler_panics,
                    start.elapsed(),
                    conn.peer,
                    &frame,
                )
            }
        };
        let Some(reply) = reply else { continue };
        out.clear();
        out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply);
        if conn.write_all(&mut write, &out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_is_counted_and_the_caller_goes_on() {
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut panics = 0;
        let got: Option<u8> = guarded(&mut panics, peer, || panic!("a bug"));
        assert_eq!((got, panics), (None, 1));
        let got = guarded(&mut panics, peer, || Ok(7u8));
        assert_eq!((got, panics), (Some(7), 1));
        let got: Option<u8> = guarded(&mut panics, peer, || Err(crate::wire::WireError::BadMagic));
        assert_eq!((got, panics), (None, 1), "garbage is not a panic");
    }
}
