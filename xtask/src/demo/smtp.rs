//! `cargo xtask demo smtp`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`demo smtp` is not available yet")
}
