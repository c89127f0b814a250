//! protolab-udpecho: a UDP echo server and a probe that counts loss, duplication, reordering,
//! jitter and round-trip time exactly, each figure defined by its RFC.
//!
//! The probe sends numbered, timestamped probe packets; the server echoes each one with its own
//! receive time, its count of distinct probes received on the flow and a window of which
//! recent sequence numbers it has seen, so the probe can tell loss on the way out from loss on
//! the way back. The same probes also run over one TCP connection (u16 length prefix), where
//! loss, duplication and reordering are zero by construction and only latency changes.
//!
//! Layout:
//! - [`wire`]: the probe packet, parse and emit without I/O.
//! - [`flows`]: the server's bounded per-flow state and counters, without I/O.
//! - [`stats`]: the probe's statistics, without I/O: send and reply events in, a report out.
//! - [`server`]: `udpecho serve`: UDP on batching threads (protolab-transport's `batch`), TCP
//!   on protolab-transport's runner.
//! - [`bulk`]: `udpecho bulk` and `udpecho sink`: one bulk TCP transfer under a chosen
//!   congestion control, with TCP_INFO sampled every few milliseconds.
//! - [`plot`]: SVG pictures of a probe run and of a bulk transfer (plotters), without I/O
//!   beyond the file written.
//! - [`probe`]: `udpecho probe`, a sender and a receiver thread on blocking sockets.

pub mod bulk;
pub mod flows;
pub mod plot;
pub mod probe;
pub mod server;
pub mod stats;
pub mod wire;
