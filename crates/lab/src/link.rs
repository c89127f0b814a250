//! `impair link`: two network namespaces joined by TUN devices through the link process, which
//! impairs what crosses and can trace it. Needs root.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::process::Proc;
use crate::{bin, is_root, quiet_logs};

/// Where the link records the namespaces each run owns.
pub const STATE_DIR: &str = "/run/protolab-link";

/// The left end's address: clients run there.
pub const LEFT_ADDR: &str = "198.18.0.1";

/// The right end's address: servers listen there, clients in the left namespace connect to it.
pub const RIGHT_ADDR: &str = "198.18.0.2";

/// How long a link may take to exit after the signal that stops it.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// One end of the link.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Left,
    Right,
}

/// A running `impair link` with its own two namespaces.
pub struct Link {
    pub proc: Proc,
    pub left: String,
    pub right: String,
    /// Everything the link printed up to and including its ready line.
    pub banner: Vec<String>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    stats: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a stopped link left: its exit status, its output after the ready line, its ground truth
/// (`Null` when it wrote none).
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub truth: serde_json::Value,
}

/// Fails (never skips) when not running as root.
pub fn require_root() {
    assert!(
        is_root(),
        "the link needs root for network namespaces and TUN devices: run as root \
         (cargo xtask test does in CI)"
    );
}

/// Namespace names unique to this process and `tag` (which tells one process's links apart).
pub fn names(tag: &str) -> (String, String) {
    let pid = std::process::id();
    (format!("plt{pid}-{tag}-l"), format!("plt{pid}-{tag}-r"))
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Link {
    /// Starts the test build's `impair link` with `args` (impairment, `--trace`, ...) and waits
    /// for its ready line; panics when it does not come up.
    pub fn start(tag: &str, args: &[&str]) -> Link {
        require_root();
        Link::spawn(&bin("impair"), tag, args).expect("start impair link")
    }

    /// Starts `impair` (the binary at that path) as a link with `args` and waits for its ready
    /// line (text `ready` or the JSON `ready` event).
    ///
    /// # Errors
    /// The link cannot be started or exits before it is ready (its error is on stderr).
    pub fn spawn(impair: &Path, tag: &str, args: &[impl AsRef<OsStr>]) -> std::io::Result<Link> {
        let (left, right) = names(tag);
        let dir = tempfile::tempdir()?;
        let stats = dir.path().join("truth.json");
        let mut cmd = Command::new(impair);
        cmd.args(["link", "--left", &left, "--right", &right, "--stats"])
            .arg(&stats)
            .args(args)
            .env("RUST_LOG", quiet_logs());
        let mut proc = Proc::try_spawn("impair link", &mut cmd)?;
        let mut out = proc.stdout();
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            if out.read_line(&mut line)? == 0 {
                return Err(other(format!(
                    "impair link exited before it was ready (its error is above): {banner:?}"
                )));
            }
            let line = line.trim_end().to_owned();
            let ready = line == "ready" || crate::trace::event(&line).as_deref() == Some("ready");
            banner.push(line);
            if ready {
                break;
            }
        }
        // The rest is read all along, so that a long trace never fills the pipe and stalls
        // the link.
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line);
            }
        });
        Ok(Link {
            proc,
            left,
            right,
            banner,
            lines,
            reader: Some(reader),
            stats,
            _dir: dir,
        })
    }

    /// The name of one end's namespace.
    pub fn ns(&self, side: Side) -> &str {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// A command that runs `program` inside one end's namespace.
    pub fn exec(&self, side: Side, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(side)])
            .arg(program)
            .args(args);
        cmd
    }

    /// What the link has printed since its ready line, so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until what the link printed so far satisfies `done` (an event in its trace), at
    /// most `limit`; true when it did.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(&self.lines()) {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the link with SIGTERM and collects what it left; panics when it does not exit.
    pub fn stop(self) -> Stopped {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops the link with `signal` and collects what it left; panics when it does not exit.
    pub fn stop_with(self, signal: i32) -> Stopped {
        self.finish(signal)
            .unwrap_or_else(|e| panic!("impair link: {e}"))
    }

    /// Stops the link with `signal`, waits for it (at most 20 s) and collects what it left.
    ///
    /// # Errors
    /// The link did not exit within 20 s (it is killed then).
    pub fn finish(mut self, signal: i32) -> std::io::Result<Stopped> {
        self.proc.signal(signal);
        let status = self.proc.wait_for(STOP_LIMIT).ok_or_else(|| {
            other(format!(
                "did not exit within {STOP_LIMIT:?} of signal {signal}"
            ))
        })?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let lines = std::mem::take(
            &mut *self
                .lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let truth = std::fs::read(&self.stats)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(Stopped {
            status,
            lines,
            truth,
        })
    }
}

/// The named namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let out = crate::run_ok(Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// TUN devices in this process's own (root) namespace.
pub fn root_tun_devices() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for e in dir.flatten() {
            if e.path().join("tun_flags").exists() {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}

/// The ownership records in the link's state folder, as text.
pub fn records() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// Waits (at most `limit`) until none of `names` exists; true when they are all gone.
pub fn wait_gone(names: &[&str], limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let now = namespaces();
        if names.iter().all(|n| !now.iter().any(|x| x == n)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The ground truth of one direction (`left_to_right` or `right_to_left`): received,
/// forwarded, dropped, duplicated, reordered.
pub fn truth_of(truth: &serde_json::Value, direction: &str) -> [u64; 5] {
    let d = &truth[direction];
    let get = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("ground truth lacks {direction}.{k}: {truth}"))
    };
    [
        get("received"),
        get("forwarded"),
        get("dropped"),
        get("duplicated"),
        get("reordered"),
    ]
}
