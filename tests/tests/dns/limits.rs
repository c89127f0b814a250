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

/// An upstream that answers only `cached.example.test.` and never answers anything else.
fn black_hole_upstream(stop: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut swallowed = 0;
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if q.windows(7).any(|w| w == b"\x06cached") {
                let id = u16::from_be_bytes([q[0], q[1]]);
                let _ = sock.send_to(&reply(q, id, [192, 0, 2, 88]), from);
            } else {
                swallowed += 1;
            }
        }
        swallowed
    });
    (addr, handle)
}

/// Asks `addr` for `name` from a fresh socket bound to `from`, up to three times; the reply's
/// header, or `None` when nothing came back.
fn ask_udp(from: &str, addr: SocketAddr, name: &str, wait: Duration) -> Option<Head> {
    let sock = UdpSocket::bind(from).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1500];
    for id in 1..=3u16 {
        sock.send_to(&query_bytes(id, name, false), addr).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return head(&buf[..n]);
        }
    }
    None
}

#[test]
fn pending_miss_flood_is_capped_in_descriptors_and_memory() {
    const CAP: usize = 64;
    const FLOOD: usize = 12_000;
    protolab_tests::raise_fd_limit();
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, hole) = black_hole_upstream(stop.clone());
    let up = upstream.to_string();
    let cap = CAP.to_string();
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--timeout",
            "2s",
            "--max-pending",
            &cap,
        ],
        None,
    );
    let pid = resolver.proc.pid();
    let cached = ask_udp(
        "127.0.0.1:0",
        addr,
        "cached.example.test.",
        Duration::from_secs(3),
    );
    assert_eq!(
        cached.map(|h| (h.rcode, h.answers)),
        Some((0, 1)),
        "warm-up"
    );
    let (fds_idle, rss_idle) = (fd_count(pid), rss_kib(pid));

    // The flood: every query a distinct name, so none is merged or cached.
    let flood = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = flood.set_recv_buffer_size(8 << 20);
    flood
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let flood: UdpSocket = flood.into();
    flood.set_nonblocking(true).unwrap();
    let (mut fds_max, mut rss_max, mut servfail, mut cached_during) = (0, 0, 0usize, 0);
    let mut buf = [0u8; 1500];
    for i in 0..FLOOD {
        let _ = flood.send_to(
            &query_bytes(i as u16, &format!("n{i}.flood.test."), false),
            addr,
        );
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(20));
            fds_max = fds_max.max(fd_count(pid));
            rss_max = rss_max.max(rss_kib(pid));
            while let Ok((n, _)) = flood.recv_from(&mut buf) {
                servfail += usize::from(head(&buf[..n]).is_some_and(|h| h.rcode == 2));
            }
        }
        if i % 3000 == 1500 {
            let h = ask_udp(
                "127.0.0.1:0",
                addr,
                "cached.example.test.",
                Duration::from_secs(1),
            );
            cached_during += usize::from(h.is_some_and(|h| h.rcode == 0 && h.answers == 1));
        }
    }
    // Past the upstream timeout every pending query has ended.
    std::thread::sleep(Duration::from_millis(3000));
    while let Ok((n, _)) = flood.recv_from(&mut buf) {
        servfail += usize::from(head(&buf[..n]).is_some_and(|h| h.rcode == 2));
    }
    let (fds_after, rss_after) = (fd_count(pid), rss_kib(pid));
    stop.store(true, Ordering::Relaxed);
    let swallowed = hole.join().unwrap();
    let stats = stop_with_stats(resolver);
    eprintln!(
        "{FLOOD} misses to a black hole, cap {CAP}: fds idle {fds_idle} max {fds_max} after \
         {fds_after}; RSS KiB idle {rss_idle} max {rss_max} after {rss_after}; upstream saw \
         {swallowed}; SERVFAIL seen {servfail}; cached answered {cached_during}/4; {stats}"
    );
    assert!(
        fds_max <= fds_idle + CAP + 16,
        "descriptors capped: {fds_max}"
    );
    assert!(
        swallowed <= FLOOD / 2,
        "most of the flood never went upstream: {swallowed}"
    );
    assert!(
        rss_max <= rss_idle + 32 * 1024,
        "memory bounded: {rss_max} KiB"
    );
    assert!(
        rss_after <= rss_idle + 16 * 1024,
        "memory returned: {rss_after} KiB"
    );
    assert!(
        fds_after <= fds_idle + 4,
        "descriptors returned: {fds_after}"
    );
    assert_eq!(
        cached_during, 4,
        "a cached name is answered during the flood"
    );
    let overloaded = stats["resolver"]["overloaded"].as_u64().unwrap();
    assert!(overloaded > 0 && servfail > 0, "SERVFAILs counted: {stats}");
    assert!(
        servfail as u64 <= overloaded + stats["resolver"]["upstream_failures"].as_u64().unwrap()
    );
}

/// A reply to `query` with `n` A records (192.0.2.0, .1, ...), TTL one hour.
fn fat_reply(query: &[u8], n: u8) -> Vec<u8> {
    let mut r = query[..question_end(query)].to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..8].copy_from_slice(&u16::from(n).to_be_bytes());
    r[8..12].copy_from_slice(&[0, 0, 0, 0]);
    for i in 0..n {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, i]);
    }
    r
}

/// An upstream answering every query at once with 60 A records (a 1 KB reply).
fn fat_upstream(stop: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut answered = 0;
        let mut buf = [0u8; 1500];
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(120) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&fat_reply(&buf[..n], 60), from);
                answered += 1;
            }
        }
        answered
    });
    (addr, handle)
}

#[test]
fn cache_filled_with_many_names_stays_within_its_bytes() {
    const NAMES: usize = 16_000;
    const BATCH: usize = 200;
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, fat) = fat_upstream(stop.clone());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--cache-size",
            "4MiB",
        ],
        None,
    );
    let pid = resolver.proc.pid();
    let warm = ask_udp(
        "127.0.0.1:0",
        addr,
        "warm.fill.test.",
        Duration::from_secs(3),
    );
    // Without EDNS the reply does not fit 512 bytes: TC, no answers, but a reply.
    assert_eq!(
        warm.map(|h| (h.flags & 0x0200, h.answers)),
        Some((0x0200, 0))
    );
    let rss_idle = rss_kib(pid);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (mut answered, mut rss_max) = (0, 0);
    let mut buf = [0u8; 1500];
    for batch in 0..NAMES / BATCH {
        for i in 0..BATCH {
            let n = batch * BATCH + i;
            let _ = client.send_to(
                &query_bytes(n as u16, &format!("n{n}.fill.test."), true),
                addr,
            );
        }
        for _ in 0..BATCH {
            let Ok((n, _)) = client.recv_from(&mut buf) else {
                break;
            };
            answered += usize::from(head(&buf[..n]).is_some_and(|h| h.answers == 60));
        }
        rss_max = rss_max.max(rss_kib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    let upstream_answered = fat.join().unwrap();
    let stats = stop_with_stats(resolver);
    eprintln!(
        "{NAMES} names of 60 A records into a 4 MiB cache: {answered} answered, upstream \
         {upstream_answered}; RSS KiB idle {rss_idle} max {rss_max}; {}",
        stats["cache"]
    );
    assert!(
        answered >= NAMES * 9 / 10,
        "the names were answered: {answered}"
    );
    let cache = &stats["cache"];
    assert!(cache["bytes"].as_u64().unwrap() <= 4 << 20, "{cache}");
    assert!(
        cache["evicted"].as_u64().unwrap() > 0,
        "the cache filled up: {cache}"
    );
    assert!(
        rss_max <= rss_idle + 16 * 1024,
        "memory bounded: {rss_max} KiB"
    );
}

/// Sends `query` over TCP from a socket bound to `from`; the reply's header, or `None`.
fn ask_tcp(from: &str, addr: SocketAddr, query: &[u8]) -> Option<Head> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&from.parse::<SocketAddr>().ok()?.into()).ok()?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(3))
        .ok()?;
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).ok()?;
    head(&body)
}

/// A TCP connection to `addr` from a socket bound to `from`.
fn connect_from(from: &str, addr: SocketAddr) -> std::net::TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&from.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect(&addr.into()).unwrap();
    sock.into()
}

#[test]
fn stalled_tcp_connections_from_one_client_do_not_lock_out_others() {
    use std::io::{Read, Write};
    const STALLED: usize = 1_100;
    protolab_tests::raise_fd_limit();
    let dir = zone_dir();
    let zone = dir.path().join("example.test.zone");
    let (server, _) = start_lab_zone(&[zone.as_path()], "127.0.0.1:0", None);
    let tcp = server.addr("tcp");
    // One client, 127.0.0.1, opens more connections than the server allows in all, and says
    // nothing on them.
    let stalled: Vec<std::net::TcpStream> = (0..STALLED)
        .filter_map(|_| std::net::TcpStream::connect(tcp).ok())
        .collect();
    let opened = stalled.len();
    // Another client, 127.0.0.2, is still answered over TCP.
    let q = query_bytes(0x4242, "www.example.test.", false);
    let other = ask_tcp("127.0.0.2:0", tcp, &q);
    eprintln!("{opened} stalled connections from 127.0.0.1; 127.0.0.2 over TCP: {other:?}");
    assert_eq!(other.map(|h| (h.id, h.answers)), Some((0x4242, 2)));
    // A third, 127.0.0.3, starts a message and stalls inside it: the server closes the
    // connection when the message's deadline passes (the counter tells it from the idle
    // timeout).
    let mut half = connect_from("127.0.0.3:0", tcp);
    half.write_all(b"\x00\x40\x12").unwrap();
    half.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut sink = [0u8; 16];
    assert!(
        matches!(half.read(&mut sink), Ok(0) | Err(_)),
        "closed by the server"
    );
    drop(stalled);
    let stats = stop_with_stats(server);
    eprintln!("{stats}");
    let tcp_stats = &stats["tcp"];
    assert!(
        tcp_stats["over_client_cap"].as_u64().unwrap() >= (opened - 16) as u64,
        "{stats}"
    );
    assert!(
        tcp_stats["message_timeouts"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}

#[test]
fn identical_misses_to_a_black_hole_wait_on_one_query_in_bounded_memory() {
    const FLOOD: usize = 12_000;
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, hole) = black_hole_upstream(stop.clone());
    let up = upstream.to_string();
    let (resolver, addr) = start_resolver(
        &[
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &up,
            "--timeout",
            "2s",
        ],
        None,
    );
    let pid = resolver.proc.pid();
    let warm = ask_udp(
        "127.0.0.1:0",
        addr,
        "cached.example.test.",
        Duration::from_secs(3),
    );
    assert!(warm.is_some());
    let (fds_idle, rss_idle) = (fd_count(pid), rss_kib(pid));
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut fds_max, mut rss_max) = (0, 0);
    for i in 0..FLOOD {
        let _ = flood.send_to(&query_bytes(i as u16, "same.flood.test.", false), addr);
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(10));
            fds_max = fds_max.max(fd_count(pid));
            rss_max = rss_max.max(rss_kib(pid));
        }
    }
    std::thread::sleep(Duration::from_millis(3000));
    let rss_after = rss_kib(pid);
    stop.store(true, Ordering::Relaxed);
    let swallowed = hole.join().unwrap();
    let stats = stop_with_stats(resolver);
    eprintln!(
        "{FLOOD} identical misses to a black hole: upstream saw {swallowed}; fds idle {fds_idle} \
         max {fds_max}; RSS KiB idle {rss_idle} max {rss_max} after {rss_after}; {}",
        stats["resolver"]
    );
    assert!(
        swallowed <= 4,
        "one query at a time for the one question: {swallowed}"
    );
    assert!(fds_max <= fds_idle + 4, "{fds_max}");
    // At most 4,096 misses wait at once (about 1.5 KiB each); the rest get SERVFAIL.
    let resolver = &stats["resolver"];
    assert!(resolver["merged"].as_u64().unwrap() <= 4_096, "{resolver}");
    assert!(resolver["overloaded"].as_u64().unwrap() > 0, "{resolver}");
    assert!(
        rss_max <= rss_idle + 16 * 1024,
        "memory bounded: {rss_max} KiB"
    );
}
