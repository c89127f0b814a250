//! `udpecho`: a UDP echo server and a probe that counts loss, duplicates, reordering and RTT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use protolab_transport::cli::{Failure, parse_at_least_one, parse_duration};
use protolab_transport::{out, outln};
use protolab_udpecho::{bulk, flows::FlowConfig, probe, server};

const EXAMPLES: &str = "\
Examples:
  udpecho serve                         echo probes on 127.0.0.1:7777 (UDP and TCP)
  udpecho probe 127.0.0.1:7777          100 probes, 10 ms apart
  udpecho sink                          receive bulk TCP transfers on 127.0.0.1:5001
  udpecho bulk 127.0.0.1:5001 --cc cubic --duration 10s --svg cubic.svg

Exit status: 0 ok, 1 failure, 2 usage error, 9 the target did not answer.
";

const SERVE_EXAMPLES: &str = "\
Examples:
  udpecho serve                         echo probes on 127.0.0.1:7777 (UDP and TCP)
  udpecho serve --raw                   reflect any datagram (RFC 862), loopback only
  udpecho serve --listen 0 --json       a free port, `listening` lines and report as JSON
  udpecho serve --workers 1 --no-tcp    one UDP thread, no TCP
";

const PROBE_EXAMPLES: &str = "\
Examples:
  udpecho probe 127.0.0.1:7777
      100 probes, 10 ms apart
  udpecho probe 127.0.0.1:7777 --rate 10000pps --duration 10s --size 64
  udpecho probe 127.0.0.1:7000 --count 100000 --interval 100us --wait 2s --json
  udpecho probe 127.0.0.1:7777 --tcp --count 1000
      the same probes over one TCP connection
  udpecho probe 127.0.0.1:7777 --rate 1000 --duration 5s --busy
      RTT without wake-up delay
  udpecho probe 127.0.0.1:7777 --packets probes.jsonl
      one JSON line per probe into probes.jsonl
  udpecho probe 127.0.0.1:7777 --count 1000 --svg probe.svg
      RTT, losses and IPDV drawn
";

fn addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, 7777).map_err(|e| e.to_string())
}

/// Probes per second: `1000`, `1000pps` or `1000/s`. (impair's `--rate` is a bit rate and
/// always has a unit, so the two never read the same text differently.)
fn rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("pps")
        .or_else(|| t.strip_suffix("/s"))
        .unwrap_or(t);
    match t.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 100_000_000.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a rate: write probes per second, like 1000 or 1000pps"
        )),
    }
}

fn count(text: &str) -> Result<u64, String> {
    protolab_transport::cli::parse_at_least_one(text).map(|n| n as u64)
}

#[derive(Debug, Parser)]
#[command(name = "udpecho", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Reports (and the `listening` lines) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Echo probe packets over UDP and TCP (prints `listening udp ADDR` and `listening tcp ADDR`).
    #[command(after_help = SERVE_EXAMPLES)]
    Serve {
        /// Address to listen on: host:port, [v6]:port, or a port (loopback).
        #[arg(long, default_value = "127.0.0.1:7777", value_parser = addr)]
        listen: SocketAddr,
        /// Reflect any datagram unchanged (RFC 862 echo) instead of only probe packets.
        #[arg(long)]
        raw: bool,
        /// With --raw, listen and answer off loopback too.
        #[arg(long)]
        allow_remote: bool,
        /// UDP receive threads (default: one per core); each flow stays on one, in order.
        #[arg(long, value_parser = parse_at_least_one)]
        workers: Option<usize>,
        /// Flows tracked at once; past it new flows are echoed without counts.
        #[arg(long, default_value_t = 65_536, value_parser = parse_at_least_one)]
        max_flows: usize,
        /// Forget a flow silent for this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        flow_idle: Duration,
        /// Longest probe echoed, in bytes; longer datagrams are counted and dropped.
        #[arg(long, default_value_t = protolab_udpecho::flows::DEFAULT_MAX_SIZE)]
        max_size: usize,
        /// Serve UDP only.
        #[arg(long)]
        no_tcp: bool,
        /// TCP connections served at once (1 or more); a client over it is closed at once.
        #[arg(long, default_value_t = 1024, value_parser = parse_at_least_one)]
        max_connections: usize,
        /// Close a TCP connection silent (or not reading its replies) for this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
    },
    /// Send probes to an echo server and report loss, duplicates, reordering, RTT and jitter.
    ///
    /// Ctrl-C stops sending, waits for the replies in flight and prints the report of what was
    /// sent; a second Ctrl-C exits at once. Exit status 9 when no probe got a reply.
    #[command(after_help = PROBE_EXAMPLES)]
    Probe {
        /// The server (or a relay in front of it).
        #[arg(value_parser = addr)]
        target: SocketAddr,
        /// Probes to send, 1 or more (default 100 when --duration is not given).
        #[arg(long, short = 'c', value_parser = count)]
        count: Option<u64>,
        /// Send for this long (with --count too, whichever ends first).
        #[arg(long, short = 'd', value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Time between probes.
        #[arg(long, short = 'i', value_parser = parse_duration, conflicts_with = "rate")]
        interval: Option<Duration>,
        /// Probes per second, like 1000 or 1000pps (instead of --interval).
        #[arg(long, short = 'r', value_parser = rate)]
        rate: Option<f64>,
        /// Bytes per probe, the 56-byte header included.
        #[arg(long, short = 's', default_value_t = 64)]
        size: usize,
        /// How late a reply may be before it counts as lost (and how long to listen after the last probe).
        #[arg(long, short = 'w', default_value = "1s", value_parser = parse_duration)]
        wait: Duration,
        /// Seed for the flow id, to repeat a run exactly.
        #[arg(long)]
        seed: Option<u64>,
        /// Write one JSON line per probe to this file.
        #[arg(long)]
        packets: Option<PathBuf>,
        /// Also write the JSON report to this file (the table still goes to the terminal).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Send the probes over one TCP connection instead.
        #[arg(long)]
        tcp: bool,
        /// No progress line.
        #[arg(long, short = 'q')]
        quiet: bool,
        /// Spin on the receive socket so replies are timestamped as they land (uses a core).
        #[arg(long)]
        busy: bool,
        /// Draw the run as an SVG picture: RTT per probe over time with losses (up and down
        /// apart), reordering and percentile lines, and the IPDV histogram
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Send one bulk TCP transfer and sample the kernel's congestion control state (TCP_INFO).
    ///
    /// Writes as fast as the path takes for --duration under the congestion control asked for
    /// (reno, cubic, bbr: see `sysctl net.ipv4.tcp_available_congestion_control`), reading
    /// cwnd, ssthresh, RTT, retransmissions and delivery rate every --sample. `udpecho sink`
    /// receives.
    #[command(after_help = BULK_EXAMPLES)]
    Bulk {
        /// The sink's address (port 5001 when only a host is given)
        #[arg(value_parser = bulk_addr)]
        target: SocketAddr,
        /// Congestion control for this socket (TCP_CONGESTION) [default: the system's]
        #[arg(long, value_name = "NAME")]
        cc: Option<String>,
        /// How long to keep sending (at most 120s)
        #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// How often to read TCP_INFO
        #[arg(long, default_value = "5ms", value_parser = parse_duration)]
        sample: Duration,
        /// The bottleneck's rate in bits/s, drawn as a line on the goodput panel (10mbit, 500kbit)
        #[arg(long, value_name = "BITS/S", value_parser = bits_per_second)]
        bottleneck: Option<f64>,
        /// Draw cwnd with ssthresh and retransmissions, RTT and goodput as one SVG picture
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Receive bulk TCP transfers and drop the bytes; one JSON line per finished connection.
    #[command(after_help = SINK_EXAMPLES)]
    Sink {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:5001", value_parser = bulk_addr)]
        listen: SocketAddr,
    },
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

const BULK_EXAMPLES: &str = "\
Examples:
  udpecho bulk 127.0.0.1:5001 --cc cubic --duration 10s --svg cubic.svg
      one transfer, its cwnd, RTT and goodput drawn
  udpecho bulk 127.0.0.1 --cc bbr --bottleneck 10mbit --svg bbr.svg --json
";

const SINK_EXAMPLES: &str = "\
Examples:
  udpecho sink                          receive on 127.0.0.1:5001
  udpecho sink --listen 127.0.0.1:0 --json
";

fn bulk_addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, 5001).map_err(|e| e.to_string())
}

fn bits_per_second(text: &str) -> Result<f64, String> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("gbit") {
        (n, 1e9)
    } else if let Some(n) = t.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix("kbit") {
        (n, 1e3)
    } else {
        (t.as_str(), 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * mult),
        _ => Err(format!(
            "{text:?} is not a rate: write bits per second, like 10mbit or 500kbit"
        )),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    protolab_transport::cli::init_tracing(tracing::Level::INFO, cli.verbose);
    protolab_transport::cli::exit_with(run(cli))
}

/// Set by the first SIGINT during `udpecho probe`: stop sending, then report.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and _exit for the second Ctrl-C.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit(2) is async-signal-safe and ends the process at once, as a second
        // Ctrl-C asks; nothing is left to flush that the user still wants.
        unsafe { libc::_exit(130) };
    }
}

/// The first SIGINT ends the probe's sending and lets it report; the second exits at once.
fn interrupt_on_sigint() -> Result<&'static AtomicBool> {
    // SAFETY: sigaction is given a zero-initialised struct (a valid value) with an empty mask
    // and a handler that only touches an atomic and calls _exit.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &raw const action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("install the SIGINT handler");
    }
    Ok(&INTERRUPTED)
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Generate(args) => {
            protolab_transport::cli::generate(<Cli as clap::CommandFactory>::command(), &args)?;
            Ok(())
        }
        Cmd::Serve {
            listen,
            raw,
            allow_remote,
            workers,
            max_flows,
            flow_idle,
            max_size,
            no_tcp,
            max_connections,
            idle_timeout,
        } => {
            let config = server::ServeConfig {
                listen,
                raw,
                allow_remote,
                workers: workers
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                tcp: !no_tcp,
                max_connections,
                idle_timeout,
                flows: FlowConfig {
                    max_flows,
                    idle: flow_idle,
                    max_size,
                },
            };
            let rt = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
            let report = rt.block_on(async {
                let bound = server::bind(&config)?;
                // Signals are handled from here on: whoever reads the next lines may send one.
                let shutdown = protolab_transport::shutdown_on_signals();
                for (proto, addr) in bound.local_addrs() {
                    protolab_transport::cli::listening(proto, addr, json);
                }
                server::run(bound, config, shutdown).await
            })?;
            outln!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Probe {
            target,
            count,
            duration,
            interval,
            rate,
            size,
            wait,
            seed,
            packets,
            output,
            tcp,
            quiet,
            busy,
            svg,
        } => {
            let interval = match (interval, rate) {
                (Some(i), _) => i,
                (None, Some(r)) => Duration::from_secs_f64(1.0 / r),
                (None, None) => Duration::from_millis(10),
            };
            let (mut rng, seed) = protolab_transport::rng::seeded(seed);
            let flow = rand::Rng::random::<u32>(&mut rng);
            let mut cfg = probe::ProbeConfig {
                target,
                count: if duration.is_none() {
                    Some(count.unwrap_or(100))
                } else {
                    count
                },
                duration,
                interval,
                size,
                wait,
                flow,
                seed,
                tcp,
                progress: None,
                busy,
                interrupt: Some(interrupt_on_sigint()?),
            };
            if !quiet
                && !json
                && probe::progress_wanted(&cfg)
                && std::io::IsTerminal::is_terminal(&std::io::stderr())
            {
                cfg.progress = Some(probe::OnProgress::new(show_progress));
            }
            let run = probe::run(&cfg).map_err(|e| match e {
                // The target did not answer: dig's status 9, not a failure of the probe.
                probe::ProbeError::NothingListens { .. } => {
                    anyhow::Error::new(Failure::no_answer(e.to_string()))
                }
                probe::ProbeError::Connect { ref source, .. }
                    if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    anyhow::Error::new(Failure::no_answer(e.to_string()))
                }
                e => anyhow::Error::new(e),
            })?;
            if let Some(path) = packets {
                write_packets(&path, &run.packets)?;
            }
            if let Some(path) = svg {
                let title = format!(
                    "udpecho probe {target}{}: {} sent, {} lost, {} reordered",
                    if tcp { " --tcp" } else { "" },
                    run.summary.report.sent,
                    run.summary.report.lost,
                    run.summary.report.reordered
                );
                protolab_udpecho::plot::probe(&path, &run.packets, &run.summary.report, &title)?;
            }
            // The seed is any u64: above 2^53 a JSON number loses digits in most readers.
            let mut summary = serde_json::to_value(&run.summary)?;
            summary["seed"] = serde_json::Value::String(run.summary.seed.to_string());
            let report = serde_json::to_string_pretty(&summary)?;
            if let Some(path) = output {
                std::fs::write(&path, &report)
                    .with_context(|| format!("write {}", path.display()))?;
            }
            if json {
                outln!("{}", serde_json::to_string(&summary)?);
            } else {
                out!("{}", probe::render(&run.summary));
            }
            if run.summary.report.sent > 0 && run.summary.report.received == 0 {
                return Err(
                    Failure::no_answer(format!("no reply at all from udp {target}"))
                        .hint("is `udpecho serve` (or a relay in front of it) running there?")
                        .into(),
                );
            }
            Ok(())
        }
        Cmd::Bulk {
            target,
            cc,
            duration,
            sample,
            bottleneck,
            svg,
        } => bulk(
            &bulk::BulkConfig {
                target,
                congestion: cc,
                duration,
                sample,
            },
            bottleneck,
            svg.as_deref(),
            json,
        ),
        Cmd::Sink { listen } => sink(listen, json),
    }
}

fn bulk(
    cfg: &bulk::BulkConfig,
    bottleneck: Option<f64>,
    svg: Option<&std::path::Path>,
    json: bool,
) -> Result<()> {
    let report = bulk::run(cfg)?;
    if let Some(path) = svg {
        let title = format!(
            "{}: {:.2} Mbit/s goodput, {} retransmitted segments",
            report.congestion,
            report.goodput_bps / 1e6,
            report.total_retrans
        );
        protolab_udpecho::plot::congestion(path, &report, bottleneck, &title)?;
    }
    if json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!(
            "{} to {}: {} bytes acknowledged in {:.2} s, goodput {:.2} Mbit/s, {} segments retransmitted, {} TCP_INFO samples",
            report.congestion,
            report.target,
            report.bytes_acked,
            report.seconds,
            report.goodput_bps / 1e6,
            report.total_retrans,
            report.samples.len()
        );
    }
    Ok(())
}

fn sink(listen: SocketAddr, json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    rt.block_on(async {
        let config = bulk::SinkConfig {
            listen,
            ..bulk::SinkConfig::default()
        };
        let bound = bulk::bind_sink(&config)?;
        for (proto, addr) in bound.local_addrs() {
            protolab_transport::cli::listening(proto, addr, json);
        }
        let shutdown = protolab_transport::shutdown_on_signals();
        // Each connection's line is the sink's output, printed as it ends; the totals add
        // nothing a reader of those lines lacks, so they go to the log only.
        let report = bulk::sink(bound, config, shutdown, |received| {
            if let Ok(line) = serde_json::to_string(&received) {
                outln!("{line}");
            }
        })
        .await
        .context("sink")?;
        tracing::debug!(?report, "sink stopped");
        Ok(())
    })
}

fn write_packets(path: &PathBuf, packets: &[protolab_udpecho::stats::PacketRecord]) -> Result<()> {
    use std::io::Write;
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for p in packets {
        serde_json::to_writer(&mut out, p)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The probe's progress line on standard error, redrawn in place once a second.
fn show_progress(p: &probe::Progress) {
    use std::io::Write as _;
    if p.finished {
        eprintln!();
        return;
    }
    eprint!(
        "\r{:>4}s  sent {}  replies {}  lost so far {}  duplicates {}  reordered {}   ",
        p.secs,
        p.sent,
        p.replies,
        p.sent.saturating_sub(p.replies),
        p.duplicates,
        p.reordered
    );
    let _ = std::io::stderr().flush();
}
