//! `udpecho probe`: the client driver.
//!
//! Two threads on blocking sockets, so that neither waits on the other: the sender keeps the
//! schedule (sleeping while the next probe is far off and spinning only in the last few
//! microseconds), the receiver timestamps each reply as it arrives and feeds [`Stats`]. After
//! the last probe the receiver listens for `wait` more, then a final request on a separate
//! socket (so that a relay sees it as another session) asks the server how many distinct probes
//! of this flow it received: that number splits the loss into upstream and downstream exactly.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protolab_transport::batch::{BATCH, RecvBatch, send_connected};
use protolab_transport::tcp::{BlockingConnect, BlockingConnectError, connect_tcp_blocking};

use crate::flows::is_stats_reply;
use crate::stats::{PacketRecord, Report, ServerFinal, Stats};
use crate::wire::{FLAG_STATS, HEADER_LEN, MAX_LEN, ProbePacket};

/// Socket buffers asked of the kernel: a deep buffer absorbs bursts at high rates.
pub const SOCKET_BUFFER: usize = 8 << 20;

/// What the kernel's TCP_INFO said of a `--tcp` run's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TcpInfo {
    /// Segments retransmitted over the connection's life (tcpi_total_retrans).
    pub total_retrans: u32,
    /// The smoothed round-trip time in microseconds (tcpi_rtt).
    pub rtt_us: u32,
    /// Its mean deviation in microseconds (tcpi_rttvar).
    pub rttvar_us: u32,
}

/// The most probes one run may send (per-probe state is about 40 bytes).
pub const MAX_PACKETS: u64 = 10_000_000;

/// Settings of one probe run.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub target: SocketAddr,
    /// Probes to send; with `duration` too, whichever ends first.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Time between probes (zero: as fast as the socket takes them).
    pub interval: Duration,
    /// Bytes per probe, header included.
    pub size: usize,
    /// How late a reply may be before it counts as lost; also how long to listen after the last.
    pub wait: Duration,
    pub flow: u32,
    pub seed: u64,
    pub tcp: bool,
    /// Told once a second how the run stands, and once more when the receiver stops; the
    /// caller decides whether and where to show it (the library prints nothing).
    pub progress: Option<OnProgress>,
    /// Spin on the receive socket instead of sleeping in it: the reply is timestamped the
    /// moment it lands rather than after the thread wakes up (costs a core while it runs).
    pub busy: bool,
    /// Set from outside (a SIGINT handler) to stop sending: the run then ends as if its count
    /// were reached, waiting for the replies in flight and reporting on what was sent.
    pub interrupt: Option<&'static AtomicBool>,
}

/// How a run stands, handed to [`ProbeConfig::progress`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Whole seconds since the run started.
    pub secs: u64,
    pub sent: u64,
    pub replies: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// The receiver has stopped: the last call of the run, carrying no new figures.
    pub finished: bool,
}

/// A progress callback, called from the receiver thread.
pub type OnProgress = protolab_transport::progress::OnProgress<Progress>;

/// Errors of a probe run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "probe size {0} is out of range: use {HEADER_LEN} to {MAX_LEN} bytes (65535 minus headers for TCP)"
    )]
    Size(usize),
    #[error("give --count or --duration (at most {MAX_PACKETS} probes per run)")]
    Unbounded,
    #[error("{0} probes is more than one run may send: use at most {MAX_PACKETS}")]
    TooMany(u64),
    #[error("socket set-up for {target}: {source}")]
    Socket {
        target: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect over TCP to {target}: {source} (is `udpecho serve` running there?)")]
    Connect {
        target: SocketAddr,
        source: std::io::Error,
    },
    /// The kernel reported ICMP port unreachable and no reply ever came.
    #[error(
        "nothing listens on UDP {target}: the host answered port unreachable (start `udpecho serve` there, or check the port)"
    )]
    NothingListens { target: SocketAddr },
    /// Every answer was a probe sent back unchanged: an RFC 862 echo, which keeps no counts.
    #[error(
        "{target} sends back plain echoes, not probe replies: it reflects datagrams unchanged (an RFC 862 echo such as `udpecho serve --raw`), so it keeps no counts; probe a `udpecho serve` without --raw"
    )]
    PlainEcho { target: SocketAddr },
}

/// Everything a run produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeSummary {
    pub target: SocketAddr,
    pub transport: &'static str,
    /// The local address the probes left from (a relay's session for this probe).
    pub local: Option<SocketAddr>,
    pub flow: u32,
    pub seed: u64,
    pub size: usize,
    pub interval_ns: u64,
    pub wait_ns: u64,
    /// Attempts of the final counters request, and whether it was answered.
    pub stats_requests: u32,
    /// Datagrams received that were not replies of this flow.
    pub foreign: u64,
    /// Sends that failed (the probe counts as sent and lost).
    pub send_errors: u64,
    /// Whether SIGINT stopped the sending before the count or duration was reached.
    pub interrupted: bool,
    pub elapsed_ns: u64,
    /// The kernel's view of the TCP connection (`--tcp` only): retransmissions and smoothed
    /// RTT, read after the last reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
    #[serde(flatten)]
    pub report: Report,
}

/// A finished run: the summary and the per-probe records.
#[derive(Debug)]
pub struct ProbeRun {
    pub summary: ProbeSummary,
    pub packets: Vec<PacketRecord>,
}

struct Shared {
    epoch: Instant,
    sent: AtomicU64,
    last_send_ns: AtomicU64,
    done: AtomicBool,
    /// Set by the receiver when the answers show that probing is pointless (nothing listens,
    /// or a plain echo): the sender stops at once.
    give_up: AtomicBool,
}

impl Shared {
    /// The state of a run starting now: its clock's epoch, nothing sent yet.
    fn start() -> Self {
        Self {
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            last_send_ns: AtomicU64::new(0),
            done: AtomicBool::new(false),
            give_up: AtomicBool::new(false),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Runs the probe.
///
/// # Errors
/// Bad settings, sockets that cannot be set up, a TCP server that cannot be reached.
pub fn run(cfg: &ProbeConfig) -> Result<ProbeRun, ProbeError> {
    let max_size = if cfg.tcp {
        usize::from(u16::MAX)
    } else {
        MAX_LEN
    };
    if cfg.size < HEADER_LEN || cfg.size > max_size {
        return Err(ProbeError::Size(cfg.size));
    }
    let planned = match (cfg.count, cfg.duration) {
        (Some(c), _) => c,
        (None, Some(d)) if !cfg.interval.is_zero() => {
            (d.as_nanos() / cfg.interval.as_nanos()).min(u128::from(MAX_PACKETS)) as u64 + 1
        }
        (None, Some(_)) => MAX_PACKETS,
        (None, None) => return Err(ProbeError::Unbounded),
    };
    if planned > MAX_PACKETS {
        return Err(ProbeError::TooMany(planned));
    }
    if cfg.tcp {
        run_tcp(cfg, planned)
    } else {
        run_udp(cfg, planned)
    }
}

/// Waits until `planned_ns`: sleeping while far, yielding when near, spinning at the end.
/// Returns `None` when told to stop meanwhile.
fn pace(shared: &Shared, planned_ns: u64, stop: &dyn Fn() -> bool) -> Option<u64> {
    loop {
        let now = shared.now_ns();
        if now >= planned_ns {
            return Some(now);
        }
        if stop() {
            return None;
        }
        let left = planned_ns - now;
        if left > 300_000 {
            // In slices, so that a stop is noticed within 50 ms even at a slow interval.
            std::thread::sleep(Duration::from_nanos((left - 200_000).min(50_000_000)));
        } else if left > 20_000 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The sender loop shared by both transports: `send` puts a batch of probes on the wire and
/// returns how many of them failed.
///
/// When the schedule falls behind (a rate above what one system call per probe sustains, or a
/// moment without the CPU) every probe already due goes out in one batch, so the average rate
/// holds; each probe carries the time it actually left.
fn send_loop(
    cfg: &ProbeConfig,
    planned: u64,
    shared: &Shared,
    mut send: impl FnMut(&mut [Vec<u8>]) -> u64,
) -> Sent {
    let interval = cfg.interval.as_nanos() as u64;
    let limit = cfg.duration.map(|d| d.as_nanos() as u64);
    let mut times = Vec::with_capacity(planned.min(1 << 20) as usize);
    let mut errors = 0;
    let mut batch: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; cfg.size]).collect();
    let mut seq = 0u64;
    let stop = || {
        shared.give_up.load(Ordering::Acquire)
            || cfg.interrupt.is_some_and(|i| i.load(Ordering::Acquire))
    };
    while seq < planned && !stop() {
        let first_planned = seq.saturating_mul(interval);
        if limit.is_some_and(|l| first_planned >= l || (interval == 0 && shared.now_ns() >= l)) {
            break;
        }
        let now = if interval == 0 {
            shared.now_ns()
        } else {
            match pace(shared, first_planned, &stop) {
                Some(now) => now,
                None => break,
            }
        };
        let mut n = 0;
        while n < BATCH && seq < planned {
            let planned_ns = if interval == 0 {
                now
            } else {
                seq.saturating_mul(interval)
            };
            if planned_ns > now || limit.is_some_and(|l| interval != 0 && planned_ns >= l) {
                break;
            }
            ProbePacket {
                flow: cfg.flow,
                seq,
                client_send_ns: now,
                ..ProbePacket::default()
            }
            .emit(&mut batch[n]);
            times.push((planned_ns, now));
            n += 1;
            seq += 1;
            if interval == 0 && n >= 8 {
                // Flat out, a few at a time keeps the receiver's buffer from overflowing.
                break;
            }
        }
        errors += send(&mut batch[..n]);
        shared.last_send_ns.store(now, Ordering::Release);
        shared.sent.store(seq, Ordering::Release);
    }
    let interrupted = seq < planned && cfg.interrupt.is_some_and(|i| i.load(Ordering::Acquire));
    Sent {
        times,
        errors,
        interrupted,
    }
}

/// What the sender did.
struct Sent {
    /// (planned, actual) send time of each probe, in sequence order.
    times: Vec<(u64, u64)>,
    /// Probes whose send failed.
    errors: u64,
    /// Whether an interrupt stopped it before the count or duration was reached.
    interrupted: bool,
}

fn progress_line(shared: &Shared, stats: &Stats, last: &mut u64, on: Option<&OnProgress>) {
    let Some(on) = on else {
        return;
    };
    let secs = shared.epoch.elapsed().as_secs();
    if secs > *last {
        *last = secs;
        on.call(&Progress {
            secs,
            sent: shared.sent.load(Ordering::Acquire),
            replies: stats.received(),
            duplicates: stats.duplicates(),
            reordered: stats.reordered(),
            finished: false,
        });
    }
}

fn run_udp(cfg: &ProbeConfig, planned: u64) -> Result<ProbeRun, ProbeError> {
    let err = |source| ProbeError::Socket {
        target: cfg.target,
        source,
    };
    let socket = protolab_transport::udp::connect_udp(cfg.target, SOCKET_BUFFER).map_err(err)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(err)?;
    let local = socket.local_addr().ok();
    let tx = socket.try_clone().map_err(err)?;
    let shared = Arc::new(Shared::start());
    let wait_ns = cfg.wait.as_nanos() as u64;
    let receiver = {
        let shared = shared.clone();
        let (flow, progress, busy) = (cfg.flow, cfg.progress.clone(), cfg.busy);
        std::thread::spawn(move || {
            let mut stats = Stats::new(planned, wait_ns);
            let mut batch = RecvBatch::new(65_536);
            let mut foreign = 0u64;
            let mut answers = Answers::default();
            let mut max_rtt = 0u64;
            let mut last_progress = 0;
            loop {
                let got = if busy {
                    batch.recv_now(&socket)
                } else {
                    batch.recv(&socket)
                };
                match got {
                    Ok(n) => {
                        let now = shared.now_ns();
                        for i in 0..n {
                            match ProbePacket::parse(batch.get(i).0) {
                                Ok(p) if p.is_reply() && !p.is_stats() && p.flow == flow => {
                                    max_rtt = max_rtt.max(now.saturating_sub(p.client_send_ns));
                                    if !stats.on_reply(now, &p) {
                                        foreign += 1;
                                    }
                                }
                                // One of our own probes, sent back as it left.
                                Ok(p) if !p.is_reply() && p.flow == flow => {
                                    answers.plain_echoes += 1;
                                    foreign += 1;
                                }
                                _ => foreign += 1,
                            }
                        }
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        // ICMP port unreachable for an earlier probe, reported on this
                        // connected socket. Once something replied it is loss like any other.
                        tracing::debug!("recv: port unreachable");
                        answers.refused += 1;
                    }
                    Err(e) => tracing::debug!(error = %e, "recv"),
                }
                if stats.received() == 0 && answers.pointless().is_some() {
                    shared.give_up.store(true, Ordering::Release);
                    break;
                }
                progress_line(&shared, &stats, &mut last_progress, progress.as_ref());
                if shared.done.load(Ordering::Acquire) {
                    let now = shared.now_ns();
                    let last = shared.last_send_ns.load(Ordering::Acquire);
                    let sent = shared.sent.load(Ordering::Acquire);
                    // Every reply in: stop once a duplicate would have had time to follow
                    // (copies travel together), well before the wait runs out.
                    let settle = max_rtt
                        .saturating_mul(2)
                        .saturating_add(20_000_000)
                        .min(wait_ns);
                    if now > last.saturating_add(wait_ns)
                        || (stats.received() == sent && now > last.saturating_add(settle))
                    {
                        break;
                    }
                }
            }
            if let Some(p) = &progress {
                p.call(&Progress {
                    finished: true,
                    ..Progress::default()
                });
            }
            (stats, foreign, answers)
        })
    };
    let Sent {
        times,
        errors: send_errors,
        interrupted,
    } = send_loop(cfg, planned, &shared, |batch| send_connected(&tx, batch).1);
    shared.done.store(true, Ordering::Release);
    let (mut stats, foreign, answers) = receiver.join().expect("receiver thread");
    match answers.pointless() {
        Some(Pointless::Refused) if stats.received() == 0 => {
            return Err(ProbeError::NothingListens { target: cfg.target });
        }
        Some(Pointless::PlainEcho) if stats.received() == 0 => {
            return Err(ProbeError::PlainEcho { target: cfg.target });
        }
        _ => {}
    }
    let sent = times.len() as u64;
    for (seq, &(planned_ns, sent_ns)) in times.iter().enumerate() {
        stats.on_send(seq as u64, planned_ns, sent_ns);
    }
    let (server, attempts) = final_counters_udp(cfg, sent);
    let end = Ending {
        transport: "udp",
        local,
        sent,
        server,
        stats_requests: attempts,
        foreign,
        send_errors,
        interrupted,
    };
    Ok(finish(cfg, &stats, end, &shared))
}

/// What came back besides probe replies, to tell why nothing useful did.
#[derive(Debug, Default)]
struct Answers {
    /// Port-unreachable reports from the kernel (ECONNREFUSED on the connected socket).
    refused: u64,
    /// Our own probes sent back unchanged, without the reply flag.
    plain_echoes: u64,
}

/// Why probing a target cannot give figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pointless {
    Refused,
    PlainEcho,
}

impl Answers {
    /// What the answers so far show, if they show that probing is pointless. Only meaningful
    /// while no probe reply came: one real reply makes the rest plain loss.
    fn pointless(&self) -> Option<Pointless> {
        if self.plain_echoes > 0 {
            Some(Pointless::PlainEcho)
        } else if self.refused > 0 {
            Some(Pointless::Refused)
        } else {
            None
        }
    }
}

/// Asks the server for the flow's count from a fresh socket, retrying a few times.
fn final_counters_udp(cfg: &ProbeConfig, sent: u64) -> (Option<ServerFinal>, u32) {
    let Ok(socket) = protolab_transport::udp::connect_udp(cfg.target, SOCKET_BUFFER) else {
        return (None, 0);
    };
    let per_try = cfg
        .wait
        .clamp(Duration::from_millis(100), Duration::from_millis(500));
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    let request = ProbePacket {
        flags: FLAG_STATS,
        flow: cfg.flow,
        seq: sent,
        ..ProbePacket::default()
    }
    .to_vec(HEADER_LEN);
    let mut buf = [0u8; 2048];
    for attempt in 1..=10 {
        let _ = socket.send(&request);
        let start = Instant::now();
        while start.elapsed() < per_try {
            if let Ok(n) = socket.recv(&mut buf) {
                if let Ok(p) = ProbePacket::parse(&buf[..n]) {
                    if is_stats_reply(&p, cfg.flow) && p.seq == sent {
                        let received = if p.has_state() { p.server_count } else { 0 };
                        return (Some(ServerFinal { received }), attempt);
                    }
                }
            }
        }
    }
    (None, 10)
}

fn run_tcp(cfg: &ProbeConfig, planned: u64) -> Result<ProbeRun, ProbeError> {
    let options = BlockingConnect {
        nodelay: true,
        ..BlockingConnect::default()
    };
    let stream =
        connect_tcp_blocking(cfg.target, Duration::from_secs(5), &options).map_err(|e| {
            ProbeError::Connect {
                target: cfg.target,
                source: match e {
                    BlockingConnectError::Connect(e) => e,
                    other => std::io::Error::other(other.to_string()),
                },
            }
        })?;
    let err = |source| ProbeError::Socket {
        target: cfg.target,
        source,
    };
    stream.set_nodelay(true).map_err(err)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    stream
        .set_read_timeout(Some(cfg.wait.max(Duration::from_secs(1))))
        .map_err(err)?;
    let local = stream.local_addr().ok();
    let mut tx = stream.try_clone().map_err(err)?;
    let shared = Arc::new(Shared::start());
    let wait_ns = cfg.wait.as_nanos() as u64;
    let receiver = {
        let shared = shared.clone();
        let (flow, progress) = (cfg.flow, cfg.progress.clone());
        let mut rx = std::io::BufReader::with_capacity(1 << 16, stream);
        std::thread::spawn(move || {
            let mut stats = Stats::new(planned, wait_ns);
            let mut buf = vec![0u8; 65_536];
            let mut foreign = 0u64;
            let mut server = None;
            let mut last_progress = 0;
            loop {
                let mut len = [0u8; 2];
                if rx.read_exact(&mut len).is_err() {
                    break;
                }
                let n = usize::from(u16::from_be_bytes(len));
                if rx.read_exact(&mut buf[..n]).is_err() {
                    break;
                }
                let now = shared.now_ns();
                match ProbePacket::parse(&buf[..n]) {
                    Ok(p) if is_stats_reply(&p, flow) => {
                        server = Some(ServerFinal {
                            received: if p.has_state() { p.server_count } else { 0 },
                        });
                        break;
                    }
                    Ok(p) if p.is_reply() && p.flow == flow => {
                        if !stats.on_reply(now, &p) {
                            foreign += 1;
                        }
                    }
                    _ => foreign += 1,
                }
                progress_line(&shared, &stats, &mut last_progress, progress.as_ref());
            }
            if let Some(p) = &progress {
                p.call(&Progress {
                    finished: true,
                    ..Progress::default()
                });
            }
            (stats, foreign, server)
        })
    };
    let mut frames = Vec::with_capacity(BATCH * (cfg.size + 2));
    let Sent {
        times,
        errors: send_errors,
        interrupted,
    } = send_loop(cfg, planned, &shared, |batch| {
        frames.clear();
        for b in batch.iter() {
            frames.extend_from_slice(&(b.len() as u16).to_be_bytes());
            frames.extend_from_slice(b);
        }
        if tx.write_all(&frames).is_err() {
            batch.len() as u64
        } else {
            0
        }
    });
    let sent = times.len() as u64;
    // On a stream the counters request follows the last probe in order: its answer comes after
    // every reply, so the receiver stops there.
    let request = ProbePacket {
        flags: FLAG_STATS,
        flow: cfg.flow,
        seq: sent,
        ..ProbePacket::default()
    }
    .to_vec(HEADER_LEN);
    let mut frame = (HEADER_LEN as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    let _ = tx.write_all(&frame);
    shared.done.store(true, Ordering::Release);
    let (mut stats, foreign, server) = receiver.join().expect("receiver thread");
    // Read before closing: afterwards the kernel's figures are gone with the connection.
    let tcp_info = match protolab_transport::batch::tcp_info(&tx) {
        Ok(info) => Some(TcpInfo {
            total_retrans: info.total_retrans,
            rtt_us: info.rtt_us,
            rttvar_us: info.rttvar_us,
        }),
        Err(e) => {
            tracing::debug!(error = %e, "TCP_INFO unavailable");
            None
        }
    };
    let _ = tx.shutdown(std::net::Shutdown::Both);
    for (seq, &(planned_ns, sent_ns)) in times.iter().enumerate() {
        stats.on_send(seq as u64, planned_ns, sent_ns);
    }
    let end = Ending {
        transport: "tcp",
        local,
        sent,
        server,
        stats_requests: 1,
        foreign,
        send_errors,
        interrupted,
    };
    let mut run = finish(cfg, &stats, end, &shared);
    run.summary.tcp_info = tcp_info;
    Ok(run)
}

/// What a transport's run ends with, besides the statistics.
struct Ending {
    transport: &'static str,
    local: Option<SocketAddr>,
    sent: u64,
    server: Option<ServerFinal>,
    stats_requests: u32,
    foreign: u64,
    send_errors: u64,
    interrupted: bool,
}

fn finish(cfg: &ProbeConfig, stats: &Stats, end: Ending, shared: &Shared) -> ProbeRun {
    let Ending {
        transport,
        local,
        sent,
        server,
        stats_requests,
        foreign,
        send_errors,
        interrupted,
    } = end;
    let report = stats.report(sent, server);
    let packets = stats.packets(sent).collect();
    ProbeRun {
        summary: ProbeSummary {
            target: cfg.target,
            transport,
            local,
            flow: cfg.flow,
            seed: cfg.seed,
            size: cfg.size,
            interval_ns: cfg.interval.as_nanos() as u64,
            wait_ns: cfg.wait.as_nanos() as u64,
            stats_requests,
            foreign,
            send_errors,
            interrupted,
            elapsed_ns: shared.now_ns(),
            tcp_info: None,
            report,
        },
        packets,
    }
}

/// Whether a progress line makes sense: a run longer than a few seconds (the caller also
/// checks that standard error is a terminal).
pub fn progress_wanted(cfg: &ProbeConfig) -> bool {
    match (cfg.count, cfg.duration) {
        (_, Some(d)) => d > Duration::from_secs(3),
        (Some(c), None) => {
            cfg.interval
                .saturating_mul(c.min(u64::from(u32::MAX)) as u32)
                > Duration::from_secs(3)
        }
        (None, None) => false,
    }
}

fn us(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".into(), |n| format!("{:.1} us", n as f64 / 1e3))
}

fn usf(ns: Option<f64>) -> String {
    ns.map_or_else(|| "-".into(), |n| format!("{:.1} us", n / 1e3))
}

/// The final table, for people.
pub fn render(s: &ProbeSummary) -> String {
    let r = &s.report;
    let opt = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
    let pct = |x: f64| format!("{:.3}%", x * 100.0);
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "udpecho probe {} over {} (flow {:#010x}, {} bytes, every {:?})",
        s.target,
        s.transport,
        s.flow,
        s.size,
        Duration::from_nanos(s.interval_ns)
    );
    let mut rows: Vec<(&str, String, &str)> = vec![
        ("sent", r.sent.to_string(), ""),
        (
            "received",
            r.received.to_string(),
            "distinct replies within the wait",
        ),
        (
            "lost",
            format!("{} ({})", r.lost, pct(r.loss_ratio)),
            "RFC 7680, round trip",
        ),
        (
            "  upstream",
            opt(r.lost_upstream),
            "never reached the server",
        ),
        (
            "  downstream",
            opt(r.lost_downstream),
            "reached the server, reply lost",
        ),
        (
            "  after the wait",
            r.too_late.to_string(),
            "replies later than --wait, counted lost",
        ),
        ("duplicates", r.duplicates.to_string(), "RFC 5560"),
        (
            "reordered",
            format!("{} ({})", r.reordered, pct(r.reordered_ratio)),
            "RFC 4737 reordered ratio",
        ),
        (
            "  max extent",
            r.reorder_extent_max.to_string(),
            "RFC 4737 reordering extent",
        ),
        ("  late", r.late.to_string(), "irtt's late packets"),
        ("RTT min", us(r.rtt_min_ns), ""),
        ("RTT mean", usf(r.rtt_mean_ns), ""),
        ("RTT p50", us(r.rtt_p50_ns), "nearest rank, exact"),
        ("RTT p90", us(r.rtt_p90_ns), ""),
        ("RTT p99", us(r.rtt_p99_ns), ""),
        ("RTT max", us(r.rtt_max_ns), ""),
        ("RTT stddev", usf(r.rtt_stddev_ns), ""),
        (
            "IPDV mean",
            usf(r.ipdv_mean_ns),
            "RFC 5481, consecutive pairs",
        ),
        (
            "IPDV p99",
            r.ipdv_p99_ns
                .map_or_else(|| "-".into(), |n| format!("{:.1} us", n as f64 / 1e3)),
            "",
        ),
        (
            "jitter",
            format!("{:.1} us", r.jitter_rfc3550_ns / 1e3),
            "RFC 3550 interarrival jitter",
        ),
        (
            "send rate",
            format!("{:.0} packets/s", r.send_rate_pps),
            "achieved",
        ),
        (
            "timer error",
            format!(
                "mean {:.1} us, max {:.1} us",
                r.timer_error_mean_ns / 1e3,
                r.timer_error_max_ns as f64 / 1e3
            ),
            "send time minus schedule",
        ),
    ];
    if let Some(info) = s.tcp_info {
        rows.push((
            "TCP retransmits",
            info.total_retrans.to_string(),
            "kernel TCP_INFO tcpi_total_retrans",
        ));
        rows.push((
            "TCP smoothed RTT",
            format!("{:.1} us", f64::from(info.rtt_us)),
            "kernel TCP_INFO tcpi_rtt",
        ));
    }
    for (name, value, note) in rows {
        let _ = writeln!(out, "  {name:<16} {value:>22}  {note}");
    }
    if s.interrupted {
        let _ = writeln!(
            out,
            "  (interrupted: sending stopped after {} probes; the figures cover those)",
            r.sent
        );
    }
    if r.server_received.is_none() {
        let _ = writeln!(
            out,
            "  (the server did not answer the counters request: upstream and downstream loss unknown)"
        );
    }
    out
}
