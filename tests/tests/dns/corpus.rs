//! `dns query` against knot, nsd and protolab's own zone server, compared with dig against the
//! same server, over a corpus of questions; and the lab zone server compared with knot.

use std::net::SocketAddr;
use std::time::Duration;

use protolab_tests::free_port;

use crate::common::*;

/// (name, type, with EDNS) for the corpus: 46 questions.
fn corpus() -> Vec<(&'static str, &'static str, bool)> {
    let mut c = Vec::new();
    let names = [
        (
            "example.test.",
            &["A", "MX", "TXT", "NS", "SOA", "AAAA"][..],
        ),
        ("www.example.test.", &["A", "AAAA", "MX", "CNAME"][..]),
        ("WwW.Example.TEST.", &["A"][..]),
        ("mail.example.test.", &["A", "AAAA"][..]),
        ("alias.example.test.", &["A", "CNAME", "AAAA", "TXT"][..]),
        ("chain.example.test.", &["A", "AAAA"][..]),
        ("far.example.test.", &["A"][..]),
        ("txt.example.test.", &["TXT"][..]),
        ("big.example.test.", &["TXT", "A"][..]),
        ("short.example.test.", &["A"][..]),
        ("_sip._udp.example.test.", &["SRV"][..]),
        ("ptr.example.test.", &["PTR"][..]),
        ("a.b.c.example.test.", &["A"][..]),
        ("b.c.example.test.", &["A"][..]),
        ("nope.example.test.", &["A", "MX"][..]),
        ("deep.nope.example.test.", &["TXT"][..]),
        ("ns1.example.test.", &["A", "AAAA"][..]),
    ];
    for (name, types) in names {
        for t in types {
            c.push((name, *t, true));
        }
    }
    // The same questions without EDNS for a sample, including the big TXT that must come back
    // truncated over UDP and whole over TCP.
    for (name, t) in [
        ("big.example.test.", "TXT"),
        ("www.example.test.", "A"),
        ("example.test.", "MX"),
        ("txt.example.test.", "TXT"),
        ("nope.example.test.", "A"),
        ("alias.example.test.", "A"),
        ("example.test.", "SOA"),
        ("www.example.test.", "MX"),
        ("_sip._udp.example.test.", "SRV"),
        ("example.test.", "NS"),
        ("chain.example.test.", "A"),
    ] {
        c.push((name, t, false));
    }
    c
}

/// Runs the corpus against `server`, checking `dns query` agrees with dig on every question.
/// Returns what was seen, in corpus order.
fn check_against_dig(server: SocketAddr) -> Vec<Seen> {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut seen = Vec::new();
    let mut truncated_retries = 0;
    for (name, qtype, edns) in corpus() {
        let mut ours = vec![
            name,
            qtype,
            at.as_str(),
            "--port",
            port.as_str(),
            "--seed",
            "42",
        ];
        let mut theirs = vec![at.as_str(), "-p", port.as_str(), name, qtype];
        if !edns {
            ours.push("--no-edns");
            theirs.push("+noedns");
        }
        let (mine, json) = dns_query(None, &ours);
        let (dig_seen, dig_tcp) = dig(None, &theirs);
        assert_eq!(
            mine, dig_seen,
            "{name} {qtype} edns={edns} against {server}"
        );
        let our_tcp = json["retriedOverTcp"].as_bool().expect("retriedOverTcp");
        assert_eq!(
            our_tcp, dig_tcp,
            "TC retry differs for {name} {qtype} edns={edns}"
        );
        if our_tcp {
            truncated_retries += 1;
            assert_eq!(json["transport"], "tcp");
            assert_eq!(json["client"]["tcp_retries"], 1);
        }
        seen.push(mine);
    }
    assert_eq!(
        truncated_retries, 1,
        "exactly the big TXT without EDNS is truncated"
    );
    let total = corpus().len();
    assert!(total >= 40, "corpus has {total} questions");
    let nx = seen.iter().filter(|s| s.rcode == "NXDOMAIN").count();
    let nodata = seen
        .iter()
        .filter(|s| s.rcode == "NOERROR" && s.answers.is_empty())
        .count();
    assert!(
        nx >= 3 && nodata >= 5,
        "corpus covers NXDOMAIN ({nx}) and NODATA ({nodata})"
    );
    seen
}

#[test]
fn dns_query_matches_dig_against_knot_nsd_and_lab_zone_server() {
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let zones = [("example.test.", zone.as_path())];

    let kport = free_port();
    let _knot = start_knot(dir.path(), &zones, &format!("127.0.0.1@{kport}"), None);
    let knot: SocketAddr = format!("127.0.0.1:{kport}").parse().unwrap();
    wait_dns(knot, Duration::from_secs(10));
    let from_knot = check_against_dig(knot);

    let nport = free_port();
    let _nsd = start_nsd(dir.path(), &zones, "127.0.0.1", nport, None);
    let nsd: SocketAddr = format!("127.0.0.1:{nport}").parse().unwrap();
    wait_dns(nsd, Duration::from_secs(10));
    let from_nsd = check_against_dig(nsd);

    let (lab_server, lab) = start_lab_zone(&[zone.as_path()], "127.0.0.1:0", None);
    let from_lab = check_against_dig(lab);

    // Three independent servers, one zone: the same RRsets and codes for every question.
    for (i, (name, qtype, edns)) in corpus().into_iter().enumerate() {
        // Owner names may echo the question's letter case or the zone's: compare without case.
        let lower = |s: &Seen| {
            (
                s.rcode.clone(),
                s.answers
                    .iter()
                    .map(|a| a.to_lowercase())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            lower(&from_knot[i]),
            lower(&from_nsd[i]),
            "knot and nsd differ on {name} {qtype} edns={edns}"
        );
        assert_eq!(
            lower(&from_knot[i]),
            lower(&from_lab[i]),
            "knot and dns zone differ on {name} {qtype} edns={edns}"
        );
    }
    let stats = stop_with_stats(lab_server);
    assert_eq!(
        stats["truncated"], 2,
        "both dig and dns query got a TC reply: {stats}"
    );
}
