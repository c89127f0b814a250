//! `greet`: the classic TCP greeting service, its client and a load generator.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use protolab_greet::{bench, client, server, wire::Framing};
use protolab_transport::cli::{Failure, parse_at_least_one, parse_duration};
use protolab_transport::outln;

const EXAMPLES: &str = "\
Examples:
  greet serve                          listen on 127.0.0.1:9999
  greet hello                          say Michael, Tracy and Sarah to it
  greet bench --server 127.0.0.1:9999 --connections 256 --duration 10s --skip-banner

Exit status: 0 ok, 1 failure, 2 usage error, 9 the server did not answer.
";

const SERVE_EXAMPLES: &str = "\
Examples:
  greet serve                          listen on 127.0.0.1:9999
  greet serve --delay 1s               reply after a second, like the classic server
  greet serve --framing raw            one message per recv(), like the classic server
  greet serve --udp                    the same protocol over UDP (no Welcome: no connection)
  greet serve --listen 0 --json        a free loopback port, announced as a JSON line
";

const HELLO_EXAMPLES: &str = "\
Examples:
  greet hello                          say Michael, Tracy and Sarah to 127.0.0.1:9999
  greet hello --server 127.0.0.1:9999 Ada Linus
  greet hello --udp                    to `greet serve --udp`
  greet hello --json                   the transcript as JSON
";

const BENCH_EXAMPLES: &str = "\
Examples:
  greet bench --server 127.0.0.1:9999 --connections 256 --duration 10s --skip-banner
  greet bench --server 127.0.0.1:6379 --line PING --connections 256 --duration 10s --json
";

fn addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, 9999).map_err(|e| e.to_string())
}

#[derive(Debug, Parser)]
#[command(name = "greet", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Reports (and the `listening` line) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the greeting protocol (prints `listening tcp ADDR` once bound).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve {
        /// Address to listen on: host:port, [v6]:port, or a port (loopback).
        #[arg(long, default_value = "127.0.0.1:9999", value_parser = addr)]
        listen: SocketAddr,
        /// Pause before each reply, as the classic server's time.sleep(1).
        #[arg(long, value_parser = parse_duration)]
        delay: Option<Duration>,
        /// Connections served at once (1 or more); the next client gets `ERR busy`.
        #[arg(long, default_value_t = 10_000, value_parser = parse_at_least_one)]
        max_connections: usize,
        /// Close a connection silent for this long.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// On SIGINT/SIGTERM, let live connections finish for this long.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// Serve over UDP instead of TCP: one datagram per name, one reply datagram.
        #[arg(long)]
        udp: bool,
        /// With --udp, also answer peers that are not on loopback.
        #[arg(long)]
        allow_remote: bool,
        /// How TCP messages are told apart: lines, or one message per recv().
        #[arg(long, value_enum, default_value_t = Framing::Line)]
        framing: Framing,
        /// Worker threads (0: one per core; 1: a single-threaded event loop).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Greet the server with names, printing its welcome and replies.
    #[command(after_help = HELLO_EXAMPLES)]
    Hello {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:9999", value_parser = addr)]
        server: SocketAddr,
        /// Talk UDP (to `greet serve --udp`).
        #[arg(long)]
        udp: bool,
        /// The server's TCP framing (default: told from its welcome).
        #[arg(long, value_enum, conflicts_with = "udp")]
        framing: Option<Framing>,
        /// How long to wait for each reply.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        /// Names to send (default: Michael Tracy Sarah).
        names: Vec<String>,
    },
    /// Load a one-line request/response server and report requests/s and latency.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench {
        /// The server's address.
        #[arg(long, value_parser = addr)]
        server: SocketAddr,
        /// Concurrent connections (1 or more), one request in flight on each.
        #[arg(long, default_value_t = 64, value_parser = parse_at_least_one)]
        connections: usize,
        /// How long to run.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// The request line (PING for redis-server).
        #[arg(long, default_value = "bench")]
        line: String,
        /// Read one banner line after connecting (greet's Welcome!).
        #[arg(long)]
        skip_banner: bool,
    },
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    protolab_transport::cli::exit_with(start(cli))
}

fn start(cli: Cli) -> Result<()> {
    // The server's thread count is an option: one thread avoids cross-thread wake-ups, which
    // is what a request/response load with a client on the same two cores rewards.
    let threads = match cli.cmd {
        Cmd::Serve { threads, .. } => threads,
        _ => 0,
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()?
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let base = match cli.cmd {
        Cmd::Serve { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    protolab_transport::cli::init_tracing(base, cli.verbose);
    match cli.cmd {
        Cmd::Serve {
            listen,
            delay,
            max_connections,
            idle_timeout,
            drain_timeout,
            udp,
            allow_remote,
            framing,
            threads: _,
        } => {
            let config = server::ServeConfig {
                listen,
                udp,
                framing,
                delay,
                max_connections,
                idle_timeout: Some(idle_timeout),
                drain_timeout,
                allow_remote,
            };
            let proto = if udp { "udp" } else { "tcp" };
            let bound = server::bind(&config)
                .map_err(|e| protolab_transport::cli::ListenError::new(proto, listen, e))?;
            // Signals are handled from here on: whoever reads the next line may send one.
            let shutdown = protolab_transport::shutdown_on_signals();
            for (proto, local) in bound.local_addrs() {
                protolab_transport::cli::listening(proto, local, cli.json);
            }
            let report = server::run(bound, config, shutdown).await?;
            print_report(&report, udp, cli.json)?;
        }
        Cmd::Hello {
            server,
            udp,
            framing,
            timeout,
            names,
        } => {
            let names = if names.is_empty() {
                client::DEFAULT_NAMES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                names
            };
            let config = client::HelloConfig {
                server,
                names,
                udp,
                framing,
                timeout,
            };
            let transcript = client::hello(&config).await.map_err(hello_failure)?;
            if cli.json {
                outln!("{}", serde_json::to_string(&transcript)?);
            } else {
                for line in transcript.welcome.iter().chain(&transcript.replies) {
                    outln!("{line}");
                }
            }
        }
        Cmd::Bench {
            server,
            connections,
            duration,
            line,
            skip_banner,
        } => {
            let config = bench::BenchConfig {
                server,
                connections,
                duration,
                line,
                skip_banner,
                progress: (!cli.json && std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .then(|| bench::OnProgress::new(show_progress)),
                // Ctrl-C ends the load and still prints the report; a second one exits.
                stop: protolab_transport::shutdown_on_signals(),
            };
            let r = bench::run(&config).await.map_err(|e| {
                Failure::no_answer(e.to_string()).hint(format!(
                    "is the server running? Start it at {server} first, or point --server at it"
                ))
            })?;
            if cli.json {
                outln!("{}", serde_json::to_string(&r)?);
            } else {
                outln!(
                    "{} connections, {:.1} s: {} requests, {:.0} requests/s\n\
                     latency us: mean {}  p50 {}  p90 {}  p99 {}  max {}\n\
                     errors: {} connections ended early, {} could not connect{}",
                    r.connections,
                    r.elapsed_us as f64 / 1e6,
                    r.requests,
                    r.requests_per_sec,
                    r.latency_us.mean,
                    r.latency_us.p50,
                    r.latency_us.p90,
                    r.latency_us.p99,
                    r.latency_us.max,
                    r.errors,
                    r.connect_errors,
                    if r.interrupted {
                        "\n(interrupted: the load stopped early; the figures cover what ran)"
                    } else {
                        ""
                    }
                );
            }
        }
        Cmd::Generate(args) => {
            protolab_transport::cli::generate(Cli::command(), &args)?;
        }
    }
    Ok(())
}

/// Prints what `greet serve` did, once it stopped: a line for people, or one JSON line.
fn print_report(r: &server::Report, udp: bool, json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string(r)?);
    } else if udp {
        outln!(
            "stopped: {} datagrams received, {} replied, {} greeted, {} from remote peers ignored",
            r.udp_received,
            r.udp_replied,
            r.greeted,
            r.remote_refused
        );
    } else {
        outln!(
            "stopped: {} connections ({} busy, {} idle timeouts), {} greeted, {} lines too long",
            r.accepted,
            r.busy,
            r.idle_timeouts,
            r.greeted,
            r.too_long
        );
    }
    Ok(())
}

/// Gives a failed conversation its exit status (9 when the server never answered) and the
/// fix, naming the transport that was tried.
fn hello_failure(e: client::ClientError) -> anyhow::Error {
    use client::ClientError as E;
    let hint = match &e {
        E::Connect(..) => Some("is `greet serve` running there?"),
        E::Timeout { proto: "udp", .. } | E::Unreachable(_) => {
            Some("over UDP: is `greet serve --udp` running there?")
        }
        E::Timeout { .. } => Some(
            "over TCP: is `greet serve` running there, and not a server that stays silent? \
             (--udp talks to `greet serve --udp`)",
        ),
        _ => None,
    };
    let failure = if e.is_no_answer() {
        Failure::no_answer(e.to_string())
    } else {
        Failure::new(e.to_string())
    };
    let failure = match hint {
        Some(h) => failure.hint(h),
        None => failure,
    };
    // The cause (an OS error) stays on the line.
    match e {
        E::Connect(_, source) => anyhow::Error::new(failure.caused_by(source)),
        _ => anyhow::Error::new(failure),
    }
}

/// The bench's progress line on standard error, redrawn in place once a second.
fn show_progress(p: &bench::Progress) {
    if p.finished {
        eprintln!();
        return;
    }
    eprint!(
        "\r{} requests, {:.0}/s   ",
        p.requests,
        p.requests as f64 / p.elapsed.as_secs_f64()
    );
}
