//! What `http serve` answers: files under `--root` and the lab's endpoints.
//!
//! Files get validators (a strong ETag from size and modification time, Last-Modified),
//! conditional GET (304), single byte ranges (206, 416) and HEAD. Small files are kept
//! pre-rendered (the fields after Date, and the body) in a cache capped in bytes, so a
//! keep-alive GET costs one parse, one lookup and one write.
//!
//! The lab endpoints, in the manner of httpbin:
//! - `/echo`: the request message as received, as text, or as JSON with `Accept: application/json`;
//! - `/cookies/set?name=value`: Set-Cookie for each pair; `/cookies`: what the server knows about
//!   you, which is only what your Cookie field says, including a visit counter it keeps there;
//! - `/cache/SECONDS`: a response fresh for that long (Cache-Control max-age) with an ETag;
//! - `/status/CODE`, `/delay/DURATION` (capped), `/bytes/N` (capped), `/stream/N` (chunked).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};

use crate::body::{encode_chunk, encode_last_chunk};
use crate::conn::Request;
use crate::wire::{Headers, reason};

/// What the origin serves and its caps.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Serve files from this folder (index.html for folders); `None` serves only the endpoints.
    pub root: Option<PathBuf>,
    /// The longest `/delay/DURATION` honoured.
    pub max_delay: Duration,
    /// The largest `/bytes/N` served.
    pub max_bytes: usize,
    /// The most chunks `/stream/N` sends.
    pub max_stream: usize,
    /// Files up to this size are cached pre-rendered.
    pub cache_file_max: usize,
    /// Bytes of pre-rendered files kept at most.
    pub cache_total_max: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            root: None,
            max_delay: Duration::from_secs(10),
            max_bytes: 10 * 1024 * 1024,
            max_stream: 100,
            cache_file_max: 1024 * 1024,
            cache_total_max: 64 * 1024 * 1024,
        }
    }
}

/// A response ready to write: the status, the fields after Date (each line with its CRLF, no
/// blank line) and the body bytes as they go on the wire (already chunked if chunked).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub fields: Bytes,
    pub body: Body,
    /// Wait this long before answering (`/delay`).
    pub delay: Option<Duration>,
}

/// A reply's body.
#[derive(Debug, Clone)]
pub enum Body {
    /// These bytes (empty for no body), sent after the head unless the request was HEAD.
    Bytes(Bytes),
    /// A byte range of a file too large to cache: read and sent in pieces.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Reply {
    fn new(status: u16, fields: Headers, body: Bytes) -> Self {
        let mut out = BytesMut::with_capacity(256);
        fields.emit(&mut out);
        Self {
            status,
            fields: out.freeze(),
            body: Body::Bytes(body),
            delay: None,
        }
    }

    /// A short text reply: `text/plain` with Content-Length.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        let body = Bytes::from(text.into());
        let mut h = Headers::new();
        h.append("Content-Type", "text/plain; charset=utf-8");
        h.append("Content-Length", body.len().to_string());
        Self::new(status, h, body)
    }

    /// A reply to a refused request (its status from the error), which closes the connection.
    pub fn error(status: u16, why: &str) -> Self {
        Self::text(status, format!("{status} {}: {why}\n", reason(status)))
    }

    fn json(status: u16, value: &serde_json::Value, mut extra: Headers) -> Self {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        extra.append("Content-Type", "application/json");
        extra.append("Content-Length", text.len().to_string());
        Self::new(status, extra, Bytes::from(text))
    }
}

/// A file kept pre-rendered.
#[derive(Debug)]
struct Cached {
    etag: String,
    last_modified: String,
    modified: SystemTime,
    len: u64,
    content_type: &'static str,
    /// The 200 response's fields after Date.
    fields_200: Bytes,
    body: Bytes,
    /// When the file's metadata was last compared with the disk.
    checked: Instant,
}

/// The origin: configuration, the file cache and counters.
#[derive(Debug)]
pub struct Origin {
    config: OriginConfig,
    root: Option<PathBuf>,
    files: Mutex<FileCache>,
    /// Responses served by `/cache/SECONDS`, shown in its body so a cache's hits are visible.
    generated: AtomicU64,
}

#[derive(Debug, Default)]
struct FileCache {
    entries: HashMap<PathBuf, std::sync::Arc<Cached>>,
    bytes: usize,
}

impl Origin {
    /// An origin serving `config`.
    pub fn new(config: OriginConfig) -> Self {
        let root = config
            .root
            .as_ref()
            .map(|r| r.canonicalize().unwrap_or_else(|_| r.clone()));
        Self {
            config,
            root,
            files: Mutex::new(FileCache::default()),
            generated: AtomicU64::new(0),
        }
    }

    /// The reply to a complete request and its body.
    pub fn respond(&self, req: &Request, body: &[u8]) -> Reply {
        let (path, query) = split_target(&req.head.target);
        let method = req.head.method.as_str();
        if path == "/echo" {
            return echo(req, body);
        }
        if path == "/cookies" {
            return cookies(req);
        }
        if path == "/cookies/set" {
            return set_cookies(query);
        }
        if let Some(rest) = path.strip_prefix("/status/") {
            return status(rest);
        }
        if let Some(rest) = path.strip_prefix("/delay/") {
            return self.delay(rest);
        }
        if let Some(rest) = path.strip_prefix("/bytes/") {
            return self.bytes(rest);
        }
        if let Some(rest) = path.strip_prefix("/stream/") {
            return self.stream(rest);
        }
        if let Some(rest) = path.strip_prefix("/cache/") {
            return self.cache(rest, req);
        }
        if method != "GET" && method != "HEAD" {
            let mut r = Reply::text(405, "405 Method Not Allowed: files take GET and HEAD\n");
            let mut extra = BytesMut::from(&r.fields[..]);
            extra.put_slice(b"Allow: GET, HEAD\r\n");
            r.fields = extra.freeze();
            return r;
        }
        match &self.root {
            Some(root) => self.file(root, path, req),
            None if path == "/" => Reply::text(200, INDEX),
            None => Reply::error(404, "no such endpoint (and no --root to serve files from)"),
        }
    }

    fn delay(&self, rest: &str) -> Reply {
        let wanted = match rest.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs.min(1e6)),
            _ => match humantime::parse_duration(rest) {
                Ok(d) => d,
                Err(_) => return Reply::error(400, "write a delay like /delay/2 or /delay/250ms"),
            },
        };
        let d = wanted.min(self.config.max_delay);
        let mut r = Reply::text(200, format!("delayed {} ms\n", d.as_millis()));
        r.delay = Some(d);
        r
    }

    fn bytes(&self, rest: &str) -> Reply {
        let Ok(n) = rest.parse::<usize>() else {
            return Reply::error(400, "write a size like /bytes/1024");
        };
        let n = n.min(self.config.max_bytes);
        let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        let mut h = Headers::new();
        h.append("Content-Type", "application/octet-stream");
        h.append("Content-Length", n.to_string());
        Reply::new(200, h, Bytes::from(body))
    }

    fn stream(&self, rest: &str) -> Reply {
        let Ok(n) = rest.parse::<usize>() else {
            return Reply::error(400, "write a count like /stream/5");
        };
        let n = n.min(self.config.max_stream);
        let mut wire = BytesMut::new();
        for i in 0..n {
            encode_chunk(format!("{{\"id\": {i}}}\n").as_bytes(), &mut wire);
        }
        let mut trailers = Headers::new();
        trailers.append("X-Chunks", n.to_string());
        encode_last_chunk(&trailers, &mut wire);
        let mut h = Headers::new();
        h.append("Content-Type", "application/x-ndjson");
        h.append("Transfer-Encoding", "chunked");
        h.append("Trailer", "X-Chunks");
        Reply::new(200, h, wire.freeze())
    }

    fn cache(&self, rest: &str, req: &Request) -> Reply {
        let Ok(secs) = rest.parse::<u32>() else {
            return Reply::error(400, "write a freshness lifetime like /cache/60");
        };
        let etag = format!("\"cache-{secs}\"");
        let mut h = Headers::new();
        h.append("Cache-Control", format!("public, max-age={secs}"));
        h.append("ETag", etag.clone());
        if etag_matches(req.head.headers.get("if-none-match"), &etag) {
            return Reply::new(304, h, Bytes::new());
        }
        let n = self.generated.fetch_add(1, Ordering::Relaxed) + 1;
        let body =
            format!("fresh for {secs} s; the origin generated this response as number {n}\n");
        h.append("Content-Type", "text/plain; charset=utf-8");
        h.append("Content-Length", body.len().to_string());
        Reply::new(200, h, Bytes::from(body))
    }

    fn file(&self, root: &Path, path: &str, req: &Request) -> Reply {
        let Some(rel) = safe_relative(path) else {
            return Reply::error(404, "no such file");
        };
        let full = root.join(&rel);
        let entry = match self.cached(&full) {
            Ok(Some(e)) => e,
            Ok(None) => return self.large_file(&full, req),
            Err(_) => return Reply::error(404, "no such file"),
        };
        let headers = &req.head.headers;
        // If-None-Match wins over If-Modified-Since (RFC 9110 section 13.2.2).
        if let Some(inm) = headers.get("if-none-match") {
            if etag_matches(Some(inm), &entry.etag) {
                return not_modified(&entry.etag, &entry.last_modified);
            }
        } else if let Some(ims) = headers.get_str("if-modified-since")
            && let Ok(since) = httpdate::parse_http_date(ims)
            && truncate_secs(entry.modified) <= since
        {
            return not_modified(&entry.etag, &entry.last_modified);
        }
        if let Some(range) = headers.get_str("range")
            && if_range_allows(headers, &entry.etag, entry.modified)
        {
            return match parse_range(range, entry.len) {
                RangeAnswer::Ignore => full_file(&entry),
                RangeAnswer::Unsatisfiable => {
                    let mut h = Headers::new();
                    h.append("Content-Range", format!("bytes */{}", entry.len));
                    h.append("Content-Length", "0");
                    Reply::new(416, h, Bytes::new())
                }
                RangeAnswer::Range(start, end) => {
                    let mut h = file_fields(&entry.etag, &entry.last_modified, entry.content_type);
                    h.append(
                        "Content-Range",
                        format!("bytes {start}-{end}/{}", entry.len),
                    );
                    h.append("Content-Length", (end - start + 1).to_string());
                    let body = entry.body.slice(start as usize..=end as usize);
                    Reply::new(206, h, body)
                }
            };
        }
        full_file(&entry)
    }

    /// The pre-rendered entry for `path`, refreshed when the file changed; `Ok(None)` for a file
    /// too large to cache.
    fn cached(&self, path: &Path) -> std::io::Result<Option<std::sync::Arc<Cached>>> {
        let now = Instant::now();
        {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = files.entries.get(path)
                && now.duration_since(e.checked) < Duration::from_secs(1)
            {
                return Ok(Some(e.clone()));
            }
        }
        let meta = std::fs::metadata(path)?;
        if meta.is_dir() && !path.ends_with("index.html") {
            return self.cached(&path.join("index.html"));
        }
        if !meta.is_file() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let len = meta.len();
        if len > self.config.cache_file_max as u64 {
            return Ok(None);
        }
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = files.entries.get(path)
            && e.modified == modified
            && e.len == len
        {
            let mut fresh = Cached::clone_shallow(e);
            fresh.checked = now;
            let fresh = std::sync::Arc::new(fresh);
            files.entries.insert(path.to_path_buf(), fresh.clone());
            return Ok(Some(fresh));
        }
        drop(files);
        let body = Bytes::from(std::fs::read(path)?);
        let etag = etag_for(body.len() as u64, modified);
        let last_modified = httpdate::fmt_http_date(modified);
        let content_type = content_type(path);
        let mut h = file_fields(&etag, &last_modified, content_type);
        h.append("Content-Length", body.len().to_string());
        let mut fields = BytesMut::new();
        h.emit(&mut fields);
        let entry = std::sync::Arc::new(Cached {
            etag,
            last_modified,
            modified,
            len: body.len() as u64,
            content_type,
            fields_200: fields.freeze(),
            body,
            checked: now,
        });
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let size = entry.body.len() + entry.fields_200.len();
        if let Some(old) = files.entries.remove(path) {
            files.bytes -= old.body.len() + old.fields_200.len();
        }
        if files.bytes + size > self.config.cache_total_max {
            // Full: start over rather than track recency; the files are read again on demand.
            files.entries.clear();
            files.bytes = 0;
        }
        files.bytes += size;
        files.entries.insert(path.to_path_buf(), entry.clone());
        Ok(Some(entry))
    }

    fn large_file(&self, path: &Path, req: &Request) -> Reply {
        if path.is_dir() && !path.ends_with("index.html") {
            return self.large_file(&path.join("index.html"), req);
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return Reply::error(404, "no such file");
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let len = meta.len();
        let etag = etag_for(len, modified);
        let last_modified = httpdate::fmt_http_date(modified);
        let headers = &req.head.headers;
        if etag_matches(headers.get("if-none-match"), &etag) {
            return not_modified(&etag, &last_modified);
        }
        let mut h = file_fields(&etag, &last_modified, content_type(path));
        let (status, offset, n) = match headers
            .get_str("range")
            .filter(|_| if_range_allows(headers, &etag, modified))
            .map(|r| parse_range(r, len))
        {
            Some(RangeAnswer::Range(s, e)) => {
                h.append("Content-Range", format!("bytes {s}-{e}/{len}"));
                (206, s, e - s + 1)
            }
            Some(RangeAnswer::Unsatisfiable) => {
                let mut h = Headers::new();
                h.append("Content-Range", format!("bytes */{len}"));
                h.append("Content-Length", "0");
                return Reply::new(416, h, Bytes::new());
            }
            _ => (200, 0, len),
        };
        h.append("Content-Length", n.to_string());
        let mut r = Reply::new(status, h, Bytes::new());
        r.body = Body::File {
            path: path.to_path_buf(),
            offset,
            len: n,
        };
        r
    }
}

impl Cached {
    fn clone_shallow(e: &Cached) -> Cached {
        Cached {
            etag: e.etag.clone(),
            last_modified: e.last_modified.clone(),
            modified: e.modified,
            len: e.len,
            content_type: e.content_type,
            fields_200: e.fields_200.clone(),
            body: e.body.clone(),
            checked: e.checked,
        }
    }
}

const INDEX: &str = "protolab http origin\n\n\
/echo               the request message as received (JSON with Accept: application/json)\n\
/cookies            what the server knows about you: only your Cookie field\n\
/cookies/set?a=b    Set-Cookie: a=b\n\
/cache/SECONDS      Cache-Control: max-age=SECONDS with an ETag\n\
/status/CODE        that status code\n\
/delay/DURATION     answer after a pause (capped)\n\
/bytes/N            N bytes (capped)\n\
/stream/N           N chunks of a chunked body\n";

fn full_file(entry: &Cached) -> Reply {
    Reply {
        status: 200,
        fields: entry.fields_200.clone(),
        body: Body::Bytes(entry.body.clone()),
        delay: None,
    }
}

fn file_fields(etag: &str, last_modified: &str, content_type: &str) -> Headers {
    let mut h = Headers::new();
    h.append("Content-Type", content_type.to_owned());
    h.append("ETag", etag.to_owned());
    h.append("Last-Modified", last_modified.to_owned());
    h.append("Accept-Ranges", "bytes");
    h
}

fn not_modified(etag: &str, last_modified: &str) -> Reply {
    let mut h = Headers::new();
    h.append("ETag", etag.to_owned());
    h.append("Last-Modified", last_modified.to_owned());
    Reply::new(304, h, Bytes::new())
}

fn etag_for(len: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("\"{len:x}-{nanos:x}\"")
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// If-None-Match against an ETag, with the weak comparison RFC 9110 section 13.1.2 asks for.
fn etag_matches(header: Option<&[u8]>, etag: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    let want = etag.trim_start_matches("W/").as_bytes();
    header.split(|&b| b == b',').any(|t| {
        let t = crate::wire::trim_ows(t);
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == want
    })
}

/// If-Range: the range applies only when the validator still matches (strong comparison).
fn if_range_allows(headers: &Headers, etag: &str, modified: SystemTime) -> bool {
    match headers.get("if-range") {
        None => true,
        Some(v) if v.starts_with(b"\"") => v == etag.as_bytes(),
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .is_some_and(|d| d == truncate_secs(modified)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// Not a single byte range we serve: send the whole representation.
    Ignore,
    Unsatisfiable,
    /// First and last byte, inclusive.
    Range(u64, u64),
}

/// One `bytes=` range (RFC 9110 section 14.1.2); several ranges are answered with 200.
fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), num(first), num(last)) {
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Range(len.saturating_sub(suffix), len - 1)
            }
        }
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                return RangeAnswer::Ignore;
            }
            RangeAnswer::Range(start, end)
        }
        _ => RangeAnswer::Ignore,
    }
}

/// The path and query of a request-target (absolute-form is reduced to its path).
pub fn split_target(target: &str) -> (&str, &str) {
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    match path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path, ""),
    }
}

/// A path below the root: percent-decoded, without `..`, NUL or absolute components.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    if decoded.contains('\0') {
        return None;
    }
    let mut rel = PathBuf::new();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => rel.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(rel)
}

/// `%XX` decoding; `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn echo(req: &Request, body: &[u8]) -> Reply {
    let wants_json = req.head.headers.get("accept").is_some_and(|a| {
        a.windows(16)
            .any(|w| w.eq_ignore_ascii_case(b"application/json"))
    });
    if wants_json {
        let headers: Vec<serde_json::Value> = req
            .head
            .headers
            .iter()
            .map(|f| serde_json::json!([f.name(), f.value_lossy()]))
            .collect();
        let value = serde_json::json!({
            "method": req.head.method,
            "target": req.head.target,
            "version": req.head.version.as_str(),
            "headers": headers,
            "body": String::from_utf8_lossy(body),
            "body_bytes": body.len(),
        });
        return Reply::json(200, &value, Headers::new());
    }
    let mut text = Vec::with_capacity(req.raw_head.len() + body.len());
    text.extend_from_slice(&req.raw_head);
    text.extend_from_slice(body);
    let mut h = Headers::new();
    h.append("Content-Type", "message/http");
    h.append("Content-Length", text.len().to_string());
    Reply::new(200, h, Bytes::from(text))
}

/// The cookies a Cookie field carries, in order (RFC 6265 section 5.4 syntax).
pub fn parse_cookie_header(headers: &Headers) -> Vec<(String, String)> {
    headers
        .get_all("cookie")
        .flat_map(|v| v.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = String::from_utf8_lossy(crate::wire::trim_ows(pair)).into_owned();
            let (n, v) = pair.split_once('=')?;
            let n = n.trim();
            (!n.is_empty()).then(|| (n.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn cookies(req: &Request) -> Reply {
    let jar = parse_cookie_header(&req.head.headers);
    let visits = jar
        .iter()
        .find(|(n, _)| n == "visits")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let mut h = Headers::new();
    // The counter lives in the client's cookie: the server keeps nothing between requests.
    h.append(
        "Set-Cookie",
        format!("visits={visits}; Path=/; SameSite=Lax"),
    );
    h.append("Cache-Control", "no-store");
    let others: Vec<_> = jar.iter().filter(|(n, _)| n != "visits").collect();
    if req.head.headers.get("accept").is_some_and(|a| {
        a.windows(16)
            .any(|w| w.eq_ignore_ascii_case(b"application/json"))
    }) {
        let cookies: serde_json::Map<String, serde_json::Value> = jar
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
            .collect();
        return Reply::json(
            200,
            &serde_json::json!({"cookies": cookies, "visit": visits}),
            h,
        );
    }
    let mut text = String::new();
    if jar.is_empty() {
        text.push_str(
            "You sent no Cookie field, so this server does not know you: HTTP is stateless.\n",
        );
    } else if others.is_empty() {
        text.push_str("Your Cookie field carries only the visit counter.\n");
    } else {
        text.push_str("Your Cookie field says:\n");
        for (n, v) in &others {
            text.push_str(&format!("  {n} = {v}\n"));
        }
    }
    text.push_str(&format!(
        "This is visit {visits}, as far as your cookies tell (Set-Cookie: visits={visits}).\n"
    ));
    h.append("Content-Type", "text/plain; charset=utf-8");
    h.append("Content-Length", text.len().to_string());
    Reply::new(200, h, Bytes::from(text))
}

fn set_cookies(query: &str) -> Reply {
    let mut h = Headers::new();
    let mut names = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(n), Some(v)) = (percent_decode(n), percent_decode(v)) else {
            return Reply::error(400, "bad percent-encoding in the query");
        };
        let ok_name = !n.is_empty() && n.bytes().all(crate::wire::is_tchar);
        let ok_value = v
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
        if !ok_name || !ok_value {
            return Reply::error(
                400,
                "a cookie name is a token; a value has no spaces, quotes, commas or semicolons",
            );
        }
        h.append("Set-Cookie", format!("{n}={v}; Path=/"));
        names.push(n);
    }
    let text = format!("set: {}\n", names.join(", "));
    h.append("Cache-Control", "no-store");
    h.append("Content-Type", "text/plain; charset=utf-8");
    h.append("Content-Length", text.len().to_string());
    Reply::new(200, h, Bytes::from(text))
}

fn status(rest: &str) -> Reply {
    match rest.parse::<u16>() {
        Ok(code @ 200..=599) => {
            if code == 204 || code == 304 {
                Reply::new(code, Headers::new(), Bytes::new())
            } else {
                Reply::text(code, format!("{code} {}\n", reason(code)))
            }
        }
        _ => Reply::error(400, "write a status from 200 to 599, like /status/418"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAnswer::Range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAnswer::Range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAnswer::Range(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), RangeAnswer::Range(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAnswer::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeAnswer::Ignore);
        assert_eq!(parse_range("bytes=9-3", 100), RangeAnswer::Ignore);
    }

    #[test]
    fn paths_stay_under_the_root() {
        assert_eq!(safe_relative("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(safe_relative("/a/../../etc/passwd"), None);
        assert_eq!(safe_relative("/%2e%2e/etc/passwd"), None);
        assert_eq!(safe_relative("/a%00b"), None);
    }

    #[test]
    fn etags_compare_weakly_for_if_none_match() {
        assert!(etag_matches(Some(b"W/\"x\", \"y\""), "\"y\""));
        assert!(etag_matches(Some(b"W/\"x\""), "\"x\""));
        assert!(etag_matches(Some(b"*"), "\"x\""));
        assert!(!etag_matches(Some(b"\"z\""), "\"x\""));
    }
}
