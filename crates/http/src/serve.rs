//! `http serve`: the origin's I/O driver, [`ServerConn`] over protolab-transport's TCP runner.
//!
//! Per connection the driver reads into one buffer, lets the connection hand out a request,
//! collects its body (sending `100 Continue` first when the client waits for it), asks the
//! [`Origin`] for the reply and writes the whole response, head and body, with one write. Then
//! the next request, which may already be in the buffer (pipelining).
//!
//! Each phase has its own deadline: a head must arrive whole within `head_timeout` of its first
//! byte (slow-header clients get 408), each read of a body within `body_timeout`, and a
//! keep-alive connection may sit idle for `idle_timeout` before it is closed without a word.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use protolab_transport::cli::ListenError;
use protolab_transport::{CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, run_tcp};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite};
use tokio::net::TcpListener;

use crate::conn::{Request, ServerConn, ServerEvent};
use crate::origin::{Body, Handler, Origin, OriginConfig, Reply};
use crate::wire::{Limits, Version, reason};

/// Options of `http serve`.
#[derive(Clone)]
pub struct ServeConfig {
    /// Where [`bind`] listens.
    pub listen: SocketAddr,
    pub origin: OriginConfig,
    pub limits: Limits,
    /// Connections served at once; more get 503 and are closed.
    pub max_connections: usize,
    /// How long a head may take to arrive once its first byte has.
    pub head_timeout: Duration,
    /// How long each read of a request body may wait.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long live connections may go on after shutdown begins.
    pub drain_timeout: Duration,
    /// Threads serving connections, each with its own single-threaded runtime, all accepting
    /// from the one listener (1: only the caller's task).
    pub workers: usize,
    /// HTTPS: every connection starts with a TLS handshake (through protolab-transport's TLS).
    pub tls: Option<protolab_transport::tls::TlsAcceptor>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("origin", &self.origin)
            .field("limits", &self.limits)
            .field("max_connections", &self.max_connections)
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            origin: OriginConfig::default(),
            limits: Limits::default(),
            max_connections: 20_000,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
            workers: 1,
            tls: None,
        }
    }
}

/// What the server did, for the report printed when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Connections accepted.
    pub connections: u64,
    /// Connections turned away at the cap.
    pub busy: u64,
    /// Requests answered (refusals included).
    pub requests: u64,
    /// Responses by class: 1xx (interim 100 Continue), 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    /// Requests refused before the origin saw them (malformed, ambiguous framing, limits).
    pub refused: u64,
    /// Heads or bodies that did not arrive in time (408).
    pub timeouts: u64,
    /// Keep-alive connections closed after idling.
    pub idle_closed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    responses: [AtomicU64; 5],
    refused: AtomicU64,
    timeouts: AtomicU64,
    idle_closed: AtomicU64,
}

impl Counters {
    fn status(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// The server's listening socket, bound and not yet served.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    /// `tls` when every connection starts with a handshake, else `tcp`.
    proto: &'static str,
}

impl Bound {
    /// The address to announce: `tls` with `config.tls`, else `tcp`.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        // A bound socket always has an address; an error here would be the kernel's, and
        // `run` meets the same socket again.
        self.listener
            .local_addr()
            .map(|a| vec![(self.proto, a)])
            .unwrap_or_default()
    }
}

/// Binds `config.listen` through protolab-transport. Call it inside a tokio runtime.
///
/// # Errors
/// The address cannot be bound (a port in use, an address not on this machine).
pub fn bind(config: &ServeConfig) -> Result<Bound, ListenError> {
    // The error names `tcp` even for HTTPS: the socket is TCP, and `http serve` has always
    // said so.
    let listener = protolab_transport::bind_tcp(config.listen)
        .map_err(|e| ListenError::new("tcp", config.listen, e))?;
    let proto = if config.tls.is_some() { "tls" } else { "tcp" };
    Ok(Bound { listener, proto })
}

/// Serves HTTP on `bound` until `shutdown` fires and connections have drained.
///
/// # Errors
/// Only errors of the listening socket itself.
pub async fn run(
    bound: Bound,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> io::Result<Report> {
    let origin = Origin::new(config.origin.clone());
    run_with(bound.listener, config, origin, shutdown).await
}

/// Serves `handler`'s replies on `bound` until `shutdown` fires and connections have drained:
/// the same driver, limits and report as [`run`], for an application other than the lab
/// origin (`config.origin` is then unused).
///
/// # Errors
/// Only errors of the listening socket itself.
pub async fn run_with<H: Handler>(
    bound: TcpListener,
    config: ServeConfig,
    handler: H,
    shutdown: CancellationToken,
) -> io::Result<Report> {
    let tcp = TcpServerConfig {
        max_connections: config.max_connections,
        // The transport's timeout bounds every read and write; the phases tighten it.
        idle_timeout: Some(config.idle_timeout),
        drain_timeout: config.drain_timeout,
        // Over TLS a plaintext 503 would be garbage to the client: it is just closed.
        busy_reply: if config.tls.is_some() {
            Bytes::new()
        } else {
            Bytes::from_static(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
            )
        },
        nodelay: true,
    };
    let tcp_stats = Arc::new(TcpServerStats::default());
    let counters = Arc::new(Counters::default());
    // Each worker caps its own connections, as nginx's worker_connections does; the caps add
    // up to exactly `max_connections`, so there are never more workers than connections.
    let workers = config.workers.clamp(1, config.max_connections.max(1));
    let shared = Arc::new(Shared {
        handler,
        config,
        counters: counters.clone(),
    });
    // Workers beyond this task each get an OS thread with a single-threaded runtime and accept
    // from the same listening socket, as nginx's worker processes do: a connection then lives
    // on one thread, and no request costs a wake-up across threads.
    let mut threads = Vec::new();
    let per_worker = |i: usize| TcpServerConfig {
        max_connections: tcp.max_connections / workers
            + usize::from(i < tcp.max_connections % workers),
        ..tcp.clone()
    };
    let std_listener = bound.into_std()?;
    for i in 1..workers {
        let listener = std_listener.try_clone()?;
        let (tcp, shutdown, stats, shared) = (
            per_worker(i),
            shutdown.clone(),
            tcp_stats.clone(),
            shared.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .spawn(move || -> io::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    serve_on(listener, tcp, shutdown, stats, shared).await
                })
            })?;
        threads.push(thread);
    }
    let listener = TcpListener::from_std(std_listener)?;
    let first = serve_on(listener, per_worker(0), shutdown, tcp_stats.clone(), shared).await;
    let others = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a worker panicked")))
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(io::Error::other)?;
    first?;
    for r in others {
        r?;
    }
    let responses = std::array::from_fn(|i| counters.responses[i].load(Ordering::Relaxed));
    Ok(Report {
        connections: tcp_stats.accepted.load(Ordering::Relaxed),
        busy: tcp_stats.busy.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        responses,
        refused: counters.refused.load(Ordering::Relaxed),
        timeouts: counters.timeouts.load(Ordering::Relaxed),
        idle_closed: counters.idle_closed.load(Ordering::Relaxed),
    })
}

/// One worker's accept loop and connections.
async fn serve_on<H: Handler>(
    listener: TcpListener,
    tcp: TcpServerConfig,
    shutdown: CancellationToken,
    stats: Arc<TcpServerStats>,
    shared: Arc<Shared<H>>,
) -> io::Result<()> {
    run_tcp(listener, tcp, shutdown, stats, move |stream, conn| {
        let shared = shared.clone();
        async move {
            let result = match &shared.config.tls {
                None => handle(stream, conn, &shared).await,
                Some(acceptor) => {
                    match protolab_transport::tls::accept(acceptor, stream, &conn).await {
                        Ok(mut tls) => {
                            let result = handle(&mut tls, conn, &shared).await;
                            // TLS ends with close_notify (RFC 8446 section 6.1): without it a
                            // client cannot tell the end of a `Connection: close` response from
                            // a cut connection (OpenSSL 3 calls it "unexpected eof"). Bounded:
                            // a client that reads nothing more must not hold the task.
                            if result.is_ok() {
                                use tokio::io::AsyncWriteExt;
                                let _ =
                                    tokio::time::timeout(CLOSE_NOTIFY_TIME, tls.shutdown()).await;
                            }
                            result
                        }
                        Err(e) => {
                            tracing::debug!(
                                error = %protolab_transport::tls::describe_error(&e),
                                "TLS handshake failed"
                            );
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
    })
    .await
}

struct Shared<H> {
    handler: H,
    config: ServeConfig,
    counters: Arc<Counters>,
}

const READ_SIZE: usize = 16 * 1024;
/// How long sending TLS's close_notify at the end of a connection may take.
const CLOSE_NOTIFY_TIME: Duration = Duration::from_secs(1);
/// What an idle keep-alive connection reads into: a whole small request.
const IDLE_READ: usize = 1024;
/// Large files are sent in pieces of this size.
const FILE_PIECE: usize = 256 * 1024;

/// Serves one connection.
///
/// # Errors
/// The connection's I/O errors.
async fn handle<S: AsyncRead + AsyncWrite + Unpin, H: Handler>(
    mut stream: S,
    conn: Conn,
    shared: &Shared<H>,
) -> io::Result<()> {
    let limits = shared.config.limits;
    let counters = &shared.counters;
    let mut http = ServerConn::new(limits);
    // Buffers start small and are given back while the connection idles: 10,000 idle
    // keep-alive connections must not hold 10,000 large buffers.
    let mut input = BytesMut::with_capacity(IDLE_READ);
    let mut request: Option<Box<Request>> = None;
    let mut body = BytesMut::new();
    let mut head_deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(event) = http.poll(&mut input) {
            match event {
                ServerEvent::Request(req) => {
                    head_deadline = None;
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    if req.expect_continue {
                        counters.status(100);
                        write_out(&mut stream, &conn, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
                    }
                    body.clear();
                    request = Some(req);
                }
                ServerEvent::Body(piece) => body.extend_from_slice(&piece),
                ServerEvent::End(_trailers) => {
                    let Some(req) = request.take() else {
                        continue;
                    };
                    let mut reply = shared.handler.handle(&req, &body);
                    if let Some(d) = reply.delay {
                        tokio::time::sleep(d).await;
                    }
                    let streaming = matches!(reply.body, Body::Stream(_));
                    let close = http.will_close() || conn.is_draining() || streaming;
                    let mut out = BytesMut::with_capacity(reply_len(&reply));
                    write_reply(&mut out, &reply, &req, close);
                    counters.status(reply.status);
                    write_out(&mut stream, &conn, &out).await?;
                    if let Body::File { path, offset, len } = &reply.body
                        && req.head.method != "HEAD"
                    {
                        send_file(&mut stream, &conn, path, *offset, *len).await?;
                    }
                    if let Body::Stream(pieces) = &mut reply.body {
                        if req.head.method != "HEAD" {
                            send_stream(&mut stream, &conn, pieces).await?;
                        }
                        return Ok(());
                    }
                    // A request body must not stay allocated on a kept connection.
                    body = BytesMut::new();
                    if !http.response_sent(close) {
                        if !input.is_empty() {
                            linger(&mut stream).await;
                        }
                        return Ok(());
                    }
                }
                ServerEvent::Error(e) => {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    let reply = Reply::error(e.status(), &e.to_string());
                    let mut out = BytesMut::with_capacity(reply_len(&reply));
                    write_error(&mut out, &reply);
                    counters.status(reply.status);
                    write_out(&mut stream, &conn, &out).await?;
                    linger(&mut stream).await;
                    return Ok(());
                }
            }
        }
        if http.is_closed() {
            return Ok(());
        }
        // Which phase are we in? The deadline for a head starts with its first byte.
        let idle = http.is_idle(&input);
        let deadline =
            if idle {
                None
            } else if http.in_body() {
                Some(tokio::time::Instant::now() + shared.config.body_timeout)
            } else {
                Some(*head_deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + shared.config.head_timeout
                }))
            };
        if idle && input.is_empty() && input.capacity() > 4 * IDLE_READ {
            input = BytesMut::with_capacity(IDLE_READ);
        }
        let want = if idle { IDLE_READ } else { READ_SIZE };
        if input.capacity() - input.len() < want / 2 {
            input.reserve(want);
        }
        let read = match deadline {
            None => conn.read_buf(&mut stream, &mut input).await,
            Some(at) => {
                match tokio::time::timeout_at(at, conn.read_buf(&mut stream, &mut input)).await {
                    Ok(r) => r,
                    Err(_) => Next::IdleTimeout,
                }
            }
        };
        match read {
            Next::Item(Ok(_)) => {}
            Next::Item(Err(e)) => return Err(e),
            Next::Eof => {
                if let Some(ServerEvent::Error(e)) = http.eof(&input) {
                    tracing::debug!(error = %e, "client closed mid-request");
                }
                return Ok(());
            }
            Next::IdleTimeout if idle => {
                counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Next::IdleTimeout => {
                counters.timeouts.fetch_add(1, Ordering::Relaxed);
                let reply = Reply::error(408, "the request did not arrive in time");
                let mut out = BytesMut::with_capacity(reply_len(&reply));
                write_error(&mut out, &reply);
                counters.status(408);
                let _ = write_out(&mut stream, &conn, &out).await;
                return Ok(());
            }
            Next::Closing => return Ok(()),
        }
    }
}

/// Closes our side, then reads and discards what the client still sends, for a moment.
///
/// Closing a socket with unread input makes the kernel send a reset, which can destroy the
/// error response before the client has read it; reading until the client closes (at most
/// [`LINGER_BYTES`] or [`LINGER_TIME`]) lets the response arrive.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    use tokio::io::AsyncWriteExt;
    if stream.shutdown().await.is_err() {
        return;
    }
    // On the heap: a buffer inside the future would make every connection's task larger.
    let mut scratch = vec![0u8; 4096];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Bytes read and dropped at most while lingering.
const LINGER_BYTES: usize = 256 * 1024;
/// How long lingering lasts at most.
const LINGER_TIME: Duration = Duration::from_secs(1);

/// The bytes a reply takes on the wire, near enough to size its buffer once.
fn reply_len(reply: &Reply) -> usize {
    let body = match &reply.body {
        Body::Bytes(b) => b.len(),
        Body::File { .. } | Body::Stream(_) => 0,
    };
    160 + reply.fields.len() + body
}

/// Writes `bytes`, trying once without arming the transport's timeout: a response that fits
/// the socket's buffer (nearly all) then costs one system call and no timer.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Conn,
    bytes: &[u8],
) -> io::Result<()> {
    use futures_util::FutureExt;
    use tokio::io::AsyncWriteExt;
    let done = match stream.write(bytes).now_or_never() {
        Some(r) => r?,
        None => 0,
    };
    if done < bytes.len() {
        conn.write_all(stream, &bytes[done..]).await?;
    } else if !matches!(stream.flush().now_or_never(), Some(Ok(()))) {
        // A TLS stream takes the whole write into rustls' buffer even when the socket is
        // full, and sends the rest only when flushed: without this the end of the response
        // would wait for the next one. (For TCP, flush is a no-op that is always ready.)
        conn.write_all(stream, &[]).await?;
    }
    Ok(())
}

/// Writes a reply's head (and its body, unless the request was HEAD or the body is a file).
fn write_reply(out: &mut BytesMut, reply: &Reply, req: &Request, close: bool) {
    let version = req.head.version;
    out.put_slice(version.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reply.status.to_string().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(reply.status).as_bytes());
    out.put_slice(b"\r\nServer: protolab-http\r\nDate: ");
    put_date(out);
    out.put_slice(b"\r\n");
    if close {
        out.put_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(&reply.fields);
    out.put_slice(b"\r\n");
    if req.head.method != "HEAD"
        && let Body::Bytes(b) = &reply.body
    {
        out.put_slice(b);
    }
}

fn write_error(out: &mut BytesMut, reply: &Reply) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(reply.status.to_string().as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(reply.status).as_bytes());
    out.put_slice(b"\r\nServer: protolab-http\r\nDate: ");
    put_date(out);
    out.put_slice(b"\r\nConnection: close\r\n");
    out.put_slice(&reply.fields);
    out.put_slice(b"\r\n");
    if let Body::Bytes(b) = &reply.body {
        out.put_slice(b);
    }
}

/// The Date field's value, formatted once per second per thread.
fn put_date(out: &mut BytesMut) {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.put_slice(c.1.as_bytes());
    });
}

async fn send_file<S: AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Conn,
    path: &std::path::Path,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(io::SeekFrom::Start(offset)).await?;
    let mut left = len;
    let mut buf = vec![0u8; FILE_PIECE];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(FILE_PIECE).min(FILE_PIECE);
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            // The file shrank after the head was sent: the client sees a short body and the
            // connection is closed, which is all HTTP/1.1 allows here.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        conn.write_all(stream, &buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

/// Sends a streamed body's pieces until its sender ends, the client goes away or the server
/// drains (checked each second, so a stream never holds a shutdown up for long).
async fn send_stream<S: AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Conn,
    pieces: &mut tokio::sync::mpsc::Receiver<Bytes>,
) -> io::Result<()> {
    loop {
        let piece = tokio::select! {
            p = pieces.recv() => p,
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                if conn.is_draining() {
                    return Ok(());
                }
                continue;
            }
            () = conn.closing().cancelled() => return Ok(()),
        };
        let Some(piece) = piece else {
            return Ok(());
        };
        conn.write_all(stream, &piece).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use protolab_transport::tls;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// rustls takes a whole write of up to 64 KiB into its own buffer even when the socket
    /// is full, and sends the rest only when flushed. A response written that way must still
    /// reach a client that reads it later, with no further write from the server.
    #[tokio::test]
    async fn a_tls_response_that_fills_the_socket_is_still_sent_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, id) = tls::lab_ca().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let acceptor = tls::TlsAcceptor::from(
            tls::server_config(
                id.cert_pem.as_bytes(),
                id.key_pem.as_bytes(),
                Path::new("c"),
                Path::new("k"),
            )
            .unwrap(),
        );
        let connector = tls::TlsConnector::from(tls::client_config(Some(&ca_path)).unwrap());
        // A pipe that holds 4 KiB, far less than the response.
        let (server_end, client_end) = tokio::io::duplex(4096);
        let (server, client) = tokio::join!(
            acceptor.accept(server_end),
            connector.connect(tls::server_name("localhost").unwrap(), client_end)
        );
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        let response: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let conn = Conn::for_test(
            std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            Some(Duration::from_secs(10)),
        );
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let sent = response.clone();
        let writer = tokio::spawn(async move {
            write_out(&mut server, &conn, &sent).await.unwrap();
            // The connection stays open, idle, as a kept-alive one waits for its next request.
            let _ = done_rx.await;
        });
        // The client reads only after the server's write has been made.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut got = vec![0u8; response.len()];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got)).await;
        let _ = done_tx.send(());
        writer.await.unwrap();
        assert!(
            read.is_ok(),
            "the end of the response stayed in rustls' buffer"
        );
        assert_eq!(got, response);
    }
}
