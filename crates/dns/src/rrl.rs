//! Response rate limiting (RRL) for the lab zone server, as knot and NSD do it: a server that
//! answers UDP can be used to reflect and amplify traffic at a forged source address, since a
//! small query earns a large reply. Replies are limited per client network (IPv4 /24, IPv6 /56),
//! so a victim is protected however the attacker spreads the forged addresses inside it.
//!
//! Over the limit a reply is dropped, except every `slip`-th, which goes out truncated (TC=1,
//! no records): a real client behind that network retries over TCP, which a forged source
//! cannot do, and the truncated reply is no larger than the query.
//!
//! Sans-I/O: the caller passes the time in; the table is fixed in size (no allocation after
//! [`RateLimiter::new`]) and keyed by a seeded hash, so memory is capped whatever the addresses.

use std::net::IpAddr;
use std::time::Instant;

/// Settings of the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlConfig {
    /// Replies per second per client network; 0 turns limiting off.
    pub rate: u32,
    /// Every `slip`-th reply over the limit goes out truncated; 0 never, 1 every one.
    pub slip: u32,
}

/// What to do with one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: send it.
    Send,
    /// Over the limit: send a truncated reply (TC=1, no records) instead.
    Slip,
    /// Over the limit: send nothing.
    Drop,
}

/// Buckets in the table: a fixed 4,096 (about 200 KiB), as knot's default table is fixed.
const BUCKETS: usize = 4_096;

/// Credit is kept in thousandths of a reply, so refills of a few milliseconds count.
const MILLI: u64 = 1_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The client network this bucket counts, or `None` while unused.
    network: Option<u128>,
    /// Credit in thousandths of a reply, at most one second's worth.
    credit: u64,
    last: Instant,
    /// Replies over the limit so far, to pick every `slip`-th.
    excess: u64,
}

/// Counters of the limiter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RrlStats {
    pub limited: u64,
    pub slipped: u64,
    pub dropped: u64,
}

/// A token bucket per client network, in a fixed table.
#[derive(Debug)]
pub struct RateLimiter {
    config: RrlConfig,
    table: Vec<Bucket>,
    seed: u64,
    stats: RrlStats,
}

/// The client network of `ip`: its /24 (IPv4) or /56 (IPv6), tagged so the two never meet.
pub fn network(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (1 << 64) | u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => (2 << 64) | u128::from((u128::from(v6) >> 64) as u64 & !0xff),
    }
}

impl RateLimiter {
    /// A limiter whose table is keyed by `seed` (from the server's RNG), at time `now`.
    pub fn new(config: RrlConfig, seed: u64, now: Instant) -> Self {
        let empty = Bucket {
            network: None,
            credit: 0,
            last: now,
            excess: 0,
        };
        Self {
            config,
            table: vec![empty; if config.rate == 0 { 0 } else { BUCKETS }],
            seed,
            stats: RrlStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> RrlStats {
        self.stats
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.config.rate > 0
    }

    fn slot(&self, network: u128) -> usize {
        let folded = (network as u64) ^ ((network >> 64) as u64).rotate_left(29);
        let h = (folded ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 52) as usize % BUCKETS
    }

    /// Decides the fate of one reply to `client` at `now`.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Verdict {
        if !self.enabled() {
            return Verdict::Send;
        }
        let full = u64::from(self.config.rate) * MILLI;
        let net = network(client);
        let i = self.slot(net);
        let b = &mut self.table[i];
        let elapsed = now.saturating_duration_since(b.last).as_millis() as u64;
        b.last = now;
        b.credit = b
            .credit
            .saturating_add(elapsed.saturating_mul(u64::from(self.config.rate)))
            .min(full);
        if b.network != Some(net) {
            // Another network hashed here. An idle bucket (refilled to full) is taken over; a
            // busy one is shared, so colliding networks are limited together rather than a
            // forged address resetting a victim's count.
            if b.network.is_none() || b.credit == full {
                b.network = Some(net);
                b.credit = full;
                b.excess = 0;
            }
        }
        if b.credit >= MILLI {
            b.credit -= MILLI;
            return Verdict::Send;
        }
        b.excess += 1;
        self.stats.limited += 1;
        let slip = u64::from(self.config.slip);
        if slip > 0 && b.excess % slip == 0 {
            self.stats.slipped += 1;
            Verdict::Slip
        } else {
            self.stats.dropped += 1;
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_gets_the_rate_then_every_slip_th_is_truncated() {
        let t0 = Instant::now();
        let mut rrl = RateLimiter::new(RrlConfig { rate: 5, slip: 2 }, 7, t0);
        let verdicts: Vec<Verdict> = (0..15).map(|_| rrl.check(ip("192.0.2.1"), t0)).collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Send));
        let over = &verdicts[5..];
        assert_eq!(over.iter().filter(|v| **v == Verdict::Slip).count(), 5);
        assert_eq!(over.iter().filter(|v| **v == Verdict::Drop).count(), 5);
        assert_eq!(over[0], Verdict::Drop);
        assert_eq!(over[1], Verdict::Slip);
        assert_eq!(
            rrl.stats(),
            RrlStats {
                limited: 10,
                slipped: 5,
                dropped: 5
            }
        );
        // The same /24 shares the bucket; another /24 has its own.
        assert_eq!(rrl.check(ip("192.0.2.200"), t0), Verdict::Drop);
        assert_eq!(rrl.check(ip("198.51.100.1"), t0), Verdict::Send);
        // Credit comes back at the rate: 200 ms is one more reply.
        assert_eq!(
            rrl.check(ip("192.0.2.1"), t0 + Duration::from_millis(200)),
            Verdict::Send
        );
        assert_ne!(
            rrl.check(ip("192.0.2.1"), t0 + Duration::from_millis(200)),
            Verdict::Send
        );
        // After a quiet second the whole burst is allowed again, and no more.
        let t1 = t0 + Duration::from_secs(5);
        let sent = (0..20)
            .filter(|_| rrl.check(ip("192.0.2.1"), t1) == Verdict::Send)
            .count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn slip_zero_drops_all_and_rate_zero_is_off() {
        let t0 = Instant::now();
        let mut rrl = RateLimiter::new(RrlConfig { rate: 1, slip: 0 }, 1, t0);
        assert_eq!(rrl.check(ip("2001:db8::1"), t0), Verdict::Send);
        for _ in 0..10 {
            assert_eq!(
                rrl.check(ip("2001:db8:0:ff::9"), t0),
                Verdict::Drop,
                "same /56"
            );
        }
        assert_eq!(
            rrl.check(ip("2001:db8:0:100::1"), t0),
            Verdict::Send,
            "next /56"
        );
        let mut off = RateLimiter::new(RrlConfig { rate: 0, slip: 2 }, 1, t0);
        assert!((0..1000).all(|_| off.check(ip("192.0.2.1"), t0) == Verdict::Send));
        assert_eq!(off.stats(), RrlStats::default());
    }

    #[test]
    fn the_table_is_fixed_whatever_the_sources() {
        let t0 = Instant::now();
        let mut rrl = RateLimiter::new(RrlConfig { rate: 2, slip: 2 }, 99, t0);
        for i in 0..200_000u32 {
            let _ = rrl.check(IpAddr::V4(i.wrapping_mul(2_654_435_761).into()), t0);
        }
        assert_eq!(rrl.table.len(), BUCKETS);
        assert_eq!(rrl.table.capacity(), BUCKETS);
    }

    #[test]
    fn networks() {
        assert_eq!(network(ip("192.0.2.1")), network(ip("192.0.2.254")));
        assert_ne!(network(ip("192.0.2.1")), network(ip("192.0.3.1")));
        assert_eq!(
            network(ip("2001:db8:0:1::1")),
            network(ip("2001:db8:0:ff::1"))
        );
        assert_ne!(
            network(ip("2001:db8:0:1::1")),
            network(ip("2001:db8:0:100::1"))
        );
        assert_ne!(network(ip("0.0.0.0")), network(ip("::")));
    }
}
