//! `cargo xtask bench link`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`bench link` is not available yet")
}
