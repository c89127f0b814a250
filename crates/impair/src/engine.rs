//! The impairment decision engine, without I/O: packets and the time in, packets out when they
//! are due, and the ground truth of what was done to them.
//!
//! One [`Engine`] impairs one direction. The front ends (`impair udp`, `impair link`) own the
//! sockets and the clock; they [`Engine::push`] each packet as it arrives with the time since
//! they started, sleep until [`Engine::next_release`], and send what [`Engine::pop_ready`] yields.
//!
//! # Decisions
//!
//! Every pushed packet consumes exactly four numbers from the seeded RNG, in this order, whatever
//! is decided: loss, duplication, reordering, jitter. So the same seed and the same sequence of
//! packets give the same decisions, however the packets were timed.
//!
//! - **Loss**: with probability `loss` the packet is dropped.
//! - **Duplication**: with probability `dup` a kept packet is sent twice, the copies back to back.
//! - **Delay and jitter**: a kept packet is due `delay` plus a uniform offset in
//!   `[-jitter, +jitter]` after it arrived (never before it arrived). Jitter keeps the order of
//!   packets, as a real link's queue does: a packet is never due before the packet queued ahead
//!   of it, so reordering comes only from the reordering knob and is counted exactly.
//! - **Rate**: with `rate_bps`, packets are serialized one after another at that rate before the
//!   delay (a bottleneck link).
//! - **Queue**: everything waiting (for the bottleneck, the delay or a reordering) is held in one
//!   queue capped in bytes, as a router's buffer is: each packet costs its length plus
//!   [`PACKET_OVERHEAD`], so that even empty packets cannot fill memory. A packet that does not
//!   fit is dropped at the tail (its copies with it) and counted apart from loss.
//! - **Reordering**: with probability `reorder` a kept packet is held back until the next packet
//!   that is not held has been queued, and is then queued right behind it, so that later packet
//!   overtakes it. A held packet waits at most [`HOLD_LIMIT`] beyond its own due time: when no
//!   packet follows, it leaves in order and is not counted as reordered.
//!
//! # Ground truth
//!
//! [`GroundTruth`] counts per direction:
//! - `received`: packets pushed.
//! - `dropped`: packets dropped by the loss knob.
//! - `queue_dropped`: packets dropped at the tail because the queue was full.
//! - `duplicated`: extra copies made (one per duplicated packet).
//! - `forwarded`: packets released by [`Engine::pop_ready`], copies included.
//! - `queued`: packets (copies included) waiting in the queue.
//!
//! At every moment `received + duplicated = forwarded + dropped + queue_dropped + queued`
//! ([`GroundTruth::adds_up`]); once the queue is empty, `forwarded = received - dropped -
//! queue_dropped + duplicated`.
//! - `reordered`: released packets that left after a packet that arrived later than they did.
//!   This is RFC 4737's definition applied to the engine's arrival index: the first copy of a
//!   packet is reordered when its arrival index is below the next expected index (one more
//!   than the highest index released so far); duplicate copies are not considered, as RFC 4737
//!   ignores duplicates. A probe behind an order-keeping path therefore counts exactly this
//!   number of reordered packets.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long a held-back packet waits for a later packet to overtake it, beyond its own due time.
pub const HOLD_LIMIT: Duration = Duration::from_millis(250);

/// The default cap on the queue of one engine, in bytes (see [`Engine::with_queue_limit`]):
/// 4 MiB, about 2,800 full-size Ethernet frames, in the range of a home router's buffer and of
/// netem's default limit of 1,000 packets.
pub const DEFAULT_QUEUE_BYTES: usize = 4 << 20;

/// What a queued packet costs beyond its length, in bytes: its share of the queue's bookkeeping,
/// charged so that the byte cap also bounds the number of packets (as the kernel charges each
/// socket buffer its `truesize`, not only its data).
pub const PACKET_OVERHEAD: usize = 64;

/// Impairment settings for one direction. Probabilities are 0.0..=1.0.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Impairment {
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Probability that a kept packet is sent twice.
    pub dup: f64,
    /// Probability that a kept packet is held back behind the next one.
    pub reorder: f64,
    /// Fixed one-way delay (`delay_ns` in JSON).
    #[serde(rename = "delay_ns", serialize_with = "as_nanos")]
    pub delay: std::time::Duration,
    /// Half-width of the uniform variation of the delay (`jitter_ns` in JSON).
    #[serde(rename = "jitter_ns", serialize_with = "as_nanos")]
    pub jitter: std::time::Duration,
    /// Bottleneck rate in bits per second, if any.
    pub rate_bps: Option<u64>,
}

impl Impairment {
    /// True when the engine would pass every packet at once, untouched.
    pub fn is_transparent(&self) -> bool {
        self.loss == 0.0
            && self.dup == 0.0
            && self.reorder == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.rate_bps.is_none()
    }
}

/// What the engine did, per direction: the ground truth a probe is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroundTruth {
    /// Packets pushed into the engine.
    pub received: u64,
    /// Packets released, duplicate copies included.
    pub forwarded: u64,
    /// Packets dropped by the loss knob.
    pub dropped: u64,
    /// Packets dropped at the tail because the queue was full (its byte limit).
    #[serde(default)]
    pub queue_dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Released packets that left after a packet that arrived later (RFC 4737 on arrival order).
    pub reordered: u64,
    /// Packets (copies included) waiting in the queue when this was taken.
    #[serde(default)]
    pub queued: u64,
}

impl GroundTruth {
    /// Adds another direction's or session's counts to these.
    pub fn add(&mut self, other: &GroundTruth) {
        self.received += other.received;
        self.forwarded += other.forwarded;
        self.dropped += other.dropped;
        self.queue_dropped += other.queue_dropped;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.queued += other.queued;
    }

    /// Whether the counts account for every packet, as they must at every moment: each packet
    /// received, and each extra copy made, was forwarded, dropped (by loss or at a full queue)
    /// or is still queued; no more copies were made than packets received; only forwarded
    /// packets can have been reordered.
    pub fn adds_up(&self) -> bool {
        let came = u128::from(self.received) + u128::from(self.duplicated);
        let went = u128::from(self.forwarded)
            + u128::from(self.dropped)
            + u128::from(self.queue_dropped)
            + u128::from(self.queued);
        came == went && self.duplicated <= self.received && self.reordered <= self.forwarded
    }
}

/// What happened to one pushed packet (for traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped: it will never be released.
    Dropped,
    /// Queued: `copies` (1 or 2) will be released; `reordered` says it was chosen to be held back
    /// behind a later packet; `release_at` is when it is due (for a held packet, the latest time).
    Queued {
        copies: u8,
        reordered: bool,
        release_at: std::time::Duration,
    },
}

/// A packet waiting in the queue.
#[derive(Debug)]
struct Entry<T> {
    /// The engine's arrival index of the packet.
    index: u64,
    /// False for the extra copy of a duplicated packet.
    first: bool,
    /// What it is charged against the queue's byte limit.
    cost: usize,
    packet: T,
}

/// A packet held back until a later packet is queued.
#[derive(Debug)]
struct Held {
    /// Its key in the queue, to move it when a later packet arrives.
    key: (Duration, u64),
    /// When it would have been due without being held.
    due: Duration,
}

/// The impairment engine of one direction. See the module documentation.
pub struct Engine<T> {
    cfg: Impairment,
    rng: StdRng,
    /// Packets by (due time, insertion order): release order.
    queue: BTreeMap<(Duration, u64), Entry<T>>,
    held: Vec<Held>,
    /// Counter giving each queue key a unique, increasing second part.
    order: u64,
    /// Arrival index of the next pushed packet.
    arrivals: u64,
    /// One more than the highest arrival index released so far (RFC 4737's NextExp).
    next_expected: u64,
    /// Due time of the last packet queued in order: jitter never lets a packet overtake it.
    last_due: Duration,
    /// When the bottleneck finishes sending what it has queued.
    busy_until: Duration,
    /// The queue's cap in bytes, and what it holds now (lengths plus overhead).
    limit_bytes: usize,
    queued_bytes: usize,
    truth: GroundTruth,
}

impl<T> std::fmt::Debug for Engine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .field("queued", &self.queue.len())
            .field("queued_bytes", &self.queued_bytes)
            .field("truth", &self.truth)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> Engine<T> {
    /// An engine applying `cfg`, its decisions drawn from an RNG seeded with `seed`.
    pub fn new(cfg: Impairment, seed: u64) -> Self {
        Self {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            queue: BTreeMap::new(),
            held: Vec::new(),
            order: 0,
            arrivals: 0,
            next_expected: 0,
            last_due: Duration::ZERO,
            busy_until: Duration::ZERO,
            limit_bytes: DEFAULT_QUEUE_BYTES,
            queued_bytes: 0,
            truth: GroundTruth::default(),
        }
    }

    /// Caps the queue at `bytes` (default [`DEFAULT_QUEUE_BYTES`]), each packet costing its
    /// length plus [`PACKET_OVERHEAD`]; a packet that does not fit is dropped at the tail and
    /// counted in `queue_dropped`, so memory stays bounded however fast packets arrive.
    #[must_use]
    pub fn with_queue_limit(mut self, bytes: usize) -> Self {
        self.limit_bytes = bytes;
        self
    }

    /// What the queue holds now, in bytes as charged against its limit.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The settings.
    pub fn config(&self) -> &Impairment {
        &self.cfg
    }

    /// Packets (copies included) waiting to be released.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// `now` is the time since the link/relay started; `len` the packet's size in bytes (for
    /// the rate and the queue's limit).
    pub fn push(&mut self, now: std::time::Duration, len: usize, packet: T) -> Fate {
        self.push_within(now, len, packet, usize::MAX)
    }

    /// As [`Engine::push`], with the packet also dropped at the tail when it costs more than
    /// `room` bytes: a front end whose engines share one buffer passes what is left of it. The
    /// RNG is consumed exactly as by `push`.
    pub fn push_within(
        &mut self,
        now: std::time::Duration,
        len: usize,
        packet: T,
        room: usize,
    ) -> Fate {
        // Draw all four numbers first, so each packet consumes the RNG identically.
        let u_loss: f64 = self.rng.random();
        let u_dup: f64 = self.rng.random();
        let u_reorder: f64 = self.rng.random();
        let u_jitter: f64 = self.rng.random();
        let index = self.arrivals;
        self.arrivals += 1;
        self.truth.received += 1;

        let copies: u8 = if u_dup < self.cfg.dup { 2 } else { 1 };
        if u_loss < self.cfg.loss {
            self.truth.dropped += 1;
            return Fate::Dropped;
        }
        let cost = len.saturating_add(PACKET_OVERHEAD);
        let all = cost.saturating_mul(usize::from(copies));
        if all > room || self.queued_bytes.saturating_add(all) > self.limit_bytes {
            self.truth.queue_dropped += 1;
            return Fate::Dropped;
        }
        if copies == 2 {
            self.truth.duplicated += 1;
        }

        // A bottleneck serializes packets before the propagation delay.
        let sent = match self.cfg.rate_bps {
            Some(rate) if rate > 0 => {
                let start = self.busy_until.max(now);
                let nanos = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate));
                let done = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
                self.busy_until = done;
                done
            }
            _ => now,
        };
        let offset = self.cfg.jitter.as_secs_f64() * (u_jitter * 2.0 - 1.0);
        let delay = (self.cfg.delay.as_secs_f64() + offset).max(0.0);
        let mut due = sent + Duration::from_secs_f64(delay);
        let reordered = u_reorder < self.cfg.reorder;

        if reordered {
            // Held back: queued at its latest time for now, moved behind the next packet.
            let latest = due.max(self.last_due) + HOLD_LIMIT;
            for copy in 0..copies {
                let key = self.insert(latest, index, copy == 0, cost, packet.clone());
                self.held.push(Held { key, due });
            }
            return Fate::Queued {
                copies,
                reordered,
                release_at: latest,
            };
        }

        due = due.max(self.last_due);
        self.last_due = due;
        for copy in 0..copies {
            self.insert(due, index, copy == 0, cost, packet.clone());
        }
        // Everything held so far goes right behind this packet, which overtakes it.
        for held in std::mem::take(&mut self.held) {
            if let Some(entry) = self.queue.remove(&held.key) {
                self.queued_bytes -= entry.cost;
                let at = held.due.max(due);
                self.insert(at, entry.index, entry.first, entry.cost, entry.packet);
            }
        }
        Fate::Queued {
            copies,
            reordered,
            release_at: due,
        }
    }

    fn insert(
        &mut self,
        at: Duration,
        index: u64,
        first: bool,
        cost: usize,
        packet: T,
    ) -> (Duration, u64) {
        let key = (at, self.order);
        self.order += 1;
        self.queue.insert(
            key,
            Entry {
                index,
                first,
                cost,
                packet,
            },
        );
        self.queued_bytes += cost;
        self.truth.queued = self.queue.len() as u64;
        key
    }

    /// The next packet due at or before `now`, in release order.
    pub fn pop_ready(&mut self, now: std::time::Duration) -> Option<T> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = *entry.key();
        let entry = entry.remove();
        self.queued_bytes -= entry.cost;
        self.truth.queued = self.queue.len() as u64;
        // A held packet leaving on its own (no later packet came) is no longer held.
        self.held.retain(|h| h.key != key);
        self.truth.forwarded += 1;
        if entry.first {
            if entry.index < self.next_expected {
                self.truth.reordered += 1;
            } else {
                self.next_expected = entry.index + 1;
            }
        }
        Some(entry.packet)
    }

    /// When the next queued packet is due, if any.
    pub fn next_release(&self) -> Option<std::time::Duration> {
        self.queue.first_key_value().map(|(k, _)| k.0)
    }

    /// What the engine has done so far.
    pub fn truth(&self) -> &GroundTruth {
        &self.truth
    }
}

/// Parses a probability for clap: `5%`, `0.5%` or a fraction such as `0.05`.
///
/// # Errors
/// A message naming both accepted forms when the text is not a number between 0 and 1 (100%).
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let value = if let Some(pct) = s.strip_suffix('%') {
        pct.trim()
            .parse::<f64>()
            .map(|p| p / 100.0)
            .map_err(|_| format!("{s:?} is not a percentage: write 5% or 0.05"))?
    } else {
        s.parse::<f64>()
            .map_err(|_| format!("{s:?} is not a probability: write 5% or 0.05"))?
    };
    if !(0.0..=1.0).contains(&value) || value.is_nan() {
        return Err(format!(
            "{s:?} is outside 0..1: write a percentage up to 100% or a fraction up to 1.0 (5% or 0.05)"
        ));
    }
    Ok(value)
}

/// The largest queue a front end accepts: 1 GiB.
pub const MAX_QUEUE_BYTES: usize = 1 << 30;

/// Parses a size in bytes for clap: `1500`, `1500B`, `64kB` (1000), `64KiB` (1024), `4MB`,
/// `4MiB`, `1GiB`; from 1 byte to [`MAX_QUEUE_BYTES`].
///
/// # Errors
/// A message naming the accepted forms when the text is not such a size.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "kB" | "KB" | "k" | "K" => 1_000,
        "KiB" | "kiB" => 1 << 10,
        "MB" | "M" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" | "G" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => u64::MAX,
    };
    let value = num
        .parse::<u64>()
        .ok()
        .filter(|_| mult != u64::MAX)
        .and_then(|v| v.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size: write bytes like 1500, 64kB or 4MiB"))?;
    if value == 0 || value > MAX_QUEUE_BYTES as u64 {
        return Err(format!(
            "{s:?} is out of range: write a size from 1 byte to 1GiB"
        ));
    }
    Ok(value as usize)
}

/// A setting of each direction, as both front ends take their options: `first` is the direction
/// written first in `A/B` (up, from client to server, in `impair udp`; left to right in
/// `impair link`) and `second` the other one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerDirection<T> {
    pub first: T,
    pub second: T,
}

impl<T: Clone> PerDirection<T> {
    /// The same setting both ways.
    pub fn both(value: T) -> Self {
        PerDirection {
            first: value.clone(),
            second: value,
        }
    }

    /// Parses a setting given once for both directions, or as `A/B`: A for the first direction
    /// and B for the other, each by `one`.
    ///
    /// # Errors
    /// `one`'s message for the part that does not parse.
    pub fn parse(text: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        match text.split_once('/') {
            Some((a, b)) => Ok(PerDirection {
                first: one(a)?,
                second: one(b)?,
            }),
            None => one(text).map(Self::both),
        }
    }
}

impl PerDirection<Impairment> {
    /// Each direction's impairment from its knobs, each given per direction.
    pub fn from_knobs(
        loss: PerDirection<f64>,
        dup: PerDirection<f64>,
        reorder: PerDirection<f64>,
        delay: PerDirection<Duration>,
        jitter: PerDirection<Duration>,
        rate_bps: PerDirection<Option<u64>>,
    ) -> Self {
        PerDirection {
            first: Impairment {
                loss: loss.first,
                dup: dup.first,
                reorder: reorder.first,
                delay: delay.first,
                jitter: jitter.first,
                rate_bps: rate_bps.first,
            },
            second: Impairment {
                loss: loss.second,
                dup: dup.second,
                reorder: reorder.second,
                delay: delay.second,
                jitter: jitter.second,
                rate_bps: rate_bps.second,
            },
        }
    }
}

/// Parses a rate limit where `0`, `none` or nothing means no limit.
///
/// # Errors
/// [`parse_rate`]'s message.
pub fn parse_optional_rate(s: &str) -> Result<Option<u64>, String> {
    match s.trim() {
        "0" | "none" | "" => Ok(None),
        t => parse_rate(t).map(Some),
    }
}

/// Parses a rate in bits per second for clap: `8000bit`, `10kbit`, `8mbit`, `1gbit` (SI units;
/// `bps` for `bit` too). The unit is required: a bare `10` would be ten bits per second, and
/// `udpecho probe --rate 10` means ten packets per second.
///
/// # Errors
/// A message naming the accepted forms, and the other `--rate` when given packets per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t.ends_with("pps") {
        return Err(format!(
            "{s:?} is packets per second: impair's --rate is a bit rate, like 10mbit \
             (packets per second are udpecho probe's --rate)"
        ));
    }
    let t = t.strip_suffix("/s").unwrap_or(&t);
    let Some(t) = t.strip_suffix("bit").or_else(|| t.strip_suffix("bps")) else {
        return Err(format!(
            "{s:?} has no unit: write bits per second with one, like 8000bit, 10kbit or 8mbit"
        ));
    };
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let value: f64 = num.trim().parse().map_err(|_| {
        format!("{s:?} is not a rate: write bits per second like 8000bit, 10kbit or 8mbit")
    })?;
    let bps = value * mult;
    if !(1.0..=1e12).contains(&bps) {
        return Err(format!(
            "{s:?} is out of range: write a rate between 1bit and 1000gbit"
        ));
    }
    Ok(bps as u64)
}

/// Serializes a duration as whole nanoseconds (the `_ns` keys of every JSON report).
fn as_nanos<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Pushes `n` packets 1 ms apart, then drains; returns the release order.
    fn run(cfg: Impairment, seed: u64, n: u64) -> (Vec<u64>, GroundTruth) {
        let mut e = Engine::new(cfg, seed);
        let mut out = Vec::new();
        for i in 0..n {
            let now = ms(i);
            e.push(now, 100, i);
            while let Some(p) = e.pop_ready(now) {
                out.push(p);
            }
        }
        while let Some(p) = e.pop_ready(Duration::MAX) {
            out.push(p);
        }
        assert_eq!(e.next_release(), None);
        (out, e.truth().clone())
    }

    /// RFC 4737 reordered count over a release order, duplicates ignored.
    fn rfc4737(order: &[u64]) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let mut next = 0;
        let mut reordered = 0;
        for &i in order {
            if !seen.insert(i) {
                continue;
            }
            if i < next {
                reordered += 1;
            } else {
                next = i + 1;
            }
        }
        reordered
    }

    #[test]
    fn transparent_passes_everything_in_order_at_once() {
        let mut e = Engine::new(Impairment::default(), 1);
        assert!(e.config().is_transparent());
        let fate = e.push(ms(5), 64, "a");
        assert_eq!(
            fate,
            Fate::Queued {
                copies: 1,
                reordered: false,
                release_at: ms(5)
            }
        );
        assert_eq!(e.next_release(), Some(ms(5)));
        assert_eq!(e.pop_ready(ms(4)), None);
        assert_eq!(e.pop_ready(ms(5)), Some("a"));
        assert_eq!(e.pop_ready(ms(5)), None);
        let (order, truth) = run(Impairment::default(), 1, 1000);
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            truth,
            GroundTruth {
                received: 1000,
                forwarded: 1000,
                ..GroundTruth::default()
            }
        );
    }

    #[test]
    fn certain_loss_and_certain_duplication() {
        let all_lost = Impairment {
            loss: 1.0,
            dup: 1.0,
            ..Impairment::default()
        };
        let (order, truth) = run(all_lost, 3, 10);
        assert!(order.is_empty());
        assert_eq!(truth.dropped, 10);
        assert_eq!(truth.duplicated, 0);
        let all_dup = Impairment {
            dup: 1.0,
            ..Impairment::default()
        };
        let (order, truth) = run(all_dup, 3, 3);
        assert_eq!(order, vec![0, 0, 1, 1, 2, 2]);
        assert_eq!(truth.duplicated, 3);
        assert_eq!(truth.forwarded, 6);
        assert_eq!(truth.reordered, 0);
    }

    #[test]
    fn a_held_packet_is_overtaken_by_the_next() {
        let mut e = Engine::new(
            Impairment {
                reorder: 1.0,
                ..Impairment::default()
            },
            9,
        );
        // Every packet is held: with nothing to overtake them they leave in order after the
        // hold limit and are not reordered.
        let fate = e.push(ms(0), 10, 0u64);
        assert_eq!(
            fate,
            Fate::Queued {
                copies: 1,
                reordered: true,
                release_at: HOLD_LIMIT
            }
        );
        e.push(ms(1), 10, 1);
        assert_eq!(e.pop_ready(ms(200)), None);
        assert_eq!(e.pop_ready(HOLD_LIMIT + ms(1)), Some(0));
        assert_eq!(e.pop_ready(HOLD_LIMIT + ms(1)), Some(1));
        assert_eq!(e.truth().reordered, 0);

        // Held, then a packet that is not held: it overtakes.
        let mut e = Engine::new(Impairment::default(), 9);
        e.cfg.reorder = 1.0;
        e.push(ms(0), 10, 0u64);
        e.cfg.reorder = 0.0;
        e.push(ms(1), 10, 1);
        assert_eq!(e.pop_ready(ms(1)), Some(1));
        assert_eq!(e.pop_ready(ms(1)), Some(0));
        assert_eq!(e.truth().reordered, 1);
        assert_eq!(e.truth().forwarded, 2);
    }

    #[test]
    fn delay_and_jitter_keep_order() {
        let cfg = Impairment {
            delay: ms(10),
            jitter: ms(5),
            ..Impairment::default()
        };
        let mut e = Engine::new(cfg.clone(), 4);
        let Fate::Queued { release_at, .. } = e.push(ms(0), 1, 0u8) else {
            panic!("nothing is dropped");
        };
        assert!(
            release_at >= ms(5) && release_at <= ms(15),
            "{release_at:?}"
        );
        let (order, truth) = run(cfg, 4, 5000);
        assert_eq!(order, (0..5000).collect::<Vec<_>>());
        assert_eq!(truth.reordered, 0);
    }

    #[test]
    fn rate_serializes_packets() {
        let cfg = Impairment {
            rate_bps: Some(8_000), // 1000 bytes per second: a 100-byte packet takes 100 ms.
            ..Impairment::default()
        };
        // Room for two 100-byte packets and their bookkeeping.
        let mut e = Engine::new(cfg, 1).with_queue_limit(2 * (100 + PACKET_OVERHEAD));
        assert!(
            matches!(e.push(ms(0), 100, 0), Fate::Queued { release_at, .. } if release_at == ms(100))
        );
        assert!(
            matches!(e.push(ms(0), 100, 1), Fate::Queued { release_at, .. } if release_at == ms(200))
        );
        assert_eq!(e.push(ms(0), 100, 2), Fate::Dropped);
        assert_eq!(e.pop_ready(ms(150)), Some(0));
        assert_eq!(e.pop_ready(ms(150)), None);
        assert_eq!(e.truth().dropped, 0, "nothing was lost");
        assert_eq!(e.truth().queue_dropped, 1, "one was dropped at the tail");
        assert_eq!(e.truth().queued, 1);
        assert!(e.truth().adds_up(), "{:?}", e.truth());
    }

    #[test]
    fn the_queue_is_capped_in_bytes_not_packets() {
        let cfg = Impairment {
            rate_bps: Some(1_000), // A bottleneck that lets nothing out during the test.
            ..Impairment::default()
        };
        let limit = 100_000;
        let mut e = Engine::new(cfg, 5).with_queue_limit(limit);
        // Big packets: a few fill the queue.
        for i in 0..100 {
            e.push(ms(i), 60_000 - PACKET_OVERHEAD, i);
        }
        assert_eq!(e.queued(), 1);
        assert_eq!(e.queued_bytes(), 60_000);
        // Small ones still fit in what is left, and empty ones cost their bookkeeping.
        for i in 100..1_000 {
            e.push(ms(i), 0, i);
        }
        assert_eq!(e.queued(), 1 + (limit - 60_000) / PACKET_OVERHEAD);
        assert!(e.queued_bytes() <= limit);
        let t = e.truth().clone();
        assert_eq!(t.received, 1_000);
        assert_eq!(t.queue_dropped, 1_000 - e.queued() as u64);
        assert_eq!(t.dropped, 0);
        assert!(t.adds_up(), "{t:?}");
        // Draining gives the bytes back.
        while e.pop_ready(Duration::MAX).is_some() {}
        assert_eq!(e.queued_bytes(), 0);
        assert_eq!(e.truth().queued, 0);
        assert!(e.truth().adds_up());
    }

    #[test]
    fn a_duplicated_packet_needs_room_for_both_copies() {
        let cfg = Impairment {
            dup: 1.0,
            delay: ms(10),
            ..Impairment::default()
        };
        let mut e = Engine::new(cfg, 6).with_queue_limit(3 * (10 + PACKET_OVERHEAD));
        assert!(matches!(
            e.push(ms(0), 10, 0),
            Fate::Queued { copies: 2, .. }
        ));
        assert_eq!(e.push(ms(0), 10, 1), Fate::Dropped);
        let t = e.truth();
        assert_eq!((t.duplicated, t.queue_dropped, t.queued), (1, 1, 2));
        assert!(t.adds_up(), "{t:?}");
    }

    #[test]
    fn room_shared_with_other_engines_limits_too() {
        let mut e = Engine::new(Impairment::default(), 7);
        let fate = e.push_within(ms(0), 100, 0, 100 + PACKET_OVERHEAD - 1);
        assert_eq!(fate, Fate::Dropped);
        assert!(matches!(
            e.push_within(ms(0), 100, 1, 100 + PACKET_OVERHEAD),
            Fate::Queued { .. }
        ));
        assert_eq!(e.truth().queue_dropped, 1);
        assert!(e.truth().adds_up());
    }

    #[test]
    fn adds_up_holds_at_every_step_and_catches_a_missing_packet() {
        let cfg = Impairment {
            loss: 0.1,
            dup: 0.1,
            reorder: 0.1,
            delay: ms(2),
            jitter: ms(1),
            rate_bps: Some(2_000_000),
        };
        let mut e = Engine::new(cfg, 8).with_queue_limit(20 * (500 + PACKET_OVERHEAD));
        for i in 0..5_000 {
            e.push(ms(i / 10), 500, i);
            assert!(e.truth().adds_up(), "after push {i}: {:?}", e.truth());
            if i % 7 == 0 {
                e.pop_ready(ms(i / 10));
                assert!(e.truth().adds_up(), "after pop {i}: {:?}", e.truth());
            }
        }
        while e.pop_ready(Duration::MAX).is_some() {}
        let t = e.truth().clone();
        assert!(t.adds_up(), "{t:?}");
        assert!(
            t.dropped > 0 && t.queue_dropped > 0 && t.duplicated > 0,
            "{t:?}"
        );

        let mut wrong = t.clone();
        wrong.forwarded -= 1;
        assert!(!wrong.adds_up(), "a packet gone missing");
        let mut wrong = t.clone();
        wrong.queue_dropped += 1;
        assert!(!wrong.adds_up(), "a packet counted twice");
        let mut wrong = t.clone();
        wrong.reordered = wrong.forwarded + 1;
        assert!(!wrong.adds_up(), "more reordered than forwarded");
        let mut sum = t.clone();
        sum.add(&t);
        assert!(sum.adds_up(), "sums of sound counts are sound");
        assert!(GroundTruth::default().adds_up());
        // Counts near u64::MAX do not overflow the check.
        let huge = GroundTruth {
            received: u64::MAX,
            duplicated: u64::MAX,
            forwarded: u64::MAX,
            dropped: u64::MAX,
            ..GroundTruth::default()
        };
        assert!(huge.adds_up());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("64kB"), Ok(64_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1500"), Ok(1_500));
        assert_eq!(parse_size("1500B"), Ok(1_500));
        assert_eq!(parse_size(" 2 MB "), Ok(2_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("2GiB").unwrap_err().contains("1GiB"));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").unwrap_err().contains("4MiB"));
        assert!(parse_size("1.5MiB").is_err());
    }

    #[test]
    fn truth_matches_rfc4737_on_the_release_order() {
        let cfg = Impairment {
            loss: 0.05,
            dup: 0.03,
            reorder: 0.1,
            delay: ms(3),
            jitter: ms(2),
            rate_bps: None,
        };
        let (order, truth) = run(cfg, 42, 20_000);
        assert_eq!(truth.received, 20_000);
        assert_eq!(
            truth.forwarded,
            truth.received - truth.dropped + truth.duplicated
        );
        assert_eq!(order.len() as u64, truth.forwarded);
        assert_eq!(rfc4737(&order), truth.reordered);
        // The rates are near what was asked (loose bounds: this checks wiring, not the RNG).
        assert!((800..1200).contains(&truth.dropped), "{truth:?}");
        assert!((400..800).contains(&truth.duplicated), "{truth:?}");
        assert!((1500..2200).contains(&truth.reordered), "{truth:?}");
    }

    #[test]
    fn decisions_depend_on_the_seed_not_the_timing() {
        let cfg = Impairment {
            loss: 0.1,
            dup: 0.1,
            reorder: 0.1,
            ..Impairment::default()
        };
        let fates = |seed: u64, spacing: u64| {
            let mut e = Engine::new(cfg.clone(), seed);
            (0..500)
                .map(|i| match e.push(ms(i * spacing), 50, i) {
                    Fate::Dropped => (false, 0, false),
                    Fate::Queued {
                        copies, reordered, ..
                    } => (true, copies, reordered),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(7, 1), fates(7, 13));
        assert_ne!(fates(7, 1), fates(8, 1));
    }

    #[test]
    fn probabilities_and_rates_parse() {
        assert_eq!(parse_probability("5%"), Ok(0.05));
        assert_eq!(parse_probability("0.05"), Ok(0.05));
        assert_eq!(parse_probability("100%"), Ok(1.0));
        assert!(parse_probability("5").unwrap_err().contains("0.05"));
        assert!(parse_probability("x%").is_err());
        assert!(parse_probability("-1%").is_err());
        assert_eq!(parse_rate("8mbit"), Ok(8_000_000));
        assert_eq!(parse_rate("10kbit"), Ok(10_000));
        assert_eq!(parse_rate("1000000bit"), Ok(1_000_000));
        // A bare number would be bits to impair and packets to udpecho: refused.
        assert!(parse_rate("10").unwrap_err().contains("no unit"));
        assert!(parse_rate("1000pps").unwrap_err().contains("udpecho probe"));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_optional_rate("none"), Ok(None));
        assert_eq!(parse_optional_rate("0"), Ok(None));
        assert_eq!(parse_optional_rate("10kbit"), Ok(Some(10_000)));
    }

    #[test]
    fn settings_per_direction() {
        let p = |t| PerDirection::parse(t, parse_probability);
        assert_eq!(p("5%"), Ok(PerDirection::both(0.05)));
        assert_eq!(
            p("5%/0"),
            Ok(PerDirection {
                first: 0.05,
                second: 0.0
            })
        );
        assert_eq!(
            p("0/10%"),
            Ok(PerDirection {
                first: 0.0,
                second: 0.1
            })
        );
        assert!(p("5%/x").is_err());
        assert_eq!(
            PerDirection::parse("none/1kbit", parse_optional_rate),
            Ok(PerDirection {
                first: None,
                second: Some(1000)
            })
        );
        assert_eq!(
            PerDirection::parse("10ms/0s", protolab_transport::cli::parse_duration),
            Ok(PerDirection {
                first: ms(10),
                second: Duration::ZERO
            })
        );
    }

    #[test]
    fn knobs_go_to_their_direction() {
        let imp = PerDirection::from_knobs(
            PerDirection::parse("1%/2%", parse_probability).unwrap(),
            PerDirection::both(0.0),
            PerDirection::both(0.5),
            PerDirection {
                first: ms(3),
                second: ms(4),
            },
            PerDirection::both(Duration::ZERO),
            PerDirection {
                first: None,
                second: Some(8000),
            },
        );
        assert_eq!((imp.first.loss, imp.second.loss), (0.01, 0.02));
        assert_eq!((imp.first.reorder, imp.second.reorder), (0.5, 0.5));
        assert_eq!((imp.first.delay, imp.second.delay), (ms(3), ms(4)));
        assert_eq!(
            (imp.first.rate_bps, imp.second.rate_bps),
            (None, Some(8000))
        );
    }
}
