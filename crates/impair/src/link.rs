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
//!
//! The shape is the one of every service, as far as a TUN device allows: [`bind`] takes a
//! [`LinkConfig`] and makes the namespaces and their devices (this module and `netns`/`tun` are
//! the documented exception to "only the transport opens sockets": a TUN device is not a
//! socket), [`run`] forwards until its shutdown token fires (or `duration` passes) and returns
//! the [`LinkReport`], and the binary prints the ready line and the report. Two things differ
//! from a socket service: the link runs on plain threads, not tokio, because the guardian is
//! forked in [`bind`] and a process may only fork safely before it starts threads; and the
//! `--trace` lines, which stream while the link runs, go to the writer [`run`] is given.

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
use protolab_transport::CancellationToken;
use serde::Serialize;

use crate::engine::{Engine, GroundTruth, Impairment, PerDirection};

/// The left end's address, from the benchmarking range of RFC 2544 (198.18.0.0/15).
pub const LEFT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The right end's address.
pub const RIGHT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The TUN device's name inside each namespace (each namespace has its own set of names).
pub const DEVICE: &str = "link0";

/// Trace events queued for the tracer before new ones are counted as lost rather than slowing
/// the link down.
const TRACE_QUEUE: usize = 65_536;

/// Options of `impair link`. In each [`PerDirection`], `first` is left to right and `second`
/// right to left.
#[derive(Debug, Clone, Default)]
pub struct LinkConfig {
    /// Name of the left namespace to create (default: `plab-PID-left`).
    pub left: Option<String>,
    /// Name of the right namespace to create (default: `plab-PID-right`).
    pub right: Option<String>,
    /// The impairment of each direction.
    pub impairment: PerDirection<Impairment>,
    /// Bytes queued per direction.
    pub queue: PerDirection<usize>,
    /// Seed of the impairment decisions (the front end picks one when none is given).
    pub seed: u64,
    /// Write one line per packet to the trace writer.
    pub trace: bool,
    /// Trace lines as JSON objects rather than text.
    pub json: bool,
    /// Draw the first packets as a sequence diagram into this SVG file at exit.
    pub diagram: Option<PathBuf>,
    /// Write every packet entering the link to this pcap file.
    pub pcap: Option<PathBuf>,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
}

impl<T> PerDirection<T> {
    /// The setting of one direction of the link.
    fn of(&self, direction: Direction) -> &T {
        match direction {
            Direction::LeftToRight => &self.first,
            Direction::RightToLeft => &self.second,
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

/// The two namespaces with their devices, up and owned by this process: the link's "bound
/// sockets". Dropping it removes both namespaces.
pub struct Bound {
    left: String,
    right: String,
    left_tun: tun::Tun,
    right_tun: tun::Tun,
    cleanup: Cleanup,
    /// Dropped last: once this process is gone, the guardian removes whatever is left.
    guardian: netns::Guardian,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("left", &self.left)
            .field("right", &self.right)
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// The names of the left and right namespaces.
    pub fn namespaces(&self) -> (&str, &str) {
        (&self.left, &self.right)
    }
}

/// What the link did, returned when it went down: the report of `impair link`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkReport {
    /// The seed the engines ran with (a string: JSON readers lose digits above 2^53).
    #[serde(serialize_with = "as_string")]
    pub seed: u64,
    /// How long the link was up, in microseconds.
    pub elapsed_us: u64,
    /// The ground truth of both directions.
    pub truth: LinkTruth,
    /// Packets the receiving kernel refused.
    pub write_errors: u64,
    /// Packets missing from the trace because the tracer could not keep up.
    pub trace_lost: u64,
}

fn as_string<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

/// Makes the two namespaces and their TUN devices, addressed and up, after checking root and
/// the names; forks the guardian that removes them should this process die.
///
/// Call it before starting any thread (the guardian is forked here), and after
/// [`StopSignals::block`].
///
/// # Errors
/// No root, a namespace name taken, `ip` or the TUN driver missing, or a device failing.
pub fn bind(config: &LinkConfig) -> Result<Bound> {
    require_root()?;
    let pid = std::process::id();
    let left = config
        .left
        .clone()
        .unwrap_or_else(|| format!("plab-{pid}-left"));
    let right = config
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

    // Record ownership first, then start the guardian: from here on, whatever happens to this
    // process, both namespaces are removed.
    let record = netns::Ownership::of_this_process(vec![left.clone(), right.clone()]);
    record.write()?;
    let cleanup = Cleanup(record.clone());
    let guardian = netns::Guardian::start(&record).context("fork the cleanup guardian")?;

    let (left_tun, right_tun) = build(&left, &right)?;
    Ok(Bound {
        left,
        right,
        left_tun,
        right_tun,
        cleanup,
        guardian,
    })
}

/// Forwards both directions until `shutdown` fires, `config.duration` passes or a direction
/// fails, then removes the namespaces and returns what the link did. Trace lines (with
/// `config.trace`) are written to `trace_out` while the link runs.
///
/// # Errors
/// A forwarding thread failing, or the trace, capture or diagram not being written.
pub fn run(
    bound: Bound,
    config: LinkConfig,
    shutdown: CancellationToken,
    trace_out: Box<dyn Write + Send>,
) -> Result<LinkReport> {
    let Bound {
        left,
        right,
        left_tun,
        right_tun,
        cleanup,
        guardian,
    } = bound;
    let start = Instant::now();
    let wall_start = SystemTime::now();
    let stop = tun::Waker::new().context("create the shutdown eventfd")?;
    let (seed_lr, seed_rl) = direction_seeds(config.seed);
    let truth_lr = Mutex::new(GroundTruth::default());
    let truth_rl = Mutex::new(GroundTruth::default());
    let write_errors = AtomicU64::new(0);
    let trace_lost = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let tracing_on = config.trace || config.pcap.is_some() || config.diagram.is_some();
    let (seen_tx, seen_rx) = sync_channel::<forward::Seen>(TRACE_QUEUE);
    let pcap = match &config.pcap {
        Some(path) => Some(open_pcap(path)?),
        None => None,
    };

    let outcome = std::thread::scope(|s| -> Result<()> {
        let tracer = tracing_on.then(|| {
            let rx = seen_rx;
            let diagram = config.diagram.as_deref();
            let (lines, json) = (config.trace, config.json);
            s.spawn(move || tracer(rx, trace_out, lines, json, wall_start, pcap, diagram))
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
            let engine = Engine::new(config.impairment.of(direction).clone(), seed)
                .with_queue_limit(*config.queue.of(direction));
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
        let deadline = config.duration.map(|d| start + d);
        wait_for_stop(&shutdown, deadline, &failed);
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
        Ok(())
    });

    // Read while the devices still exist: after the forwarding stopped, nothing more is
    // dropped at them that the link could have read.
    let truth = LinkTruth {
        left_to_right: truth_lr.into_inner().unwrap_or_else(|p| p.into_inner()),
        right_to_left: truth_rl.into_inner().unwrap_or_else(|p| p.into_inner()),
        left_to_right_kernel_dropped: netns::tx_dropped(&left, DEVICE).unwrap_or(0),
        right_to_left_kernel_dropped: netns::tx_dropped(&right, DEVICE).unwrap_or(0),
    };
    let elapsed = start.elapsed();
    drop(left_tun);
    drop(right_tun);
    drop(cleanup);
    drop(guardian);
    outcome?;
    Ok(LinkReport {
        seed: config.seed,
        elapsed_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        truth,
        write_errors: write_errors.into_inner(),
        trace_lost: trace_lost.into_inner(),
    })
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

/// SIGINT and SIGTERM, blocked so that [`StopSignals::wait`] receives them.
#[derive(Debug, Clone, Copy)]
pub struct StopSignals(libc::sigset_t);

impl StopSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread. Call it before any thread starts: every
    /// thread inherits the mask, so the signals wait, pending, for [`StopSignals::wait`].
    pub fn block() -> StopSignals {
        // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask
        // only changes this thread's mask (inherited by the threads it starts later).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            StopSignals(set)
        }
    }

    /// Waits up to `tick` for SIGINT or SIGTERM, and returns it.
    pub fn wait(&self, tick: Duration) -> Option<i32> {
        let tick = libc::timespec {
            tv_sec: tick.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(tick.subsec_nanos() as i32),
        };
        // SAFETY: a valid signal set and timeout; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &tick) };
        (sig > 0).then_some(sig)
    }
}

/// Waits for the shutdown token, the deadline, or a forwarding thread failing.
fn wait_for_stop(shutdown: &CancellationToken, deadline: Option<Instant>, failed: &AtomicBool) {
    // A short tick: the token is set from another thread (the binary's signal watcher), and a
    // stop should not wait long to be noticed.
    const TICK: Duration = Duration::from_millis(20);
    while !shutdown.is_cancelled() && !failed.load(Ordering::SeqCst) {
        let now = Instant::now();
        match deadline {
            Some(d) if now >= d => return,
            Some(d) => std::thread::sleep(TICK.min(d - now)),
            None => std::thread::sleep(TICK),
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
    out: Box<dyn Write + Send>,
    lines: bool,
    json: bool,
    wall_start: SystemTime,
    mut pcap: Option<Pcap>,
    diagram: Option<&std::path::Path>,
) -> Result<()> {
    let epoch = wall_start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = std::io::BufWriter::new(out);
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
