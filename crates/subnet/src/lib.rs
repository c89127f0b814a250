//! protolab-subnet: how a subnet mask cuts an IP address into a network part and a host part.
//!
//! An address with a prefix length (`192.168.1.77/26`) or a dotted mask (`192.168.1.77
//! 255.255.255.192`) names two things at once: the network it belongs to (the first 26 bits,
//! kept by `address AND mask`) and the host inside that network (the other 6 bits, kept by
//! `address AND wildcard`). Everything else follows from that cut: the network address (host bits
//! all 0), the broadcast address (host bits all 1), the usable hosts in between, and how the
//! network divides into smaller ones by moving the cut to the right.
//!
//! The crate is pure functions over values: no I/O, nothing printed.
//!
//! Layout:
//! - [`parse`]: the accepted input forms (`ADDR/PREFIX`, `ADDR MASK`, `ADDR/MASK`) and `--split`.
//! - [`report`]: [`Report`], every derived field of one address and prefix, and the binary view
//!   with the cut marked.
//! - [`kind`]: what kind of address it is (private, loopback, link-local, multicast,
//!   documentation, unique-local...), from the IANA special-purpose registries.
//! - [`split`]: dividing a network into equal subnets.

pub mod kind;
pub mod parse;
pub mod report;
pub mod split;

pub use parse::{Split, Subnet, parse};
pub use report::{Count, Report};
pub use split::{SplitReport, SubnetRow, split};

/// At most this many subnets are produced by one split: the list is held in memory and printed.
pub const MAX_SUBNETS: u128 = 65_536;

/// Why an input was refused. Each message reads `<what>: <why>`, with the fix where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// The address part is neither IPv4 nor IPv6.
    #[error("{0}: not an IPv4 or IPv6 address")]
    BadAddress(String),
    /// No prefix or mask was given.
    #[error("{address}: no prefix length or mask: write it as {hint}")]
    NoPrefix { address: String, hint: String },
    /// The prefix length is not a number in range for the family.
    #[error("/{text}: not a prefix length: an IPv{family} prefix is /0 to /{max}")]
    BadPrefix { text: String, family: u8, max: u8 },
    /// A dotted mask that is not an IPv4 address.
    #[error("{0}: not a subnet mask: write four numbers 0-255 like 255.255.255.192, or /26")]
    BadMask(String),
    /// A dotted mask whose 1 bits are not all on the left.
    #[error(
        "{0}: not a subnet mask: its 1 bits must all come first, then only 0 bits (like 255.255.255.192)"
    )]
    NonContiguousMask(String),
    /// A dotted mask given with an IPv6 address.
    #[error("{0}: a dotted mask is for IPv4 only: give an IPv6 prefix as /64")]
    DottedMaskForV6(String),
    /// `--split` text that is neither a count nor `/PREFIX`.
    #[error("--split {0}: not a split: write a number of subnets (4) or their prefix (/28)")]
    BadSplit(String),
    /// A subnet count that is not a power of two.
    #[error(
        "--split {0}: not a power of two: each step of a split halves every subnet, so write 2, 4, 8, 16..."
    )]
    NotPowerOfTwo(u128),
    /// The subnets asked for would be larger than the network (or the same prefix is longer than
    /// the family allows).
    #[error("--split {asked}: a /{prefix} network holds no {what}: {why}")]
    SplitDoesNotFit {
        asked: String,
        prefix: u8,
        what: String,
        why: String,
    },
    /// The split would list more subnets than [`MAX_SUBNETS`].
    #[error(
        "--split {asked}: {count} subnets is more than the {max} listed at most: ask for fewer or larger subnets"
    )]
    TooManySubnets {
        asked: String,
        count: u128,
        max: u128,
    },
}
