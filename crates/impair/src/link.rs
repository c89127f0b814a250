//! (being built)

/// Options of this front end.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {}

/// Runs this front end.
///
/// # Errors
/// Always, for now.
pub fn main(_args: LinkArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
