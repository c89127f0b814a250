//! `cargo xtask demo compare`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`demo compare` is not available yet")
}
