//! protolab-transport: the one layer of protolab that opens sockets.
//!
//! Protocol crates keep their wire formats and state machines free of I/O; their thin drivers
//! run on top of this crate, which owns everything that touches the operating system's network
//! stack, so that limits, timeouts and shutdown behave the same for every service.
//!
//! Layout:
//! - [`addr`]: parsing `host:port`, `[v6]:port` and bare ports (which mean loopback).
//! - [`tcp`]: the TCP server runner (accept loop, connection cap with a "busy" reply, idle
//!   timeout, graceful shutdown that drains), [`tcp::Conn`], a connection's context, and
//!   [`tcp::connect_tcp`] and [`tcp::connect_tcp_blocking`], how clients connect.
//! - [`udp`]: the UDP server runner (receive loop, replies now or later, the same shutdown),
//!   [`udp::bind_pair`] (a UDP socket group and a TCP listener on one port) and
//!   [`udp::connect_udp`], a client's connected socket.
//! - [`batch`]: batched `recvmmsg`/`sendmmsg` for thread-per-socket services and clients, and
//!   a TCP socket's `TCP_INFO`. With one `setsockopt` in [`tcp`], the crate's only unsafe
//!   code.
//! - [`tls`]: TLS for every service (rustls with ring): lab certificates, server and client
//!   configurations, the handshake within the idle timeout, refusals said in words.
//! - [`framing`]: byte lines with a maximum length and u16 length-prefixed frames.
//! - [`shutdown`]: a cancellation token fired by SIGINT or SIGTERM.
//! - [`memory`]: in-memory connection pairs, so services are tested without sockets.
//! - [`rng`]: seedable random numbers, so every random choice can be replayed.
//! - [`cli`]: what every binary shares: duration parsing and `tracing` set-up.

pub mod addr;
pub mod batch;
pub mod cli;
pub mod framing;
pub mod memory;
pub mod progress;
pub mod rng;
pub mod shutdown;
pub mod tcp;
pub mod tls;
pub mod udp;

pub use addr::{AddrError, parse_addr};
pub use framing::{Line, LineCodec, u16_frames};
pub use shutdown::shutdown_on_signals;
pub use tcp::{Conn, Next, TcpServerConfig, TcpServerStats, bind_tcp, connect_tcp, run_tcp};
pub use tokio_util::sync::CancellationToken;
pub use udp::{UdpReply, UdpServerConfig, UdpServerStats, bind_udp, run_udp};
