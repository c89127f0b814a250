//! Shared pieces of the DNS tests: lab zone files, starting knot, nsd, unbound and protolab's
//! servers, running `dns query` and `dig`, and a private network namespace.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use protolab_tests::{Netns, fd_count, rss_kib};
use protolab_tests::{Proc, Server, bin, require_peer, run_ok};

/// A TXT RRset of 1099 bytes on the wire: five strings that no 512-byte UDP reply can hold.
pub fn big_txt() -> String {
    // Each string: 1 length byte + 200 bytes; the RR adds name pointer, type, class, TTL,
    // length: 5 * 201 + 12 = 1017 bytes of record, plus an 82-byte sixth string = 1099.
    let mut parts: Vec<String> = (0..5)
        .map(|i| format!("\"{}\"", format!("{i}").repeat(200)))
        .collect();
    parts.push(format!("\"{}\"", "z".repeat(81)));
    parts.join(" ")
}

/// The lab zone `example.test.` used by the corpus tests.
pub fn example_zone() -> String {
    format!(
        "$ORIGIN example.test.
$TTL 3600
@          IN SOA   ns1 hostmaster 2024010101 7200 3600 1209600 300
@          IN NS    ns1
@          IN NS    ns2
@          IN A     192.0.2.1
@          IN MX    10 mail
@          IN MX    20 mail2
@          IN TXT   \"v=spf1 -all\"
ns1        IN A     127.0.0.1
ns2        IN A     127.0.0.2
www        IN A     192.0.2.10
www        IN A     192.0.2.11
www        IN AAAA  2001:db8::10
mail       IN A     192.0.2.25
mail2      IN A     192.0.2.26
mail       IN AAAA  2001:db8::25
alias      IN CNAME www
chain      IN CNAME alias
far        IN CNAME www.example.net.
txt        IN TXT   \"hello world\" \"with \\\"quotes\\\" and \\\\ backslash\"
big        IN TXT   {}
short      60 IN A  192.0.2.60
_sip._udp  IN SRV   0 5 5060 sip
sip        IN A     192.0.2.50
a.b.c      IN A     192.0.2.99
ptr        IN PTR   www.example.test.
",
        big_txt()
    )
}

/// A zone directory with example.test.zone in it.
pub fn zone_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("example.test.zone"), example_zone()).expect("write zone");
    dir
}

/// Sends a plain query for `name` SOA to `addr` until something answers, at most `limit`.
pub fn wait_dns(addr: SocketAddr, limit: Duration) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let q = b"\x77\x77\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01";
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < limit {
        let _ = sock.send_to(q, addr);
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 12
            && buf[0] == 0x77
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    panic!("no DNS server answers on {addr} after {limit:?}");
}

/// A command run inside a network namespace, or plainly when `netns` is `None`.
pub fn cmd_in(netns: Option<&str>, program: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// knotd serving `zones` ((origin, file)) on `listen` (`127.0.0.1@5353` form).
pub fn start_knot(dir: &Path, zones: &[(&str, &Path)], listen: &str, netns: Option<&str>) -> Proc {
    let knotd = require_peer("knotd", "knot");
    let run = dir.join(format!("knot-{}", listen.replace(['@', '.'], "-")));
    std::fs::create_dir_all(run.join("db")).expect("mkdir");
    let mut conf = format!(
        "server:\n    rundir: \"{r}\"\n    listen: {listen}\n    tcp-reuseport: off\n\
         database:\n    storage: \"{r}/db\"\n\
         log:\n  - target: stderr\n    any: error\n\
         template:\n  - id: default\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
         zone:\n",
        r = run.display()
    );
    for (origin, file) in zones {
        conf.push_str(&format!(
            "  - domain: \"{origin}\"\n    file: \"{}\"\n",
            file.display()
        ));
    }
    let path = run.join("knot.conf");
    std::fs::write(&path, conf).expect("write knot.conf");
    let mut c = cmd_in(netns, &knotd);
    c.arg("-c").arg(&path);
    Proc::spawn("knotd", &mut c)
}

/// nsd serving `zones` on `ip`@`port`.
pub fn start_nsd(
    dir: &Path,
    zones: &[(&str, &Path)],
    ip: &str,
    port: u16,
    netns: Option<&str>,
) -> Proc {
    let nsd = require_peer("nsd", "nsd");
    let run = dir.join(format!("nsd-{}-{port}", ip.replace('.', "-")));
    std::fs::create_dir_all(&run).expect("mkdir");
    let r = run.display();
    let mut conf = format!(
        "server:\n    ip-address: {ip}@{port}\n    username: \"\"\n    chroot: \"\"\n    database: \"\"\n\
         \x20   zonesdir: \"{r}\"\n    pidfile: \"{r}/nsd.pid\"\n    zonelistfile: \"{r}/zone.list\"\n\
         \x20   xfrdfile: \"{r}/xfrd.state\"\n    xfrdir: \"{r}\"\n    rrl-ratelimit: 0\n    verbosity: 0\n\
         \x20   server-count: 1\n    hide-version: yes\n\
         remote-control:\n    control-enable: no\n"
    );
    for (origin, file) in zones {
        conf.push_str(&format!(
            "zone:\n    name: \"{origin}\"\n    zonefile: \"{}\"\n",
            file.display()
        ));
    }
    let path = run.join("nsd.conf");
    std::fs::write(&path, conf).expect("write nsd.conf");
    let mut c = cmd_in(netns, &nsd);
    c.arg("-d").arg("-c").arg(&path);
    Proc::spawn("nsd", &mut c)
}

/// `dns zone` serving `zones` on `listen`; returns the server and the address it bound.
pub fn start_lab_zone(files: &[&Path], listen: &str, netns: Option<&str>) -> (Server, SocketAddr) {
    let mut c = cmd_in(netns, &bin("dns"));
    c.args(["zone", "--json", "--listen", listen]);
    for f in files {
        c.arg("--zone").arg(f);
    }
    let s = Server::start_cmd("dns zone", c, 2);
    let addr = s.addr("udp");
    (s, addr)
}

/// `dns serve` with `args`; returns the server and its UDP address.
pub fn start_resolver(args: &[&str], netns: Option<&str>) -> (Server, SocketAddr) {
    let mut c = cmd_in(netns, &bin("dns"));
    c.args(["serve", "--json"]).args(args);
    let s = Server::start_cmd("dns serve", c, 2);
    let addr = s.addr("udp");
    (s, addr)
}

/// Stops a protolab server (started with `--json`) with SIGTERM and returns its
/// `{"event":"stats",...}` line.
pub fn stop_with_stats(mut s: Server) -> serde_json::Value {
    use std::io::BufRead;
    s.proc.signal(libc::SIGTERM);
    let mut line = String::new();
    loop {
        line.clear();
        let n = s.stdout.read_line(&mut line).expect("read stdout");
        assert!(n > 0, "{} exited without printing stats", s.proc.name);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "stats" {
            let _ = s.proc.wait_for(Duration::from_secs(5));
            return v;
        }
    }
}

/// What a client saw: the response code and the answer RRset lines, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub rcode: String,
    pub answers: BTreeSet<String>,
}

fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `dns query --json` against `server`; returns what it saw and the whole JSON.
pub fn dns_query(netns: Option<&str>, args: &[&str]) -> (Seen, serde_json::Value) {
    let mut c = cmd_in(netns, &bin("dns"));
    c.arg("query").args(args).arg("--json");
    let out = run_ok(&mut c);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("dns query JSON: {e}: {out}"));
    let reply = if v.get("reply").is_some() {
        &v["reply"]
    } else {
        &v
    };
    let answers = reply["answerRRs"]
        .as_array()
        .expect("answerRRs")
        .iter()
        .map(|r| {
            normalise(&format!(
                "{} {} IN {} {}",
                r["NAME"].as_str().unwrap(),
                r["TTL"],
                r["TYPEname"].as_str().unwrap(),
                r["RDATA"].as_str().unwrap()
            ))
        })
        .collect();
    let seen = Seen {
        rcode: reply["RCODEname"].as_str().expect("RCODEname").to_owned(),
        answers,
    };
    (seen, v)
}

/// `dig` with `args`; returns the status and answer lines, and whether dig retried over TCP.
pub fn dig(netns: Option<&str>, args: &[&str]) -> (Seen, bool) {
    let dig = require_peer("dig", "dnsutils");
    let mut c = cmd_in(netns, &dig);
    c.args(args)
        .args(["+noall", "+comments", "+answer", "+tries=2", "+time=3"]);
    let out = run_ok(&mut c);
    let rcode = out
        .lines()
        .filter_map(|l| l.split("status: ").nth(1))
        .filter_map(|s| s.split(',').next())
        .next_back()
        .unwrap_or_else(|| panic!("no status in dig output: {out}"))
        .to_owned();
    let answers = out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(normalise)
        .collect();
    (
        Seen { rcode, answers },
        out.contains("Truncated, retrying in TCP mode"),
    )
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// The question section's end in a query: header, name, type and class.
pub fn question_end(q: &[u8]) -> usize {
    let mut pos = 12;
    while q[pos] != 0 {
        pos += usize::from(q[pos]) + 1;
    }
    pos + 5
}

/// A reply to `query` (its id and question) with one A record.
pub fn reply(query: &[u8], id: u16, addr: [u8; 4]) -> Vec<u8> {
    let end = question_end(query);
    let mut r = query[..end].to_vec();
    r[0..2].copy_from_slice(&id.to_be_bytes());
    r[2] = 0x81;
    r[3] = 0x80;
    r[6..8].copy_from_slice(&[0, 1]);
    r[8..12].copy_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&addr);
    r
}

/// A query for `name` (type A, class IN, RD set) with `id`, with an OPT record offering 1232
/// bytes when `edns` is true.
pub fn query_bytes(id: u16, name: &str, edns: bool) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if edns {
        q.extend_from_slice(&[0, 0, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    q
}

/// The header of a reply: id, flags (TC is 0x0200), rcode and the answer count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub id: u16,
    pub flags: u16,
    pub rcode: u8,
    pub answers: u16,
}

/// Reads the header of a reply; `None` when it is shorter than a header.
pub fn head(r: &[u8]) -> Option<Head> {
    (r.len() >= 12).then(|| Head {
        id: u16::from_be_bytes([r[0], r[1]]),
        flags: u16::from_be_bytes([r[2], r[3]]),
        rcode: r[3] & 0x0f,
        answers: u16::from_be_bytes([r[6], r[7]]),
    })
}
