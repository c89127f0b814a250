//! The link's packet trace, read from `impair link --trace --json` (one JSON object a line):
//! the lab never scrapes the human trace, whose wording is for people.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

/// The `event` of one JSON line of our tools (`listening`, `ready`, `summary`, ...), if the
/// line is JSON with one.
pub fn event(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    v["event"].as_str().map(str::to_owned)
}

/// One TCP segment that crossed the link, and what the link did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Microseconds since the link came up.
    pub time_us: u64,
    /// True when it went left to right (client to server in the lab's conversations).
    pub from_client: bool,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// The window in bytes, scaled as the link's trace understood the handshake; the raw
    /// 16-bit field when it did not see one.
    pub window_bytes: u64,
    /// The link dropped it.
    pub dropped: bool,
    /// Copies delivered: 1 normally, 2 when duplicated, 0 when dropped.
    pub copies: u64,
    pub reordered: bool,
    /// How long the link held it, in microseconds.
    pub delay_us: u64,
}

impl Segment {
    /// Reads one trace line; `None` for a line that is not a TCP segment (another protocol,
    /// an event such as `ready` or `summary`, or not JSON).
    pub fn parse(line: &str) -> Option<Segment> {
        let v: Value = serde_json::from_str(line.trim()).ok()?;
        let p = &v["packet"];
        let t = &p["transport"];
        if t["protocol"] != "tcp" {
            return None;
        }
        let num = |v: &Value| v.as_u64();
        let flag = |k: &str| t["flags"][k].as_bool();
        let ip = |k: &str| p[k].as_str()?.parse::<IpAddr>().ok();
        let port = |k: &str| u16::try_from(t[k].as_u64()?).ok();
        let a = &v["action"];
        Some(Segment {
            time_us: num(&v["time_us"])?,
            from_client: v["direction"] == "left_to_right",
            src: SocketAddr::new(ip("src")?, port("src_port")?),
            dst: SocketAddr::new(ip("dst")?, port("dst_port")?),
            syn: flag("syn")?,
            ack_flag: flag("ack")?,
            fin: flag("fin")?,
            rst: flag("rst")?,
            psh: flag("psh")?,
            seq: u32::try_from(num(&t["seq"])?).ok()?,
            ack: u32::try_from(num(&t["ack"])?).ok()?,
            len: u32::try_from(num(&t["len"])?).ok()?,
            window_bytes: num(&v["window_bytes"]).or_else(|| num(&t["window"]))?,
            dropped: a["dropped"].as_bool()?,
            copies: num(&a["copies"])?,
            reordered: a["reordered"].as_bool()?,
            delay_us: num(&a["delay"])?,
        })
    }

    /// True when `port` is either end's port.
    pub fn has_port(&self, port: u16) -> bool {
        self.src.port() == port || self.dst.port() == port
    }

    /// The flags as the trace writes them, in bit order: `[SYN, ACK]`.
    pub fn flags(&self) -> String {
        let names = [
            (self.fin, "FIN"),
            (self.syn, "SYN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.ack_flag, "ACK"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        format!("[{}]", set.join(", "))
    }

    /// What the link did, in words: `forwarded`, `DROPPED`, `duplicated x2, delayed 10.0ms`.
    pub fn fate(&self) -> String {
        if self.dropped {
            return "DROPPED".into();
        }
        let mut parts = Vec::new();
        if self.copies > 1 {
            parts.push(format!("duplicated x{}", self.copies));
        }
        if self.reordered {
            parts.push("reordered".to_owned());
        }
        if self.delay_us > 0 {
            parts.push(format!("delayed {:.1}ms", self.delay_us as f64 / 1e3));
        }
        if parts.is_empty() {
            parts.push("forwarded".to_owned());
        }
        parts.join(", ")
    }
}

impl fmt::Display for Segment {
    /// One line in the trace's own layout: time, direction, addresses, flags, numbers, fate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>11.6} {} {} > {} TCP {} seq={} ack={} win={} len={}  {}",
            self.time_us as f64 / 1e6,
            if self.from_client { "L>R" } else { "R>L" },
            self.src,
            self.dst,
            self.flags(),
            self.seq,
            self.ack,
            self.window_bytes,
            self.len,
            self.fate()
        )
    }
}

/// The TCP segments of the connection(s) on `port` in a trace, in the order they crossed.
pub fn tcp_segments(lines: &[String], port: u16) -> Vec<Segment> {
    lines
        .iter()
        .filter_map(|l| Segment::parse(l))
        .filter(|s| s.has_port(port))
        .collect()
}

/// True when both sides of the conversation have sent a FIN and each FIN has been
/// acknowledged by the other side: the close has crossed the link completely.
pub fn close_completed(segments: &[Segment]) -> bool {
    let fin_end = |client: bool| {
        segments
            .iter()
            .find(|s| s.fin && s.from_client == client && !s.dropped)
            .map(|s| s.seq.wrapping_add(s.len).wrapping_add(1))
    };
    let acked = |client: bool| {
        fin_end(client).is_some_and(|end| {
            segments
                .iter()
                .any(|s| s.from_client != client && s.ack_flag && !s.dropped && s.ack == end)
        })
    };
    acked(true) && acked(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as `impair link --trace --json` writes it (crates/impair/src/link/trace.rs).
    const SYN_ACK: &str = r#"{"time_us":1727421,"direction":"right_to_left","packet":{"src":"198.18.0.2","dst":"198.18.0.1","ip_len":60,"transport":{"protocol":"tcp","src_port":9999,"dst_port":53982,"flags":{"fin":false,"syn":true,"rst":false,"psh":false,"ack":true,"urg":false},"seq":3956038118,"ack":1965026062,"window":65160,"wscale":7,"len":0}},"window_bytes":65160,"action":{"dropped":false,"copies":1,"reordered":false,"delay":0}}"#;

    #[test]
    fn a_json_trace_line_is_read_field_by_field() {
        let s = Segment::parse(SYN_ACK).expect("a TCP segment");
        assert!(!s.from_client && s.syn && s.ack_flag && !s.fin && !s.rst);
        assert_eq!(s.src, "198.18.0.2:9999".parse().unwrap());
        assert_eq!(s.dst, "198.18.0.1:53982".parse().unwrap());
        assert_eq!((s.seq, s.ack, s.len), (3_956_038_118, 1_965_026_062, 0));
        assert_eq!(s.window_bytes, 65160);
        assert_eq!(
            (s.dropped, s.copies, s.reordered, s.delay_us),
            (false, 1, false, 0)
        );
        assert!(s.has_port(9999) && !s.has_port(80));
        assert_eq!(
            s.to_string(),
            "   1.727421 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [SYN, ACK] \
             seq=3956038118 ack=1965026062 win=65160 len=0  forwarded"
        );
        assert_eq!(tcp_segments(&[SYN_ACK.to_owned()], 80), Vec::new());
    }

    #[test]
    fn other_lines_are_not_segments() {
        let udp = SYN_ACK.replace(r#""protocol":"tcp""#, r#""protocol":"udp""#);
        for line in [
            "",
            "ready",
            r#"{"event":"ready"}"#,
            &udp,
            r#"{"time_us":1,"direction":"left_to_right","packet":null,"window_bytes":null,"action":{"dropped":true,"copies":0,"reordered":false,"delay":0}}"#,
            "   1.727421 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [SYN, ACK] seq=1 ack=2 win=3 len=0  forwarded",
        ] {
            assert_eq!(Segment::parse(line), None, "{line}");
        }
        assert_eq!(
            event(r#"{"event":"ready","seed":"1"}"#).as_deref(),
            Some("ready")
        );
        assert_eq!(event("ready"), None);
    }

    #[test]
    fn the_close_is_complete_when_both_fins_are_acknowledged() {
        let seg = |from_client: bool, fin: bool, seq: u32, ack: u32| Segment {
            time_us: 0,
            from_client,
            src: "198.18.0.1:1".parse().unwrap(),
            dst: "198.18.0.2:2".parse().unwrap(),
            syn: false,
            ack_flag: true,
            fin,
            rst: false,
            psh: false,
            seq,
            ack,
            len: 0,
            window_bytes: 0,
            dropped: false,
            copies: 1,
            reordered: false,
            delay_us: 0,
        };
        // The server closes first (seq 100), the client acknowledges it and sends its own FIN
        // in one segment (seq 50), and the server's last ACK (ack 51) ends it.
        let mut segs = vec![seg(false, true, 100, 50)];
        assert!(!close_completed(&segs));
        segs.push(seg(true, true, 50, 101));
        assert!(
            !close_completed(&segs),
            "the client's FIN is not acknowledged yet"
        );
        let mut lost = seg(false, false, 101, 51);
        lost.dropped = true;
        segs.push(lost);
        assert!(!close_completed(&segs), "a dropped ACK does not count");
        segs.push(seg(false, false, 101, 51));
        assert!(close_completed(&segs));
    }
}
