//! The lab harness: what `cargo xtask` (demos and benchmarks) and the end-to-end tests share
//! to run protolab's binaries and the real peers they are compared with.
//!
//! - [`process`]: a child process stopped by its own PID ([`Proc`]), and a protolab server
//!   started on port 0 whose real addresses come from its `listening` lines ([`Server`]).
//! - [`peers`]: finding a real peer ([`require_peer`], [`which`]), ports for peers that cannot
//!   bind port 0, waiting until a peer answers; [`http_peers`]: nginx and Python's
//!   `http.server` as the tests and the benchmarks start them.
//! - [`link`] and [`relay`]: `impair link` (two namespaces joined through the link) and
//!   `impair udp` (a relay on loopback), with their ground truth.
//! - [`netns`]: a private network namespace, deleted when dropped.
//! - [`trace`]: the link's packet trace read from `impair link --json` (never from its human
//!   text).
//! - [`sample`]: memory, descriptors and CPU time of a process, from /proc.
//! - [`fixtures`]: the data files the lab serves (zones, root hints) and the lab DNS hierarchy.
//!
//! It is a harness, not a service library: where a test wants a loud failure, the functions
//! panic with a message that names the cause; what a benchmark needs to handle returns
//! `std::io::Result`.

pub mod fixtures;
pub mod http_peers;
pub mod link;
pub mod netns;
pub mod peers;
pub mod process;
pub mod relay;
pub mod sample;
pub mod trace;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use link::Link;
pub use netns::Netns;
pub use peers::{
    free_port, free_port_on, require_peer, start_redis, wait_tcp, wait_udp_reply, which,
};
pub use process::{Proc, Server};
pub use relay::Relay;

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/lab sits two folders below the root")
        .to_path_buf()
}

/// The path of one of protolab's binaries, building them all once per test process.
///
/// `cargo xtask test` builds them before the tests run; building here as well keeps a plain
/// `cargo test -p protolab-tests` working. For test binaries only (they live in
/// `target/<profile>/deps`); xtask builds with its own profile choice and joins names to the
/// folder it built into.
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

/// True when the process runs as root (needed for network namespaces and nftables).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command to completion and returns its output when it exits with 0.
///
/// # Errors
/// The command cannot be started, or it fails: the error names the command line, its exit
/// status and what it printed.
pub fn output_ok(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run {shown}: {e}")))?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{shown} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    Ok(out)
}

/// Runs a command to completion and returns its stdout, panicking with its output on failure.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output_ok(cmd).unwrap_or_else(|e| panic!("{e}"));
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

/// The log filter for a process the lab starts: the caller's `RUST_LOG` when set, else
/// warnings only (servers log at info by default, which is noise in a test or a demo).
pub fn quiet_logs() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned())
}
