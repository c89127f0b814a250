//! protolab-impair: impairment of packets (loss, duplication, reordering, delay with jitter).
//!
//! Layout:
//! - [`engine`]: the impairment decision engine, without I/O: packets and time in, packets out
//!   when due, and the ground truth of what was done to them. Both front ends use it unchanged.
//! - [`relay`]: `impair udp`, a UDP relay applying the engine per direction.
//! - [`link`]: `impair link`, two network namespaces joined by a userspace link of TUN devices.

pub mod engine;
pub mod link;
pub mod relay;
