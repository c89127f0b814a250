//! `cargo xtask test`: the one test command (README, `.ci/run`).

use anyhow::Result;

use crate::{peers, util};

pub fn run(_args: &[String]) -> Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    peers::ensure(ci)?;
    install_browser_packages()?;
    let limit = protolab_lab::raise_fd_limit();
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

/// Installs the npm packages of tests/browser/ (playwright-core, mailpit-api) into
/// target/browser/, as the inbox's browser tests would on first use. No browser is downloaded:
/// playwright-core drives Debian's chromium.
fn install_browser_packages() -> Result<()> {
    use anyhow::Context;
    let root = protolab_lab::workspace_root();
    let dir = root.join("target/browser");
    std::fs::create_dir_all(&dir).context("cannot create target/browser")?;
    std::fs::copy(
        root.join("tests/browser/package.json"),
        dir.join("package.json"),
    )
    .context("cannot copy tests/browser/package.json")?;
    let status = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--no-save"])
        .current_dir(&dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status()
        .context("cannot run npm; install Debian's npm")?;
    anyhow::ensure!(status.success(), "npm install in target/browser failed");
    Ok(())
}
