//! protolab-smtp: an SMTP receiver that never loses mail.
//!
//! An RFC 5321 server that stores every message it accepts in a Maildir and says 250 only once
//! the message is durable (the file and its directory fsynced), plus a small client to send a
//! message and readers to list and show what arrived. It is meant as a mail catcher for
//! development and as a readable model of SMTP: the envelope, dot-stuffing, PIPELINING, limits
//! with the replies the RFCs name, and the SMTP smuggling trap avoided by ending a message only at
//! CRLF `.` CRLF.
//!
//! Layout:
//! - [`wire`]: command lines and replies, parsed and emitted without I/O.
//! - [`data`]: the DATA phase without I/O: the end of a message, dot-unstuffing, bare LF and CR.
//! - [`session`]: the server session's state machine: octets in, replies and storage actions out.
//! - [`maildir`]: durable delivery into a Maildir with a group-committed directory fsync, and
//!   reading messages back.
//! - [`server`]: the thin I/O driver on protolab-transport's TCP runner: [`bind`], then [`run`]
//!   to a [`Report`].
//! - [`client`]: a small client that sends one message and shows the dialog.
//! - [`inbox`]: the web inbox: an index of the Maildir, a Mailpit-compatible JSON API and a page,
//!   served by protolab-http.

pub mod client;
pub mod data;
pub mod inbox;
pub mod maildir;
pub mod server;
pub mod session;
pub mod wire;

pub use maildir::Maildir;
pub use server::{
    Bound, Counters, Report, ServeError, ServerConfig, SmtpStats, Tls, WebConfig, bind, run,
};
pub use session::{Envelope, Session, SessionConfig, StoreError};
pub use wire::{Command, Reply};

/// The port `smtp serve` listens on by default (2525: no privileges needed, unlike 25).
pub const DEFAULT_PORT: u16 = 2525;
/// The implicit-TLS port in the docs and examples (RFC 8314's 465, made unprivileged).
pub const DEFAULT_TLS_PORT: u16 = 4650;

/// This machine's host name, for the greeting and the Received: headers, or `localhost`.
pub fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
