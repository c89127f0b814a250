//! `cargo xtask test`: the one test command (README, `.ci/run`).

use anyhow::Result;

use crate::{peers, util};

pub fn run(_args: &[String]) -> Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    peers::ensure(ci)?;
    let limit = protolab_tests::raise_fd_limit();
    println!("open-file limit: {limit}");
    util::cargo(&["fmt", "--all", "--check"])?;
    util::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    util::cargo(&["build", "--workspace", "--bins"])?;
    util::cargo(&["test", "--workspace"])?;
    Ok(())
}
