//! Shutdown with nobody reading: a server whose standard output was closed (`dns serve | head
//! -2`, a supervisor that went away) still stops cleanly on SIGTERM, with exit status 0.

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use protolab_tests::{Server, bin};

use crate::common::*;

fn stops_cleanly_with_stdout_closed(name: &str, args: &[&str]) {
    let mut cmd = std::process::Command::new(bin("dns"));
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    let Server {
        mut proc, stdout, ..
    } = Server::start_cmd(name, cmd, 2);
    drop(stdout);
    proc.signal(libc::SIGTERM);
    let status = proc.wait_for(Duration::from_secs(10));
    let mut stderr = String::new();
    let _ = proc
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr);
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert!(
        status.is_some_and(|s| s.success()),
        "{name} exits 0: {status:?} {stderr}"
    );
}

#[test]
fn closed_stdout_at_shutdown_is_not_a_panic() {
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let zone = zone.to_str().unwrap();
    stops_cleanly_with_stdout_closed(
        "dns zone",
        &["zone", "--listen", "127.0.0.1:0", "--zone", zone],
    );
    stops_cleanly_with_stdout_closed(
        "dns serve",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "127.0.0.1:9",
        ],
    );
}
