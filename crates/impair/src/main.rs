//! `impair`: impair UDP through a relay, or IP through a userspace link between namespaces.

use clap::{CommandFactory, Parser};

const EXAMPLES: &str = "\
Examples:
  impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --reorder 10% --seed 7
  impair link --left lab-a --right lab-b --loss 5% --delay 20ms --trace

Exit status: 0 ok, 1 failure, 2 usage error.
";

/// `impair link`'s help, set here so that every binary's help has the same `Examples:` form.
const LINK_EXAMPLES: &str = "\
Examples:
  impair link --left lab-a --right lab-b
      then, in other terminals:
      ip netns exec lab-b udpecho serve --listen 198.18.0.2:7777
      ip netns exec lab-a udpecho probe 198.18.0.2:7777 --count 1000
  impair link --left lab-a --right lab-b --loss 5% --reorder 10% --delay 20ms --jitter 5ms --seed 7
  impair link --left lab-a --right lab-b --trace --pcap link.pcap
      then: tshark -r link.pcap
  impair link --left lab-a --right lab-b --rate 10mbit --delay 40ms --stats truth.json
  impair link --left lab-a --right lab-b --rate 1mbit --queue 64kB
      a shallow buffer

The left namespace has 198.18.0.1 and the right one 198.18.0.2 on device link0. The link runs
until SIGINT or SIGTERM (or --duration), then removes both namespaces and prints what it did
per direction. It needs root; without root use `impair udp`.
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
    #[command(after_help = LINK_EXAMPLES)]
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
        Cmd::Link(mut args) => {
            // `impair --json link` and `impair link --json` are the same.
            args.json |= cli.json;
            protolab_impair::link::main(args)
        }
        Cmd::Generate(args) => protolab_transport::cli::generate(Cli::command(), &args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
    })
}
