//! Message body framing (RFC 9112 section 6): how long a body is, and decoding it from arriving
//! bytes without I/O.
//!
//! [`request_framing`] and [`response_framing`] decide from a head how its body is delimited,
//! refusing every head whose length two parsers could read differently (request smuggling):
//! Transfer-Encoding together with Content-Length, Transfer-Encoding in HTTP/1.0, chunked not
//! last or twice, a Content-Length that is not one plain decimal number. [`BodyDecoder`] then
//! turns the bytes after the head into [`Decoded`] pieces, with every buffer capped: a chunk-size
//! line, the trailer section and the body itself each have a limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::wire::{HeadError, Headers, Limits, RequestHead, ResponseHead, Version, is_tchar};

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "length")]
pub enum Framing {
    /// No body at all (a request without Content-Length or Transfer-Encoding; a response to HEAD;
    /// 1xx, 204 and 304 responses).
    None,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Chunked transfer coding (RFC 9112 section 7.1), possibly with trailer fields.
    Chunked,
    /// Everything until the server closes the connection (responses only).
    Close,
}

/// Why a body's framing or content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both Transfer-Encoding and Content-Length: the classic smuggling ambiguity.
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingAndLength,
    /// Transfer-Encoding in an HTTP/1.0 message, whose recipients may not know it.
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingInHttp10,
    /// Chunked is not the final coding, appears twice, or a coding is not a token.
    #[error("Transfer-Encoding must end with chunked, once: {0}")]
    BadTransferEncoding(&'static str),
    /// A transfer coding this implementation does not know.
    #[error("unknown transfer coding")]
    UnknownCoding,
    /// Content-Length is not one decimal number, or several values differ or are lists.
    #[error("invalid Content-Length: {0}")]
    BadContentLength(&'static str),
    /// The body is larger than allowed.
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    /// A chunk-size line, chunk data delimiter or trailer section is malformed.
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The trailer section is malformed or too large.
    #[error("trailer section: {0}")]
    Trailers(HeadError),
    /// The connection closed before the body was complete.
    #[error("connection closed before the end of the body")]
    Truncated,
}

impl FramingError {
    /// The status code a server answers this error with (RFC 9112 section 6).
    pub fn status(&self) -> u16 {
        match self {
            FramingError::UnknownCoding => 501,
            FramingError::TooLarge(_) => 413,
            FramingError::Trailers(e) => e.status(),
            _ => 400,
        }
    }
}

/// Transfer codings registered with IANA (and `identity`, which RFC 9112 dropped but old clients
/// still send): a request naming others before chunked gets 501.
const KNOWN_CODINGS: &[&str] = &[
    "chunked",
    "gzip",
    "x-gzip",
    "deflate",
    "compress",
    "x-compress",
    "identity",
    "trailers",
];

/// The transfer codings a Transfer-Encoding lists, lowercased, parameters dropped.
///
/// # Errors
/// [`FramingError::BadTransferEncoding`] when an element is not a token with parameters,
/// chunked is not last or appears twice; [`FramingError::UnknownCoding`] for unknown codings
/// before a final chunked.
pub fn transfer_codings(headers: &Headers) -> Result<Vec<String>, FramingError> {
    let mut codings = Vec::new();
    for element in headers.list("transfer-encoding") {
        let mut parts = element.split(|&b| b == b';');
        let name = crate::wire::trim_ows(parts.next().unwrap_or_default());
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(FramingError::BadTransferEncoding("a coding is not a token"));
        }
        // Parameters: token [= token / quoted-string], tolerated with empty elements; only
        // the characters matter here, since no parameter changes the framing. Chunked defines
        // none, and RFC 9112 section 7.1 says their presence SHOULD be treated as an error.
        let chunked = name.eq_ignore_ascii_case(b"chunked");
        for param in parts {
            if chunked && !crate::wire::trim_ows(param).is_empty() {
                return Err(FramingError::BadTransferEncoding(
                    "chunked takes no parameters",
                ));
            }
            let ok = param
                .iter()
                .all(|&b| is_tchar(b) || matches!(b, b' ' | b'\t' | b'=' | b'"'));
            if !ok {
                return Err(FramingError::BadTransferEncoding(
                    "a coding's parameter is not a token",
                ));
            }
        }
        codings.push(String::from_utf8_lossy(name).to_ascii_lowercase());
    }
    let chunked = codings.iter().filter(|c| *c == "chunked").count();
    if codings.last().map(String::as_str) != Some("chunked") {
        return Err(FramingError::BadTransferEncoding(
            "chunked is not the final coding",
        ));
    }
    if chunked > 1 {
        return Err(FramingError::BadTransferEncoding(
            "chunked appears more than once",
        ));
    }
    if codings.iter().any(|c| !KNOWN_CODINGS.contains(&c.as_str())) {
        return Err(FramingError::UnknownCoding);
    }
    Ok(codings)
}

/// The one Content-Length of a message: exactly one field holding one decimal number.
///
/// Identical duplicates (`42, 42` or two fields of 42) may be merged by the RFC; they are refused
/// here, since a message that carries them came through something that mangles framing.
///
/// # Errors
/// [`FramingError::BadContentLength`].
pub fn content_length(headers: &Headers) -> Result<Option<u64>, FramingError> {
    let mut values = headers.get_all("content-length");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(FramingError::BadContentLength("more than one field"));
    }
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::BadContentLength("not a decimal number"));
    }
    if value.len() > 19 {
        return Err(FramingError::BadContentLength("too large a number"));
    }
    let mut n: u64 = 0;
    for &d in value {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(FramingError::BadContentLength("too large a number"))?;
    }
    Ok(Some(n))
}

/// How a request's body is delimited (RFC 9112 section 6.3, items 3 to 6), with `max_body`
/// applied to a declared length at once so no byte of a too-large body is read.
///
/// # Errors
/// A [`FramingError`] whose [`FramingError::status`] is the reply; the connection must be closed
/// after it, since where the next request starts is unknown.
pub fn request_framing(head: &RequestHead, max_body: u64) -> Result<Framing, FramingError> {
    let has_te = head.headers.contains("transfer-encoding");
    let has_cl = head.headers.contains("content-length");
    if has_te {
        if has_cl {
            return Err(FramingError::TransferEncodingAndLength);
        }
        if head.version == Version::Http10 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        transfer_codings(&head.headers)?;
        return Ok(Framing::Chunked);
    }
    match content_length(&head.headers)? {
        None | Some(0) => Ok(Framing::None),
        Some(n) if n > max_body => Err(FramingError::TooLarge(max_body)),
        Some(n) => Ok(Framing::Length(n)),
    }
}

/// How a response's body is delimited (RFC 9112 section 6.3, items 1 to 7), given the method of
/// the request it answers.
///
/// A response with both Transfer-Encoding and Content-Length is framed by Transfer-Encoding (as
/// the RFC says) and the connection must not be reused: [`must_close_after`] tells.
///
/// # Errors
/// [`FramingError::BadContentLength`] for an invalid Content-Length without Transfer-Encoding.
pub fn response_framing(method: &str, head: &ResponseHead) -> Result<Framing, FramingError> {
    let status = head.status;
    if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    if method == "CONNECT" && (200..300).contains(&status) {
        return Ok(Framing::Close);
    }
    if head.headers.contains("transfer-encoding") {
        let last = head.headers.list("transfer-encoding").last();
        let chunked_last = last.is_some_and(|c| {
            let name = c.split(|&b| b == b';').next().unwrap_or_default();
            crate::wire::trim_ows(name).eq_ignore_ascii_case(b"chunked")
        });
        return Ok(if chunked_last && head.version == Version::Http11 {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    match content_length(&head.headers)? {
        Some(0) => Ok(Framing::None),
        Some(n) => Ok(Framing::Length(n)),
        None => Ok(Framing::Close),
    }
}

/// True when a response's framing means the connection cannot carry another message: it was
/// close-delimited, or it carried both Transfer-Encoding and Content-Length.
pub fn must_close_after(framing: Framing, head: &ResponseHead) -> bool {
    framing == Framing::Close
        || (head.headers.contains("transfer-encoding") && head.headers.contains("content-length"))
}

/// A piece of a decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, transfer coding removed.
    Data(Bytes),
    /// The body is complete; a chunked body's trailer fields come with it.
    End(Headers),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// The longest chunk-size line accepted (size, extensions and CRLF).
pub const MAX_CHUNK_LINE: usize = 4096;

/// Decodes a body from arriving bytes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    limits: Limits,
    /// Decoded bytes so far, checked against `limits.max_body`.
    received: u64,
    /// Bytes of the trailer section already scanned.
    trailer_scan: crate::wire::HeadScanner,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing, limits: Limits) -> Self {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::None,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::Close => State::Close,
        };
        Self {
            state,
            limits,
            received: 0,
            trailer_scan: crate::wire::HeadScanner::new(),
        }
    }

    /// True once [`Decoded::End`] has been returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes the next piece of the body from the front of `input`; `None` means more input is
    /// needed. Bytes after the body's end stay in `input` (the next pipelined message).
    ///
    /// # Errors
    /// A [`FramingError`]: the connection is out of step and must be closed.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Decoded>, FramingError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::None => {
                    self.state = State::Done;
                    return Ok(Some(Decoded::End(Headers::new())));
                }
                State::Length(0) => {
                    self.state = State::Done;
                    return Ok(Some(Decoded::End(Headers::new())));
                }
                State::Length(left) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    self.count(n as u64)?;
                    self.state = State::Length(left - n as u64);
                    return Ok(Some(Decoded::Data(input.split_to(n).freeze())));
                }
                State::Close => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    self.count(input.len() as u64)?;
                    return Ok(Some(Decoded::Data(input.split().freeze())));
                }
                State::Chunked(chunk) => {
                    if let Some(out) = self.chunked(chunk, input)? {
                        return Ok(Some(out));
                    }
                    if input.is_empty() || matches!(self.state, State::Chunked(c) if c == chunk) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The peer closed the connection: the end of a close-delimited body, an error otherwise.
    ///
    /// # Errors
    /// [`FramingError::Truncated`] when the body was not complete.
    pub fn eof(&mut self) -> Result<Decoded, FramingError> {
        match self.state {
            State::Close => {
                self.state = State::Done;
                Ok(Decoded::End(Headers::new()))
            }
            State::None | State::Length(0) => {
                self.state = State::Done;
                Ok(Decoded::End(Headers::new()))
            }
            _ => Err(FramingError::Truncated),
        }
    }

    fn count(&mut self, n: u64) -> Result<(), FramingError> {
        self.received += n;
        if self.received > self.limits.max_body {
            return Err(FramingError::TooLarge(self.limits.max_body));
        }
        Ok(())
    }

    /// One step of the chunked decoder; the state changes or `None` asks for more input.
    fn chunked(
        &mut self,
        chunk: Chunk,
        input: &mut BytesMut,
    ) -> Result<Option<Decoded>, FramingError> {
        match chunk {
            Chunk::Size => {
                let Some(lf) = input.iter().take(MAX_CHUNK_LINE).position(|&b| b == b'\n') else {
                    if input.len() >= MAX_CHUNK_LINE {
                        return Err(FramingError::BadChunk("chunk-size line too long"));
                    }
                    return Ok(None);
                };
                let size = parse_chunk_size(&input[..=lf])?;
                input.advance(lf + 1);
                if size == 0 {
                    self.state = State::Chunked(Chunk::Trailers);
                } else {
                    // Refuse a chunk that would pass the limit before reading any of it.
                    if self.received.saturating_add(size) > self.limits.max_body {
                        return Err(FramingError::TooLarge(self.limits.max_body));
                    }
                    self.state = State::Chunked(Chunk::Data(size));
                }
                Ok(None)
            }
            Chunk::Data(left) => {
                if input.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                self.count(n as u64)?;
                let rest = left - n as u64;
                self.state = State::Chunked(if rest == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rest)
                });
                Ok(Some(Decoded::Data(input.split_to(n).freeze())))
            }
            Chunk::DataEnd => {
                if input.len() < 2 {
                    if input.first().is_some_and(|&b| b != b'\r') {
                        return Err(FramingError::BadChunk("chunk data not followed by CRLF"));
                    }
                    return Ok(None);
                }
                if &input[..2] != b"\r\n" {
                    return Err(FramingError::BadChunk("chunk data not followed by CRLF"));
                }
                input.advance(2);
                self.state = State::Chunked(Chunk::Size);
                Ok(None)
            }
            Chunk::Trailers => {
                // An empty trailer section is the common case: just CRLF.
                if input.starts_with(b"\r\n") {
                    input.advance(2);
                    self.state = State::Done;
                    return Ok(Some(Decoded::End(Headers::new())));
                }
                if input.len() < 2 {
                    return Ok(None);
                }
                // The trailer section is field lines ending with a blank line; scan it like a
                // head whose "start line" is the first field (hence the leading CRLF).
                let mut probe = BytesMut::with_capacity(input.len() + 2);
                probe.extend_from_slice(b"X\r\n");
                probe.extend_from_slice(input);
                self.trailer_scan.reset();
                let end = self
                    .trailer_scan
                    .scan(&probe, &self.limits)
                    .map_err(FramingError::Trailers)?;
                let Some(end) = end else {
                    return Ok(None);
                };
                let block = input.split_to(end - 3).freeze();
                let fields = crate::wire::parse_fields(&block, &self.limits)
                    .map_err(FramingError::Trailers)?;
                self.state = State::Done;
                Ok(Some(Decoded::End(fields)))
            }
        }
    }
}

/// Parses `chunk-size [chunk-ext] CRLF`.
fn parse_chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(FramingError::BadChunk("chunk-size line not ended by CRLF"));
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(FramingError::BadChunk("no chunk size"));
    }
    if digits > 15 {
        return Err(FramingError::BadChunk("chunk size too large"));
    }
    let size = line[..digits]
        .iter()
        .fold(0u64, |n, &d| n * 16 + u64::from(hex_value(d)));
    let ext = &line[digits..];
    // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): only whitespace may come
    // before the first ";", and no control characters anywhere.
    let ext_rest = crate::wire::trim_ows(ext);
    if !ext_rest.is_empty() && ext_rest[0] != b';' {
        return Err(FramingError::BadChunk("junk after the chunk size"));
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(FramingError::BadChunk(
            "control character in a chunk extension",
        ));
    }
    Ok(size)
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// Writes one chunk (size line, data, CRLF); an empty `data` writes nothing, since an empty
/// chunk would end the body.
pub fn encode_chunk(data: &[u8], out: &mut impl BufMut) {
    if data.is_empty() {
        return;
    }
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Writes the last chunk and the trailer section.
pub fn encode_last_chunk(trailers: &Headers, out: &mut impl BufMut) {
    out.put_slice(b"0\r\n");
    trailers.emit(out);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{HeadScanner, parse_request};

    fn head(raw: &[u8]) -> RequestHead {
        let limits = Limits::default();
        let end = HeadScanner::new().scan(raw, &limits).unwrap().unwrap();
        parse_request(&Bytes::copy_from_slice(&raw[..end]), &limits).unwrap()
    }

    fn framing(fields: &str) -> Result<Framing, FramingError> {
        let raw = format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        request_framing(&head(raw.as_bytes()), 1 << 20)
    }

    #[test]
    fn request_framing_rules() {
        use FramingError as E;
        assert_eq!(framing(""), Ok(Framing::None));
        assert_eq!(framing("Content-Length: 10\r\n"), Ok(Framing::Length(10)));
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(Framing::None));
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip ; , chunked;\r\n"),
            Ok(Framing::Chunked)
        );
        assert!(matches!(
            framing("Transfer-Encoding: \t\tchunked;custom_param;\t\r\n"),
            Err(E::BadTransferEncoding(_))
        ));
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
            Err(E::TransferEncodingAndLength)
        );
        assert!(matches!(
            framing("Transfer-Encoding: chunked, chunked\r\n"),
            Err(E::BadTransferEncoding(_))
        ));
        assert!(matches!(
            framing("Transfer-Encoding: xchunked\r\n"),
            Err(E::BadTransferEncoding(_))
        ));
        assert!(matches!(
            framing("Transfer-Encoding: chunked, gzip\r\n"),
            Err(E::BadTransferEncoding(_))
        ));
        assert_eq!(
            framing("Transfer-Encoding: cow, chunked\r\n"),
            Err(E::UnknownCoding)
        );
        assert_eq!(E::UnknownCoding.status(), 501);
        for bad in [
            "1000,1000",
            "1000 1000",
            "+5",
            "-1",
            "1.5",
            "18446744073709551616",
            "",
        ] {
            assert!(
                matches!(
                    framing(&format!("Content-Length: {bad}\r\n")),
                    Err(E::BadContentLength(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n"),
            Err(E::BadContentLength(_))
        ));
        assert_eq!(
            framing("Content-Length: 2000000\r\n"),
            Err(E::TooLarge(1 << 20))
        );
        let old = head(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(request_framing(&old, 100), Err(E::TransferEncodingInHttp10));
    }

    fn decode_all(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Headers, usize), FramingError> {
        let mut d = BodyDecoder::new(framing, Limits::default());
        let mut input = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            input.extend_from_slice(piece);
            while let Some(out) = d.decode(&mut input)? {
                match out {
                    Decoded::Data(b) => body.extend_from_slice(&b),
                    Decoded::End(t) => return Ok((body, t, input.len())),
                }
            }
        }
        Err(FramingError::Truncated)
    }

    #[test]
    fn chunked_decoding_byte_by_byte() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nExpires: never\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, trailers, left) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello, world");
            assert_eq!(trailers.get_str("expires"), Some("never"));
            // What follows the body is left for the next message (unless delivered later).
            assert!(left <= 4);
        }
    }

    #[test]
    fn chunked_refusals() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"x\r\n",
            b"5 junk\r\nhello\r\n0\r\n\r\n",
            b"1234567890abcdef0\r\n",
            b"0\r\nBad Name: 1\r\n\r\n",
            b"0\r\nA: b\n\r\n",
        ] {
            assert!(decode_all(Framing::Chunked, bad, 1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunked_round_trip() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        for piece in data.chunks(777) {
            encode_chunk(piece, &mut wire);
        }
        let mut trailers = Headers::new();
        trailers.append("X-Sum", "1");
        encode_last_chunk(&trailers, &mut wire);
        let (body, t, _) = decode_all(Framing::Chunked, &wire, 100).unwrap();
        assert_eq!(body, data);
        assert_eq!(t, trailers);
    }

    #[test]
    fn length_and_limits() {
        let (body, _, left) = decode_all(Framing::Length(3), b"abcGET", 1).unwrap();
        assert_eq!(body, b"abc");
        assert_eq!(left, 0);
        let small = Limits {
            max_body: 4,
            ..Limits::default()
        };
        let mut d = BodyDecoder::new(Framing::Chunked, small);
        let mut input = BytesMut::from(&b"10\r\n"[..]);
        assert_eq!(d.decode(&mut input), Err(FramingError::TooLarge(4)));
        let mut d = BodyDecoder::new(Framing::Close, small);
        let mut input = BytesMut::from(&b"hello"[..]);
        assert_eq!(d.decode(&mut input), Err(FramingError::TooLarge(4)));
    }

    #[test]
    fn response_framing_rules() {
        let resp = |raw: &[u8]| {
            let limits = Limits::default();
            let end = HeadScanner::new().scan(raw, &limits).unwrap().unwrap();
            crate::wire::parse_response(&Bytes::copy_from_slice(&raw[..end]), &limits).unwrap()
        };
        let ok = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(response_framing("GET", &ok), Ok(Framing::Length(5)));
        assert_eq!(response_framing("HEAD", &ok), Ok(Framing::None));
        let nm = resp(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(response_framing("GET", &nm), Ok(Framing::None));
        let close = resp(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(response_framing("GET", &close), Ok(Framing::Close));
        let both =
            resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(response_framing("GET", &both), Ok(Framing::Chunked));
        assert!(must_close_after(Framing::Chunked, &both));
    }
}
