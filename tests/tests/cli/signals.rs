//! Servers stop as docs/cli.md says: the first SIGINT drains, a second exits at once with 130.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use protolab_tests::Server;

/// Waits until the server has closed its listener, which it does at the first signal.
fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..500 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the server still accepts connections on {addr} after SIGINT");
}

/// greet serve through transport's shutdown: a reply held back for ten minutes and a drain
/// as long keep it up after the first SIGINT; only the second can end it, and at once.
#[test]
fn a_second_sigint_ends_a_draining_server_at_once() {
    let mut srv = Server::start(
        "greet",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--delay",
            "10m",
            "--drain-timeout",
            "10m",
        ],
        1,
    );
    let addr = srv.addr("tcp");
    let stream = TcpStream::connect(addr).expect("connect");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut welcome = String::new();
    reader.read_line(&mut welcome).expect("read the welcome");
    (&stream).write_all(b"Ada\n").expect("send a name");
    srv.proc.signal(libc::SIGINT);
    wait_until_refused(addr);
    // Still draining: the reply to Ada is ten minutes away.
    assert!(
        srv.proc.child.try_wait().expect("try_wait").is_none(),
        "the server stopped without draining"
    );
    srv.proc.signal(libc::SIGINT);
    let status = srv.proc.wait_for(Duration::from_secs(60));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "a second SIGINT must end the drain at once with 130: {status:?}"
    );
}
