//! The link carries the kernel's UDP and TCP; the UDP probe's counts equal the link's ground
//! truth exactly, while TCP hides the same loss behind retransmissions.

use std::sync::{Mutex, MutexGuard};

use protolab_tests::{Server, bin, run_ok};
use serde_json::Value;

use crate::harness::{Link, RIGHT_ADDR, Side, truth_of};

/// Tests that push thousands of packets take turns, so that no socket buffer overflows on two
/// shared cores (a drop no ground truth would know of).
fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `udpecho serve` in the right namespace, one worker so replies keep arrival order.
fn echo_server(link: &Link) -> Server {
    let listen = format!("{RIGHT_ADDR}:7777");
    Server::start_cmd(
        "udpecho serve",
        link.exec(
            Side::Right,
            &bin("udpecho"),
            &["serve", "--listen", &listen, "--workers", "1"],
        ),
        2,
    )
}

/// `udpecho probe` from the left namespace; its JSON report.
fn probe(link: &Link, args: &[&str]) -> Value {
    let target = format!("{RIGHT_ADDR}:7777");
    let mut all = vec!["probe", target.as_str(), "--json", "--quiet"];
    all.extend_from_slice(args);
    let out = run_ok(&mut link.exec(Side::Left, &bin("udpecho"), &all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe JSON: {e}: {out}"))
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

#[test]
fn without_impairment_the_probe_sees_no_loss() {
    let _turn = heavy();
    let link = Link::start("clean", &[]);
    let _server = echo_server(&link);
    let report = probe(
        &link,
        &["--count", "20000", "--rate", "5000", "--wait", "2s"],
    );
    let stopped = link.stop();
    assert_eq!(n(&report, "sent"), 20_000);
    assert_eq!(n(&report, "received"), 20_000, "{report}");
    for k in ["lost", "duplicates", "reordered"] {
        assert_eq!(n(&report, k), 0, "{k}: {report}");
    }
    let [lr_in, lr_out, lr_drop, lr_dup, lr_reo] = truth_of(&stopped.truth, "left_to_right");
    let [rl_in, rl_out, rl_drop, ..] = truth_of(&stopped.truth, "right_to_left");
    // The probes and the final counters request(s) went right; their echoes came back.
    assert_eq!(lr_in, 20_000 + n(&report, "stats_requests"));
    assert_eq!((lr_out, lr_drop, lr_dup, lr_reo), (lr_in, 0, 0, 0));
    assert_eq!((rl_in, rl_out, rl_drop), (lr_out, lr_out, 0));
}

/// Counts, from the link's JSON trace, what it did to the packets of one UDP port.
#[derive(Debug, Default, PartialEq)]
struct FlowFate {
    seen: u64,
    dropped: u64,
    duplicated: u64,
}

fn flow_fate(lines: &[String], direction: &str, port_key: &str, port: u64) -> (FlowFate, FlowFate) {
    let (mut mine, mut others) = (FlowFate::default(), FlowFate::default());
    for l in lines {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        if v["direction"] != direction {
            continue;
        }
        let t = &v["packet"]["transport"];
        let f = if t["protocol"] == "udp" && t[port_key] == port {
            &mut mine
        } else {
            &mut others
        };
        f.seen += 1;
        if v["action"]["dropped"] == true {
            f.dropped += 1;
        }
        if v["action"]["copies"] == 2 {
            f.duplicated += 1;
        }
    }
    (mine, others)
}

#[test]
fn udp_probe_counts_equal_the_link_ground_truth() {
    let _turn = heavy();
    // Loss both ways, duplication and reordering on the way back (what one direction does
    // cannot then be hidden by the other: see the relay's tests for why).
    let link = Link::start(
        "lossy",
        &[
            "--loss",
            "4%/5%",
            "--dup",
            "0/2%",
            "--reorder",
            "0/10%",
            "--seed",
            "21",
            "--trace",
            "--json",
        ],
    );
    let _server = echo_server(&link);
    let report = probe(
        &link,
        &[
            "--count", "20000", "--rate", "4000", "--wait", "2s", "--seed", "3",
        ],
    );
    let stopped = link.stop();
    let summary: Value = stopped
        .lines
        .iter()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["event"] == "summary")
        })
        .expect("a JSON summary");
    assert_eq!(
        summary["trace_lost"], 0,
        "the trace missed packets: the counts below need all"
    );
    let port: u64 = report["local"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("the probe's local address");
    let (up, down) = (
        truth_of(&stopped.truth, "left_to_right"),
        truth_of(&stopped.truth, "right_to_left"),
    );
    let (up_probe, up_other) = flow_fate(&stopped.lines, "left_to_right", "src_port", port);
    let (down_probe, down_other) = flow_fate(&stopped.lines, "right_to_left", "dst_port", port);

    assert_eq!(n(&report, "too_late"), 0, "a reply came after the wait");
    assert_eq!(n(&report, "sent"), 20_000);
    // The trace accounts for every packet the ground truth counted, the probe's and those of
    // the final counters exchange (sent from a socket of its own).
    assert_eq!(
        up_probe.seen, 20_000,
        "the link did not read every probe: the kernel dropped some at the TUN device's queue"
    );
    assert_eq!(up_probe.seen + up_other.seen, up[0]);
    assert_eq!(up_probe.dropped + up_other.dropped, up[2]);
    assert_eq!(down_probe.seen + down_other.seen, down[0]);
    assert_eq!(down_probe.dropped + down_other.dropped, down[2]);
    assert_eq!(down_probe.duplicated + down_other.duplicated, down[3]);
    // The probe's counts are the link's decisions about its packets, exactly.
    assert_eq!(n(&report, "lost_upstream"), up_probe.dropped, "{report}");
    assert_eq!(
        n(&report, "lost_downstream"),
        down_probe.dropped,
        "{report}"
    );
    assert_eq!(n(&report, "lost"), up_probe.dropped + down_probe.dropped);
    assert_eq!(n(&report, "duplicates"), down_probe.duplicated);
    assert_eq!(n(&report, "reordered"), down[4], "{report}");
    assert_eq!(n(&report, "server_received"), 20_000 - up_probe.dropped);
    // The impairments happened: equal zeros would prove nothing.
    assert!(
        up_probe.dropped > 400 && down_probe.dropped > 400,
        "{up:?} {down:?}"
    );
    assert!(down_probe.duplicated > 100 && down[4] > 500, "{down:?}");
}

#[test]
fn tcp_delivers_everything_in_order_by_retransmitting() {
    let _turn = heavy();
    let link = Link::start("tcp", &["--loss", "5%", "--seed", "5"]);
    let _server = echo_server(&link);
    let report = probe(
        &link,
        &["--tcp", "--count", "2000", "--rate", "1000", "--wait", "5s"],
    );
    let stopped = link.stop();
    assert_eq!(report["transport"], "tcp");
    assert_eq!(n(&report, "sent"), 2000);
    assert_eq!(n(&report, "received"), 2000, "{report}");
    for k in ["lost", "duplicates", "reordered"] {
        assert_eq!(n(&report, k), 0, "{k} on TCP: {report}");
    }
    let up = truth_of(&stopped.truth, "left_to_right");
    let down = truth_of(&stopped.truth, "right_to_left");
    assert!(
        up[2] > 10 && down[2] > 10,
        "the link dropped segments: {up:?} {down:?}"
    );
    // The kernel's own count of retransmitted segments on the probe's connection (TCP_INFO,
    // read by the probe after the last reply).
    let retrans = report["tcp_info"]["total_retrans"]
        .as_u64()
        .expect("tcp_info in the report");
    let rtt_us = report["tcp_info"]["rtt_us"]
        .as_u64()
        .expect("tcp_info in the report");
    assert!(retrans > 0, "no retransmission over a lossy link: {report}");
    assert!(rtt_us > 0);
}

#[test]
fn the_same_seed_makes_the_same_decisions() {
    let _turn = heavy();
    let run = |tag: &str| {
        let link = Link::start(tag, &["--loss", "10%", "--dup", "5%", "--seed", "99"]);
        let _server = echo_server(&link);
        let report = probe(
            &link,
            &["--count", "3000", "--rate", "3000", "--wait", "1s"],
        );
        let stopped = link.stop();
        (
            n(&report, "lost_upstream"),
            n(&report, "lost_downstream"),
            n(&report, "duplicates"),
            truth_of(&stopped.truth, "left_to_right"),
        )
    };
    let first = run("seed1");
    let second = run("seed2");
    assert!(first.0 > 100, "{first:?}");
    assert_eq!(
        first, second,
        "same seed, same traffic, different decisions"
    );
}

#[test]
fn delay_and_rate_are_in_every_round_trip() {
    let _turn = heavy();
    // 5 ms each way plus 2 ms ± 1 ms back, and a 1 Mbit/s bottleneck: every round trip takes at
    // least 5 + 1 ms (a floor the link guarantees, not a timing measurement).
    let link = Link::start(
        "delay",
        &[
            "--delay", "5ms/2ms", "--jitter", "0/1ms", "--rate", "1mbit", "--seed", "2",
        ],
    );
    let _server = echo_server(&link);
    let report = probe(
        &link,
        &["--count", "200", "--interval", "5ms", "--wait", "2s"],
    );
    let stopped = link.stop();
    assert_eq!(n(&report, "received"), 200, "{report}");
    assert!(n(&report, "rtt_min_ns") >= 6_000_000, "{report}");
    let up = truth_of(&stopped.truth, "left_to_right");
    assert_eq!(up[0], up[1], "a delay drops nothing: {up:?}");
}
