//! The TCP server runner.
//!
//! [`run_tcp`] owns the accept loop and everything every TCP service needs the same way:
//!
//! - a connection cap: a permit is taken before a connection is served; a client over the cap is
//!   sent the service's "busy" reply with one non-blocking write and closed at once, inside the
//!   accept loop, so a flood over the cap holds no socket, task or queue beyond the one accepted;
//! - an idle timeout on every read and write, through [`Conn`];
//! - graceful shutdown: when the token fires the listener is closed, live connections may finish
//!   within the drain deadline, then [`Conn`] tells them to close (their read returns
//!   [`Next::Closing`] so a service can say goodbye in its own words) and they get one more
//!   second before the runner returns;
//! - a tracing span per connection carrying the peer address.
//!
//! Services are plain async functions of a stream and a [`Conn`]; the stream type is generic in
//! the services themselves so they run over [`crate::memory`] pairs in unit tests.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Limits and timeouts of a TCP server.
#[derive(Debug, Clone)]
pub struct TcpServerConfig {
    /// Connections served at once; the next client gets `busy_reply` and is closed.
    pub max_connections: usize,
    /// How long a read or a write may wait before the connection is closed as idle.
    pub idle_timeout: Option<Duration>,
    /// How long live connections may go on after shutdown begins.
    pub drain_timeout: Duration,
    /// Written to a client turned away at the cap, before closing, with one non-blocking write:
    /// keep it short (a line), since what the socket does not take at once is not sent.
    pub busy_reply: Bytes,
    /// Disable Nagle's algorithm: request/response protocols want each reply out at once.
    pub nodelay: bool,
}

impl Default for TcpServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            drain_timeout: Duration::from_secs(5),
            busy_reply: Bytes::new(),
            nodelay: true,
        }
    }
}

/// Counters of a TCP server, readable while it runs.
#[derive(Debug, Default)]
pub struct TcpServerStats {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections turned away at the cap.
    pub busy: AtomicU64,
    /// Connections closed for being idle.
    pub idle_timeouts: AtomicU64,
    /// Connections still open when the drain deadline passed.
    pub cut_at_shutdown: AtomicU64,
    /// accept() failures (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
}

/// What waiting for the next piece of input ended with.
#[derive(Debug)]
pub enum Next<T> {
    /// Input arrived.
    Item(T),
    /// The peer closed its sending side.
    Eof,
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// The server is shutting down and the drain deadline passed: say goodbye and close.
    Closing,
}

/// A connection's context: who the peer is, and the timeouts and shutdown signals that apply.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The client's address.
    pub peer: SocketAddr,
    /// The server's address on this connection.
    pub local: SocketAddr,
    idle_timeout: Option<Duration>,
    draining: CancellationToken,
    closing: CancellationToken,
    stats: Arc<TcpServerStats>,
}

impl Conn {
    /// A context for a connection driven in a test, with no shutdown ever coming.
    pub fn for_test(peer: SocketAddr, idle_timeout: Option<Duration>) -> Self {
        Self {
            peer,
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            idle_timeout,
            draining: CancellationToken::new(),
            closing: CancellationToken::new(),
            stats: Arc::default(),
        }
    }

    /// True once the server stopped accepting: a service may finish its exchange and close.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// A token cancelled when the drain deadline passes.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    pub(crate) async fn bounded<F: Future>(&self, fut: F) -> Next<F::Output> {
        let timed = async {
            match self.idle_timeout {
                Some(t) => tokio::time::timeout(t, fut).await.ok(),
                None => Some(fut.await),
            }
        };
        tokio::select! {
            biased;
            out = timed => match out {
                Some(v) => Next::Item(v),
                None => {
                    self.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                    Next::IdleTimeout
                }
            },
            () = self.closing.cancelled() => Next::Closing,
        }
    }

    /// Waits for the next frame of a framed stream.
    pub async fn next<S: Stream + Unpin>(&self, frames: &mut S) -> Next<S::Item> {
        match self.bounded(frames.next()).await {
            Next::Item(Some(item)) => Next::Item(item),
            Next::Item(None) | Next::Eof => Next::Eof,
            Next::IdleTimeout => Next::IdleTimeout,
            Next::Closing => Next::Closing,
        }
    }

    /// Reads more bytes into `buf`; [`Next::Item`] carries a read error, never zero bytes.
    pub async fn read_buf<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        buf: &mut BytesMut,
    ) -> Next<io::Result<usize>> {
        match self.bounded(reader.read_buf(buf)).await {
            Next::Item(Ok(0)) => Next::Eof,
            other => other,
        }
    }

    /// Writes all of `bytes`, treating a peer that stops reading like an idle one.
    ///
    /// # Errors
    /// The write's error, `TimedOut` for a stalled peer, or `ConnectionAborted` at shutdown.
    pub async fn write_all<W: AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        bytes: &[u8],
    ) -> io::Result<()> {
        // The flush matters for TLS streams, which may keep the last record of a write in
        // rustls' buffer when the socket is momentarily full; for a TCP stream it is free.
        let write = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        match self.bounded(write).await {
            Next::Item(r) => r,
            Next::IdleTimeout => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading",
            )),
            Next::Eof | Next::Closing => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "server shutting down",
            )),
        }
    }
}

/// Binds a TCP listener with a deep accept backlog and SO_REUSEADDR.
///
/// The backlog matters for bursts: thousands of clients connecting at once must queue in the
/// kernel rather than see their SYNs dropped.
///
/// # Errors
/// The bind or listen error, e.g. `AddrInUse`.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = listener(addr)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket)
}

/// As [`bind_tcp`], for blocking code without a runtime (a demo's thread inside a namespace).
///
/// # Errors
/// The bind or listen error, e.g. `AddrInUse`.
pub fn bind_tcp_blocking(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    listener(addr)
}

fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Answers a client over the cap and closes it, without waiting on it.
///
/// A fresh connection's send buffer is empty, so a short reply goes out whole in one
/// non-blocking write; a client that never reads cannot hold the server up. Nothing is spawned
/// and nothing waits: a task per turned-away client, holding its socket until the client read
/// the reply, would let a flood of clients over the cap pile up sockets and tasks without limit.
/// Dropping the stream closes it; the kernel sends the reply, then FIN.
fn turn_away(stream: TcpStream, reply: &[u8]) {
    if reply.is_empty() {
        return;
    }
    match stream.try_write(reply) {
        Ok(n) if n == reply.len() => {}
        Ok(n) => tracing::debug!(sent = n, of = reply.len(), "busy reply cut short"),
        Err(e) => tracing::debug!(error = %e, "busy reply not sent"),
    }
}

/// Connects to a TCP server: the one way protolab's clients open a TCP connection.
///
/// Nagle's algorithm is turned off (clients here send whole requests and wait for replies), and
/// the handshake must finish within `timeout`.
///
/// # Errors
/// The connect error (refused, unreachable), or `TimedOut`.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// How a blocking client's TCP connection is set up before its handshake.
#[derive(Debug, Clone, Default)]
pub struct BlockingConnect {
    /// The congestion control to ask for (TCP_CONGESTION); the system's default when `None`.
    /// Set before connecting, so the handshake already runs under it (bbr paces from the
    /// first segment).
    pub congestion: Option<String>,
    /// Unsent bytes the socket may hold before a write blocks (TCP_NOTSENT_LOWAT), so that a
    /// bulk sender stops close to its deadline instead of draining megabytes of send buffer;
    /// left to the kernel if it refuses.
    pub notsent_lowat: Option<u32>,
    /// Turn Nagle's algorithm off.
    pub nodelay: bool,
}

/// Why [`connect_tcp_blocking`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BlockingConnectError {
    /// The kernel refused the congestion control asked for (unknown or not allowed).
    #[error("congestion control {name:?} refused: {source}")]
    Congestion { name: String, source: io::Error },
    /// The connection itself: refused, unreachable, or timed out.
    #[error("{0}")]
    Connect(io::Error),
}

/// Connects a blocking TCP client (for tools that run on threads, not on tokio), with the
/// handshake bounded by `timeout`.
///
/// # Errors
/// A refused congestion control, or the connect error.
pub fn connect_tcp_blocking(
    addr: SocketAddr,
    timeout: Duration,
    options: &BlockingConnect,
) -> Result<std::net::TcpStream, BlockingConnectError> {
    use BlockingConnectError::Connect;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(Connect)?;
    if let Some(name) = &options.congestion {
        socket
            .set_tcp_congestion(name.as_bytes())
            .map_err(|source| BlockingConnectError::Congestion {
                name: name.clone(),
                source,
            })?;
    }
    if let Some(lowat) = options.notsent_lowat {
        if let Err(e) = set_notsent_lowat(&socket, lowat) {
            tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
        }
    }
    socket
        .connect_timeout(&addr.into(), timeout)
        .map_err(Connect)?;
    if options.nodelay {
        socket.set_tcp_nodelay(true).map_err(Connect)?;
    }
    Ok(socket.into())
}

fn set_notsent_lowat(socket: &socket2::Socket, lowat: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(lowat).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid descriptor and a c_int option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The congestion control a TCP socket runs, as the kernel names it (TCP_CONGESTION).
///
/// # Errors
/// The getsockopt error.
pub fn congestion_of(stream: &std::net::TcpStream) -> io::Result<String> {
    let name = socket2::SockRef::from(stream).tcp_congestion()?;
    Ok(String::from_utf8_lossy(&name)
        .trim_end_matches('\0')
        .to_owned())
}

/// Runs a TCP service until `shutdown` fires and the connections have drained.
///
/// `handler` is called once per connection, inside a span carrying the peer address.
///
/// # Errors
/// Only errors of the listener itself; a connection's errors stay with that connection.
pub async fn run_tcp<H, Fut>(
    listener: TcpListener,
    config: TcpServerConfig,
    shutdown: CancellationToken,
    stats: Arc<TcpServerStats>,
    handler: H,
) -> io::Result<()>
where
    H: Fn(TcpStream, Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr()?;
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let tracker = TaskTracker::new();
    let closing = CancellationToken::new();
    tracing::info!(%local, max_connections = config.max_connections, "listening on TCP");

    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning on the error.
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if config.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.busy.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "over the connection cap: busy");
            turn_away(stream, &config.busy_reply);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let conn = Conn {
            peer,
            local: stream.local_addr().unwrap_or(local),
            idle_timeout: config.idle_timeout,
            draining: shutdown.clone(),
            closing: closing.clone(),
            stats: stats.clone(),
        };
        let span = tracing::debug_span!("conn", %peer);
        let fut = handler(stream, conn);
        tracker.spawn(
            async move {
                tracing::debug!("accepted");
                fut.await;
                tracing::debug!("closed");
                drop(permit);
            }
            .instrument(span),
        );
    }

    drop(listener);
    tracker.close();
    let live = tracker.len();
    tracing::info!(live, drain = ?config.drain_timeout, "stopped accepting; draining");
    if tokio::time::timeout(config.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        let left = tracker.len();
        stats
            .cut_at_shutdown
            .fetch_add(left as u64, Ordering::Relaxed);
        tracing::info!(left, "drain deadline passed; closing the rest");
        closing.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
    Ok(())
}
