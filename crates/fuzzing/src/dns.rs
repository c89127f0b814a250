//! DNS: the header and question walker, zone files, the reply cache and the classifier of
//! replies during iterative resolution.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use protolab_dns::cache::{Cache, MAX_TTL, Stored};
use protolab_dns::iterate::{Classified, classify};
use protolab_dns::wire::{
    self, HEADER_LEN, MAX_QUESTION, WireError, bare_reply, build_query, encode_limited, flags,
    formerr_header, parse_query, ttl_positions,
};
use protolab_dns::zone::{Catalog, Zone};

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The question's name read label by label: its length in bytes, or `None` when it is not a
/// plain uncompressed name of at most 255 bytes inside `b`.
fn question_name_len(b: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = usize::from(*b.get(pos)?);
        if len > 63 {
            return None;
        }
        pos += len + 1;
        if pos > 255 {
            return None;
        }
        if len == 0 {
            return Some(pos);
        }
    }
}

/// The byte-level walker (`parse_query`, `ttl_positions`, `bare_reply`, `formerr_header`) on
/// arbitrary bytes and on every prefix of them.
///
/// A parsed query's fields are what its bytes say; an error reply is never larger than the
/// query it answers (no amplification) and carries its id and question; every TTL position
/// points at the TTL it names, inside the message, and agrees with hickory-proto's decoding.
pub fn dns_wire(data: &[u8]) {
    for end in 0..data.len().min(300) {
        let _ = parse_query(&data[..end]);
        let _ = ttl_positions(&data[..end]);
    }
    match parse_query(data) {
        Ok(view) => {
            assert!(data.len() >= HEADER_LEN);
            assert_eq!(view.id, be16(data, 0));
            assert_eq!(view.flags, be16(data, 2));
            assert_eq!(view.flags & flags::QR, 0, "a response parsed as a query");
            assert_eq!(be16(data, 4), 1, "QDCOUNT is not 1");
            let q = view.question;
            assert!(q.len() <= MAX_QUESTION);
            assert_eq!(q, &data[HEADER_LEN..HEADER_LEN + q.len()]);
            let name_len = question_name_len(q).expect("the question starts with a plain name");
            assert_eq!(name_len + 4, q.len());
            assert_eq!(view.qtype, be16(q, name_len));
            assert_eq!(view.qclass, be16(q, name_len + 2));
            let key = view.cache_key();
            let mut want = q.to_vec();
            want[..name_len].make_ascii_lowercase();
            assert_eq!(key, want);
            let mut buf = [0u8; MAX_QUESTION];
            assert_eq!(view.cache_key_in(&mut buf), &key[..]);
            assert!((512..=usize::from(wire::EDNS_PAYLOAD)).contains(&view.udp_limit()));
            for (extra, rcode) in [
                (flags::RA, ResponseCode::Refused),
                (flags::RA, ResponseCode::ServFail),
                (flags::TC | flags::RA, ResponseCode::NoError),
            ] {
                let r = bare_reply(&view, extra, rcode);
                assert!(r.len() <= data.len(), "error reply larger than the query");
                assert_eq!(be16(&r, 0), view.id);
                let f = be16(&r, 2);
                assert_ne!(f & flags::QR, 0);
                assert_eq!(f & 0xF, u16::from(rcode.low()));
                assert_eq!(f & 0x7800, view.flags & 0x7800, "opcode not echoed");
                assert_eq!(be16(&r, 4), 1);
                assert_eq!(&r[HEADER_LEN..HEADER_LEN + q.len()], q);
                assert_eq!(parse_query(&r), Err(WireError::NotAQuery));
            }
            if let Ok(m) = Message::from_vec(data) {
                assert_eq!(m.queries.len(), 1);
                assert_eq!(u16::from(m.queries[0].query_type()), view.qtype);
            }
        }
        Err(e) => {
            if data.len() < HEADER_LEN {
                assert_eq!(e, WireError::ShortHeader);
            }
        }
    }
    match formerr_header(data) {
        Some(h) => {
            assert!(data.len() >= HEADER_LEN && data[2] & 0x80 == 0);
            assert_eq!(h.len(), HEADER_LEN);
            assert_eq!(h[..2], data[..2]);
            assert_eq!(h[2] & 0x80, 0x80);
            assert_eq!(h[2] & 0x78, data[2] & 0x78, "opcode not echoed");
            assert_eq!(h[3] & 0xF, 1);
            assert!(h[4..].iter().all(|&b| b == 0));
        }
        None => assert!(data.len() < HEADER_LEN || data[2] & 0x80 != 0),
    }
    if let Ok(ttls) = ttl_positions(data) {
        let mut last = 0;
        for &(pos, ttl) in &ttls {
            assert!(pos >= HEADER_LEN && pos > last && pos + 4 <= data.len());
            assert_eq!(be32(data, pos), ttl);
            last = pos;
        }
        let decoded = Message::from_vec(data).ok();
        if let Some(m) =
            decoded.filter(|m| !m.answers.iter().any(|r| r.record_type() == RecordType::OPT))
        {
            let got: Vec<u32> = ttls.iter().take(m.answers.len()).map(|t| t.1).collect();
            let want: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
            assert_eq!(got, want, "TTLs differ from hickory-proto's decoding");
        }
    }
}

/// A zone file of arbitrary text, and the authoritative answers given from it.
///
/// Names outside the zone are refused; NXDOMAIN carries the zone's SOA; an answer starts at the
/// name asked, follows CNAMEs from owner to target and ends with records of the type asked;
/// what is encoded for classic UDP is never over 512 bytes and decodes again.
pub fn zone_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let default_origin = Name::from_ascii("fuzz.test.").expect("a valid name");
    let Ok(zone) = Zone::parse(&text, "fuzz", Some(default_origin)) else {
        return;
    };
    assert!(!zone.is_empty());
    let origin = zone.origin().clone();
    let catalog = Catalog::new(vec![zone]);
    let mut names = vec![
        origin.clone(),
        Name::from_ascii("elsewhere.").expect("valid"),
    ];
    for token in text.split_whitespace().take(16) {
        if let Ok(n) = Name::from_ascii(token) {
            let n = if n.is_fqdn() {
                n
            } else {
                match n.append_domain(&origin) {
                    Ok(n) => n,
                    Err(_) => continue,
                }
            };
            names.push(n);
        }
    }
    let qtypes = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::SOA,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::TXT,
        RecordType::ANY,
    ];
    for name in &names {
        for (i, &qtype) in qtypes.iter().enumerate() {
            let query = build_query(0x4242, name, qtype, false, i % 2 == 0);
            let reply = catalog.respond(&query);
            check_authoritative(&origin, name, qtype, &query, &reply);
        }
    }
}

fn check_authoritative(
    origin: &Name,
    name: &Name,
    qtype: RecordType,
    query: &Message,
    r: &Message,
) {
    assert_eq!(r.metadata.id, 0x4242);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(r.queries, query.queries);
    assert_eq!(r.edns.is_some(), query.edns.is_some());
    let rcode = r.metadata.response_code;
    if !origin.zone_of(name) {
        assert_eq!(rcode, ResponseCode::Refused, "{name} is outside {origin}");
        assert!(r.answers.is_empty() && r.authorities.is_empty());
        return;
    }
    assert!(
        rcode == ResponseCode::NoError || rcode == ResponseCode::NXDomain,
        "rcode {rcode:?} for {name} {qtype}"
    );
    // The answer: CNAMEs from the name asked onwards, then records of the type asked.
    let mut cur = name.clone();
    let mut matched = false;
    for rec in &r.answers {
        assert_eq!(
            rec.name, cur,
            "answer record for {} out of the chain",
            rec.name
        );
        let of_type = qtype == RecordType::ANY || rec.record_type() == qtype;
        if of_type {
            matched = true;
            continue;
        }
        assert!(!matched, "a CNAME after the records of the type asked");
        match &rec.data {
            RData::CNAME(t) => cur = t.0.clone(),
            other => panic!("answer of type {:?} for {qtype}", other.record_type()),
        }
    }
    if !r.answers.is_empty() {
        assert!(
            r.metadata.authoritative,
            "an answer from the zone without AA"
        );
    }
    if rcode == ResponseCode::NXDomain {
        assert!(!matched);
        assert_eq!(r.authorities.len(), 1, "NXDOMAIN carries the SOA only");
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(&r.authorities[0].name, origin);
    }
    for rec in &r.additionals {
        assert!(matches!(
            rec.record_type(),
            RecordType::A | RecordType::AAAA
        ));
    }
    if let Ok(bytes) = encode_limited(r, 512) {
        assert!(
            bytes.len() <= 512,
            "{} bytes for a 512-byte limit",
            bytes.len()
        );
        let back = Message::from_vec(&bytes).expect("our encoding decodes");
        assert_eq!(back.metadata.id, 0x4242);
    }
}

const POOL: [&str; 6] = [
    "a.test.",
    "b.test.",
    "www.example.test.",
    "x.y.z.test.",
    "Mixed.Case.test.",
    "c.test.",
];
const QTYPES: [RecordType; 5] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::CNAME,
];

/// A name of the pool with some letters' case flipped, as clients using 0x20 do.
fn cased(index: u8, flips: u32) -> Name {
    let text: String = POOL[usize::from(index) % POOL.len()]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if flips & (1 << (i % 32)) != 0 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect();
    Name::from_ascii(text).expect("pool names are valid")
}

#[derive(Debug, Arbitrary)]
struct Question {
    name: u8,
    flips: u32,
    qtype: u8,
}

impl Question {
    fn name(&self) -> Name {
        cased(self.name, self.flips)
    }

    fn qtype(&self) -> RecordType {
        QTYPES[usize::from(self.qtype) % QTYPES.len()]
    }

    fn key(&self) -> (String, RecordType) {
        (self.name().to_lowercase().to_ascii(), self.qtype())
    }
}

#[derive(Debug, Arbitrary)]
struct Rr {
    /// The question's name, or another of the pool.
    owner: Option<u8>,
    ttl: u32,
    kind: u8,
}

#[derive(Debug, Arbitrary)]
enum CacheOp {
    /// An upstream's reply to a question, stored as the resolver stores it.
    Upstream {
        q: Question,
        upstream_flips: u32,
        answers: Vec<Rr>,
        soa: Option<(u32, u32)>,
        rcode: u8,
        truncated: bool,
    },
    /// A client's query answered from the cache.
    Ask {
        q: Question,
        id: u16,
        rd: bool,
        cd: bool,
        edns: bool,
        tcp: bool,
    },
    Wait(u16),
}

#[derive(Debug, Arbitrary)]
struct CacheInput {
    max_entries: u8,
    ops: Vec<CacheOp>,
}

struct ModelEntry {
    reply: Message,
    stored: Instant,
    lifetime: u32,
    negative: bool,
}

fn soa_record(ttl: u32, minimum: u32) -> Record {
    let zone = Name::from_ascii("test.").expect("valid");
    let soa = SOA::new(
        Name::from_ascii("ns.test.").expect("valid"),
        Name::from_ascii("admin.test.").expect("valid"),
        1,
        7200,
        3600,
        1_209_600,
        minimum,
    );
    Record::from_rdata(zone, ttl, RData::SOA(soa))
}

fn record(rr: &Rr, qname: &Name) -> Record {
    let owner = match rr.owner {
        None => qname.clone(),
        Some(i) => cased(i, 0),
    };
    let data = match rr.kind % 4 {
        0 => RData::A(A(Ipv4Addr::from(rr.ttl ^ 0x5a5a))),
        1 => RData::AAAA(AAAA(Ipv6Addr::from(u128::from(rr.ttl)))),
        2 => RData::CNAME(CNAME(cased(rr.kind / 4, 0))),
        _ => RData::TXT(TXT::new(vec![format!("t{}", rr.kind)])),
    };
    Record::from_rdata(owner, rr.ttl, data)
}

/// What the cache must decide about a reply, worked out independently: whether it is stored,
/// whether as a negative answer, and for how long.
fn expected_store(reply: &Message) -> Stored {
    let rcode = reply.metadata.response_code;
    if reply.metadata.truncation || !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain)
    {
        return Stored::No;
    }
    let negative = rcode == ResponseCode::NXDomain || reply.answers.is_empty();
    let ttl = if negative {
        let Some(soa) = reply
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
        else {
            return Stored::No;
        };
        let RData::SOA(s) = &soa.data else {
            return Stored::No;
        };
        soa.ttl.min(s.minimum)
    } else {
        let all = reply.answers.iter().chain(&reply.authorities);
        all.map(|r| r.ttl).min().unwrap_or(0)
    }
    .min(MAX_TTL);
    match (ttl, negative) {
        (0, _) => Stored::No,
        (ttl, true) => Stored::Negative { ttl },
        (ttl, false) => Stored::Positive { ttl },
    }
}

/// The resolver's cache driven as the resolver drives it: upstream replies stored under the
/// key of the query that caused them, client queries in any letter case answered from it.
///
/// The cache stores exactly what an independent reading of RFC 2308 and RFC 1035 says; a hit
/// answers the very question asked (id, question bytes, RD and CD of the query) with the
/// records stored for that question, TTLs counted down by the whole seconds spent in the cache,
/// never at or after the end of the entry's lifetime, never larger than the transport's limit;
/// a live entry is never missed unless the cache had to evict.
pub fn dns_cache(data: &[u8]) {
    let Ok(input) = CacheInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut cache = Cache::new(usize::from(input.max_entries % 8) + 1);
    let t0 = Instant::now();
    let mut now = t0;
    let mut model: HashMap<(String, RecordType), ModelEntry> = HashMap::new();
    for op in input.ops {
        match op {
            CacheOp::Wait(s) => now += Duration::from_secs(u64::from(s % 400)),
            CacheOp::Upstream {
                q,
                upstream_flips,
                answers,
                soa,
                rcode,
                truncated,
            } => {
                let query = build_query(1, &q.name(), q.qtype(), true, false)
                    .to_vec()
                    .expect("pool queries encode");
                let view = parse_query(&query).expect("our query parses");
                let mut reply = Message::new(9, MessageType::Response, OpCode::Query);
                reply.metadata.response_code = match rcode % 4 {
                    0 | 1 => ResponseCode::NoError,
                    2 => ResponseCode::NXDomain,
                    _ => ResponseCode::ServFail,
                };
                reply.metadata.truncation = truncated;
                let mut uq = Query::query(cased(q.name, upstream_flips), q.qtype());
                uq.set_query_class(DNSClass::IN);
                reply.add_query(uq);
                reply.answers = answers
                    .iter()
                    .take(6)
                    .map(|rr| record(rr, &q.name()))
                    .collect();
                if let Some((ttl, minimum)) = soa {
                    reply.authorities.push(soa_record(ttl, minimum));
                }
                // The client only passes on a reply that answers the question it asked.
                assert!(wire::answers_question(&reply, 9, &q.name(), q.qtype()));
                let want = expected_store(&reply);
                let got = cache.insert(view.cache_key(), &reply, now);
                assert_eq!(got, want, "store decision for {reply:?}");
                let (lifetime, negative) = match got {
                    Stored::Positive { ttl } => (ttl, false),
                    Stored::Negative { ttl } => (ttl, true),
                    Stored::No => continue,
                };
                model.insert(
                    q.key(),
                    ModelEntry {
                        reply,
                        stored: now,
                        lifetime,
                        negative,
                    },
                );
            }
            CacheOp::Ask {
                q,
                id,
                rd,
                cd,
                edns,
                tcp,
            } => {
                let mut msg = build_query(id, &q.name(), q.qtype(), rd, edns);
                msg.metadata.checking_disabled = cd;
                let query = msg.to_vec().expect("pool queries encode");
                let view = parse_query(&query).expect("our query parses");
                let limit = if tcp { 65_535 } else { view.udp_limit() };
                let served = cache.lookup(&view, now, limit);
                let live = model.get(&q.key()).filter(|e| {
                    now.saturating_duration_since(e.stored).as_secs() < u64::from(e.lifetime)
                });
                let Some(bytes) = served else {
                    assert!(
                        live.is_none() || cache.stats().evicted > 0,
                        "a live entry was missed"
                    );
                    continue;
                };
                let entry =
                    live.expect("served an answer never stored for this question, or expired");
                let age = now.saturating_duration_since(entry.stored).as_secs() as u32;
                check_served(&bytes, &view, limit, entry, age, (id, rd, cd, edns));
            }
        }
    }
}

fn check_served(
    bytes: &[u8],
    view: &wire::QueryView<'_>,
    limit: usize,
    entry: &ModelEntry,
    age: u32,
    (id, rd, cd, edns): (u16, bool, bool, bool),
) {
    assert!(
        bytes.len() <= limit,
        "{} bytes over the limit {limit}",
        bytes.len()
    );
    let qlen = view.question.len();
    assert_eq!(
        &bytes[HEADER_LEN..HEADER_LEN + qlen],
        view.question,
        "question not echoed"
    );
    let m = Message::from_vec(bytes).expect("served bytes decode");
    assert_eq!(m.metadata.id, id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.recursion_desired, rd);
    assert_eq!(m.metadata.checking_disabled, cd);
    assert!(m.metadata.recursion_available);
    assert_eq!(m.edns.is_some(), edns);
    if m.metadata.truncation {
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        return;
    }
    assert_eq!(m.metadata.response_code, entry.reply.metadata.response_code);
    let counted = |r: &Record| r.ttl.saturating_sub(age);
    assert_eq!(m.answers.len(), entry.reply.answers.len());
    for (got, want) in m.answers.iter().zip(&entry.reply.answers) {
        assert_eq!(got.name, want.name);
        assert_eq!(got.data, want.data);
        assert_eq!(got.ttl, counted(want), "TTL not counted down by {age}s");
    }
    assert_eq!(m.authorities.len(), entry.reply.authorities.len());
    for (got, want) in m.authorities.iter().zip(&entry.reply.authorities) {
        assert_eq!(got.data, want.data);
        let ttl = match (&want.data, entry.negative) {
            (RData::SOA(s), true) => want.ttl.min(s.minimum),
            _ => want.ttl,
        };
        assert_eq!(got.ttl, ttl.saturating_sub(age));
    }
}

const HIERARCHY: [&str; 10] = [
    ".",
    "test.",
    "example.test.",
    "www.example.test.",
    "ns1.example.test.",
    "other.",
    "ns.other.",
    "a.b.example.test.",
    "EXAMPLE.test.",
    "b.example.test.",
];

fn hname(i: u8) -> Name {
    Name::from_ascii(HIERARCHY[usize::from(i) % HIERARCHY.len()]).expect("valid")
}

#[derive(Debug, Arbitrary)]
struct Rr2 {
    owner: u8,
    kind: u8,
    target: u8,
    ttl: u32,
}

impl Rr2 {
    fn record(&self) -> Record {
        let data = match self.kind % 7 {
            0 => RData::A(A(Ipv4Addr::from(self.ttl))),
            1 => RData::AAAA(AAAA(Ipv6Addr::from(u128::from(self.ttl)))),
            2 => RData::CNAME(CNAME(hname(self.target))),
            3 | 4 => RData::NS(NS(hname(self.target))),
            5 => RData::MX(MX::new(10, hname(self.target))),
            _ => return soa_record(self.ttl, 60),
        };
        Record::from_rdata(hname(self.owner), self.ttl, data)
    }
}

#[derive(Debug, Arbitrary)]
struct ClassifyInput {
    zone: u8,
    name: u8,
    qtype: u8,
    rcode: u8,
    answers: Vec<Rr2>,
    authorities: Vec<Rr2>,
    additionals: Vec<Rr2>,
}

/// The classifier of iterative resolution on arbitrary replies from a server of some zone.
///
/// A referral leads strictly below the zone asked and towards the name, names the servers of
/// the NS records of that child zone only, with glue only from the additional section and only
/// for server names inside the zone asked (in bailiwick); a CNAME step is a chain of the
/// answer's CNAME records starting at the name asked; a final answer is NXDOMAIN, an answer of
/// the type asked for the name asked, or NODATA.
pub fn referral_classifier(data: &[u8]) {
    let Ok(input) = ClassifyInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let zone = hname(input.zone);
    let name = hname(input.name);
    let qtype = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::CNAME,
        RecordType::ANY,
    ][usize::from(input.qtype) % 5];
    let mut reply = Message::new(3, MessageType::Response, OpCode::Query);
    reply.metadata.response_code = match input.rcode % 4 {
        0 | 1 => ResponseCode::NoError,
        2 => ResponseCode::NXDomain,
        _ => ResponseCode::Refused,
    };
    reply.add_query(Query::query(name.clone(), qtype));
    reply.answers = input.answers.iter().take(8).map(Rr2::record).collect();
    reply.authorities = input.authorities.iter().take(8).map(Rr2::record).collect();
    reply.additionals = input.additionals.iter().take(8).map(Rr2::record).collect();
    let rcode = reply.metadata.response_code;
    let matching = reply
        .answers
        .iter()
        .any(|r| r.name == name && (qtype == RecordType::ANY || r.record_type() == qtype));
    let ns: Vec<&Record> = reply
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    match classify(&reply, &zone, &name, qtype) {
        Classified::Final => assert!(
            rcode == ResponseCode::NXDomain
                || (rcode == ResponseCode::NoError
                    && (matching || (reply.answers.is_empty() && ns.is_empty()))),
            "final without an answer: {reply:?}"
        ),
        Classified::Lame(why) => {
            assert!(!why.is_empty());
            assert!(
                rcode != ResponseCode::NXDomain && !(rcode == ResponseCode::NoError && matching)
            );
        }
        Classified::Cname(target, records) => {
            assert_eq!(rcode, ResponseCode::NoError);
            assert!(!matching, "a CNAME step although the answer is there");
            assert!(!records.is_empty());
            let mut cur = name.clone();
            for r in &records {
                assert_eq!(r.name, cur, "CNAME chain broken");
                assert!(
                    reply.answers.contains(r),
                    "a CNAME not from the answer section"
                );
                match &r.data {
                    RData::CNAME(t) => cur = t.0.clone(),
                    other => panic!("{other:?} in a CNAME chain"),
                }
            }
            assert_eq!(target, cur);
        }
        Classified::Referral(child, servers, ttl) => {
            assert_eq!(rcode, ResponseCode::NoError);
            assert!(!matching);
            assert!(
                zone.zone_of(&child) && child.num_labels() > zone.num_labels(),
                "referral from {zone} to {child} does not go down"
            );
            assert!(
                child.zone_of(&name),
                "referral to {child} does not lead to {name}"
            );
            let of_child: Vec<&&Record> = ns.iter().filter(|r| r.name == child).collect();
            assert_eq!(servers.len(), of_child.len());
            assert_eq!(ttl, of_child.iter().map(|r| r.ttl).min().unwrap_or(0));
            for ((server, ips), rec) in servers.iter().zip(&of_child) {
                let RData::NS(target) = &rec.data else {
                    panic!("an NS record without NS data");
                };
                assert_eq!(server, &target.0);
                if !ips.is_empty() {
                    assert!(
                        zone.zone_of(server),
                        "glue for {server} outside {zone} believed"
                    );
                }
                for ip in ips {
                    let vouched = reply.additionals.iter().any(|r| {
                        r.name == *server
                            && match &r.data {
                                RData::A(a) => *ip == std::net::IpAddr::V4(a.0),
                                RData::AAAA(a) => *ip == std::net::IpAddr::V6(a.0),
                                _ => false,
                            }
                    });
                    assert!(
                        vouched,
                        "address {ip} of {server} not in the additional section"
                    );
                }
            }
        }
    }
}
