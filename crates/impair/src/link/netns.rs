//! Network namespaces for the two ends of the link, and making sure none outlives its run.
//!
//! Namespaces are made and removed with iproute2 (`ip netns add`/`delete`), so they are the
//! ordinary named namespaces a user reaches with `ip netns exec NAME ...`. Each run records the
//! namespaces it owns in `/run/protolab-link/PID.json`, with the start time of its process so a
//! reused PID is not mistaken for the owner. Three things remove them:
//! 1. the run itself, on exit, on error and on SIGINT/SIGTERM;
//! 2. a guardian process forked at start, which waits on a pipe and clears the run's namespaces
//!    when the pipe reports its parent gone, so even SIGKILL leaves nothing behind;
//! 3. every later run, which clears the namespaces of any record whose owner is dead (a crash
//!    of both, a reboot-less power cut of the guardian, a run from an older build).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Where runs record the namespaces they own.
const STATE_DIR: &str = "/run/protolab-link";
/// Where iproute2 mounts named network namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The namespaces one run owns, as written to its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ownership {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the PID, names
    /// one process for the machine's whole uptime.
    pub start_time: u64,
    pub namespaces: Vec<String>,
}

/// The mount point of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether the named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Checks that a name is one `ip netns` accepts and this link can own.
///
/// # Errors
/// An empty name, a path separator, or a dot name.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || name == "."
        || name == ".."
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bail!(
            "namespace name {name:?} is not usable: use up to 64 letters, digits, '-', '_' or '.'"
        );
    }
    Ok(())
}

/// The start time of process `pid`, or `None` when it does not exist.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Ownership {
    /// The record of the current process owning `namespaces`.
    pub fn of_this_process(namespaces: Vec<String>) -> Ownership {
        let pid = std::process::id();
        Ownership {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
            namespaces,
        }
    }

    fn file(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.json", self.pid))
    }

    /// Whether the owning process still runs.
    pub fn owner_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }

    /// Writes the record.
    ///
    /// # Errors
    /// The state folder cannot be made or written.
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("create {STATE_DIR}"))?;
        let file = self.file();
        // Written aside and renamed into place, so that another run never reads half a record.
        let part = file.with_extension("part");
        std::fs::write(&part, serde_json::to_vec(self)?)
            .with_context(|| format!("write {}", part.display()))?;
        std::fs::rename(&part, &file).with_context(|| format!("write {}", file.display()))
    }

    /// Deletes the namespaces this record names that still exist, then the record.
    pub fn clear(&self) -> Vec<String> {
        let mut cleared = Vec::new();
        for name in &self.namespaces {
            if exists(name) {
                match delete(name) {
                    Ok(()) => cleared.push(name.clone()),
                    Err(e) => tracing::warn!("cannot delete namespace {name}: {e:#}"),
                }
            }
        }
        let _ = std::fs::remove_file(self.file());
        cleared
    }
}

/// Every record in the state folder.
fn records() -> Vec<Ownership> {
    let Ok(dir) = std::fs::read_dir(STATE_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        if e.path().extension().is_none_or(|x| x != "json") {
            return None;
        }
        let text = std::fs::read(e.path()).ok()?;
        match serde_json::from_slice(&text) {
            Ok(rec) => Some(rec),
            Err(e2) => {
                // Records are renamed into place whole, so one that does not parse was not
                // written by this program: it is left alone.
                tracing::debug!("ignoring {}: {e2}", e.path().display());
                None
            }
        }
    })
    .collect()
}

/// Clears the namespaces of every run whose process is gone; returns their names.
pub fn sweep_stale() -> Vec<String> {
    let mut cleared = Vec::new();
    for rec in records() {
        if !rec.owner_alive() {
            let names = rec.clear();
            if !names.is_empty() {
                tracing::info!(
                    "cleared namespaces {names:?} left by a run (pid {}) that ended without cleaning up",
                    rec.pid
                );
            }
            cleared.extend(names);
        }
    }
    cleared
}

/// Fails unless `name` is free to create: explains who holds it when it is not.
///
/// # Errors
/// The namespace exists (held by a live run of the link, or made by someone else).
pub fn check_free(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    if let Some(rec) = records()
        .into_iter()
        .find(|r| r.namespaces.iter().any(|n| n == name))
    {
        bail!(
            "namespace {name} is in use by another `impair link` (pid {}): choose other names \
             with --left/--right or stop that run",
            rec.pid
        );
    }
    bail!(
        "namespace {name} already exists and was not made by `impair link`: choose other names \
         with --left/--right, or remove it with `ip netns delete {name}` if it is unused"
    )
}

/// Runs `ip ARGS`, failing with its stderr.
///
/// # Errors
/// `ip` missing or exiting non-zero.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run `ip` (install the iproute2 package)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Packets the kernel dropped on their way out of `device` in namespace `ns` (`tx_dropped`):
/// for a TUN device, those it could not queue because the link had not read the ones before.
/// `None` when `ip` cannot tell.
pub fn tx_dropped(ns: &str, device: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "-j", "link", "show", "dev", device])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let stats = &v.get(0)?;
    stats
        .get("stats64")
        .or_else(|| stats.get("stats"))?
        .get("tx")?
        .get("dropped")?
        .as_u64()
}

/// Creates the named namespace with its loopback up.
///
/// # Errors
/// `ip netns add` failing.
pub fn create(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// Deletes the named namespace. Processes still inside keep it alive without a name until
/// they exit, which is what `ip netns delete` does too.
///
/// # Errors
/// `ip netns delete` failing.
pub fn delete(name: &str) -> Result<()> {
    ip(&["netns", "delete", name])
}

/// A guardian process: clears `record`'s namespaces once the current process is gone.
#[derive(Debug)]
pub struct Guardian {
    /// The write end of the pipe; the guardian reads end-of-file when every copy is closed,
    /// which happens when this process exits for any reason, SIGKILL included.
    _pipe: std::os::fd::OwnedFd,
}

impl Guardian {
    /// Forks the guardian. Call it before starting any thread: the child of a multi-threaded
    /// process may only call async-signal-safe functions, and the guardian runs `ip`.
    ///
    /// # Errors
    /// pipe2(2) or fork(2) failing.
    pub fn start(record: &Ownership) -> io::Result<Guardian> {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into a two-element array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let (read_end, write_end) = (fds[0], fds[1]);
        // SAFETY: the caller guarantees the process has a single thread here.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            guard(read_end, write_end, record);
        }
        // SAFETY: closing our copy of the read end, which only the child uses.
        unsafe { libc::close(read_end) };
        // SAFETY: write_end is a fresh descriptor that this struct now owns alone.
        let pipe = unsafe { std::os::fd::OwnedFd::from_raw_fd(write_end) };
        Ok(Guardian { _pipe: pipe })
    }
}

/// The guardian's whole life: wait for the parent to go, clear, exit.
fn guard(read_end: i32, write_end: i32, record: &Ownership) -> ! {
    // SAFETY: in the single-threaded child: close our copy of the write end, detach from the
    // terminal's signals (a Ctrl-C is for the link, which cleans up itself) and from stdin and
    // stdout, whose readers would otherwise wait for us to close them.
    unsafe {
        libc::close(write_end);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
        }
    }
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: a one-byte read into a local buffer.
        let n = unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) };
        if n == 0 || (n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted) {
            break;
        }
    }
    // The parent clears on a normal exit; when it could not, its record is still there.
    let file = Path::new(STATE_DIR).join(format!("{}.json", record.pid));
    if file.exists() {
        record.clear();
    }
    // SAFETY: _exit ends the child without running the parent's atexit handlers twice.
    unsafe { libc::_exit(0) }
}
