//! `impair`: impair UDP through a relay, or IP through a userspace link between namespaces.

use clap::{CommandFactory, Parser};

const EXAMPLES: &str = "\
Examples:
  impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --reorder 10% --seed 7
  impair link --left lab-a --right lab-b --loss 5% --delay 20ms --trace

Exit status: 0 ok, 1 failure, 2 usage error.
";

#[derive(Debug, Parser)]
#[command(name = "impair", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Reports (and the `listening` line) as JSON lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Relay UDP between a listening address and a server, impairing each direction.
    Udp(protolab_impair::relay::RelayArgs),
    /// Join two new network namespaces by a userspace link of TUN devices (needs root).
    Link(protolab_impair::link::LinkArgs),
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    protolab_transport::cli::init_tracing(tracing::Level::INFO, cli.verbose);
    protolab_transport::cli::exit_with(match cli.cmd {
        Cmd::Udp(mut args) => {
            args.json = cli.json;
            protolab_impair::relay::main(args)
        }
        Cmd::Link(args) => protolab_impair::link::main(args),
        Cmd::Generate(args) => protolab_transport::cli::generate(Cli::command(), &args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
    })
}
