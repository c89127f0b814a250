//! `http get`: a client that shows the anatomy of both messages, like `curl -v`.
//!
//! Each URL becomes one exchange: the request exactly as sent (request line and each field
//! line), the response head as received, and the time at which each phase ended, counted from
//! the start of the exchange: name lookup, connect, request sent, first byte, done. Consecutive
//! URLs of the same server go over one connection when both sides keep it alive, and each
//! exchange says whether its connection was reused.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conn::{ClientConn, ClientEvent, ResponseError};
use crate::wire::{Headers, Limits, RequestHead, Version};

/// The User-Agent sent by default.
pub const USER_AGENT: &str = concat!("protolab-http/", env!("CARGO_PKG_VERSION"));

/// What `http get` does.
#[derive(Debug, Clone)]
pub struct GetConfig {
    /// `http://host[:port]/path?query`, one exchange each.
    pub urls: Vec<String>,
    /// The method; GET, or POST with `data`.
    pub method: Option<String>,
    /// Extra fields as `Name: value`; a name of a default field replaces it, `Name:` removes it.
    pub headers: Vec<String>,
    /// A request body (sent with Content-Length).
    pub data: Option<Bytes>,
    /// `HOST:PORT:ADDR`: connect to ADDR when the URL names HOST:PORT (as curl's --resolve).
    pub resolve: Vec<String>,
    /// Send every request to this proxy, in absolute form.
    pub proxy: Option<String>,
    /// How long each exchange may take.
    pub timeout: Duration,
    /// The largest response body read.
    pub max_body: u64,
    /// For https:// URLs: trust the CAs in this file (PEM) instead of the system's.
    pub cacert: Option<std::path::PathBuf>,
}

impl Default for GetConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            method: None,
            headers: Vec::new(),
            data: None,
            resolve: Vec::new(),
            proxy: None,
            timeout: Duration::from_secs(30),
            max_body: 1 << 30,
            cacert: None,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {0:?}: {1}")]
    BadUrl(String, &'static str),
    #[error("bad header {0:?}: write it as 'Name: value'")]
    BadHeader(String),
    #[error("bad --resolve {0:?}: write it as HOST:PORT:ADDR")]
    BadResolve(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Response(#[from] ResponseError),
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    #[error("TLS with {0} failed: {1}")]
    Tls(String, String),
    #[error("{0}")]
    TlsSetup(#[from] protolab_transport::tls::TlsError),
}

/// A URL's parts that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// https://: the exchange runs inside TLS (port 443 unless given).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http://host[:port][/path][?query]` (a bare `host:port/path` means http).
    ///
    /// # Errors
    /// [`ClientError::BadUrl`] naming the problem.
    pub fn parse(text: &str) -> Result<Url, ClientError> {
        let bad = |why| ClientError::BadUrl(text.to_owned(), why);
        let (tls, rest) = if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if text.contains("://") {
            return Err(bad("only http:// and https:// URLs"));
        } else {
            (false, text)
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("a fragment, space or control character in the path"));
        }
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, rest) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match rest.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if rest.is_empty() => default_port,
                None => return Err(bad("junk after the host")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Url {
            tls,
            host,
            port,
            path,
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The Host field's value: the port only when it is not the scheme's default.
    pub fn authority(&self) -> String {
        if self.port == if self.tls { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// When each phase ended, in microseconds from the start of the exchange.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timing {
    pub name_lookup_us: u64,
    pub connect_us: u64,
    pub request_sent_us: u64,
    pub first_byte_us: u64,
    pub done_us: u64,
}

/// One request and its response, as they went over the wire.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    pub url: String,
    /// The address connected to (the proxy's with `--proxy`).
    pub remote: SocketAddr,
    /// The connection was left open by the previous exchange and used again.
    pub reused: bool,
    /// The request line and each field line, exactly as sent (without CRLF).
    pub request: Vec<String>,
    pub request_body_bytes: usize,
    /// Interim responses (such as `100 Continue`), each as its status line.
    pub interim: Vec<String>,
    /// The status line and each field line as received.
    pub response: Vec<String>,
    pub status: u16,
    /// How the body was framed: none, length, chunked or close.
    pub framing: crate::body::Framing,
    pub body_bytes: u64,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<String>,
    pub timing: Timing,
    /// The response body.
    #[serde(skip)]
    pub body: Bytes,
    /// Set-Cookie values received, for a cookie jar.
    #[serde(skip)]
    pub set_cookies: Vec<String>,
}

/// A connection: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

struct Open {
    /// The address and whether the connection is in TLS: only the same pair is reused.
    key: (SocketAddr, bool),
    stream: Box<dyn Io>,
    leftover: BytesMut,
}

/// Runs every exchange of `config` in order, reusing the connection where possible.
///
/// `cookies_for` gives the Cookie field's value for a URL, if any, and `on_exchange` sees each
/// exchange as it completes, so a cookie jar stores what one response set before the next
/// request is built.
///
/// # Errors
/// The first exchange that fails.
pub async fn get(
    config: &GetConfig,
    mut cookies_for: impl FnMut(&str) -> Option<String>,
    mut on_exchange: impl FnMut(&Exchange),
) -> Result<Vec<Exchange>, ClientError> {
    let mut done = Vec::with_capacity(config.urls.len());
    let mut open: Option<Open> = None;
    let proxy = config.proxy.as_deref().map(Url::parse).transpose()?;
    // Built only when an https:// URL needs it, so plain http never reads a CA file.
    let mut connector: Option<protolab_transport::tls::TlsConnector> = None;
    for (i, text) in config.urls.iter().enumerate() {
        let url = Url::parse(text)?;
        let last = i + 1 == config.urls.len();
        let cookie = cookies_for(&format!(
            "{}://{}{}",
            url.scheme(),
            url.authority(),
            url.path
        ));
        if url.tls && connector.is_none() {
            connector = Some(protolab_transport::tls::TlsConnector::from(
                protolab_transport::tls::client_config(config.cacert.as_deref())?,
            ));
        }
        let head = build_request(config, &url, proxy.is_some(), last, cookie.as_deref())?;
        let exchange = tokio::time::timeout(
            config.timeout,
            exchange(
                config,
                &url,
                proxy.as_ref(),
                connector.as_ref(),
                head,
                &mut open,
            ),
        )
        .await
        .map_err(|_| ClientError::Timeout(config.timeout))??;
        on_exchange(&exchange);
        done.push(exchange);
    }
    Ok(done)
}

fn build_request(
    config: &GetConfig,
    url: &Url,
    via_proxy: bool,
    last: bool,
    cookie: Option<&str>,
) -> Result<RequestHead, ClientError> {
    let method = config
        .method
        .clone()
        .unwrap_or_else(|| if config.data.is_some() { "POST" } else { "GET" }.to_owned());
    let target = if via_proxy {
        format!("http://{}{}", url.authority(), url.path)
    } else {
        url.path.clone()
    };
    let mut head = RequestHead::new(&method, &target, Version::Http11);
    let mut fields: Vec<(String, String)> = vec![
        ("Host".into(), url.authority()),
        (
            "Connection".into(),
            if last { "close" } else { "keep-alive" }.into(),
        ),
        ("User-Agent".into(), USER_AGENT.into()),
        ("Accept-Language".into(), "en".into()),
        ("Accept".into(), "*/*".into()),
    ];
    if let Some(cookie) = cookie {
        fields.push(("Cookie".into(), cookie.to_owned()));
    }
    if let Some(data) = &config.data {
        fields.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        fields.push(("Content-Length".into(), data.len().to_string()));
    }
    for h in &config.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| ClientError::BadHeader(h.clone()))?;
        let (name, value) = (name.trim(), value.trim());
        let replaced = fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name));
        match (replaced, value.is_empty()) {
            (Some(i), true) => {
                fields.remove(i);
            }
            (Some(i), false) => fields[i] = (name.to_owned(), value.to_owned()),
            (None, true) => {}
            (None, false) => fields.push((name.to_owned(), value.to_owned())),
        }
    }
    for (n, v) in fields {
        let field = crate::wire::Field::new(Bytes::from(n.clone()), Bytes::from(v.clone()))
            .ok_or_else(|| ClientError::BadHeader(format!("{n}: {v}")))?;
        head.headers.push(field);
    }
    Ok(head)
}

/// Microseconds since `since`: times in JSON are integers with their unit in the key.
fn us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn resolve(config: &GetConfig, url: &Url) -> Result<SocketAddr, ClientError> {
    for r in &config.resolve {
        let mut parts = r.splitn(3, ':');
        let (Some(h), Some(p), Some(a)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ClientError::BadResolve(r.clone()));
        };
        let port: u16 = p.parse().map_err(|_| ClientError::BadResolve(r.clone()))?;
        if h.eq_ignore_ascii_case(url.host.trim_matches(['[', ']'])) && port == url.port {
            let ip: std::net::IpAddr = a
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| ClientError::BadResolve(r.clone()))?;
            return Ok(SocketAddr::new(ip, port));
        }
    }
    let host = url.host.trim_matches(['[', ']']);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, url.port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], url.port)));
    }
    let mut addrs = tokio::net::lookup_host((host, url.port))
        .await
        .map_err(|e| ClientError::Resolve(host.to_owned(), e))?;
    addrs.next().ok_or_else(|| {
        ClientError::Resolve(
            host.to_owned(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        )
    })
}

async fn exchange(
    config: &GetConfig,
    url: &Url,
    proxy: Option<&Url>,
    connector: Option<&protolab_transport::tls::TlsConnector>,
    head: RequestHead,
    open: &mut Option<Open>,
) -> Result<Exchange, ClientError> {
    if url.tls && proxy.is_some() {
        return Err(ClientError::BadUrl(
            format!("https://{}{}", url.authority(), url.path),
            "https through a proxy (CONNECT) is not spoken here",
        ));
    }
    let start = Instant::now();
    let mut timing = Timing::default();
    let remote = resolve(config, proxy.unwrap_or(url)).await?;
    timing.name_lookup_us = us(start);
    let key = (remote, url.tls);
    let reused = open.as_ref().is_some_and(|o| o.key == key);
    let mut conn = match open.take() {
        Some(o) if o.key == key => o,
        _ => {
            let tcp = protolab_transport::connect_tcp(remote, config.timeout)
                .await
                .map_err(|e| ClientError::Connect(remote, e))?;
            let stream: Box<dyn Io> = match (url.tls, connector) {
                (true, Some(connector)) => {
                    // The certificate must be valid for the URL's host (SNI for a name).
                    let host = url.host.trim_start_matches('[').trim_end_matches(']');
                    let tls_err =
                        |why: String| ClientError::Tls(format!("{}:{}", url.host, url.port), why);
                    let name = protolab_transport::tls::server_name(host).map_err(tls_err)?;
                    let s = protolab_transport::tls::connect(connector, name, tcp, config.timeout)
                        .await
                        .map_err(|e| tls_err(protolab_transport::tls::describe_error(&e)))?;
                    Box::new(s)
                }
                _ => Box::new(tcp),
            };
            Open {
                key,
                stream,
                leftover: BytesMut::new(),
            }
        }
    };
    timing.connect_us = us(start);
    let mut wire = head.to_bytes();
    let body = config.data.clone().unwrap_or_default();
    wire.extend_from_slice(&body);
    conn.stream.write_all(&wire).await?;
    conn.stream.flush().await?;
    timing.request_sent_us = us(start);

    let limits = Limits {
        max_body: config.max_body,
        ..Limits::default()
    };
    let mut reader = ClientConn::new(&head.method, limits);
    let mut input = std::mem::take(&mut conn.leftover);
    let mut interim = Vec::new();
    let mut response = Vec::new();
    let mut status = 0;
    let mut framing = crate::body::Framing::None;
    let mut received = BytesMut::new();
    let mut trailers = Headers::new();
    let mut set_cookies = Vec::new();
    let mut first_byte = !input.is_empty();
    if first_byte {
        timing.first_byte_us = us(start);
    }
    loop {
        let event = match reader.poll(&mut input)? {
            Some(ev) => Some(ev),
            None => {
                if input.capacity() - input.len() < 4096 {
                    input.reserve(64 * 1024);
                }
                let n = conn.stream.read_buf(&mut input).await?;
                if !first_byte && n > 0 {
                    first_byte = true;
                    timing.first_byte_us = us(start);
                }
                if n == 0 {
                    reader.eof()?
                } else {
                    continue;
                }
            }
        };
        match event {
            Some(ClientEvent::Interim(h)) => interim.push(h.status_line()),
            Some(ClientEvent::Response {
                head: h,
                framing: f,
                ..
            }) => {
                status = h.status;
                framing = f;
                response.push(h.status_line());
                response.extend(h.headers.lines());
                set_cookies.extend(
                    h.headers
                        .get_all("set-cookie")
                        .map(|v| String::from_utf8_lossy(v).into_owned()),
                );
            }
            Some(ClientEvent::Body(b)) => received.extend_from_slice(&b),
            Some(ClientEvent::End(t)) => {
                trailers = t;
                break;
            }
            None => break,
        }
    }
    timing.done_us = us(start);
    let reusable = !reader.must_close && !head.headers.has_token("connection", "close");
    if reusable {
        conn.leftover = input;
        *open = Some(conn);
    }
    let mut request = vec![head.request_line()];
    request.extend(head.headers.lines());
    Ok(Exchange {
        url: format!("{}://{}{}", url.scheme(), url.authority(), url.path),
        remote,
        reused,
        request,
        request_body_bytes: body.len(),
        interim,
        response,
        status,
        framing,
        body_bytes: received.len() as u64,
        trailers: trailers.lines(),
        timing,
        body: received.freeze(),
        set_cookies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://example.test:8080/a?b=c").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("example.test", 8080, "/a?b=c")
        );
        assert_eq!(u.authority(), "example.test:8080");
        let u = Url::parse("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 80));
        assert_eq!(Url::parse("127.0.0.1:9").unwrap().path, "/");
        assert_eq!(Url::parse("http://h?x").unwrap().path, "/?x");
        let https = Url::parse("https://example.test/a").unwrap();
        assert!(https.tls);
        assert_eq!(https.port, 443);
        assert_eq!(https.authority(), "example.test");
        assert!(Url::parse("ftp://example.test/").is_err());
        assert!(Url::parse("http://h/a b").is_err());
    }

    #[test]
    fn default_request_is_the_textbook_one() {
        let config = GetConfig {
            headers: vec![
                "Accept-Language: fr".into(),
                "User-Agent:".into(),
                "X-Extra: 1".into(),
            ],
            ..GetConfig::default()
        };
        let url = Url::parse("http://www.someschool.edu/somedir/page.html").unwrap();
        let head = build_request(&config, &url, false, true, None).unwrap();
        let text = String::from_utf8(head.to_bytes()).unwrap();
        assert_eq!(
            text,
            "GET /somedir/page.html HTTP/1.1\r\nHost: www.someschool.edu\r\nConnection: close\r\n\
             Accept-Language: fr\r\nAccept: */*\r\nX-Extra: 1\r\n\r\n"
        );
        let proxied = build_request(&config, &url, true, false, None).unwrap();
        assert_eq!(
            proxied.target,
            "http://www.someschool.edu/somedir/page.html"
        );
        assert!(
            build_request(
                &GetConfig {
                    headers: vec!["X: a\r\nInjected: 1".into()],
                    ..GetConfig::default()
                },
                &url,
                false,
                true,
                None
            )
            .is_err()
        );
    }
}
