//! The probe through `impair udp`: its counts equal the relay's ground truth exactly.
//!
//! Exact equality holds by construction when what one direction does cannot be undone or
//! hidden by the other: a duplicate made upstream whose reply copy is then dropped downstream
//! would leave the probe one reply short of neither count. So each test impairs one direction
//! fully and the other with loss only (or nothing), and the server runs one worker so that it
//! replies in the order it received.

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use protolab_tests::sample::{Memory, memory};
use serde_json::Value;

use crate::common::{Relay, heavy, n, probe, server, session, stop};

/// 100,000 probes at 10,000/s: slow enough that no socket buffer on the path overflows on a
/// loaded machine (which would be a drop no ground truth knows of), long enough for thousands
/// of each event.
const PROBES: &[&str] = &[
    "--count", "100000", "--rate", "10000", "--wait", "3s", "--seed", "1",
];

/// The datagrams the ground truth says were lost each way: the engine's drops, its tail drops,
/// and those the kernel dropped at the relay's sockets before the relay read them (a loaded
/// machine can overflow a socket buffer; SO_RXQ_OVFL counts it, so the sum stays exact). The
/// upstream kernel count is the listening socket's, which only this test's one session uses.
fn losses(truth: &serde_json::Value, session: &serde_json::Value) -> (u64, u64) {
    let (up, down) = (&session["upstream"], &session["downstream"]);
    (
        n(up, "dropped") + n(up, "queue_dropped") + n(truth, "upstream_kernel_dropped"),
        n(down, "dropped") + n(down, "queue_dropped") + n(session, "downstream_kernel_dropped"),
    )
}

#[test]
fn loss_both_ways_duplication_and_reordering_downstream() {
    let _turn = heavy();
    let srv = server(&["--no-tcp"]);
    let relay = Relay::start(
        srv.addr("udp"),
        &[
            "--loss",
            "3%/5%",
            "--dup",
            "0/2%",
            "--reorder",
            "0/10%",
            "--seed",
            "11",
        ],
    );
    let report = probe(relay.addr(), PROBES);
    let truth = relay.stop();
    let counters = stop(srv);
    let s = session(&truth, report["local"].as_str().expect("local address"));
    let (up, down) = (&s["upstream"], &s["downstream"]);

    assert_eq!(
        n(&report, "too_late"),
        0,
        "a reply came after the wait: raise --wait"
    );
    assert_eq!(n(&report, "sent"), 100_000);
    let (lost_up, lost_down) = losses(&truth, s);
    assert_eq!(
        n(up, "received") + n(&truth, "upstream_kernel_dropped"),
        100_000
    );
    assert_eq!(n(&report, "lost_upstream"), lost_up);
    assert_eq!(n(&report, "lost_downstream"), lost_down);
    assert_eq!(n(&report, "lost"), lost_up + lost_down);
    assert_eq!(n(&report, "duplicates"), n(down, "duplicated"));
    assert_eq!(n(&report, "reordered"), n(down, "reordered"));
    assert_eq!(n(&report, "server_received"), n(up, "forwarded"));
    assert_eq!(
        n(&counters, "probes"),
        n(up, "forwarded"),
        "the server echoed what arrived"
    );
    // The impairments happened: equality of zeros would prove nothing.
    for (v, k) in [
        (up, "dropped"),
        (down, "dropped"),
        (down, "duplicated"),
        (down, "reordered"),
    ] {
        assert!(n(v, k) > 1000, "{k} too small to check anything: {v}");
    }
    assert!(n(&report, "reorder_extent_max") >= 1);
}

#[test]
fn loss_duplication_reordering_and_delay_upstream() {
    let _turn = heavy();
    let srv = server(&["--no-tcp"]);
    let relay = Relay::start(
        srv.addr("udp"),
        &[
            "--loss",
            "4%/0",
            "--dup",
            "2%/0",
            "--reorder",
            "10%/0",
            "--delay",
            "2ms/0",
            "--jitter",
            "1ms/0",
            "--seed",
            "12",
        ],
    );
    let report = probe(relay.addr(), PROBES);
    let truth = relay.stop();
    let counters = stop(srv);
    let s = session(&truth, report["local"].as_str().expect("local address"));
    let (up, down) = (&s["upstream"], &s["downstream"]);

    assert_eq!(
        n(&report, "too_late"),
        0,
        "a reply came after the wait: raise --wait"
    );
    let (lost_up, lost_down) = losses(&truth, s);
    assert_eq!(
        n(up, "received") + n(&truth, "upstream_kernel_dropped"),
        100_000,
        "{truth:#}"
    );
    assert_eq!(n(&report, "lost_upstream"), lost_up);
    assert_eq!(n(&report, "lost_downstream"), lost_down);
    assert_eq!(n(down, "dropped"), 0);
    assert_eq!(n(&report, "duplicates"), n(up, "duplicated"));
    assert_eq!(
        n(&counters, "duplicates"),
        n(up, "duplicated"),
        "the server saw the copies"
    );
    assert_eq!(n(&report, "reordered"), n(up, "reordered"));
    for k in ["dropped", "duplicated", "reordered"] {
        assert!(n(up, k) > 1000, "{k} too small to check anything: {up}");
    }
    // The delay is in every round trip (a floor, not a timing measurement).
    assert!(n(&report, "rtt_min_ns") >= 1_000_000, "{report}");
}

#[test]
fn the_same_seed_makes_the_same_decisions() {
    let _turn = heavy();
    let srv = server(&["--no-tcp"]);
    let run = || {
        let relay = Relay::start(
            srv.addr("udp"),
            &[
                "--loss",
                "10%",
                "--dup",
                "5%",
                "--reorder",
                "10%",
                "--seed",
                "99",
            ],
        );
        let report = probe(
            relay.addr(),
            &["--count", "5000", "--rate", "5000", "--wait", "2s"],
        );
        let truth = relay.stop();
        assert_eq!(truth["seed"], "99", "seeds are strings");
        let s = session(&truth, report["local"].as_str().expect("local"));
        // The decisions. (How many held datagrams end up overtaken is an outcome: one held
        // while the traffic pauses longer than the hold limit leaves in order. The engine's unit
        // tests show the hold decisions themselves repeat.)
        let decisions = |v: &serde_json::Value| {
            ["received", "dropped", "duplicated", "forwarded"].map(|k| n(v, k))
        };
        (decisions(&s["upstream"]), decisions(&s["downstream"]))
    };
    let first = run();
    let second = run();
    assert!(
        first.0[1] > 0 && first.0[2] > 0,
        "nothing was decided: {first:?}"
    );
    assert_eq!(
        first, second,
        "same seed, same traffic, different decisions"
    );
    stop(srv);
}

#[test]
fn tcp_probes_lose_nothing_and_keep_order() {
    let srv = server(&[]);
    let report = probe(
        srv.addr("tcp"),
        &["--tcp", "--count", "20000", "--interval", "0s"],
    );
    assert_eq!(report["transport"], "tcp");
    assert_eq!(n(&report, "sent"), 20_000);
    assert_eq!(n(&report, "received"), 20_000);
    for k in [
        "lost",
        "duplicates",
        "reordered",
        "lost_upstream",
        "lost_downstream",
    ] {
        assert_eq!(n(&report, k), 0, "{k} on TCP");
    }
    assert_eq!(n(&report, "server_received"), 20_000);
    // The kernel's own view of the connection is reported. Loopback loses nothing, but on a
    // loaded machine a timer can still fire before an ACK is processed (a spurious
    // retransmission), so the count is read, not pinned to zero: what TCP promises the
    // application, all data in order, is asserted above.
    let info = &report["tcp_info"];
    assert!(info["total_retrans"].as_u64().is_some(), "{info}");
    assert!(info["rtt_us"].as_u64().is_some_and(|us| us > 0), "{info}");
    let counters = stop(srv);
    assert_eq!(n(&counters, "probes"), 20_000);
    assert_eq!(n(&counters, "tcp_connections"), 1);
}

/// A version-1 probe of 64 bytes, written out by hand (magic, version, flow, sequence number).
fn probe_bytes(seq: u64) -> Vec<u8> {
    let mut v = vec![0u8; 64];
    v[..4].copy_from_slice(b"PLUE");
    v[4] = 1;
    v[8..12].copy_from_slice(&7u32.to_be_bytes());
    v[16..24].copy_from_slice(&seq.to_be_bytes());
    v
}

/// Sends probe `seq` through the relay and waits (at most 2 s) for its echo; true if it came.
fn echoed(client: &UdpSocket, seq: u64) -> bool {
    if client.send(&probe_bytes(seq)).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match client.recv(&mut buf) {
            Ok(n) if n >= 24 && buf[16..24] == seq.to_be_bytes() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The `--stats` file once `done` holds for it, polled for at most `limit`: `Ok` with it, or
/// `Err` with the last one read.
fn poll_stats(path: &Path, limit: Duration, done: impl Fn(&Value) -> bool) -> Result<Value, Value> {
    let until = Instant::now() + limit;
    let mut last = Value::Null;
    while Instant::now() < until {
        if let Some(v) = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            if done(&v) {
                return Ok(v);
            }
            last = v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

/// As [`poll_stats`], failing the test when `done` never holds.
fn stats_until(path: &Path, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    poll_stats(path, limit, done).unwrap_or_else(|last| {
        panic!("the --stats file never showed what was expected within {limit:?}; last: {last:#}")
    })
}

/// A counter that may be absent from the JSON (the older ground truth had none).
fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

#[test]
fn a_stats_file_that_cannot_be_written_never_stops_the_relay() {
    let srv = server(&["--no-tcp"]);
    let mut relay = Relay::start(srv.addr("udp"), &[]);
    let dir = relay.stats.parent().expect("stats in a folder").to_owned();
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect(relay.addr()).expect("connect");
    // Generous: on a loaded machine an echo can take seconds; only a missing one is a failure.
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut seq = 0;
    assert!(echoed(&client, seq), "no echo through the relay at all");

    // The folder goes away: every write of the stats fails from the next tick on.
    std::fs::remove_dir_all(&dir).expect("remove the stats folder");
    for _ in 0..30 {
        seq += 1;
        assert!(
            echoed(&client, seq),
            "probe {seq} got no echo after the stats folder was removed: the relay stopped \
             forwarding (exit status {:?})",
            relay.server.proc.child.try_wait()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        matches!(relay.server.proc.child.try_wait(), Ok(None)),
        "the relay exited when its stats could not be written"
    );

    // The folder is back: the stats appear again, counting every probe.
    std::fs::create_dir(&dir).expect("recreate the stats folder");
    let sent = seq + 1;
    let seen = stats_until(&relay.stats, Duration::from_secs(10), |v| {
        v["upstream"]["forwarded"].as_u64() == Some(sent)
    });
    assert!(count(&seen, "stats_write_errors") >= 2, "{seen:#}");
    let truth = relay.stop();
    assert_eq!(n(&truth["upstream"], "received"), sent);
    assert_eq!(n(&truth["downstream"], "forwarded"), sent);
    stop(srv);
}

#[test]
fn a_flood_into_a_slow_bottleneck_is_capped_in_bytes_and_counted_exactly() {
    let _turn = heavy();
    // The server side only receives: at 1 kbit/s nearly nothing reaches it anyway.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    let relay = Relay::start(sink.local_addr().expect("sink addr"), &["--rate", "1kbit"]);
    let pid = relay.server.proc.pid();
    let rss_start = memory(pid).expect("read /proc/PID/status").rss_kib;

    // 4,000 datagrams of 60,000 bytes: 240 MB offered to a bottleneck that takes 125 bytes a
    // second, in bursts of 64 so the relay reads most of them (the rest the kernel drops).
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect(relay.addr()).expect("connect");
    let payload = vec![0x5a_u8; 60_000];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < 4_000 && start.elapsed() < Duration::from_secs(30) {
        if client.send(&payload).is_ok() {
            sent += 1;
        }
        if sent % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Then 1,000 more while the relay cannot read (stopped): its socket's buffer overflows, and
    // the kernel's drops must be counted too.
    relay.server.proc.signal(libc::SIGSTOP);
    for _ in 0..1_000 {
        if client.send(&payload).is_ok() {
            sent += 1;
        }
    }
    relay.server.proc.signal(libc::SIGCONT);
    // Everything sent is either read by the relay or counted as dropped by its kernel.
    let seen = poll_stats(&relay.stats, Duration::from_secs(5), |v| {
        n(&v["upstream"], "received") + count(v, "upstream_kernel_dropped") == sent
    })
    .unwrap_or_else(|last| last);
    let Memory {
        rss_kib: rss,
        peak_kib: peak,
    } = memory(pid).expect("read /proc/PID/status");
    eprintln!("relay RSS: {rss_start} KiB at start, {rss} KiB after the flood, peak {peak} KiB");
    // The default queue is 4 MiB per direction; allow the rest of the process 16 MiB more.
    let bound = rss_start + 4 * 1024 + 16 * 1024;
    assert!(
        peak <= bound,
        "the relay's peak RSS {peak} KiB exceeds {bound} KiB (start {rss_start} KiB): the \
         queue is not capped in bytes; {seen:#}"
    );

    let truth = relay.stop();
    let up = &truth["upstream"];
    let kernel = n(&truth, "upstream_kernel_dropped");
    eprintln!("sent {sent}: {up}, kernel dropped {kernel}");
    assert_eq!(n(up, "received") + kernel, sent, "{truth:#}");
    assert_eq!(
        n(up, "received"),
        n(up, "forwarded") + n(up, "dropped") + n(up, "queue_dropped") + n(up, "queued"),
        "{truth:#}"
    );
    assert!(
        kernel > 0,
        "the stopped relay's socket dropped nothing: {truth:#}"
    );
    assert_eq!(n(up, "dropped"), 0, "no loss was asked for: {up}");
    assert!(n(up, "queue_dropped") > 0, "the queue never filled: {up}");
    // What the queue holds fits the cap: 4 MiB of 60,000-byte datagrams.
    assert!(n(up, "queued") <= (4 << 20) / 60_000, "{up}");
}

#[test]
fn closed_sessions_beyond_the_cap_are_folded_into_the_totals() {
    // The server side counts what arrives, reading all along so that its own buffer never
    // overflows (with a buffer that holds them all besides), until all 2,000 are in or nothing
    // has come for ten seconds (a relay starved of CPU on a loaded machine may pause that long).
    let sink = UdpSocket::bind("127.0.0.1:0").expect("bind sink");
    socket2::SockRef::from(&sink)
        .set_recv_buffer_size(4 << 20)
        .expect("receive buffer");
    let sink_addr = sink.local_addr().expect("sink addr");
    let sink = std::thread::spawn(move || {
        sink.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let mut got = 0u64;
        while got < 2_000 && sink.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    let relay = Relay::start(
        sink_addr,
        &[
            "--keep-closed",
            "100",
            "--session-idle",
            "0s",
            "--max-sessions",
            "4096",
        ],
    );
    // 2,000 clients, each from its own source port (all kept open so no port is reused), one
    // datagram each.
    let clients: Vec<UdpSocket> = (0..2_000)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("hello {i}").as_bytes(), relay.addr())
            .expect("send");
        if i % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    stats_until(&relay.stats, Duration::from_secs(10), |v| {
        v["upstream"]["forwarded"].as_u64() == Some(2_000) && v["sessions_open"].as_u64() == Some(0)
    });
    let truth = relay.stop();
    assert_eq!(n(&truth["upstream"], "received"), 2_000, "{truth:#}");
    assert_eq!(n(&truth["upstream"], "forwarded"), 2_000);
    let listed = truth["sessions"].as_array().expect("sessions");
    assert_eq!(
        listed.len(),
        100,
        "closed sessions kept beyond --keep-closed"
    );
    assert_eq!(n(&truth, "sessions_forgotten"), 1_900);
    // The newest are kept, in the order they opened.
    let newest: Vec<String> = clients[1_900..]
        .iter()
        .map(|c| c.local_addr().expect("addr").to_string())
        .collect();
    let kept: Vec<&str> = listed
        .iter()
        .map(|s| s["client"].as_str().expect("client"))
        .collect();
    assert_eq!(kept, newest);
    // The sink got every datagram.
    assert_eq!(sink.join().expect("sink thread"), 2_000);
}
