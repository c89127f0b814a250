//! HTTP/1.1 connections as state machines without I/O: [`ServerConn`] reads requests,
//! [`ClientConn`] reads responses.
//!
//! The driver appends what it reads to a buffer and calls `poll` until it returns `None` (more
//! input needed). A server connection hands out one request at a time: its head, its body in
//! pieces, its end; then it waits until the driver has written the response and called
//! [`ServerConn::response_sent`], so pipelined requests queue in the buffer, untouched, and their
//! responses leave in order. What the connection does after a response (keep it or close it) is
//! decided here, from the request's version and Connection field (RFC 9112 section 9.3).

use bytes::{Bytes, BytesMut};

use crate::body::{BodyDecoder, Decoded, Framing, FramingError, request_framing, response_framing};
use crate::wire::{HeadError, HeadScanner, Headers, Limits, RequestHead, ResponseHead, Version};

/// A request head with what the connection decided about it.
#[derive(Debug, Clone)]
pub struct Request {
    pub head: RequestHead,
    /// How its body is delimited.
    pub framing: Framing,
    /// The head's bytes as received (for showing the message as it arrived).
    pub raw_head: Bytes,
    /// The client asked for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// The connection may carry another request after this one's response.
    pub keep_alive: bool,
}

/// Why a request was refused before the application saw it; the connection closes after the
/// error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Framing(#[from] FramingError),
    /// An HTTP/1.1 request without exactly one Host field (RFC 9112 section 3.2).
    #[error("an HTTP/1.1 request needs exactly one Host field")]
    Host,
    /// An Expect other than `100-continue` (RFC 9110 section 10.1.1).
    #[error("unsupported expectation")]
    Expectation,
}

impl RequestError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::Head(e) => e.status(),
            RequestError::Framing(e) => e.status(),
            RequestError::Host => 400,
            RequestError::Expectation => 417,
        }
    }
}

/// What a server connection found in the input.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// A request head; its body follows as [`ServerEvent::Body`] pieces and one
    /// [`ServerEvent::End`].
    Request(Box<Request>),
    /// A piece of the request body.
    Body(Bytes),
    /// The request body is complete, with a chunked body's trailer fields.
    End(Headers),
    /// The input is not a valid request: answer with the error's status and close.
    Error(RequestError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Head,
    Body,
    /// The request was read; waiting for the driver to send the response.
    Responding,
    Closed,
}

/// The server side of one connection.
#[derive(Debug)]
pub struct ServerConn {
    limits: Limits,
    state: ServerState,
    scanner: HeadScanner,
    body: BodyDecoder,
    keep_alive: bool,
    /// Requests read so far on this connection.
    pub requests: u64,
}

impl ServerConn {
    /// A fresh connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: ServerState::Head,
            scanner: HeadScanner::new(),
            body: BodyDecoder::new(Framing::None, limits),
            keep_alive: true,
            requests: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while a request body is being read.
    pub fn in_body(&self) -> bool {
        self.state == ServerState::Body
    }

    /// True between requests with nothing of the next one received (the idle keep-alive phase).
    pub fn is_idle(&self, input: &[u8]) -> bool {
        self.state == ServerState::Head && self.scanner.is_idle(input)
    }

    /// True once the connection must close (after an error, or a response that ends it).
    pub fn is_closed(&self) -> bool {
        self.state == ServerState::Closed
    }

    /// Takes the next event from the front of `input`; `None` when more input is needed or a
    /// response is awaited.
    pub fn poll(&mut self, input: &mut BytesMut) -> Option<ServerEvent> {
        match self.state {
            ServerState::Closed | ServerState::Responding => None,
            ServerState::Head => {
                let end = match self.scanner.scan(input, &self.limits) {
                    Ok(Some(end)) => end,
                    Ok(None) => return None,
                    Err(e) => return Some(self.fail(e.into())),
                };
                self.scanner.reset();
                let raw = input.split_to(end).freeze();
                match self.read_head(raw) {
                    Ok(req) => {
                        self.requests += 1;
                        self.keep_alive = req.keep_alive;
                        self.body = BodyDecoder::new(req.framing, self.limits);
                        self.state = ServerState::Body;
                        Some(ServerEvent::Request(Box::new(req)))
                    }
                    Err(e) => Some(self.fail(e)),
                }
            }
            ServerState::Body => match self.body.decode(input) {
                Ok(Some(Decoded::Data(b))) => Some(ServerEvent::Body(b)),
                Ok(Some(Decoded::End(trailers))) => {
                    self.state = ServerState::Responding;
                    Some(ServerEvent::End(trailers))
                }
                Ok(None) => None,
                Err(e) => Some(self.fail(e.into())),
            },
        }
    }

    /// The peer closed its side: a request cut short is an error (answered if still possible).
    pub fn eof(&mut self, input: &[u8]) -> Option<ServerEvent> {
        match self.state {
            ServerState::Head if !self.scanner.is_idle(input) && !input.is_empty() => {
                Some(self.fail(HeadError::StartLine("connection closed inside a head").into()))
            }
            ServerState::Body => Some(self.fail(FramingError::Truncated.into())),
            _ => {
                self.state = ServerState::Closed;
                None
            }
        }
    }

    /// The driver wrote the response; `close` when the response itself ends the connection
    /// (for instance, when it was sent with `Connection: close`). Returns true when the
    /// connection goes on to the next request.
    pub fn response_sent(&mut self, close: bool) -> bool {
        if close || !self.keep_alive || self.state != ServerState::Responding {
            self.state = ServerState::Closed;
            return false;
        }
        self.state = ServerState::Head;
        true
    }

    /// Whether the response to the current request must end the connection.
    pub fn will_close(&self) -> bool {
        !self.keep_alive || self.state == ServerState::Closed
    }

    fn fail(&mut self, e: RequestError) -> ServerEvent {
        tracing::debug!(error = %e, status = e.status(), "request refused");
        self.state = ServerState::Closed;
        self.keep_alive = false;
        ServerEvent::Error(e)
    }

    fn read_head(&self, raw: Bytes) -> Result<Request, RequestError> {
        let head = crate::wire::parse_request(&raw, &self.limits)?;
        if head.version == Version::Http11 && head.headers.count("host") != 1
            || head.headers.count("host") > 1
        {
            return Err(RequestError::Host);
        }
        let framing = request_framing(&head, self.limits.max_body)?;
        let expect_continue = match head.headers.get("expect") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case(b"100-continue") => {
                // Only HTTP/1.1 clients wait for 100 Continue (RFC 9110 section 10.1.1).
                head.version == Version::Http11 && framing != Framing::None
            }
            Some(_) => return Err(RequestError::Expectation),
        };
        let keep_alive = match head.version {
            Version::Http11 => !head.headers.has_token("connection", "close"),
            Version::Http10 => head.headers.has_token("connection", "keep-alive"),
        };
        Ok(Request {
            head,
            framing,
            raw_head: raw,
            expect_continue,
            keep_alive,
        })
    }
}

/// What a client connection found in the input.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// An interim (1xx) response head, such as 100 Continue; the final response follows.
    Interim(ResponseHead),
    /// The final response head and how its body is framed.
    Response {
        head: Box<ResponseHead>,
        framing: Framing,
        raw_head: Bytes,
    },
    /// A piece of the body.
    Body(Bytes),
    /// The body is complete, with trailer fields.
    End(Headers),
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("bad response head: {0}")]
    Head(#[from] HeadError),
    #[error("bad response body: {0}")]
    Framing(#[from] FramingError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Head,
    Body,
    Done,
}

/// The client side of one exchange: reads the response to one request.
///
/// Create one per request with the request's method (a HEAD's response has no body).
#[derive(Debug)]
pub struct ClientConn {
    limits: Limits,
    method: String,
    state: ClientState,
    scanner: HeadScanner,
    body: BodyDecoder,
    /// After the response, the connection cannot be reused.
    pub must_close: bool,
}

impl ClientConn {
    /// Expects the response to a request with `method`.
    pub fn new(method: &str, limits: Limits) -> Self {
        Self {
            limits,
            method: method.to_owned(),
            state: ClientState::Head,
            scanner: HeadScanner::new(),
            body: BodyDecoder::new(Framing::None, limits),
            must_close: false,
        }
    }

    /// True once the whole response has been read.
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// Takes the next event from the front of `input`; `Ok(None)` when more input is needed.
    ///
    /// # Errors
    /// A [`ResponseError`]: the connection must be closed.
    pub fn poll(&mut self, input: &mut BytesMut) -> Result<Option<ClientEvent>, ResponseError> {
        match self.state {
            ClientState::Done => Ok(None),
            ClientState::Head => {
                let Some(end) = self.scanner.scan(input, &self.limits)? else {
                    return Ok(None);
                };
                self.scanner.reset();
                let raw = input.split_to(end).freeze();
                let head = crate::wire::parse_response(&raw, &self.limits)?;
                if (100..200).contains(&head.status) && head.status != 101 {
                    return Ok(Some(ClientEvent::Interim(head)));
                }
                let framing = response_framing(&self.method, &head)?;
                self.must_close = crate::body::must_close_after(framing, &head)
                    || head.status == 101
                    || match head.version {
                        Version::Http11 => head.headers.has_token("connection", "close"),
                        Version::Http10 => !head.headers.has_token("connection", "keep-alive"),
                    };
                self.body = BodyDecoder::new(framing, self.limits);
                self.state = ClientState::Body;
                Ok(Some(ClientEvent::Response {
                    head: Box::new(head),
                    framing,
                    raw_head: raw,
                }))
            }
            ClientState::Body => match self.body.decode(input)? {
                Some(Decoded::Data(b)) => Ok(Some(ClientEvent::Body(b))),
                Some(Decoded::End(t)) => {
                    self.state = ClientState::Done;
                    Ok(Some(ClientEvent::End(t)))
                }
                None => Ok(None),
            },
        }
    }

    /// The server closed the connection.
    ///
    /// # Errors
    /// [`FramingError::Truncated`] unless the body was close-delimited (or complete).
    pub fn eof(&mut self) -> Result<Option<ClientEvent>, ResponseError> {
        match self.state {
            ClientState::Done => Ok(None),
            ClientState::Head => Err(FramingError::Truncated.into()),
            ClientState::Body => {
                let Decoded::End(t) = self.body.eof()? else {
                    return Ok(None);
                };
                self.state = ClientState::Done;
                Ok(Some(ClientEvent::End(t)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(conn: &mut ServerConn, input: &mut BytesMut) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(ev) = conn.poll(input) {
            out.push(match ev {
                ServerEvent::Request(r) => format!("{} {}", r.head.method, r.head.target),
                ServerEvent::Body(b) => format!("body {}", String::from_utf8_lossy(&b)),
                ServerEvent::End(_) => "end".into(),
                ServerEvent::Error(e) => format!("error {}", e.status()),
            });
        }
        out
    }

    #[test]
    fn pipelined_requests_wait_for_their_turn() {
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(
            &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        );
        assert_eq!(events(&mut conn, &mut input), ["GET /a", "end"]);
        assert!(conn.response_sent(false));
        assert_eq!(events(&mut conn, &mut input), ["POST /b", "body hi", "end"]);
        assert!(conn.response_sent(false));
        assert_eq!(events(&mut conn, &mut input), ["GET /c", "end"]);
        assert!(conn.will_close());
        assert!(!conn.response_sent(false));
        assert!(input.is_empty());
    }

    #[test]
    fn http10_keep_alive_only_when_asked() {
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(&b"GET / HTTP/1.0\r\n\r\n"[..]);
        events(&mut conn, &mut input);
        assert!(conn.will_close());
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(&b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..]);
        events(&mut conn, &mut input);
        assert!(!conn.will_close());
    }

    #[test]
    fn smuggling_attempt_is_refused_and_closes() {
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n"[..],
        );
        assert_eq!(events(&mut conn, &mut input), ["error 400"]);
        assert!(conn.is_closed());
        assert!(conn.poll(&mut input).is_none());
    }

    #[test]
    fn host_and_expect() {
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert_eq!(events(&mut conn, &mut input), ["error 400"]);
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(
            &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"[..],
        );
        let Some(ServerEvent::Request(r)) = conn.poll(&mut input) else {
            panic!("a request")
        };
        assert!(r.expect_continue);
        let mut conn = ServerConn::new(Limits::default());
        let mut input = BytesMut::from(&b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n"[..]);
        assert_eq!(events(&mut conn, &mut input), ["error 417"]);
    }

    #[test]
    fn client_reads_interim_and_close_delimited() {
        let mut c = ClientConn::new("GET", Limits::default());
        let mut input = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nServer: t\r\n\r\nall of it"[..],
        );
        assert!(matches!(
            c.poll(&mut input),
            Ok(Some(ClientEvent::Interim(_)))
        ));
        assert!(matches!(
            c.poll(&mut input),
            Ok(Some(ClientEvent::Response {
                framing: Framing::Close,
                ..
            }))
        ));
        assert!(c.must_close);
        assert!(matches!(c.poll(&mut input), Ok(Some(ClientEvent::Body(_)))));
        assert!(matches!(c.poll(&mut input), Ok(None)));
        assert!(matches!(c.eof(), Ok(Some(ClientEvent::End(_)))));
        assert!(c.is_done());
    }
}
