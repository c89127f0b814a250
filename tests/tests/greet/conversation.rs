//! The seed conversation, over each framing and transport.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use protolab_tests::{Server, bin, require_peer, run_ok, workspace_root};

const SEED_TRANSCRIPT: &str = "Welcome!\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n";

fn serve(extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::start("greet", &args, 1)
}

#[test]
fn greet_hello_gets_the_seed_transcript() {
    let server = serve(&[]);
    let addr = server.addr("tcp").to_string();
    let out = run_ok(Command::new(bin("greet")).args(["hello", "--server", &addr]));
    assert_eq!(out, SEED_TRANSCRIPT);
}

#[test]
fn greet_hello_json_and_own_names() {
    let server = serve(&[]);
    let addr = server.addr("tcp").to_string();
    let out = run_ok(
        Command::new(bin("greet")).args(["hello", "--server", &addr, "--json", "Ada", "张三"]),
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["welcome"], "Welcome!");
    assert_eq!(
        v["replies"],
        serde_json::json!(["Hello, Ada!", "Hello, 张三!"])
    );
}

fn seed_client(addr: std::net::SocketAddr) -> String {
    let python = require_peer("python3", "python3");
    let script = workspace_root().join("tests/test-data/greet/seed_client.py");
    run_ok(
        Command::new(python)
            .arg(script)
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string()),
    )
}

#[test]
fn seed_python_client_against_line_framing() {
    // The seed client sends names with no newline; greet takes its pause as the line's end.
    let server = serve(&[]);
    assert_eq!(seed_client(server.addr("tcp")), SEED_TRANSCRIPT);
}

#[test]
fn seed_python_client_against_raw_framing() {
    let server = serve(&["--framing", "raw"]);
    assert_eq!(seed_client(server.addr("tcp")), SEED_TRANSCRIPT);
}

#[test]
fn raw_framing_shows_tcp_has_no_message_boundaries() {
    let server = serve(&["--framing", "raw"]);
    let mut s = TcpStream::connect(server.addr("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Welcome!");
    // Two names in one segment are one "message" to a server that trusts recv().
    s.write_all(b"TracySarah").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, TracySarah!");
    s.write_all(b"exit").unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 0, "exit closes the connection");
}

#[test]
fn pipelined_lines_all_answered_in_order() {
    let server = serve(&[]);
    let mut s = TcpStream::connect(server.addr("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut input = Vec::new();
    for i in 0..500 {
        input.extend_from_slice(format!("n{i}\r\n").as_bytes());
    }
    input.extend_from_slice(b"exit\n");
    s.write_all(&input).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    let mut want = String::from("Welcome!\n");
    for i in 0..500 {
        want.push_str(&format!("Hello, n{i}!\n"));
    }
    assert_eq!(got, want);
}

#[test]
fn half_close_still_gets_the_reply() {
    let server = serve(&[]);
    let mut s = TcpStream::connect(server.addr("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"Michael\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "Welcome!\nHello, Michael!\n");
}

#[test]
fn udp_mode() {
    let server = serve(&["--udp"]);
    let addr = server.addr("udp");
    let out =
        run_ok(Command::new(bin("greet")).args(["hello", "--udp", "--server", &addr.to_string()]));
    // No connection, so no Welcome: just the replies.
    assert_eq!(out, "Hello, Michael!\nHello, Tracy!\nHello, Sarah!\n");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(b"Ada\n", addr).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, Ada!");
    // `exit` gets no reply; the next datagram is still served.
    sock.send_to(b"exit", addr).unwrap();
    sock.send_to(b"Linus", addr).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Hello, Linus!");
    // An overlong name gets the error, which is shorter than the request (no amplification).
    sock.send_to(&[b'x'; 1500], addr).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ERR line too long\n");
}
