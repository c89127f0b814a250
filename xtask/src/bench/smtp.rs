//! `cargo xtask bench smtp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`bench smtp` is not available yet")
}
