//! The resolver's cache: whole replies stored as wire bytes, served with the id and TTLs
//! patched in place.
//!
//! - Positive answers live as long as their smallest TTL; the TTLs served count down with the
//!   time spent in the cache (RFC 1035 section 7.4, RFC 2181 section 8).
//! - Negative answers (NXDOMAIN, and NODATA: NOERROR without an answer) live as long as the
//!   smaller of the SOA's TTL and its MINIMUM field, and are only cached when the SOA came
//!   with them (RFC 2308 section 5).
//! - The cache is bounded in bytes: each entry is accounted at its wire bytes, TTL table, key
//!   (held by the map and by up to two slots of the recency queue) and a fixed overhead for the
//!   allocations and table slots around them ([`Cache::cost`]). When a new entry does not fit,
//!   the least recently used go first (an expired one is dropped as soon as it reaches the
//!   front); an entry larger than the whole cache is not stored.
//!
//! A hit costs one hash lookup, one copy of the stored bytes, a few 4-byte writes and a small
//! push onto the recency queue: no decoding. Time is passed in by the caller, so tests drive it without sleeping.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::wire::{self, QueryView, flags};

/// The longest any entry is kept, whatever its TTL says (one day, as unbound's default).
pub const MAX_TTL: u32 = 86_400;

/// One stored reply.
#[derive(Debug, Clone)]
struct Entry {
    /// The reply without OPT record, with id 0.
    wire: Vec<u8>,
    /// Offset and original value of each record's TTL.
    ttls: Vec<(usize, u32)>,
    stored: Instant,
    lifetime: u32,
    /// The last insertion or hit, to tell an entry's live recency-queue slot from stale ones.
    generation: u64,
    /// What this entry is accounted at, in bytes.
    cost: usize,
}

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub inserted: u64,
    pub negative_inserted: u64,
    pub evicted: u64,
    pub expired: u64,
    /// Replies larger than the whole cache, not stored.
    pub too_big: u64,
    pub entries: usize,
    /// Bytes accounted to the entries held, never above `max_bytes`.
    pub bytes: usize,
    pub max_bytes: usize,
}

/// A reply cache bounded in bytes, least recently used evicted first.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Vec<u8>, Entry>,
    /// Keys from least to most recently used. A hit pushes a new slot instead of moving the old
    /// one; slots whose generation is not their entry's are stale and skipped, and swept when
    /// they outnumber the entries (so at most two slots per entry, plus a few).
    order: VecDeque<(Vec<u8>, u64)>,
    max_bytes: usize,
    bytes: usize,
    next_generation: u64,
    stats: CacheStats,
}

/// Bytes accounted to an entry beyond its wire bytes, TTL table and keys: the map slot (key
/// and entry headers at the table's load factor), two recency-queue slots, and the allocator's
/// headers of the four allocations. Generous on purpose: the bound is on what is accounted, so
/// accounting less than is used would let the real memory pass it.
const ENTRY_OVERHEAD: usize = 2 * std::mem::size_of::<(Vec<u8>, Entry)>()
    + 2 * 2 * std::mem::size_of::<(Vec<u8>, u64)>()
    + 4 * 16;

/// What kind of reply was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Positive {
        ttl: u32,
    },
    Negative {
        ttl: u32,
    },
    /// Not cacheable: an error code, a zero TTL, or a negative answer without SOA.
    No,
}

impl Cache {
    /// A cache accounting at most `max_bytes` to its entries (0 stores nothing).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max_bytes,
            bytes: 0,
            next_generation: 0,
            stats: CacheStats::default(),
        }
    }

    /// What an entry with these parts is accounted at: its wire bytes, its TTL table, its key
    /// three times (the map's and two queue slots'), and [`ENTRY_OVERHEAD`].
    pub fn cost(key_len: usize, wire_len: usize, ttl_count: usize) -> usize {
        wire_len + ttl_count * std::mem::size_of::<(usize, u32)>() + 3 * key_len + ENTRY_OVERHEAD
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            max_bytes: self.max_bytes,
            ..self.stats
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.cost;
        }
    }

    /// Makes the entry under `key` the most recently used.
    fn touch(&mut self, key: Vec<u8>) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.generation = generation;
        self.order.push_back((key, generation));
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// Answers `query` from the cache at time `now`, as wire bytes ready to send over a
    /// transport carrying at most `limit` bytes, or `None` on a miss.
    pub fn lookup(&mut self, query: &QueryView<'_>, now: Instant, limit: usize) -> Option<Vec<u8>> {
        let mut buf = [0u8; wire::MAX_QUESTION];
        let key = query.cache_key_in(&mut buf);
        let Some(entry) = self.entries.get(key) else {
            self.stats.misses += 1;
            return None;
        };
        let age = now.saturating_duration_since(entry.stored).as_secs();
        if age >= u64::from(entry.lifetime) {
            let key = key.to_vec();
            self.remove(&key);
            self.stats.expired += 1;
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        let reply = render(entry, query, age as u32, limit);
        self.touch(key.to_vec());
        Some(reply)
    }

    /// Like [`Cache::lookup`], but counts nothing and changes nothing: for a reply just
    /// stored, or a waiter answered from a merged upstream query, which were already counted
    /// as misses when they were asked.
    pub fn peek(&self, query: &QueryView<'_>, now: Instant, limit: usize) -> Option<Vec<u8>> {
        let mut buf = [0u8; wire::MAX_QUESTION];
        let entry = self.entries.get(query.cache_key_in(&mut buf))?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        (age < u64::from(entry.lifetime)).then(|| render(entry, query, age as u32, limit))
    }

    /// Stores `reply` (an upstream's answer to the question `key`) at time `now`.
    pub fn insert(&mut self, key: Vec<u8>, reply: &Message, now: Instant) -> Stored {
        let Some((wire, lifetime, negative)) = cacheable(reply) else {
            return Stored::No;
        };
        self.store(key, wire, lifetime, negative, now)
    }

    /// Stores a reply as it came from upstream, in wire form, without decoding it: the header
    /// is rewritten, the OPT record dropped and, for a negative answer, the SOA's TTL capped at
    /// its MINIMUM, all in place. A reply of unusual shape (an OPT record before other
    /// records, an extended response code) is decoded and stored through [`Cache::insert`];
    /// one that does not decode is not stored.
    pub fn insert_wire(&mut self, key: Vec<u8>, reply: &[u8], now: Instant) -> Stored {
        match cacheable_wire(reply) {
            Wire::Store(wire, lifetime, negative) => self.store(key, wire, lifetime, negative, now),
            Wire::No => Stored::No,
            Wire::Unusual => match Message::from_vec(reply) {
                Ok(m) => self.insert(key, &m, now),
                Err(_) => Stored::No,
            },
        }
    }

    fn store(
        &mut self,
        key: Vec<u8>,
        wire: Vec<u8>,
        lifetime: u32,
        negative: bool,
        now: Instant,
    ) -> Stored {
        let Ok(ttls) = wire::ttl_positions(&wire) else {
            return Stored::No;
        };
        let cost = Self::cost(key.len(), wire.len(), ttls.len());
        self.remove(&key);
        if cost > self.max_bytes {
            self.stats.too_big += 1;
            return Stored::No;
        }
        while self.bytes + cost > self.max_bytes && !self.entries.is_empty() {
            self.evict_one(now);
        }
        self.entries.insert(
            key.clone(),
            Entry {
                wire,
                ttls,
                stored: now,
                lifetime,
                generation: 0,
                cost,
            },
        );
        self.bytes += cost;
        self.touch(key);
        self.stats.inserted += 1;
        if negative {
            self.stats.negative_inserted += 1;
            Stored::Negative { ttl: lifetime }
        } else {
            Stored::Positive { ttl: lifetime }
        }
    }

    /// Removes the least recently used entry (counted as expired if its time was up).
    fn evict_one(&mut self, now: Instant) {
        while let Some((key, generation)) = self.order.pop_front() {
            let live = self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation);
            if live {
                let e = &self.entries[&key];
                if now.saturating_duration_since(e.stored)
                    >= Duration::from_secs(u64::from(e.lifetime))
                {
                    self.stats.expired += 1;
                } else {
                    self.stats.evicted += 1;
                }
                self.remove(&key);
                return;
            }
        }
        // The queue always holds every live key; reaching here means the map is empty.
    }
}

/// What [`cacheable_wire`] made of a reply.
enum Wire {
    /// The stored form, its lifetime, and whether it is negative.
    Store(Vec<u8>, u32, bool),
    /// Must not be cached.
    No,
    /// Decode it and ask [`cacheable`].
    Unusual,
}

/// The stored form of a reply in wire form, as [`cacheable`] builds it from a message: a
/// response with id 0, QR RD RA and the code, no OPT record, and for a negative answer the
/// SOA's TTL capped at its MINIMUM.
fn cacheable_wire(reply: &[u8]) -> Wire {
    let Ok(head) = wire::walk_message(reply) else {
        return Wire::No;
    };
    if head.flags & flags::TC != 0 || head.qdcount != 1 || head.question.is_empty() {
        return Wire::No;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([reply[at], reply[at + 1]]));
    let (ancount, nscount, arcount) = (count(6), count(8), count(10));
    let rcode = ResponseCode::from(0, (head.flags & flags::RCODE) as u8);
    let negative = match rcode {
        ResponseCode::NXDomain => true,
        ResponseCode::NoError => ancount == 0,
        _ => return Wire::No,
    };
    // Each record: where it starts, its type, where its TTL and RDATA sit, its RDATA length.
    let mut pos = wire::HEADER_LEN + head.question.len();
    let mut min_ttl = u32::MAX;
    let mut soa: Option<(usize, u32, u32)> = None;
    let mut opt_at = None;
    for i in 0..ancount + nscount + arcount {
        let start = pos;
        let Ok(end) = wire::skip_name(reply, pos) else {
            return Wire::No;
        };
        // walk_message checked every record fits.
        let field = |at: usize| u16::from_be_bytes([reply[at], reply[at + 1]]);
        let rtype = field(end);
        let ttl = u32::from_be_bytes([
            reply[end + 4],
            reply[end + 5],
            reply[end + 6],
            reply[end + 7],
        ]);
        let rdlen = usize::from(field(end + 8));
        pos = end + 10 + rdlen;
        if rtype == u16::from(RecordType::OPT) {
            // An extended code needs the OPT record's upper bits: leave it to the decoder.
            if i + 1 != ancount + nscount + arcount || reply[end + 4] != 0 {
                return Wire::Unusual;
            }
            opt_at = Some(start);
            continue;
        }
        min_ttl = min_ttl.min(ttl);
        let in_authority = i >= ancount && i < ancount + nscount;
        if in_authority && rtype == u16::from(RecordType::SOA) && soa.is_none() && rdlen >= 20 {
            let m = pos - 4;
            let minimum = u32::from_be_bytes([reply[m], reply[m + 1], reply[m + 2], reply[m + 3]]);
            soa = Some((end + 4, ttl, minimum));
        }
    }
    let lifetime = if negative {
        let Some((_, ttl, minimum)) = soa else {
            return Wire::No;
        };
        ttl.min(minimum)
    } else if min_ttl == u32::MAX {
        return Wire::No;
    } else {
        min_ttl
    };
    let lifetime = lifetime.min(MAX_TTL);
    if lifetime == 0 {
        return Wire::No;
    }
    let mut out = reply[..opt_at.unwrap_or(pos)].to_vec();
    out[..2].copy_from_slice(&[0, 0]);
    let f = flags::QR | flags::RD | flags::RA | u16::from(rcode.low());
    out[2..4].copy_from_slice(&f.to_be_bytes());
    if opt_at.is_some() {
        out[10..12].copy_from_slice(&((arcount - 1) as u16).to_be_bytes());
    }
    if negative && let Some((ttl_at, ttl, minimum)) = soa {
        out[ttl_at..ttl_at + 4].copy_from_slice(&ttl.min(minimum).to_be_bytes());
    }
    Wire::Store(out, lifetime, negative)
}

/// Builds the stored form of a reply: a clean response without OPT, its lifetime, and
/// whether it is negative. `None` when it must not be cached.
fn cacheable(reply: &Message) -> Option<(Vec<u8>, u32, bool)> {
    let rcode = reply.metadata.response_code;
    if reply.metadata.truncation || reply.queries.len() != 1 {
        return None;
    }
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    m.queries = reply.queries.clone();
    m.answers = reply.answers.clone();
    m.authorities = reply.authorities.clone();
    m.additionals = reply
        .additionals
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .cloned()
        .collect();
    let negative = match rcode {
        ResponseCode::NXDomain => true,
        ResponseCode::NoError => m.answers.is_empty(),
        _ => return None,
    };
    let lifetime = if negative {
        let soa = m
            .authorities
            .iter_mut()
            .find(|r| r.record_type() == RecordType::SOA)?;
        let minimum = match &soa.data {
            RData::SOA(s) => s.minimum,
            _ => return None,
        };
        soa.ttl = soa.ttl.min(minimum);
        soa.ttl
    } else {
        m.answers
            .iter()
            .chain(&m.authorities)
            .chain(&m.additionals)
            .map(|r| r.ttl)
            .min()?
    };
    let lifetime = lifetime.min(MAX_TTL);
    if lifetime == 0 {
        return None;
    }
    let wire = m.to_vec().ok()?;
    Some((wire, lifetime, negative))
}

/// Turns a stored entry into the reply to `query`.
fn render(entry: &Entry, query: &QueryView<'_>, age: u32, limit: usize) -> Vec<u8> {
    let opt = query.edns.is_some();
    if entry.wire.len() + if opt { 11 } else { 0 } > limit {
        return wire::bare_reply(query, flags::TC | flags::RA, ResponseCode::NoError);
    }
    let mut out = Vec::with_capacity(entry.wire.len() + 11);
    out.extend_from_slice(&entry.wire);
    out[..2].copy_from_slice(&query.id.to_be_bytes());
    // RD and CD are copied from the query (RFC 1035 section 4.1.1, RFC 4035 section 3.2.2).
    let stored = u16::from_be_bytes([out[2], out[3]]);
    let f = (stored & !(flags::RD | flags::CD)) | (query.flags & (flags::RD | flags::CD));
    out[2..4].copy_from_slice(&f.to_be_bytes());
    // The question is echoed exactly as asked: the stored one differs at most in letter case,
    // so it has the same length, and clients using 0x20 mixed case (RFC draft) see their own.
    let qlen = query.question.len();
    if out.len() >= wire::HEADER_LEN + qlen {
        out[wire::HEADER_LEN..wire::HEADER_LEN + qlen].copy_from_slice(query.question);
    }
    for &(pos, ttl) in &entry.ttls {
        out[pos..pos + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
    }
    if opt {
        out.extend_from_slice(&wire::opt_record());
        let ar = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
        out[10..12].copy_from_slice(&ar.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{build_query, parse_query};
    use crate::zone::{Catalog, Zone};
    use hickory_proto::rr::Name;

    const ZONE: &str = "$ORIGIN example.test.
$TTL 3600
@    IN SOA ns1 admin 1 7200 3600 1209600 300
@    IN NS  ns1
ns1  IN A   127.0.0.1
www  60 IN A   192.0.2.10
big  IN TXT \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\" \"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\"
";

    fn upstream(name: &str, qtype: RecordType) -> Message {
        let catalog = Catalog::new(vec![Zone::parse(ZONE, "z", None).unwrap()]);
        catalog.respond(&build_query(
            99,
            &Name::from_ascii(name).unwrap(),
            qtype,
            false,
            false,
        ))
    }

    fn query_bytes(id: u16, name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        build_query(id, &Name::from_ascii(name).unwrap(), qtype, true, edns)
            .to_vec()
            .unwrap()
    }

    #[test]
    fn wire_insert_serves_what_the_decoded_insert_serves() {
        let now = Instant::now();
        for (name, qtype, opt) in [
            ("www.example.test.", RecordType::A, true),
            ("www.example.test.", RecordType::A, false),
            ("nope.example.test.", RecordType::A, true),
            ("www.example.test.", RecordType::MX, true),
            ("example.test.", RecordType::NS, false),
        ] {
            let mut m = upstream(name, qtype);
            if opt {
                let mut e = hickory_proto::op::Edns::new();
                e.set_max_payload(1232);
                m.set_edns(e);
            }
            let bytes = m.to_vec().unwrap();
            let q = build_query(7, &Name::from_ascii(name).unwrap(), qtype, true, true)
                .to_vec()
                .unwrap();
            let view = parse_query(&q).unwrap();
            let (mut a, mut b) = (Cache::new(1 << 20), Cache::new(1 << 20));
            let sa = a.insert(view.cache_key(), &m, now);
            let sb = b.insert_wire(view.cache_key(), &bytes, now);
            assert_eq!(sa, sb, "{name} {qtype}");
            let later = now + Duration::from_secs(5);
            let ra = a
                .lookup(&view, later, 1232)
                .map(|r| Message::from_vec(&r).unwrap());
            let rb = b
                .lookup(&view, later, 1232)
                .map(|r| Message::from_vec(&r).unwrap());
            let (Some(ra), Some(rb)) = (ra, rb) else {
                panic!("{name} {qtype}: both stored");
            };
            assert_eq!(ra.metadata, rb.metadata, "{name} {qtype}");
            assert_eq!(ra.queries, rb.queries);
            assert_eq!(ra.answers, rb.answers);
            assert_eq!(ra.authorities, rb.authorities);
            assert_eq!(ra.additionals, rb.additionals);
            assert_eq!(ra.edns.is_some(), rb.edns.is_some());
        }
        // Not cached either way: SERVFAIL, and a truncated reply.
        let mut m = upstream("www.example.test.", RecordType::A);
        m.metadata.response_code = ResponseCode::ServFail;
        let mut c = Cache::new(1 << 20);
        assert_eq!(
            c.insert_wire(b"k".to_vec(), &m.to_vec().unwrap(), now),
            Stored::No
        );
        let mut m = upstream("www.example.test.", RecordType::A);
        m.metadata.truncation = true;
        assert_eq!(
            c.insert_wire(b"k".to_vec(), &m.to_vec().unwrap(), now),
            Stored::No
        );
        // Garbage and every cut of a reply: nothing stored, no panic.
        let bytes = upstream("nope.example.test.", RecordType::A)
            .to_vec()
            .unwrap();
        for n in 0..bytes.len() {
            assert_eq!(c.insert_wire(b"k".to_vec(), &bytes[..n], now), Stored::No);
        }
    }

    #[test]
    fn hit_patches_id_question_case_and_counts_ttl_down() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20);
        let q = query_bytes(1, "www.example.test.", RecordType::A, false);
        let view = parse_query(&q).unwrap();
        assert_eq!(cache.lookup(&view, t0, 512), None);
        let stored = cache.insert(
            view.cache_key(),
            &upstream("www.example.test.", RecordType::A),
            t0,
        );
        assert_eq!(stored, Stored::Positive { ttl: 60 });

        let q2 = query_bytes(0xbeef, "WWW.Example.TEST.", RecordType::A, true);
        let view2 = parse_query(&q2).unwrap();
        let bytes = cache
            .lookup(&view2, t0 + Duration::from_secs(25), 1232)
            .unwrap();
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(reply.metadata.id, 0xbeef);
        assert!(reply.metadata.recursion_available);
        assert!(reply.edns.is_some());
        assert_eq!(reply.queries[0].name().to_ascii(), "WWW.Example.TEST.");
        assert_eq!(reply.answers[0].ttl, 35);
        assert_eq!(cache.stats().hits, 1);

        // At the end of its lifetime the entry is gone.
        assert_eq!(
            cache.lookup(&view2, t0 + Duration::from_secs(60), 1232),
            None
        );
        assert_eq!(cache.stats().expired, 1);
    }

    #[test]
    fn negative_answers_live_for_the_soa_minimum() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20);
        let q = query_bytes(1, "nope.example.test.", RecordType::A, false);
        let view = parse_query(&q).unwrap();
        let stored = cache.insert(
            view.cache_key(),
            &upstream("nope.example.test.", RecordType::A),
            t0,
        );
        assert_eq!(stored, Stored::Negative { ttl: 300 });
        let bytes = cache
            .lookup(&view, t0 + Duration::from_secs(299), 512)
            .unwrap();
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(reply.authorities[0].ttl, 1);
        assert_eq!(
            cache.lookup(&view, t0 + Duration::from_secs(300), 512),
            None
        );

        // A negative answer without its SOA is not cached.
        let mut bare = upstream("nope.example.test.", RecordType::A);
        bare.authorities.clear();
        assert_eq!(cache.insert(view.cache_key(), &bare, t0), Stored::No);
        // Nor is SERVFAIL.
        bare.metadata.response_code = ResponseCode::ServFail;
        assert_eq!(cache.insert(view.cache_key(), &bare, t0), Stored::No);
    }

    fn key_of(name: &str) -> Vec<u8> {
        parse_query(&query_bytes(1, name, RecordType::A, false))
            .unwrap()
            .cache_key()
    }

    fn cost_of(name: &str, t0: Instant) -> usize {
        let mut probe = Cache::new(usize::MAX);
        probe.insert(key_of(name), &upstream(name, RecordType::A), t0);
        probe.stats().bytes
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_evicted_first() {
        let t0 = Instant::now();
        let names = ["www.example.test.", "ns1.example.test.", "example.test."];
        let costs: Vec<usize> = names.iter().map(|n| cost_of(n, t0)).collect();
        // Room for the two largest, not for all three.
        let mut sorted = costs.clone();
        sorted.sort_unstable();
        let mut cache = Cache::new(sorted[1] + sorted[2]);
        let look = |cache: &mut Cache, n: &str| {
            let q = query_bytes(1, n, RecordType::A, false);
            cache.lookup(&parse_query(&q).unwrap(), t0, 512).is_some()
        };
        cache.insert(key_of(names[0]), &upstream(names[0], RecordType::A), t0);
        cache.insert(key_of(names[1]), &upstream(names[1], RecordType::A), t0);
        // A hit makes www the most recent: ns1 goes when example.test. comes in.
        assert!(look(&mut cache, names[0]));
        cache.insert(key_of(names[2]), &upstream(names[2], RecordType::A), t0);
        let s = cache.stats();
        assert_eq!((s.entries, s.evicted), (2, 1));
        assert!(s.bytes <= s.max_bytes);
        assert!(!look(&mut cache, names[1]), "the least recently used went");
        assert!(look(&mut cache, names[0]) && look(&mut cache, names[2]));
        // Re-inserting and hitting the same keys many times keeps the bookkeeping bounded.
        for _ in 0..1000 {
            cache.insert(key_of(names[2]), &upstream(names[2], RecordType::A), t0);
            assert!(look(&mut cache, names[0]));
        }
        assert!(cache.order.len() <= 2 * 2 + 16 + 1);
        assert_eq!(cache.stats().entries, 2);
        // A reply larger than the whole cache is not stored.
        let mut tiny = Cache::new(costs[0] - 1);
        let stored = tiny.insert(key_of(names[0]), &upstream(names[0], RecordType::A), t0);
        assert_eq!(stored, Stored::No);
        assert_eq!((tiny.stats().too_big, tiny.stats().bytes), (1, 0));
    }

    #[test]
    fn accounted_bytes_never_pass_the_cap() {
        // Many names of varied sizes, hits, replacements and expiries through a small cache:
        // after every step the accounted bytes stay under the cap and match the entries held.
        let t0 = Instant::now();
        let mut cache = Cache::new(6_000);
        let names = ["www.example.test.", "ns1.example.test.", "example.test."];
        let mut next: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..5_000u64 {
            next ^= next << 13;
            next ^= next >> 7;
            next ^= next << 17;
            let now = t0 + Duration::from_secs(step / 10);
            let base = names[(next % 3) as usize];
            let mut reply = upstream(base, RecordType::A);
            // Rename the question so each step may make a new key of a new length.
            let label = "x".repeat((next >> 8) as usize % 40 + 1);
            let name = Name::from_ascii(format!("{label}{}.{base}", next % 97)).unwrap();
            reply.queries[0].set_name(name.clone());
            for r in &mut reply.answers {
                r.name = name.clone();
                r.ttl = (next >> 16) as u32 % 120 + 1;
            }
            let q = build_query(1, &name, RecordType::A, true, false)
                .to_vec()
                .unwrap();
            let view = parse_query(&q).unwrap();
            if next % 4 == 0 {
                let _ = cache.lookup(&view, now, 512);
            } else {
                cache.insert(view.cache_key(), &reply, now);
            }
            let s = cache.stats();
            assert!(s.bytes <= s.max_bytes, "step {step}: {s:?}");
            let sum: usize = cache.entries.values().map(|e| e.cost).sum();
            assert_eq!(sum, s.bytes, "step {step}");
            for (k, e) in &cache.entries {
                assert_eq!(e.cost, Cache::cost(k.len(), e.wire.len(), e.ttls.len()));
            }
        }
        assert!(cache.stats().evicted > 100, "{:?}", cache.stats());
    }

    #[test]
    fn too_big_for_udp_gets_tc() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20);
        let q = query_bytes(5, "big.example.test.", RecordType::TXT, false);
        let view = parse_query(&q).unwrap();
        cache.insert(
            view.cache_key(),
            &upstream("big.example.test.", RecordType::TXT),
            t0,
        );
        let bytes = cache.lookup(&view, t0, 512).unwrap();
        let reply = Message::from_vec(&bytes).unwrap();
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        let full = cache.lookup(&view, t0, 65_535).unwrap();
        assert_eq!(Message::from_vec(&full).unwrap().answers.len(), 1);
    }
}
