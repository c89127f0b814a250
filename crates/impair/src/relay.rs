//! (being built)

/// Options of this front end.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {}

/// Runs this front end.
///
/// # Errors
/// Always, for now.
pub fn main(_args: RelayArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
