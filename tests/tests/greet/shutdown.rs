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

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills both descriptors, which this function then owns.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    std::process::Stdio::from(write)
}

#[test]
fn hello_with_standard_output_closed_exits_cleanly() {
    let server = Server::start("greet", &["serve", "--listen", "127.0.0.1:0"], 1);
    let addr = server.addr("tcp").to_string();
    for json in [false, true] {
        let mut cmd = std::process::Command::new(protolab_tests::bin("greet"));
        cmd.args(["hello", "--server", &addr]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.stdout(closed_pipe()).output().expect("run greet hello");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "json {json}, stderr: {err}");
        assert!(out.status.success(), "json {json}: {}, {err}", out.status);
    }
}

#[test]
fn serve_with_standard_output_closed_exits_cleanly() {
    let mut cmd = std::process::Command::new(protolab_tests::bin("greet"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped());
    let server = Server::start_cmd("greet", cmd, 1);
    let Server {
        mut proc, stdout, ..
    } = server;
    drop(stdout);
    proc.signal(libc::SIGTERM);
    let status = proc.wait_for(Duration::from_secs(10)).expect("exits");
    let mut err = String::new();
    proc.child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(status.success(), "{status}, stderr: {err}");
}
