//! The limits docs/udp.md states, each checked here or beside the code it names.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use protolab_tests::bin;

use crate::common::{n, probe_bytes, server, stop};

fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// One framed probe and its framed reply.
fn echo_frame(s: &mut TcpStream, seq: u64) {
    let p = probe_bytes(8, seq, 64);
    let mut frame = (p.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&p);
    s.write_all(&frame).expect("send frame");
    let mut reply = [0u8; 66];
    s.read_exact(&mut reply).expect("framed reply");
    assert_eq!(reply[..2], [0, 64]);
    assert_eq!(reply[2 + 16..2 + 24], seq.to_be_bytes());
}

#[test]
fn tcp_connection_cap_and_idle_timeout() {
    let srv = server(&["--max-connections", "2", "--idle-timeout", "500ms"]);
    let addr = srv.addr("tcp");
    let mut a = tcp(addr);
    let mut b = tcp(addr);
    echo_frame(&mut a, 0);
    echo_frame(&mut b, 1);
    // A frame longer than --max-size is dropped like an oversized datagram; the next is served.
    let big = probe_bytes(8, 2, 10_000);
    let mut frame = (big.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&big);
    a.write_all(&frame).expect("send oversized frame");
    echo_frame(&mut a, 3);
    // The third is closed at once: EOF, and no byte (probe frames have no error message).
    let mut c = tcp(addr);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a client over the cap gets nothing");
    // Silent past the idle timeout: the server closes both (EOF, not our 10 s read timeout).
    for s in [&mut a, &mut b] {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("EOF from the server");
        assert!(rest.is_empty());
    }
    let counters = stop(srv);
    assert_eq!(n(&counters, "tcp_connections"), 2);
    assert_eq!(n(&counters, "tcp_busy"), 1);
    assert_eq!(n(&counters, "tcp_idle_timeouts"), 2);
    assert_eq!(n(&counters, "oversized"), 1);
    assert_eq!(n(&counters, "probes"), 3);
}

#[test]
fn probe_refuses_settings_out_of_range() {
    // Nothing needs to listen: the settings are refused before a packet is sent.
    let cases: [(&[&str], &str); 4] = [
        (&["--size", "55"], "56 to 65507"),
        (&["--size", "65508"], "56 to 65507"),
        (&["--count", "10000001"], "at most 10000000"),
        (
            &["--duration", "1000s", "--interval", "1us"],
            "at most 10000000",
        ),
    ];
    for (args, why) in cases {
        let out = Command::new(bin("udpecho"))
            .args(["probe", "127.0.0.1:9", "--quiet"])
            .args(args)
            .output()
            .expect("run udpecho probe");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
