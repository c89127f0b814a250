//! protolab-http: HTTP/1.1 without surprises.
//!
//! A sans-I/O core that reads and writes HTTP/1.1 messages strictly enough that no two parsers
//! can disagree on where a message ends (request smuggling), a client that shows the anatomy of
//! both messages and the timing of each phase, and an origin server for the lab.
//!
//! Layout:
//! - [`wire`]: message heads: [`wire::HeadScanner`] finds a head's end in arriving bytes with
//!   the limits applied (414, 431); [`wire::parse_request`] and [`wire::parse_response`] parse
//!   it with `httparse` plus the RFC 9112 MUSTs httparse leaves to its caller (CRLF only, no
//!   obs-fold); [`wire::RequestHead`], [`wire::ResponseHead`] and [`wire::Headers`] are the
//!   values, each with `emit` to write it back byte for byte.
//! - [`body`]: body framing (RFC 9112 section 6): [`body::request_framing`] and
//!   [`body::response_framing`] decide how a body is delimited and refuse ambiguous framing;
//!   [`body::BodyDecoder`] decodes Content-Length, chunked (with trailers) and close-delimited
//!   bodies from arriving bytes; [`body::encode_chunk`] writes chunked bodies.
//! - [`conn`]: connections as state machines: [`conn::ServerConn`] (requests in, one at a time,
//!   pipelining and keep-alive decided) and [`conn::ClientConn`] (one response in).
//! - [`origin`]: what `http serve` answers: files with validators, conditional GET and ranges,
//!   and the lab endpoints (/echo, /cookies, /cache/N, /status/N, /delay/D, /bytes/N, /stream/N).
//! - [`serve`]: the server's I/O driver on protolab-transport's TCP runner, with a deadline per
//!   phase (head, body, idle keep-alive): `serve::bind(&config) -> Bound`, then
//!   `serve::run(bound, config, shutdown) -> Report`. `serve::run_with(listener, config, handler, shutdown)` serves any [`origin::Handler`]
//!   (`fn handle(&self, req, body) -> Reply`) the same way; a reply's body may be a stream
//!   ([`origin::Body::Stream`], for server-sent events), sent until its sender ends.
//! - [`client`]: `http get`: each exchange with the request as sent, the response head, and the
//!   timing of each phase.
//! - [`cache`]: the HTTP cache of RFC 9111 without I/O: requests and responses in, decisions
//!   (hit, forward, revalidate, serve stale) out, every one labelled with `Cache-Status`.
//! - [`proxy`]: `http proxy`, the caching proxy (forward and reverse, CONNECT tunnels) on
//!   protolab-transport's TCP runner: `proxy::bind(&config) -> Bound`, then
//!   `proxy::run(bound, config, shutdown) -> Report`.
//! - [`cookie`]: the RFC 6265 cookie jar, without I/O, and the Netscape cookie file format.
//!
//! Nothing in `wire`, `body` and `conn` touches a socket or a clock: bytes in, values and events
//! out. The cache and the proxy build on them the same way the origin server does.

pub mod body;
pub mod cache;
pub mod client;
pub mod conn;
pub mod cookie;
pub mod origin;
pub mod proxy;
pub mod serve;
pub mod wire;

pub use body::{BodyDecoder, Decoded, Framing, FramingError};
pub use conn::{ClientConn, ClientEvent, Request, RequestError, ServerConn, ServerEvent};
pub use wire::{
    Field, HeadError, HeadScanner, Headers, Limits, RequestHead, ResponseHead, Version,
};

/// The port `http serve` listens on by default.
pub const DEFAULT_PORT: u16 = 8080;

/// The port `http proxy` listens on by default (Squid's).
pub const PROXY_PORT: u16 = 3128;
