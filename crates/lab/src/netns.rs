//! A private network namespace with loopback up, deleted when dropped. Needs root.
//!
//! The lab makes namespaces with `ip netns`, the documented exception to "only transport
//! touches the network": a namespace is where a test may use any address it likes.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{is_root, peers::require_peer, run_ok};

/// A network namespace of this process's own, deleted when dropped (declare it before the
/// processes running inside it, so they are stopped first).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates a namespace named after `tag`, this process and a counter, with loopback up:
    /// every 127.0.0.x address is then usable inside. Panics when not root.
    pub fn new(tag: &str) -> Netns {
        assert!(
            is_root(),
            "a private network namespace needs root: run as root (cargo xtask test does in CI)"
        );
        require_peer("ip", "iproute2");
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pl{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        // A namespace left by an earlier crashed run with the same PID would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run_ok(ns.exec("ip").args(["link", "set", "lo", "up"]));
        ns
    }

    /// A command running `program` inside the namespace.
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
