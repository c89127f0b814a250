//! The packet trace of a greeting conversation across the link: the three-way handshake, the
//! data and the close, with consistent sequence arithmetic, and a capture tshark reads.

use std::process::Command;

use protolab_tests::trace::tcp_segments;
use protolab_tests::{bin, require_peer, run_ok};

use crate::harness::{Link, Side, greet_across};

#[test]
fn greeting_trace_holds_handshake_data_and_close_in_order() {
    let tshark = require_peer("tshark", "tshark");
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("greet.pcap");
    let link = Link::start(
        "trace",
        &["--trace", "--json", "--pcap", pcap.to_str().unwrap()],
    );
    let (server, transcript, closed) = greet_across(&link);
    for want in [
        "Welcome!",
        "Hello, Michael!",
        "Hello, Tracy!",
        "Hello, Sarah!",
    ] {
        assert!(transcript.contains(want), "{transcript}");
    }
    drop(server);
    let stopped = link.stop();
    assert!(stopped.status.success());
    let segs = tcp_segments(&stopped.lines, 9999);
    let show = || {
        segs.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        closed,
        "the close never completed in the trace:\n{}",
        show()
    );
    assert!(segs.len() >= 10, "too few segments:\n{}", show());
    assert!(
        segs.iter().all(|s| !s.rst),
        "a reset in a clean conversation:\n{}",
        show()
    );
    assert!(
        segs.iter()
            .all(|s| s.copies == 1 && !s.dropped && !s.reordered && s.delay_us == 0),
        "an unimpaired link did something to a packet:\n{}",
        show()
    );

    // The three-way handshake: SYN seq=x; SYN+ACK seq=y ack=x+1; ACK seq=x+1 ack=y+1.
    let (syn, syn_ack, ack) = (&segs[0], &segs[1], &segs[2]);
    assert!(syn.from_client && syn.syn && !syn.ack_flag, "{}", show());
    assert!(
        !syn_ack.from_client && syn_ack.syn && syn_ack.ack_flag,
        "{}",
        show()
    );
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1), "{}", show());
    assert!(ack.from_client && !ack.syn && ack.ack_flag, "{}", show());
    assert_eq!(ack.seq, syn.seq.wrapping_add(1));
    assert_eq!(ack.ack, syn_ack.seq.wrapping_add(1));
    let (x, y) = (syn.seq, syn_ack.seq);

    // The data: each side's bytes follow one another without gaps (nothing is lost here), and
    // every acknowledgement names a byte the other side has sent.
    let mut next = [x.wrapping_add(1), y.wrapping_add(1)]; // [client, server]
    let mut fins = [None, None];
    for s in &segs[3..] {
        let (me, other) = if s.from_client { (0, 1) } else { (1, 0) };
        assert!(!s.syn, "a SYN after the handshake:\n{}", show());
        assert_eq!(
            s.seq,
            next[me],
            "a gap or overlap in the byte stream:\n{}",
            show()
        );
        if s.ack_flag {
            let acked = s.ack.wrapping_sub(if other == 0 { x } else { y });
            let sent = next[other].wrapping_sub(if other == 0 { x } else { y });
            assert!(acked <= sent + 1, "ack of bytes never sent:\n{}", show());
        }
        next[me] = next[me].wrapping_add(s.len);
        if s.fin {
            fins[me] = Some(next[me]);
            // The FIN takes one sequence number of its own.
            next[me] = next[me].wrapping_add(1);
        }
    }
    let client_data: u32 = segs.iter().filter(|s| s.from_client).map(|s| s.len).sum();
    let server_data: u32 = segs.iter().filter(|s| !s.from_client).map(|s| s.len).sum();
    // "Michael\n" "Tracy\n" "Sarah\n" "exit\n" from the client; the welcome and three greetings
    // from the server.
    assert_eq!(client_data, 8 + 6 + 6 + 5, "{}", show());
    assert_eq!(server_data, 9 + 16 + 14 + 14, "{}", show());

    // The close: both sides sent a FIN, and the other side acknowledged each (ack = its
    // sequence number + 1, since a FIN takes one). Whoever closes first, the last segment is
    // the plain ACK of the second FIN.
    let [Some(client_fin), Some(server_fin)] = fins else {
        panic!("both sides must send a FIN:\n{}", show());
    };
    assert!(
        segs.iter()
            .any(|s| !s.from_client && s.ack_flag && s.ack == client_fin.wrapping_add(1)),
        "the server never acknowledged the client's FIN:\n{}",
        show()
    );
    assert!(
        segs.iter()
            .any(|s| s.from_client && s.ack_flag && s.ack == server_fin.wrapping_add(1)),
        "the client never acknowledged the server's FIN:\n{}",
        show()
    );
    let last = segs.last().unwrap();
    assert!(last.ack_flag && !last.fin && last.len == 0, "{}", show());

    // tshark, an independent decoder, reads the capture: the same segments with the same
    // raw sequence numbers and the same scaled windows.
    let fields = run_ok(Command::new(tshark).args([
        "-r",
        pcap.to_str().unwrap(),
        "-Y",
        "tcp.port == 9999",
        "-T",
        "fields",
        "-e",
        "tcp.seq_raw",
        "-e",
        "tcp.ack_raw",
        "-e",
        "tcp.len",
        "-e",
        "tcp.window_size",
    ]));
    let rows: Vec<Vec<u64>> = fields
        .lines()
        .map(|l| l.split('\t').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        segs.len(),
        "tshark saw:\n{fields}\ntrace:\n{}",
        show()
    );
    for (row, s) in rows.iter().zip(&segs) {
        assert_eq!(row[0], u64::from(s.seq));
        assert_eq!(row[1], u64::from(s.ack));
        assert_eq!(row[2], u64::from(s.len));
        // tshark scales the window by the handshake's window-scale options too.
        assert_eq!(row[3], s.window_bytes, "window of {s:?}");
    }
}

#[test]
fn text_trace_lines_name_flags_numbers_and_what_the_link_did() {
    // Every packet from left to right is dropped: the SYN is traced, marked DROPPED, and
    // retransmitted by the kernel, with the same sequence number.
    let link = Link::start("droptrace", &["--trace", "--loss", "100%"]);
    let _ = link
        .exec(
            Side::Left,
            &bin("greet"),
            &[
                "hello",
                "--server",
                "198.18.0.2:9999",
                "--timeout",
                "1500ms",
            ],
        )
        .output()
        .unwrap();
    let stopped = link.stop();
    let syns: Vec<&String> = stopped
        .lines
        .iter()
        .filter(|l| l.contains(" TCP [SYN] "))
        .collect();
    assert!(
        syns.len() >= 2,
        "expected a SYN and its retransmission: {:?}",
        stopped.lines
    );
    for l in &syns {
        assert!(l.contains(" L>R 198.18.0.1:"), "{l}");
        assert!(l.contains(" > 198.18.0.2:9999 TCP [SYN] seq="), "{l}");
        assert!(l.contains(" ack=0 win="), "{l}");
        assert!(l.ends_with("  DROPPED"), "{l}");
    }
    let seq = |l: &str| {
        l.split("seq=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        seq(syns[0]),
        seq(syns[1]),
        "a retransmission keeps its sequence number"
    );
    let [received, forwarded, dropped, ..] =
        crate::harness::truth_of(&stopped.truth, "left_to_right");
    assert_eq!(forwarded, 0);
    assert_eq!(dropped, received);
    assert_eq!(received as usize, syns.len());
}
