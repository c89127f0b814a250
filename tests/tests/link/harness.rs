//! Starting `impair link` for a test, running programs in its namespaces, and checking that
//! nothing of it is left behind.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protolab_tests::{Proc, bin, is_root};

/// Where the link records the namespaces each run owns.
pub const STATE_DIR: &str = "/run/protolab-link";

/// One end of the link.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Left,
    Right,
}

/// The right end's address: servers listen there, clients in the left namespace connect to it.
pub const RIGHT_ADDR: &str = "198.18.0.2";

/// A running `impair link` with its own two namespaces.
pub struct Link {
    pub proc: Proc,
    pub left: String,
    pub right: String,
    /// Everything the link printed before its ready line.
    pub banner: Vec<String>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    stats: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a stopped link left: its exit status, its output after the ready line, its ground truth.
pub struct Stopped {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub truth: serde_json::Value,
}

/// Fails (never skips) when the tests do not run as root.
pub fn require_root() {
    assert!(
        is_root(),
        "the link tests need root for network namespaces and TUN devices: run them as root \
         (cargo xtask test does in CI)"
    );
}

/// Names unique to this test process and test: `tag` tells the tests of one process apart.
pub fn names(tag: &str) -> (String, String) {
    let pid = std::process::id();
    (format!("plt{pid}-{tag}-l"), format!("plt{pid}-{tag}-r"))
}

impl Link {
    /// Starts the link with `args` (impairment, `--trace`, ...) and waits for its ready line.
    pub fn start(tag: &str, args: &[&str]) -> Link {
        require_root();
        let (left, right) = names(tag);
        let dir = tempfile::tempdir().expect("temp dir");
        let stats = dir.path().join("truth.json");
        let mut cmd = Command::new(bin("impair"));
        cmd.args(["link", "--left", &left, "--right", &right, "--stats"])
            .arg(&stats)
            .args(args);
        let mut proc = Proc::spawn("impair link", &mut cmd);
        let mut out = proc.stdout();
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("read impair link stdout");
            assert!(n > 0, "impair link exited before it was ready: {banner:?}");
            let line = line.trim_end().to_owned();
            let ready = line == "ready" || line.contains(r#""event":"ready""#);
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
                sink.lock().unwrap().push(line);
            }
        });
        Link {
            proc,
            left,
            right,
            banner,
            lines,
            reader: Some(reader),
            stats,
            _dir: dir,
        }
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

    /// Stops the link with SIGTERM and collects what it left.
    pub fn stop(self) -> Stopped {
        self.stop_with(libc::SIGTERM)
    }

    /// Stops the link with `signal`, waits for it (at most 20 s) and collects what it left.
    pub fn stop_with(mut self, signal: i32) -> Stopped {
        self.proc.signal(signal);
        let status = self
            .proc
            .wait_for(Duration::from_secs(20))
            .expect("impair link did not exit within 20 s of the signal");
        if let Some(r) = self.reader.take() {
            r.join().expect("stdout reader");
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        let truth = std::fs::read(&self.stats)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        Stopped {
            status,
            lines,
            truth,
        }
    }
}

/// The named namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let out = protolab_tests::run_ok(Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// TUN devices in the test's own (root) namespace.
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

/// Asserts that none of `names` exists as a namespace and that no record of them is left.
pub fn assert_gone(names: &[&str]) {
    let now = namespaces();
    for n in names {
        assert!(
            !now.iter().any(|x| x == n),
            "namespace {n} is left: {now:?}"
        );
        assert!(
            !Path::new("/run/netns").join(n).exists(),
            "the mount of namespace {n} is left"
        );
    }
    for rec in records() {
        for n in names {
            assert!(
                !rec.contains(&format!("\"{n}\"")),
                "a record still names {n}: {rec}"
            );
        }
    }
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

/// The ownership records in the link's state folder, as text.
pub fn records() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// The ground truth of one direction, as a map of counters.
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
