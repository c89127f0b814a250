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
//!
//! # Shape
//!
//! As every service: [`bind`] takes a [`RelayConfig`] and binds the listening socket through
//! the transport (the sessions' sockets come from `protolab_transport::udp::connect_udp` too),
//! [`run`] relays until its shutdown token fires and returns the [`RelayTruth`], which the
//! binary prints and writes to the `--stats` file. The library prints nothing.

mod kernel;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protolab_transport::CancellationToken;
use protolab_transport::cli::ListenError;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::engine::{Engine, GroundTruth, Impairment, PACKET_OVERHEAD, PerDirection};

/// Bytes of datagrams from the server read by the sessions' readers and not yet taken into an
/// engine. A reader waits when they are all taken (its socket's buffer then fills, and the
/// kernel's drops there are counted), so a fast server cannot grow the relay's memory.
pub const READ_AHEAD_BYTES: usize = 4 << 20;

/// The most sessions open at once, and the most closed ones kept, that the options accept.
pub const MAX_SESSIONS: usize = 10_000;

/// The receive and send buffers of the relay's sockets: deep, so that a burst waits in the
/// kernel rather than being dropped there.
const SOCKET_BUFFER: usize = 8 << 20;

/// Options of `impair udp`. In each [`PerDirection`], `first` is upstream (client to server)
/// and `second` downstream.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where clients send.
    pub listen: SocketAddr,
    /// The server to relay to.
    pub forward: SocketAddr,
    /// The impairment of each direction.
    pub impairment: PerDirection<Impairment>,
    /// Bytes queued per direction, all sessions together.
    pub queue: PerDirection<usize>,
    /// Seed of the impairment decisions (the front end picks one when none is given).
    pub seed: u64,
    /// A file the ground truth is written to every second while the relay runs.
    pub stats: Option<PathBuf>,
    /// Clients relayed at once; datagrams of further clients are refused.
    pub max_sessions: usize,
    /// Closed sessions whose truth is kept and listed.
    pub keep_closed: usize,
    /// How long a silent session stays open.
    pub session_idle: Duration,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The listening address could not be bound.
    #[error("{0}")]
    Listen(#[source] ListenError),
    /// The `--stats` file cannot be written at all, a mistake reported before relaying.
    #[error(
        "write --stats {}: give a file in a folder that exists and is writable",
        path.display()
    )]
    Stats {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The listening socket failed.
    #[error("the listening socket failed")]
    Io(#[from] std::io::Error),
}

/// The relay's listening socket, bound.
#[derive(Debug)]
pub struct Bound {
    listen: UdpSocket,
    local: SocketAddr,
}

impl Bound {
    /// `("udp", the listening address)`, for the `listening` line.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        vec![("udp", self.local)]
    }
}

/// Binds the listening socket through the transport, and checks that the `--stats` file can be
/// written (by writing the empty ground truth to it), so that both mistakes are reported before
/// the `listening` line.
///
/// # Errors
/// [`RelayError::Listen`] for the address, [`RelayError::Stats`] for the file.
pub fn bind(config: &RelayConfig) -> Result<Bound, RelayError> {
    let listen = protolab_transport::bind_udp(config.listen, SOCKET_BUFFER)
        .map_err(|e| RelayError::Listen(ListenError::new("udp", config.listen, e)))?;
    if let Err(e) = kernel::enable_drop_count(&listen) {
        tracing::warn!(error = %e, "the kernel will not report datagrams it drops at the listening socket");
    }
    let local = listen.local_addr()?;
    if let Some(path) = &config.stats {
        let empty = Relay::new(config.clone(), local, Instant::now());
        write_stats(path, &empty.truth()).map_err(|source| RelayError::Stats {
            path: path.clone(),
            source,
        })?;
    }
    Ok(Bound { listen, local })
}

/// The ground truth as the `--stats` file and the human report hold it: pretty JSON.
pub fn pretty(truth: &RelayTruth) -> String {
    serde_json::to_string_pretty(truth).unwrap_or_else(|e| {
        // Serializing plain counters cannot fail; say so if it ever does.
        format!("{{\"error\": \"serialize the ground truth: {e}\"}}")
    })
}

/// Writes the ground truth to `path` as [`pretty`] JSON, through a temporary file renamed over
/// it, so that a reader never sees half a file.
///
/// # Errors
/// Writing or renaming the file.
pub fn write_stats(path: &std::path::Path, truth: &RelayTruth) -> std::io::Result<()> {
    write_atomically(path, &pretty(truth))
}

fn write_atomically(path: &std::path::Path, json: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
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

/// Written out because `SocketAddr` has no default: a relay that never ran listened nowhere,
/// said as the unspecified address, port 0.
impl Default for RelayTruth {
    fn default() -> Self {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Self {
            listen: nowhere,
            forward: nowhere,
            seed: 0,
            upstream_config: Impairment::default(),
            downstream_config: Impairment::default(),
            upstream_queue_bytes: 0,
            downstream_queue_bytes: 0,
            upstream: GroundTruth::default(),
            downstream: GroundTruth::default(),
            upstream_kernel_dropped: 0,
            downstream_kernel_dropped: 0,
            refused: 0,
            send_errors: 0,
            sessions_open: 0,
            sessions_forgotten: 0,
            stats_write_errors: 0,
            sessions: Vec::new(),
        }
    }
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
        match &self.path {
            Some(path) => write_atomically(path, json),
            None => Ok(()),
        }
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
    config: RelayConfig,
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
    /// A relay with no session yet, listening on `local`.
    fn new(config: RelayConfig, local: SocketAddr, start: Instant) -> Relay {
        let stats = StatsFile {
            path: config.stats.clone(),
            ..StatsFile::default()
        };
        Relay {
            config,
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
        }
    }

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
            listen: self.config.listen,
            forward: self.config.forward,
            seed: self.config.seed,
            upstream_config: self.config.impairment.first.clone(),
            downstream_config: self.config.impairment.second.clone(),
            upstream_queue_bytes: self.config.queue.first,
            downstream_queue_bytes: self.config.queue.second,
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
        pretty(&self.truth())
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
        if self.sessions.len() >= self.config.max_sessions {
            return None;
        }
        let socket = match protolab_transport::udp::connect_udp(self.config.forward, SOCKET_BUFFER)
            .and_then(protolab_transport::udp::into_tokio)
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, forward = %self.config.forward, "cannot open a session socket");
                return None;
            }
        };
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
        let (up_cfg, down_cfg) = (
            self.config.impairment.first.clone(),
            self.config.impairment.second.clone(),
        );
        self.sessions.insert(
            id,
            Session {
                client,
                upstream: socket,
                up: Engine::new(up_cfg, session_seed(self.config.seed, id, true))
                    .with_queue_limit(self.config.queue.first),
                down: Engine::new(down_cfg, session_seed(self.config.seed, id, false))
                    .with_queue_limit(self.config.queue.second),
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
                let room = self.config.queue.first.saturating_sub(self.queued_up);
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
        let room = self.config.queue.second.saturating_sub(self.queued_down);
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
        let idle = self.config.session_idle;
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
        while self.closed.len() > self.config.keep_closed {
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

/// Relays until `shutdown` fires, and returns the ground truth: the report of `impair udp`.
///
/// While it runs, the ground truth is written to `config.stats` every second (a file that cannot
/// be written is retried and counted, never fatal); the final one is the caller's to write,
/// after printing it, with [`write_stats`].
///
/// # Errors
/// None today: per-datagram failures are counted in the ground truth.
pub async fn run(
    bound: Bound,
    config: RelayConfig,
    shutdown: CancellationToken,
) -> Result<RelayTruth, RelayError> {
    let Bound { listen, local } = bound;
    tracing::info!(%local, forward = %config.forward, seed = config.seed, "relaying");
    let (down_tx, mut down_rx) = mpsc::channel::<FromServer>(65_536);
    let read_ahead = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
    let start = Instant::now();
    let mut relay = Relay::new(config, local, start);
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
    Ok(relay.truth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{DEFAULT_QUEUE_BYTES, parse_size};

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
