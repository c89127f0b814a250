//! protolab-dns: a tiny DNS toolkit. A dig-like stub client, a caching resolver that forwards or
//! resolves iteratively from root hints, and a small authoritative server for lab zones.
//!
//! The wire format comes from hickory-proto (which since 0.26 has no networking of its own);
//! the hot paths read and patch bytes directly (see [`wire`]). Everything that opens a socket
//! goes through protolab-transport.
//!
//! Layout:
//! - [`wire`]: header and question parsing in place, TTL positions, bare and truncated replies,
//!   query building; no I/O.
//! - [`zone`]: master files and the authoritative answer logic (AA, referrals with glue,
//!   NXDOMAIN and NODATA with SOA); no I/O.
//! - [`cache`]: the bounded reply cache with TTL countdown and negative caching; time passed in.
//! - [`rrl`]: response rate limiting per client network for the zone server; time passed in.
//! - [`iterate`]: iterative resolution from root hints as a state machine ([`iterate::Walk`]:
//!   it yields questions, is fed replies or timeouts, and ends with an answer and a typed
//!   trace); no I/O. [`iterate::resolve_with`] drives it over an [`iterate::Ask`].
//! - [`accept`]: whether a datagram is the reply a query waits for (source, id, question),
//!   decided from its bytes; no I/O.
//! - [`present`]: dig-like text, `+short` and RFC 8427 JSON, for messages and traces.
//! - [`pool`]: pre-bound upstream sockets on random ports, reused per server and rotated.
//! - [`client`]: the stub client over UDP, TCP and TLS, using [`accept`] (I/O).
//! - [`dot`]: forwarding over DNS over TLS on kept, pipelined connections (I/O).
//! - [`server`]: the resolver and zone servers on protolab-transport (I/O).

/// A struct of atomic counters shared by tasks, and its plain snapshot for reports: both from
/// one list of fields, so a counter cannot be added to one and forgotten in the other.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $atomic:ident => $plain:ident {
            $( $(#[$fmeta:meta])* pub $field:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $atomic {
            $( $(#[$fmeta])* pub $field: std::sync::atomic::AtomicU64, )*
        }

        #[doc = concat!("A snapshot of [`", stringify!($atomic), "`], for reports.")]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct $plain {
            $( $(#[$fmeta])* pub $field: u64, )*
        }

        impl $atomic {
            /// The counters now.
            pub fn counters(&self) -> $plain {
                $plain {
                    $( $field: self.$field.load(std::sync::atomic::Ordering::Relaxed), )*
                }
            }
        }
    };
}

pub mod accept;
pub mod cache;
pub mod client;
pub mod dot;
pub mod iterate;
pub mod pool;
pub mod present;
pub mod rrl;
pub mod server;
pub mod wire;
pub mod zone;
