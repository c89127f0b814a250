//! `cargo xtask demo tcp --trace`: the greeting conversation across `impair link`, with the
//! link's packet trace narrated: the three-way handshake, the data and its acknowledgements,
//! and the close, from the real packets the kernel sent.
//!
//! Extra options (`--loss 20% --seed 3`, `--delay 10ms`, ...) go to the link, to watch
//! retransmissions happen.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_lab::trace::{Segment, close_completed, tcp_segments};
use protolab_lab::{Server, is_root};

use super::compare::{DemoLink, Side, start_link};
use crate::util;

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
    // The trace is read as JSON (one object a line), never scraped from the human text.
    let mut all = vec![
        "--trace".to_owned(),
        "--json".to_owned(),
        "--pcap".to_owned(),
    ];
    all.push(capture.display().to_string());
    all.push("--diagram".to_owned());
    all.push(picture.display().to_string());
    all.extend(link_args.iter().cloned());

    println!("== The greeting conversation across a link, packet by packet ==\n");
    println!(
        "$ impair link --left L --right R --trace --json --pcap {} --diagram {}{}",
        capture.display(),
        picture.display(),
        if link_args.is_empty() {
            String::new()
        } else {
            format!(" {}", link_args.join(" "))
        }
    );
    let link = start_link(&bins, "trace", &all)?;
    println!(
        "  two namespaces, {} (198.18.0.1) and {} (198.18.0.2), joined by TUN devices through \
         the link process",
        link.left, link.right
    );
    let server = Server::start_cmd(
        "greet serve",
        {
            let mut c = link.run_in(Side::Right, &bins.join("greet"));
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
        .run_in(Side::Left, &bins.join("greet"))
        .args(["hello", "--server", "198.18.0.2:9999", "--timeout", "10s"])
        .output()
        .context("run greet hello")?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("  {line}");
    }
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    // The last ACK of the close crosses just after the client returns: wait for it in the
    // trace (bounded: on a lossy link the close may take retransmissions, or never finish).
    link.wait_for(Duration::from_secs(5), |lines| {
        close_completed(&tcp_segments(lines, 9999))
    });
    drop(server);
    let (_, lines) = link.stop_clean()?;

    println!(
        "\nWhat crossed the link (time, direction L>R = client to server, flags, numbers, what the link did):\n"
    );
    let mut story = Story::default();
    let segments = tcp_segments(&lines, 9999);
    for seg in &segments {
        println!("{seg}");
        println!("             `- {}", story.tell(seg));
    }
    if segments.is_empty() {
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

    /// A segment between 198.18.0.1:53982 (client) and 198.18.0.2:9999 (server).
    fn seg(from_client: bool, flags: &str, seq: u32, ack: u32, len: u32, dropped: bool) -> Segment {
        let (client, server) = (
            "198.18.0.1:53982".parse().unwrap(),
            "198.18.0.2:9999".parse().unwrap(),
        );
        Segment {
            time_us: 0,
            from_client,
            src: if from_client { client } else { server },
            dst: if from_client { server } else { client },
            syn: flags.contains('S'),
            ack_flag: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: flags.contains('P'),
            seq,
            ack,
            len,
            window_bytes: 64240,
            dropped,
            copies: u64::from(!dropped),
            reordered: false,
            delay_us: 0,
        }
    }

    #[test]
    fn narrates_a_real_conversation() {
        // A real conversation's numbers, one client segment dropped and retransmitted.
        let (c, sv) = (true, false);
        let segments = [
            seg(c, "S", 1965026061, 0, 0, false),
            seg(sv, "SA", 3956038118, 1965026062, 0, false),
            seg(c, "A", 1965026062, 3956038119, 0, false),
            seg(sv, "PA", 3956038119, 1965026062, 9, false),
            seg(c, "PA", 1965026062, 3956038128, 5, true),
            seg(c, "PA", 1965026062, 3956038128, 5, false),
            seg(sv, "FA", 3956038128, 1965026067, 0, false),
            seg(c, "FA", 1965026067, 3956038129, 0, false),
            seg(sv, "A", 3956038129, 1965026068, 0, false),
        ];
        let mut story = Story::default();
        let told: Vec<String> = segments.iter().map(|s| story.tell(s)).collect();
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
        assert!(close_completed(&segments));
    }
}
