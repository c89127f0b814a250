//! protolab-http: HTTP/1.1 client, origin server and caching proxy.
//!
//! Layout:
//! - [`cache`]: the HTTP cache of RFC 9111 without I/O.
//! - [`proxy`]: the caching proxy (forward, reverse, CONNECT tunnels) on protolab-transport.

pub mod cache;
pub mod proxy;
