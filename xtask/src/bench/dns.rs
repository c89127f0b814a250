//! `cargo xtask bench dns`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`bench dns` is not available yet")
}
