//! `http proxy`: a caching HTTP/1.1 proxy on protolab-transport's TCP runner.
//!
//! Two ways in, one cache:
//! - forward proxy: clients send absolute-form requests (`GET http://host:port/path HTTP/1.1`,
//!   what `HTTP_PROXY=http://127.0.0.1:3128 curl ...` does), and the proxy fetches from that host;
//! - reverse proxy (`--upstream http://127.0.0.1:8080`): clients send ordinary origin-form
//!   requests and the proxy fetches from the one upstream.
//!
//! Every request goes through [`crate::cache::Cache`], the sans-I/O RFC 9111 cache; this module
//! only moves bytes: it reads requests with [`ServerConn`], asks the cache, talks to the origin
//! with [`ClientConn`] (passing 1xx interim responses through), and writes what the cache says.
//! `CONNECT` opens a tunnel (a proxy cannot cache what it cannot read), only to loopback unless
//! allowed, with a byte cap and an idle timeout.
//!
//! The proxy is never open by default: `main.rs` binds it to loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use protolab_transport::cli::ListenError;
use protolab_transport::{CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, run_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::cache::{
    Cache, CacheConfig, CacheStats, Fields, Forward, Lookup, Request, Response, http_date,
};
use crate::conn::{ClientConn, ClientEvent, ServerConn, ServerEvent};
use crate::wire::{Limits, RequestHead, Version};

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address, as written.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Upstream {
    /// Parses `http://host[:port][/]`; `https` is refused (no TLS towards origins yet).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// upstreams are supported"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        parse_authority(authority, 80).ok_or_else(|| format!("{url}: no host:port in it"))
    }

    /// The Host field for requests to it: the port is left out when it is 80.
    pub fn host_field(&self) -> String {
        match (self.port, self.host.contains(':')) {
            (80, false) => self.host.clone(),
            (80, true) => format!("[{}]", self.host),
            _ => self.authority(),
        }
    }

    /// `host:port`, in the cache key and messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Where [`bind`] listens.
    pub listen: SocketAddr,
    /// Reverse proxy to this origin; without it only absolute-form (forward) requests work.
    pub upstream: Option<Upstream>,
    /// The cache's size and policy.
    pub cache: CacheConfig,
    /// CONNECT targets allowed beyond loopback: `host:port`, `*:port`, or `*` for any.
    pub allow_connect: Vec<String>,
    /// Limits on client requests and origin responses.
    pub limits: Limits,
    /// Connections, idle timeout and drain.
    pub tcp: TcpServerConfig,
    /// How long to wait for an origin to accept and to send each piece of its response.
    pub upstream_timeout: Duration,
    /// A CONNECT tunnel closes after this long without traffic either way.
    pub tunnel_idle: Duration,
    /// A CONNECT tunnel closes after this many bytes in either direction.
    pub tunnel_max_bytes: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], crate::PROXY_PORT)),
            upstream: None,
            cache: CacheConfig::default(),
            allow_connect: Vec::new(),
            limits: Limits::default(),
            tcp: TcpServerConfig {
                busy_reply: Bytes::from_static(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
                ..TcpServerConfig::default()
            },
            upstream_timeout: Duration::from_secs(30),
            tunnel_idle: Duration::from_secs(60),
            tunnel_max_bytes: 1 << 30,
        }
    }
}

/// What a proxy run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// The address it listened on.
    pub listen: String,
    /// Requests read from clients.
    pub requests: u64,
    /// Requests refused before reaching the cache (bad syntax, no upstream, CONNECT denied).
    pub refused: u64,
    /// Requests sent to origins.
    pub upstream_requests: u64,
    /// Origins that could not be reached or sent a broken response.
    pub upstream_errors: u64,
    /// CONNECT tunnels opened.
    pub tunnels: u64,
    /// Bytes carried by tunnels, both directions.
    pub tunnel_bytes: u64,
    /// Connections accepted.
    pub connections: u64,
    /// The cache's counters.
    pub cache: CacheStats,
    /// The cache's byte cap.
    pub cache_max_bytes: u64,
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    refused: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_errors: AtomicU64,
    tunnels: AtomicU64,
    tunnel_bytes: AtomicU64,
}

struct Shared {
    config: ProxyConfig,
    cache: Mutex<Cache>,
    counters: Counters,
    /// This proxy's `Via` entry (RFC 9110 §7.6.3): seeing it come back means a loop.
    via: String,
}

/// The proxy's listening socket, bound and not yet served.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
}

impl Bound {
    /// The address to announce (`tcp`).
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        // A bound socket always has an address; an error here would be the kernel's, and
        // `run` meets the same socket again.
        self.listener
            .local_addr()
            .map(|a| vec![("tcp", a)])
            .unwrap_or_default()
    }
}

/// Binds `config.listen` through protolab-transport. Call it inside a tokio runtime.
///
/// # Errors
/// The address cannot be bound (a port in use, an address not on this machine).
pub fn bind(config: &ProxyConfig) -> Result<Bound, ListenError> {
    let listener = protolab_transport::bind_tcp(config.listen)
        .map_err(|e| ListenError::new("tcp", config.listen, e))?;
    Ok(Bound { listener })
}

/// Runs the proxy on `bound` until `shutdown` fires; prints nothing.
///
/// # Errors
/// Only errors of the listener itself.
pub async fn run(
    bound: Bound,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> Result<Report, ProxyError> {
    let listener = bound.listener;
    let listen = listener.local_addr()?.to_string();
    let cache_max_bytes = config.cache.max_bytes as u64;
    let shared = Arc::new(Shared {
        cache: Mutex::new(Cache::new(config.cache.clone())),
        counters: Counters::default(),
        via: format!("1.1 {listen} (protolab)"),
        config,
    });
    let stats = Arc::new(TcpServerStats::default());
    let handler_shared = shared.clone();
    run_tcp(
        listener,
        shared.config.tcp.clone(),
        shutdown,
        stats.clone(),
        move |stream, conn| serve_connection(handler_shared.clone(), stream, conn),
    )
    .await?;
    let c = &shared.counters;
    let cache = shared.cache.lock().map(|c| c.stats()).unwrap_or_default();
    Ok(Report {
        listen,
        requests: c.requests.load(Ordering::Relaxed),
        refused: c.refused.load(Ordering::Relaxed),
        upstream_requests: c.upstream_requests.load(Ordering::Relaxed),
        upstream_errors: c.upstream_errors.load(Ordering::Relaxed),
        tunnels: c.tunnels.load(Ordering::Relaxed),
        tunnel_bytes: c.tunnel_bytes.load(Ordering::Relaxed),
        connections: stats.accepted.load(Ordering::Relaxed),
        cache,
        cache_max_bytes,
    })
}

async fn serve_connection(shared: Arc<Shared>, mut stream: TcpStream, conn: Conn) {
    let mut server = ServerConn::new(shared.config.limits);
    let mut input = BytesMut::with_capacity(8192);
    let mut current: Option<(Box<crate::conn::Request>, BytesMut)> = None;
    loop {
        let event = match server.poll(&mut input) {
            Some(e) => e,
            None => {
                if server.is_closed() {
                    return;
                }
                match conn.read_buf(&mut stream, &mut input).await {
                    Next::Item(Ok(_)) => continue,
                    Next::Item(Err(_)) | Next::IdleTimeout | Next::Closing => return,
                    Next::Eof => match server.eof(&input) {
                        Some(e) => e,
                        None => return,
                    },
                }
            }
        };
        match event {
            ServerEvent::Request(req) => {
                shared.counters.requests.fetch_add(1, Ordering::Relaxed);
                if req.head.method == "CONNECT" {
                    tunnel(&shared, stream, input, &req.head, &conn).await;
                    return;
                }
                if req.expect_continue
                    && conn
                        .write_all(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .is_err()
                {
                    return;
                }
                current = Some((req, BytesMut::new()));
            }
            ServerEvent::Body(piece) => {
                if let Some((_, body)) = current.as_mut() {
                    body.extend_from_slice(&piece);
                }
            }
            ServerEvent::End(_) => {
                let Some((req, body)) = current.take() else {
                    return;
                };
                let close = server.will_close() || conn.is_draining();
                let ok = handle(&shared, &mut stream, &conn, &req.head, body.freeze(), close).await;
                if !ok || !server.response_sent(close) {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
            ServerEvent::Error(e) => {
                shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                let status = e.status();
                let r = Response::generated(status, reason_phrase(status), &e.to_string());
                let _ = write_response(&mut stream, &conn, &r, Version::Http11, false, true).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Where one request goes and under which cache key.
#[derive(Debug, Clone)]
struct Target {
    upstream: Upstream,
    /// The request target to send (origin-form).
    path: String,
    /// The cache key (absolute URI).
    key: String,
}

fn target_of(shared: &Shared, head: &RequestHead) -> Result<Target, String> {
    let t = &head.target;
    if let Some(rest) = t.strip_prefix("http://").or_else(|| {
        t.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("http://"))
            .map(|_| &t[7..])
    }) {
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let upstream = parse_authority(authority, 80).ok_or_else(|| format!("no host in {t}"))?;
        let path = if path.is_empty() {
            "/".to_owned()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        let key = format!("http://{}{path}", upstream.authority().to_ascii_lowercase());
        return Ok(Target {
            upstream,
            path,
            key,
        });
    }
    if t.starts_with("https://") {
        return Err("https:// targets go through CONNECT".to_owned());
    }
    let Some(upstream) = shared.config.upstream.clone() else {
        return Err("no upstream: send absolute-form requests (a forward proxy) or start the proxy with --upstream".to_owned());
    };
    if !t.starts_with('/') {
        return Err(format!("unsupported request target {t}"));
    }
    let key = format!("http://{}{t}", upstream.authority().to_ascii_lowercase());
    Ok(Target {
        upstream,
        path: t.clone(),
        key,
    })
}

/// Answers one request; false when the connection must close now.
async fn handle(
    shared: &Arc<Shared>,
    stream: &mut TcpStream,
    conn: &Conn,
    head: &RequestHead,
    body: Bytes,
    close: bool,
) -> bool {
    let head_only = head.method == "HEAD";
    // A forward proxy asked for its own address would send the request to itself forever.
    if head
        .headers
        .get_all("via")
        .any(|v| String::from_utf8_lossy(v).contains(shared.via.as_str()))
    {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        let r = Response::generated(
            508,
            "Loop Detected",
            "this request already passed this proxy",
        );
        return write_response(stream, conn, &r, head.version, head_only, close).await;
    }
    let target = match target_of(shared, head) {
        Ok(t) => t,
        Err(why) => {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            let r = Response::generated(400, "Bad Request", &why);
            return write_response(stream, conn, &r, head.version, head_only, close).await;
        }
    };
    let mut fields: Fields = head
        .headers
        .iter()
        .map(|f| (f.name().to_owned(), f.value.to_vec()))
        .collect();
    fields.strip_hop_by_hop();
    let request = Request {
        method: head.method.clone(),
        uri: target.key.clone(),
        fields,
    };
    let lookup = lock(&shared.cache).lookup(&request, SystemTime::now());
    let response = match lookup {
        Lookup::Hit(r) => r,
        Lookup::StaleWhileRevalidate {
            response,
            revalidate,
        } => {
            let bg = shared.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let _ = fetch_and_complete(
                    &bg,
                    None,
                    conn_none(),
                    &target,
                    revalidate,
                    Bytes::new(),
                    (Version::Http11, true),
                )
                .await;
            });
            response
        }
        Lookup::Forward(fwd) => {
            match fetch_and_complete(
                shared,
                Some(stream),
                Some(conn),
                &target,
                fwd,
                body,
                (head.version, close),
            )
            .await
            {
                Fetched::Response(r) => r,
                Fetched::Streamed => return !close,
                Fetched::ClientGone => return false,
            }
        }
    };
    write_response(stream, conn, &response, head.version, head_only, close).await
}

fn conn_none() -> Option<&'static Conn> {
    None
}

enum Fetched {
    /// The response for the client, from the cache.
    Response(Response),
    /// The response was too large to buffer and went to the client as it arrived.
    Streamed,
    /// Writing to the client failed.
    ClientGone,
}

/// Sends `fwd` to the origin, passes 1xx responses to the client, and hands the final response
/// to the cache. With no client (a background revalidation) interim responses are dropped.
async fn fetch_and_complete(
    shared: &Arc<Shared>,
    mut client: Option<&mut TcpStream>,
    conn: Option<&Conn>,
    target: &Target,
    fwd: Forward,
    body: Bytes,
    (version, close): (Version, bool),
) -> Fetched {
    let (upstream, path) = (&target.upstream, target.path.as_str());
    shared
        .counters
        .upstream_requests
        .fetch_add(1, Ordering::Relaxed);
    let timeout = shared.config.upstream_timeout;
    let mut out = BytesMut::with_capacity(1024 + body.len());
    out.put_slice(fwd.method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\nHost: ");
    out.put_slice(upstream.host_field().as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in fwd.fields.iter() {
        if name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("expect")
        {
            continue;
        }
        put_field(&mut out, name, value);
    }
    if !body.is_empty() || matches!(fwd.method.as_str(), "POST" | "PUT" | "PATCH") {
        out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    put_field(&mut out, "Via", shared.via.as_bytes());
    out.put_slice(b"Connection: close\r\n\r\n");
    out.put_slice(&body);

    let failed = |shared: &Arc<Shared>, fwd: Forward, why: String| {
        shared
            .counters
            .upstream_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%why, "origin failed");
        let r = lock(&shared.cache).failed(fwd, SystemTime::now(), &why);
        Fetched::Response(r)
    };
    let mut origin = match tokio::time::timeout(timeout, connect(upstream, timeout)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return failed(
                shared,
                fwd,
                format!("connect {}: {e}", upstream.authority()),
            );
        }
        Err(_) => {
            return failed(
                shared,
                fwd,
                format!("connect {}: timed out", upstream.authority()),
            );
        }
    };
    match tokio::time::timeout(timeout, origin.write_all(&out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed(shared, fwd, format!("send: {e}")),
        Err(_) => return failed(shared, fwd, "send: timed out".to_owned()),
    }
    let mut reader = ClientConn::new(&fwd.method, shared.config.limits);
    let mut input = BytesMut::with_capacity(16 * 1024);
    let max_buffered = shared.config.cache.max_object_bytes;
    let mut head = None;
    let mut collected = BytesMut::new();
    loop {
        let event = match reader.poll(&mut input) {
            Ok(Some(e)) => e,
            Ok(None) => {
                let read = tokio::time::timeout(timeout, origin.read_buf(&mut input)).await;
                match read {
                    Ok(Ok(0)) => match reader.eof() {
                        Ok(Some(e)) => e,
                        Ok(None) => continue,
                        Err(e) => {
                            return failed(shared, fwd, format!("origin closed: {e}"));
                        }
                    },
                    Ok(Ok(_)) => continue,
                    Ok(Err(e)) => {
                        return failed(shared, fwd, format!("receive: {e}"));
                    }
                    Err(_) => {
                        return failed(shared, fwd, "receive: timed out".to_owned());
                    }
                }
            }
            Err(e) => {
                return failed(shared, fwd, e.to_string());
            }
        };
        match event {
            ClientEvent::Interim(h) => {
                // 100 Continue answered the proxy's own request; 102 and 103 are for the client.
                if h.status != 100
                    && let (Some(stream), Some(conn)) = (client.as_deref_mut(), conn)
                {
                    let mut bytes = BytesMut::new();
                    bytes.put_slice(format!("HTTP/1.1 {} {}\r\n", h.status, h.reason).as_bytes());
                    for f in h.headers.iter() {
                        put_field(&mut bytes, f.name(), &f.value);
                    }
                    bytes.put_slice(b"\r\n");
                    if conn.write_all(stream, &bytes).await.is_err() {
                        return Fetched::ClientGone;
                    }
                }
            }
            ClientEvent::Response {
                head: h, framing, ..
            } => {
                let too_big =
                    matches!(framing, crate::body::Framing::Length(n) if n > max_buffered as u64);
                let fields: Fields = h
                    .headers
                    .iter()
                    .map(|f| (f.name().to_owned(), f.value.to_vec()))
                    .collect();
                head = Some((h.status, h.reason.clone(), fields));
                if too_big {
                    let (Some(stream), Some(conn)) = (client.as_deref_mut(), conn) else {
                        return Fetched::ClientGone;
                    };
                    let (status, reason, mut fields) = head.take().unwrap_or_default();
                    lock(&shared.cache).complete_unbuffered(
                        fwd,
                        status,
                        &mut fields,
                        SystemTime::now(),
                    );
                    let Ok(passing) = write_streamed_head(
                        stream,
                        conn,
                        (status, &reason, &fields),
                        framing,
                        (version, close),
                    )
                    .await
                    else {
                        return Fetched::ClientGone;
                    };
                    return stream_rest(stream, conn, &mut origin, reader, input, timeout, passing)
                        .await;
                }
            }
            ClientEvent::Body(piece) => {
                collected.extend_from_slice(&piece);
                if collected.len() > max_buffered {
                    // A chunked body grew past what may be buffered: pass it through as is.
                    let (Some(stream), Some(conn)) = (client.as_deref_mut(), conn) else {
                        return Fetched::ClientGone;
                    };
                    let (status, reason, mut fields) = head.take().unwrap_or_default();
                    lock(&shared.cache).complete_unbuffered(
                        fwd,
                        status,
                        &mut fields,
                        SystemTime::now(),
                    );
                    let Ok(passing) = write_streamed_head(
                        stream,
                        conn,
                        (status, &reason, &fields),
                        crate::body::Framing::Chunked,
                        (version, close),
                    )
                    .await
                    else {
                        return Fetched::ClientGone;
                    };
                    let mut first = BytesMut::new();
                    if passing.chunked {
                        crate::body::encode_chunk(&collected, &mut first);
                    } else {
                        first.extend_from_slice(&collected);
                    }
                    if conn.write_all(stream, &first).await.is_err() {
                        return Fetched::ClientGone;
                    }
                    return stream_rest(stream, conn, &mut origin, reader, input, timeout, passing)
                        .await;
                }
            }
            ClientEvent::End(_) => {
                let Some((status, reason, fields)) = head.take() else {
                    return failed(shared, fwd, "no response head".to_owned());
                };
                let response = Response {
                    status,
                    reason,
                    fields,
                    body: collected.freeze(),
                };
                let r = lock(&shared.cache).complete(fwd, response, SystemTime::now());
                return Fetched::Response(r);
            }
        }
    }
}

/// Writes the head of a response passed through unbuffered, and says how its body goes on.
/// Without a length, an HTTP/1.1 client gets it chunked, an HTTP/1.0 client until the close.
async fn write_streamed_head(
    stream: &mut TcpStream,
    conn: &Conn,
    (status, reason, fields): (u16, &str, &Fields),
    framing: crate::body::Framing,
    (version, close): (Version, bool),
) -> std::io::Result<Passing> {
    let mut out = BytesMut::new();
    out.put_slice(format!("{} {status} {reason}\r\n", version.as_str()).as_bytes());
    for (name, value) in fields.iter() {
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        put_field(&mut out, name, value);
    }
    let chunked = match framing {
        crate::body::Framing::Length(n) => {
            out.put_slice(format!("Content-Length: {n}\r\n").as_bytes());
            false
        }
        _ if version == Version::Http11 => {
            out.put_slice(b"Transfer-Encoding: chunked\r\n");
            true
        }
        _ => false,
    };
    let delimited_by_close = !chunked && !matches!(framing, crate::body::Framing::Length(_));
    if close || delimited_by_close {
        out.put_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
    conn.write_all(stream, &out).await?;
    Ok(Passing {
        chunked,
        close: delimited_by_close,
    })
}

/// How a body passed through unbuffered is delimited for the client.
#[derive(Debug, Clone, Copy)]
struct Passing {
    /// Re-chunked (an HTTP/1.1 client, no length known).
    chunked: bool,
    /// Ended by closing the connection (an HTTP/1.0 client, no length known).
    close: bool,
}

/// Copies the rest of a large body to the client: as is for Content-Length, re-chunked
/// otherwise. The client connection closes afterwards if anything goes wrong.
async fn stream_rest(
    stream: &mut TcpStream,
    conn: &Conn,
    origin: &mut TcpStream,
    mut reader: ClientConn,
    mut input: BytesMut,
    timeout: Duration,
    passing: Passing,
) -> Fetched {
    let chunked = passing.chunked;
    loop {
        let event = match reader.poll(&mut input) {
            Ok(Some(e)) => e,
            Ok(None) => match tokio::time::timeout(timeout, origin.read_buf(&mut input)).await {
                Ok(Ok(0)) => match reader.eof() {
                    Ok(Some(e)) => e,
                    _ => return Fetched::ClientGone,
                },
                Ok(Ok(_)) => continue,
                _ => return Fetched::ClientGone,
            },
            Err(_) => return Fetched::ClientGone,
        };
        let mut out = BytesMut::new();
        match event {
            ClientEvent::Body(piece) if chunked => crate::body::encode_chunk(&piece, &mut out),
            ClientEvent::Body(piece) => out.extend_from_slice(&piece),
            ClientEvent::End(trailers) => {
                if chunked {
                    crate::body::encode_last_chunk(&trailers, &mut out);
                }
                if conn.write_all(stream, &out).await.is_err() || passing.close {
                    return Fetched::ClientGone;
                }
                return Fetched::Streamed;
            }
            _ => continue,
        }
        if conn.write_all(stream, &out).await.is_err() {
            return Fetched::ClientGone;
        }
    }
}

/// Resolves the origin's name and connects through transport, trying each address in turn.
async fn connect(upstream: &Upstream, timeout: Duration) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((upstream.host.as_str(), upstream.port))
        .await?
        .collect();
    connect_any(&addrs, timeout).await
}

async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the host");
    for addr in addrs {
        match protolab_transport::connect_tcp(*addr, timeout).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // A panic while holding the lock cannot leave the cache half-updated in a way that matters
    // more than losing the proxy; keep serving.
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn put_field(out: &mut BytesMut, name: &str, value: &[u8]) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes a whole response; false when the client is gone or the connection must close.
async fn write_response(
    stream: &mut TcpStream,
    conn: &Conn,
    r: &Response,
    version: Version,
    head_only: bool,
    close: bool,
) -> bool {
    let mut out = BytesMut::with_capacity(512 + r.fields.wire_len() + r.body.len());
    let reason = if r.reason.is_empty() {
        reason_phrase(r.status)
    } else {
        &r.reason
    };
    out.put_slice(format!("{} {} {}\r\n", version.as_str(), r.status, reason).as_bytes());
    let bodyless = r.status == 204 || r.status == 304 || (100..200).contains(&r.status);
    for (name, value) in r.fields.iter() {
        if name.eq_ignore_ascii_case("content-length") && !head_only {
            continue;
        }
        put_field(&mut out, name, value);
    }
    if !r.fields.contains("date") {
        put_field(&mut out, "Date", http_date(SystemTime::now()).as_bytes());
    }
    if !bodyless && !head_only {
        out.put_slice(format!("Content-Length: {}\r\n", r.body.len()).as_bytes());
    }
    if close {
        out.put_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        // An HTTP/1.0 client keeps the connection only if told so.
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
    if !bodyless && !head_only {
        out.put_slice(&r.body);
    }
    conn.write_all(stream, &out).await.is_ok() && !close
}

/// Opens a CONNECT tunnel if the target is allowed, then copies bytes both ways.
async fn tunnel(
    shared: &Arc<Shared>,
    mut client: TcpStream,
    pending: BytesMut,
    head: &RequestHead,
    conn: &Conn,
) {
    let refuse = |status: u16, why: String| {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        Response::generated(status, reason_phrase(status), &why)
    };
    let Some(target) = parse_authority(&head.target, 0).filter(|t| t.port != 0) else {
        let r = refuse(400, format!("CONNECT needs host:port, not {}", head.target));
        write_response(&mut client, conn, &r, head.version, false, true).await;
        return;
    };
    let addrs: Vec<SocketAddr> =
        match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                let r = refuse(502, format!("cannot resolve {}: {e}", target.host));
                write_response(&mut client, conn, &r, head.version, false, true).await;
                return;
            }
        };
    if !connect_allowed(&shared.config.allow_connect, &target, &addrs) {
        let r = refuse(
            403,
            format!(
                "CONNECT to {} is not allowed: only loopback unless --allow-connect",
                target.authority()
            ),
        );
        write_response(&mut client, conn, &r, head.version, false, true).await;
        return;
    }
    let timeout = shared.config.upstream_timeout;
    let origin = match tokio::time::timeout(timeout, connect_any(&addrs, timeout)).await {
        Ok(Ok(s)) => s,
        _ => {
            shared
                .counters
                .upstream_errors
                .fetch_add(1, Ordering::Relaxed);
            let r = Response::generated(
                502,
                "Bad Gateway",
                &format!("cannot connect to {}", target.authority()),
            );
            write_response(&mut client, conn, &r, head.version, false, true).await;
            return;
        }
    };
    if conn
        .write_all(&mut client, b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    shared.counters.tunnels.fetch_add(1, Ordering::Relaxed);
    let (mut cr, mut cw) = client.into_split();
    let (mut or, mut ow) = origin.into_split();
    let idle = shared.config.tunnel_idle;
    let cap = shared.config.tunnel_max_bytes;
    let closing = conn.closing().clone();
    let up = async {
        if !pending.is_empty() && ow.write_all(&pending).await.is_err() {
            return pending.len() as u64;
        }
        let n = copy_bounded(
            &mut cr,
            &mut ow,
            idle,
            cap.saturating_sub(pending.len() as u64),
        )
        .await;
        let _ = ow.shutdown().await;
        n + pending.len() as u64
    };
    let down = async {
        let n = copy_bounded(&mut or, &mut cw, idle, cap).await;
        let _ = cw.shutdown().await;
        n
    };
    let total = tokio::select! {
        (a, b) = async { tokio::join!(up, down) } => a + b,
        () = closing.cancelled() => 0,
    };
    shared
        .counters
        .tunnel_bytes
        .fetch_add(total, Ordering::Relaxed);
}

/// Copies until end of input, an error, `idle` without data, or `cap` bytes.
async fn copy_bounded<R, W>(r: &mut R, w: &mut W, idle: Duration, cap: u64) -> u64
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0u64;
    while total < cap {
        let want = buf.len().min((cap - total) as usize);
        let n = match tokio::time::timeout(idle, r.read(&mut buf[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        if tokio::time::timeout(idle, w.write_all(&buf[..n]))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
        total += n as u64;
    }
    total
}

/// CONNECT policy: loopback targets always; others only when `allow` names them.
pub fn connect_allowed(allow: &[String], target: &Upstream, addrs: &[SocketAddr]) -> bool {
    if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) {
        return true;
    }
    allow.iter().any(|rule| {
        if rule == "*" {
            return true;
        }
        let Some((host, port)) = rule.rsplit_once(':') else {
            return rule.eq_ignore_ascii_case(&target.host);
        };
        (host == "*" || host.eq_ignore_ascii_case(&target.host))
            && (port == "*" || port.parse::<u16>().ok() == Some(target.port))
    })
}

fn parse_authority(authority: &str, default_port: u16) -> Option<Upstream> {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<IpAddr>().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some(Upstream {
            host: host.to_owned(),
            port,
        });
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, default_port),
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return None;
    }
    Some(Upstream {
        host: host.to_owned(),
        port,
    })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:8080/").unwrap(),
            Upstream {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(Upstream::parse("http://example.test").unwrap().port, 80);
        assert_eq!(
            Upstream::parse("http://[::1]:81").unwrap().authority(),
            "[::1]:81"
        );
        assert_eq!(
            Upstream::parse("http://example.test").unwrap().host_field(),
            "example.test"
        );
        assert_eq!(
            Upstream::parse("http://example.test:8080")
                .unwrap()
                .host_field(),
            "example.test:8080"
        );
        assert!(Upstream::parse("https://x").is_err());
        assert!(Upstream::parse("http://").is_err());
    }

    #[test]
    fn connect_is_loopback_only_unless_allowed() {
        let t = Upstream {
            host: "example.test".into(),
            port: 443,
        };
        let public: Vec<SocketAddr> = vec!["192.0.2.1:443".parse().unwrap()];
        let lo: Vec<SocketAddr> = vec!["127.0.0.1:443".parse().unwrap()];
        assert!(connect_allowed(&[], &t, &lo));
        assert!(!connect_allowed(&[], &t, &public));
        assert!(connect_allowed(&["*:443".into()], &t, &public));
        assert!(connect_allowed(&["example.test:443".into()], &t, &public));
        assert!(!connect_allowed(&["example.test:8443".into()], &t, &public));
        assert!(connect_allowed(&["*".into()], &t, &public));
    }
}
