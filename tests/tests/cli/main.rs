//! The command-line convention of docs/cli.md, checked on every binary: help with examples,
//! exit statuses and one-line errors, JSON reports against tests/test-data/cli/schemas.json,
//! shell completions and man pages, and the files under examples/ that the README uses.

mod errors;
mod examples;
mod generated;
mod help;
mod json;
mod signals;

use std::process::{Command, Output};

use protolab_tests::bin;

/// The binaries that follow the convention.
pub const BINARIES: [&str; 7] = [
    "greet", "udpecho", "impair", "dns", "subnet", "http", "smtp",
];

/// Runs `name args` to the end, with RUST_BACKTRACE=1 so that a backtrace would show.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
