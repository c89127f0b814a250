//! Hostile load against `dns serve` and `dns zone`, over real sockets to the built binary: many
//! identical misses at once, a flood of misses to an upstream that never answers, a cache filled
//! with many names, stalled TCP connections, and a burst meant for amplification.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

/// What a test upstream saw: queries, and the distinct source ports they came from.
#[derive(Debug, Default)]
struct Seen {
    queries: usize,
    ports: BTreeSet<u16>,
}

/// An upstream that holds every query for `hold` after the first one arrives, then answers
/// them all with 192.0.2.77, and answers later ones at once; it stops when `stop` is set.
fn slow_upstream(
    hold: Duration,
    stop: Arc<AtomicBool>,
) -> (SocketAddr, std::thread::JoinHandle<Seen>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut held: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
        let mut first: Option<Instant> = None;
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                seen.queries += 1;
                seen.ports.insert(from.port());
                first.get_or_insert_with(Instant::now);
                held.push((buf[..n].to_vec(), from));
            }
            if first.is_some_and(|t| t.elapsed() >= hold) {
                for (q, from) in held.drain(..) {
                    let id = u16::from_be_bytes([q[0], q[1]]);
                    let _ = sock.send_to(&reply(&q, id, [192, 0, 2, 77]), from);
                }
            }
        }
        seen
    });
    (addr, handle)
}

#[test]
fn identical_misses_in_flight_make_one_upstream_query() {
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, counter) = slow_upstream(Duration::from_millis(1500), stop.clone());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--timeout",
            "5s",
        ],
        None,
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for id in 1..=200u16 {
        client
            .send_to(&query_bytes(id, "slow.example.test.", id % 2 == 0), addr)
            .unwrap();
    }
    let mut answered = BTreeSet::new();
    let mut buf = [0u8; 1500];
    while answered.len() < 200 {
        let Ok((n, _)) = client.recv_from(&mut buf) else {
            break;
        };
        let h = head(&buf[..n]).expect("a DNS header");
        assert_eq!((h.rcode, h.answers), (0, 1), "{h:?}");
        assert!(
            buf[..n].windows(4).any(|w| w == [192, 0, 2, 77]),
            "the upstream's address"
        );
        assert!(answered.insert(h.id), "one reply per query: {h:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = counter.join().unwrap();
    let stats = stop_with_stats(resolver);
    eprintln!(
        "200 identical misses: {} upstream queries from {} source ports; {} answers; {stats}",
        seen.queries,
        seen.ports.len(),
        answered.len()
    );
    assert_eq!(
        answered.len(),
        200,
        "every waiter is answered with its own id"
    );
    assert_eq!(
        seen.queries, 1,
        "one upstream query for the whole group: {stats}"
    );
    assert_eq!(stats["resolver"]["merged"], 199, "{stats}");
}
