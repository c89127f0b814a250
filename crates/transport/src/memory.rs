//! In-memory connections, so services are tested without sockets.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::DuplexStream;

use crate::tcp::Conn;

/// A connected pair of in-memory byte streams: the first end for the client, the second for
/// the service, with `Conn` context for the service end.
pub fn pair(idle_timeout: Option<Duration>) -> (DuplexStream, DuplexStream, Conn) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
    (client, server, Conn::for_test(peer, idle_timeout))
}
