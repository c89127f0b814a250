//! [`Report`]: every field derived from one address and prefix, as `subnet` prints it and as
//! `--json` carries it.
//!
//! Host rules: IPv4 keeps the all-0 host (the network address) and the all-1 host (the
//! broadcast address) out of the usable hosts, except on a /31 point-to-point link where both
//! addresses are hosts and there is no broadcast (RFC 3021) and on a /32, a single host. IPv6
//! has no broadcast; the all-0 host is the Subnet-Router anycast address (RFC 4291 section 2.6.1)
//! and is not a host, except on a /127 inter-router link (RFC 6164) and on a /128.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use crate::kind::{self, Kind};
use crate::parse::{Subnet, family};

/// A number of addresses: a JSON number for IPv4, a decimal string for IPv6, whose counts go up
/// to 2^128 and would lose digits as JSON numbers (which most readers hold as 64-bit floats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Count {
    /// An IPv4 count (at most 2^32).
    Number(u64),
    /// An IPv6 count in decimal.
    Decimal(String),
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Number(n) => write!(f, "{n}"),
            Count::Decimal(s) => f.write_str(s),
        }
    }
}

/// The binary view: each value's bits grouped by octet (IPv4, `.`) or by 16 bits (IPv6, `:`),
/// with `|` at the cut between the network bits and the host bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binary {
    pub address: String,
    pub mask: String,
    pub wildcard: String,
    pub network: String,
    pub last_address: String,
}

/// One kind of address, for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindEntry {
    /// `private`, `loopback`, `link-local`, `multicast`, `documentation`, `unique-local`...
    pub name: &'static str,
    /// The range and the RFC that defines it.
    pub range: &'static str,
}

impl From<Kind> for KindEntry {
    fn from(k: Kind) -> KindEntry {
        KindEntry {
            name: k.name,
            range: k.why,
        }
    }
}

/// Everything `subnet ADDR/PREFIX` shows. Field meanings are listed in docs/subnet.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// 4 or 6.
    pub family: u8,
    /// The address as given, in its shortest form (IPv6 compressed per RFC 5952).
    pub address: String,
    /// IPv6: every group written with four digits; IPv4: the same as `address`.
    pub expanded: String,
    /// The prefix length: how many leading bits are the network part.
    pub prefix: u8,
    /// The host part's length in bits (32 or 128 less `prefix`).
    pub host_bits: u8,
    /// The mask: `prefix` 1 bits then 0 bits (dotted for IPv4).
    pub mask: String,
    /// The mask inverted: the host bits (Cisco's wildcard mask).
    pub wildcard: String,
    /// The network address: the address AND the mask (host bits all 0).
    pub network: String,
    /// `network/prefix`.
    pub cidr: String,
    /// The broadcast address (host bits all 1); IPv4 prefixes up to /30 only.
    pub broadcast: Option<String>,
    /// The network's first address (the network address).
    pub first_address: String,
    /// The network's last address (host bits all 1).
    pub last_address: String,
    /// The first usable host address.
    pub first_host: String,
    /// The last usable host address.
    pub last_host: String,
    /// How many addresses the network holds: 2^host_bits.
    pub addresses: Count,
    /// How many of them are usable host addresses.
    pub hosts: Count,
    /// Which rule gave `hosts`.
    pub host_rule: &'static str,
    /// IPv6 with a prefix up to /64: how many /64 subnets (LANs) the network holds.
    pub subnets_64: Option<Count>,
    /// The binary view with the cut marked.
    pub binary: Binary,
    /// The kinds of the address, most specific first.
    pub kinds: Vec<KindEntry>,
}

impl Report {
    /// Derives every field of `s`.
    pub fn new(s: &Subnet) -> Report {
        let width = u32::from(s.width());
        let prefix = u32::from(s.prefix());
        let host_bits = width - prefix;
        let addr = to_bits(s.address());
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        // `checked_shl` covers the full-width shifts (/0 and the host bits of a /32 or /128).
        let wildcard = all.checked_shr(prefix).unwrap_or(0) & all;
        let mask = all & !wildcard;
        let network = addr & mask;
        let last = network | wildcard;
        let v6 = width == 128;
        let (first_host, last_host, rule) = match (v6, host_bits) {
            (false, 0) => (network, last, "a /32 is a single host"),
            (false, 1) => (
                network,
                last,
                "a /31 is a point-to-point link: both addresses are hosts, no broadcast (RFC 3021)",
            ),
            (false, _) => (
                network + 1,
                last - 1,
                "all addresses but the network address (host bits all 0) and the broadcast (all 1)",
            ),
            (true, 0) => (network, last, "a /128 is a single host"),
            (true, 1) => (
                network,
                last,
                "a /127 is an inter-router link: both addresses are hosts (RFC 6164)",
            ),
            (true, _) => (
                network + 1,
                last,
                "all addresses but the Subnet-Router anycast address (host bits all 0, RFC 4291)",
            ),
        };
        let fam = family(s.address());
        let show = |x: u128| from_bits(x, fam).to_string();
        let addresses = pow2(host_bits, v6);
        let hosts = if !v6 {
            let n = 1u64 << host_bits;
            Count::Number(if host_bits >= 2 { n - 2 } else { n })
        } else if host_bits >= 2 {
            // 2^host_bits - 1 is at most u128::MAX, so it cannot overflow.
            Count::Decimal((u128::MAX >> (128 - host_bits)).to_string())
        } else {
            addresses.clone()
        };
        let subnets_64 = (v6 && prefix <= 64).then(|| pow2(64 - prefix, true));
        Report {
            family: fam,
            address: s.address().to_string(),
            expanded: match s.address() {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => expanded(a),
            },
            prefix: prefix as u8,
            host_bits: host_bits as u8,
            mask: show(mask),
            wildcard: show(wildcard),
            network: show(network),
            cidr: format!("{}/{prefix}", show(network)),
            broadcast: (!v6 && host_bits >= 2).then(|| show(last)),
            first_address: show(network),
            last_address: show(last),
            first_host: show(first_host),
            last_host: show(last_host),
            addresses,
            hosts,
            host_rule: rule,
            subnets_64,
            binary: Binary {
                address: binary(addr, width, prefix),
                mask: binary(mask, width, prefix),
                wildcard: binary(wildcard, width, prefix),
                network: binary(network, width, prefix),
                last_address: binary(last, width, prefix),
            },
            kinds: kind::kinds(s.address())
                .into_iter()
                .map(KindEntry::from)
                .collect(),
        }
    }
}

/// 2^bits as a [`Count`]; 2^128 does not fit a u128, so it is written out.
fn pow2(bits: u32, v6: bool) -> Count {
    if !v6 {
        return Count::Number(1u64 << bits);
    }
    if bits == 128 {
        return Count::Decimal("340282366920938463463374607431768211456".into());
    }
    Count::Decimal((1u128 << bits).to_string())
}

pub(crate) fn to_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn from_bits(x: u128, family: u8) -> IpAddr {
    if family == 4 {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(x))
    }
}

/// An IPv6 address with all eight groups in four hex digits.
pub fn expanded(a: Ipv6Addr) -> String {
    a.segments()
        .iter()
        .map(|g| format!("{g:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `x`'s low `width` bits, grouped (8 for IPv4, 16 for IPv6), with `|` after `prefix` bits.
pub fn binary(x: u128, width: u32, prefix: u32) -> String {
    let group: u32 = if width == 32 { 8 } else { 16 };
    let sep = if width == 32 { '.' } else { ':' };
    let mut out = String::with_capacity((width + width / group + 1) as usize);
    for i in 0..width {
        if i == prefix {
            out.push('|');
        } else if i > 0 && i % group == 0 {
            out.push(sep);
        }
        let bit = (x >> (width - 1 - i)) & 1;
        out.push(if bit == 1 { '1' } else { '0' });
    }
    if prefix == width {
        out.push('|');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn report(s: &str) -> Report {
        Report::new(&parse(s, None).unwrap())
    }

    #[test]
    fn the_classic_example() {
        let r = report("192.168.1.77/26");
        assert_eq!(r.mask, "255.255.255.192");
        assert_eq!(r.wildcard, "0.0.0.63");
        assert_eq!(r.network, "192.168.1.64");
        assert_eq!(r.broadcast.as_deref(), Some("192.168.1.127"));
        assert_eq!(r.first_host, "192.168.1.65");
        assert_eq!(r.last_host, "192.168.1.126");
        assert_eq!(r.addresses, Count::Number(64));
        assert_eq!(r.hosts, Count::Number(62));
        assert_eq!(r.binary.address, "11000000.10101000.00000001.01|001101");
        assert_eq!(r.binary.mask, "11111111.11111111.11111111.11|000000");
        assert_eq!(r.binary.network, "11000000.10101000.00000001.01|000000");
        assert_eq!(r.kinds[0].name, "private");
    }

    #[test]
    fn cut_on_an_octet_boundary_replaces_the_dot() {
        let r = report("10.1.2.3/24");
        assert_eq!(r.binary.mask, "11111111.11111111.11111111|00000000");
        let r = report("10.1.2.3/0");
        assert_eq!(r.binary.mask, "|00000000.00000000.00000000.00000000");
        assert_eq!(r.addresses, Count::Number(1 << 32));
        assert_eq!(r.hosts, Count::Number((1 << 32) - 2));
        let r = report("10.1.2.3/32");
        assert_eq!(r.binary.mask, "11111111.11111111.11111111.11111111|");
    }

    #[test]
    fn rfc_3021_and_host_routes() {
        let r = report("10.0.0.1/31");
        assert_eq!(r.broadcast, None);
        assert_eq!(
            (r.first_host.as_str(), r.last_host.as_str()),
            ("10.0.0.0", "10.0.0.1")
        );
        assert_eq!(r.hosts, Count::Number(2));
        let r = report("10.0.0.1/32");
        assert_eq!(r.broadcast, None);
        assert_eq!(
            (r.first_host.as_str(), r.last_host.as_str()),
            ("10.0.0.1", "10.0.0.1")
        );
        assert_eq!(r.hosts, Count::Number(1));
        let r = report("10.0.0.1/30");
        assert_eq!(r.broadcast.as_deref(), Some("10.0.0.3"));
        assert_eq!(r.hosts, Count::Number(2));
    }

    #[test]
    fn ipv6() {
        let r = report("2001:db8:abcd:12::1/48");
        assert_eq!(r.expanded, "2001:0db8:abcd:0012:0000:0000:0000:0001");
        assert_eq!(r.mask, "ffff:ffff:ffff::");
        assert_eq!(r.cidr, "2001:db8:abcd::/48");
        assert_eq!(r.last_address, "2001:db8:abcd:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(r.first_host, "2001:db8:abcd::1");
        assert_eq!(r.subnets_64, Some(Count::Decimal("65536".into())));
        assert_eq!(r.addresses, Count::Decimal((1u128 << 80).to_string()));
        assert_eq!(r.broadcast, None);
        assert_eq!(r.kinds[0].name, "documentation");
        assert!(
            r.binary
                .mask
                .starts_with("1111111111111111:1111111111111111:1111111111111111|")
        );
        let r = report("::/0");
        assert_eq!(
            r.addresses,
            Count::Decimal("340282366920938463463374607431768211456".into())
        );
        assert_eq!(r.hosts, Count::Decimal(u128::MAX.to_string()));
        let r = report("fe80::1/127");
        assert_eq!(
            (r.first_host.as_str(), r.last_host.as_str()),
            ("fe80::", "fe80::1")
        );
        assert_eq!(r.subnets_64, None);
    }
}
