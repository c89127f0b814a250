//! `impair link`: two network namespaces joined by a userspace link that impairs IP packets.
//!
//! Each namespace gets a TUN device (`link0`) with one address of the RFC 2544 benchmarking
//! range, 198.18.0.1 on the left and 198.18.0.2 on the right, each the other's point-to-point
//! peer. Whatever a program in one namespace sends to the other address leaves through the TUN
//! device into this process, which applies the same impairment engine as `impair udp`, one
//! engine per direction, and writes the packets the engine releases into the other device. It
//! is netem done in userspace, for kernels without it.
//!
//! Layout:
//! - `tun`: the TUN devices (one ioctl on /dev/net/tun) and the wait for packets;
//! - `netns`: the namespaces, their ownership records and their removal, even after SIGKILL;
//! - `forward`: the forwarding loop of one direction;
//! - `trace`: packet decoding (etherparse) and the trace lines, without I/O;
//! - `diagram`: the trace drawn as a sequence diagram (`--diagram`, SVG through plotters).

mod diagram;
mod forward;
mod netns;
mod trace;
mod tun;

pub use trace::{Action, Direction, Line, Summary, TcpFlags, Transport, WindowScales};

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::engine::{
    Engine, GroundTruth, Impairment, parse_each, parse_optional_rate, parse_probability, parse_size,
};
use protolab_transport::cli::parse_duration;

/// The left end's address, from the benchmarking range of RFC 2544 (198.18.0.0/15).
pub const LEFT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The right end's address.
pub const RIGHT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The TUN device's name inside each namespace (each namespace has its own set of names).
pub const DEVICE: &str = "link0";

/// Trace events queued for the tracer before new ones are counted as lost rather than slowing
/// the link down.
const TRACE_QUEUE: usize = 65_536;

const EXAMPLES: &str = "\
EXAMPLES:
    impair link --left lab-a --right lab-b
        then, in other terminals:
        ip netns exec lab-b udpecho serve --listen 198.18.0.2:7777
        ip netns exec lab-a udpecho probe 198.18.0.2:7777 --count 1000
    impair link --left lab-a --right lab-b --loss 5% --reorder 10% --delay 20ms --jitter 5ms --seed 7
    impair link --left lab-a --right lab-b --trace --pcap link.pcap     (then: tshark -r link.pcap)
    impair link --left lab-a --right lab-b --trace --diagram packets.svg  (a sequence diagram)
    impair link --left lab-a --right lab-b --rate 10mbit --delay 40ms --stats truth.json
    impair link --left lab-a --right lab-b --rate 1mbit --queue 64kB     (a shallow buffer)

The left namespace has 198.18.0.1 and the right one 198.18.0.2 on device link0. The link runs
until SIGINT or SIGTERM (or --duration), then removes both namespaces and prints what it did
per direction. It needs root; without root use `impair udp`.
";

/// Options of `impair link`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LinkArgs {
    /// Name of the left namespace to create (address 198.18.0.1) [default: plab-PID-left]
    #[arg(long, value_name = "NS")]
    pub left: Option<String>,
    /// Name of the right namespace to create (address 198.18.0.2) [default: plab-PID-right]
    #[arg(long, value_name = "NS")]
    pub right: Option<String>,
    /// Probability of dropping a packet: 5% or 0.05 both ways, or LEFT>RIGHT/RIGHT>LEFT (2%/0)
    #[arg(long, value_parser = probability, default_value = "0")]
    pub loss: Each<f64>,
    /// Probability of delivering a packet twice
    #[arg(long, value_parser = probability, default_value = "0")]
    pub dup: Each<f64>,
    /// Probability of holding a packet back so that later ones overtake it
    #[arg(long, value_parser = probability, default_value = "0")]
    pub reorder: Each<f64>,
    /// Delay added to every packet, one way
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub delay: Each<Duration>,
    /// Random variation of the delay, plus or minus
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub jitter: Each<Duration>,
    /// Bandwidth in bits per second (10mbit, 500kbit, 64000); 0 for none
    #[arg(long, value_name = "BITS/S", value_parser = rate, default_value = "0")]
    pub rate: Each<Option<u64>>,
    /// Bytes queued per direction, like a router's buffer (64kB, 4MiB; each packet counts its
    /// size plus 64); a packet that does not fit is dropped and counted in queue_dropped
    #[arg(long, value_name = "BYTES", value_parser = size, default_value = "4MiB")]
    pub queue: Each<usize>,
    /// Seed of the impairment decisions: the same seed and traffic give the same decisions
    /// (printed when chosen at random)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one line per packet: time, direction, TCP flags, seq, ack, window, length, fate
    #[arg(long)]
    pub trace: bool,
    /// Draw the packets as a sequence diagram into this SVG file at exit: two lifelines, one
    /// arrow per packet with its flags, seq/ack and length, a cross where the link dropped it
    /// (the first 200 packets)
    #[arg(long, value_name = "FILE.svg")]
    pub diagram: Option<PathBuf>,
    /// Write every packet entering the link to this pcap file (LINKTYPE_RAW), for tshark
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Write the ground truth per direction to this JSON file at exit
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Stop by itself after this long
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the ready line, trace lines and the summary as JSON, one object per line
    #[arg(long)]
    pub json: bool,
}

/// A setting for both directions, or one per direction: `A/B` is A from left to right and B
/// from right to left, as `impair udp` takes UP/DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Each<T> {
    pub left_to_right: T,
    pub right_to_left: T,
}

fn each<T: Clone>(text: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Each<T>, String> {
    let (left_to_right, right_to_left) = parse_each(text, one)?;
    Ok(Each {
        left_to_right,
        right_to_left,
    })
}

fn probability(text: &str) -> Result<Each<f64>, String> {
    each(text, parse_probability)
}

fn duration(text: &str) -> Result<Each<Duration>, String> {
    each(text, parse_duration)
}

fn rate(text: &str) -> Result<Each<Option<u64>>, String> {
    each(text, parse_optional_rate)
}

fn size(text: &str) -> Result<Each<usize>, String> {
    each(text, parse_size)
}

impl<T: Copy> Each<T> {
    /// The setting of one direction.
    fn of(&self, direction: Direction) -> T {
        match direction {
            Direction::LeftToRight => self.left_to_right,
            Direction::RightToLeft => self.right_to_left,
        }
    }
}

impl LinkArgs {
    /// The impairment of one direction.
    pub fn impairment(&self, direction: Direction) -> Impairment {
        Impairment {
            loss: self.loss.of(direction),
            dup: self.dup.of(direction),
            reorder: self.reorder.of(direction),
            delay: self.delay.of(direction),
            jitter: self.jitter.of(direction),
            rate_bps: self.rate.of(direction),
        }
    }
}

/// The ground truth of both directions, as written at exit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LinkTruth {
    pub left_to_right: GroundTruth,
    pub right_to_left: GroundTruth,
    /// Packets the left namespace's kernel dropped at its device because the link had not read
    /// the ones before (its queue of txqueuelen packets was full): they never reached the
    /// engine. The left end sent `left_to_right.received` plus these.
    #[serde(default)]
    pub left_to_right_kernel_dropped: u64,
    /// The same at the right end's device.
    #[serde(default)]
    pub right_to_left_kernel_dropped: u64,
}

/// The seed of each direction's engine, both derived from `--seed`.
pub fn direction_seeds(seed: u64) -> (u64, u64) {
    // Two different streams from one seed: the right-to-left seed is the left-to-right one
    // mixed with an odd constant (the golden ratio's, as splitmix64 uses), so neither direction
    // repeats the other's decisions.
    (seed, seed ^ 0x9e37_79b9_7f4a_7c15)
}

/// Checks the privileges `impair link` needs, plainly.
///
/// # Errors
/// Not running as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "impair link needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network \
             namespaces and TUN devices: run it as root, or impair UDP without root through a \
             relay, e.g. `impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5%`"
        );
    }
    Ok(())
}

/// Runs `impair link` until SIGINT, SIGTERM or `--duration`.
///
/// # Errors
/// No root, a namespace name taken, `ip` or the TUN driver missing, or a device failing.
pub fn main(args: LinkArgs) -> Result<()> {
    require_root()?;
    let pid = std::process::id();
    let left = args
        .left
        .clone()
        .unwrap_or_else(|| format!("plab-{pid}-left"));
    let right = args
        .right
        .clone()
        .unwrap_or_else(|| format!("plab-{pid}-right"));
    netns::check_name(&left)?;
    netns::check_name(&right)?;
    if left == right {
        bail!("--left and --right name the same namespace {left:?}: give two different names");
    }
    netns::sweep_stale();
    netns::check_free(&left)?;
    netns::check_free(&right)?;

    // Signals are blocked before any thread starts, so every thread inherits the mask and the
    // main thread alone takes SIGINT and SIGTERM, through sigtimedwait.
    let signals = block_signals();

    // Record ownership first, then start the guardian: from here on, whatever happens to this
    // process, both namespaces are removed.
    let record = netns::Ownership::of_this_process(vec![left.clone(), right.clone()]);
    record.write()?;
    let cleanup = Cleanup(record.clone());
    let _guardian = netns::Guardian::start(&record).context("fork the cleanup guardian")?;

    let (left_tun, right_tun) = build(&left, &right)?;
    let (_, seed) = protolab_transport::rng::seeded(args.seed);
    let impairment = Each {
        left_to_right: args.impairment(Direction::LeftToRight),
        right_to_left: args.impairment(Direction::RightToLeft),
    };
    announce(&args, &left, &right, &impairment, seed)?;

    let start = Instant::now();
    let wall_start = SystemTime::now();
    let stop = tun::Waker::new().context("create the shutdown eventfd")?;
    let (seed_lr, seed_rl) = direction_seeds(seed);
    let truth_lr = Mutex::new(GroundTruth::default());
    let truth_rl = Mutex::new(GroundTruth::default());
    let write_errors = AtomicU64::new(0);
    let trace_lost = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let tracing_on = args.trace || args.pcap.is_some() || args.diagram.is_some();
    let (seen_tx, seen_rx) = sync_channel::<forward::Seen>(TRACE_QUEUE);
    let pcap = match &args.pcap {
        Some(path) => Some(open_pcap(path)?),
        None => None,
    };

    let outcome = std::thread::scope(|s| -> Result<Option<i32>> {
        let tracer = tracing_on.then(|| {
            let rx = seen_rx;
            let diagram = args.diagram.as_deref();
            s.spawn(move || tracer(rx, args.trace, args.json, wall_start, pcap, diagram))
        });
        let mut workers = Vec::new();
        let ends = [
            (
                Direction::LeftToRight,
                &left_tun,
                &right_tun,
                seed_lr,
                &truth_lr,
            ),
            (
                Direction::RightToLeft,
                &right_tun,
                &left_tun,
                seed_rl,
                &truth_rl,
            ),
        ];
        for (direction, from, to, seed, truth) in ends {
            let shared = forward::Shared {
                start,
                stop: &stop,
                truth,
                write_errors: &write_errors,
                trace_lost: &trace_lost,
                seen: tracing_on.then(|| seen_tx.clone()),
            };
            let engine = Engine::new(args.impairment(direction), seed)
                .with_queue_limit(args.queue.of(direction));
            let failed = &failed;
            workers.push(s.spawn(move || {
                let r = forward::run(direction, from, to, engine, &shared);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                r
            }));
        }
        drop(seen_tx);
        let deadline = args.duration.map(|d| start + d);
        let signal = wait_for_stop(&signals, deadline, &failed);
        stop.wake();
        for (w, dir) in workers.into_iter().zip(["left-to-right", "right-to-left"]) {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e).context(format!("forwarding {dir} failed")),
                Err(_) => bail!("the {dir} forwarding thread panicked"),
            }
        }
        if let Some(t) = tracer {
            t.join()
                .map_err(|_| anyhow::anyhow!("the tracer thread panicked"))?
                .context("write the trace or the capture")?;
        }
        Ok(signal)
    });

    // Read while the devices still exist: after the forwarding stopped, nothing more is
    // dropped at them that the link could have read.
    let truth = LinkTruth {
        left_to_right: truth_lr.into_inner().unwrap_or_else(|p| p.into_inner()),
        right_to_left: truth_rl.into_inner().unwrap_or_else(|p| p.into_inner()),
        left_to_right_kernel_dropped: netns::tx_dropped(&left, DEVICE).unwrap_or(0),
        right_to_left_kernel_dropped: netns::tx_dropped(&right, DEVICE).unwrap_or(0),
    };
    drop(left_tun);
    drop(right_tun);
    drop(cleanup);
    let signal = outcome?;
    // The report comes first: a --stats file that cannot be written must not hide it.
    report(
        &args,
        seed,
        &truth,
        start.elapsed(),
        signal,
        write_errors.into_inner(),
        trace_lost.into_inner(),
    )?;
    if let Some(path) = &args.stats {
        std::fs::write(path, serde_json::to_vec_pretty(&truth)?).with_context(|| {
            format!(
                "write --stats {} (the ground truth is in the report above)",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Removes the run's namespaces and record when dropped, on every way out of [`main`].
struct Cleanup(netns::Ownership);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// Creates both namespaces and their devices, addressed and up.
fn build(left: &str, right: &str) -> Result<(tun::Tun, tun::Tun)> {
    let mut tuns = Vec::new();
    for (ns, addr, peer) in [
        (left, LEFT_ADDR, RIGHT_ADDR),
        (right, RIGHT_ADDR, LEFT_ADDR),
    ] {
        netns::create(ns).with_context(|| format!("create namespace {ns}"))?;
        let tun = tun::Tun::create_in(&netns::path(ns), DEVICE)
            .with_context(|| format!("create TUN device {DEVICE} in namespace {ns} (is the tun module loaded? try `modprobe tun`)"))?;
        let (addr, peer) = (addr.to_string(), peer.to_string());
        netns::ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &addr,
            "peer",
            &peer,
            "dev",
            tun.name(),
        ])?;
        // The kernel queues packets on the device until the link reads them; a deep queue
        // rides out the moments when the link's thread waits for a core, so that no packet is
        // lost before the engine decides its fate (a loss no ground truth would count).
        netns::ip(&["-n", ns, "link", "set", tun.name(), "txqueuelen", "10000"])?;
        netns::ip(&["-n", ns, "link", "set", tun.name(), "up"])?;
        tuns.push(tun);
    }
    let right_tun = tuns.pop().expect("two devices");
    let left_tun = tuns.pop().expect("two devices");
    Ok((left_tun, right_tun))
}

#[derive(Serialize)]
struct End<'a> {
    netns: &'a str,
    address: Ipv4Addr,
    device: &'a str,
}

/// Prints the ready line(s): after it, both namespaces carry traffic.
fn announce(
    args: &LinkArgs,
    left: &str,
    right: &str,
    imp: &Each<Impairment>,
    seed: u64,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        let ready = serde_json::json!({
            "event": "ready",
            "left": End { netns: left, address: LEFT_ADDR, device: DEVICE },
            "right": End { netns: right, address: RIGHT_ADDR, device: DEVICE },
            "impairment": imp,
            "seed": seed.to_string(),
        });
        writeln!(out, "{ready}")?;
    } else {
        writeln!(
            out,
            "link up: left namespace {left} ({LEFT_ADDR} on {DEVICE}) <-> right namespace {right} ({RIGHT_ADDR} on {DEVICE})"
        )?;
        if imp.left_to_right == imp.right_to_left {
            writeln!(out, "each direction: {}", describe(&imp.left_to_right))?;
        } else {
            writeln!(out, "left to right: {}", describe(&imp.left_to_right))?;
            writeln!(out, "right to left: {}", describe(&imp.right_to_left))?;
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

/// Prints what the link did per direction.
fn report(
    args: &LinkArgs,
    seed: u64,
    truth: &LinkTruth,
    ran: Duration,
    signal: Option<i32>,
    write_errors: u64,
    trace_lost: u64,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let reason = match signal {
        Some(libc::SIGINT) => "SIGINT",
        Some(libc::SIGTERM) => "SIGTERM",
        Some(_) => "a signal",
        None => "--duration",
    };
    if args.json {
        let summary = serde_json::json!({
            "event": "summary",
            // A string: any u64 may be a seed, and JSON readers lose digits above 2^53.
            "seed": seed.to_string(),
            "stopped_by": reason,
            "elapsed_us": u64::try_from(ran.as_micros()).unwrap_or(u64::MAX),
            "left_to_right": truth.left_to_right,
            "right_to_left": truth.right_to_left,
            "left_to_right_kernel_dropped": truth.left_to_right_kernel_dropped,
            "right_to_left_kernel_dropped": truth.right_to_left_kernel_dropped,
            "write_errors": write_errors,
            "trace_lost": trace_lost,
        });
        let _ = writeln!(out, "{summary}");
    } else {
        let _ = writeln!(
            out,
            "link down ({reason}) after {:.1}s; namespaces removed",
            ran.as_secs_f64()
        );
        let _ = writeln!(
            out,
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
            let _ = writeln!(
                out,
                "{name:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {kernel:>10}",
                t.received, t.forwarded, t.dropped, t.queue_dropped, t.duplicated, t.reordered
            );
        }
        if write_errors > 0 {
            let _ = writeln!(
                out,
                "{write_errors} packets refused by the receiving kernel"
            );
        }
        if trace_lost > 0 {
            let _ = writeln!(
                out,
                "{trace_lost} packets missing from the trace: it could not keep up with the traffic"
            );
        }
    }
    let _ = out.flush();
    Ok(())
}

/// SIGINT and SIGTERM, blocked in every thread so that [`wait_for_stop`] receives them.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask
    // only changes this thread's mask (inherited by the threads it starts later).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for SIGINT or SIGTERM (returned), the deadline, or a forwarding thread failing.
fn wait_for_stop(
    set: &libc::sigset_t,
    deadline: Option<Instant>,
    failed: &AtomicBool,
) -> Option<i32> {
    loop {
        if failed.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let tick = libc::timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        // SAFETY: a valid signal set and timeout; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &tick) };
        if sig > 0 {
            tracing::info!("signal {sig}: taking the link down");
            return Some(sig);
        }
    }
}

type Pcap = pcap_file::pcap::PcapWriter<std::io::BufWriter<std::fs::File>>;

fn open_pcap(path: &std::path::Path) -> Result<Pcap> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("create the capture file {}", path.display()))?;
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::RAW,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..Default::default()
    };
    pcap_file::pcap::PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .with_context(|| format!("write the capture header to {}", path.display()))
}

/// Writes trace lines and capture records for every packet the forwarding threads saw.
fn tracer(
    rx: Receiver<forward::Seen>,
    lines: bool,
    json: bool,
    wall_start: SystemTime,
    mut pcap: Option<Pcap>,
    diagram: Option<&std::path::Path>,
) -> Result<()> {
    let epoch = wall_start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut scales = trace::WindowScales::default();
    // The diagram's packets, capped: it draws the first ones only.
    let mut drawn: Vec<Line> = Vec::new();
    let mut seen_total = 0u64;
    let mut next = rx.recv().ok();
    while let Some(seen) = next {
        seen_total += 1;
        if diagram.is_some() && drawn.len() < diagram::MAX_PACKETS {
            drawn.push(Line::new(
                seen.at,
                seen.direction,
                &seen.packet,
                seen.action,
                &mut scales,
            ));
        }
        if lines {
            let line = Line::new(
                seen.at,
                seen.direction,
                &seen.packet,
                seen.action,
                &mut scales,
            );
            // A closed stdout (the reader went away) must not stop the link.
            let _ = if json {
                writeln!(out, "{}", serde_json::to_string(&line)?)
            } else {
                writeln!(out, "{line}")
            };
        }
        if let Some(w) = pcap.as_mut() {
            let record = pcap_file::pcap::PcapPacket::new(
                epoch + seen.at,
                seen.packet.len() as u32,
                &seen.packet,
            );
            w.write_packet(&record).context("write a capture record")?;
        }
        next = match rx.try_recv() {
            Ok(s) => Some(s),
            Err(_) => {
                // Nothing more waiting: let the reader see what there is before sleeping.
                let _ = out.flush();
                rx.recv().ok()
            }
        };
    }
    let _ = out.flush();
    if let Some(w) = pcap {
        w.into_writer().flush().context("flush the capture")?;
    }
    if let Some(path) = diagram {
        diagram::draw(path, &drawn, seen_total)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_seeds_differ_and_repeat() {
        let (a, b) = direction_seeds(7);
        assert_ne!(a, b);
        assert_eq!(direction_seeds(7), (a, b));
        assert_ne!(direction_seeds(8), (a, b));
    }
}
