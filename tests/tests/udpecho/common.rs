//! Starting the echo server and the relay, running the probe, reading their JSON.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use protolab_tests::Relay;
use protolab_tests::{Server, bin, run_ok};
use serde_json::Value;

/// Tests that push 100,000 packets take turns: several at once on two shared cores could make
/// the kernel drop datagrams at a full socket buffer, which no ground truth would know of.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `udpecho serve` on a free loopback port with one worker (replies in arrival order).
pub fn server(extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--workers", "1"];
    args.extend_from_slice(extra);
    let sockets = if extra.contains(&"--no-tcp") { 1 } else { 2 };
    Server::start("udpecho", &args, sockets)
}

/// Stops a server with SIGTERM and returns the counters it prints on the way out.
pub fn stop(mut server: Server) -> Value {
    server.proc.signal(libc::SIGTERM);
    let status = server.proc.wait_for(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{} did not exit cleanly: {status:?}",
        server.proc.name
    );
    let mut rest = String::new();
    server
        .stdout
        .read_to_string(&mut rest)
        .expect("read stdout");
    let last = rest
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {rest:?}"));
    serde_json::from_str(last).expect("counters JSON")
}

/// Runs `udpecho probe TARGET --json --quiet ARGS` and returns its report.
pub fn probe(target: SocketAddr, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new(bin("udpecho"))
            .arg("probe")
            .arg(target.to_string())
            .args(["--json", "--quiet"])
            .args(args),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("probe JSON: {e}: {out}"))
}

/// The relay session of the client at `local` (the probe's data socket).
pub fn session<'a>(truth: &'a Value, local: &str) -> &'a Value {
    truth["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["client"] == local)
        .unwrap_or_else(|| panic!("no relay session for {local} in {truth:#}"))
}

/// A u64 field.
pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v:#}"))
}

/// A version-1 probe of `size` bytes (the wire format written out by hand, not by the crate).
pub fn probe_bytes(flow: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size];
    v[..4].copy_from_slice(b"PLUE");
    v[4] = 1;
    v[8..12].copy_from_slice(&flow.to_be_bytes());
    v[16..24].copy_from_slice(&seq.to_be_bytes());
    v
}

/// A UDP socket connected to `target`, waiting at most 5 s for a reply.
pub fn client(target: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.connect(target).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}
