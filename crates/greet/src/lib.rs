//! protolab-greet: the classic TCP greeting service from socket-programming courses, done right.
//!
//! The protocol: on connect the server sends `Welcome!`; each line `NAME` gets `Hello, NAME!`;
//! the line `exit`, or the end of the stream, closes the connection. Lines end with LF (CRLF is
//! accepted). Names are bytes and are echoed back as received.
//!
//! Layout:
//! - [`wire`]: the protocol without I/O: replies to lines, to raw chunks and to datagrams.
//! - [`server`]: the driver over protolab-transport: TCP with line or raw framing, and UDP.
//! - [`client`]: `greet hello`, the classic client.
//! - [`bench`]: `greet bench`, a load generator for any one-line request/response server.

pub mod bench;
pub mod client;
pub mod server;
pub mod wire;
