//! Iterative resolution through a three-level lab hierarchy (root, test., example.test., plus
//! other.test. reached through a nameserver without glue) on 127.0.0.x:53 inside a private
//! network namespace. The hierarchy is served once by knot and nsd, once by protolab's lab
//! zone server; `dns query --trace` and `dns serve --root-hints` resolve it, and unbound with
//! the same root hints gives the same answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use protolab_tests::{Proc, require_peer, run_ok, test_data};

use crate::common::*;

/// Questions and the answers every resolver must give (rcode, RDATA of the answers).
const EXPECT: &[(&str, &str, &str, &[&str])] = &[
    ("www.example.test.", "A", "NOERROR", &["192.0.2.10"]),
    ("www.example.test.", "AAAA", "NOERROR", &["2001:db8::10"]),
    ("example.test.", "MX", "NOERROR", &["10 mail.example.test."]),
    (
        "alias.example.test.",
        "A",
        "NOERROR",
        &["www.other.test.", "192.0.2.77"],
    ),
    ("www.other.test.", "A", "NOERROR", &["192.0.2.77"]),
    ("nope.example.test.", "A", "NXDOMAIN", &[]),
    ("www.example.test.", "TXT", "NOERROR", &[]),
    ("nope.test.", "A", "NXDOMAIN", &[]),
];

/// The hierarchy's files, under tests/test-data/dns/iterative.
fn fixture(name: &str) -> PathBuf {
    test_data("dns/iterative").join(name)
}

/// The zone files: root (127.0.0.1), test. (.2), example.test. (.3), other.test. (.4).
fn files() -> [PathBuf; 4] {
    [
        "root.zone",
        "test.zone",
        "example.test.zone",
        "other.test.zone",
    ]
    .map(fixture)
}

/// Waits until a server inside the namespace answers.
fn wait_in(ns: &str, ip: &str, port: u16) {
    let dig = require_peer("dig", "dnsutils");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&dig)
            .args([
                &format!("@{ip}"),
                "-p",
                &port.to_string(),
                ".",
                "SOA",
                "+time=1",
                "+tries=1",
                "+norecurse",
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("status:"));
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing answers on {ip}:{port} in {ns}");
}

fn start_unbound(ns: &str, dir: &Path, hints: &Path) -> Proc {
    let unbound = require_peer("unbound", "unbound");
    let d = dir.display();
    let conf = format!(
        "server:\n  interface: 127.0.0.54\n  port: 53\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n\
         \x20 directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n\
         \x20 access-control: 127.0.0.0/8 allow\n  root-hints: \"{h}\"\n  do-not-query-localhost: no\n\
         \x20 do-ip6: no\n  module-config: \"iterator\"\n  qname-minimisation: no\n  local-zone: \"test.\" nodefault\n\
         remote-control:\n  control-enable: no\n",
        h = hints.display()
    );
    let path = write(dir, "unbound.conf", &conf);
    let mut c = cmd_in(Some(ns), &unbound);
    c.arg("-d").arg("-c").arg(&path);
    Proc::spawn("unbound", &mut c)
}

fn rdata_only(s: &Seen) -> Vec<String> {
    // Answer lines are `name ttl IN type rdata...`: keep the RDATA.
    let mut v: Vec<String> = s
        .answers
        .iter()
        .map(|l| l.splitn(5, ' ').nth(4).unwrap_or("").to_owned())
        .collect();
    v.sort();
    v
}

fn expected(answers: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = answers.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// Runs the whole check against a hierarchy already running in `ns`.
fn check_hierarchy(ns: &str, dir: &Path) {
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        wait_in(ns, ip, 53);
    }
    let hints = fixture("root.hints");
    let hints_arg = hints.to_str().unwrap();

    // dns query --trace: three steps for www.example.test, each recorded.
    let (seen, v) = dns_query(
        Some(ns),
        &[
            "www.example.test.",
            "A",
            "--trace",
            "--root-hints",
            hints_arg,
            "--seed",
            "1",
        ],
    );
    assert_eq!(rdata_only(&seen), expected(&["192.0.2.10"]));
    let steps = v["trace"].as_array().expect("trace");
    let outcomes: Vec<&str> = steps
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["referral", "referral", "answer"], "{v}");
    let zones: Vec<&str> = steps.iter().map(|s| s["zone"].as_str().unwrap()).collect();
    assert_eq!(zones, [".", "test.", "example.test."]);
    // The text form names every server asked.
    let text = run_ok(cmd_in(Some(ns), &protolab_tests::bin("dns")).args([
        "query",
        "alias.example.test.",
        "--trace",
        "--root-hints",
        hints_arg,
    ]));
    for server in [
        "127.0.0.1#53",
        "127.0.0.2#53",
        "127.0.0.3#53",
        "127.0.0.4#53",
    ] {
        assert!(text.contains(server), "trace mentions {server}:\n{text}");
    }
    assert!(text.contains("192.0.2.77"), "{text}");

    // dns serve --root-hints and unbound, side by side.
    let (resolver, raddr) = start_resolver(
        &["--listen", "127.0.0.53:0", "--root-hints", hints_arg],
        Some(ns),
    );
    let _unbound = start_unbound(ns, dir, &hints);
    wait_in(ns, "127.0.0.54", 53);
    let at_ours = format!("@{}", raddr.ip());
    let our_port = raddr.port().to_string();
    for (name, qtype, rcode, answers) in EXPECT {
        let (trace_seen, _) = dns_query(
            Some(ns),
            &[name, qtype, "--trace", "--root-hints", hints_arg],
        );
        let (ours, _) = dig(Some(ns), &[&at_ours, "-p", &our_port, name, qtype]);
        let (theirs, _) = dig(Some(ns), &["@127.0.0.54", name, qtype]);
        for (who, s) in [
            ("dns query --trace", &trace_seen),
            ("dns serve", &ours),
            ("unbound", &theirs),
        ] {
            assert_eq!(s.rcode, *rcode, "{who}: {name} {qtype}");
            assert_eq!(rdata_only(s), expected(answers), "{who}: {name} {qtype}");
        }
    }
    // The second round comes from the cache.
    for (name, qtype, rcode, _) in EXPECT {
        let (ours, _) = dig(Some(ns), &[&at_ours, "-p", &our_port, name, qtype]);
        assert_eq!(ours.rcode, *rcode);
    }
    let stats = stop_with_stats(resolver);
    assert_eq!(stats["resolver"]["cache_hits"], EXPECT.len(), "{stats}");
    assert_eq!(stats["resolver"]["upstream_failures"], 0, "{stats}");
}

#[test]
fn knot_and_nsd_hierarchy() {
    let ns = Netns::new("peers");
    let dir = tempfile::tempdir().unwrap();
    let [root, test, example, other] = files();
    let _root = start_knot(
        dir.path(),
        &[(".", root.as_path())],
        "127.0.0.1@53",
        Some(&ns.name),
    );
    let _test = start_knot(
        dir.path(),
        &[("test.", test.as_path())],
        "127.0.0.2@53",
        Some(&ns.name),
    );
    let _example = start_nsd(
        dir.path(),
        &[("example.test.", example.as_path())],
        "127.0.0.3",
        53,
        Some(&ns.name),
    );
    let _other = start_nsd(
        dir.path(),
        &[("other.test.", other.as_path())],
        "127.0.0.4",
        53,
        Some(&ns.name),
    );
    check_hierarchy(&ns.name, dir.path());
}

#[test]
fn lab_zone_server_hierarchy() {
    let ns = Netns::new("lab");
    let dir = tempfile::tempdir().unwrap();
    let [root, test, example, other] = files();
    let _root = start_lab_zone(&[&root], "127.0.0.1:53", Some(&ns.name));
    let _test = start_lab_zone(&[&test], "127.0.0.2:53", Some(&ns.name));
    let _example = start_lab_zone(&[&example], "127.0.0.3:53", Some(&ns.name));
    let _other = start_lab_zone(&[&other], "127.0.0.4:53", Some(&ns.name));
    check_hierarchy(&ns.name, dir.path());
}
