//! `cargo xtask bench tcp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`bench tcp` is not available yet")
}
