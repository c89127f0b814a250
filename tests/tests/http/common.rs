//! What the HTTP tests share: `http serve` on a temporary site, a raw-socket client, and a
//! small response reader independent of the code under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use protolab_tests::Server;

/// `http serve` on 127.0.0.1:0 serving a fresh temporary site.
pub struct Http {
    /// Kept so the server lives (and is stopped) with the test.
    _server: Server,
    pub addr: SocketAddr,
    _site: tempfile::TempDir,
}

/// The body of `/file.txt` in every test site: 1,000 bytes that say where each byte is.
pub fn file_body() -> Vec<u8> {
    (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Writes the test site: index.html, file.txt, and a 2 MiB big.bin (larger than the cache).
pub fn write_site(dir: &Path) {
    std::fs::write(dir.join("index.html"), "<h1>protolab</h1>\n").expect("write index");
    std::fs::write(dir.join("file.txt"), file_body()).expect("write file");
    let big: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.bin"), big).expect("write big");
}

impl Http {
    pub fn start(extra: &[&str]) -> Http {
        let site = tempfile::tempdir().expect("tempdir");
        write_site(site.path());
        let root = site.path().to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--root", &root];
        args.extend_from_slice(extra);
        let server = Server::start("http", &args, 1);
        let addr = server.addr("tcp");
        Http {
            _server: server,
            addr,
            _site: site,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Field lines as received.
    pub fields: Vec<String>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What a server sent back on one connection.
#[derive(Debug)]
pub struct Outcome {
    pub responses: Vec<RawResponse>,
    /// The server closed the connection (EOF or reset) within the time allowed.
    pub closed: bool,
}

/// Sends `bytes` on a fresh connection and reads until the server closes it (at most `limit`).
pub fn exchange(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Outcome {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // A server may refuse and close before reading everything: a failed write is fine.
    let _ = s.write_all(bytes);
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    Outcome {
        responses: parse_responses(&raw),
        closed,
    }
}

/// Splits a byte stream into Content-Length framed responses (all the origin sends in these
/// tests); stops at the first thing it cannot read.
pub fn parse_responses(mut raw: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let Some(status) = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
        else {
            break;
        };
        let fields: Vec<String> = lines.map(str::to_owned).collect();
        let mut resp = RawResponse {
            status,
            fields,
            body: Vec::new(),
        };
        let len: usize = resp
            .field("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        let body_end = (body_start + len).min(raw.len());
        resp.body = raw[body_start..body_end].to_vec();
        raw = &raw[body_end..];
        let interim = (100..200).contains(&status);
        if !interim {
            out.push(resp);
        }
    }
    out
}
