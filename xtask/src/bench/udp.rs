//! `cargo xtask bench udp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`bench udp` is not available yet")
}
