//! Limits, timeouts and pipelining of `http serve`, over real sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{Http, exchange, parse_responses};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn head_limits_answer_414_and_431_and_close() {
    let http = Http::start(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let o = exchange(http.addr, long_target.as_bytes(), LIMIT);
    assert_eq!(o.responses[0].status, 414);
    assert!(o.closed);
    let long_field = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let o = exchange(http.addr, long_field.as_bytes(), LIMIT);
    assert_eq!(o.responses[0].status, 431);
    assert!(o.closed);
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let o = exchange(
        http.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        LIMIT,
    );
    assert_eq!(o.responses[0].status, 431);
    // 9 fields of 8,000 bytes: each line within its limit, the head over 64 KiB.
    let big: String = (0..9)
        .map(|i| format!("X-{i}: {}\r\n", "c".repeat(8000)))
        .collect();
    let o = exchange(
        http.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n").as_bytes(),
        LIMIT,
    );
    assert_eq!(o.responses[0].status, 431);
    assert!(o.closed);
}

#[test]
fn body_limit_413_for_length_and_chunked() {
    let http = Http::start(&["--max-body", "1000"]);
    let o = exchange(
        http.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
        LIMIT,
    );
    assert_eq!(o.responses[0].status, 413);
    assert!(o.closed);
    let chunk = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n{}\r\n0\r\n\r\n",
        "d".repeat(1001)
    );
    let o = exchange(http.addr, chunk.as_bytes(), LIMIT);
    assert_eq!(o.responses[0].status, 413);
    assert!(o.closed);
}

#[test]
fn pipelined_requests_answered_in_order_on_one_connection() {
    let http = Http::start(&[]);
    let requests = "GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n\
                    POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
                    HEAD /file.txt HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /status/202 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let o = exchange(http.addr, requests.as_bytes(), LIMIT);
    assert!(o.closed);
    let statuses: Vec<u16> = o.responses.iter().map(|r| r.status).collect();
    // HEAD's response carries Content-Length: 1000 and no body; the reader here would take the
    // next response as its body, so stop comparing after it.
    assert_eq!(&statuses[..3], [201, 200, 200]);
    assert!(o.responses[1].body.ends_with(b"hello"));
    assert_eq!(o.responses[2].field("content-length"), Some("1000"));
}

#[test]
fn slow_head_and_slow_body_get_408_and_idle_keep_alive_is_closed() {
    let http = Http::start(&["--head-timeout", "1s", "--idle-timeout", "1s"]);
    // Half a head, then silence: 408 once the head's deadline passes.
    let mut s = TcpStream::connect(http.addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until close");
    let r = parse_responses(&got);
    assert_eq!(r[0].status, 408, "{}", String::from_utf8_lossy(&got));
    // A body that stops coming: 408 once a read of it waits longer than the body timeout.
    let slow_body = Http::start(&["--body-timeout", "1s"]);
    let mut s = TcpStream::connect(slow_body.addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        .expect("write");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until close");
    assert_eq!(parse_responses(&got)[0].status, 408);
    // A served keep-alive connection left idle is closed without a word.
    let mut s = TcpStream::connect(http.addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    s.write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read until close");
    let r = parse_responses(&got);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
}

#[test]
fn over_the_connection_cap_gets_503() {
    let http = Http::start(&["--max-connections", "1"]);
    let mut first = TcpStream::connect(http.addr).expect("connect");
    first.set_read_timeout(Some(LIMIT)).expect("timeout");
    first
        .write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 1024];
    assert!(first.read(&mut buf).expect("read") > 0);
    let o = exchange(http.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", LIMIT);
    assert_eq!(o.responses[0].status, 503);
    assert!(o.closed);
}
