//! Property test: `subnet --json` against Python's `ipaddress` on 2,000 random address/prefix
//! pairs (1,000 IPv4, 1,000 IPv6) from a seeded RNG, each also split into a random number of
//! subnets. One python3 process answers every case: the cases go in as one JSON array and the
//! answers come back as one.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use protolab_tests::require_peer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::{addr, kinds, subnet_json, text};

const SEED: u64 = 20_261_127;
const CASES_PER_FAMILY: usize = 1_000;

/// What Python's `ipaddress` says about each case.
const ORACLE: &str = r#"
import ipaddress, json, sys

out = []
for c in json.load(sys.stdin):
    iface = ipaddress.ip_interface(f"{c['address']}/{c['prefix']}")
    net, a = iface.network, iface.ip
    n = net.num_addresses
    if n <= 1024:
        hosts = list(net.hosts())
        first, last, count = hosts[0], hosts[-1], len(hosts)
    else:
        # hosts() is a lazy range: network+1 up to broadcast-1 (IPv4) or up to the last address
        # (IPv6). Listing it is checked on every network of up to 1,024 addresses above; larger
        # ones take its first element and the bounds of that same range.
        first = next(iter(net.hosts()))
        if net.version == 4:
            last, count = net.broadcast_address - 1, n - 2
        else:
            last, count = net.broadcast_address, n - 1
    out.append({
        "address": str(a),
        "expanded": a.exploded,
        "network": str(net.network_address),
        "cidr": str(net),
        "mask": str(net.netmask),
        "wildcard": str(net.hostmask),
        "last_address": str(net.broadcast_address),
        "addresses": str(n),
        "hosts": str(count),
        "first_host": str(first),
        "last_host": str(last),
        "is_loopback": a.is_loopback,
        "is_link_local": a.is_link_local,
        "is_multicast": a.is_multicast,
        "is_unspecified": a.is_unspecified,
        "is_private": a.is_private,
        "is_global": a.is_global,
        "subnets": [str(s) for s in net.subnets(new_prefix=c["split"])],
    })
json.dump(out, sys.stdout)
"#;

/// Ranges that random addresses are drawn from a quarter of the time, so that every kind of
/// address is met often (uniform addresses would almost never be loopback or link-local).
const V4_RANGES: &[(&str, u8)] = &[
    ("0.0.0.0", 8),
    ("10.0.0.0", 8),
    ("100.64.0.0", 10),
    ("127.0.0.0", 8),
    ("169.254.0.0", 16),
    ("172.16.0.0", 12),
    ("192.0.2.0", 24),
    ("192.168.0.0", 16),
    ("198.18.0.0", 15),
    ("198.51.100.0", 24),
    ("203.0.113.0", 24),
    ("224.0.0.0", 4),
    ("240.0.0.0", 4),
];
const V6_RANGES: &[(&str, u8)] = &[
    ("::", 128),
    ("::1", 128),
    ("::ffff:0:0", 96),
    ("100::", 64),
    ("2001::", 23),
    ("2001:db8::", 32),
    ("2000::", 3),
    ("fc00::", 7),
    ("fe80::", 10),
    ("ff00::", 8),
];

struct Case {
    address: IpAddr,
    prefix: u8,
    split: u8,
    /// The arguments given to `subnet` (the mask in one of the accepted forms).
    args: Vec<String>,
}

fn random_in(rng: &mut StdRng, base: u128, len: u8, width: u32) -> u128 {
    let host_bits = width - u32::from(len);
    let host_mask = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    base | (rng.random::<u128>() & host_mask)
}

fn cases() -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut out = Vec::new();
    for i in 0..2 * CASES_PER_FAMILY {
        let v4 = i < CASES_PER_FAMILY;
        let width: u32 = if v4 { 32 } else { 128 };
        let special = rng.random_range(0..4) == 0;
        let bits = if special {
            let (base, len) = if v4 {
                let (a, l) = V4_RANGES[rng.random_range(0..V4_RANGES.len())];
                (u128::from(u32::from(a.parse::<Ipv4Addr>().unwrap())), l)
            } else {
                let (a, l) = V6_RANGES[rng.random_range(0..V6_RANGES.len())];
                (u128::from(a.parse::<Ipv6Addr>().unwrap()), l)
            };
            random_in(&mut rng, base, len, width)
        } else {
            random_in(&mut rng, 0, 0, width)
        };
        let address = if v4 {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        };
        let prefix = rng.random_range(0..=width) as u8;
        let split = prefix + rng.random_range(0..=(width - u32::from(prefix)).min(5)) as u8;
        let dotted = || {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Ipv4Addr::from(m).to_string()
        };
        // Every accepted way of writing the mask, in turn.
        let mut args = match (v4, i % 4) {
            (true, 1) => vec![address.to_string(), dotted()],
            (true, 2) => vec![format!("{address}/{}", dotted())],
            (_, 3) => vec![address.to_string(), format!("/{prefix}")],
            _ => vec![format!("{address}/{prefix}")],
        };
        args.push("--split".into());
        args.push(format!("/{split}"));
        out.push(Case {
            address,
            prefix,
            split,
            args,
        });
    }
    out
}

fn ask_python(cases: &[Case]) -> Vec<Value> {
    let python = require_peer("python3", "python3");
    let input: Vec<Value> = cases
        .iter()
        .map(|c| json!({"address": c.address.to_string(), "prefix": c.prefix, "split": c.split}))
        .collect();
    let mut child = Command::new(python)
        .args(["-c", ORACLE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let body = serde_json::to_vec(&input).unwrap();
    // The answers are read after all input is written; python reads all of stdin first, so the
    // pipe cannot fill up in both directions at once.
    child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(&body)
        .expect("write cases to python3");
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success(), "python3 failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("python3 JSON")
}

#[test]
fn every_field_agrees_with_python_ipaddress() {
    let cases = cases();
    let answers = ask_python(&cases);
    assert_eq!(answers.len(), 2 * CASES_PER_FAMILY);
    let mut seen_kinds = std::collections::BTreeSet::new();
    for (case, py) in cases.iter().zip(&answers) {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let ours = subnet_json(&args);
        let ctx = format!("subnet {}", case.args.join(" "));
        // Addresses compare as values: for IPv4-mapped IPv6 addresses Rust writes the dotted
        // form RFC 5952 section 5 recommends (::ffff:192.0.2.1), Python 3.11 the hex one.
        for field in [
            "address",
            "network",
            "mask",
            "wildcard",
            "last_address",
            "first_host",
            "last_host",
        ] {
            assert_eq!(addr(&ours, field), addr(py, field), "{field} of {ctx}");
        }
        assert_eq!(text(&ours, "expanded"), text(py, "expanded"), "{ctx}");
        assert_eq!(
            text(&ours, "cidr").parse::<ipnet::IpNet>().ok(),
            text(py, "cidr").parse::<ipnet::IpNet>().ok(),
            "{ctx}"
        );
        assert_eq!(text(&ours, "addresses"), text(py, "addresses"), "{ctx}");
        assert_eq!(text(&ours, "hosts"), text(py, "hosts"), "{ctx}");
        assert_eq!(ours["prefix"], json!(case.prefix), "{ctx}");
        // A broadcast exists for IPv4 networks of 4 addresses or more (RFC 3021 for /31).
        if case.address.is_ipv4() && case.prefix <= 30 {
            assert_eq!(addr(&ours, "broadcast"), addr(py, "last_address"), "{ctx}");
        } else {
            assert!(ours["broadcast"].is_null(), "{ctx}: {ours}");
        }
        // The split, subnet by subnet.
        let subnets: Vec<ipnet::IpNet> = ours["split"]["subnets"]
            .as_array()
            .expect("split.subnets")
            .iter()
            .map(|s| s["cidr"].as_str().unwrap().parse().unwrap())
            .collect();
        let py_subnets: Vec<ipnet::IpNet> = py["subnets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(subnets, py_subnets, "{ctx}");
        // Kinds: the flags Python defines the same way must agree exactly; the narrower kinds
        // must imply Python's broader is_private (which takes in every range that is not
        // globally reachable), and `global` must imply is_global.
        let k = kinds(&ours);
        let has = |name: &str| k.iter().any(|x| x == name);
        assert_eq!(has("loopback"), py["is_loopback"] == true, "{ctx}: {k:?}");
        assert_eq!(
            has("link-local"),
            py["is_link_local"] == true,
            "{ctx}: {k:?}"
        );
        assert_eq!(has("multicast"), py["is_multicast"] == true, "{ctx}: {k:?}");
        assert_eq!(
            has("unspecified"),
            py["is_unspecified"] == true,
            "{ctx}: {k:?}"
        );
        for narrow in ["private", "documentation", "unique-local", "benchmarking"] {
            if has(narrow) {
                assert_eq!(py["is_private"], true, "{ctx}: {narrow} but not is_private");
            }
        }
        if has("global") {
            assert_eq!(py["is_global"], true, "{ctx}: global but not is_global");
        }
        seen_kinds.extend(k);
    }
    // The random cases met every kind the lesson names.
    for kind in [
        "private",
        "loopback",
        "link-local",
        "multicast",
        "documentation",
        "unique-local",
        "global",
    ] {
        assert!(
            seen_kinds.contains(kind),
            "no {kind} address among the cases"
        );
    }
}
