//! The caching resolver forwarding to knot: TTLs count down, negative answers are cached for
//! the SOA minimum, and the entry bound evicts the oldest. Upstream is stopped mid-test, so
//! what still answers can only come from the cache.

use std::net::SocketAddr;
use std::time::Duration;

use protolab_tests::free_port;

use crate::common::*;

fn knot_upstream(dir: &std::path::Path) -> (protolab_tests::Proc, SocketAddr) {
    let zone = dir.join("example.test.zone");
    let port = free_port();
    let knot = start_knot(
        dir,
        &[("example.test.", zone.as_path())],
        &format!("127.0.0.1@{port}"),
        None,
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_dns(addr, Duration::from_secs(10));
    (knot, addr)
}

fn ask(resolver: SocketAddr, name: &str, qtype: &str) -> (Seen, serde_json::Value) {
    let server = format!("@{resolver}");
    dns_query(
        None,
        &[
            name,
            qtype,
            server.as_str(),
            "--timeout",
            "3s",
            "--tries",
            "1",
        ],
    )
}

#[test]
fn ttl_counts_down_and_negative_answers_outlive_upstream() {
    let dir = zone_dir();
    let (knot, upstream) = knot_upstream(dir.path());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--timeout",
            "300ms",
        ],
        None,
    );

    let (first, j1) = ask(addr, "www.example.test.", "A");
    assert_eq!(first.rcode, "NOERROR");
    assert_eq!(j1["RA"], 1);
    assert_eq!(j1["answerRRs"][0]["TTL"], 3600);
    let (nx, jn) = ask(addr, "nope.example.test.", "A");
    assert_eq!(nx.rcode, "NXDOMAIN");
    let soa_ttl = jn["authorityRRs"][0]["TTL"].as_u64().unwrap();
    assert!(soa_ttl <= 300, "negative TTL is the SOA minimum: {soa_ttl}");
    let (nodata, _) = ask(addr, "www.example.test.", "MX");
    assert_eq!(
        (nodata.rcode.as_str(), nodata.answers.len()),
        ("NOERROR", 0)
    );

    // Wait past a second boundary: the served TTL must have gone down.
    std::thread::sleep(Duration::from_millis(2100));
    let (_, j2) = ask(addr, "www.example.test.", "A");
    let ttl = j2["answerRRs"][0]["TTL"].as_u64().unwrap();
    assert!(
        (3000..=3598).contains(&ttl),
        "TTL counts down while cached: {ttl}"
    );

    // With knot gone, cached positive and negative answers are still served...
    drop(knot);
    let (again, _) = ask(addr, "nope.example.test.", "A");
    assert_eq!(again.rcode, "NXDOMAIN");
    let (again, _) = ask(addr, "www.example.test.", "MX");
    assert_eq!((again.rcode.as_str(), again.answers.len()), ("NOERROR", 0));
    let (again, _) = ask(addr, "WWW.EXAMPLE.TEST.", "A");
    assert_eq!(again.answers.len(), 2);
    // ...and anything else fails over to SERVFAIL.
    let (fail, _) = ask(addr, "mail.example.test.", "A");
    assert_eq!(fail.rcode, "SERVFAIL");

    let stats = stop_with_stats(resolver);
    assert_eq!(stats["cache"]["negative_inserted"], 2, "{stats}");
    assert_eq!(stats["resolver"]["cache_hits"], 4, "{stats}");
    assert_eq!(stats["resolver"]["upstream_failures"], 1, "{stats}");
}

#[test]
fn cache_bound_in_bytes_evicts_least_recently_used() {
    let dir = zone_dir();
    let (knot, upstream) = knot_upstream(dir.path());
    let up = upstream.to_string();
    // Each of these replies is accounted at 560-600 bytes (wire bytes, key, bookkeeping): 1300
    // bytes hold two of them, not three.
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--cache-size",
            "1300",
            "--timeout",
            "300ms",
        ],
        None,
    );
    for name in [
        "www.example.test.",
        "mail.example.test.",
        "www.example.test.",
    ] {
        assert_eq!(ask(addr, name, "A").0.rcode, "NOERROR");
    }
    // www was used last, so mail is the one to go for sip.
    assert_eq!(ask(addr, "sip.example.test.", "A").0.rcode, "NOERROR");
    drop(knot);
    assert_eq!(ask(addr, "sip.example.test.", "A").0.answers.len(), 1);
    assert_eq!(ask(addr, "www.example.test.", "A").0.answers.len(), 2);
    assert_eq!(
        ask(addr, "mail.example.test.", "A").0.rcode,
        "SERVFAIL",
        "the least recently used entry was evicted"
    );
    let stats = stop_with_stats(resolver);
    assert_eq!(stats["cache"]["entries"], 2, "{stats}");
    assert_eq!(stats["cache"]["evicted"], 1, "{stats}");
    assert_eq!(stats["cache"]["max_bytes"], 1300, "{stats}");
    assert!(stats["cache"]["bytes"].as_u64().unwrap() <= 1300, "{stats}");
}

#[test]
fn big_answer_through_the_resolver_truncates_then_tcp() {
    let dir = zone_dir();
    let (_knot, upstream) = knot_upstream(dir.path());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(&["--listen", "127.0.0.1:0", "--forward", &up], None);
    let server = format!("@{addr}");
    for _ in 0..2 {
        // The first time from upstream, the second from the cache: both too big for 512 bytes.
        let (seen, j) = dns_query(
            None,
            &["big.example.test.", "TXT", server.as_str(), "--no-edns"],
        );
        assert_eq!(seen.answers.len(), 1);
        assert_eq!(j["retriedOverTcp"], true);
        let (dig_seen, dig_tcp) = dig(
            None,
            &[
                &format!("@{}", addr.ip()),
                "-p",
                &addr.port().to_string(),
                "big.example.test.",
                "TXT",
                "+noedns",
            ],
        );
        assert!(dig_tcp, "dig saw TC too");
        assert_eq!(dig_seen.answers.len(), 1);
    }
    let stats = stop_with_stats(resolver);
    assert!(
        stats["resolver"]["cache_hits"].as_u64().unwrap() >= 3,
        "{stats}"
    );
}

#[test]
fn one_hit_is_counted_once_everywhere() {
    let dir = zone_dir();
    let (_knot, upstream) = knot_upstream(dir.path());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(&["--listen", "127.0.0.1:0", "--forward", &up], None);
    for _ in 0..2 {
        assert_eq!(ask(addr, "www.example.test.", "A").0.answers.len(), 2);
    }
    let stats = stop_with_stats(resolver);
    assert_eq!(stats["resolver"]["cache_hits"], 1, "{stats}");
    assert_eq!(stats["cache"]["hits"], 1, "{stats}");
    assert_eq!(stats["resolver"]["cache_misses"], 1, "{stats}");
    assert_eq!(stats["cache"]["misses"], 1, "{stats}");
    assert_eq!(stats["cache"]["inserted"], 1, "{stats}");
}
