//! `impair`: impair UDP through a relay, or IP through a userspace link between namespaces.

use clap::Parser;

const EXAMPLES: &str = "\
EXAMPLES:
    impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --reorder 10% --seed 7
    impair link --left lab-a --right lab-b --loss 5% --delay 20ms --trace
";

#[derive(Debug, Parser)]
#[command(name = "impair", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Relay UDP between a listening address and a server, impairing each direction.
    Udp(protolab_impair::relay::RelayArgs),
    /// Join two new network namespaces by a userspace link of TUN devices (needs root).
    Link(protolab_impair::link::LinkArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    protolab_transport::cli::init_tracing(tracing::Level::INFO, cli.verbose);
    match cli.cmd {
        Cmd::Udp(args) => protolab_impair::relay::main(args),
        Cmd::Link(args) => protolab_impair::link::main(args),
    }
}
