//! `impair`: impair UDP through a relay, or IP through a userspace link between namespaces.
//!
//! Here the command line becomes the libraries' plain configurations, the runtime is built, and
//! the ready lines and reports are printed; `protolab_impair::relay` and `::link` do the work.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use protolab_impair::engine::{
    Impairment, PerDirection, parse_optional_rate, parse_probability, parse_size,
};
use protolab_impair::link::{self, DEVICE, LEFT_ADDR, LinkConfig, RIGHT_ADDR};
use protolab_impair::relay::{self, MAX_SESSIONS, RelayConfig};
use protolab_transport::cli::parse_duration;
use protolab_transport::outln;
use serde::Serialize;

const EXAMPLES: &str = "\
Examples:
  impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --reorder 10% --seed 7
  impair link --left lab-a --right lab-b --loss 5% --delay 20ms --trace

Exit status: 0 ok, 1 failure, 2 usage error.
";

const UDP_EXAMPLES: &str = "\
Examples:
  impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --seed 7
  impair udp --forward 127.0.0.1:7777 --loss 5% --reorder 10% --dup 1% --delay 10ms --jitter 5ms
  impair udp --forward 127.0.0.1:7777 --loss 2%/0 --delay 0/20ms
      UP/DOWN: a setting per direction
  impair udp --forward 127.0.0.1:7777 --rate 1mbit --queue 64kB --stats truth.json
  impair udp --forward 127.0.0.1:7777 --json
      `listening` and the ground truth as JSON lines
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
    Udp(UdpArgs),
    /// Join two new network namespaces by a userspace link of TUN devices (needs root).
    #[command(after_help = LINK_EXAMPLES)]
    Link(LinkArgs),
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

fn probability(text: &str) -> Result<PerDirection<f64>, String> {
    PerDirection::parse(text, parse_probability)
}

fn duration(text: &str) -> Result<PerDirection<Duration>, String> {
    PerDirection::parse(text, parse_duration)
}

fn rate(text: &str) -> Result<PerDirection<Option<u64>>, String> {
    PerDirection::parse(text, parse_optional_rate)
}

fn size(text: &str) -> Result<PerDirection<usize>, String> {
    PerDirection::parse(text, parse_size)
}

fn addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, 7000).map_err(|e| e.to_string())
}

fn session_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= MAX_SESSIONS => Ok(n),
        _ => Err(format!(
            "{text:?} is not a number of sessions: write one from 0 to {MAX_SESSIONS}"
        )),
    }
}

/// Options of `impair udp`.
#[derive(Debug, clap::Args)]
#[command(after_help = UDP_EXAMPLES)]
struct UdpArgs {
    /// Where clients send: host:port, [v6]:port, or a port (loopback).
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = addr)]
    listen: SocketAddr,
    /// The server to relay to.
    #[arg(long, value_parser = addr)]
    forward: SocketAddr,
    /// Probability of dropping a datagram: 5% or 0.05, or UP/DOWN.
    #[arg(long, default_value = "0", value_parser = probability)]
    loss: PerDirection<f64>,
    /// Probability of sending a datagram twice.
    #[arg(long, default_value = "0", value_parser = probability)]
    dup: PerDirection<f64>,
    /// Probability of holding a datagram back behind the next one.
    #[arg(long, default_value = "0", value_parser = probability)]
    reorder: PerDirection<f64>,
    /// One-way delay added.
    #[arg(long, default_value = "0s", value_parser = duration)]
    delay: PerDirection<Duration>,
    /// Uniform variation of the delay, plus or minus (keeps order).
    #[arg(long, default_value = "0s", value_parser = duration)]
    jitter: PerDirection<Duration>,
    /// Bottleneck rate in bits per second, with its unit (1mbit, 500kbit, 8000bit); 0 for none.
    #[arg(long, default_value = "0", value_parser = rate)]
    rate: PerDirection<Option<u64>>,
    /// Bytes queued per direction, all sessions together, like a router's buffer (64kB,
    /// 4MiB; each datagram counts its size plus 64); a datagram that does not fit is dropped
    /// and counted in queue_dropped.
    #[arg(long, default_value = "4MiB", value_parser = size)]
    queue: PerDirection<usize>,
    /// Seed of the impairment decisions (printed when chosen at random).
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the ground truth to this file (refreshed every second, final on exit).
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Clients relayed at once (up to 10000); datagrams of further clients are dropped and
    /// counted in refused.
    #[arg(long, default_value_t = 1024, value_parser = session_count)]
    max_sessions: usize,
    /// Closed sessions whose truth is kept and listed (up to 10000); older ones are folded
    /// into the totals and counted in sessions_forgotten.
    #[arg(long, default_value_t = MAX_SESSIONS, value_parser = session_count)]
    keep_closed: usize,
    /// Close a session silent for this long (its counts stay in the ground truth).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    session_idle: Duration,
}

impl UdpArgs {
    fn config(&self) -> RelayConfig {
        RelayConfig {
            listen: self.listen,
            forward: self.forward,
            impairment: PerDirection::from_knobs(
                self.loss,
                self.dup,
                self.reorder,
                self.delay,
                self.jitter,
                self.rate,
            ),
            queue: self.queue,
            seed: protolab_transport::rng::seeded(self.seed).1,
            stats: self.stats.clone(),
            max_sessions: self.max_sessions,
            keep_closed: self.keep_closed,
            session_idle: self.session_idle,
        }
    }
}

/// Options of `impair link`.
#[derive(Debug, clap::Args)]
struct LinkArgs {
    /// Name of the left namespace to create (address 198.18.0.1) [default: plab-PID-left]
    #[arg(long, value_name = "NS")]
    left: Option<String>,
    /// Name of the right namespace to create (address 198.18.0.2) [default: plab-PID-right]
    #[arg(long, value_name = "NS")]
    right: Option<String>,
    /// Probability of dropping a packet: 5% or 0.05 both ways, or LEFT>RIGHT/RIGHT>LEFT (2%/0)
    #[arg(long, value_parser = probability, default_value = "0")]
    loss: PerDirection<f64>,
    /// Probability of delivering a packet twice
    #[arg(long, value_parser = probability, default_value = "0")]
    dup: PerDirection<f64>,
    /// Probability of holding a packet back so that later ones overtake it
    #[arg(long, value_parser = probability, default_value = "0")]
    reorder: PerDirection<f64>,
    /// Delay added to every packet, one way
    #[arg(long, value_parser = duration, default_value = "0s")]
    delay: PerDirection<Duration>,
    /// Random variation of the delay, plus or minus
    #[arg(long, value_parser = duration, default_value = "0s")]
    jitter: PerDirection<Duration>,
    /// Bandwidth in bits per second (10mbit, 500kbit, 64000); 0 for none
    #[arg(long, value_name = "BITS/S", value_parser = rate, default_value = "0")]
    rate: PerDirection<Option<u64>>,
    /// Bytes queued per direction, like a router's buffer (64kB, 4MiB; each packet counts its
    /// size plus 64); a packet that does not fit is dropped and counted in queue_dropped
    #[arg(long, value_name = "BYTES", value_parser = size, default_value = "4MiB")]
    queue: PerDirection<usize>,
    /// Seed of the impairment decisions: the same seed and traffic give the same decisions
    /// (printed when chosen at random)
    #[arg(long)]
    seed: Option<u64>,
    /// Print one line per packet: time, direction, TCP flags, seq, ack, window, length, fate
    #[arg(long)]
    trace: bool,
    /// Draw the packets as a sequence diagram into this SVG file at exit: two lifelines, one
    /// arrow per packet with its flags, seq/ack and length, a cross where the link dropped it
    /// (the first 200 packets)
    #[arg(long, value_name = "FILE.svg")]
    diagram: Option<PathBuf>,
    /// Write every packet entering the link to this pcap file (LINKTYPE_RAW), for tshark
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Write the ground truth per direction to this JSON file at exit
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Stop by itself after this long
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Print the ready line, trace lines and the summary as JSON, one object per line
    #[arg(long)]
    json: bool,
}

impl LinkArgs {
    fn config(&self) -> LinkConfig {
        LinkConfig {
            left: self.left.clone(),
            right: self.right.clone(),
            impairment: PerDirection::from_knobs(
                self.loss,
                self.dup,
                self.reorder,
                self.delay,
                self.jitter,
                self.rate,
            ),
            queue: self.queue,
            seed: protolab_transport::rng::seeded(self.seed).1,
            trace: self.trace,
            json: self.json,
            diagram: self.diagram.clone(),
            pcap: self.pcap.clone(),
            duration: self.duration,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    protolab_transport::cli::init_tracing(tracing::Level::INFO, cli.verbose);
    protolab_transport::cli::exit_with(match cli.cmd {
        Cmd::Udp(args) => udp(&args, cli.json),
        Cmd::Link(mut args) => {
            // `impair --json link` and `impair link --json` are the same.
            args.json |= cli.json;
            link(&args)
        }
        Cmd::Generate(args) => protolab_transport::cli::generate(Cli::command(), &args)
            .map(|_| ())
            .map_err(anyhow::Error::from),
    })
}

/// `impair udp`: relays until SIGINT or SIGTERM, then prints the ground truth (pretty JSON, or
/// one JSON line under `--json`) and writes it to `--stats`.
fn udp(args: &UdpArgs, json: bool) -> Result<()> {
    let config = args.config();
    // One thread: the relay is one event loop, and its decisions follow arrival order.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let truth = rt.block_on(async {
        let bound = relay::bind(&config)?;
        let shutdown = protolab_transport::shutdown_on_signals();
        for (proto, local) in bound.local_addrs() {
            protolab_transport::cli::listening(proto, local, json);
        }
        relay::run(bound, config, shutdown).await
    })?;
    if json {
        // One line, so that standard output stays a stream of JSON lines.
        outln!(
            "{}",
            serde_json::to_string(&truth).unwrap_or_else(|_| relay::pretty(&truth))
        );
    } else {
        outln!("{}", relay::pretty(&truth));
    }
    if let Some(path) = &args.stats {
        relay::write_stats(path, &truth).with_context(|| {
            format!(
                "write --stats {} at exit (the ground truth is on standard output)",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// `impair link`: brings the link up, prints the ready line, forwards until SIGINT, SIGTERM or
/// `--duration`, then prints what it did per direction and writes `--stats`.
fn link(args: &LinkArgs) -> Result<()> {
    let config = args.config();
    // Before any thread starts (the signal watcher below, the link's own), so that every
    // thread inherits the mask and the watcher alone takes SIGINT and SIGTERM.
    let signals = link::StopSignals::block();
    let bound = link::bind(&config)?;
    let (left, right) = bound.namespaces();
    announce(args.json, left, right, &config.impairment, config.seed)?;
    let shutdown = protolab_transport::CancellationToken::new();
    let (report, signal) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !shutdown.is_cancelled() {
                if let Some(sig) = signals.wait(Duration::from_millis(100)) {
                    tracing::info!("signal {sig}: taking the link down");
                    shutdown.cancel();
                    return Some(sig);
                }
            }
            None
        });
        let report = link::run(bound, config, shutdown.clone(), Box::new(std::io::stdout()));
        shutdown.cancel();
        (report, watcher.join().unwrap_or(None))
    });
    let report = report?;
    // The report comes first: a --stats file that cannot be written must not hide it.
    print_link_report(args.json, &report, signal);
    if let Some(path) = &args.stats {
        std::fs::write(path, serde_json::to_vec_pretty(&report.truth)?).with_context(|| {
            format!(
                "write --stats {} (the ground truth is in the report above)",
                path.display()
            )
        })?;
    }
    Ok(())
}

#[derive(Serialize)]
struct End<'a> {
    netns: &'a str,
    address: std::net::Ipv4Addr,
    device: &'a str,
}

/// Prints the ready line(s): after it, both namespaces carry traffic.
fn announce(
    json: bool,
    left: &str,
    right: &str,
    imp: &PerDirection<Impairment>,
    seed: u64,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let ready = serde_json::json!({
            "event": "ready",
            "left": End { netns: left, address: LEFT_ADDR, device: DEVICE },
            "right": End { netns: right, address: RIGHT_ADDR, device: DEVICE },
            "impairment": {"left_to_right": imp.first, "right_to_left": imp.second},
            "seed": seed.to_string(),
        });
        writeln!(out, "{ready}")?;
    } else {
        writeln!(
            out,
            "link up: left namespace {left} ({LEFT_ADDR} on {DEVICE}) <-> right namespace {right} ({RIGHT_ADDR} on {DEVICE})"
        )?;
        if imp.first == imp.second {
            writeln!(out, "each direction: {}", describe(&imp.first))?;
        } else {
            writeln!(out, "left to right: {}", describe(&imp.first))?;
            writeln!(out, "right to left: {}", describe(&imp.second))?;
        }
        writeln!(out, "seed {seed}")?;
        writeln!(
            out,
            "run programs inside with `ip netns exec {left} ...` and `ip netns exec {right} ...`; stop with Ctrl-C"
        )?;
        writeln!(out, "ready")?;
    }
    out.flush()?;
    Ok(())
}

/// One direction's impairment in words.
fn describe(imp: &Impairment) -> String {
    if imp.is_transparent() {
        return "no impairment".to_owned();
    }
    let rate = imp
        .rate_bps
        .map_or_else(|| "unlimited".to_owned(), |r| format!("{r} bit/s"));
    format!(
        "loss {}%, dup {}%, reorder {}%, delay {} ± {}, rate {rate}",
        imp.loss * 100.0,
        imp.dup * 100.0,
        imp.reorder * 100.0,
        millis(imp.delay),
        millis(imp.jitter),
    )
}

/// A duration in milliseconds for people: `20ms`, `0.25ms`, `0ms`.
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_secs_f64() * 1e3)
}

/// Prints what the link did per direction; `signal` is what stopped it (none: `--duration`).
fn print_link_report(json: bool, report: &link::LinkReport, signal: Option<i32>) {
    let reason = match signal {
        Some(libc::SIGINT) => "SIGINT",
        Some(libc::SIGTERM) => "SIGTERM",
        Some(_) => "a signal",
        None => "--duration",
    };
    let truth = &report.truth;
    let (write_errors, trace_lost) = (report.write_errors, report.trace_lost);
    if json {
        let summary = serde_json::json!({
            "event": "summary",
            // A string: any u64 may be a seed, and JSON readers lose digits above 2^53.
            "seed": report.seed.to_string(),
            "stopped_by": reason,
            "elapsed_us": report.elapsed_us,
            "left_to_right": truth.left_to_right,
            "right_to_left": truth.right_to_left,
            "left_to_right_kernel_dropped": truth.left_to_right_kernel_dropped,
            "right_to_left_kernel_dropped": truth.right_to_left_kernel_dropped,
            "write_errors": write_errors,
            "trace_lost": trace_lost,
        });
        outln!("{summary}");
        return;
    }
    outln!(
        "link down ({reason}) after {:.1}s; namespaces removed",
        report.elapsed_us as f64 / 1e6
    );
    outln!(
        "{:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "direction",
        "received",
        "forwarded",
        "dropped",
        "queue full",
        "duplicated",
        "reordered",
        "kernel"
    );
    for (name, t, kernel) in [
        (
            "left>right",
            &truth.left_to_right,
            truth.left_to_right_kernel_dropped,
        ),
        (
            "right>left",
            &truth.right_to_left,
            truth.right_to_left_kernel_dropped,
        ),
    ] {
        outln!(
            "{name:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {kernel:>10}",
            t.received,
            t.forwarded,
            t.dropped,
            t.queue_dropped,
            t.duplicated,
            t.reordered
        );
    }
    if write_errors > 0 {
        outln!("{write_errors} packets refused by the receiving kernel");
    }
    if trace_lost > 0 {
        outln!(
            "{trace_lost} packets missing from the trace: it could not keep up with the traffic"
        );
    }
}
