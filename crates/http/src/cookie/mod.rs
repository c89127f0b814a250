//! Cookies as RFC 6265 section 5 says a user agent keeps them: no I/O, and the time is passed
//! in (seconds since the epoch) to every operation that depends on it.
//!
//! A response's `Set-Cookie` headers go into [`CookieJar::set_cookie`] with the request URL; the
//! next request's `Cookie` header comes from [`CookieJar::cookie_header`]. The jar is saved and
//! loaded in the Netscape cookie file format, so curl (`-b`/`-c`) and Python's
//! `MozillaCookieJar` read what it writes and the other way round.
//!
//! Where the two reference peers differ from RFC 6265, this module follows the RFC (each case is
//! checked in `tests/cookies.rs`): the default path stops before the right-most `/` (curl keeps
//! it: `/app/`); a `Path` not starting with `/` means the default path (curl and Python keep it
//! verbatim); public suffixes are refused (Python has no list and takes `Domain=co.uk`); a
//! Secure cookie from a plain-HTTP origin is stored (curl refuses it, as RFC 6265bis does);
//! cookies of equal path length go out in creation order (curl sorts by domain and name length
//! first, Python by domain).
//!
//! Layout:
//! - [`date`]: the cookie date parser (section 5.1.1).
//! - [`matching`]: canonical hosts, domain matching (5.1.3), default path and path matching
//!   (5.1.4), public suffixes.
//! - [`parse`]: `Set-Cookie` parsing (5.2).
//! - [`jar`]: the storage model (5.3), the `Cookie` header (5.4) and eviction under caps in
//!   cookies and bytes, per domain and in all.
//! - [`netscape`]: the cookie file.

pub mod date;
pub mod jar;
pub mod matching;
pub mod netscape;
pub mod parse;

pub use jar::{Cookie, CookieJar, Limits, Refused, Stored};
pub use matching::RequestTarget;
pub use netscape::LoadReport;
pub use parse::{SameSite, SetCookie, parse_set_cookie};
