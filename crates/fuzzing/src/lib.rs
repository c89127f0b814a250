//! protolab-fuzzing: the invariant checks behind protolab's fuzz targets.
//!
//! Every parser and state machine that takes bytes from the network or from a file has one
//! check here, a plain `pub fn <target>(data: &[u8])` that feeds `data` to the code under test
//! and panics when an invariant breaks: not only "no panic", but what the protocol promises (a
//! session never says 250 to a message that did not end in CRLF.CRLF, the echo never answers
//! with more bytes than it received, the cache never serves an answer for another question, the
//! impairment engine's ground truth always adds up). Where a property needs an oracle, the check
//! carries a small independent one.
//!
//! The checks are ordinary stable Rust, so `cargo test` compiles them and replays every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through them (see
//! `tests/replay.rs`); the cargo-fuzz targets in `fuzz/fuzz_targets/` are one line each calling
//! the check of the same name. `cargo xtask fuzz` runs them.
//!
//! Layout:
//! - [`greet`]: transport's `LineCodec` and the greeting protocol's replies.
//! - [`udpecho`]: `ProbePacket` parse/emit and the server's flow table with its echo.
//! - [`dns`]: the header walker, zone files, the reply cache and the referral classifier.
//! - [`smtp`]: the command parser, the DATA decoder and the whole `Session`.
//! - [`impair`]: the impairment engine's ground truth and the link's packet trace decoder.
//! - [`http`]: the HTTP/1.1 server connection (heads and framing) and the chunked decoder.

pub mod dns;
pub mod greet;
pub mod http;
pub mod impair;
pub mod smtp;
pub mod udpecho;

/// One fuzz target: its name (the file name under `fuzz/fuzz_targets/`) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    ("line_codec", greet::line_codec),
    ("greet_wire", greet::greet_wire),
    ("probe_packet", udpecho::probe_packet),
    ("flow_table", udpecho::flow_table),
    ("dns_wire", dns::dns_wire),
    ("zone_file", dns::zone_file),
    ("dns_cache", dns::dns_cache),
    ("referral_classifier", dns::referral_classifier),
    ("smtp_command", smtp::smtp_command),
    ("smtp_data", smtp::smtp_data),
    ("smtp_session", smtp::smtp_session),
    ("impair_engine", impair::impair_engine),
    ("link_trace", impair::link_trace),
    ("http_request", http::http_request),
    ("http_framing", http::http_framing),
];

/// The check of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
