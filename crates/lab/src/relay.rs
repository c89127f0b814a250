//! `impair udp`: a UDP relay on loopback in front of a server, impairing what it forwards, with
//! its ground truth (written to `--stats` and printed on exit).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::Server;
use crate::{bin, quiet_logs};

/// A running `impair udp` relay in front of `forward`.
pub struct Relay {
    pub server: Server,
    pub stats: PathBuf,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Starts the test build's relay in front of `forward` with the impairment `impair`
    /// (`--loss 10% --seed 1`, ...).
    pub fn start(forward: SocketAddr, impair: &[&str]) -> Relay {
        Relay::start_bin(&bin("impair"), forward, impair)
    }

    /// As [`Relay::start`], with the `impair` binary at that path.
    pub fn start_bin(impair_bin: &Path, forward: SocketAddr, impair: &[&str]) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = dir.path().join("truth.json");
        let mut cmd = Command::new(impair_bin);
        cmd.args(["udp", "--listen", "127.0.0.1:0", "--forward"])
            .arg(forward.to_string())
            .arg("--stats")
            .arg(&stats)
            .args(impair)
            .env("RUST_LOG", quiet_logs());
        Relay {
            server: Server::start_cmd("impair udp", cmd, 1),
            stats,
            _dir: dir,
        }
    }

    /// The relay's own address: what clients send to.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr("udp")
    }

    /// SIGINT, then the ground truth it wrote (the file and stdout must agree).
    pub fn stop(mut self) -> Value {
        self.server.proc.signal(libc::SIGINT);
        let status = self.server.proc.wait_for(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "impair udp did not exit cleanly: {status:?}"
        );
        let mut printed = String::new();
        self.server
            .stdout
            .read_to_string(&mut printed)
            .expect("read relay stdout");
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.stats).expect("read --stats"))
                .expect("--stats JSON");
        let printed: Value =
            serde_json::from_str(printed.trim()).expect("printed ground truth JSON");
        assert_eq!(
            file, printed,
            "the --stats file and the truth printed on exit differ"
        );
        file
    }
}
