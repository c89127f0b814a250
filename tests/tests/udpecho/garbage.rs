//! Bad datagrams are counted and ignored; no reply is ever longer than its request.

use std::process::Command;

use protolab_tests::bin;

use crate::common::{client, n, probe_bytes, server, stop};

#[test]
fn garbage_is_counted_ignored_and_never_answered() {
    let srv = server(&["--no-tcp"]);
    let c = client(srv.addr("udp"));
    let mut wrong_version = probe_bytes(1, 0, 64);
    wrong_version[4] = 2;
    let mut unknown_flags = probe_bytes(1, 0, 64);
    unknown_flags[5] = 0x80;
    let mut a_reply = probe_bytes(1, 0, 64);
    a_reply[5] = 0x01;
    let garbage: Vec<Vec<u8>> = vec![
        b"hello, is anybody there?".to_vec(),
        Vec::new(),
        probe_bytes(1, 0, 64)[..40].to_vec(),
        wrong_version,
        unknown_flags,
        a_reply,
        probe_bytes(1, 0, 9_217),
    ];
    let mut buf = vec![0u8; 65_536];
    for (i, g) in garbage.iter().enumerate() {
        c.send(g).expect("send garbage");
        // One worker answers in arrival order: if the garbage had been answered, that answer
        // would come before this probe's.
        let seq = 1000 + i as u64;
        c.send(&probe_bytes(7, seq, 64)).expect("send probe");
        let len = c
            .recv(&mut buf)
            .expect("the server still answers probes after garbage");
        assert_eq!(len, 64);
        assert_eq!(
            buf[16..24],
            seq.to_be_bytes(),
            "reply to garbage {i} or out of order"
        );
        assert_eq!(buf[5], 0x01, "the reply flag");
    }
    let counters = stop(srv);
    assert_eq!(n(&counters, "bad_magic"), 1);
    assert_eq!(
        n(&counters, "truncated"),
        2,
        "the empty datagram and the 40-byte probe"
    );
    assert_eq!(n(&counters, "bad_version"), 1);
    assert_eq!(
        n(&counters, "bad_flags"),
        2,
        "unknown flags, and a reply sent back at us"
    );
    assert_eq!(n(&counters, "oversized"), 1);
    assert_eq!(n(&counters, "garbage"), 7);
    assert_eq!(n(&counters, "probes"), 7);
    assert_eq!(n(&counters, "udp_replied"), 7);
}

#[test]
fn no_reply_is_longer_than_its_request() {
    let srv = server(&["--no-tcp"]);
    let c = client(srv.addr("udp"));
    let mut buf = vec![0u8; 65_536];
    let mut stats_request = probe_bytes(9, 5, 56);
    stats_request[5] = 0x02;
    let mut requests: Vec<Vec<u8>> = [56, 57, 64, 100, 512, 1472, 4096, 9_216]
        .iter()
        .enumerate()
        .map(|(i, &size)| probe_bytes(9, i as u64, size))
        .collect();
    requests.push(stats_request);
    for r in &requests {
        c.send(r).expect("send");
        let len = c.recv(&mut buf).expect("reply");
        assert_eq!(len, r.len(), "reply size differs from request size");
    }
    // Garbage of every size gets nothing, so the bytes out never pass the bytes in.
    for size in [1, 55, 9_217, 20_000, 65_000] {
        c.send(&vec![0x42; size]).expect("send");
    }
    c.send(&probe_bytes(9, 100, 64)).expect("send");
    assert_eq!(c.recv(&mut buf).expect("reply"), 64);
    let counters = stop(srv);
    let (bytes_in, bytes_out) = (n(&counters, "udp_bytes_in"), n(&counters, "udp_bytes_out"));
    let sent: usize = requests.iter().map(Vec::len).sum::<usize>() + 64;
    assert_eq!(
        bytes_out, sent as u64,
        "replies are exactly the probes' size"
    );
    assert!(bytes_out < bytes_in, "out {bytes_out} in {bytes_in}");
}

#[test]
fn raw_echo_reflects_anything_and_stays_on_loopback() {
    let srv = server(&["--no-tcp", "--raw"]);
    let c = client(srv.addr("udp"));
    let mut buf = vec![0u8; 65_536];
    for msg in [&b"hello"[..], b"", &[0xff; 1000]] {
        c.send(msg).expect("send");
        let len = c.recv(&mut buf).expect("echo");
        assert_eq!(&buf[..len], msg);
    }
    let counters = stop(srv);
    assert_eq!(n(&counters, "raw_echoed"), 3);

    let out = Command::new(bin("udpecho"))
        .args(["serve", "--raw", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run udpecho");
    assert!(
        !out.status.success(),
        "raw echo must refuse to listen off loopback"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-remote"),
        "the error names the fix: {err}"
    );
}
