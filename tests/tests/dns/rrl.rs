//! Response rate limiting on `dns zone`: a burst of identical queries from one address, as a
//! reflection attack with a forged source would send, gets at most the rate in full answers;
//! over it, every second reply is truncated (TC=1, no records, no larger than the query) and the
//! rest dropped. A real client told TC retries over TCP, which is not limited.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_burst_from_one_address_gets_the_rate_then_truncated_slips() {
    const RATE: usize = 5;
    const BURST: usize = 100;
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let mut c = std::process::Command::new(protolab_tests::bin("dns"));
    c.args(["zone", "--json", "--listen", "127.0.0.1:0", "--zone"])
        .arg(&zone)
        .args(["--rrl", &RATE.to_string(), "--rrl-slip", "2", "--seed", "3"])
        .env("RUST_LOG", "warn");
    let server = protolab_tests::Server::start_cmd("dns zone", c, 2);
    let addr = server.addr("udp");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let query = query_bytes(0x0101, "www.example.test.", true);
    let start = Instant::now();
    for _ in 0..BURST {
        sock.send_to(&query, addr).unwrap();
    }
    let sending = start.elapsed();
    let (mut full, mut slipped, mut bytes_out) = (0usize, 0usize, 0usize);
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let h = head(&buf[..n]).expect("a DNS header");
        bytes_out += n;
        if h.flags & 0x0200 != 0 {
            assert_eq!(h.answers, 0, "a slipped reply carries no records");
            assert!(
                n <= query.len(),
                "a slipped reply is no larger than the query"
            );
            slipped += 1;
        } else {
            assert_eq!(h.answers, 2);
            full += 1;
        }
    }
    // The bucket holds one second's worth, and refills at the rate while the burst is sent.
    let allowed = RATE + (RATE as f64 * sending.as_secs_f64()).ceil() as usize;
    eprintln!(
        "{BURST} queries of {} bytes in {sending:?}: {full} answered, {slipped} slipped, \
         {} dropped; {bytes_out} bytes out for {} in",
        query.len(),
        BURST - full - slipped,
        BURST * query.len()
    );
    assert!(
        (1..=allowed).contains(&full),
        "{full} full answers, at most {allowed}"
    );
    assert!(
        slipped >= 1,
        "truncated replies let real clients retry over TCP"
    );
    assert!(
        slipped <= (BURST - full).div_ceil(2) + 1,
        "{slipped} slipped"
    );
    assert!(
        bytes_out < BURST * query.len(),
        "no amplification: {bytes_out} bytes out"
    );

    // Over TCP the answer still comes, to dig.
    let (seen, _) = dig(
        None,
        &[
            &format!("@{}", addr.ip()),
            "-p",
            &addr.port().to_string(),
            "www.example.test.",
            "A",
            "+tcp",
        ],
    );
    assert_eq!(seen.answers.len(), 2);

    let stats = stop_with_stats(server);
    eprintln!("{stats}");
    let rrl = &stats["rrl"];
    assert_eq!(rrl["slipped"], slipped as u64, "{stats}");
    assert_eq!(
        rrl["dropped"].as_u64().unwrap() + rrl["slipped"].as_u64().unwrap(),
        (BURST - full) as u64,
        "{stats}"
    );
}
