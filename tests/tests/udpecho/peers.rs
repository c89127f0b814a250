//! The probe and irtt measure the same loopback path side by side: both run to the end, and
//! each one's counts add up with its server's. How close their RTT medians come is a timing
//! comparison, so it is measured by `cargo xtask bench udp` (the row "RTT median: probe vs
//! irtt client"), not asserted here.

use std::process::Command;
use std::time::Duration;

use protolab_tests::{Proc, free_port, require_peer};

use crate::common::{n, probe, server, stop};

#[test]
fn probe_and_irtt_both_measure_the_loopback_path_and_their_counts_agree() {
    let irtt = require_peer("irtt", "irtt");
    let port = free_port();
    let _server = Proc::spawn(
        "irtt server",
        Command::new(&irtt).args(["server", "-b", &format!("127.0.0.1:{port}"), "-i", "0"]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("irtt.json");
    // irtt's server may take a moment to bind: retry the client a few times.
    let mut ok = false;
    for _ in 0..50 {
        let status = Command::new(&irtt)
            .args(["client", "-i", "1ms", "-d", "2s", "-Q", "-o"])
            .arg(&out)
            .arg(format!("127.0.0.1:{port}"))
            .status()
            .expect("run irtt client");
        if status.success() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "irtt client never reached its server");
    let irtt_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("irtt output"))
            .expect("irtt JSON");
    let stats = &irtt_json["stats"];
    let count = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats.{key} in irtt's output"))
    };
    let (sent, at_server, received) = (
        count("packets_sent"),
        count("server_packets_received"),
        count("packets_received"),
    );
    assert!(sent > 0, "irtt sent nothing");
    assert!(
        received > 0 && received <= at_server && at_server <= sent,
        "irtt's counts do not add up: sent {sent}, server received {at_server}, received {received}"
    );
    assert_eq!(
        stats["rtt"]["n"].as_u64(),
        Some(received),
        "irtt has one RTT per reply"
    );
    assert!(
        stats["rtt"]["median"].as_f64().is_some_and(|m| m > 0.0),
        "irtt measured no RTT: {stats}"
    );

    let srv = server(&["--no-tcp"]);
    let report = probe(srv.addr("udp"), &["--interval", "1ms", "--count", "2000"]);
    let counters = stop(srv);
    let (sent, received, lost) = (
        n(&report, "sent"),
        n(&report, "received"),
        n(&report, "lost"),
    );
    assert_eq!(sent, 2000, "{report:#}");
    assert!(received > 0, "no reply came back: {report:#}");
    assert_eq!(received + lost, sent, "{report:#}");
    // The probe's upstream loss is the server's own count of distinct probes, taken from the
    // server at the end of the run: it must match what the server says it received.
    let server_received = n(&report, "server_received");
    assert_eq!(
        n(&report, "lost_upstream"),
        sent - server_received,
        "{report:#}"
    );
    assert!(
        (received..=sent).contains(&server_received),
        "the server counted {server_received} probes; the probe sent {sent} and got {received} back"
    );
    assert!(
        n(&counters, "udp_received") >= server_received,
        "the server's counters ({counters}) are below the probe's view ({server_received})"
    );
    assert!(n(&report, "rtt_p50_ns") > 0, "{report:#}");
}
