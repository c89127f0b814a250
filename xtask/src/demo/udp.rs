//! `cargo xtask demo udp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`demo udp` is not available yet")
}
