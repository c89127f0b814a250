//! Impairment: the engine's decisions and ground truth, and the link's packet trace decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use protolab_impair::engine::{Engine, Fate, Impairment};
use protolab_impair::link::{Action, Direction, Line, Summary, Transport, WindowScales};

#[derive(Debug, Arbitrary)]
enum Event {
    /// A packet of `len` bytes arrives `after_us` after the previous event.
    Push { after_us: u32, len: u16 },
    /// The front end wakes `after_us` later and sends what is due.
    Pop { after_us: u32 },
    /// The front end sleeps until the next release and sends it.
    Sleep,
}

#[derive(Debug, Arbitrary)]
struct EngineInput {
    loss: u8,
    dup: u8,
    reorder: u8,
    delay_ms: u16,
    jitter_ms: u16,
    rate_kbps: Option<u16>,
    limit: u8,
    seed: u64,
    events: Vec<Event>,
}

/// What the check tracks of each pushed packet.
struct Pushed {
    at: Duration,
    copies: u8,
    released: u8,
}

fn prob(x: u8) -> f64 {
    f64::from(x) / 255.0
}

/// The impairment engine fed random packets at random times, then drained.
///
/// After every step `received + duplicated = dropped + forwarded + queued` and the queue stays
/// within its limit; a packet is never released before it arrived nor more often than its fate
/// said, a dropped one never; everything due is released; once drained every queued packet left
/// exactly `copies` times, `forwarded = received - dropped + duplicated`, and `reordered` is
/// what RFC 4737 counts on the release order, computed here independently (zero when the
/// reordering knob is off).
pub fn impair_engine(data: &[u8]) {
    let Ok(input) = EngineInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let cfg = Impairment {
        loss: prob(input.loss),
        dup: prob(input.dup),
        reorder: prob(input.reorder),
        delay: Duration::from_millis(u64::from(input.delay_ms)),
        jitter: Duration::from_millis(u64::from(input.jitter_ms)),
        rate_bps: input.rate_kbps.map(|k| u64::from(k) * 1000),
    };
    // The queue is capped in bytes: from one packet's worth up to about 64 KiB.
    let limit = (usize::from(input.limit) + 1) * 256;
    let reorder_off = cfg.reorder == 0.0;
    let min_delay = cfg.delay.saturating_sub(cfg.jitter);
    let mut engine: Engine<usize> = Engine::new(cfg, input.seed).with_queue_limit(limit);
    let mut pushed: Vec<Pushed> = Vec::new();
    let (mut dropped, mut duplicated, mut reordered, mut next_expected) =
        (0u64, 0u64, 0u64, 0usize);
    let mut now = Duration::ZERO;
    let mut release = |engine: &mut Engine<usize>, pushed: &mut Vec<Pushed>, now: Duration| {
        while let Some(i) = engine.pop_ready(now) {
            let p = &mut pushed[i];
            assert!(p.at <= now, "packet {i} released before it arrived");
            assert!(
                p.released < p.copies,
                "packet {i} released more than {} times",
                p.copies
            );
            if p.released == 0 {
                if i < next_expected {
                    reordered += 1;
                } else {
                    next_expected = i + 1;
                }
            }
            p.released += 1;
        }
        if let Some(t) = engine.next_release() {
            assert!(t > now, "a packet due at {t:?} was not released at {now:?}");
        }
        reordered
    };
    let check = |engine: &Engine<usize>, pushed: &[Pushed], dropped: u64, duplicated: u64| {
        let t = engine.truth();
        assert_eq!(t.received, pushed.len() as u64);
        // Fate::Dropped covers both the loss decision and a tail drop at the byte cap.
        assert_eq!(t.dropped + t.queue_dropped, dropped);
        assert_eq!(t.duplicated, duplicated);
        assert_eq!(
            t.received + t.duplicated,
            t.dropped + t.queue_dropped + t.forwarded + engine.queued() as u64,
            "ground truth does not add up: {t:?}, {} queued",
            engine.queued()
        );
        assert!(t.adds_up(), "GroundTruth::adds_up disagrees: {t:?}");
        assert!(engine.queued_bytes() <= limit);
    };
    for event in input.events.into_iter().take(2_000) {
        match event {
            Event::Push { after_us, len } => {
                now += Duration::from_micros(u64::from(after_us));
                let index = pushed.len();
                let fate = engine.push(now, usize::from(len), index);
                let copies = match fate {
                    Fate::Dropped => {
                        dropped += 1;
                        0
                    }
                    Fate::Queued {
                        copies,
                        reordered,
                        release_at,
                    } => {
                        assert!(copies == 1 || copies == 2);
                        assert!(!(reorder_off && reordered), "reordered with the knob off");
                        assert!(
                            release_at + Duration::from_micros(1) >= now + min_delay,
                            "due {release_at:?}, before arrival {now:?} plus {min_delay:?}"
                        );
                        if copies == 2 {
                            duplicated += 1;
                        }
                        copies
                    }
                };
                pushed.push(Pushed {
                    at: now,
                    copies,
                    released: 0,
                });
            }
            Event::Pop { after_us } => {
                now += Duration::from_micros(u64::from(after_us));
                release(&mut engine, &mut pushed, now);
            }
            Event::Sleep => {
                if let Some(t) = engine.next_release() {
                    now = now.max(t);
                }
                release(&mut engine, &mut pushed, now);
            }
        }
        check(&engine, &pushed, dropped, duplicated);
    }
    while let Some(t) = engine.next_release() {
        now = now.max(t);
        release(&mut engine, &mut pushed, now);
    }
    let counted = release(&mut engine, &mut pushed, now);
    check(&engine, &pushed, dropped, duplicated);
    let t = engine.truth();
    assert_eq!(engine.queued(), 0);
    assert_eq!(
        t.forwarded,
        t.received - t.dropped - t.queue_dropped + t.duplicated
    );
    for (i, p) in pushed.iter().enumerate() {
        assert_eq!(
            p.released, p.copies,
            "packet {i} left {} of {} times",
            p.released, p.copies
        );
    }
    assert_eq!(
        t.reordered, counted,
        "reordered count differs from RFC 4737 on the release order"
    );
    if reorder_off {
        assert_eq!(t.reordered, 0);
    }
}

/// Addresses and ports of an IPv4 or IPv6 packet without extension headers, read directly.
fn direct(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, usize)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let s: [u8; 4] = p[12..16].try_into().ok()?;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            let ihl = usize::from(p[0] & 0xF) * 4;
            Some((
                Ipv4Addr::from(s).into(),
                Ipv4Addr::from(d).into(),
                p[9],
                ihl,
            ))
        }
        6 if p.len() >= 40 => {
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            Some((Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into(), p[6], 40))
        }
        _ => None,
    }
}

/// The same packet seen in the other direction: addresses and, for TCP or UDP, ports swapped.
fn reversed(p: &[u8]) -> Vec<u8> {
    let mut r = p.to_vec();
    if let Some((_, _, proto, hl)) = direct(p) {
        if p[0] >> 4 == 4 {
            r[12..16].copy_from_slice(&p[16..20]);
            r[16..20].copy_from_slice(&p[12..16]);
        } else {
            r[8..24].copy_from_slice(&p[24..40]);
            r[24..40].copy_from_slice(&p[8..24]);
        }
        if (proto == 6 || proto == 17) && p.len() >= hl + 4 {
            r[hl..hl + 2].copy_from_slice(&p[hl + 2..hl + 4]);
            r[hl + 2..hl + 4].copy_from_slice(&p[hl..hl + 2]);
        }
    }
    r
}

fn check_summary(p: &[u8], s: &Summary) {
    assert_eq!(s.ip_len, p.len());
    let (src, dst, proto, hl) = direct(p).expect("a decoded packet has an IP header");
    assert_eq!(
        (s.src, s.dst),
        (src, dst),
        "addresses differ from the header's"
    );
    let plain = p[0] >> 4 == 4 || matches!(proto, 6 | 17 | 1 | 58);
    match &s.transport {
        Transport::Tcp {
            src_port,
            dst_port,
            len,
            ..
        } => {
            assert_eq!(proto, 6);
            assert!(hl + 20 + len <= p.len());
            assert_eq!(*src_port, u16::from_be_bytes([p[hl], p[hl + 1]]));
            assert_eq!(*dst_port, u16::from_be_bytes([p[hl + 2], p[hl + 3]]));
        }
        Transport::Udp {
            src_port,
            dst_port,
            len,
        } => {
            assert_eq!(proto, 17);
            assert!(hl + 8 + len <= p.len());
            assert_eq!(*src_port, u16::from_be_bytes([p[hl], p[hl + 1]]));
            assert_eq!(*dst_port, u16::from_be_bytes([p[hl + 2], p[hl + 3]]));
        }
        Transport::Icmp { len } => assert!(hl + len <= p.len()),
        Transport::Other { number } => {
            if plain {
                assert_eq!(*number, proto);
            }
        }
    }
    let text = s.to_string();
    assert!(!text.contains('\n'));
}

/// The trace decoder on arbitrary bytes as a TUN device hands them over.
///
/// A decoded packet's addresses, protocol and ports are the header's own bytes and its payload
/// lies inside the packet; the packet, its reverse and the packet again go through the trace's
/// window-scale learning, whose windows stay within 16 bits shifted by at most 14 (RFC 7323);
/// every trace line is one line.
pub fn link_trace(data: &[u8]) {
    match Summary::decode(data) {
        Ok(s) => check_summary(data, &s),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let mut scales = WindowScales::default();
    let back = reversed(data);
    let fates = [
        Fate::Dropped,
        Fate::Queued {
            copies: 2,
            reordered: true,
            release_at: Duration::from_millis(3),
        },
        Fate::Queued {
            copies: 1,
            reordered: false,
            release_at: Duration::ZERO,
        },
    ];
    for (i, (packet, direction)) in [
        (data, Direction::LeftToRight),
        (&back[..], Direction::RightToLeft),
        (data, Direction::LeftToRight),
    ]
    .into_iter()
    .enumerate()
    {
        let at = Duration::from_micros(1_000 * i as u64);
        let action = Action::from_fate(fates[i], at);
        let line = Line::new(at, direction, packet, action, &mut scales);
        if let Some(w) = line.window_bytes {
            assert!(w <= 65_535 << 14, "window {w} beyond RFC 7323's scale");
        }
        assert!(!line.to_string().contains('\n'));
    }
}
