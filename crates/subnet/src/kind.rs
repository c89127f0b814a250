//! What kind of address an address is, from the IANA IPv4 and IPv6 special-purpose address
//! registries (RFC 6890 and the RFCs each entry names).
//!
//! An address can be of several kinds (`0.0.0.0` is both `unspecified` and `this-network`);
//! one outside every special range is `global`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One kind, with the range and the RFC that defines it, for the text report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The name used in `--json` (`private`, `loopback`, `link-local`...).
    pub name: &'static str,
    /// The range and its source, for people.
    pub why: &'static str,
}

const V4: &[(u32, u8, Kind)] = &[
    (0x0000_0000, 8, k("this-network", "0.0.0.0/8, RFC 791")),
    (0x0a00_0000, 8, k("private", "10.0.0.0/8, RFC 1918")),
    (
        0x6440_0000,
        10,
        k("shared", "100.64.0.0/10, carrier-grade NAT, RFC 6598"),
    ),
    (0x7f00_0000, 8, k("loopback", "127.0.0.0/8, RFC 1122")),
    (0xa9fe_0000, 16, k("link-local", "169.254.0.0/16, RFC 3927")),
    (0xac10_0000, 12, k("private", "172.16.0.0/12, RFC 1918")),
    (
        0xc000_0000,
        24,
        k("protocol-assignments", "192.0.0.0/24, RFC 6890"),
    ),
    (
        0xc000_0200,
        24,
        k("documentation", "192.0.2.0/24 TEST-NET-1, RFC 5737"),
    ),
    (0xc0a8_0000, 16, k("private", "192.168.0.0/16, RFC 1918")),
    (
        0xc612_0000,
        15,
        k("benchmarking", "198.18.0.0/15, RFC 2544"),
    ),
    (
        0xc633_6400,
        24,
        k("documentation", "198.51.100.0/24 TEST-NET-2, RFC 5737"),
    ),
    (
        0xcb00_7100,
        24,
        k("documentation", "203.0.113.0/24 TEST-NET-3, RFC 5737"),
    ),
    (0xe000_0000, 4, k("multicast", "224.0.0.0/4, RFC 5771")),
    (0xf000_0000, 4, k("reserved", "240.0.0.0/4, RFC 1112")),
];

const V6: &[(u128, u8, Kind)] = &[
    (0, 128, k("unspecified", "::/128, RFC 4291")),
    (1, 128, k("loopback", "::1/128, RFC 4291")),
    (
        0xffff_0000_0000,
        96,
        k("ipv4-mapped", "::ffff:0:0/96, RFC 4291"),
    ),
    (0x0064_ff9b << 96, 96, k("nat64", "64:ff9b::/96, RFC 6052")),
    (0x0100 << 112, 64, k("discard-only", "100::/64, RFC 6666")),
    (
        0x2001 << 112,
        23,
        k("protocol-assignments", "2001::/23, RFC 2928"),
    ),
    (
        0x2001_0db8 << 96,
        32,
        k("documentation", "2001:db8::/32, RFC 3849"),
    ),
    (0x2002 << 112, 16, k("6to4", "2002::/16, RFC 3056")),
    (0xfc00 << 112, 7, k("unique-local", "fc00::/7, RFC 4193")),
    (0xfe80 << 112, 10, k("link-local", "fe80::/10, RFC 4291")),
    (0xff00 << 112, 8, k("multicast", "ff00::/8, RFC 4291")),
];

const fn k(name: &'static str, why: &'static str) -> Kind {
    Kind { name, why }
}

const GLOBAL: Kind = k("global", "outside every special-purpose range");
const UNSPECIFIED_V4: Kind = k("unspecified", "0.0.0.0, RFC 1122");
const LIMITED_BROADCAST: Kind = k("limited-broadcast", "255.255.255.255, RFC 919");

/// The kinds of `a`, most specific first; `global` when no special range holds it.
pub fn kinds(a: IpAddr) -> Vec<Kind> {
    let mut out = Vec::new();
    match a {
        IpAddr::V4(v4) => {
            if v4 == Ipv4Addr::UNSPECIFIED {
                out.push(UNSPECIFIED_V4);
            }
            if v4 == Ipv4Addr::BROADCAST {
                out.push(LIMITED_BROADCAST);
            }
            let x = u32::from(v4);
            for (net, len, kind) in V4 {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                if x & mask == *net {
                    out.push(*kind);
                }
            }
        }
        IpAddr::V6(v6) => {
            let x = u128::from(v6);
            for (net, len, kind) in V6 {
                let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                if x & mask == *net {
                    out.push(*kind);
                }
            }
            if out.is_empty() && x >> 125 == 1 {
                out.push(k("global", "2000::/3 global unicast, RFC 4291"));
            }
            if out.is_empty() && v6 != Ipv6Addr::UNSPECIFIED {
                out.push(k(
                    "reserved",
                    "outside 2000::/3 and every special range, RFC 4291",
                ));
            }
        }
    }
    if out.is_empty() {
        out.push(GLOBAL);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(a: &str) -> Vec<&'static str> {
        kinds(a.parse().unwrap()).iter().map(|k| k.name).collect()
    }

    #[test]
    fn v4_kinds() {
        assert_eq!(names("192.168.1.77"), ["private"]);
        assert_eq!(names("172.31.255.255"), ["private"]);
        assert_eq!(names("172.32.0.0"), ["global"]);
        assert_eq!(names("127.0.0.1"), ["loopback"]);
        assert_eq!(names("169.254.3.4"), ["link-local"]);
        assert_eq!(names("239.1.2.3"), ["multicast"]);
        assert_eq!(names("198.51.100.7"), ["documentation"]);
        assert_eq!(names("198.19.0.1"), ["benchmarking"]);
        assert_eq!(names("0.0.0.0"), ["unspecified", "this-network"]);
        assert_eq!(names("255.255.255.255"), ["limited-broadcast", "reserved"]);
        assert_eq!(names("8.8.8.8"), ["global"]);
    }

    #[test]
    fn v6_kinds() {
        assert_eq!(names("::1"), ["loopback"]);
        assert_eq!(names("::"), ["unspecified"]);
        assert_eq!(names("fd12:3456::1"), ["unique-local"]);
        assert_eq!(names("fe80::1"), ["link-local"]);
        assert_eq!(names("ff02::1"), ["multicast"]);
        assert_eq!(names("2001:db8:abcd::1"), ["documentation"]);
        assert_eq!(names("2606:4700::1"), ["global"]);
        assert_eq!(names("::ffff:192.0.2.1"), ["ipv4-mapped"]);
        assert_eq!(names("4000::1"), ["reserved"]);
        assert_eq!(names("2001::1"), ["protocol-assignments"]);
        assert_eq!(names("100::1"), ["discard-only"]);
    }
}
