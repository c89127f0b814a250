//! `subnet --json` against Debian's `ipcalc` and `sipcalc` on fixed cases, read from their text
//! output: network, broadcast, first and last host, and the number of hosts or addresses.

use std::collections::HashMap;
use std::process::Command;

use protolab_tests::{require_peer, run_ok};

use crate::common::{subnet_json, text};

/// Edge prefixes (/0, /1, /30, /31, /32), the classic example, and a mask on an octet boundary.
const V4_CASES: &[&str] = &[
    "192.168.1.77/26",
    "10.20.30.40/8",
    "172.16.5.4/12",
    "198.51.100.200/25",
    "203.0.113.9/24",
    "10.0.0.1/30",
    "10.0.0.1/31",
    "10.0.0.1/32",
    "128.1.2.3/1",
    "0.0.0.0/0",
    "255.255.255.255/16",
];

const V6_CASES: &[&str] = &[
    "2001:db8:abcd:12::1/48",
    "2001:db8::1/64",
    "fe80::1/127",
    "fd12:3456:789a:1::1/56",
    "ff02::1:ff00:1/104",
    "::1/128",
    "::/0",
    "2001:db8:0:0:1:0:0:1/96",
];

/// `Key: value` lines of ipcalc (`Network:   10.0.0.0/24   `).
fn ipcalc(case: &str) -> HashMap<String, String> {
    let ipcalc = require_peer("ipcalc", "ipcalc");
    // -n: no binary columns, -b: no colours.
    let out = run_ok(Command::new(ipcalc).args(["-n", "-b", case]));
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            let v = v.split_whitespace().next().unwrap_or("").to_owned();
            (k.trim().to_owned(), v)
        })
        .collect()
}

/// `Key<tabs>- value` lines of sipcalc; a range split over two lines is joined.
fn sipcalc(case: &str) -> HashMap<String, String> {
    let sipcalc = require_peer("sipcalc", "sipcalc");
    let out = run_ok(Command::new(sipcalc).arg(case));
    let mut map = HashMap::new();
    let mut last_key = String::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once("\t- ") {
            last_key = k.trim().to_owned();
            map.insert(last_key.clone(), v.trim().to_owned());
        } else if line.starts_with('\t') && !last_key.is_empty() {
            // The second half of "Network range - A -\n\t\t\t  B".
            let v = map.get_mut(&last_key).expect("key seen");
            v.push(' ');
            v.push_str(line.trim());
        }
    }
    map
}

#[test]
fn ipv4_agrees_with_ipcalc() {
    for case in V4_CASES {
        let ours = subnet_json(&[case]);
        let theirs = ipcalc(case);
        let prefix = ours["prefix"].as_u64().unwrap();
        if prefix == 32 {
            // ipcalc names a /32 a host route and prints no network or host range.
            assert_eq!(theirs["Hostroute"], text(&ours, "address"), "{case}");
        } else {
            assert_eq!(theirs["Network"], text(&ours, "cidr"), "{case}");
            assert_eq!(theirs["HostMin"], text(&ours, "first_host"), "{case}");
            assert_eq!(theirs["HostMax"], text(&ours, "last_host"), "{case}");
        }
        assert_eq!(theirs["Hosts/Net"], text(&ours, "hosts"), "{case}");
        assert_eq!(theirs["Wildcard"], text(&ours, "wildcard"), "{case}");
        // ipcalc prints no broadcast for /31 (RFC 3021) and /32, as we do.
        assert_eq!(
            theirs.get("Broadcast").cloned(),
            ours["broadcast"].as_str().map(str::to_owned),
            "{case}"
        );
    }
}

#[test]
fn ipv4_agrees_with_sipcalc() {
    for case in V4_CASES {
        let ours = subnet_json(&[case]);
        let theirs = sipcalc(case);
        let prefix = ours["prefix"].as_u64().unwrap();
        assert_eq!(theirs["Network address"], text(&ours, "network"), "{case}");
        assert_eq!(theirs["Network mask"], text(&ours, "mask"), "{case}");
        assert_eq!(theirs["Cisco wildcard"], text(&ours, "wildcard"), "{case}");
        assert_eq!(
            theirs["Network range"],
            format!(
                "{} - {}",
                text(&ours, "first_address"),
                text(&ours, "last_address")
            ),
            "{case}"
        );
        let addresses: u64 = text(&ours, "addresses").parse().unwrap();
        if prefix == 0 {
            // sipcalc counts in 32 bits and prints 2^32 - 1 for a /0; the count is 2^32.
            assert_eq!(theirs["Addresses in network"], "4294967295");
            assert_eq!(addresses, 1 << 32);
        } else {
            assert_eq!(
                theirs["Addresses in network"],
                addresses.to_string(),
                "{case}"
            );
        }
        if prefix <= 30 {
            assert_eq!(
                theirs["Broadcast address"],
                text(&ours, "broadcast"),
                "{case}"
            );
            assert_eq!(
                theirs["Usable range"],
                format!(
                    "{} - {}",
                    text(&ours, "first_host"),
                    text(&ours, "last_host")
                ),
                "{case}"
            );
        } else {
            // sipcalc still names the last address of a /31 or /32 "broadcast" and prints no
            // usable range; RFC 3021 makes both /31 addresses hosts, and we say no broadcast.
            assert_eq!(
                theirs["Broadcast address"],
                text(&ours, "last_address"),
                "{case}"
            );
            assert!(ours["broadcast"].is_null(), "{case}");
            assert!(!theirs.contains_key("Usable range"), "{case}");
        }
    }
}

#[test]
fn ipv6_agrees_with_sipcalc() {
    for case in V6_CASES {
        let ours = subnet_json(&[case]);
        let theirs = sipcalc(case);
        assert_eq!(
            theirs["Expanded Address"],
            text(&ours, "expanded"),
            "{case}"
        );
        assert_eq!(
            theirs["Compressed address"],
            text(&ours, "address"),
            "{case}"
        );
        assert_eq!(
            theirs["Prefix length"],
            ours["prefix"].as_u64().unwrap().to_string(),
            "{case}"
        );
        // sipcalc writes the range in expanded form and the prefix/mask uncompressed.
        let expand = |field: &str| {
            let a: std::net::Ipv6Addr = text(&ours, field).parse().unwrap();
            expanded_form(a)
        };
        assert_eq!(
            theirs["Network range"],
            format!("{} - {}", expand("first_address"), expand("last_address")),
            "{case}"
        );
        let masked: ipnet::Ipv6Net = theirs["Subnet prefix (masked)"].parse().unwrap();
        assert_eq!(masked.to_string(), text(&ours, "cidr"), "{case}");
        let mask: std::net::Ipv6Addr = theirs["Prefix address"].parse().unwrap();
        assert_eq!(mask.to_string(), text(&ours, "mask"), "{case}");
    }
}

/// Every group in four hex digits, written here independently of the crate under test.
fn expanded_form(a: std::net::Ipv6Addr) -> String {
    a.segments()
        .iter()
        .map(|g| format!("{g:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}
