//! The link's memory is bounded however much is sent into it, and what it turns away is counted.

use protolab_tests::{bin, run_ok};
use serde_json::Value;

use crate::harness::{Link, RIGHT_ADDR, Side};

/// A counter of /proc/PID/status in KiB (`VmRSS`, `VmHWM`).
fn vm_kib(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

#[test]
fn a_flood_into_a_slow_link_is_capped_in_bytes_and_counted() {
    // A bottleneck of 1 kbit/s lets through one 1,400-byte packet in 11 s: everything else
    // waits in the queue or is dropped at its tail.
    let link = Link::start("flood", &["--rate", "1kbit"]);
    let pid = link.proc.pid();
    let rss_start = vm_kib(pid, "VmRSS");
    // 30,000 probes of 1,400 bytes (42 MB) from the left end to the right one.
    let target = format!("{RIGHT_ADDR}:7777");
    let out = run_ok(&mut link.exec(
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
    let out = run_ok(&mut link.exec(
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
    let (rss, peak) = (vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM"));
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
