//! `udpecho serve`: the echo server over UDP and TCP, on protolab-transport's sockets.
//!
//! [`bind`] binds the UDP socket group and the TCP listener on one port; [`run`] serves them
//! until shutdown and returns the [`ServeReport`]. Both transports share one [`FlowShards`]
//! table: a probe's flow is the same whether its packets come as datagrams or as frames. The
//! reply is the request with the server's fields written over its header, so it is never
//! longer than the request (no amplification).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protolab_transport::batch::{BATCH, RecvBatch};
use protolab_transport::cli::ListenError;
use protolab_transport::udp::BoundPair;
use protolab_transport::{
    CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, run_tcp, u16_frames,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;

use crate::flows::{FlowConfig, FlowShards, FlowTable, ServerCounters};

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

/// The server's sockets, bound and not yet served.
#[derive(Debug)]
pub struct Bound {
    pair: BoundPair,
}

impl Bound {
    /// The addresses to announce: `udp`, then `tcp` when TCP is served.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.pair.local_addrs()
    }
}

/// Binds `config.workers` UDP sockets in one SO_REUSEPORT group (and, with `config.tcp`, the
/// TCP listener on the same port). Call it inside a tokio runtime.
///
/// # Errors
/// Binding failures, and a raw echo asked for off loopback without `allow_remote`.
pub fn bind(config: &ServeConfig) -> Result<Bound, ServeError> {
    if config.raw && !config.allow_remote && !config.listen.ip().is_loopback() {
        return Err(ServeError::RawNotLoopback(config.listen));
    }
    let pair = protolab_transport::udp::bind_pair(
        config.listen,
        config.workers.max(1),
        SOCKET_BUFFER,
        config.tcp,
    )?;
    Ok(Bound { pair })
}

/// What the UDP workers and the TCP connections share: the flow table and the clock.
#[derive(Debug)]
struct Echo {
    flows: FlowShards,
    start: Instant,
    /// Frames whose handling panicked (UDP workers count theirs in [`UdpCounts`]).
    tcp_panics: AtomicU64,
}

impl Echo {
    fn new(flows: FlowConfig) -> Self {
        Self {
            flows: FlowShards::new(flows),
            start: Instant::now(),
            tcp_panics: AtomicU64::new(0),
        }
    }
}

/// What one UDP worker counted. Each worker keeps its own and they are added up at the end,
/// so that counting costs no shared cache line per datagram.
#[derive(Debug, Default, Clone, Copy)]
struct UdpCounts {
    received: u64,
    replied: u64,
    io_errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    raw_echoed: u64,
    raw_refused: u64,
    handler_panics: u64,
}

impl UdpCounts {
    fn add(mut self, o: UdpCounts) -> UdpCounts {
        self.received += o.received;
        self.replied += o.replied;
        self.io_errors += o.io_errors;
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.raw_echoed += o.raw_echoed;
        self.raw_refused += o.raw_refused;
        self.handler_panics += o.handler_panics;
        self
    }
}

/// Serves the bound sockets until `shutdown`, then returns what was counted.
///
/// # Errors
/// None today: per-datagram and per-connection errors are counted in the report; the
/// `Result` keeps the shape every service's `run` has.
pub async fn run(
    bound: Bound,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> Result<ServeReport, ServeError> {
    let BoundPair { udp, tcp, .. } = bound.pair;
    let echo = Arc::new(Echo::new(config.flows.clone()));
    // The UDP side runs on its own threads with batched system calls (protolab_transport's
    // `batch`): at a hundred thousand probes a second the per-datagram cost decides the rate.
    let stop = Arc::new(AtomicBool::new(false));
    let buf_len = if config.raw {
        65_536
    } else {
        config.flows.max_size + 1
    };
    let mut workers = Vec::new();
    for socket in udp {
        let worker = UdpWorker {
            echo: echo.clone(),
            stop: stop.clone(),
            raw: config.raw,
            allow_remote: config.allow_remote,
        };
        workers.push(std::thread::spawn(move || worker.run(&socket, buf_len)));
    }
    let tcp_stats = Arc::new(TcpServerStats::default());
    let tcp_task = tcp.map(|listener| {
        let echo = echo.clone();
        let tcp_config = TcpServerConfig {
            max_connections: config.max_connections,
            idle_timeout: Some(config.idle_timeout),
            nodelay: true,
            ..TcpServerConfig::default()
        };
        tokio::spawn(run_tcp(
            listener,
            tcp_config,
            shutdown.clone(),
            tcp_stats.clone(),
            move |stream, conn| serve_tcp(stream, conn, echo.clone()),
        ))
    });
    if let Some(t) = tcp_task {
        let _ = t.await;
    } else {
        shutdown.cancelled().await;
    }
    stop.store(true, Ordering::Release);
    let udp = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .filter_map(|w| w.join().ok())
            .fold(UdpCounts::default(), UdpCounts::add)
    })
    .await
    .unwrap_or_default();
    let counters = echo.flows.counters();
    Ok(ServeReport {
        garbage: counters.garbage(),
        counters,
        raw_echoed: udp.raw_echoed,
        raw_refused: udp.raw_refused,
        udp_received: udp.received,
        udp_replied: udp.replied,
        udp_io_errors: udp.io_errors,
        udp_bytes_in: udp.bytes_in,
        udp_bytes_out: udp.bytes_out,
        tcp_connections: tcp_stats.accepted.load(Ordering::Relaxed),
        tcp_busy: tcp_stats.busy.load(Ordering::Relaxed),
        tcp_idle_timeouts: tcp_stats.idle_timeouts.load(Ordering::Relaxed),
        handler_panics: udp.handler_panics + echo.tcp_panics.load(Ordering::Relaxed),
    })
}

/// One UDP receive thread, on its own socket of the group.
struct UdpWorker {
    echo: Arc<Echo>,
    stop: Arc<AtomicBool>,
    raw: bool,
    allow_remote: bool,
}

impl UdpWorker {
    fn run(self, socket: &std::net::UdpSocket, buf_len: usize) -> UdpCounts {
        let mut c = UdpCounts::default();
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
                    c.io_errors += 1;
                    continue;
                }
            };
            let now = self.echo.start.elapsed();
            let mut flows = self.echo.flows.batch(now);
            for (i, reply) in replies.iter_mut().enumerate().take(n) {
                let wire_len = batch.wire_len(i);
                let (bytes, peer) = batch.get(i);
                let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                c.received += 1;
                c.bytes_in = c.bytes_in.saturating_add(wire_len as u64);
                *reply = if self.raw {
                    if self.allow_remote || peer.ip().is_loopback() {
                        c.raw_echoed += 1;
                        Some(bytes.len())
                    } else {
                        c.raw_refused += 1;
                        tracing::debug!(%peer, "raw echo refused off loopback");
                        None
                    }
                } else {
                    // A datagram longer than the buffer arrives cut to max_size + 1 bytes,
                    // which the table counts as oversized. Only this datagram's shard of the
                    // table is locked (kept for the next datagram if it is the same shard).
                    let request: &[u8] = bytes;
                    let table = flows.table(request);
                    let header =
                        guarded(&mut c.handler_panics, peer, || table.handle(now, request));
                    header.map(|header| {
                        header.emit(bytes);
                        bytes.len()
                    })
                };
                if let Some(len) = reply {
                    c.bytes_out = c.bytes_out.saturating_add(*len as u64);
                }
            }
            // No shard stays locked while the replies are sent.
            drop(flows);
            let (sent, failed) = batch.send_back(socket, &replies[..n], true);
            c.replied += sent;
            c.io_errors += failed;
        }
        c
    }
}

/// Runs the handler of one datagram or frame: its result, or `None` when it was garbage
/// (counted by the table, logged at debug) or when the handler panicked.
///
/// A panic must not take a worker down with it: the worker would stop answering for good while
/// the process looks healthy. It is caught here, per datagram, counted in `panics` and logged,
/// and the server goes on. The flow table stays usable: a panic can leave at most the one flow
/// being updated with wrong counts, which is far better than a silent server. (The panic is
/// caught inside the shard's lock, so the lock is not poisoned either.)
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

/// The reply to one datagram or frame, or `None` for garbage or a panic (see `guarded`);
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

/// Serves framed probes (u16 length prefix) on one connection: over TCP in the server, over
/// an in-memory pair in the tests.
async fn serve_tcp<S>(stream: S, conn: Conn, echo: Arc<Echo>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut frames = FramedRead::new(stream, u16_frames());
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
        let now = echo.start.elapsed();
        let mut panics = 0;
        let reply = echo.flows.with_shard(now, &frame, |table| {
            self::echo(table, &mut panics, now, conn.peer, &frame)
        });
        if panics > 0 {
            echo.tcp_panics.fetch_add(panics, Ordering::Relaxed);
        }
        let Some(reply) = reply else { continue };
        out.clear();
        out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply);
        // Written straight to the stream under the reader: the codec only reads, so no bytes
        // wait in a write buffer of its own.
        if conn.write_all(frames.get_mut(), &out).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FLAG_STATS, HEADER_LEN, ProbePacket};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

    fn frame(p: &ProbePacket, size: usize) -> Vec<u8> {
        let body = p.to_vec(size);
        let mut f = (body.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        f
    }

    async fn read_reply(client: &mut tokio::io::DuplexStream) -> ProbePacket {
        let mut len = [0u8; 2];
        client.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        client.read_exact(&mut body).await.unwrap();
        ProbePacket::parse(&body).unwrap()
    }

    #[tokio::test]
    async fn framed_probes_are_echoed_in_order_with_the_flows_counts() {
        let echo = Arc::new(Echo::new(FlowConfig::default()));
        let (mut client, server, conn) = protolab_transport::memory::pair(None);
        let task = tokio::spawn(serve_tcp(server, conn, echo.clone()));
        let probe = |seq| ProbePacket {
            flow: 42,
            seq,
            ..ProbePacket::default()
        };
        // Three probes, one of them twice, then an oversized frame, written in one go.
        let mut bytes = Vec::new();
        for seq in [0, 2, 2, 1] {
            bytes.extend(frame(&probe(seq), 64));
        }
        bytes.extend(frame(&probe(3), FlowConfig::default().max_size + 1));
        let stats = ProbePacket {
            flags: FLAG_STATS,
            ..probe(4)
        };
        bytes.extend(frame(&stats, HEADER_LEN));
        client.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..5 {
            let r = read_reply(&mut client).await;
            assert!(r.is_reply() && r.has_state(), "{r:?}");
            got.push((r.seq, r.server_count, r.is_stats()));
        }
        assert_eq!(
            got,
            [
                (0, 1, false),
                (2, 2, false),
                (2, 2, false),
                (1, 3, false),
                (4, 3, true)
            ],
            "in order, the duplicate not counted, the oversized frame dropped"
        );
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        task.await.unwrap();
        let c = echo.flows.counters();
        assert_eq!((c.probes, c.duplicates, c.oversized), (4, 1, 1));
        assert_eq!(c.stats_requests, 1);
    }

    #[tokio::test]
    async fn garbage_frames_get_no_reply_and_the_connection_goes_on() {
        let echo = Arc::new(Echo::new(FlowConfig::default()));
        let (mut client, server, conn) = protolab_transport::memory::pair(None);
        let task = tokio::spawn(serve_tcp(server, conn, echo.clone()));
        let mut bytes = vec![0, 5];
        bytes.extend_from_slice(b"hello");
        bytes.extend(frame(
            &ProbePacket {
                flow: 1,
                ..ProbePacket::default()
            },
            56,
        ));
        client.write_all(&bytes).await.unwrap();
        let r = read_reply(&mut client).await;
        assert_eq!((r.flow, r.server_count), (1, 1));
        drop(client);
        task.await.unwrap();
        assert_eq!(echo.flows.counters().bad_magic, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_idle_timeout() {
        let echo = Arc::new(Echo::new(FlowConfig::default()));
        let (mut client, server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(30)));
        let task = tokio::spawn(serve_tcp(server, conn, echo));
        let mut rest = Vec::new();
        // With time paused, the runtime jumps to the idle deadline as soon as all tasks wait.
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        task.await.unwrap();
    }
}
