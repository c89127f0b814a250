//! Message heads (RFC 9112 sections 2 to 5): parsed with `httparse`, checked where the RFC says
//! MUST, and emitted byte for byte.
//!
//! A head is found in the input with [`HeadScanner`], which also enforces the limits on the
//! request line (414), each field line and the whole head (431) while the head is still arriving,
//! so a client can never make the server buffer more than [`Limits::max_head`] bytes of it. The
//! complete head is then parsed by [`parse_request`] or [`parse_response`]. Both are strict: line
//! ends are CRLF only, a bare CR or LF anywhere in the head, obs-fold, whitespace before a colon
//! and a field name that is not a token are refused, because each of them is a way to make two
//! parsers disagree on where one message ends (request smuggling).
//!
//! The values parsed point into the received bytes ([`Bytes`] slices), so a head costs one
//! allocation for its field list and two small ones for the method and target.

use std::fmt;

use bytes::{BufMut, Bytes};

/// Caps on what the parser buffers and accepts, in bytes and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line (method, target, version), without its CRLF: longer gets 414.
    pub max_request_line: usize,
    /// One field line: longer gets 431.
    pub max_field_line: usize,
    /// Field lines in a head (or in a trailer section): more get 431.
    pub max_fields: usize,
    /// The whole head with its final blank line: larger gets 431.
    pub max_head: usize,
    /// A message body, decoded: larger gets 413.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_line: 8 * 1024,
            max_field_line: 8 * 1024,
            max_fields: 100,
            max_head: 64 * 1024,
            max_body: 16 * 1024 * 1024,
        }
    }
}

/// The most field lines any [`Limits`] may allow (the parser's field array lives on the stack).
pub const MAX_FIELDS_CAP: usize = 256;

/// Why a head was refused, with the status code the RFC names for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The request line is longer than [`Limits::max_request_line`].
    #[error("request line longer than {0} bytes")]
    UriTooLong(usize),
    /// A field line is longer than [`Limits::max_field_line`].
    #[error("field line longer than {0} bytes")]
    FieldTooLong(usize),
    /// More field lines than [`Limits::max_fields`].
    #[error("more than {0} field lines")]
    TooManyFields(usize),
    /// The head is larger than [`Limits::max_head`].
    #[error("head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// A line ends in a bare LF, or a CR stands alone.
    #[error("bare CR or LF in the head: lines end with CRLF only")]
    BareCrOrLf,
    /// A field line starts with whitespace: obs-fold, refused by RFC 9112 section 5.2.
    #[error("obsolete line folding (a field line starting with whitespace)")]
    ObsFold,
    /// The start line is not `METHOD SP target SP HTTP/1.x` (or `HTTP/1.x SP code SP reason`).
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A field name is empty or not a token, or whitespace stands before its colon.
    #[error("malformed field name (not a token, or whitespace before the colon)")]
    FieldName,
    /// A field value holds a control character.
    #[error("control character in a field value")]
    FieldValue,
    /// An HTTP version other than 1.0 and 1.1.
    #[error("unsupported HTTP version")]
    Version,
}

impl HeadError {
    /// The status code a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::UriTooLong(_) => 414,
            HeadError::FieldTooLong(_)
            | HeadError::TooManyFields(_)
            | HeadError::HeadTooLarge(_) => 431,
            HeadError::Version => 505,
            _ => 400,
        }
    }
}

/// An HTTP/1 minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Version {
    #[serde(rename = "HTTP/1.0")]
    Http10,
    #[serde(rename = "HTTP/1.1")]
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field line: a name (a token, case kept as received) and a value without surrounding
/// whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    name: Bytes,
    /// The value's octets: visible ASCII, spaces, tabs and obs-text (octets 0x80 to 0xFF).
    pub value: Bytes,
}

impl Field {
    /// A field from a name and a value; `None` when the name is not a token or the value holds
    /// a control character or CR/LF (which would let a value inject a header line).
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Option<Field> {
        let (name, value) = (name.into(), value.into());
        let name_ok = !name.is_empty() && name.iter().all(|&b| is_tchar(b));
        let value_ok = value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        (name_ok && value_ok).then_some(Field { name, value })
    }

    /// The name as received (always ASCII).
    pub fn name(&self) -> &str {
        // Field names are checked to be tokens, which are ASCII.
        std::str::from_utf8(&self.name).unwrap_or("")
    }

    /// The value as text, with obs-text octets shown as U+FFFD.
    pub fn value_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.value)
    }
}

/// The field lines of a head or trailer section, in order; names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Field>,
}

impl Headers {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every field, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Field> {
        self.fields.iter()
    }

    /// How many field lines.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True with no field lines.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &f.value[..])
    }

    /// The value of the first field named `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| &f.value[..])
    }

    /// How many fields are named `name`.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// True when a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The elements of the comma-separated lists in every field named `name` (RFC 9110 section
    /// 5.6.1), trimmed, empty elements skipped.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim_ows)
            .filter(|e| !e.is_empty())
    }

    /// True when the list in field `name` holds `token` (case-insensitive), as in
    /// `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name)
            .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
    }

    /// Adds a field line at the end.
    ///
    /// # Panics
    /// When the name is not a token or the value holds CR, LF or another control character:
    /// those are programming errors, never network input (which goes through the parser).
    pub fn append(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        let field = Field::new(name, value).expect("a token name and a value without CTLs");
        self.fields.push(field);
    }

    /// Adds a checked field.
    pub fn push(&mut self, field: Field) {
        self.fields.push(field);
    }

    /// Replaces every field named `name` with one field (added at the end).
    ///
    /// # Panics
    /// As [`Headers::append`].
    pub fn insert(&mut self, name: &str, value: impl Into<Bytes>) {
        self.remove(name);
        self.append(Bytes::copy_from_slice(name.as_bytes()), value);
    }

    /// Removes every field named `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields
            .retain(|f| !f.name.eq_ignore_ascii_case(name.as_bytes()));
        before - self.fields.len()
    }

    /// Writes the field lines, each ending in CRLF.
    pub fn emit(&self, out: &mut impl BufMut) {
        for f in &self.fields {
            out.put_slice(&f.name);
            out.put_slice(b": ");
            out.put_slice(&f.value);
            out.put_slice(b"\r\n");
        }
    }

    /// The field lines as text, one per line, as they are emitted (without CRLF).
    pub fn lines(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.value_lossy()))
            .collect()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Field;
    type IntoIter = std::slice::Iter<'a, Field>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// A request's head: its request line and field lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, a token, case-sensitive (`GET`, `HEAD`, `POST`...).
    pub method: String,
    /// The request-target as sent: origin-form `/path?query`, absolute-form for proxies,
    /// authority-form for CONNECT, or `*`.
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    /// A request with no fields yet.
    pub fn new(method: &str, target: &str, version: Version) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            version,
            headers: Headers::new(),
        }
    }

    /// The request line, without CRLF.
    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }

    /// Writes the head, through its final blank line.
    pub fn emit(&self, out: &mut impl BufMut) {
        out.put_slice(self.method.as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.target.as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.version.as_str().as_bytes());
        out.put_slice(b"\r\n");
        self.headers.emit(out);
        out.put_slice(b"\r\n");
    }

    /// The head as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.emit(&mut out);
        out
    }
}

/// A response's head: its status line and field lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    /// The status code, 100 to 999 as received (a server sends 100 to 599).
    pub status: u16,
    /// The reason phrase; clients ignore it (RFC 9112 section 4).
    pub reason: String,
    pub headers: Headers,
}

impl ResponseHead {
    /// An HTTP/1.1 response with the usual reason phrase and no fields yet.
    pub fn new(status: u16) -> Self {
        Self {
            version: Version::Http11,
            status,
            reason: reason(status).to_owned(),
            headers: Headers::new(),
        }
    }

    /// The status line, without CRLF.
    pub fn status_line(&self) -> String {
        format!("{} {} {}", self.version, self.status, self.reason)
    }

    /// Writes the head, through its final blank line.
    pub fn emit(&self, out: &mut impl BufMut) {
        out.put_slice(self.version.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(&itoa3(self.status));
        out.put_u8(b' ');
        out.put_slice(self.reason.as_bytes());
        out.put_slice(b"\r\n");
        self.headers.emit(out);
        out.put_slice(b"\r\n");
    }

    /// The head as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.emit(&mut out);
        out
    }
}

fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

/// Finds the end of a head in arriving input, checking the limits on the way.
///
/// The scanner remembers where it stopped, so a head arriving one byte at a time is still scanned
/// only once. Empty lines before a request line are allowed (RFC 9112 section 2.2) and counted in
/// the head. Call [`HeadScanner::reset`] once a head has been taken out of the buffer.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes of the buffer already looked at.
    pos: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// True once the start line (request or status line) has been seen whole.
    after_start_line: bool,
}

impl HeadScanner {
    /// A scanner at the start of a head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the previous head: the next scan starts at the buffer's beginning.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// True when nothing but blank lines has arrived of this head yet.
    pub fn is_idle(&self, buf: &[u8]) -> bool {
        !self.after_start_line && buf[self.line_start.min(buf.len())..].is_empty()
    }

    /// Scans `buf` (the same buffer, grown since the last call) and returns the head's length
    /// through its blank line once it is complete.
    ///
    /// # Errors
    /// [`HeadError::UriTooLong`] (the first line; also for a status line),
    /// [`HeadError::FieldTooLong`], [`HeadError::HeadTooLarge`], and [`HeadError::BareCrOrLf`]
    /// for a LF without its CR.
    pub fn scan(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HeadError> {
        // The outcome must not depend on how the input was cut into reads: every limit is
        // judged as if the bytes came one at a time, and the first limit passed, in byte order,
        // is the one reported.
        loop {
            let (limit, too_long) = if self.after_start_line {
                let l = limits.max_field_line;
                (l, HeadError::FieldTooLong(l))
            } else {
                let l = limits.max_request_line;
                (l, HeadError::UriTooLong(l))
            };
            let lf = buf[self.pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|off| self.pos + off);
            // This line's bytes before its LF (or all that has arrived of it).
            let end = lf.unwrap_or(buf.len());
            // The byte at which the line passes its limit (its CR may follow the limit, hence
            // the + 1), and the byte at which the head passes its own.
            let long_at = self.line_start + limit + 1;
            let large_at = limits.max_head;
            if long_at < end && long_at <= large_at {
                return Err(too_long);
            }
            if large_at < end {
                return Err(HeadError::HeadTooLarge(limits.max_head));
            }
            let Some(lf) = lf else {
                self.pos = buf.len();
                return Ok(None);
            };
            if lf == 0 || buf[lf - 1] != b'\r' {
                return Err(HeadError::BareCrOrLf);
            }
            let line_len = lf - 1 - self.line_start;
            self.pos = lf + 1;
            self.line_start = lf + 1;
            if lf + 1 > limits.max_head {
                return Err(HeadError::HeadTooLarge(limits.max_head));
            }
            if !self.after_start_line {
                // An empty line before the start line is skipped (its bytes count in max_head).
                self.after_start_line = line_len > 0;
            } else if line_len == 0 {
                return Ok(Some(lf + 1));
            }
        }
    }
}

/// Parses a complete request head (as found by [`HeadScanner`]).
///
/// # Errors
/// A [`HeadError`] naming the first defect.
pub fn parse_request(head: &Bytes, limits: &Limits) -> Result<RequestHead, HeadError> {
    check_line_ends(head)?;
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS_CAP];
    let max = limits.max_fields.min(MAX_FIELDS_CAP);
    let mut req = httparse::Request::new(&mut slots[..max]);
    let status = req.parse(head).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyFields(max),
        httparse::Error::Version => HeadError::Version,
        httparse::Error::HeaderName => header_name_or_fold(head),
        httparse::Error::HeaderValue => HeadError::FieldValue,
        httparse::Error::Token => HeadError::StartLine("the method or target is not valid"),
        _ => HeadError::StartLine("not METHOD SP target SP HTTP-version"),
    })?;
    if !status.is_complete() {
        return Err(HeadError::StartLine("incomplete head"));
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let version = if req.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    let headers = collect_fields(head, req.headers);
    Ok(RequestHead {
        method,
        target,
        version,
        headers,
    })
}

/// Parses a complete response head (as found by [`HeadScanner`]).
///
/// # Errors
/// A [`HeadError`] naming the first defect.
pub fn parse_response(head: &Bytes, limits: &Limits) -> Result<ResponseHead, HeadError> {
    check_line_ends(head)?;
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS_CAP];
    let max = limits.max_fields.min(MAX_FIELDS_CAP);
    let mut resp = httparse::Response::new(&mut slots[..max]);
    let status = resp.parse(head).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyFields(max),
        httparse::Error::Version => HeadError::Version,
        httparse::Error::HeaderName => header_name_or_fold(head),
        httparse::Error::HeaderValue => HeadError::FieldValue,
        _ => HeadError::StartLine("not HTTP-version SP status-code SP reason"),
    })?;
    if !status.is_complete() {
        return Err(HeadError::StartLine("incomplete head"));
    }
    let version = if resp.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    let code = resp.code.unwrap_or_default();
    let reason = resp.reason.unwrap_or_default().to_owned();
    let headers = collect_fields(head, resp.headers);
    Ok(ResponseHead {
        version,
        status: code,
        reason,
        headers,
    })
}

/// Parses field lines ending with a blank line (a chunked body's trailer section).
///
/// # Errors
/// As for a head's field lines.
pub fn parse_fields(block: &Bytes, limits: &Limits) -> Result<Headers, HeadError> {
    check_line_ends(block)?;
    let mut slots = [httparse::EMPTY_HEADER; MAX_FIELDS_CAP];
    let max = limits.max_fields.min(MAX_FIELDS_CAP);
    match httparse::parse_headers(block, &mut slots[..max]) {
        Ok(httparse::Status::Complete((_, fields))) => Ok(collect_fields(block, fields)),
        Ok(httparse::Status::Partial) => Err(HeadError::StartLine("incomplete trailer section")),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyFields(max)),
        Err(httparse::Error::HeaderValue) => Err(HeadError::FieldValue),
        Err(_) => Err(header_name_or_fold(block)),
    }
}

/// Every CR is followed by LF and every LF preceded by CR.
fn check_line_ends(head: &[u8]) -> Result<(), HeadError> {
    let mut i = 0;
    while let Some(off) = head[i..].iter().position(|&b| b == b'\r' || b == b'\n') {
        let at = i + off;
        if head[at] == b'\n' || head.get(at + 1) != Some(&b'\n') {
            return Err(HeadError::BareCrOrLf);
        }
        i = at + 2;
    }
    Ok(())
}

/// httparse reports obs-fold as a bad field name; tell the two apart for the log.
fn header_name_or_fold(head: &[u8]) -> HeadError {
    let folded = head
        .windows(3)
        .any(|w| w[0] == b'\r' && w[1] == b'\n' && (w[2] == b' ' || w[2] == b'\t'));
    if folded {
        HeadError::ObsFold
    } else {
        HeadError::FieldName
    }
}

fn collect_fields(head: &Bytes, parsed: &[httparse::Header<'_>]) -> Headers {
    let mut fields = Vec::with_capacity(parsed.len());
    for h in parsed {
        if h.name.is_empty() {
            break;
        }
        fields.push(Field {
            name: head.slice_ref(h.name.as_bytes()),
            value: slice_or_empty(head, h.value),
        });
    }
    Headers { fields }
}

fn slice_or_empty(head: &Bytes, part: &[u8]) -> Bytes {
    if part.is_empty() {
        Bytes::new()
    } else {
        head.slice_ref(part)
    }
}

/// A token character (RFC 9110 section 5.6.2).
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// `s` without leading and trailing spaces and tabs.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// The usual reason phrase of a status code (RFC 9110 section 15).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &[u8]) -> Result<RequestHead, HeadError> {
        let limits = Limits::default();
        let end = HeadScanner::new()
            .scan(raw, &limits)?
            .expect("complete head");
        parse_request(&Bytes::copy_from_slice(&raw[..end]), &limits)
    }

    #[test]
    fn request_round_trip() {
        let raw = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n";
        let head = req(raw).unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/index.html?q=1");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.headers.get_str("host"), Some("example.test"));
        assert_eq!(head.to_bytes(), raw);
    }

    #[test]
    fn response_round_trip() {
        let raw = b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let limits = Limits::default();
        let end = HeadScanner::new().scan(raw, &limits).unwrap().unwrap();
        let head = parse_response(&Bytes::copy_from_slice(&raw[..end]), &limits).unwrap();
        assert_eq!((head.version, head.status), (Version::Http10, 404));
        assert_eq!(head.to_bytes(), raw);
    }

    #[test]
    fn every_prefix_is_incomplete_not_an_error() {
        let raw = b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
        let limits = Limits::default();
        for n in 0..raw.len() {
            assert_eq!(HeadScanner::new().scan(&raw[..n], &limits), Ok(None), "{n}");
        }
        // Byte by byte, resuming the scan, finds the same end.
        let mut scanner = HeadScanner::new();
        let mut found = None;
        for n in 1..=raw.len() {
            if let Some(end) = scanner.scan(&raw[..n], &limits).unwrap() {
                found = Some(end);
                break;
            }
        }
        assert_eq!(found, Some(raw.len()));
        assert_eq!(req(raw).unwrap().target, "/a");
    }

    #[test]
    fn strict_refusals() {
        let cases: &[(&[u8], HeadError)] = &[
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", HeadError::BareCrOrLf),
            (b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", HeadError::BareCrOrLf),
            (b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", HeadError::ObsFold),
            (b"GET / HTTP/1.1\r\nA : b\r\n\r\n", HeadError::FieldName),
            (b"GET / HTTP/1.1\r\n\x01A: b\r\n\r\n", HeadError::FieldName),
            (b"GET / HTTP/1.1\r\nA: \x01b\r\n\r\n", HeadError::FieldValue),
            (b"GET / HTTP/1.2\r\nA: b\r\n\r\n", HeadError::Version),
        ];
        for (raw, want) in cases {
            assert_eq!(
                req(raw).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            req(b"GET  HTTP/1.1\r\n\r\n"),
            Err(HeadError::StartLine(_))
        ));
    }

    #[test]
    fn limits_while_arriving() {
        let limits = Limits {
            max_request_line: 16,
            max_field_line: 10,
            max_fields: 2,
            max_head: 64,
            max_body: 0,
        };
        let long_line = b"GET /aaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(
            HeadScanner::new().scan(long_line, &limits),
            Err(HeadError::UriTooLong(16))
        );
        assert_eq!(
            HeadScanner::new().scan(b"GET / HTTP/1.1\r\nX: 0123456789", &limits),
            Err(HeadError::FieldTooLong(10))
        );
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let end = HeadScanner::new().scan(many, &limits).unwrap().unwrap();
        assert_eq!(
            parse_request(&Bytes::copy_from_slice(&many[..end]), &limits),
            Err(HeadError::TooManyFields(2))
        );
        let big = [b"GET / HTTP/1.1\r\n".as_slice(), &b"A: 123\r\n".repeat(8)].concat();
        assert_eq!(
            HeadScanner::new().scan(&big, &limits),
            Err(HeadError::HeadTooLarge(64))
        );
    }

    /// Found by the http_request fuzz target: a field line both too long and ended by a bare
    /// LF got 400 when it arrived whole and 431 when it arrived in pieces.
    #[test]
    fn same_error_however_the_head_arrives() {
        let limits = Limits {
            max_request_line: 16,
            max_field_line: 10,
            max_fields: 8,
            max_head: 40,
            max_body: 0,
        };
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nX: 0123456789abc\n\r\n",
            b"GET /0123456789abcdef\nX: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: 1234567\r\nB: 1234567\r\nC: 12\n",
            b"GET / HTTP/1.1\r\nA: 12345678\r\n\r\n",
        ];
        for raw in cases {
            let whole = HeadScanner::new().scan(raw, &limits);
            let mut scanner = HeadScanner::new();
            let mut by_byte = Ok(None);
            for n in 1..=raw.len() {
                by_byte = scanner.scan(&raw[..n], &limits);
                if !matches!(by_byte, Ok(None)) {
                    break;
                }
            }
            assert_eq!(whole, by_byte, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(
            HeadScanner::new().scan(cases[0], &limits),
            Err(HeadError::FieldTooLong(10))
        );
    }

    #[test]
    fn field_lists_and_tokens() {
        let head =
            req(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nConnection: ,close\r\n\r\n")
                .unwrap();
        assert!(head.headers.has_token("connection", "CLOSE"));
        assert_eq!(head.headers.list("Connection").count(), 3);
        assert!(Field::new("X", "a\r\nInjected: 1").is_none());
        assert!(Field::new("Bad Name", "v").is_none());
    }
}
