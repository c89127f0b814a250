//! HTTPS: `http serve` with a certificate answers curl, wget, openssl s_client and Python's
//! `ssl` verifying it against the lab CA and passes testssl.sh; `http get https://` verifies it
//! too, refuses an unknown issuer in words, and fetches from nginx with TLS; curl reaches an
//! HTTPS origin through `http proxy`'s CONNECT tunnel, which caches nothing.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use protolab_tests::http_peers::start_nginx_tls;
use protolab_tests::{Server, bin, require_peer, run_ok, testssl};

/// `http serve --tls-self-signed` on 127.0.0.1:0; returns the server, its address and the CA.
fn https_server(dir: &std::path::Path) -> (Server, String, String) {
    let ca = dir.join("ca.pem");
    let server = Server::start(
        "http",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            ca.to_str().unwrap(),
        ],
        1,
    );
    let addr = server.addr("tls").to_string();
    (server, addr, ca.to_str().unwrap().to_owned())
}

/// `http get` trusting only another CA refuses `url`'s certificate: exit 1, and the reason.
fn assert_refused_by_another_ca(dir: &std::path::Path, url: &str) {
    let other = dir.join("other-ca.pem");
    std::fs::write(
        &other,
        protolab_transport::tls::LabCa::new("another CA")
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let refused = Command::new(bin("http"))
        .args(["get", "--cacert", other.to_str().unwrap(), url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate refused: unknown issuer"),
        "{stderr}"
    );
}

#[test]
fn curl_and_wget_verify_http_serve_over_tls() {
    let curl = require_peer("curl", "curl");
    let wget = require_peer("wget", "wget");
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = https_server(dir.path());
    let port = addr.rsplit_once(':').unwrap().1;
    // By address and by name: the lab certificate holds both.
    for url in [
        format!("https://{addr}/echo"),
        format!("https://localhost:{port}/echo"),
    ] {
        let out = run_ok(Command::new(&curl).args(["-sS", "--cacert", &ca, &url]));
        assert!(out.starts_with("GET /echo HTTP/1.1\r\n"), "{out}");
    }
    let out = run_ok(Command::new(&wget).args([
        "-q",
        &format!("--ca-certificate={ca}"),
        "-O",
        "-",
        &format!("https://{addr}/echo"),
    ]));
    assert!(out.starts_with("GET /echo HTTP/1.1\r\n"), "{out}");
    // Without the lab CA curl refuses, as it should.
    let refused = Command::new(&curl)
        .args(["-sS", &format!("https://{addr}/")])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(60),
        "curl's 'peer certificate' error"
    );
}

#[test]
fn http_get_https_verifies_and_refuses_an_unknown_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = https_server(dir.path());
    let out = run_ok(Command::new(bin("http")).args([
        "get",
        "--cacert",
        &ca,
        &format!("https://{addr}/status/200"),
        &format!("https://{addr}/echo"),
    ]));
    // The last body printed is the echo of its own request, which came over TLS.
    assert!(out.contains("GET /echo HTTP/1.1\r\n"), "{out}");

    assert_refused_by_another_ca(dir.path(), &format!("https://{addr}/"));
}

/// openssl s_client against `http serve --tls`: the certificate verified against the lab CA
/// for the address asked for, ALPN `http/1.1` agreed, and a GET answered over it. A client
/// that offers only `h2` is refused with the `no_application_protocol` alert (RFC 7301 section
/// 3.2) instead of being answered in a protocol it did not ask for.
#[test]
fn openssl_s_client_verifies_the_chain_agrees_alpn_http_1_1_and_gets() {
    let openssl = require_peer("openssl", "openssl");
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = https_server(dir.path());
    let s_client = |alpn: &str| {
        let mut child = Command::new(&openssl)
            .args(["s_client", "-connect", &addr, "-CAfile", &ca])
            .args(["-verify_return_error", "-verify_ip", "127.0.0.1"])
            .args(["-alpn", alpn, "-ign_eof", "-showcerts"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl s_client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, out, err) = s_client("http/1.1");
    assert!(status.success(), "{out}{err}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    // The chain: the server's certificate only, issued by the lab CA, verified against it.
    assert!(out.contains(" 0 s:CN = localhost"), "{out}");
    assert!(out.contains("   i:CN = protolab lab CA "), "{out}");
    assert!(!out.contains(" 1 s:"), "the root is not sent: {out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(err.contains("verify return:1"), "{err}");
    assert!(out.contains("New, TLSv1.3, Cipher is TLS_"), "{out}");
    // The response to the GET, and in its body the request as the server read it.
    assert!(out.contains("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("GET /echo HTTP/1.1\r\n"), "{out}");

    let (status, out, err) = s_client("h2");
    assert!(!status.success(), "{out}");
    assert!(err.contains("no application protocol"), "{err}");
    assert!(!out.contains("HTTP/1.1 200"), "{out}");
}

/// Python's `ssl` module with `create_default_context(cafile=...)`: verification on, the name
/// checked, TLS 1.3, ALPN `http/1.1`, and a GET answered; without the lab CA it refuses.
#[test]
fn python_ssl_module_verifies_http_serve_and_gets() {
    const CLIENT: &str = r#"
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
context.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
    try:
        s = context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as e:
        print("refused:", e.verify_message)
        sys.exit(3)
    print(s.version(), s.selected_alpn_protocol(), s.cipher()[0])
    print("subject", dict(x[0] for x in s.getpeercert()["subject"]))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: " + host.encode() + b"\r\nConnection: close\r\n\r\n")
    reply = b""
    while True:
        piece = s.recv(65536)
        if not piece:
            break
        reply += piece
    sys.stdout.write(reply.decode())
"#;
    let python = require_peer("python3", "python3");
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = https_server(dir.path());
    let port = addr.rsplit_once(':').unwrap().1;
    for host in ["localhost", "127.0.0.1"] {
        let out = run_ok(Command::new(&python).args(["-c", CLIENT, host, port, &ca]));
        assert!(out.starts_with("TLSv1.3 http/1.1 TLS_"), "{out}");
        assert!(out.contains("subject {'commonName': 'localhost'}"), "{out}");
        assert!(out.contains("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.contains(&format!("GET /echo HTTP/1.1\r\nHost: {host}\r\n")),
            "{out}"
        );
    }
    // The system's CAs do not include the lab CA: Python refuses, naming why.
    let refused = Command::new(&python)
        .args(["-c", CLIENT, "localhost", port, ""])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(3), "{out}");
    assert!(
        out.contains("refused: unable to get local issuer certificate"),
        "{out}"
    );
}

/// testssl.sh against the HTTPS port (`protolab_tests::testssl::scan`, as for SMTP's STARTTLS
/// port), with no finding rated HIGH or CRITICAL (but `cert_revocation`, see
/// `testssl::severe`).
#[test]
fn testssl_finds_nothing_high_or_critical_on_the_https_port() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, ca) = https_server(dir.path());
    let findings = testssl::scan(&[], Path::new(&ca), &addr, dir.path());
    let severe = testssl::severe(&findings);
    assert!(severe.is_empty(), "{severe:#?}");
    assert!(
        testssl::finding(&findings, "TLS1_3").starts_with("offered"),
        "{findings:#?}"
    );
    assert_eq!(testssl::finding(&findings, "SSLv3"), "not offered");
    assert_eq!(testssl::finding(&findings, "TLS1"), "not offered");
}

/// nginx with TLS and a lab certificate as the origin: `http get https://... --cacert`
/// verifies it by address and by name and gets the file; without the CA it refuses.
#[test]
fn http_get_https_from_nginx_with_a_lab_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, id) = protolab_transport::tls::lab_ca().unwrap();
    let (ca_path, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
    );
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    std::fs::write(&cert, &id.cert_pem).unwrap();
    std::fs::write(&key, &id.key_pem).unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "served by nginx over TLS\n").unwrap();
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&nginx_dir).unwrap();
    let nginx = start_nginx_tls(&nginx_dir, &site, 1, &cert, &key);
    let port = nginx.addr.port();
    for url in [
        format!("https://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/index.html"),
    ] {
        let out = run_ok(Command::new(bin("http")).args([
            "get",
            "--cacert",
            ca_path.to_str().unwrap(),
            &url,
        ]));
        assert!(out.contains("served by nginx over TLS\n"), "{out}");
    }
    assert_refused_by_another_ca(dir.path(), &format!("https://127.0.0.1:{port}/"));
}

/// curl `--proxy` to an https URL: it asks `http proxy` for a CONNECT tunnel and runs TLS with
/// the origin through it, verifying the origin's certificate end to end. The proxy carries
/// bytes it cannot read: its report at exit shows one tunnel and nothing cached.
#[test]
fn curl_through_http_proxy_connect_tunnel_to_https_caches_nothing() {
    let curl = require_peer("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let (_origin, addr, ca) = https_server(dir.path());
    let mut proxy = Server::start("http", &["--json", "proxy", "--listen", "127.0.0.1:0"], 1);
    let p = format!("http://{}", proxy.addr("tcp"));
    let out = run_ok(Command::new(&curl).args([
        "-sS",
        "-i",
        "--max-time",
        "20",
        "--proxy",
        &p,
        "--cacert",
        &ca,
        &format!("https://{addr}/cache/60"),
    ]));
    assert!(out.contains("HTTP/1.1 200 Connection Established"), "{out}");
    assert!(out.contains("as number 1"), "{out}");
    assert!(
        !out.to_ascii_lowercase().contains("cache-status"),
        "the proxy cannot read, so cannot mark, a tunnelled response: {out}"
    );

    proxy.proc.signal(libc::SIGTERM);
    let mut report = None;
    let mut line = String::new();
    while proxy.stdout.read_line(&mut line).unwrap_or(0) > 0 {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim())
            && v.get("tunnels").is_some()
        {
            report = Some(v);
        }
        line.clear();
    }
    assert!(proxy.proc.wait_for(Duration::from_secs(10)).is_some());
    let report = report.expect("the proxy's JSON report at exit");
    assert_eq!(report["tunnels"], 1, "{report}");
    assert!(
        report["tunnel_bytes"].as_u64().unwrap_or(0) > 1000,
        "a handshake and a response went through: {report}"
    );
    assert_eq!(report["upstream_requests"], 0, "{report}");
    for counter in ["stored", "hits", "misses", "entries", "bytes"] {
        assert_eq!(report["cache"][counter], 0, "cache {counter}: {report}");
    }
}
