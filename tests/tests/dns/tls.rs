//! DNS over TLS (RFC 7858): `dns serve --dot-listen` answers kdig, `dns query --tls` asks
//! unbound's DoT listener, `dns serve --forward-tls` forwards plain UDP questions to unbound's
//! DoT listener on one kept connection, and a certificate from an unknown CA is refused in
//! words (by the client) or with SERVFAIL, a counter and a log line (by the resolver).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use protolab_tests::{Proc, Server, bin, free_port, require_peer, run_ok, wait_tcp};
use protolab_transport::tls::{LabCa, Validity};

use crate::common::{dig, stop_with_stats, write, zone_dir};

/// `dns zone` with the example zone, and `dns serve` forwarding to it with DoT on its own port
/// and a lab CA written to `dir/ca.pem`. Returns both servers and the DoT address.
fn resolver_with_dot(dir: &Path) -> (Server, Server, String) {
    let zones = zone_dir();
    let zone_file = zones.path().join("example.test.zone");
    let mut z = Command::new(bin("dns"));
    z.args(["zone", "--listen", "127.0.0.1:0", "--zone"])
        .arg(&zone_file)
        .env("RUST_LOG", "warn");
    let zone = Server::start_cmd("dns zone", z, 2);
    let ca = dir.join("ca.pem");
    let mut r = Command::new(bin("dns"));
    r.args(["serve", "--listen", "127.0.0.1:0", "--forward"])
        .arg(zone.addr("udp").to_string())
        .args(["--dot-listen", "127.0.0.1:0", "--tls-self-signed"])
        .arg(&ca)
        .env("RUST_LOG", "warn");
    let resolver = Server::start_cmd("dns serve", r, 3);
    let dot = resolver.addr("tls").to_string();
    (zone, resolver, dot)
}

#[test]
fn kdig_over_tls_gets_answers_from_dns_serve_dot_listen() {
    let kdig = require_peer("kdig", "knot-dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let (_zone, _resolver, dot) = resolver_with_dot(dir.path());
    let (ip, port) = dot.rsplit_once(':').unwrap();
    let ca = format!("+tls-ca={}", dir.path().join("ca.pem").display());
    let out = run_ok(Command::new(kdig).args([
        &format!("@{ip}"),
        "-p",
        port,
        "+tls",
        &ca,
        "+tls-hostname=localhost",
        "www.example.test",
        "A",
    ]));
    assert!(out.contains(";; TLS session (TLS1.3)"), "{out}");
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.10"), "{out}");
    assert!(out.contains("192.0.2.11"), "{out}");
}

#[test]
fn dns_query_tls_against_our_dot_and_an_unknown_issuer_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_zone, _resolver, dot) = resolver_with_dot(dir.path());
    let ca = dir.path().join("ca.pem");
    let out = run_ok(
        Command::new(bin("dns"))
            .args([
                "query",
                "www.example.test",
                &format!("@{dot}"),
                "--tls",
                "--cacert",
            ])
            .arg(&ca),
    );
    assert!(out.contains("(TLS)"), "{out}");
    assert!(out.contains("192.0.2.10"), "{out}");

    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, LabCa::new("another CA").unwrap().cert_pem()).unwrap();
    let out = Command::new(bin("dns"))
        .args([
            "query",
            "www.example.test",
            &format!("@{dot}"),
            "--tls",
            "--tries",
            "1",
        ])
        .arg("--cacert")
        .arg(&other)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("certificate refused: unknown issuer"),
        "{stderr}"
    );
}

/// unbound answering `www.example.test` (192.0.2.80) and `mail.example.test` (192.0.2.25)
/// from local data, over DNS over TLS only, with a certificate for 127.0.0.1 and localhost
/// issued by `ca`. Returns the process and its DoT address.
fn unbound_dot(d: &Path, ca: &LabCa) -> (Proc, String) {
    let unbound = require_peer("unbound", "unbound");
    let id = ca
        .issue(&["127.0.0.1", "localhost"], Validity::days_from_now(1))
        .unwrap();
    let pem = write(d, "server.pem", &id.cert_pem);
    let key = write(d, "server.key", &id.key_pem);
    let port = free_port();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  tls-port: {port}\n  tls-service-key: \"{k}\"\n\
         \x20 tls-service-pem: \"{p}\"\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n\
         \x20 directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n\
         \x20 verbosity: 0\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n\
         \x20 local-zone: \"example.test.\" static\n  local-data: \"www.example.test. 300 IN A 192.0.2.80\"\n\
         \x20 local-data: \"mail.example.test. 300 IN A 192.0.2.25\"\n\
         remote-control:\n  control-enable: no\n",
        k = key.display(),
        p = pem.display(),
        d = d.display()
    );
    let conf = write(d, "unbound.conf", &conf);
    let proc = Proc::spawn(
        "unbound",
        Command::new(unbound).arg("-d").arg("-c").arg(&conf),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_tcp(addr.parse().unwrap(), Duration::from_secs(10));
    (proc, addr)
}

#[test]
fn dns_query_tls_against_unbound_dot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = LabCa::new("lab CA").unwrap();
    let ca_path = write(d, "ca.pem", &ca.cert_pem());
    let (_unbound, addr) = unbound_dot(d, &ca);
    let out = run_ok(
        Command::new(bin("dns"))
            .args(["query", "www.example.test", &format!("@{addr}"), "--tls"])
            .arg("--cacert")
            .arg(&ca_path)
            .args(["--timeout", "5s"]),
    );
    assert!(out.contains("(TLS)"), "{out}");
    assert!(out.contains("192.0.2.80"), "{out}");
}

/// `dns serve --forward ADDR --forward-tls` with `args`, its log at debug level in `log`.
fn forwarding_over_tls(upstream: &str, args: &[&str], log: &Path) -> (Server, SocketAddr) {
    let mut c = Command::new(bin("dns"));
    c.args([
        "serve",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        upstream,
    ])
    .arg("--forward-tls")
    .args(args)
    .env("RUST_LOG", "protolab_dns=debug")
    .stderr(std::fs::File::create(log).unwrap());
    let s = Server::start_cmd("dns serve", c, 2);
    let addr = s.addr("udp");
    (s, addr)
}

#[test]
fn dns_serve_forward_tls_answers_dig_and_kdig_over_udp_from_unbound_dot() {
    let kdig = require_peer("kdig", "knot-dnsutils");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = LabCa::new("lab CA").unwrap();
    let ca_path = write(d, "ca.pem", &ca.cert_pem());
    let (_unbound, upstream) = unbound_dot(d, &ca);
    let ca_arg = ca_path.to_str().unwrap();
    let (resolver, addr) = forwarding_over_tls(
        &upstream,
        &["--cacert", ca_arg, "--tls-name", "localhost"],
        &d.join("serve.log"),
    );
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let (seen, _) = dig(None, &[&at, "-p", &port, "www.example.test", "A", "+notcp"]);
    assert_eq!(seen.rcode, "NOERROR");
    assert!(
        seen.answers.iter().any(|a| a.ends_with("A 192.0.2.80")),
        "{seen:?}"
    );
    let out =
        run_ok(Command::new(kdig).args([&at, "-p", &port, "+notcp", "mail.example.test", "A"]));
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("192.0.2.25"), "{out}");
    // A name unbound does not have: its NXDOMAIN comes back over the same connection.
    let (seen, _) = dig(None, &[&at, "-p", &port, "nope.example.test", "A"]);
    assert_eq!(seen.rcode, "NXDOMAIN");
    let stats = stop_with_stats(resolver);
    let tls = &stats["upstream_tls"];
    assert_eq!(tls["connections_opened"], 1, "{stats}");
    assert_eq!(tls["queries"], 3, "{stats}");
    assert_eq!(
        tls["reused"], 2,
        "one connection carried all three: {stats}"
    );
    assert_eq!(tls["replies"], 3, "{stats}");
    assert_eq!(stats["resolver"]["upstream_failures"], 0, "{stats}");
    // Nothing went upstream in clear.
    assert_eq!(stats["upstream_client"]["queries_sent"], 0, "{stats}");
}

#[test]
fn dns_serve_forward_tls_refuses_an_unknown_issuer_with_servfail_counted_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = LabCa::new("lab CA").unwrap();
    let (_unbound, upstream) = unbound_dot(d, &ca);
    // The resolver trusts another CA only.
    let other = write(
        d,
        "other-ca.pem",
        &LabCa::new("another CA").unwrap().cert_pem(),
    );
    let log = d.join("serve.log");
    let (resolver, addr) =
        forwarding_over_tls(&upstream, &["--cacert", other.to_str().unwrap()], &log);
    let at = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let (seen, _) = dig(None, &[&at, "-p", &port, "www.example.test", "A"]);
    assert_eq!(seen.rcode, "SERVFAIL");
    assert!(seen.answers.is_empty(), "{seen:?}");
    let stats = stop_with_stats(resolver);
    assert!(
        stats["upstream_tls"]["connect_failures"].as_u64() >= Some(1),
        "{stats}"
    );
    assert_eq!(stats["upstream_tls"]["replies"], 0, "{stats}");
    assert!(
        stats["resolver"]["upstream_failures"].as_u64() >= Some(1),
        "{stats}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("certificate refused: unknown issuer"),
        "the log names the reason: {text}"
    );
}
