//! The server's per-flow state, without I/O: which sequence numbers each flow has delivered.
//!
//! A flow is named by the 32-bit flow id the probe chose. For each flow the server keeps a
//! window of the last [`WINDOW_BITS`] sequence numbers it received, the count of distinct
//! probes, and when it last heard from the flow. That is about 70 bytes a flow, and the table
//! is capped ([`FlowConfig::max_flows`]) and swept of idle flows, so memory stays flat however
//! many clients come and go. When the table is full of live flows a new flow is still echoed,
//! flagged [`FLAG_NO_STATE`], rather than evicting a live flow's counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wire::{FLAG_NO_STATE, FLAG_REPLY, ProbePacket, WireError};

/// Sequence numbers remembered per flow, to tell duplicates and fill the reply's window.
pub const WINDOW_BITS: u64 = 256;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// The longest probe echoed by default: a jumbo frame's payload.
pub const DEFAULT_MAX_SIZE: usize = 9_216;

/// Limits of the flow table.
#[derive(Debug, Clone)]
pub struct FlowConfig {
    /// Flows tracked at once.
    pub max_flows: usize,
    /// A flow silent for this long is forgotten.
    pub idle: Duration,
    /// Longest probe echoed: longer datagrams are counted as oversized and dropped.
    pub max_size: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_flows: 65_536,
            idle: Duration::from_secs(60),
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

/// What the server has counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerCounters {
    /// Valid probes echoed.
    pub probes: u64,
    /// Probes whose sequence number this flow had already delivered.
    pub duplicates: u64,
    /// Counter requests answered.
    pub stats_requests: u64,
    /// Probes echoed without per-flow state because the table was full.
    pub stateless: u64,
    /// Flows forgotten after being idle.
    pub flows_expired: u64,
    /// Datagrams shorter than the header.
    pub truncated: u64,
    /// Datagrams longer than the maximum probe.
    pub oversized: u64,
    /// Datagrams without the magic number.
    pub bad_magic: u64,
    /// Probes of another version.
    pub bad_version: u64,
    /// Probes with unknown flags, or already marked as replies (which would let two servers
    /// bounce a packet between them forever).
    pub bad_flags: u64,
}

impl ServerCounters {
    /// Adds `other`'s counts to these (the shards of one table, summed for the report).
    pub fn add(&mut self, other: &ServerCounters) {
        self.probes += other.probes;
        self.duplicates += other.duplicates;
        self.stats_requests += other.stats_requests;
        self.stateless += other.stateless;
        self.flows_expired += other.flows_expired;
        self.truncated += other.truncated;
        self.oversized += other.oversized;
        self.bad_magic += other.bad_magic;
        self.bad_version += other.bad_version;
        self.bad_flags += other.bad_flags;
    }

    /// All datagrams dropped as invalid.
    pub fn garbage(&self) -> u64 {
        self.truncated + self.oversized + self.bad_magic + self.bad_version + self.bad_flags
    }
}

#[derive(Debug)]
struct Flow {
    /// The highest sequence number received, if any. Kept as the number itself rather than
    /// "one more than it", so that every sequence number up to 2^64-1 fits with no overflow.
    highest: Option<u64>,
    bits: [u64; WORDS],
    count: u64,
    last_seen: Duration,
}

impl Flow {
    fn new(now: Duration) -> Self {
        Self {
            highest: None,
            bits: [0; WORDS],
            count: 0,
            last_seen: now,
        }
    }

    fn bit(&self, seq: u64) -> bool {
        let i = seq % WINDOW_BITS;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let i = seq % WINDOW_BITS;
        let word = &mut self.bits[(i / 64) as usize];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }

    /// Whether `seq` lies in the remembered window: at most `WINDOW_BITS - 1` below the highest.
    fn in_window(&self, seq: u64) -> bool {
        self.highest
            .is_some_and(|h| seq <= h && h - seq < WINDOW_BITS)
    }

    /// Records `seq`; returns false for a duplicate.
    fn receive(&mut self, seq: u64) -> bool {
        match self.highest {
            Some(h) if seq <= h => {
                if h - seq < WINDOW_BITS {
                    if self.bit(seq) {
                        return false;
                    }
                    self.set(seq, true);
                }
                // Older than the window: it cannot be told from a duplicate, so it counts as
                // new; a probe's packets are seldom reordered by more than a few hundred places.
            }
            highest => {
                // A new highest: forget the bits of the numbers skipped over, which the window
                // now covers but which never arrived. `seq > h` here, so `h + 1` cannot wrap.
                match highest {
                    Some(h) if seq - h <= WINDOW_BITS => {
                        for s in h + 1..seq {
                            self.set(s, false);
                        }
                    }
                    _ => self.bits = [0; WORDS],
                }
                self.set(seq, true);
                self.highest = Some(seq);
            }
        }
        self.count = self.count.saturating_add(1);
        true
    }

    /// Bit i: sequence number `seq - 1 - i` was received.
    fn window_below(&self, seq: u64) -> u64 {
        let mut w = 0u64;
        for i in 0..64u64 {
            let Some(s) = seq.checked_sub(1 + i) else {
                break;
            };
            if self.in_window(s) && self.bit(s) {
                w |= 1 << i;
            }
        }
        w
    }
}

/// The flow table and the server's counters.
#[derive(Debug, Default)]
pub struct FlowTable {
    cfg: FlowConfig,
    flows: HashMap<u32, Flow>,
    last_sweep: Duration,
    counters: ServerCounters,
    /// Flows held against `cfg.max_flows`: this table's own, or those of every shard of one
    /// [`FlowShards`], so that the cap holds for the server as a whole.
    live: Arc<AtomicUsize>,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Flows tracked right now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    fn sweep(&mut self, now: Duration) {
        self.last_sweep = now;
        let idle = self.cfg.idle;
        let before = self.flows.len();
        self.flows
            .retain(|_, f| now.saturating_sub(f.last_seen) < idle);
        let expired = before - self.flows.len();
        self.live.fetch_sub(expired, Ordering::Relaxed);
        self.counters.flows_expired += expired as u64;
    }

    /// Takes room for one more flow, if the cap leaves any.
    fn reserve(&self) -> bool {
        let max = self.cfg.max_flows;
        self.live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Handles one received datagram at `now` (the server's clock): on success returns the
    /// reply header to write over the datagram's first bytes; the reply keeps its length.
    ///
    /// # Errors
    /// Why the datagram is not a probe; it has been counted and gets no reply.
    pub fn handle(&mut self, now: Duration, datagram: &[u8]) -> Result<ProbePacket, WireError> {
        let parsed = if datagram.len() > self.cfg.max_size {
            Err(WireError::Oversized(datagram.len()))
        } else {
            ProbePacket::parse(datagram)
        };
        let mut p = match parsed {
            Ok(p) if p.is_reply() => Err(WireError::BadFlags(p.flags)),
            other => other,
        }
        .inspect_err(|e| {
            let c = &mut self.counters;
            match e {
                WireError::Truncated(_) => c.truncated += 1,
                WireError::Oversized(_) => c.oversized += 1,
                WireError::BadMagic => c.bad_magic += 1,
                WireError::BadVersion(_) => c.bad_version += 1,
                WireError::BadFlags(_) => c.bad_flags += 1,
            }
        })?;
        if now.saturating_sub(self.last_sweep) >= Duration::from_secs(1) {
            self.sweep(now);
        }
        p.server_recv_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        // NO_STATE is the server's word about itself: a request that carries it (a client's
        // bug or a forgery) must not make a reply with real counts say "no state".
        p.flags = (p.flags & !FLAG_NO_STATE) | FLAG_REPLY;
        if p.is_stats() {
            self.counters.stats_requests += 1;
            match self.flows.get_mut(&p.flow) {
                Some(flow) => {
                    flow.last_seen = now;
                    p.server_count = flow.count;
                    p.window = flow.window_below(p.seq);
                }
                None => p.flags |= FLAG_NO_STATE,
            }
            return Ok(p);
        }
        self.counters.probes += 1;
        if !self.flows.contains_key(&p.flow) && !self.reserve() {
            // Full: a sweep may free room, but at most ten times a second, so a flood of new
            // flow ids costs no more than that.
            if now.saturating_sub(self.last_sweep) >= Duration::from_millis(100) {
                self.sweep(now);
            }
            if !self.reserve() {
                self.counters.stateless += 1;
                p.flags |= FLAG_NO_STATE;
                p.server_count = 0;
                p.window = 0;
                return Ok(p);
            }
        }
        let flow = self.flows.entry(p.flow).or_insert_with(|| Flow::new(now));
        flow.last_seen = now;
        if !flow.receive(p.seq) {
            self.counters.duplicates += 1;
        }
        p.server_count = flow.count;
        p.window = flow.window_below(p.seq);
        Ok(p)
    }
}

/// Shards of a [`FlowShards`] table: enough that two workers seldom want the same one.
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// The flow table of a server with several workers: [`SHARDS`] [`FlowTable`]s, each behind its
/// own lock, a flow always in the same one (chosen by a hash of its flow id).
///
/// Workers lock only the shard of the datagram in hand, for as long as it is handled, so they
/// run side by side instead of one at a time. A flow's probes still update its state in the
/// order they are handled, and a flow's datagrams come through one worker (the kernel hashes
/// the flow's addresses to one socket of the group), so its replies keep their order. The cap
/// holds for the table as a whole: every shard reserves its new flows against one shared count
/// of `max_flows`, and when that is reached all shards are swept for idle flows before a new
/// flow is told `NO_STATE`, as one table would be.
#[derive(Debug)]
pub struct FlowShards {
    shards: Box<[Shard]>,
    live: Arc<AtomicUsize>,
    max_flows: usize,
    /// When all shards were last swept, in nanoseconds of the server's clock.
    last_sweep_ns: AtomicU64,
}

/// One shard, alone on its cache lines: two workers locking neighbouring shards would
/// otherwise write to one line and slow each other down.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(Mutex<FlowTable>);

impl FlowShards {
    pub fn new(cfg: FlowConfig) -> Self {
        let live = Arc::new(AtomicUsize::new(0));
        let max_flows = cfg.max_flows;
        let shards = (0..SHARDS)
            .map(|_| {
                Shard(Mutex::new(FlowTable {
                    live: live.clone(),
                    ..FlowTable::new(cfg.clone())
                }))
            })
            .collect();
        Self {
            shards,
            live,
            max_flows,
            last_sweep_ns: AtomicU64::new(0),
        }
    }

    /// The shard of a datagram: by its flow id (bytes 8 to 11), so that a flow's probes and
    /// its counters requests meet in one table. Anything shorter goes to the first shard,
    /// which counts it as garbage like any other.
    fn shard_of(datagram: &[u8]) -> usize {
        let Some(id) = datagram.get(8..12) else {
            return 0;
        };
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        // Fibonacci hashing: flow ids that differ only in their low bits spread out too.
        (id.wrapping_mul(0x9e37_79b9) >> (32 - SHARD_BITS)) as usize
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, FlowTable> {
        self.shards[i]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sweeps every shard of idle flows when it is due: every second, and every 100 ms while
    /// the table is full. A shard no datagram reaches would otherwise keep its idle flows, and
    /// their room, for ever. The shards are swept one at a time, so the caller must hold none.
    fn sweep_if_due(&self, now: Duration) {
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let last = self.last_sweep_ns.load(Ordering::Relaxed);
        let since = now_ns.saturating_sub(last);
        let due = since >= 1_000_000_000
            || (since >= 100_000_000 && self.live.load(Ordering::Relaxed) >= self.max_flows);
        // One worker sweeps; the others go on with their datagrams.
        if due
            && self
                .last_sweep_ns
                .compare_exchange(last, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for i in 0..self.shards.len() {
                self.lock(i).sweep(now);
            }
        }
    }

    /// Runs `f` on the shard that holds `datagram`'s flow, at `now` (the server's clock),
    /// after the sweep of every shard if one is due.
    pub fn with_shard<T>(
        &self,
        now: Duration,
        datagram: &[u8],
        f: impl FnOnce(&mut FlowTable) -> T,
    ) -> T {
        self.sweep_if_due(now);
        f(&mut self.lock(Self::shard_of(datagram)))
    }

    /// For a batch of datagrams handled at `now`: sweeps if due, then hands out the shard of
    /// each datagram in turn, keeping a shard's lock while consecutive datagrams belong to it
    /// (a socket's batch is often one flow's), and never holding two.
    pub fn batch(&self, now: Duration) -> ShardCursor<'_> {
        self.sweep_if_due(now);
        ShardCursor {
            shards: self,
            held: None,
        }
    }

    /// Flows tracked right now, in all shards.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters of all shards, added up.
    pub fn counters(&self) -> ServerCounters {
        (0..self.shards.len()).fold(ServerCounters::default(), |mut sum, i| {
            sum.add(self.lock(i).counters());
            sum
        })
    }
}

/// The shards of a [`FlowShards`] handed out one at a time to a batch (see
/// [`FlowShards::batch`]); drop it before anything that may wait, such as sending.
#[derive(Debug)]
pub struct ShardCursor<'a> {
    shards: &'a FlowShards,
    held: Option<(usize, std::sync::MutexGuard<'a, FlowTable>)>,
}

impl ShardCursor<'_> {
    /// The table that holds `datagram`'s flow, locked until a datagram of another shard comes
    /// or the cursor is dropped.
    pub fn table(&mut self, datagram: &[u8]) -> &mut FlowTable {
        let i = FlowShards::shard_of(datagram);
        if self.held.as_ref().is_some_and(|(j, _)| *j != i) {
            // Released before the next is taken: two held locks could deadlock two workers.
            self.held = None;
        }
        let shards = self.shards;
        let (_, guard) = self.held.get_or_insert_with(|| (i, shards.lock(i)));
        guard
    }
}

/// The reply flag check a client makes: a stats reply for `flow`.
pub fn is_stats_reply(p: &ProbePacket, flow: u32) -> bool {
    p.is_reply() && p.is_stats() && p.flow == flow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(flow: u32, seq: u64) -> Vec<u8> {
        ProbePacket {
            flow,
            seq,
            ..ProbePacket::default()
        }
        .to_vec(64)
    }

    fn t(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn counts_distinct_and_duplicates_and_fills_the_window() {
        let mut table = FlowTable::new(FlowConfig::default());
        for seq in [0, 1, 3, 3, 2] {
            table.handle(t(1), &probe(7, seq)).unwrap();
        }
        let r = table.handle(t(2), &probe(7, 5)).unwrap();
        assert!(r.is_reply() && r.has_state());
        assert_eq!(r.server_count, 5);
        assert_eq!(r.server_recv_ns, 2_000_000);
        // Below 5: 4 missing, then 3, 2, 1, 0 received.
        assert_eq!(r.window, 0b11110);
        assert_eq!(table.counters().duplicates, 1);
        assert_eq!(table.counters().probes, 6);

        let mut stats = ProbePacket::parse(&probe(7, 6)).unwrap();
        stats.flags = crate::wire::FLAG_STATS;
        let r = table.handle(t(3), &stats.to_vec(56)).unwrap();
        assert!(is_stats_reply(&r, 7));
        assert_eq!(r.server_count, 5);
        assert_eq!(r.window, 0b111101);
        assert_eq!(table.counters().probes, 6, "a stats request is not a probe");

        stats.flow = 8;
        let r = table.handle(t(3), &stats.to_vec(56)).unwrap();
        assert!(!r.has_state());
    }

    #[test]
    fn a_request_saying_no_state_gets_the_servers_own_word() {
        let mut table = FlowTable::new(FlowConfig::default());
        let mut p = ProbePacket::parse(&probe(9, 0)).unwrap();
        p.flags = FLAG_NO_STATE;
        let r = table.handle(t(1), &p.to_vec(56)).unwrap();
        assert!(r.has_state(), "the server keeps this flow: {r:?}");
        assert_eq!(r.server_count, 1);
    }

    #[test]
    fn garbage_is_counted_and_replies_are_not_echoed() {
        let mut table = FlowTable::new(FlowConfig::default());
        assert!(table.handle(t(0), b"GET / HTTP/1.0\r\n\r\n").is_err());
        assert!(table.handle(t(0), &probe(1, 0)[..40]).is_err());
        let mut v2 = probe(1, 0);
        v2[4] = 2;
        assert!(table.handle(t(0), &v2).is_err());
        let mut reply = probe(1, 0);
        reply[5] = FLAG_REPLY;
        assert!(table.handle(t(0), &reply).is_err());
        let mut big = probe(1, 0);
        big.resize(DEFAULT_MAX_SIZE + 1, 0);
        assert!(table.handle(t(0), &big).is_err());
        big.truncate(DEFAULT_MAX_SIZE);
        assert!(table.handle(t(0), &big).is_ok());
        let c = table.counters();
        assert_eq!(
            (c.bad_magic, c.truncated, c.bad_version, c.bad_flags),
            (1, 1, 1, 1)
        );
        assert_eq!(c.oversized, 1);
        assert_eq!(c.garbage(), 5);
        assert_eq!(c.probes, 1);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn the_table_is_bounded_and_idle_flows_expire() {
        let mut table = FlowTable::new(FlowConfig {
            max_flows: 2,
            idle: Duration::from_secs(5),
            ..FlowConfig::default()
        });
        table.handle(t(0), &probe(1, 0)).unwrap();
        table.handle(t(0), &probe(2, 0)).unwrap();
        let r = table.handle(t(0), &probe(3, 0)).unwrap();
        assert!(!r.has_state());
        assert_eq!(table.len(), 2);
        assert_eq!(table.counters().stateless, 1);
        // Flow 2 keeps talking; flow 1 goes idle and is swept.
        table.handle(t(4000), &probe(2, 1)).unwrap();
        let r = table.handle(t(6000), &probe(3, 0)).unwrap();
        assert!(r.has_state());
        assert_eq!(table.counters().flows_expired, 1);
        assert_eq!(table.len(), 2);
    }

    /// A probe of flow 1 with sequence number 2^64-1, written out byte by byte.
    const LAST_SEQ: [u8; 56] = [
        b'P', b'L', b'U', b'E', 1, 0, 0, 0, // magic, version, flags, reserved
        0, 0, 0, 1, 0, 0, 0, 0, // flow 1, reserved
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // seq 2^64-1
        0, 0, 0, 0, 0, 0, 0, 0, // client send time
        0, 0, 0, 0, 0, 0, 0, 0, // server fields empty in a request
        0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, //
    ];

    #[test]
    fn the_last_sequence_number_is_a_sequence_number_like_any_other() {
        let mut table = FlowTable::new(FlowConfig::default());
        let mut below = LAST_SEQ;
        below[23] = 0xfd; // 2^64-3
        table.handle(t(0), &below).unwrap();
        let r = table.handle(t(0), &LAST_SEQ).unwrap();
        assert_eq!((r.seq, r.server_count), (u64::MAX, 2));
        assert_eq!(r.window, 0b10, "2^64-2 missing, 2^64-3 received");
        let r = table.handle(t(0), &LAST_SEQ).unwrap();
        assert_eq!(r.server_count, 2);
        assert_eq!(table.counters().duplicates, 1);
        // The missing one still fills its place in the window.
        let mut gap = LAST_SEQ;
        gap[23] = 0xfe;
        let r = table.handle(t(0), &gap).unwrap();
        assert_eq!((r.server_count, r.window), (3, 0b1));
        let r = table.handle(t(0), &LAST_SEQ).unwrap();
        assert_eq!((r.server_count, r.window), (3, 0b11));
        // Zero after the top: far older than the window, so it counts (as any such probe).
        let r = table.handle(t(0), &probe(1, 0)).unwrap();
        assert_eq!((r.server_count, r.window), (4, 0));
        assert_eq!(table.counters().duplicates, 2);
    }

    #[test]
    fn jumps_to_the_top_of_the_range_and_back() {
        let mut table = FlowTable::new(FlowConfig::default());
        table.handle(t(0), &probe(1, 5)).unwrap();
        // From 5 straight to 2^64-1: the window is cleared, no bit of 5 is taken for a neighbour.
        let r = table.handle(t(0), &LAST_SEQ).unwrap();
        assert_eq!((r.server_count, r.window), (2, 0));
        // 2^64-1 - 255 is the oldest number the window still remembers.
        let edge = u64::MAX - (WINDOW_BITS - 1);
        let r = table.handle(t(0), &probe(1, edge)).unwrap();
        assert_eq!(r.server_count, 3);
        let r = table.handle(t(0), &probe(1, edge)).unwrap();
        assert_eq!(
            r.server_count, 3,
            "a duplicate at the window's edge is known"
        );
        // One below it is beyond the window: counted, as it cannot be told from a new one.
        let r = table.handle(t(0), &probe(1, edge - 1)).unwrap();
        assert_eq!(r.server_count, 4);
        let mut stats = ProbePacket::parse(&LAST_SEQ).unwrap();
        stats.flags = crate::wire::FLAG_STATS;
        let r = table.handle(t(0), &stats.to_vec(56)).unwrap();
        assert_eq!((r.server_count, r.window), (4, 0));
    }

    #[test]
    fn a_jump_beyond_the_window_forgets_old_bits() {
        let mut table = FlowTable::new(FlowConfig::default());
        table.handle(t(0), &probe(1, 0)).unwrap();
        let r = table.handle(t(0), &probe(1, 5000)).unwrap();
        assert_eq!(r.server_count, 2);
        assert_eq!(r.window, 0);
        // Far older than the window: counted, since it cannot be told from a new one.
        let r = table.handle(t(0), &probe(1, 0)).unwrap();
        assert_eq!(r.server_count, 3);
    }

    #[test]
    fn shards_share_one_cap_and_sweep_each_other() {
        let shards = FlowShards::new(FlowConfig {
            max_flows: 2,
            idle: Duration::from_secs(5),
            ..FlowConfig::default()
        });
        // Three flows in three different shards.
        let mut ids: Vec<u32> = Vec::new();
        for id in 0u32.. {
            let shard = FlowShards::shard_of(&probe(id, 0));
            if ids
                .iter()
                .all(|&i| FlowShards::shard_of(&probe(i, 0)) != shard)
            {
                ids.push(id);
            }
            if ids.len() == 3 {
                break;
            }
        }
        let [a, b, c] = [ids[0], ids[1], ids[2]];
        let handle = |ms: u64, flow: u32, seq: u64| {
            let d = probe(flow, seq);
            shards
                .with_shard(t(ms), &d, |table| table.handle(t(ms), &d))
                .unwrap()
        };
        assert!(handle(0, a, 0).has_state());
        assert!(handle(0, b, 0).has_state());
        assert!(
            !handle(0, c, 0).has_state(),
            "the cap is the table's, not a shard's"
        );
        assert_eq!(shards.len(), 2);
        // b keeps talking; a goes idle in a shard no datagram reaches any more: the sweep of
        // every shard frees its room for c.
        handle(4000, b, 1);
        assert!(handle(6000, c, 1).has_state());
        assert_eq!(shards.len(), 2);
        let counters = shards.counters();
        assert_eq!(
            (counters.probes, counters.stateless, counters.flows_expired),
            (5, 1, 1)
        );
    }

    #[test]
    fn workers_on_many_shards_keep_the_cap_and_every_count() {
        let shards = FlowShards::new(FlowConfig {
            max_flows: 100,
            ..FlowConfig::default()
        });
        std::thread::scope(|s| {
            for worker in 0..4u32 {
                let shards = &shards;
                s.spawn(move || {
                    for flow in 0..100 {
                        let d = probe(worker * 1000 + flow, 0);
                        shards.with_shard(t(0), &d, |table| table.handle(t(0), &d).unwrap());
                        shards.with_shard(t(0), &d, |table| table.handle(t(0), &d).unwrap());
                    }
                });
            }
        });
        assert_eq!(
            shards.len(),
            100,
            "exactly the cap, however the flows raced"
        );
        let c = shards.counters();
        assert_eq!((c.probes, c.stateless), (800, 600));
        assert_eq!(
            c.duplicates, 100,
            "the second probe of each flow with state"
        );
    }

    #[test]
    fn a_batch_cursor_counts_as_datagram_by_datagram_does() {
        let shards = FlowShards::new(FlowConfig::default());
        let one_by_one = FlowShards::new(FlowConfig::default());
        let datagrams: Vec<Vec<u8>> = [(1, 0), (1, 1), (2, 0), (1, 1), (3, 0), (2, 1)]
            .iter()
            .map(|&(flow, seq)| probe(flow, seq))
            .chain([b"garbage".to_vec()])
            .collect();
        let mut cursor = shards.batch(t(0));
        let batched: Vec<_> = datagrams
            .iter()
            .map(|d| cursor.table(d).handle(t(0), d).map(|p| p.server_count))
            .collect();
        drop(cursor);
        let single: Vec<_> = datagrams
            .iter()
            .map(|d| {
                one_by_one
                    .with_shard(t(0), d, |table| table.handle(t(0), d))
                    .map(|p| p.server_count)
            })
            .collect();
        assert_eq!(batched, single);
        assert_eq!(shards.counters(), one_by_one.counters());
        assert_eq!(shards.counters().duplicates, 1);
        assert_eq!(shards.len(), 3);
    }
}
