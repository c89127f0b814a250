//! The packet trace, without I/O: decode an IP packet's headers (with etherparse) and say in one
//! line what it was and what the link did to it.
//!
//! A line reads
//! `   0.001204 L>R 198.18.0.1:40312 > 198.18.0.2:9999 TCP [SYN] seq=2882931713 ack=0 win=64240 len=0  forwarded`:
//! seconds since the link came up, the direction (left to right or right to left), the
//! addresses, then for TCP the flags, the sequence and acknowledgement numbers, the window and
//! the payload length, and last the link's decision. The window is in bytes, scaled by the
//! window-scale option of RFC 7323 when the trace saw the connection's handshake (see
//! [`WindowScales`]), and as the raw 16-bit field otherwise.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use serde::Serialize;

use crate::engine::Fate;

/// Which way a packet crosses the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LeftToRight,
    RightToLeft,
}

impl Direction {
    /// The short form used in trace lines.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::LeftToRight => "L>R",
            Direction::RightToLeft => "R>L",
        }
    }
}

/// TCP's control flags, the ones a trace shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpFlags {
    pub fin: bool,
    pub syn: bool,
    pub rst: bool,
    pub psh: bool,
    pub ack: bool,
    pub urg: bool,
}

impl fmt::Display for TcpFlags {
    /// Written as Wireshark does, in bit order: `[SYN, ACK]`, `[FIN, ACK]`, `[PSH, ACK]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.fin, "FIN"),
            (self.syn, "SYN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.ack, "ACK"),
            (self.urg, "URG"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        write!(f, "[{}]", set.join(", "))
    }
}

/// What a packet carries above IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum Transport {
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        window: u16,
        /// The window-scale option's shift count, when this segment (a SYN) carries one.
        wscale: Option<u8>,
        len: usize,
    },
    Udp {
        src_port: u16,
        dst_port: u16,
        len: usize,
    },
    Icmp {
        len: usize,
    },
    /// Another protocol, by its IP protocol number (or IPv6 next header).
    Other {
        number: u8,
    },
}

/// The decoded headers of one IP packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The whole packet's length in bytes, IP header included.
    pub ip_len: usize,
    pub transport: Transport,
}

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed IP packet: {0}")]
pub struct DecodeError(String);

impl Summary {
    /// Decodes an IPv4 or IPv6 packet as a TUN device hands it over (no link-layer header).
    ///
    /// # Errors
    /// The bytes are not a well-formed IP packet (truncated, wrong version, bad header length).
    pub fn decode(packet: &[u8]) -> Result<Summary, DecodeError> {
        let sliced = SlicedPacket::from_ip(packet).map_err(|e| DecodeError(e.to_string()))?;
        let (src, dst, number) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::V4(ip.header().source_addr()),
                IpAddr::V4(ip.header().destination_addr()),
                ip.header().protocol().0,
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::V6(ip.header().source_addr()),
                IpAddr::V6(ip.header().destination_addr()),
                ip.payload().ip_number.0,
            ),
            _ => return Err(DecodeError("no IP header".into())),
        };
        let transport = match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => Transport::Tcp {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                flags: TcpFlags {
                    fin: tcp.fin(),
                    syn: tcp.syn(),
                    rst: tcp.rst(),
                    psh: tcp.psh(),
                    ack: tcp.ack(),
                    urg: tcp.urg(),
                },
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                window: tcp.window_size(),
                wscale: tcp.options_iterator().find_map(|o| match o {
                    Ok(TcpOptionElement::WindowScale(shift)) => Some(shift),
                    _ => None,
                }),
                len: tcp.payload().len(),
            },
            Some(TransportSlice::Udp(udp)) => Transport::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                len: udp.payload().len(),
            },
            Some(TransportSlice::Icmpv4(icmp)) => Transport::Icmp {
                len: icmp.payload().len(),
            },
            Some(TransportSlice::Icmpv6(icmp)) => Transport::Icmp {
                len: icmp.payload().len(),
            },
            None => Transport::Other { number },
        };
        Ok(Summary {
            src,
            dst,
            ip_len: packet.len(),
            transport,
        })
    }
}

impl Summary {
    /// Writes the summary, with `window` in place of the raw window field when known.
    fn write(&self, f: &mut fmt::Formatter<'_>, window_bytes: Option<u64>) -> fmt::Result {
        match &self.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
                ack,
                window,
                len,
                ..
            } => {
                let win = window_bytes.unwrap_or(u64::from(*window));
                write!(
                    f,
                    "{} > {} TCP {flags} seq={seq} ack={ack} win={win} len={len}",
                    sock(self.src, *src_port),
                    sock(self.dst, *dst_port)
                )
            }
            Transport::Udp {
                src_port,
                dst_port,
                len,
            } => write!(
                f,
                "{} > {} UDP len={len}",
                sock(self.src, *src_port),
                sock(self.dst, *dst_port)
            ),
            Transport::Icmp { len } => write!(f, "{} > {} ICMP len={len}", self.src, self.dst),
            Transport::Other { number } => write!(
                f,
                "{} > {} IP protocol {number} len={}",
                self.src, self.dst, self.ip_len
            ),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, None)
    }
}

/// What the trace learned from handshakes: each TCP endpoint's window-scale shift.
///
/// RFC 7323: a window field is scaled only when both SYNs carried the option; the shift that
/// applies is the one the segment's sender announced; SYN segments are never scaled. A
/// connection whose handshake the trace did not see keeps its raw window.
#[derive(Debug, Default)]
pub struct WindowScales {
    /// (source, source port, destination, destination port) of a SYN -> its shift, if any.
    shifts: HashMap<(IpAddr, u16, IpAddr, u16), Option<u8>>,
}

/// Connections remembered at most; past it the memory starts again empty.
const MAX_CONNECTIONS: usize = 65_536;

impl WindowScales {
    /// Learns from `packet` and returns its window in bytes, when it is TCP and knowable.
    pub fn observe(&mut self, packet: &Summary) -> Option<u64> {
        let Transport::Tcp {
            src_port,
            dst_port,
            flags,
            window,
            wscale,
            ..
        } = &packet.transport
        else {
            return None;
        };
        let mine = (packet.src, *src_port, packet.dst, *dst_port);
        if flags.syn {
            if self.shifts.len() >= MAX_CONNECTIONS {
                self.shifts.clear();
            }
            // RFC 7323 caps the shift at 14.
            self.shifts.insert(mine, wscale.map(|s| s.min(14)));
            return Some(u64::from(*window));
        }
        let theirs = (packet.dst, *dst_port, packet.src, *src_port);
        match (self.shifts.get(&mine), self.shifts.get(&theirs)) {
            (Some(Some(shift)), Some(Some(_))) => Some(u64::from(*window) << shift),
            (Some(_), Some(_)) => Some(u64::from(*window)),
            _ => None,
        }
    }
}

fn sock(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// What the link did to a packet, as the trace tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Action {
    pub dropped: bool,
    /// Copies delivered: 1 normally, 2 when duplicated, 0 when dropped.
    pub copies: u8,
    pub reordered: bool,
    /// How long the link holds the packet before delivering it.
    #[serde(serialize_with = "micros")]
    pub delay: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

impl Action {
    /// The action for the engine's decision about a packet that arrived at `now`.
    pub fn from_fate(fate: Fate, now: Duration) -> Action {
        match fate {
            Fate::Dropped => Action {
                dropped: true,
                copies: 0,
                reordered: false,
                delay: Duration::ZERO,
            },
            Fate::Queued {
                copies,
                reordered,
                release_at,
            } => Action {
                dropped: false,
                copies,
                reordered,
                delay: release_at.saturating_sub(now),
            },
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dropped {
            return f.write_str("DROPPED");
        }
        let mut parts = Vec::new();
        if self.copies > 1 {
            parts.push(format!("duplicated x{}", self.copies));
        }
        if self.reordered {
            parts.push("reordered".to_owned());
        }
        if !self.delay.is_zero() {
            parts.push(format!("delayed {:.1}ms", self.delay.as_secs_f64() * 1e3));
        }
        if parts.is_empty() {
            parts.push("forwarded".to_owned());
        }
        f.write_str(&parts.join(", "))
    }
}

/// One line of the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Time since the link came up.
    #[serde(serialize_with = "micros", rename = "time_us")]
    pub at: Duration,
    pub direction: Direction,
    /// The decoded packet, or `None` for bytes that are not well-formed IP.
    pub packet: Option<Summary>,
    /// The TCP window in bytes, when the trace saw the handshake (see [`WindowScales`]).
    pub window_bytes: Option<u64>,
    pub action: Action,
}

impl Line {
    /// The trace line of `packet`, crossing in `direction` at `at`, with the link's `action`;
    /// `scales` learns from it and scales its window.
    pub fn new(
        at: Duration,
        direction: Direction,
        packet: &[u8],
        action: Action,
        scales: &mut WindowScales,
    ) -> Line {
        let packet = Summary::decode(packet).ok();
        let window_bytes = packet.as_ref().and_then(|p| scales.observe(p));
        Line {
            at,
            direction,
            packet,
            window_bytes,
            action,
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>11.6} {} ",
            self.at.as_secs_f64(),
            self.direction.arrow()
        )?;
        match &self.packet {
            Some(p) => p.write(f, self.window_bytes)?,
            None => f.write_str("(not an IP packet)")?,
        }
        write!(f, "  {}", self.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 198.18.0.1:40312 to 198.18.0.2:9999 as Linux sends it (with MSS, SACK,
    /// timestamps and window scale options), byte for byte.
    const SYN: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x5a, 0x8e, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // IPv4, TCP
        198, 18, 0, 1, 198, 18, 0, 2, // source, destination
        0x9d, 0x78, 0x27, 0x0f, // ports 40312 > 9999
        0xab, 0xd6, 0x2b, 0x01, // seq 2882939649
        0x00, 0x00, 0x00, 0x00, // ack 0
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10 words, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum (not checked), urgent pointer
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08,
        0x0a, // MSS 1460, SACK permitted, timestamps
        0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03,
        0x07, // ..., NOP, WS 7
    ];

    #[test]
    fn decodes_a_syn_byte_for_byte() {
        let s = Summary::decode(&SYN).unwrap();
        assert_eq!(s.src, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.dst, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(s.ip_len, 60);
        assert_eq!(
            s.transport,
            Transport::Tcp {
                src_port: 40312,
                dst_port: 9999,
                flags: TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                },
                seq: 2_882_939_649,
                ack: 0,
                window: 64240,
                wscale: Some(7),
                len: 0,
            }
        );
        assert_eq!(
            s.to_string(),
            "198.18.0.1:40312 > 198.18.0.2:9999 TCP [SYN] seq=2882939649 ack=0 win=64240 len=0"
        );
    }

    #[test]
    fn decodes_udp_over_ipv4() {
        // 198.18.0.2:7777 > 198.18.0.1:5000, 4 bytes of payload.
        let pkt = [
            0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 198, 18, 0, 2,
            198, 18, 0, 1, 0x1e, 0x61, 0x13, 0x88, 0x00, 0x0c, 0x00, 0x00, b'p', b'i', b'n', b'g',
        ];
        let s = Summary::decode(&pkt).unwrap();
        assert_eq!(s.to_string(), "198.18.0.2:7777 > 198.18.0.1:5000 UDP len=4");
    }

    #[test]
    fn decodes_tcp_over_ipv6_with_flags_in_bit_order() {
        let mut pkt = vec![
            0x60, 0x00, 0x00, 0x00, 0x00, 0x15, 0x06,
            0x40, // version 6, payload 21, TCP, hop 64
        ];
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        pkt.extend_from_slice(&src);
        pkt.extend_from_slice(&dst);
        pkt.extend_from_slice(&[
            0x27, 0x0f, 0x9d, 0x78, // ports 9999 > 40312
            0x00, 0x00, 0x00, 0x64, // seq 100
            0x00, 0x00, 0x00, 0xc8, // ack 200
            0x50, 0x19, 0x01, 0xf5, // data offset 5, FIN PSH ACK, window 501
            0x00, 0x00, 0x00, 0x00, b'!',
        ]);
        let s = Summary::decode(&pkt).unwrap();
        assert_eq!(
            s.to_string(),
            "[2001:2::1]:9999 > [2001:2::2]:40312 TCP [FIN, PSH, ACK] seq=100 ack=200 win=501 len=1"
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(Summary::decode(&[]).is_err());
        assert!(Summary::decode(&[0x45, 0x00]).is_err());
        assert!(Summary::decode(&SYN[..30]).is_err());
        assert!(Summary::decode(&[0x10; 40]).is_err());
        let line = Line::new(
            Duration::from_millis(1),
            Direction::RightToLeft,
            &[0xff; 3],
            Action::from_fate(Fate::Dropped, Duration::ZERO),
            &mut WindowScales::default(),
        );
        assert_eq!(
            line.to_string(),
            "   0.001000 R>L (not an IP packet)  DROPPED"
        );
    }

    #[test]
    fn actions_read_as_the_link_did_them() {
        let now = Duration::from_millis(100);
        let plain = Fate::Queued {
            copies: 1,
            reordered: false,
            release_at: now,
        };
        assert_eq!(Action::from_fate(plain, now).to_string(), "forwarded");
        let busy = Fate::Queued {
            copies: 2,
            reordered: true,
            release_at: now + Duration::from_micros(20_260),
        };
        assert_eq!(
            Action::from_fate(busy, now).to_string(),
            "duplicated x2, reordered, delayed 20.3ms"
        );
        let line = Line::new(
            Duration::from_micros(1204),
            Direction::LeftToRight,
            &SYN,
            Action::from_fate(plain, now),
            &mut WindowScales::default(),
        );
        assert_eq!(
            line.to_string(),
            "   0.001204 L>R 198.18.0.1:40312 > 198.18.0.2:9999 TCP [SYN] seq=2882939649 ack=0 \
             win=64240 len=0  forwarded"
        );
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["time_us"], 1204);
        assert_eq!(json["direction"], "left_to_right");
        assert_eq!(json["packet"]["transport"]["protocol"], "tcp");
        assert_eq!(json["packet"]["transport"]["flags"]["syn"], true);
        assert_eq!(json["action"]["copies"], 1);
    }

    #[test]
    fn windows_are_scaled_once_both_syns_announced_a_shift() {
        let mut scales = WindowScales::default();
        let syn = Summary::decode(&SYN).unwrap();
        assert_eq!(
            scales.observe(&syn),
            Some(64240),
            "a SYN's window is never scaled"
        );
        // The client's next segment: the server's SYN+ACK has not been seen, so raw is all
        // that can be said.
        let mut ack = SYN;
        ack[33] = 0x10; // ACK only
        let ack_seg = Summary::decode(&ack).unwrap();
        assert_eq!(scales.observe(&ack_seg), None);
        // The server's SYN+ACK with shift 10.
        let mut syn_ack = syn.clone();
        std::mem::swap(&mut syn_ack.src, &mut syn_ack.dst);
        if let Transport::Tcp {
            src_port,
            dst_port,
            flags,
            wscale,
            ..
        } = &mut syn_ack.transport
        {
            std::mem::swap(src_port, dst_port);
            flags.ack = true;
            *wscale = Some(10);
        }
        assert_eq!(scales.observe(&syn_ack), Some(64240));
        // Now the client's window 64240 is scaled by its own shift, 7.
        assert_eq!(scales.observe(&ack_seg), Some(64240 << 7));
        let line = Line::new(
            Duration::ZERO,
            Direction::LeftToRight,
            &ack,
            Action::from_fate(Fate::Dropped, Duration::ZERO),
            &mut scales,
        );
        assert!(
            line.to_string()
                .contains(&format!(" win={} ", 64240u64 << 7)),
            "{line}"
        );
        assert_eq!(
            serde_json::to_value(&line).unwrap()["window_bytes"],
            64240u64 << 7
        );
    }
}
