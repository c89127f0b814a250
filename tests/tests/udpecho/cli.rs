//! `udpecho probe` as a person runs it: Ctrl-C, a port where nothing listens, a plain echo.

use std::io::Read;
use std::net::UdpSocket;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use protolab_tests::{Proc, bin};
use serde_json::Value;

use crate::common::{n, server, stop};

/// Starts `udpecho probe TARGET ARGS` with stdout and stderr piped.
fn spawn_probe(target: std::net::SocketAddr, args: &[&str]) -> Proc {
    let mut cmd = Command::new(bin("udpecho"));
    cmd.arg("probe")
        .arg(target.to_string())
        .args(["--quiet"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    Proc::spawn("udpecho probe", &mut cmd)
}

fn read_all(child: &mut Child) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut out)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    (out, err)
}

/// Waits until the server has seen some of the probe's packets: then it is surely sending.
fn until_sending(server: &UdpSocket) {
    let mut buf = [0u8; 2048];
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    server.recv(&mut buf).expect("the probe sends");
}

#[test]
fn sigint_stops_sending_and_prints_the_report() {
    let srv = server(&["--no-tcp"]);
    for json in [true, false] {
        let mut args = vec!["--count", "1000000", "--interval", "1ms"];
        if json {
            args.push("--json");
        }
        let mut probe = spawn_probe(srv.addr("udp"), &args);
        // A second of probing, then Ctrl-C.
        std::thread::sleep(Duration::from_secs(1));
        probe.signal(libc::SIGINT);
        let status = probe
            .wait_for(Duration::from_secs(30))
            .expect("the probe exits after SIGINT");
        let (out, err) = read_all(&mut probe.child);
        assert!(status.success(), "json {json}: {status}: {err}");
        if json {
            let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(r["interrupted"], true);
            let sent = n(&r, "sent");
            assert!(sent > 0 && sent < 1_000_000, "sent {sent}");
            // Loopback loses nothing: every probe sent was answered and counted.
            assert_eq!(n(&r, "received"), sent, "{r:#}");
            assert_eq!(n(&r, "server_received"), sent, "{r:#}");
            assert_eq!(n(&r, "lost"), 0);
        } else {
            assert!(out.contains("interrupted"), "{out}");
            assert!(out.contains("lost"), "the whole table: {out}");
        }
    }
    stop(srv);
}

#[test]
fn a_second_sigint_exits_at_once() {
    // A peer that never answers: after the first SIGINT the probe waits --wait for replies.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut probe = spawn_probe(
        silent.local_addr().expect("addr"),
        &[
            "--count",
            "1000000",
            "--interval",
            "1ms",
            "--wait",
            "1h",
            "--json",
        ],
    );
    until_sending(&silent);
    probe.signal(libc::SIGINT);
    // Still probing or waiting: a second Ctrl-C ends it.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        probe.child.try_wait().expect("try_wait").is_none(),
        "the first SIGINT waits for replies in flight"
    );
    probe.signal(libc::SIGINT);
    let status = probe
        .wait_for(Duration::from_secs(30))
        .expect("the second SIGINT ends the probe");
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(status.signal(), None);
}

#[test]
fn nothing_listening_fails_fast_with_one_line() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    };
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for json in [false, true] {
        let mut args = vec!["--count", "100"];
        if json {
            args.push("--json");
        }
        let mut probe = spawn_probe(target, &args);
        let status = probe.wait_for(Duration::from_secs(30)).expect("exits");
        let (out, err) = read_all(&mut probe.child);
        // The target did not answer: exit status 9, as dig.
        assert_eq!(
            status.code(),
            Some(9),
            "json {json}: {status}\n{out}\n{err}"
        );
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(
            lines[0].starts_with(&format!("error: nothing listens on UDP {target}: ")),
            "{err}"
        );
        assert!(lines[0].contains("udpecho serve"), "names the fix: {err}");
        assert!(out.is_empty(), "no report: {out}");
    }
}

#[test]
fn a_plain_echo_is_named_as_such() {
    let srv = server(&["--no-tcp", "--raw"]);
    let mut probe = spawn_probe(srv.addr("udp"), &["--count", "100", "--interval", "1ms"]);
    let status = probe.wait_for(Duration::from_secs(30)).expect("exits");
    let (out, err) = read_all(&mut probe.child);
    assert_eq!(status.code(), Some(1), "{status}\n{out}\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with(&format!(
            "error: {} sends back plain echoes, not probe replies: ",
            srv.addr("udp")
        )),
        "{err}"
    );
    assert!(lines[0].contains("--raw"), "names the likely cause: {err}");
    let counters = stop(srv);
    assert!(n(&counters, "raw_echoed") > 0);
}

/// Several workers on loopback: each flow stays on one worker's socket (SO_REUSEPORT hashes
/// the flow), so its replies leave in order and the probe counts no reordering. Before, the
/// workers shared one socket and 0.9 to 3% of a fast probe came back reordered.
#[test]
fn several_workers_keep_a_flow_in_order() {
    let _heavy = crate::common::heavy();
    let srv = protolab_tests::Server::start(
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
    let target = srv.addr("udp");
    for _ in 0..3 {
        let report = crate::common::probe(target, &["--count", "5000", "--interval", "20us"]);
        assert_eq!(n(&report, "received"), n(&report, "sent"), "{report:#}");
        assert_eq!(n(&report, "reordered"), 0, "{report:#}");
    }
    stop(srv);
}

/// A second server on a taken port fails as a port in use, in the words every binary uses,
/// instead of joining the first one's SO_REUSEPORT group.
#[test]
fn a_taken_port_is_refused_in_one_wording() {
    let srv = server(&["--no-tcp"]);
    let port = srv.addr("udp").port();
    let out = Command::new(bin("udpecho"))
        .args([
            "serve",
            "--no-tcp",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run udpecho");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot listen on udp 127.0.0.1:{port}: port {port} is already in use\nhint: "
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
    stop(srv);
}
