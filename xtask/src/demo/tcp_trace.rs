//! `cargo xtask demo tcp --trace`: the greeting conversation across `impair link`, with the
//! link's packet trace narrated: the three-way handshake, the data and its acknowledgements,
//! and the close, from the real packets the kernel sent.
//!
//! Extra options (`--loss 20% --seed 3`, `--delay 10ms`, ...) go to the link, to watch
//! retransmissions happen.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_tests::{Server, is_root};

use super::compare::{LinkRun, Side};
use crate::util;

/// The parts of one text trace line this narration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    from_client: bool,
    syn: bool,
    ack_flag: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    ack: u32,
    len: u32,
    dropped: bool,
}

/// Reads a trace line of the link (`... L>R a:p > b:p TCP [SYN, ACK] seq=.. ack=.. win=.. len=..  fate`).
fn parse(line: &str, port: u16) -> Option<Segment> {
    let tcp = line.find(" TCP [")?;
    let port_tag = format!(":{port} ");
    if !line[..tcp + 1].contains(&port_tag) {
        return None;
    }
    let flags_end = tcp + line[tcp..].find(']')?;
    let flags = &line[tcp + 6..flags_end];
    let field = |name: &str| -> Option<u32> {
        let start = line.find(&format!(" {name}="))? + name.len() + 2;
        line[start..].split_whitespace().next()?.parse().ok()
    };
    Some(Segment {
        from_client: line.contains(" L>R "),
        syn: flags.contains("SYN"),
        ack_flag: flags.contains("ACK"),
        fin: flags.contains("FIN"),
        rst: flags.contains("RST"),
        seq: field("seq")?,
        ack: field("ack")?,
        len: field("len")?,
        dropped: line.ends_with("DROPPED"),
    })
}

/// What the narration knows of the conversation so far.
#[derive(Debug, Default)]
struct Story {
    /// Initial sequence numbers: client (x) and server (y).
    isn: [Option<u32>; 2],
    /// The next new byte each side will send (relative), to tell retransmissions apart.
    next: [u32; 2],
    /// The relative sequence number of each side's FIN.
    fin: [Option<u32>; 2],
    established: bool,
}

fn who(side: usize) -> &'static str {
    if side == 0 { "client" } else { "server" }
}

impl Story {
    fn rel(&self, side: usize, n: u32) -> Option<u32> {
        self.isn[side].map(|i| n.wrapping_sub(i))
    }

    /// One sentence on a segment, in the seed's terms (x and y for the initial numbers).
    fn tell(&mut self, s: &Segment) -> String {
        let (me, other) = if s.from_client { (0, 1) } else { (1, 0) };
        let fate = if s.dropped {
            " The link dropped it."
        } else {
            ""
        };
        if s.rst {
            return format!("RST: the {} aborts the connection.{fate}", who(me));
        }
        if s.syn && !s.ack_flag {
            let again = self.isn[0] == Some(s.seq);
            self.isn[0] = Some(s.seq);
            return if again {
                format!("SYN again: the client retransmits its SYN, same seq x.{fate}")
            } else {
                format!(
                    "handshake 1/3: the client's SYN, seq = x = {} (its initial sequence number).{fate}",
                    s.seq
                )
            };
        }
        if s.syn {
            let again = self.isn[1] == Some(s.seq);
            self.isn[1] = Some(s.seq);
            return if again {
                format!("SYN+ACK again: the server retransmits it.{fate}")
            } else {
                format!(
                    "handshake 2/3: the server's SYN+ACK, seq = y = {}, ack = x+1 = {}.{fate}",
                    s.seq, s.ack
                )
            };
        }
        let rel_seq = self.rel(me, s.seq).unwrap_or(0);
        let rel_ack = self.rel(other, s.ack).unwrap_or(0);
        if !self.established && s.from_client && rel_ack == 1 && s.len == 0 && !s.fin {
            self.established = true;
            self.next = [1, 1];
            return format!(
                "handshake 3/3: the client's ACK, seq = x+1, ack = y+1 = {}: both sides are \
                 now ESTABLISHED.{fate}",
                s.ack
            );
        }
        let mut text = String::new();
        if s.len > 0 {
            let end = rel_seq + s.len;
            if rel_seq < self.next[me] {
                text = format!(
                    "retransmission: the {} sends bytes {rel_seq}..{end} again.",
                    who(me)
                );
            } else {
                text = format!(
                    "data: {} bytes from the {} (its bytes {rel_seq}..{end}), acknowledging \
                     the {}'s bytes up to {rel_ack}.",
                    s.len,
                    who(me),
                    who(other)
                );
            }
            self.next[me] = self.next[me].max(end);
        }
        if s.fin {
            let fin_seq = rel_seq + s.len;
            let other_fin_acked = self.fin[other].is_some_and(|f| rel_ack == f + 1);
            let repeat = self.fin[me] == Some(fin_seq);
            self.fin[me] = Some(fin_seq);
            let sentence = if repeat {
                format!("FIN again: the {} retransmits its FIN.", who(me))
            } else if other_fin_acked {
                format!(
                    "close 2+3: the {} acknowledges the {}'s FIN (ack = its seq + 1) and sends \
                     its own FIN in the same segment: the four-way close's middle steps merged.",
                    who(me),
                    who(other)
                )
            } else {
                format!(
                    "close 1: the {} has nothing more to send: FIN (it takes one sequence \
                     number, {fin_seq}).",
                    who(me)
                )
            };
            text = if text.is_empty() {
                sentence
            } else {
                format!("{text} {sentence}")
            };
        } else if s.len == 0 {
            text = match self.fin[other] {
                Some(f) if rel_ack == f + 1 && self.fin[me].is_some() => format!(
                    "close 4: the {}'s last ACK of the {}'s FIN; the side that closed first \
                     now waits in TIME_WAIT.",
                    who(me),
                    who(other)
                ),
                Some(f) if rel_ack == f + 1 => format!(
                    "close 2: the {} acknowledges the {}'s FIN; it may still send data.",
                    who(me),
                    who(other)
                ),
                _ => format!(
                    "ACK: the {} has the {}'s bytes up to {rel_ack}.",
                    who(me),
                    who(other)
                ),
            };
        }
        format!("{text}{fate}")
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let link_args: Vec<String> = args.iter().filter(|a| *a != "--trace").cloned().collect();
    if !is_root() {
        bail!(
            "demo tcp --trace needs root: it joins two network namespaces with `impair link`. \
             Run it as root, or run `cargo xtask demo tcp` for the conversation on loopback"
        );
    }
    let bins = util::build_bins(false)?;
    let capture = util::root().join("target").join("demo-tcp-trace.pcap");
    let picture = util::root().join("target").join("demo-tcp-trace.svg");
    let mut all = vec!["--trace".to_owned(), "--pcap".to_owned()];
    all.push(capture.display().to_string());
    all.push("--diagram".to_owned());
    all.push(picture.display().to_string());
    all.extend(link_args.iter().cloned());

    println!("== The greeting conversation across a link, packet by packet ==\n");
    println!(
        "$ impair link --left L --right R --trace --pcap {} --diagram {}{}",
        capture.display(),
        picture.display(),
        if link_args.is_empty() {
            String::new()
        } else {
            format!(" {}", link_args.join(" "))
        }
    );
    let link = LinkRun::start(&bins, "trace", &all)?;
    println!(
        "  two namespaces, {} (198.18.0.1) and {} (198.18.0.2), joined by TUN devices through \
         the link process",
        link.left, link.right
    );
    let server = Server::start_cmd(
        "greet serve",
        {
            let mut c = link.exec(Side::Right, &bins.join("greet"));
            c.args(["serve", "--listen", "198.18.0.2:9999"]);
            c
        },
        1,
    );
    println!(
        "$ ip netns exec {} greet serve --listen 198.18.0.2:9999",
        link.right
    );
    println!(
        "$ ip netns exec {} greet hello --server 198.18.0.2:9999",
        link.left
    );
    let out = link
        .exec(Side::Left, &bins.join("greet"))
        .args(["hello", "--server", "198.18.0.2:9999", "--timeout", "10s"])
        .output()
        .context("run greet hello")?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("  {line}");
    }
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    // The last ACK of the close crosses just after the client returns.
    std::thread::sleep(Duration::from_millis(500));
    drop(server);
    let (_, lines) = link.stop()?;

    println!(
        "\nWhat crossed the link (time, direction L>R = client to server, flags, numbers, what the link did):\n"
    );
    let mut story = Story::default();
    let mut shown = 0;
    for line in &lines {
        let Some(seg) = parse(line, 9999) else {
            continue;
        };
        shown += 1;
        println!("{line}");
        println!("             `- {}", story.tell(&seg));
    }
    if shown == 0 {
        bail!("the trace holds no segment of the conversation: {lines:?}");
    }
    let pcap: PathBuf = capture;
    println!(
        "\nThe seed's picture, from real packets: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK ack=y+1; \
         then each byte is numbered and acknowledged; then FIN and ACK in each direction (the \
         middle two often share a segment)."
    );
    println!(
        "The window (win=) is in bytes: after the handshake the 16-bit field is multiplied by \
         2^shift, the window-scale option each side sent in its SYN."
    );
    println!(
        "The same packets are in {} (tshark -r {} opens it).",
        pcap.display(),
        pcap.display()
    );
    println!(
        "The handshake and the close as a sequence diagram: {}",
        picture.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(line: &str) -> Segment {
        parse(line, 9999).unwrap()
    }

    #[test]
    fn narrates_a_real_conversation() {
        let lines = [
            "   1.727173 L>R 198.18.0.1:53982 > 198.18.0.2:9999 TCP [SYN] seq=1965026061 ack=0 win=64240 len=0  forwarded",
            "   1.727421 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [SYN, ACK] seq=3956038118 ack=1965026062 win=65160 len=0  forwarded",
            "   1.727548 L>R 198.18.0.1:53982 > 198.18.0.2:9999 TCP [ACK] seq=1965026062 ack=3956038119 win=63 len=0  forwarded",
            "   1.727712 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [PSH, ACK] seq=3956038119 ack=1965026062 win=64 len=9  forwarded",
            "   1.728275 L>R 198.18.0.1:53982 > 198.18.0.2:9999 TCP [PSH, ACK] seq=1965026062 ack=3956038128 win=63 len=5  DROPPED",
            "   1.728275 L>R 198.18.0.1:53982 > 198.18.0.2:9999 TCP [PSH, ACK] seq=1965026062 ack=3956038128 win=63 len=5  forwarded",
            "   1.728778 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [FIN, ACK] seq=3956038128 ack=1965026067 win=64 len=0  forwarded",
            "   1.728800 L>R 198.18.0.1:53982 > 198.18.0.2:9999 TCP [FIN, ACK] seq=1965026067 ack=3956038129 win=63 len=0  forwarded",
            "   1.728838 R>L 198.18.0.2:9999 > 198.18.0.1:53982 TCP [ACK] seq=3956038129 ack=1965026068 win=63 len=0  forwarded",
        ];
        let mut story = Story::default();
        let told: Vec<String> = lines.iter().map(|l| story.tell(&seg(l))).collect();
        assert!(told[0].starts_with("handshake 1/3") && told[0].contains("x = 1965026061"));
        assert!(told[1].starts_with("handshake 2/3") && told[1].contains("ack = x+1 = 1965026062"));
        assert!(told[2].starts_with("handshake 3/3"));
        assert!(told[3].starts_with("data: 9 bytes from the server (its bytes 1..10)"));
        assert!(
            told[4].starts_with("data: 5 bytes from the client")
                && told[4].ends_with("The link dropped it.")
        );
        assert!(told[5].starts_with("retransmission: the client sends bytes 1..6 again"));
        assert!(told[6].starts_with("close 1: the server"));
        assert!(told[7].starts_with("close 2+3: the client"));
        assert!(told[8].starts_with("close 4: the server's last ACK"));
        assert!(parse(lines[0], 80).is_none());
        assert!(
            parse(
                "   0.1 L>R 198.18.0.1:5 > 198.18.0.2:9999 UDP len=3  forwarded",
                9999
            )
            .is_none()
        );
    }
}
