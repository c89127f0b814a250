//! Graceful shutdown: stop accepting, let live conversations finish, then close.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use protolab_tests::Server;

#[test]
fn sigterm_lets_a_client_mid_conversation_finish() {
    let mut server = Server::start(
        "greet",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--delay",
            "500ms",
            "--drain-timeout",
            "20s",
        ],
        1,
    );
    let addr = server.addr("tcp");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Welcome!\n");
    w.write_all(b"Michael\n").unwrap();
    // Shut down while the reply is still being prepared.
    server.proc.signal(libc::SIGTERM);
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Hello, Michael!\n");

    // The listener is closed: new clients are refused while the old one still talks.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "the server stopped accepting after SIGTERM");

    w.write_all(b"Tracy\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Hello, Tracy!\n");
    w.write_all(b"exit\n").unwrap();
    line.clear();
    assert_eq!(r.read_line(&mut line).unwrap(), 0);
    let status = server
        .proc
        .wait_for(Duration::from_secs(30))
        .expect("server exits");
    assert!(status.success(), "clean exit after draining: {status}");
}

#[test]
fn drain_deadline_closes_lingering_clients() {
    let mut server = Server::start(
        "greet",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "300ms",
        ],
        1,
    );
    let s = TcpStream::connect(server.addr("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "Welcome!\n");
    server.proc.signal(libc::SIGINT);
    let mut rest = Vec::new();
    // The idle client is closed by the server (EOF), not by our read timeout.
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let status = server
        .proc
        .wait_for(Duration::from_secs(30))
        .expect("server exits");
    assert!(status.success(), "{status}");
}
