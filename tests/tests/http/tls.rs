//! HTTPS: `http serve` with a certificate answers curl and wget verifying it against the lab
//! CA, and `http get https://` verifies it too and refuses an unknown issuer in words.

use std::process::Command;

use protolab_tests::{Server, bin, require_peer, run_ok};

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

    let other = dir.path().join("other-ca.pem");
    std::fs::write(
        &other,
        protolab_transport::tls::LabCa::new("another CA")
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let refused = Command::new(bin("http"))
        .args(["get", "--cacert", other.to_str().unwrap()])
        .arg(format!("https://{addr}/"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate refused: unknown issuer"),
        "{stderr}"
    );
}
