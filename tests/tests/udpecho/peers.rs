//! The probe and irtt measure the same loopback path: their RTT medians agree.

use std::process::Command;
use std::time::Duration;

use protolab_tests::{Proc, free_port, require_peer};

use crate::common::{n, probe, server, stop};

/// How far apart the two medians may be. Both measure a loopback round trip, which is almost
/// all scheduler wake-up time (tens of microseconds) on this shared two-core machine; irtt adds
/// its Go runtime's goroutine hand-offs on both ends, and either run may catch the other
/// tenants' bursts. A factor of 4 passes those honest differences yet fails a unit mistake
/// (ms against us is 1000x) or a probe that measured the wrong interval (send to send).
const FACTOR: f64 = 4.0;

#[test]
fn rtt_median_agrees_with_irtt() {
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
    let irtt_median = irtt_json["stats"]["rtt"]["median"]
        .as_f64()
        .unwrap_or_else(|| panic!("no stats.rtt.median in irtt output"));

    let srv = server(&["--no-tcp"]);
    let report = probe(srv.addr("udp"), &["--interval", "1ms", "--count", "2000"]);
    stop(srv);
    let ours = n(&report, "rtt_p50_ns") as f64;
    let ratio = ours.max(irtt_median) / ours.min(irtt_median);
    eprintln!("RTT median: udpecho {ours:.0} ns, irtt {irtt_median:.0} ns, ratio {ratio:.2}");
    assert!(
        ratio <= FACTOR,
        "medians differ by {ratio:.2}x (udpecho {ours} ns, irtt {irtt_median} ns)"
    );
}
