//! protolab-http: HTTP/1.1 and its cookies.
//!
//! Layout:
//! - [`cookie`]: the RFC 6265 cookie jar, without I/O, and the Netscape cookie file format.

pub mod cookie;
