//! `cargo xtask demo dns`.

use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("`demo dns` is not available yet")
}
