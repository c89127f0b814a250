//! The packet trace as a sequence diagram (SVG, drawn with plotters): two lifelines, the left
//! end and the right end, and one arrow per packet from its sender to its receiver, labelled
//! with its TCP flags, sequence and acknowledgement numbers (relative to each side's initial
//! number, as the seed's handshake picture writes x+1 and y+1) and length. A packet the link
//! dropped stops half way at a red cross.
//!
//! Without I/O beyond the file written: trace lines in, a picture out.

use std::net::IpAddr;
use std::path::Path;

use plotters::prelude::*;

use super::trace::{Direction, Line, Transport};

/// The drawing surface: one SVG file, in pixels.
type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Packets drawn at most: past that a diagram is no longer read by people.
pub const MAX_PACKETS: usize = 200;

/// The arrows' colour, and the drops'.
pub const ARROW: RGBColor = RGBColor(31, 119, 180);
pub const DROP: RGBColor = RGBColor(214, 39, 40);

const ROW: i32 = 44;
const TOP: i32 = 90;
const WIDTH: i32 = 1000;
const LEFT_X: i32 = 200;
const RIGHT_X: i32 = 800;
const FONT: &str = "sans-serif";

/// Why the diagram could not be written.
#[derive(Debug, thiserror::Error)]
#[error("draw the sequence diagram {path}: {why}")]
pub struct DiagramError {
    path: String,
    why: String,
}

/// Each side's initial sequence number per connection, learned from SYNs, to write relative
/// numbers.
#[derive(Debug, Default)]
struct Isns(Vec<((IpAddr, u16, IpAddr, u16), u32)>);

impl Isns {
    fn learn(&mut self, key: (IpAddr, u16, IpAddr, u16), isn: u32) {
        if !self.0.iter().any(|(k, _)| *k == key) {
            self.0.push((key, isn));
        }
    }

    fn of(&self, key: (IpAddr, u16, IpAddr, u16)) -> Option<u32> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The label of one packet: `[SYN] seq=0 (ISN 3618775859) ack=0 len=0` or `UDP len=12`.
fn label(line: &Line, isns: &mut Isns) -> String {
    let Some(p) = &line.packet else {
        return "(not an IP packet)".to_owned();
    };
    match &p.transport {
        Transport::Tcp {
            src_port,
            dst_port,
            flags,
            seq,
            ack,
            len,
            ..
        } => {
            let mine = (p.src, *src_port, p.dst, *dst_port);
            let theirs = (p.dst, *dst_port, p.src, *src_port);
            if flags.syn {
                isns.learn(mine, *seq);
            }
            let rel = |key, n: u32| isns.of(key).map(|i| n.wrapping_sub(i));
            let seq_text = match rel(mine, *seq) {
                Some(0) if flags.syn => format!("seq=0 (ISN {seq})"),
                Some(r) => format!("seq={r}"),
                None => format!("seq={seq}"),
            };
            let ack_text = if flags.ack {
                match rel(theirs, *ack) {
                    Some(r) => format!(" ack={r}"),
                    None => format!(" ack={ack}"),
                }
            } else {
                String::new()
            };
            format!("{flags} {seq_text}{ack_text} len={len}")
        }
        Transport::Udp { len, .. } => format!("UDP len={len}"),
        Transport::Icmp { len } => format!("ICMP len={len}"),
        Transport::Other { number } => format!("IP protocol {number}"),
    }
}

fn end_name(lines: &[Line], direction: Direction, fallback: &str) -> String {
    lines
        .iter()
        .find(|l| l.direction == direction)
        .and_then(|l| l.packet.as_ref())
        .map_or_else(|| fallback.to_owned(), |p| p.src.to_string())
}

/// Draws `lines` (at most [`MAX_PACKETS`]; `total` is how many the trace saw) as a sequence
/// diagram into `path`.
///
/// # Errors
/// The file cannot be written.
pub fn draw(path: &Path, lines: &[Line], total: u64) -> Result<(), DiagramError> {
    let fail = |e: &dyn std::fmt::Display| DiagramError {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let shown = &lines[..lines.len().min(MAX_PACKETS)];
    let height = TOP + ROW * shown.len() as i32 + 60;
    let root = SVGBackend::new(path, (WIDTH as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let black = BLACK.stroke_width(1);
    let grey = RGBColor(150, 150, 150).stroke_width(1);
    let title = if (shown.len() as u64) < total {
        format!("first {} of {total} packets across the link", shown.len())
    } else {
        format!("{total} packets across the link")
    };
    let draw = |e: &dyn Fn(&Area<'_>) -> Result<(), String>| e(&root).map_err(|e| fail(&e));
    draw(&|r| {
        r.draw(&Text::new(title.clone(), (20, 15), (FONT, 20)))
            .map_err(|e| e.to_string())
    })?;
    for (x, name) in [
        (LEFT_X, end_name(shown, Direction::LeftToRight, "left")),
        (RIGHT_X, end_name(shown, Direction::RightToLeft, "right")),
    ] {
        draw(&|r| {
            r.draw(&Rectangle::new(
                [(x - 80, 45), (x + 80, 75)],
                RGBColor(230, 238, 247).filled(),
            ))
            .map_err(|e| e.to_string())?;
            r.draw(&Rectangle::new([(x - 80, 45), (x + 80, 75)], black))
                .map_err(|e| e.to_string())?;
            r.draw(&Text::new(name.clone(), (x - 70, 52), (FONT, 16)))
                .map_err(|e| e.to_string())?;
            r.draw(&PathElement::new(vec![(x, 75), (x, height - 20)], grey))
                .map_err(|e| e.to_string())
        })?;
    }
    let mut isns = Isns::default();
    for (i, line) in shown.iter().enumerate() {
        let y = TOP + ROW * i as i32;
        let (from, to) = match line.direction {
            Direction::LeftToRight => (LEFT_X, RIGHT_X),
            Direction::RightToLeft => (RIGHT_X, LEFT_X),
        };
        let text = label(line, &mut isns);
        let time = format!("{:.6} s", line.at.as_secs_f64());
        let dropped = line.action.dropped;
        draw(&|r| {
            r.draw(&Text::new(time.clone(), (10, y + 8), (FONT, 12)))
                .map_err(|e| e.to_string())?;
            // The label sits above the arrow, starting near its tail.
            let text_x = from.min(to) + 40;
            r.draw(&Text::new(text.clone(), (text_x, y - 6), (FONT, 13)))
                .map_err(|e| e.to_string())?;
            let dy = ROW / 2;
            if dropped {
                let (mx, my) = ((from + to) / 2, y + 4 + dy / 2);
                r.draw(&PathElement::new(
                    vec![(from, y + 4), (mx, my)],
                    DROP.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
                r.draw(&Cross::new((mx, my), 8, DROP.stroke_width(3)))
                    .map_err(|e| e.to_string())?;
                r.draw(&Text::new("dropped", (mx + 14, my), (FONT, 13)))
                    .map_err(|e| e.to_string())
            } else {
                let (tx, ty) = (to, y + 4 + dy);
                r.draw(&PathElement::new(
                    vec![(from, y + 4), (tx, ty)],
                    ARROW.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
                let back = if to > from { -12 } else { 12 };
                r.draw(&Polygon::new(
                    vec![(tx, ty), (tx + back, ty - 6), (tx + back, ty + 4)],
                    ARROW.filled(),
                ))
                .map_err(|e| e.to_string())
            }
        })?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::trace::{Action, Summary, TcpFlags};
    use std::time::Duration;

    fn segment(left_to_right: bool, flags: TcpFlags, seq: u32, ack: u32, dropped: bool) -> Line {
        let (a, b): (IpAddr, IpAddr) =
            ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let (src, dst, sp, dp) = if left_to_right {
            (a, b, 40000, 9999)
        } else {
            (b, a, 9999, 40000)
        };
        Line {
            at: Duration::from_millis(1),
            direction: if left_to_right {
                Direction::LeftToRight
            } else {
                Direction::RightToLeft
            },
            packet: Some(Summary {
                src,
                dst,
                ip_len: 52,
                transport: Transport::Tcp {
                    src_port: sp,
                    dst_port: dp,
                    flags,
                    seq,
                    ack,
                    window: 512,
                    wscale: None,
                    len: 0,
                },
            }),
            window_bytes: None,
            action: Action {
                dropped,
                copies: u8::from(!dropped),
                reordered: false,
                delay: Duration::ZERO,
            },
        }
    }

    fn handshake() -> Vec<Line> {
        let syn = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        let syn_ack = TcpFlags {
            syn: true,
            ack: true,
            ..TcpFlags::default()
        };
        let ack = TcpFlags {
            ack: true,
            ..TcpFlags::default()
        };
        vec![
            segment(true, syn, 1000, 0, true),
            segment(true, syn, 1000, 0, false),
            segment(false, syn_ack, 5000, 1001, false),
            segment(true, ack, 1001, 5001, false),
        ]
    }

    #[test]
    fn numbers_are_relative_to_each_sides_initial_one() {
        let mut isns = Isns::default();
        let labels: Vec<String> = handshake().iter().map(|l| label(l, &mut isns)).collect();
        assert_eq!(
            labels,
            [
                "[SYN] seq=0 (ISN 1000) len=0",
                "[SYN] seq=0 (ISN 1000) len=0",
                "[SYN, ACK] seq=0 (ISN 5000) ack=1 len=0",
                "[ACK] seq=1 ack=1 len=0",
            ]
        );
    }

    #[test]
    fn draws_an_arrowhead_per_delivered_packet_and_a_cross_per_drop() {
        let path = std::env::temp_dir().join(format!("plab-diagram-{}.svg", std::process::id()));
        draw(&path, &handshake(), 4).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            svg.matches(r##"<polygon opacity="1" fill="#1F77B4""##)
                .count(),
            3
        );
        assert_eq!(
            svg.matches(r##"stroke="#D62728" stroke-width="3""##)
                .count(),
            2
        );
        assert!(svg.contains("4 packets across the link"));
    }
}
