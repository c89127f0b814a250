//! The link's memory is bounded however much is sent into it, and what it turns away is counted.

use protolab_tests::bin;
use protolab_tests::sample::{Memory, memory};
use serde_json::Value;

use crate::harness::{Link, RIGHT_ADDR, Side};

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// Runs a probe that may get no reply at all through the choked link: it still prints its
/// report, and exits 9 ("the target did not answer") when nothing came back.
/// Packets the left end's devices have handed to the link or dropped (`ip -s -j link` in its
/// namespace): once this reaches what was sent, the link has read everything out of the kernel.
fn left_taken(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-s", "-j", "link", "show"])
        .output()
        .expect("run ip");
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .map(|l| {
            let tx = &l["stats64"]["tx"];
            tx["packets"].as_u64().unwrap_or(0) + tx["dropped"].as_u64().unwrap_or(0)
        })
        .sum()
}

fn probe_report(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run udpecho probe");
    assert!(
        matches!(out.status.code(), Some(0 | 9)),
        "udpecho probe failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 report")
}

#[test]
fn a_flood_into_a_slow_link_is_capped_in_bytes_and_counted() {
    // A bottleneck of 1 kbit/s lets through one 1,400-byte packet in 11 s: everything else
    // waits in the queue or is dropped at its tail.
    let link = Link::start("flood", &["--rate", "1kbit"]);
    let pid = link.proc.pid();
    let rss_start = memory(pid).expect("read /proc/PID/status").rss_kib;
    // 30,000 probes of 1,400 bytes (42 MB) from the left end to the right one.
    let target = format!("{RIGHT_ADDR}:7777");
    let out = probe_report(&mut link.exec(
        Side::Left,
        &bin("udpecho"),
        &[
            "probe", &target, "--json", "--quiet", "--count", "30000", "--rate", "10000", "--size",
            "1400", "--wait", "100ms",
        ],
    ));
    let report: Value = serde_json::from_str(&out).expect("probe JSON");
    assert_eq!(n(&report, "sent"), 30_000);
    // Then 15,000 more while the link cannot read (stopped): the left device's queue of 10,000
    // overflows, and the kernel's drops must be counted too.
    link.proc.signal(libc::SIGSTOP);
    let out = probe_report(&mut link.exec(
        Side::Left,
        &bin("udpecho"),
        &[
            "probe",
            &target,
            "--json",
            "--quiet",
            "--count",
            "15000",
            "--interval",
            "0s",
            "--size",
            "1400",
            "--wait",
            "100ms",
        ],
    ));
    link.proc.signal(libc::SIGCONT);
    let report: Value = serde_json::from_str(&out).expect("probe JSON");
    assert_eq!(n(&report, "sent"), 15_000);
    let sent = 45_000;
    // The link reads what queued in its device while it was stopped before it is stopped for
    // good: wait for that (a loaded machine may take a while), not for a fixed time.
    let start = std::time::Instant::now();
    while left_taken(&link.left) < sent && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let Memory {
        rss_kib: rss,
        peak_kib: peak,
    } = memory(pid).expect("read /proc/PID/status");
    eprintln!("link RSS: {rss_start} KiB at start, {rss} KiB after the flood, peak {peak} KiB");
    let stopped = link.stop();
    assert!(stopped.status.success(), "{:?}", stopped.status);
    // The default queue is 4 MiB per direction; allow the rest of the process 16 MiB more.
    let bound = rss_start + 4 * 1024 + 16 * 1024;
    assert!(
        peak <= bound,
        "the link's peak RSS {peak} KiB exceeds {bound} KiB (start {rss_start} KiB): its queue \
         is not capped in bytes"
    );
    let lr = &stopped.truth["left_to_right"];
    eprintln!("sent {sent}: {lr}");
    // Every probe reached the engine or was counted as dropped by the left kernel before the
    // link read it (the kernel's own packets, if any, come on top).
    let kernel = n(&stopped.truth, "left_to_right_kernel_dropped");
    eprintln!("kernel dropped {kernel}");
    assert!(
        kernel > 0,
        "the stopped link's device dropped nothing: {lr}"
    );
    assert!(n(lr, "received") + kernel >= sent, "{lr}");
    assert_eq!(
        n(lr, "received"),
        n(lr, "forwarded") + n(lr, "dropped") + n(lr, "queue_dropped") + n(lr, "queued"),
        "{lr}"
    );
    assert_eq!(n(lr, "dropped"), 0, "no loss was asked for: {lr}");
    assert!(n(lr, "queue_dropped") > 0, "the queue never filled: {lr}");
    // What the queue holds fits the cap: 4 MiB of 1,428-byte IP packets (and 64 bytes each),
    // besides the kernel's own small packets.
    let others = n(lr, "received") + kernel - sent;
    assert!(n(lr, "queued") <= (4 << 20) / (1_428 + 64) + others, "{lr}");
}
