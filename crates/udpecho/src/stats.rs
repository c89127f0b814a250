//! The probe's statistics, without I/O: fed with send and reply events, it counts exactly.
//!
//! Definitions (docs/udp.md explains each with its RFC):
//! - **lost**: probes sent with no reply within the wait (RFC 7680 one-way loss, here for the
//!   round trip). Split into **upstream** (the server never received it: sent minus the
//!   server's count of distinct probes) and **downstream** (the server received it, the reply
//!   never came back), as irtt does.
//! - **duplicates**: replies for a sequence number already answered (RFC 5560).
//! - **reordered**: RFC 4737 section 3: a reply whose sequence number is below the next
//!   expected one (one more than the highest received so far). Duplicates are not considered.
//!   The ratio is reordered / received; the reordering extent (section 4.2.1) of a reordered
//!   reply is how many arrivals ago the first reply with a higher number came; the maximum is
//!   reported. irtt's "late" count is the same event (below the highest received so far).
//! - **RTT**: reply arrival minus send time, both on the client's clock; percentiles by nearest
//!   rank over every reply (exact, not a histogram).
//! - **IPDV**: RFC 5481 inter-packet delay variation of consecutive sequence numbers whose
//!   replies both came back: RTT(n+1) - RTT(n); mean and 99th percentile.
//! - **jitter**: RFC 3550 section 6.4.1 interarrival jitter, J += (|D| - J) / 16 over replies in
//!   arrival order, D being the change in transit time (here the RTT) from the previous reply,
//!   starting from the first pair.
//! - **timer**: how late each probe left against its schedule (send time minus planned time).

use crate::wire::ProbePacket;

const NONE: u64 = u64::MAX;

/// The server's answer to the final counters request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ServerFinal {
    /// Distinct probes of this flow the server received.
    pub received: u64,
}

/// What happened to one probe, for `--packets`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PacketRecord {
    pub seq: u64,
    /// Send time, ns since the probe started.
    pub sent_ns: u64,
    /// Round-trip time, if a reply came back within the wait.
    pub rtt_ns: Option<u64>,
    /// Replies beyond the first.
    pub duplicates: u32,
    /// For a lost probe: "upstream", "downstream", or "unknown" when no later reply's window
    /// covered it.
    pub lost: Option<&'static str>,
    /// Its first reply arrived after the reply of a later probe (RFC 4737 reordering).
    pub reordered: bool,
}

/// The probe's report: every figure.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Lost on the way to the server (exact when `server_received` is known).
    pub lost_upstream: Option<u64>,
    /// Lost on the way back.
    pub lost_downstream: Option<u64>,
    /// The server's count of distinct probes, from the final counters request.
    pub server_received: Option<u64>,
    pub loss_ratio: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub reordered_ratio: f64,
    pub reorder_extent_max: u64,
    /// irtt's "late packets": arrived below the highest sequence number received so far.
    pub late: u64,
    /// Replies that came after the wait: counted as lost.
    pub too_late: u64,
    pub rtt_min_ns: Option<u64>,
    pub rtt_mean_ns: Option<f64>,
    pub rtt_p50_ns: Option<u64>,
    pub rtt_p90_ns: Option<u64>,
    pub rtt_p99_ns: Option<u64>,
    pub rtt_max_ns: Option<u64>,
    pub rtt_stddev_ns: Option<f64>,
    /// Consecutive pairs both received.
    pub ipdv_pairs: u64,
    pub ipdv_mean_ns: Option<f64>,
    pub ipdv_p99_ns: Option<i64>,
    pub jitter_rfc3550_ns: f64,
    /// Probes sent per second, first to last send.
    pub send_rate_pps: f64,
    pub timer_error_mean_ns: f64,
    pub timer_error_max_ns: u64,
}

/// The accumulator.
#[derive(Debug)]
pub struct Stats {
    wait_ns: u64,
    capacity: u64,
    sent: u64,
    send_ns: Vec<u64>,
    rtt_ns: Vec<u64>,
    dups: Vec<u32>,
    /// Per probe: its first reply arrived after a later probe's.
    late_reply: Vec<bool>,
    /// Per probe, from later replies' windows: 0 unknown, 1 the server had it, 2 it had not.
    server_seen: Vec<u8>,
    next_expected: u64,
    /// After each first reply in arrival order, the next expected sequence number then.
    running_next: Vec<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    extent_max: u64,
    too_late: u64,
    last_transit: Option<u64>,
    jitter: f64,
    timer_error_sum: u128,
    timer_error_max: u64,
    first_send: Option<u64>,
    last_send: u64,
}

impl Stats {
    /// An accumulator for at most `capacity` probes, counting replies later than `wait_ns`
    /// after their send as lost.
    pub fn new(capacity: u64, wait_ns: u64) -> Self {
        Self {
            wait_ns,
            capacity,
            sent: 0,
            send_ns: Vec::new(),
            rtt_ns: Vec::new(),
            dups: Vec::new(),
            late_reply: Vec::new(),
            server_seen: Vec::new(),
            next_expected: 0,
            running_next: Vec::new(),
            received: 0,
            duplicates: 0,
            reordered: 0,
            extent_max: 0,
            too_late: 0,
            last_transit: None,
            jitter: 0.0,
            timer_error_sum: 0,
            timer_error_max: 0,
            first_send: None,
            last_send: 0,
        }
    }

    fn grow(&mut self, seq: u64) {
        let need = (seq + 1) as usize;
        if self.rtt_ns.len() < need {
            self.send_ns.resize(need, NONE);
            self.rtt_ns.resize(need, NONE);
            self.dups.resize(need, 0);
            self.late_reply.resize(need, false);
            self.server_seen.resize(need, 0);
        }
    }

    /// Probe `seq` left at `sent_ns`, planned for `planned_ns` (client clock, ns).
    pub fn on_send(&mut self, seq: u64, planned_ns: u64, sent_ns: u64) {
        if seq >= self.capacity {
            return;
        }
        self.grow(seq);
        self.send_ns[seq as usize] = sent_ns;
        self.sent = self.sent.max(seq + 1);
        let err = sent_ns.saturating_sub(planned_ns);
        self.timer_error_sum += u128::from(err);
        self.timer_error_max = self.timer_error_max.max(err);
        self.first_send = Some(self.first_send.map_or(sent_ns, |f| f.min(sent_ns)));
        self.last_send = self.last_send.max(sent_ns);
    }

    /// A reply arrived at `recv_ns` (client clock). Returns false if it was not counted as a
    /// reply (out of range).
    pub fn on_reply(&mut self, recv_ns: u64, reply: &ProbePacket) -> bool {
        let seq = reply.seq;
        if seq >= self.capacity {
            return false;
        }
        self.grow(seq);
        let s = seq as usize;
        if reply.has_state() {
            for i in 0..64u64 {
                let Some(older) = seq.checked_sub(1 + i) else {
                    break;
                };
                let o = older as usize;
                if reply.window & (1 << i) != 0 {
                    self.server_seen[o] = 1;
                } else if self.server_seen[o] == 0 {
                    self.server_seen[o] = 2;
                }
            }
        }
        self.server_seen[s] = 1;
        if self.rtt_ns[s] != NONE {
            self.duplicates += 1;
            self.dups[s] = self.dups[s].saturating_add(1);
            return true;
        }
        // The largest value stands for "no reply" in `rtt_ns`: a real RTT stops one short.
        let rtt = recv_ns.saturating_sub(reply.client_send_ns).min(NONE - 1);
        if rtt > self.wait_ns {
            self.too_late += 1;
            return true;
        }
        self.rtt_ns[s] = rtt;
        self.received += 1;
        if seq < self.next_expected {
            self.reordered += 1;
            self.late_reply[s] = true;
            // The earliest arrival after which the next expected number passed this one.
            let first_higher = self.running_next.partition_point(|&n| n <= seq);
            let extent = (self.running_next.len() - first_higher) as u64;
            self.extent_max = self.extent_max.max(extent);
        } else {
            self.next_expected = seq + 1;
        }
        self.running_next.push(self.next_expected);
        let transit = rtt;
        if let Some(prev) = self.last_transit {
            let d = transit.abs_diff(prev) as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        true
    }

    /// Replies counted so far (for progress lines).
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// The report over `sent` probes (sequence numbers 0..sent), with the server's final count
    /// if it answered.
    pub fn report(&self, sent: u64, server: Option<ServerFinal>) -> Report {
        let sent = sent.min(self.capacity).max(self.sent);
        let lost = sent - self.received.min(sent);
        let (lost_upstream, lost_downstream) = match server {
            Some(f) => {
                let up = sent.saturating_sub(f.received);
                (Some(up), Some(lost.saturating_sub(up)))
            }
            None => (None, None),
        };
        let mut rtts: Vec<u64> = self.rtt_ns.iter().copied().filter(|&r| r != NONE).collect();
        rtts.sort_unstable();
        let n = rtts.len();
        let pct = |p: f64| -> Option<u64> {
            if n == 0 {
                return None;
            }
            let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
            Some(rtts[rank - 1])
        };
        let (mean, stddev) = if n == 0 {
            (None, None)
        } else {
            let mean = rtts.iter().map(|&r| r as f64).sum::<f64>() / n as f64;
            let var = rtts.iter().map(|&r| (r as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            (Some(mean), Some(var.sqrt()))
        };
        let mut ipdv: Vec<i64> = self
            .rtt_ns
            .windows(2)
            .filter(|w| w[0] != NONE && w[1] != NONE)
            .map(|w| {
                // Both are at most the wait, which a user may set past i64::MAX nanoseconds.
                let d = i128::from(w[1]) - i128::from(w[0]);
                i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
            })
            .collect();
        ipdv.sort_unstable();
        let ipdv_mean = (!ipdv.is_empty())
            .then(|| ipdv.iter().map(|&d| d as f64).sum::<f64>() / ipdv.len() as f64);
        let ipdv_p99 = (!ipdv.is_empty()).then(|| {
            let rank = ((0.99 * ipdv.len() as f64).ceil() as usize).clamp(1, ipdv.len());
            ipdv[rank - 1]
        });
        let span = self.last_send.saturating_sub(self.first_send.unwrap_or(0));
        let send_rate = if span > 0 && self.sent > 1 {
            (self.sent - 1) as f64 / (span as f64 / 1e9)
        } else {
            0.0
        };
        Report {
            sent,
            received: self.received,
            lost,
            lost_upstream,
            lost_downstream,
            server_received: server.map(|f| f.received),
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            duplicates: self.duplicates,
            reordered: self.reordered,
            reordered_ratio: if self.received == 0 {
                0.0
            } else {
                self.reordered as f64 / self.received as f64
            },
            reorder_extent_max: self.extent_max,
            late: self.reordered,
            too_late: self.too_late,
            rtt_min_ns: rtts.first().copied(),
            rtt_mean_ns: mean,
            rtt_p50_ns: pct(0.50),
            rtt_p90_ns: pct(0.90),
            rtt_p99_ns: pct(0.99),
            rtt_max_ns: rtts.last().copied(),
            rtt_stddev_ns: stddev,
            ipdv_pairs: ipdv.len() as u64,
            ipdv_mean_ns: ipdv_mean,
            ipdv_p99_ns: ipdv_p99,
            jitter_rfc3550_ns: self.jitter,
            send_rate_pps: send_rate,
            timer_error_mean_ns: if self.sent == 0 {
                0.0
            } else {
                self.timer_error_sum as f64 / self.sent as f64
            },
            timer_error_max_ns: self.timer_error_max,
        }
    }

    /// One record per probe sent, in sequence order.
    pub fn packets(&self, sent: u64) -> impl Iterator<Item = PacketRecord> + '_ {
        (0..sent.min(self.rtt_ns.len() as u64)).map(|seq| {
            let s = seq as usize;
            let rtt = (self.rtt_ns[s] != NONE).then_some(self.rtt_ns[s]);
            let lost = rtt.is_none().then_some(match self.server_seen[s] {
                1 => "downstream",
                2 => "upstream",
                _ => "unknown",
            });
            PacketRecord {
                seq,
                sent_ns: if self.send_ns[s] == NONE {
                    0
                } else {
                    self.send_ns[s]
                },
                rtt_ns: rtt,
                duplicates: self.dups[s],
                lost,
                reordered: self.late_reply[s],
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Sends `n` probes 1 ms apart, then delivers replies in `order` (sequence numbers, a
    /// repeat is a duplicate) with the given RTTs in ms.
    fn drive(n: u64, replies: &[(u64, u64)], server: Option<u64>) -> Report {
        let mut s = Stats::new(1000, 1000 * MS);
        for seq in 0..n {
            s.on_send(seq, seq * MS, seq * MS + 1000);
        }
        for &(seq, rtt_ms) in replies {
            let p = ProbePacket {
                seq,
                client_send_ns: seq * MS + 1000,
                flags: crate::wire::FLAG_REPLY,
                ..ProbePacket::default()
            };
            assert!(s.on_reply(seq * MS + 1000 + rtt_ms * MS, &p));
        }
        s.report(n, server.map(|received| ServerFinal { received }))
    }

    #[test]
    fn clean_run() {
        let replies: Vec<_> = (0..10).map(|s| (s, 2)).collect();
        let r = drive(10, &replies, Some(10));
        assert_eq!((r.sent, r.received, r.lost), (10, 10, 0));
        assert_eq!((r.lost_upstream, r.lost_downstream), (Some(0), Some(0)));
        assert_eq!((r.duplicates, r.reordered, r.reorder_extent_max), (0, 0, 0));
        assert_eq!(r.rtt_p50_ns, Some(2 * MS));
        assert_eq!(r.rtt_stddev_ns, Some(0.0));
        assert_eq!(r.ipdv_pairs, 9);
        assert_eq!(r.ipdv_mean_ns, Some(0.0));
        assert_eq!(r.jitter_rfc3550_ns, 0.0);
        assert_eq!(r.timer_error_max_ns, 1000);
        assert!((r.send_rate_pps - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn loss_burst_split_by_the_server_count() {
        // 3, 4 and 5 lost in a burst: the server saw 8 of 10, so 2 upstream, 1 downstream.
        let replies: Vec<_> = [0, 1, 2, 6, 7, 8, 9].iter().map(|&s| (s, 1)).collect();
        let r = drive(10, &replies, Some(8));
        assert_eq!(r.lost, 3);
        assert_eq!(r.lost_upstream, Some(2));
        assert_eq!(r.lost_downstream, Some(1));
        assert!((r.loss_ratio - 0.3).abs() < 1e-9);
        // IPDV pairs: (0,1), (1,2), (6,7), (7,8), (8,9).
        assert_eq!(r.ipdv_pairs, 5);
        let r = drive(10, &replies, None);
        assert_eq!((r.lost_upstream, r.lost_downstream), (None, None));
    }

    #[test]
    fn duplicates_are_counted_once_and_not_as_reordering() {
        let r = drive(
            4,
            &[(0, 1), (1, 1), (1, 1), (2, 1), (0, 1), (3, 1)],
            Some(4),
        );
        assert_eq!(r.received, 4);
        assert_eq!(r.duplicates, 2);
        assert_eq!(r.reordered, 0);
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn reordering_ratio_and_extent() {
        // RFC 4737 example shape: 1 and 2 overtaken by 3, 4, 5; 2 arrives three arrivals after
        // 3 did (3, 4, 5, 1, 2: extent of 1 is 3, of 2 is 4).
        let r = drive(
            6,
            &[(0, 1), (3, 1), (4, 1), (5, 1), (1, 5), (2, 5)],
            Some(6),
        );
        assert_eq!(r.reordered, 2);
        assert_eq!(r.late, 2);
        assert_eq!(r.reorder_extent_max, 4);
        assert!((r.reordered_ratio - 2.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn late_replies_after_the_wait_are_lost() {
        let r = drive(3, &[(0, 1), (1, 2000), (2, 1)], Some(3));
        assert_eq!(r.received, 2);
        assert_eq!(r.too_late, 1);
        assert_eq!(r.lost, 1);
        assert_eq!(r.lost_downstream, Some(1));
    }

    #[test]
    fn rtt_percentiles_ipdv_and_jitter() {
        // RTTs 1..=100 ms in order.
        let replies: Vec<_> = (0..100).map(|s| (s, s + 1)).collect();
        let r = drive(100, &replies, Some(100));
        assert_eq!(r.rtt_min_ns, Some(MS));
        assert_eq!(r.rtt_p50_ns, Some(50 * MS));
        assert_eq!(r.rtt_p90_ns, Some(90 * MS));
        assert_eq!(r.rtt_p99_ns, Some(99 * MS));
        assert_eq!(r.rtt_max_ns, Some(100 * MS));
        assert_eq!(r.rtt_mean_ns, Some(50.5 * MS as f64));
        // Each IPDV is +1 ms.
        assert_eq!(r.ipdv_mean_ns, Some(MS as f64));
        assert_eq!(r.ipdv_p99_ns, Some(MS as i64));
        // RFC 3550: J after k steps of D = 1 ms is 1 ms * (1 - (15/16)^k), k = 99.
        let expect = MS as f64 * (1.0 - (15.0f64 / 16.0).powi(99));
        assert!(
            (r.jitter_rfc3550_ns - expect).abs() < 1.0,
            "{}",
            r.jitter_rfc3550_ns
        );
    }

    /// A reply a broken or hostile server might send: sequence number 2^64-1, a send time
    /// the client never used, every window bit and the largest count, written byte by byte.
    const WILD_REPLY: [u8; 56] = [
        b'P', b'L', b'U', b'E', 1, 0x01, 0, 0, // magic, version, REPLY, reserved
        0, 0, 0, 1, 0, 0, 0, 0, // flow 1, reserved
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // seq 2^64-1
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // client send time 2^64-1 ns
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // server receive time
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // server count
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // window
    ];

    #[test]
    fn wild_numbers_in_replies_are_refused_or_clamped() {
        let mut s = Stats::new(10, u64::MAX);
        for seq in 0..3 {
            s.on_send(seq, 0, 0);
        }
        let mut p = ProbePacket::parse(&WILD_REPLY).unwrap();
        assert!(
            !s.on_reply(5, &p),
            "a sequence number never sent is not a reply"
        );
        // In range, but sent "in the future" (RTT 0) and claiming every window bit.
        p.seq = 0;
        assert!(s.on_reply(5, &p));
        p.seq = 2;
        assert!(s.on_reply(5, &p));
        // Sent at 0, back at the end of time: the largest RTT there is.
        p.seq = 1;
        p.client_send_ns = 0;
        assert!(s.on_reply(u64::MAX, &p));
        let r = s.report(3, Some(ServerFinal { received: u64::MAX }));
        assert_eq!((r.received, r.lost), (3, 0));
        assert_eq!((r.lost_upstream, r.lost_downstream), (Some(0), Some(0)));
        assert_eq!((r.rtt_min_ns, r.rtt_max_ns), (Some(0), Some(u64::MAX - 1)));
        assert_eq!(r.ipdv_pairs, 2);
        assert_eq!(
            r.ipdv_p99_ns,
            Some(i64::MAX),
            "0 to 2^64-2 and back, clamped"
        );
        assert!(s.packets(3).all(|p| p.lost.is_none()));
    }

    #[test]
    fn windows_classify_lost_packets() {
        let mut s = Stats::new(100, 1000 * MS);
        for seq in 0..4 {
            s.on_send(seq, 0, 0);
        }
        // Reply to 3 says: 2 received, 1 not, 0 received. 0 and 2 replies lost; 1 never arrived.
        let p = ProbePacket {
            seq: 3,
            flags: crate::wire::FLAG_REPLY,
            window: 0b101,
            ..ProbePacket::default()
        };
        s.on_reply(10, &p);
        let lost: Vec<_> = s.packets(4).map(|p| p.lost).collect();
        assert_eq!(
            lost,
            [
                Some("downstream"),
                Some("upstream"),
                Some("downstream"),
                None
            ]
        );
    }
}
