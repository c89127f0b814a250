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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use protolab_transport::cli::parse_duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::{
    Engine, GroundTruth, Impairment, parse_each, parse_optional_rate, parse_probability,
};

const EXAMPLES: &str = "\
EXAMPLES:
    impair udp --listen 127.0.0.1:7000 --forward 127.0.0.1:7777 --loss 5% --seed 7
    impair udp --forward 127.0.0.1:7777 --loss 5% --reorder 10% --dup 1% --delay 10ms --jitter 5ms
    impair udp --forward 127.0.0.1:7777 --loss 2%/0 --delay 0/20ms     (UP/DOWN: per direction)
    impair udp --forward 127.0.0.1:7777 --rate 1mbit --stats truth.json
";

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

fn addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, 7000).map_err(|e| e.to_string())
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
    /// Bottleneck rate in bits per second (1mbit, 500kbit); 0 for none.
    #[arg(long, default_value = "0", value_parser = rate)]
    pub rate: PerDirection<Option<u64>>,
    /// Seed of the impairment decisions (printed when chosen at random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the ground truth to this file (refreshed every second, final on exit).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Clients relayed at once; datagrams of further clients are dropped and counted.
    #[arg(long, default_value_t = 1024)]
    pub max_sessions: usize,
    /// Close a session silent for this long (its counts stay in the ground truth).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub session_idle: Duration,
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
}

/// What `--stats` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayTruth {
    pub listen: SocketAddr,
    pub forward: SocketAddr,
    pub seed: u64,
    pub upstream_config: Impairment,
    pub downstream_config: Impairment,
    /// Summed over all sessions, closed ones included.
    pub upstream: GroundTruth,
    pub downstream: GroundTruth,
    /// Datagrams from clients beyond `--max-sessions`, dropped unrelayed.
    pub refused: u64,
    /// Datagrams the relay failed to send on (counted as forwarded by the engine).
    pub send_errors: u64,
    /// Per session, in the order they opened (closed sessions included, up to 10,000).
    pub sessions: Vec<SessionTruth>,
}

struct Session {
    client: SocketAddr,
    upstream: Arc<UdpSocket>,
    up: Engine<Bytes>,
    down: Engine<Bytes>,
    last_seen: Instant,
    reader: tokio::task::JoinHandle<()>,
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

/// A closed session's final truth, upstream and downstream.
type Closed = (GroundTruth, GroundTruth);

struct Relay {
    args: RelayArgs,
    seed: u64,
    start: Instant,
    sessions: HashMap<u64, Session>,
    by_client: HashMap<SocketAddr, u64>,
    /// Truth of sessions in opening order: (id, client, final truth once closed).
    order: Vec<(u64, SocketAddr, Option<Closed>)>,
    next_id: u64,
    refused: u64,
    send_errors: u64,
}

impl Relay {
    fn truth(&self) -> RelayTruth {
        let mut upstream = GroundTruth::default();
        let mut downstream = GroundTruth::default();
        let mut sessions = Vec::new();
        for (id, client, closed) in &self.order {
            let (up, down, queued) = match (closed, self.sessions.get(id)) {
                (Some((u, d)), _) => (u.clone(), d.clone(), 0),
                (None, Some(s)) => (
                    s.up.truth().clone(),
                    s.down.truth().clone(),
                    s.up.queued() + s.down.queued(),
                ),
                (None, None) => continue,
            };
            upstream.add(&up);
            downstream.add(&down);
            if sessions.len() < 10_000 {
                sessions.push(SessionTruth {
                    client: *client,
                    upstream: up,
                    downstream: down,
                    queued,
                });
            }
        }
        RelayTruth {
            listen: self.args.listen,
            forward: self.args.forward,
            seed: self.seed,
            upstream_config: self.args.impairment(true),
            downstream_config: self.args.impairment(false),
            upstream,
            downstream,
            refused: self.refused,
            send_errors: self.send_errors,
            sessions,
        }
    }

    fn write_stats(&self) -> Result<String> {
        let json = serde_json::to_string_pretty(&self.truth())?;
        if let Some(path) = &self.args.stats {
            // Write then rename, so a reader never sees half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &json).with_context(|| format!("write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
        }
        Ok(json)
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn open(
        &mut self,
        client: SocketAddr,
        down_tx: &mpsc::Sender<(u64, Bytes)>,
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
            let (socket, tx) = (socket.clone(), down_tx.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    match socket.recv(&mut buf).await {
                        Ok(n) => {
                            let msg = (id, Bytes::copy_from_slice(&buf[..n]));
                            if tx.send(msg).await.is_err() {
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
        self.sessions.insert(
            id,
            Session {
                client,
                upstream: socket,
                up: Engine::new(
                    self.args.impairment(true),
                    session_seed(self.seed, id, true),
                ),
                down: Engine::new(
                    self.args.impairment(false),
                    session_seed(self.seed, id, false),
                ),
                last_seen: Instant::now(),
                reader,
            },
        );
        self.by_client.insert(client, id);
        self.order.push((id, client, None));
        Some(id)
    }

    /// A datagram from a client, to impair on its way to the server.
    async fn upstream(
        &mut self,
        client: SocketAddr,
        data: &[u8],
        down_tx: &mpsc::Sender<(u64, Bytes)>,
    ) {
        let now = self.now();
        match self.open(client, down_tx).await {
            Some(id) => {
                let s = self
                    .sessions
                    .get_mut(&id)
                    .expect("open returns a live session");
                s.last_seen = Instant::now();
                s.up.push(now, data.len(), Bytes::copy_from_slice(data));
            }
            None => self.refused += 1,
        }
    }

    /// A datagram from the server for session `id`, to impair on its way back.
    fn downstream(&mut self, id: u64, data: Bytes) {
        // The time it is taken in, not when the reader saw it: the engine's clock must not run
        // behind the relay's, or a backlog would let hold limits expire before their time.
        let now = self.now();
        if let Some(s) = self.sessions.get_mut(&id) {
            s.down.push(now, data.len(), data);
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
            if let Some(s) = self.sessions.remove(&id) {
                s.reader.abort();
                self.by_client.remove(&s.client);
                if let Some(entry) = self.order.iter_mut().find(|e| e.0 == id) {
                    entry.2 = Some((s.up.truth().clone(), s.down.truth().clone()));
                }
                tracing::debug!(client = %s.client, "session closed after idle");
            }
        }
    }
}

/// Runs this front end until SIGINT or SIGTERM, then writes the ground truth.
///
/// # Errors
/// Binding the listening address, starting the runtime, writing `--stats`.
pub fn main(args: RelayArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(run(args))
}

async fn run(args: RelayArgs) -> Result<()> {
    let listen = protolab_transport::bind_udp(args.listen, 8 << 20)
        .with_context(|| format!("bind UDP {}: pick another --listen address", args.listen))?;
    let local = listen.local_addr()?;
    let (_, seed) = protolab_transport::rng::seeded(args.seed);
    tracing::info!(%local, forward = %args.forward, seed, "relaying");
    println!("listening udp {local}");
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let shutdown = protolab_transport::shutdown_on_signals();
    let (down_tx, mut down_rx) = mpsc::channel::<(u64, Bytes)>(65_536);
    let start = Instant::now();
    let mut relay = Relay {
        args,
        seed,
        start,
        sessions: HashMap::new(),
        by_client: HashMap::new(),
        order: Vec::new(),
        next_id: 0,
        refused: 0,
        send_errors: 0,
    };
    let mut buf = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    relay.write_stats()?;
    loop {
        let wake = relay.next_release().map(|d| start + d);
        // Not biased: a busy client side must not starve the server side (or the reverse).
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = async { tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
            r = listen.recv_from(&mut buf) => match r {
                Ok((n, client)) => relay.upstream(client, &buf[..n], &down_tx).await,
                Err(e) => tracing::debug!(error = %e, "recv_from"),
            },
            Some((id, data)) = down_rx.recv() => relay.downstream(id, data),
            _ = tick.tick() => {
                relay.expire();
                relay.write_stats()?;
            }
        }
        // Take in whatever else has already arrived before releasing anything, so that a
        // moment without the CPU never lets a timer overtake a datagram that is waiting: a held
        // datagram must see the datagram behind it whenever that one has in fact arrived.
        for _ in 0..1024 {
            let mut more = false;
            if let Ok((n, client)) = listen.try_recv_from(&mut buf) {
                relay.upstream(client, &buf[..n], &down_tx).await;
                more = true;
            }
            if let Ok((id, data)) = down_rx.try_recv() {
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
    let json = relay.write_stats()?;
    println!("{json}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn session_seeds_differ_and_repeat() {
        assert_eq!(session_seed(7, 0, true), session_seed(7, 0, true));
        assert_ne!(session_seed(7, 0, true), session_seed(7, 0, false));
        assert_ne!(session_seed(7, 0, true), session_seed(7, 1, true));
        assert_ne!(session_seed(7, 0, true), session_seed(8, 0, true));
    }
}
