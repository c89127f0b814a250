//! The echo probe's packet and the server's flow table.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use protolab_udpecho::flows::{FlowConfig, FlowTable, WINDOW_BITS};
use protolab_udpecho::server::echo;
use protolab_udpecho::wire::{
    FLAG_NO_STATE, FLAG_REPLY, FLAG_STATS, HEADER_LEN, MAGIC, MAX_LEN, ProbePacket, VERSION,
    WireError,
};

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// What the header says, read independently of the parser: `None` for a datagram that is no
/// valid probe, with the error the parser must give.
fn probe_oracle(d: &[u8]) -> Result<ProbePacket, WireError> {
    if d.len() > MAX_LEN {
        return Err(WireError::Oversized(d.len()));
    }
    if d.len() < 4 {
        return Err(WireError::Truncated(d.len()));
    }
    if d[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if d.len() < HEADER_LEN {
        return Err(WireError::Truncated(d.len()));
    }
    if d[4] != VERSION {
        return Err(WireError::BadVersion(d[4]));
    }
    if d[5] & !(FLAG_REPLY | FLAG_STATS | FLAG_NO_STATE) != 0 {
        return Err(WireError::BadFlags(d[5]));
    }
    Ok(ProbePacket {
        flags: d[5],
        flow: u32::from_be_bytes([d[8], d[9], d[10], d[11]]),
        seq: be64(&d[16..]),
        client_send_ns: be64(&d[24..]),
        server_recv_ns: be64(&d[32..]),
        server_count: be64(&d[40..]),
        window: be64(&d[48..]),
    })
}

/// `ProbePacket::parse` agrees with an independent reading of the header, and what it parses
/// emits back to the same header bytes (reserved fields zeroed).
pub fn probe_packet(data: &[u8]) {
    let parsed = ProbePacket::parse(data);
    assert_eq!(parsed, probe_oracle(data), "datagram {data:?}");
    if let Ok(p) = parsed {
        let mut again = data.to_vec();
        p.emit(&mut again);
        assert_eq!(ProbePacket::parse(&again), Ok(p));
        assert_eq!(again.len(), data.len());
        let mut want = data[..HEADER_LEN].to_vec();
        want[6..8].fill(0);
        want[12..16].fill(0);
        assert_eq!(&again[..HEADER_LEN], &want[..]);
        assert_eq!(&again[HEADER_LEN..], &data[HEADER_LEN..]);
    }
}

#[derive(Debug, Arbitrary)]
enum Datagram {
    /// A well-formed probe (flags may still be refused), `size` bytes long.
    Probe {
        flags: u8,
        flow: u8,
        seq: Seq,
        size: u16,
    },
    /// The previous datagram again, as a network that duplicates does.
    Repeat,
    /// Anything at all.
    Raw(Vec<u8>),
}

/// Sequence numbers near each other (so windows and duplicates matter) or anywhere.
#[derive(Debug, Arbitrary)]
enum Seq {
    Near(u16),
    Any(u64),
}

#[derive(Debug, Arbitrary)]
struct FlowInput {
    max_flows: u8,
    idle_ms: u16,
    max_size: u16,
    events: Vec<(u16, Datagram)>,
}

/// What the check knows of one flow the server holds: every sequence number it delivered
/// since the server created the flow.
#[derive(Debug, Default)]
struct FlowModel {
    seen: HashSet<u64>,
    /// One more than the highest sequence number seen: in u128, so that 2^64-1 has a successor
    /// and the oracle stays exact at the top of the range.
    top: u128,
}

/// The server's echo over a random mix of probes, repeats and garbage at random times.
///
/// Every reply is exactly as long as its request (never amplifies) and is the request's header
/// flagged as a reply; every datagram is counted once; the table stays within its cap; a probe
/// the flow already delivered inside the window is a duplicate and does not raise the count;
/// every bit of a reply's window names a sequence number the flow really delivered.
pub fn flow_table(data: &[u8]) {
    let Ok(input) = FlowInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let cfg = FlowConfig {
        max_flows: usize::from(input.max_flows % 8) + 1,
        idle: Duration::from_millis(u64::from(input.idle_ms)),
        max_size: usize::from(input.max_size).max(HEADER_LEN),
    };
    let max_flows = cfg.max_flows;
    let mut table = FlowTable::new(cfg);
    let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000));
    let mut now = Duration::ZERO;
    let mut handled = 0u64;
    let mut prev: Vec<u8> = Vec::new();
    let mut models: HashMap<u32, FlowModel> = HashMap::new();
    let mut base: u64 = 1 << 20;
    for (delta, datagram) in input.events {
        now += Duration::from_millis(u64::from(delta));
        let request = match datagram {
            Datagram::Probe {
                flags,
                flow,
                seq,
                size,
            } => {
                let seq = match seq {
                    Seq::Near(n) => base + u64::from(n % 600),
                    Seq::Any(s) => s,
                };
                base = base.wrapping_add(u64::from(flags & 3));
                let p = ProbePacket {
                    flags: flags & (FLAG_REPLY | FLAG_STATS | FLAG_NO_STATE),
                    flow: u32::from(flow % 16),
                    seq,
                    client_send_ns: 7,
                    ..ProbePacket::default()
                };
                p.to_vec(usize::from(size))
            }
            Datagram::Repeat => prev.clone(),
            Datagram::Raw(bytes) => bytes,
        };
        prev.clone_from(&request);
        let before = table.counters().clone();
        let mut panics = 0;
        let reply = echo(&mut table, &mut panics, now, peer, &request);
        // The server survives a panicking handler, but a panic is still a defect to find.
        assert_eq!(panics, 0, "handling {request:?} panicked");
        handled += 1;
        let c = table.counters();
        assert_eq!(c.probes + c.stats_requests + c.garbage(), handled);
        assert!(
            table.len() <= max_flows,
            "{} flows over the cap",
            table.len()
        );
        let Some(reply) = reply else {
            assert_eq!(
                c.garbage(),
                before.garbage() + 1,
                "a dropped datagram is garbage"
            );
            continue;
        };
        assert_eq!(
            reply.len(),
            request.len(),
            "reply length differs from request"
        );
        let req = ProbePacket::parse(&request).expect("echoed requests are probes");
        let rep = ProbePacket::parse(&reply).expect("replies are probes");
        assert!(!req.is_reply(), "a reply was echoed");
        assert!(rep.is_reply());
        assert_eq!(rep.is_stats(), req.is_stats());
        assert_eq!(
            (rep.flow, rep.seq, rep.client_send_ns),
            (req.flow, req.seq, 7)
        );
        assert_eq!(&reply[HEADER_LEN..], &request[HEADER_LEN..]);
        assert_eq!(u128::from(rep.server_recv_ns), now.as_nanos());
        if !rep.has_state() {
            // The server says NO_STATE only when it keeps none, whatever the request carried.
            assert_eq!((rep.server_count, rep.window), (0, 0));
            if !req.is_stats() {
                models.remove(&rep.flow);
            }
            continue;
        }
        if !req.is_stats() {
            let dup = c.duplicates - before.duplicates;
            if rep.server_count == 1 && dup == 0 {
                // A flow the server (re)created: what it knew before is gone.
                models.insert(rep.flow, FlowModel::default());
            }
            // Without a model (the flow's start was not seen as such) nothing can be told.
            let Some(m) = models.get_mut(&rep.flow) else {
                continue;
            };
            let seq = u128::from(req.seq);
            let in_window = seq < m.top && m.top - seq <= u128::from(WINDOW_BITS);
            let expect_dup = in_window && m.seen.contains(&req.seq);
            assert_eq!(dup, u64::from(expect_dup), "seq {} duplicate?", req.seq);
            m.seen.insert(req.seq);
            m.top = m.top.max(seq + 1);
        }
        if let Some(m) = models.get(&rep.flow) {
            for i in 0..64 {
                if rep.window & (1 << i) != 0 {
                    let s = rep
                        .seq
                        .checked_sub(1 + i)
                        .expect("window bit below sequence 0");
                    assert!(
                        m.seen.contains(&s),
                        "window bit {i} names seq {s}, never sent"
                    );
                }
            }
        }
    }
}
