//! Forged replies and garbage. A fake "server" socket in the test answers `dns query` with
//! replies from the wrong port, with the wrong id, with the wrong question and with garbage
//! before the real one: only the real one is believed, and each forgery is counted. Garbage
//! and truncated packets sent to both servers never stop them from answering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use protolab_tests::bin;

use crate::common::*;

#[test]
fn forged_replies_are_dropped_and_counted() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let at = format!("@{}", server.local_addr().unwrap());
    let child = Command::new(bin("dns"))
        .args([
            "query",
            "www.example.test",
            "A",
            &at,
            "--json",
            "--timeout",
            "10s",
            "--tries",
            "1",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut proc = protolab_tests::Proc {
        child,
        name: "dns query".into(),
    };
    let mut buf = [0u8; 1500];
    let (n, client) = server.recv_from(&mut buf).expect("the query arrives");
    let query = buf[..n].to_vec();
    let id = u16::from_be_bytes([query[0], query[1]]);

    // Right id and question, wrong source port.
    attacker
        .send_to(&reply(&query, id, [6, 6, 6, 1]), client)
        .unwrap();
    // Right source, wrong id.
    server
        .send_to(&reply(&query, id.wrapping_add(1), [6, 6, 6, 2]), client)
        .unwrap();
    // Right source and id, another question.
    let mut other = reply(&query, id, [6, 6, 6, 3]);
    other[13] = b'x';
    server.send_to(&other, client).unwrap();
    // Garbage and a truncated reply.
    server.send_to(b"\x00\x01garbage", client).unwrap();
    let real = reply(&query, id, [192, 0, 2, 10]);
    server.send_to(&real[..real.len() - 3], client).unwrap();
    // And the real one.
    server.send_to(&real, client).unwrap();

    let mut out = String::new();
    proc.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        proc.wait_for(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["answerRRs"][0]["RDATA"], "192.0.2.10", "{v}");
    assert_eq!(v["client"]["dropped_wrong_source"], 1, "{v}");
    assert_eq!(v["client"]["dropped_wrong_id"], 1, "{v}");
    assert_eq!(v["client"]["dropped_wrong_question"], 1, "{v}");
    assert_eq!(v["client"]["dropped_garbage"], 2, "{v}");
    assert_eq!(v["client"]["replies_accepted"], 1, "{v}");
}

/// A small deterministic generator for garbage (xorshift64).
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn blast(target: SocketAddr, valid: &[u8]) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut junk = Junk(0x5eed_1234_abcd_0042);
    for i in 0..3000usize {
        let packet = match i % 4 {
            0 => {
                let n = (junk.next() % 600) as usize;
                junk.bytes(n)
            }
            1 => valid[..(junk.next() as usize % valid.len())].to_vec(),
            2 => {
                let mut p = valid.to_vec();
                let at = junk.next() as usize % p.len();
                p[at] = junk.next() as u8;
                p
            }
            _ => {
                // A header claiming thousands of records, then junk.
                let mut p = valid[..12].to_vec();
                p[4..12].copy_from_slice(&[0xff; 8]);
                p.extend(junk.bytes(40));
                p
            }
        };
        let _ = sock.send_to(&packet, target);
        if i % 200 == 0 {
            // Let the server drain its socket buffer now and then.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Over TCP: junk frames, a frame longer than what follows, then a hang-up.
    if let Ok(mut s) = TcpStream::connect(target) {
        let _ = s.write_all(
            b"\x00\x05hello\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xffshort",
        );
        drop(s);
    }
}

#[test]
fn garbage_never_stops_either_server() {
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let (zone_server, zaddr) = start_lab_zone(&[zone.as_path()], "127.0.0.1:0", None);
    let up = zaddr.to_string();
    let (resolver, raddr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--timeout",
            "300ms",
        ],
        None,
    );

    let valid = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x07example\x04test\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
    for target in [zaddr, raddr] {
        blast(target, valid);
        // Still answering, correctly, over UDP and TCP, to dig.
        let (seen, _) = dig(
            None,
            &[
                &format!("@{}", target.ip()),
                "-p",
                &target.port().to_string(),
                "www.example.test.",
                "A",
            ],
        );
        assert_eq!(seen.answers.len(), 2, "{target} still answers");
        let (seen, _) = dig(
            None,
            &[
                &format!("@{}", target.ip()),
                "-p",
                &target.port().to_string(),
                "www.example.test.",
                "AAAA",
                "+tcp",
            ],
        );
        assert_eq!(seen.answers.len(), 1, "{target} still answers over TCP");
    }
    // Only the Internet class is resolved: a CHAOS question is refused, not forwarded.
    let (seen, _) = dig(
        None,
        &[
            &format!("@{}", raddr.ip()),
            "-p",
            &raddr.port().to_string(),
            "version.bind.",
            "CH",
            "TXT",
        ],
    );
    assert_eq!(seen.rcode, "REFUSED");
    // A header with junk after it gets FORMERR with the same id.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(
        b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fjunk",
        zaddr,
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..4], b"\xab\xcd\x81\x01", "FORMERR ({n} bytes)");

    let zstats = stop_with_stats(zone_server);
    let rstats = stop_with_stats(resolver);
    assert!(zstats["formerr"].as_u64().unwrap() > 100, "{zstats}");
    assert!(
        rstats["resolver"]["formerr"].as_u64().unwrap() > 100,
        "{rstats}"
    );
}

#[test]
fn edns_formerr_falls_back_and_a_silent_server_is_skipped() {
    // The first server never answers; the second is an old server that answers FORMERR to any
    // query with an OPT record, and answers plain queries.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let old = UdpSocket::bind("127.0.0.1:0").unwrap();
    old.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let old_addr = old.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut seen_edns = 0;
        for _ in 0..2 {
            let Ok((n, from)) = old.recv_from(&mut buf) else {
                break;
            };
            let q = &buf[..n];
            let id = u16::from_be_bytes([q[0], q[1]]);
            if q[11] > 0 {
                seen_edns += 1;
                let end = question_end(q);
                let mut r = q[..end].to_vec();
                r[2] = 0x81;
                r[3] = 0x01;
                r[10..12].copy_from_slice(&[0, 0]);
                old.send_to(&r, from).unwrap();
            } else {
                old.send_to(&reply(q, id, [192, 0, 2, 10]), from).unwrap();
            }
        }
        seen_edns
    });
    let (seen, v) = dns_query(
        None,
        &[
            "www.example.test.",
            &format!("@{}", silent.local_addr().unwrap()),
            &format!("@{old_addr}"),
            "--timeout",
            "500ms",
            "--tries",
            "1",
        ],
    );
    assert_eq!(seen.answers.len(), 1, "{v}");
    assert_eq!(v["server"], old_addr.to_string());
    assert_eq!(
        v["EDNS"],
        serde_json::Value::Null,
        "the accepted reply came without EDNS"
    );
    assert_eq!(v["client"]["timeouts"], 1, "{v}");
    assert_eq!(v["client"]["edns_fallbacks"], 1, "{v}");
    assert_eq!(responder.join().unwrap(), 1);
}

#[test]
fn disallowed_sources_get_no_reply_and_are_counted() {
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let (_zone_server, zaddr) = start_lab_zone(&[zone.as_path()], "127.0.0.1:0", None);
    let up = zaddr.to_string();
    let (resolver, raddr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--allow",
            "127.0.0.2/32",
        ],
        None,
    );
    // From 127.0.0.1, outside the allow-list: garbage with a header (which would earn a
    // FORMERR from an allowed client) and a valid query. Neither gets a single byte back.
    let outsider = UdpSocket::bind("127.0.0.1:0").unwrap();
    outsider
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    outsider
        .send_to(
            b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fjunk",
            raddr,
        )
        .unwrap();
    outsider
        .send_to(&query_bytes(7, "www.example.test.", true), raddr)
        .unwrap();
    let mut buf = [0u8; 1500];
    let got = outsider.recv_from(&mut buf);
    assert!(got.is_err(), "an outsider got a reply: {got:?}");
    // From 127.0.0.2, inside it: answered.
    let insider = UdpSocket::bind("127.0.0.2:0").unwrap();
    insider
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    insider
        .send_to(&query_bytes(8, "www.example.test.", true), raddr)
        .unwrap();
    let (n, _) = insider
        .recv_from(&mut buf)
        .expect("an allowed client is answered");
    assert_eq!(head(&buf[..n]).map(|h| (h.id, h.answers)), Some((8, 2)));
    let stats = stop_with_stats(resolver);
    assert_eq!(stats["resolver"]["not_allowed"], 2, "{stats}");
    assert_eq!(stats["resolver"]["formerr"], 0, "{stats}");
    assert_eq!(
        stats["upstream_client"]["queries_sent"], 1,
        "only the allowed query went upstream: {stats}"
    );
}
