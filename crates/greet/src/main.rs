//! `greet`: the classic TCP greeting service, its client and a load generator.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use protolab_greet::{bench, client, server, wire::Framing};
use protolab_transport::cli::parse_duration;
use protolab_transport::outln;

const EXAMPLES: &str = "\
EXAMPLES:
    greet serve                                 listen on 127.0.0.1:9999
    greet serve --delay 1s                      reply after a second, like the classic server
    greet serve --framing raw                   take each recv() as a message, like the classic server
    greet serve --udp                           the same protocol over UDP (no Welcome: no connection)
    greet hello                                 say Michael, Tracy and Sarah to 127.0.0.1:9999
    greet hello --server 127.0.0.1:9999 Ada Linus
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
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve the greeting protocol (prints `listening tcp ADDR` once bound).
    Serve {
        /// Address to listen on: host:port, [v6]:port, or a port (loopback).
        #[arg(long, default_value = "127.0.0.1:9999", value_parser = addr)]
        listen: SocketAddr,
        /// Pause before each reply, as the classic server's time.sleep(1).
        #[arg(long, value_parser = parse_duration)]
        delay: Option<Duration>,
        /// Connections served at once; the next client gets `ERR busy`.
        #[arg(long, default_value_t = 10_000)]
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
    Hello {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:9999", value_parser = addr)]
        server: SocketAddr,
        /// Talk UDP (to `greet serve --udp`).
        #[arg(long)]
        udp: bool,
        /// How long to wait for each reply.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        /// Print the transcript as JSON.
        #[arg(long)]
        json: bool,
        /// Names to send (default: Michael Tracy Sarah).
        names: Vec<String>,
    },
    /// Load a one-line request/response server and report requests/s and latency.
    Bench {
        /// The server's address.
        #[arg(long, value_parser = addr)]
        server: SocketAddr,
        /// Concurrent connections, one request in flight on each.
        #[arg(long, default_value_t = 64)]
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
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
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
            let bound =
                server::bind(&config).with_context(|| format!("cannot listen on {listen}"))?;
            let (proto, local) = bound.local()?;
            // Signals are handled from here on: whoever reads the next line may send one.
            let shutdown = protolab_transport::shutdown_on_signals();
            outln!("listening {proto} {local}");
            server::run(bound, config, shutdown).await?;
        }
        Cmd::Hello {
            server,
            udp,
            timeout,
            json,
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
                timeout,
            };
            let transcript = client::hello(&config).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&transcript)?);
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
            json,
        } => {
            let config = bench::BenchConfig {
                server,
                connections,
                duration,
                line,
                skip_banner,
                progress: !json,
            };
            let r = bench::run(&config).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                outln!(
                    "{} connections, {:.1} s: {} requests, {:.0} requests/s\n\
                     latency us: mean {:.0}  p50 {}  p90 {}  p99 {}  max {}\n\
                     errors: {} connections ended early, {} could not connect",
                    r.connections,
                    r.seconds,
                    r.requests,
                    r.requests_per_sec,
                    r.latency_us.mean,
                    r.latency_us.p50,
                    r.latency_us.p90,
                    r.latency_us.p99,
                    r.latency_us.max,
                    r.errors,
                    r.connect_errors
                );
            }
        }
    }
    Ok(())
}
