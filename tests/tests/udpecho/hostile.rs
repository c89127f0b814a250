//! Hostile datagrams: sequence numbers at the edge of their range, datagrams larger than any
//! probe, and a reader that closed the server's standard output. None of them may silence the
//! server, corrupt a flow's counts or its report, or make it exit with a panic.

use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use protolab_tests::{Server, bin};

use crate::common::{client, n, probe_bytes, server, stop};

/// The reply's (flags, server count, window) fields, read by hand from the wire format.
fn reply_fields(c: &UdpSocket, what: &str) -> (u8, u64, u64) {
    let mut buf = [0u8; 2048];
    let len = c
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no reply to {what}: {e}"));
    assert!(len >= 56, "reply to {what} is {len} bytes");
    let u64_at = |at: usize| u64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    (buf[5], u64_at(40), u64_at(48))
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills both descriptors, which this function then owns.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn the_last_sequence_number_does_not_silence_the_server() {
    // Two workers, three hostile probes: each must be answered, so no worker died on one.
    let srv = Server::start(
        "udpecho",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--no-tcp",
        ],
        1,
    );
    let c = client(srv.addr("udp"));
    let last = u64::MAX;

    c.send(&probe_bytes(1, last - 1, 64)).expect("send");
    assert_eq!(reply_fields(&c, "seq 2^64-2"), (0x01, 1, 0));
    c.send(&probe_bytes(1, last, 64)).expect("send");
    assert_eq!(
        reply_fields(&c, "seq 2^64-1"),
        (0x01, 2, 1),
        "two distinct probes, and 2^64-2 just below this one was received"
    );
    c.send(&probe_bytes(1, last, 64)).expect("send");
    assert_eq!(
        reply_fields(&c, "seq 2^64-1 again"),
        (0x01, 2, 1),
        "a duplicate leaves the count alone"
    );
    c.send(&probe_bytes(1, 0, 64)).expect("send");
    assert_eq!(
        reply_fields(&c, "seq 0 after 2^64-1"),
        (0x01, 3, 0),
        "far below the window: counted, as any probe too old to tell from a duplicate"
    );
    for flow in [2, 3] {
        c.send(&probe_bytes(flow, last, 64)).expect("send");
        assert_eq!(reply_fields(&c, "a second flow at 2^64-1"), (0x01, 1, 0));
    }
    // The flow's counters, as the probe asks for them at the end.
    let mut stats = probe_bytes(1, last, 56);
    stats[5] = 0x02;
    c.send(&stats).expect("send");
    assert_eq!(reply_fields(&c, "the counters request"), (0x03, 3, 1));

    let counters = stop(srv);
    assert_eq!(n(&counters, "probes"), 6);
    assert_eq!(n(&counters, "duplicates"), 1);
    assert_eq!(n(&counters, "udp_replied"), 7);
    assert_eq!(n(&counters, "handler_panics"), 0);
}

#[test]
fn oversized_datagrams_count_their_real_size() {
    let srv = server(&["--no-tcp"]);
    let c = client(srv.addr("udp"));
    // The default largest probe is 9,216 bytes; 65,507 is the largest UDP payload over IPv4.
    let sizes = [9_217usize, 20_000, 65_507];
    for &size in &sizes {
        c.send(&probe_bytes(4, 0, size)).expect("send oversized");
    }
    // One worker answers in order: once this probe's reply is back, all the above were read.
    c.send(&probe_bytes(4, 1, 64)).expect("send");
    let (flags, count, _) = reply_fields(&c, "the probe after the oversized datagrams");
    assert_eq!((flags, count), (0x01, 1));
    let counters = stop(srv);
    let sent_in: usize = sizes.iter().sum::<usize>() + 64;
    assert_eq!(
        n(&counters, "udp_bytes_in"),
        sent_in as u64,
        "bytes in are the datagrams' real sizes, not the receive buffer's"
    );
    assert_eq!(n(&counters, "oversized"), 3);
    assert_eq!(n(&counters, "udp_received"), 4);
    assert_eq!(n(&counters, "udp_bytes_out"), 64);
}

#[test]
fn serve_with_standard_output_closed_exits_cleanly() {
    let mut cmd = Command::new(bin("udpecho"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    let srv = Server::start_cmd("udpecho", cmd, 2);
    let c = client(srv.addr("udp"));
    c.send(&probe_bytes(5, 0, 64)).expect("send");
    reply_fields(&c, "a probe");
    let Server {
        mut proc, stdout, ..
    } = srv;
    // The reader goes away: the report printed at exit has nowhere to go.
    drop(stdout);
    proc.signal(libc::SIGTERM);
    let status = proc.wait_for(Duration::from_secs(10)).expect("exits");
    let mut err = String::new();
    proc.child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(status.success(), "{status}, stderr: {err}");
}

#[test]
fn probe_with_standard_output_closed_exits_cleanly() {
    let srv = server(&["--no-tcp"]);
    for json in [true, false] {
        let mut cmd = Command::new(bin("udpecho"));
        cmd.arg("probe").arg(srv.addr("udp").to_string()).args([
            "--count",
            "3",
            "--interval",
            "1ms",
            "--quiet",
        ]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .stdout(closed_pipe())
            .output()
            .expect("run udpecho probe");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "json {json}, stderr: {err}");
        assert!(out.status.success(), "json {json}: {}, {err}", out.status);
    }
    stop(srv);
}
