//! Limits and bad input: the connection cap, overlong lines, resets, garbage and slow clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use protolab_tests::Server;

fn serve(extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start("greet", &args, 1)
}

fn connect(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

/// A well-behaved client's whole conversation; proves the server still serves others.
fn converse(addr: SocketAddr, name: &str) {
    let (mut r, mut w) = connect(addr);
    assert_eq!(line(&mut r), "Welcome!\n");
    w.write_all(format!("{name}\n").as_bytes()).unwrap();
    assert_eq!(line(&mut r), format!("Hello, {name}!\n"));
    w.write_all(b"exit\n").unwrap();
    assert_eq!(line(&mut r), "", "closed after exit");
}

#[test]
fn over_the_cap_gets_err_busy() {
    let server = serve(&["--max-connections", "2"]);
    let addr = server.addr("tcp");
    let (mut r1, _w1) = connect(addr);
    let (mut r2, _w2) = connect(addr);
    assert_eq!(line(&mut r1), "Welcome!\n");
    assert_eq!(line(&mut r2), "Welcome!\n");
    let (mut r3, _w3) = connect(addr);
    assert_eq!(line(&mut r3), "ERR busy\n");
    assert_eq!(line(&mut r3), "", "the busy client is closed");
    drop((r1, _w1));
    // Once a slot frees, a new client is served again.
    let mut served = false;
    for _ in 0..100 {
        let (mut r, mut w) = connect(addr);
        if line(&mut r) == "Welcome!\n" {
            w.write_all(b"Ada\n").unwrap();
            assert_eq!(line(&mut r), "Hello, Ada!\n");
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "a freed slot is reused");
}

#[test]
fn overlong_line_gets_err_and_close_others_unaffected() {
    let server = serve(&[]);
    let addr = server.addr("tcp");
    let (mut r, mut w) = connect(addr);
    assert_eq!(line(&mut r), "Welcome!\n");
    let mut long = vec![b'a'; 1025];
    long.push(b'\n');
    w.write_all(&long).unwrap();
    assert_eq!(line(&mut r), "ERR line too long\n");
    assert_eq!(line(&mut r), "", "closed after the error");
    // Exactly 1,024 bytes is fine.
    let (mut r, mut w) = connect(addr);
    assert_eq!(line(&mut r), "Welcome!\n");
    let name = "b".repeat(1024);
    w.write_all(format!("{name}\r\n").as_bytes()).unwrap();
    assert_eq!(line(&mut r), format!("Hello, {name}!\n"));
    converse(addr, "Tracy");
}

#[test]
fn overlong_line_without_newline_is_cut_off() {
    // A client streaming megabytes with no newline must not make the server buffer them.
    let server = serve(&[]);
    let addr = server.addr("tcp");
    let (mut r, mut w) = connect(addr);
    assert_eq!(line(&mut r), "Welcome!\n");
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..16 {
        if w.write_all(&chunk).is_err() {
            break;
        }
    }
    assert_eq!(line(&mut r), "ERR line too long\n");
    converse(addr, "Sarah");
}

#[test]
fn resets_and_garbage_do_not_disturb_others() {
    let server = serve(&[]);
    let addr = server.addr("tcp");
    for i in 0..50 {
        let s = TcpStream::connect(addr).unwrap();
        let sock = socket2::SockRef::from(&s);
        if i % 2 == 0 {
            (&s).write_all(b"\x00\xff\xfe garbage \x1b[2J\r\r\n\n")
                .unwrap();
        }
        // SO_LINGER 0 makes close() send RST instead of FIN: an abrupt reset.
        sock.set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    }
    converse(addr, "Michael");
}

#[test]
fn client_that_never_reads_does_not_block_others() {
    let server = serve(&[]);
    let addr = server.addr("tcp");
    let hog = TcpStream::connect(addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Pipeline far more than the socket buffers hold and never read a reply.
    let flood = "x\n".repeat(64 * 1024);
    for _ in 0..64 {
        if (&hog).write_all(flood.as_bytes()).is_err() {
            break;
        }
    }
    converse(addr, "Tracy");
    drop(hog);
    converse(addr, "Sarah");
}

#[test]
fn idle_connection_is_closed_after_the_timeout() {
    let server = serve(&["--idle-timeout", "300ms"]);
    let (mut r, _w) = connect(server.addr("tcp"));
    assert_eq!(line(&mut r), "Welcome!\n");
    let mut rest = Vec::new();
    // EOF (not our 10 s read timeout) proves the server closed it.
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn a_flood_over_the_cap_holds_no_sockets_and_others_are_served() {
    protolab_tests::raise_fd_limit();
    // One thread: the accept loop and everything it spawns share it, as on a busy server.
    let server = serve(&["--max-connections", "10", "--threads", "1"]);
    let addr = server.addr("tcp");
    let pid = server.proc.pid();
    let fds = || protolab_tests::fd_count(pid);
    let base = fds();
    let held: Vec<_> = (0..10)
        .map(|_| {
            let (mut r, w) = connect(addr);
            assert_eq!(line(&mut r), "Welcome!\n");
            (r, w)
        })
        .collect();
    // Thousands of clients over the cap that never read and never close.
    let mut flood = Vec::new();
    let mut peak = 0;
    for i in 0..4000 {
        if let Ok(s) = TcpStream::connect(addr) {
            flood.push(s);
        }
        if i % 50 == 0 {
            peak = peak.max(fds());
        }
    }
    peak = peak.max(fds());
    // The server holds the listener, its runtime's descriptors and the ten it serves; a
    // client over the cap is answered and closed on the spot, so none of the flood piles up.
    assert!(
        peak <= base + 10 + 16,
        "server descriptors peaked at {peak} (at rest {base}, 10 served)"
    );
    assert!(
        flood.len() > 3000,
        "only {} connects went through",
        flood.len()
    );
    for s in [&flood[0], &flood[flood.len() - 1]] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        assert_eq!(line(&mut r), "ERR busy\n");
        assert_eq!(line(&mut r), "", "a busy client is closed");
    }
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        let (mut r, mut w) = connect(addr);
        if line(&mut r) == "Welcome!\n" {
            w.write_all(b"Ada\n").unwrap();
            assert_eq!(line(&mut r), "Hello, Ada!\n");
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "a legit client is served after the flood");
    drop(flood);
}
