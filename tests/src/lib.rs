//! Helpers for protolab's end-to-end tests: find the built binaries, start servers and real
//! peers on loopback, and stop exactly the processes the test started.
//!
//! Every server binary of protolab prints one line per bound socket on standard output once it
//! listens, `listening tcp 127.0.0.1:43210` or `listening udp 127.0.0.1:43210` (under `--json`
//! `{"event":"listening","proto":"tcp","addr":"127.0.0.1:43210"}`), so a test binds
//! port 0 and reads the real port from there instead of guessing a free one.

pub mod cache_suite;
pub mod http_peers;
pub mod testssl;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of one of protolab's binaries, building them all once per test process.
///
/// `cargo xtask test` builds them before the tests run; building here as well keeps a plain
/// `cargo test -p protolab-tests` working.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--bins",
                "--workspace",
                "--exclude",
                "xtask",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --bins failed");
        // This test binary lives in target/<profile>/deps; the binaries one folder up.
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf()
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "binary {} not found after building",
        path.display()
    );
    path
}

/// A child process that is killed (by its own PID) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts `cmd` with piped stdout and inherited stderr.
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    /// The PID, for signals.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to this process only.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the PID of a child we started and have not reaped yet.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to exit, at most `limit`; kills it past that. Returns the status.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Takes the stdout pipe, to read it line by line.
    pub fn stdout(&mut self) -> BufReader<std::process::ChildStdout> {
        BufReader::new(
            self.child
                .stdout
                .take()
                .expect("stdout is piped and not taken yet"),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A protolab server started by a test, with the addresses it reported.
#[derive(Debug)]
pub struct Server {
    pub proc: Proc,
    /// (`tcp` or `udp`, address) for each socket the server bound.
    pub listening: Vec<(String, SocketAddr)>,
    /// The rest of its stdout, for tests that read what it prints later.
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts `bin_name` with `args` and waits until it has printed `sockets` listening lines.
    pub fn start(bin_name: &str, args: &[&str], sockets: usize) -> Server {
        let mut cmd = Command::new(bin(bin_name));
        cmd.args(args);
        // Servers log at info by default; in tests only warnings are worth the noise.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        Server::start_cmd(bin_name, cmd, sockets)
    }

    /// As [`Server::start`], from a prepared command (for extra environment or a namespace).
    pub fn start_cmd(name: &str, mut cmd: Command, sockets: usize) -> Server {
        let mut proc = Proc::spawn(name, &mut cmd);
        let mut stdout = proc.stdout();
        let mut listening = Vec::new();
        let mut line = String::new();
        while listening.len() < sockets {
            line.clear();
            let n = stdout.read_line(&mut line).expect("read server stdout");
            assert!(n > 0, "{name} exited before listening (args {cmd:?})");
            // Under --json the same line is {"event":"listening","proto":..,"addr":..}.
            if line.starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["event"] == "listening" {
                    let proto = v["proto"].as_str().expect("listening proto").to_owned();
                    let addr = v["addr"]
                        .as_str()
                        .and_then(|a| a.parse().ok())
                        .expect("listening addr");
                    listening.push((proto, addr));
                }
                continue;
            }
            let mut words = line.split_whitespace();
            if words.next() == Some("listening") {
                let proto = words.next().expect("listening PROTO ADDR").to_owned();
                let addr = words
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("listening PROTO ADDR");
                listening.push((proto, addr));
            }
        }
        Server {
            proc,
            listening,
            stdout,
        }
    }

    /// The address of the first socket of `proto` (`tcp` or `udp`).
    pub fn addr(&self, proto: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(p, _)| p == proto)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{} has no {proto} socket", self.proc.name))
    }
}

/// Fails loudly when a real peer is missing, naming the package that brings it.
///
/// Missing peers are never a silent skip: `cargo xtask test` installs them when run as root.
pub fn require_peer(command: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(command);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "real peer `{command}` is missing: install it with `apt-get install -y {package}` \
         (cargo xtask test does this when run as root)"
    );
}

/// A port free on 127.0.0.1 for both TCP and UDP at the time of asking, for peers that cannot
/// bind port 0 and report it.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found on 127.0.0.1");
}

/// Waits until something accepts TCP connections on `addr`, at most `limit`.
pub fn wait_tcp(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after {limit:?}");
}

/// True when the test runs as root (needed for network namespaces and nftables).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command to completion and returns its stdout, panicking with stderr on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Raises this process's open-file limit to its hard limit (children inherit it): thousands of
/// concurrent connections need thousands of descriptors, and the usual soft limit is 1,024.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}

/// Sends `probe` to `addr` over UDP every 50 ms until any datagram comes back, at most `limit`:
/// readiness for UDP servers (such as DNS peers) that print nothing when they are up.
pub fn wait_udp_reply(addr: SocketAddr, probe: &[u8], limit: Duration) {
    let sock = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).expect("bind probe socket");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        let _ = sock.send_to(probe, addr);
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("nothing answers UDP on {addr} after {limit:?}");
}

/// Starts redis-server on a free loopback port, storing nothing, in `dir`, and waits until it
/// accepts connections. It answers the inline line `PING` with `+PONG`: a one-line
/// request/response peer for the TCP load generator.
pub fn start_redis(dir: &Path) -> (Proc, SocketAddr) {
    let redis = require_peer("redis-server", "redis-server");
    let port = free_port();
    let proc = Proc::spawn(
        "redis-server",
        Command::new(redis)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "10000"])
            .current_dir(dir),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_tcp(addr, Duration::from_secs(10));
    (proc, addr)
}
