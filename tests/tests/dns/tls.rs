//! DNS over TLS (RFC 7858): `dns serve --dot-listen` answers kdig, `dns query --tls` asks
//! unbound's DoT listener, and a certificate from an unknown CA is refused in words.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use protolab_tests::{Proc, Server, bin, free_port, require_peer, run_ok, wait_tcp};
use protolab_transport::tls::{LabCa, Validity};

use crate::common::{write, zone_dir};

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

#[test]
fn dns_query_tls_against_unbound_dot() {
    let unbound = require_peer("unbound", "unbound");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = LabCa::new("lab CA").unwrap();
    let id = ca
        .issue(&["127.0.0.1", "localhost"], Validity::days_from_now(1))
        .unwrap();
    let pem = write(d, "server.pem", &id.cert_pem);
    let key = write(d, "server.key", &id.key_pem);
    let ca_path = write(d, "ca.pem", &ca.cert_pem());
    let port = free_port();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  tls-port: {port}\n  tls-service-key: \"{k}\"\n\
         \x20 tls-service-pem: \"{p}\"\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n\
         \x20 directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n\
         \x20 verbosity: 0\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n\
         \x20 local-zone: \"example.test.\" static\n  local-data: \"www.example.test. 300 IN A 192.0.2.80\"\n\
         remote-control:\n  control-enable: no\n",
        k = key.display(),
        p = pem.display(),
        d = d.display()
    );
    let conf = write(d, "unbound.conf", &conf);
    let _unbound = Proc::spawn(
        "unbound",
        Command::new(unbound).arg("-d").arg("-c").arg(&conf),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_tcp(addr.parse().unwrap(), Duration::from_secs(10));
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
