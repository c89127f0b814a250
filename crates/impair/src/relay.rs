//! `impair udp`: a UDP relay that impairs each direction with the [`engine`](crate::engine).
//!
//! Clients send to the relay's `--listen` address; for each client address the relay opens a
//! session: its own socket towards `--forward`, and two engines, one per direction (upstream:
//! client to server; downstream: server to client), each seeded from `--seed` and the session's
//! number, so a run with the same seed and the same traffic makes the same decisions. The ground
//! truth of every engine, per session and summed per direction, is written as JSON on exit (and
//! on SIGINT or SIGTERM) to standard output and, with `--stats FILE`, to that file, which is also
//! refreshed every second while the relay runs.
//!
//! Options take one value for both directions or `UP/DOWN` for each: `--loss 5%` or
//! `--loss 0/5%`.
//!
//! # Limits
//!
//! Everything the relay holds is bounded, and whatever it turns away is counted:
//! - the datagrams queued in each direction, all sessions together, by `--queue` bytes (tail
//!   drops in `queue_dropped`); datagrams read from the server and not yet queued, by
//!   [`READ_AHEAD_BYTES`];
//! - the sessions open at once, by `--max-sessions` (further clients in `refused`);
//! - the closed sessions whose truth is kept and listed, by `--keep-closed` (older ones are
//!   folded into the totals and counted in `sessions_forgotten`);
//! - datagrams the kernel dropped at a full socket buffer before the relay read them are read
//!   from the kernel (`upstream_kernel_dropped`, `downstream_kernel_dropped`).
//!
//! A `--stats` file that cannot be written (its folder removed, its disk full) is retried every
//! second and logged once per kind of failure; it never stops the forwarding.

mod kernel;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use protolab_transport::cli::parse_duration;
use protolab_transport::outln;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::engine::{
    Engine, GroundTruth, Impairment, PACKET_OVERHEAD, parse_each, parse_optional_rate,
    parse_probability, parse_size,
};

const EXAMPLES: &str = "\
Examples:
  impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --seed 7
  impair udp --forward 127.0.0.1:7777 --loss 5% --reorder 10% --dup 1% --delay 10ms --jitter 5ms
  impair udp --forward 127.0.0.1:7777 --loss 2%/0 --delay 0/20ms
      UP/DOWN: a setting per direction
  impair udp --forward 127.0.0.1:7777 --rate 1mbit --queue 64kB --stats truth.json
  impair udp --forward 127.0.0.1:7777 --json
      `listening` and the ground truth as JSON lines
";

/// Bytes of datagrams from the server read by the sessions' readers and not yet taken into an
/// engine. A reader waits when they are all taken (its socket's buffer then fills, and the
/// kernel's drops there are counted), so a fast server cannot grow the relay's memory.
pub const READ_AHEAD_BYTES: usize = 4 << 20;

/// The most sessions open at once, and the most closed ones kept, that the options accept.
pub const MAX_SESSIONS: usize = 10_000;

/// A setting for both directions, or one per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerDirection<T> {
    pub up: T,
    pub down: T,
}

fn both<T: Clone>(
    text: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<PerDirection<T>, String> {
    let (up, down) = parse_each(text, one)?;
    Ok(PerDirection { up, down })
}

fn probability(text: &str) -> Result<PerDirection<f64>, String> {
    both(text, parse_probability)
}

fn duration(text: &str) -> Result<PerDirection<Duration>, String> {
    both(text, parse_duration)
}

fn rate(text: &str) -> Result<PerDirection<Option<u64>>, String> {
    both(text, parse_optional_rate)
}

fn size(text: &str) -> Result<PerDirection<usize>, String> {
    both(text, parse_size)
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

/// Options of this front end.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct RelayArgs {
    /// Where clients send: host:port, [v6]:port, or a port (loopback).
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = addr)]
    pub listen: SocketAddr,
    /// The server to relay to.
    #[arg(long, value_parser = addr)]
    pub forward: SocketAddr,
    /// Probability of dropping a datagram: 5% or 0.05, or UP/DOWN.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub loss: PerDirection<f64>,
    /// Probability of sending a datagram twice.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub dup: PerDirection<f64>,
    /// Probability of holding a datagram back behind the next one.
    #[arg(long, default_value = "0", value_parser = probability)]
    pub reorder: PerDirection<f64>,
    /// One-way delay added.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub delay: PerDirection<Duration>,
    /// Uniform variation of the delay, plus or minus (keeps order).
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub jitter: PerDirection<Duration>,
    /// Bottleneck rate in bits per second, with its unit (1mbit, 500kbit, 8000bit); 0 for none.
    #[arg(long, default_value = "0", value_parser = rate)]
    pub rate: PerDirection<Option<u64>>,
    /// Bytes queued per direction, all sessions together, like a router's buffer (64kB,
    /// 4MiB; each datagram counts its size plus 64); a datagram that does not fit is dropped
    /// and counted in queue_dropped.
    #[arg(long, default_value = "4MiB", value_parser = size)]
    pub queue: PerDirection<usize>,
    /// Seed of the impairment decisions (printed when chosen at random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the ground truth to this file (refreshed every second, final on exit).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Clients relayed at once (up to 10000); datagrams of further clients are dropped and
    /// counted in refused.
    #[arg(long, default_value_t = 1024, value_parser = session_count)]
    pub max_sessions: usize,
    /// Closed sessions whose truth is kept and listed (up to 10000); older ones are folded
    /// into the totals and counted in sessions_forgotten.
    #[arg(long, default_value_t = MAX_SESSIONS, value_parser = session_count)]
    pub keep_closed: usize,
    /// Close a session silent for this long (its counts stay in the ground truth).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub session_idle: Duration,
    /// Set from impair's global `--json`: the `listening` line and the final ground truth as
    /// JSON lines.
    #[arg(skip)]
    pub json: bool,
}

impl RelayArgs {
    fn impairment(&self, up: bool) -> Impairment {
        let pick = |p: &PerDirection<f64>| if up { p.up } else { p.down };
        let pick_d = |p: &PerDirection<Duration>| if up { p.up } else { p.down };
        Impairment {
            loss: pick(&self.loss),
            dup: pick(&self.dup),
            reorder: pick(&self.reorder),
            delay: pick_d(&self.delay),
            jitter: pick_d(&self.jitter),
            rate_bps: if up { self.rate.up } else { self.rate.down },
        }
    }
}

/// The ground truth of one client's session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionTruth {
    pub client: SocketAddr,
    pub upstream: GroundTruth,
    pub downstream: GroundTruth,
    /// Datagrams still queued in the engines when this was written.
    pub queued: usize,
    /// Datagrams from the server that the kernel dropped at this session's socket before the
    /// relay read them.
    pub downstream_kernel_dropped: u64,
}

/// What `--stats` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayTruth {
    pub listen: SocketAddr,
    pub forward: SocketAddr,
    /// A string: any u64 may be a seed, and JSON readers lose digits above 2^53.
    #[serde(serialize_with = "as_string")]
    pub seed: u64,
    pub upstream_config: Impairment,
    pub downstream_config: Impairment,
    /// `--queue`: bytes queued per direction, all sessions together.
    pub upstream_queue_bytes: usize,
    pub downstream_queue_bytes: usize,
    /// Summed over all sessions, closed and forgotten ones included.
    pub upstream: GroundTruth,
    pub downstream: GroundTruth,
    /// Datagrams from clients that the kernel dropped at the listening socket before the relay
    /// read them (its receive buffer was full): clients sent `upstream.received` plus these, and
    /// `refused`.
    pub upstream_kernel_dropped: u64,
    /// Datagrams from the server dropped likewise at the sessions' sockets.
    pub downstream_kernel_dropped: u64,
    /// Datagrams from clients beyond `--max-sessions`, dropped unrelayed.
    pub refused: u64,
    /// Datagrams the relay failed to send on (counted as forwarded by the engine).
    pub send_errors: u64,
    /// Sessions open now.
    pub sessions_open: usize,
    /// Closed sessions no longer listed (beyond `--keep-closed`); their counts stay in the
    /// totals above.
    pub sessions_forgotten: u64,
    /// Times the `--stats` file could not be written (each retried a second later).
    pub stats_write_errors: u64,
    /// Per session, in the order they opened: the open ones and the last `--keep-closed`
    /// closed ones.
    pub sessions: Vec<SessionTruth>,
}

/// A datagram from the server for session `id`, holding its share of [`READ_AHEAD_BYTES`].
type FromServer = (u64, Bytes, OwnedSemaphorePermit);

struct Session {
    client: SocketAddr,
    upstream: Arc<UdpSocket>,
    up: Engine<Bytes>,
    down: Engine<Bytes>,
    last_seen: Instant,
    reader: tokio::task::JoinHandle<()>,
    kernel_dropped: kernel::DropCount,
}

/// A closed session's final truth.
struct Closed {
    id: u64,
    client: SocketAddr,
    up: GroundTruth,
    down: GroundTruth,
    kernel_dropped: u64,
}

/// Mixes the run's seed with a session number and direction (SplitMix64's finalizer), so each
/// engine has its own stream of decisions.
fn session_seed(seed: u64, session: u64, up: bool) -> u64 {
    let mut z =
        seed ^ (session.wrapping_mul(2) + u64::from(up)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `--stats` file, and whether writing it fails.
#[derive(Debug, Default)]
struct StatsFile {
    path: Option<PathBuf>,
    /// The kind of the failure being logged, until a write succeeds again: the same failure
    /// every second is logged once, not every second.
    failing: Option<std::io::ErrorKind>,
    errors: u64,
}

impl StatsFile {
    fn write(&self, json: &str) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// Writes `json`, logging a failure once per kind and counting every one; the relay goes
    /// on either way and tries again at the next tick.
    fn refresh(&mut self, json: &str) {
        match self.write(json) {
            Ok(()) => {
                if self.failing.take().is_some() {
                    tracing::warn!(path = ?self.path, "the --stats file is written again");
                }
            }
            Err(e) => {
                self.errors += 1;
                if self.failing != Some(e.kind()) {
                    self.failing = Some(e.kind());
                    tracing::warn!(
                        path = ?self.path,
                        error = %e,
                        "cannot write the --stats file; relaying on and retrying every second"
                    );
                }
            }
        }
    }
}

struct Relay {
    args: RelayArgs,
    seed: u64,
    start: Instant,
    /// Open sessions by number: in the order they opened.
    sessions: BTreeMap<u64, Session>,
    by_client: HashMap<SocketAddr, u64>,
    /// The last `--keep-closed` closed sessions, oldest first.
    closed: VecDeque<Closed>,
    /// The sums of the closed sessions no longer kept.
    forgotten: Closed,
    forgotten_count: u64,
    next_id: u64,
    refused: u64,
    send_errors: u64,
    /// Bytes queued in all upstream and all downstream engines (as charged by the engines).
    queued_up: usize,
    queued_down: usize,
    /// The listening socket's drops.
    kernel_dropped: kernel::DropCount,
    stats: StatsFile,
}

impl Relay {
    fn truth(&self) -> RelayTruth {
        let mut upstream = self.forgotten.up.clone();
        let mut downstream = self.forgotten.down.clone();
        let mut down_kernel = self.forgotten.kernel_dropped;
        let mut sessions = Vec::with_capacity(self.closed.len() + self.sessions.len());
        for c in &self.closed {
            upstream.add(&c.up);
            downstream.add(&c.down);
            down_kernel += c.kernel_dropped;
            sessions.push((
                c.id,
                SessionTruth {
                    client: c.client,
                    upstream: c.up.clone(),
                    downstream: c.down.clone(),
                    queued: 0,
                    downstream_kernel_dropped: c.kernel_dropped,
                },
            ));
        }
        for (id, s) in &self.sessions {
            upstream.add(s.up.truth());
            downstream.add(s.down.truth());
            down_kernel += s.kernel_dropped.total();
            sessions.push((
                *id,
                SessionTruth {
                    client: s.client,
                    upstream: s.up.truth().clone(),
                    downstream: s.down.truth().clone(),
                    queued: s.up.queued() + s.down.queued(),
                    downstream_kernel_dropped: s.kernel_dropped.total(),
                },
            ));
        }
        sessions.sort_by_key(|(id, _)| *id);
        RelayTruth {
            listen: self.args.listen,
            forward: self.args.forward,
            seed: self.seed,
            upstream_config: self.args.impairment(true),
            downstream_config: self.args.impairment(false),
            upstream_queue_bytes: self.args.queue.up,
            downstream_queue_bytes: self.args.queue.down,
            upstream,
            downstream,
            upstream_kernel_dropped: self.kernel_dropped.total(),
            downstream_kernel_dropped: down_kernel,
            refused: self.refused,
            send_errors: self.send_errors,
            sessions_open: self.sessions.len(),
            sessions_forgotten: self.forgotten_count,
            stats_write_errors: self.stats.errors,
            sessions: sessions.into_iter().map(|(_, s)| s).collect(),
        }
    }

    fn json(&self) -> String {
        serde_json::to_string_pretty(&self.truth()).unwrap_or_else(|e| {
            // Serializing plain counters cannot fail; say so if it ever does.
            format!("{{\"error\": \"serialize the ground truth: {e}\"}}")
        })
    }

    /// Reads the kernel's drop counters of every socket now, for drops after the last datagram.
    fn read_kernel_drops(&mut self, listen: &UdpSocket) {
        if let Some(d) = kernel::drops_now(listen) {
            self.kernel_dropped.observe(d);
        }
        for s in self.sessions.values_mut() {
            if let Some(d) = kernel::drops_now(&s.upstream) {
                s.kernel_dropped.observe(d);
            }
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn open(
        &mut self,
        client: SocketAddr,
        down_tx: &mpsc::Sender<FromServer>,
        read_ahead: &Arc<Semaphore>,
    ) -> Option<u64> {
        if let Some(id) = self.by_client.get(&client) {
            return Some(*id);
        }
        if self.sessions.len() >= self.args.max_sessions {
            return None;
        }
        let any: SocketAddr = if self.args.forward.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = match protolab_transport::bind_udp(any, 8 << 20) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a session socket");
                return None;
            }
        };
        if let Err(e) = socket.connect(self.args.forward).await {
            tracing::warn!(error = %e, forward = %self.args.forward, "cannot connect a session socket");
            return None;
        }
        let socket = Arc::new(socket);
        let id = self.next_id;
        self.next_id += 1;
        let reader = {
            let (socket, tx, budget) = (socket.clone(), down_tx.clone(), read_ahead.clone());
            tokio::spawn(async move {
                loop {
                    match kernel::recv_sized(&socket).await {
                        Ok(data) => {
                            // Its share of the read-ahead: waiting here leaves the next
                            // datagrams in the socket's buffer, where the kernel counts drops.
                            let cost = (data.len() + PACKET_OVERHEAD).min(READ_AHEAD_BYTES);
                            let Ok(permit) = budget.clone().acquire_many_owned(cost as u32).await
                            else {
                                return;
                            };
                            if tx.send((id, Bytes::from(data), permit)).await.is_err() {
                                return;
                            }
                        }
                        // ICMP errors (the server is not there yet) concern one datagram.
                        Err(e) => tracing::debug!(error = %e, "session recv"),
                    }
                }
            })
        };
        tracing::debug!(%client, id, "session opened");
        let (up_cfg, down_cfg) = (self.args.impairment(true), self.args.impairment(false));
        self.sessions.insert(
            id,
            Session {
                client,
                upstream: socket,
                up: Engine::new(up_cfg, session_seed(self.seed, id, true))
                    .with_queue_limit(self.args.queue.up),
                down: Engine::new(down_cfg, session_seed(self.seed, id, false))
                    .with_queue_limit(self.args.queue.down),
                last_seen: Instant::now(),
                reader,
                kernel_dropped: kernel::DropCount::default(),
            },
        );
        self.by_client.insert(client, id);
        Some(id)
    }

    /// A datagram from a client, to impair on its way to the server.
    async fn upstream(
        &mut self,
        client: SocketAddr,
        data: &[u8],
        down_tx: &mpsc::Sender<FromServer>,
        read_ahead: &Arc<Semaphore>,
    ) {
        let now = self.now();
        match self.open(client, down_tx, read_ahead).await {
            Some(id) => {
                let room = self.args.queue.up.saturating_sub(self.queued_up);
                let s = self
                    .sessions
                    .get_mut(&id)
                    .expect("open returns a live session");
                s.last_seen = Instant::now();
                let before = s.up.queued_bytes();
                s.up.push_within(now, data.len(), Bytes::copy_from_slice(data), room);
                self.queued_up = self.queued_up - before + s.up.queued_bytes();
            }
            None => self.refused += 1,
        }
    }

    /// A datagram from the server for session `id`, to impair on its way back.
    fn downstream(&mut self, id: u64, data: Bytes) {
        // The time it is taken in, not when the reader saw it: the engine's clock must not run
        // behind the relay's, or a backlog would let hold limits expire before their time.
        let now = self.now();
        let room = self.args.queue.down.saturating_sub(self.queued_down);
        if let Some(s) = self.sessions.get_mut(&id) {
            let before = s.down.queued_bytes();
            s.down.push_within(now, data.len(), data, room);
            self.queued_down = self.queued_down - before + s.down.queued_bytes();
        }
    }

    fn next_release(&self) -> Option<Duration> {
        self.sessions
            .values()
            .flat_map(|s| [s.up.next_release(), s.down.next_release()])
            .flatten()
            .min()
    }

    async fn release(&mut self, listen: &UdpSocket) {
        let now = self.now();
        let mut errors = 0;
        for s in self.sessions.values_mut() {
            let (up, down) = (s.up.queued_bytes(), s.down.queued_bytes());
            while let Some(p) = s.up.pop_ready(now) {
                if s.upstream.send(&p).await.is_err() {
                    errors += 1;
                }
            }
            while let Some(p) = s.down.pop_ready(now) {
                if listen.send_to(&p, s.client).await.is_err() {
                    errors += 1;
                }
            }
            self.queued_up -= up - s.up.queued_bytes();
            self.queued_down -= down - s.down.queued_bytes();
        }
        self.send_errors += errors;
    }

    fn expire(&mut self) {
        let idle = self.args.session_idle;
        let stale: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.last_seen.elapsed() >= idle && s.up.queued() == 0 && s.down.queued() == 0
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(mut s) = self.sessions.remove(&id) {
                s.reader.abort();
                self.by_client.remove(&s.client);
                if let Some(d) = kernel::drops_now(&s.upstream) {
                    s.kernel_dropped.observe(d);
                }
                self.closed.push_back(Closed {
                    id,
                    client: s.client,
                    up: s.up.truth().clone(),
                    down: s.down.truth().clone(),
                    kernel_dropped: s.kernel_dropped.total(),
                });
                tracing::debug!(client = %s.client, "session closed after idle");
            }
        }
        // The oldest closed sessions beyond the cap leave the list, their counts kept in sums.
        while self.closed.len() > self.args.keep_closed {
            let Some(old) = self.closed.pop_front() else {
                break;
            };
            self.forgotten.up.add(&old.up);
            self.forgotten.down.add(&old.down);
            self.forgotten.kernel_dropped += old.kernel_dropped;
            self.forgotten_count += 1;
        }
    }
}

fn as_string<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

/// Runs this front end until SIGINT or SIGTERM, then writes the ground truth.
///
/// # Errors
/// Binding the listening address, starting the runtime, writing `--stats` at start or at exit
/// (the ground truth is printed on standard output all the same).
pub fn main(args: RelayArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(run(args))
}

async fn run(args: RelayArgs) -> Result<()> {
    let listen = protolab_transport::bind_udp(args.listen, 8 << 20)
        .map_err(|e| protolab_transport::cli::ListenError::new("udp", args.listen, e))?;
    if let Err(e) = kernel::enable_drop_count(&listen) {
        tracing::warn!(error = %e, "the kernel will not report datagrams it drops at the listening socket");
    }
    let local = listen.local_addr()?;
    let (_, seed) = protolab_transport::rng::seeded(args.seed);
    tracing::info!(%local, forward = %args.forward, seed, "relaying");
    let shutdown = protolab_transport::shutdown_on_signals();
    let (down_tx, mut down_rx) = mpsc::channel::<FromServer>(65_536);
    let read_ahead = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
    let start = Instant::now();
    let stats = StatsFile {
        path: args.stats.clone(),
        ..StatsFile::default()
    };
    let mut relay = Relay {
        args,
        seed,
        start,
        sessions: BTreeMap::new(),
        by_client: HashMap::new(),
        closed: VecDeque::new(),
        forgotten: Closed {
            id: 0,
            client: local,
            up: GroundTruth::default(),
            down: GroundTruth::default(),
            kernel_dropped: 0,
        },
        forgotten_count: 0,
        next_id: 0,
        refused: 0,
        send_errors: 0,
        queued_up: 0,
        queued_down: 0,
        kernel_dropped: kernel::DropCount::default(),
        stats,
    };
    // A --stats path that cannot be written at all is a mistake to report before relaying.
    if let Some(path) = &relay.stats.path {
        relay.stats.write(&relay.json()).with_context(|| {
            format!(
                "write --stats {}: give a file in a folder that exists and is writable",
                path.display()
            )
        })?;
    }
    protolab_transport::cli::listening("udp", local, relay.args.json);
    let mut buf = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wake = relay.next_release().map(|d| start + d);
        // Not biased: a busy client side must not starve the server side (or the reverse).
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
            r = kernel::recv_from(&listen, &mut buf) => match r {
                Ok(r) => {
                    if let Some(d) = r.drops {
                        relay.kernel_dropped.observe(d);
                    }
                    relay.upstream(r.from, &buf[..r.len], &down_tx, &read_ahead).await;
                }
                Err(e) => tracing::debug!(error = %e, "recvmsg"),
            },
            Some((id, data, _permit)) = down_rx.recv() => relay.downstream(id, data),
            _ = tick.tick() => {
                relay.expire();
                relay.read_kernel_drops(&listen);
                let json = relay.json();
                relay.stats.refresh(&json);
            }
        }
        // Take in whatever else has already arrived before releasing anything, so that a
        // moment without the CPU never lets a timer overtake a datagram that is waiting: a held
        // datagram must see the datagram behind it whenever that one has in fact arrived.
        for _ in 0..1024 {
            let mut more = false;
            if let Ok(r) = kernel::try_recv_from(&listen, &mut buf) {
                if let Some(d) = r.drops {
                    relay.kernel_dropped.observe(d);
                }
                relay
                    .upstream(r.from, &buf[..r.len], &down_tx, &read_ahead)
                    .await;
                more = true;
            }
            if let Ok((id, data, _permit)) = down_rx.try_recv() {
                relay.downstream(id, data);
                more = true;
            }
            if !more {
                break;
            }
        }
        relay.release(&listen).await;
    }
    for s in relay.sessions.values() {
        s.reader.abort();
    }
    relay.read_kernel_drops(&listen);
    let json = relay.json();
    let written = relay.stats.write(&json);
    if relay.args.json {
        // One line, so that standard output stays a stream of JSON lines.
        outln!(
            "{}",
            serde_json::to_string(&relay.truth()).unwrap_or_else(|_| json.clone())
        );
    } else {
        outln!("{json}");
    }
    if let (Err(e), Some(path)) = (written, &relay.stats.path) {
        return Err(e).with_context(|| {
            format!(
                "write --stats {} at exit (the ground truth is on standard output)",
                path.display()
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DEFAULT_QUEUE_BYTES;

    #[test]
    fn per_direction_values() {
        assert_eq!(
            probability("5%").unwrap(),
            PerDirection {
                up: 0.05,
                down: 0.05
            }
        );
        assert_eq!(
            probability("0/10%").unwrap(),
            PerDirection { up: 0.0, down: 0.1 }
        );
        assert!(probability("5%/x").is_err());
        assert_eq!(
            duration("10ms/0s").unwrap(),
            PerDirection {
                up: Duration::from_millis(10),
                down: Duration::ZERO
            }
        );
        assert_eq!(
            rate("1mbit/0").unwrap(),
            PerDirection {
                up: Some(1_000_000),
                down: None
            }
        );
    }

    #[test]
    fn the_default_queue_is_the_engine_default() {
        assert_eq!(parse_size("4MiB"), Ok(DEFAULT_QUEUE_BYTES));
    }

    #[test]
    fn session_seeds_differ_and_repeat() {
        assert_eq!(session_seed(7, 0, true), session_seed(7, 0, true));
        assert_ne!(session_seed(7, 0, true), session_seed(7, 0, false));
        assert_ne!(session_seed(7, 0, true), session_seed(7, 1, true));
        assert_ne!(session_seed(7, 0, true), session_seed(8, 0, true));
    }
}
