//! `cargo xtask demo tcp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`demo tcp` is not available yet")
}
