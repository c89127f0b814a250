//! `cargo xtask demo tls` runs the same SMTP dialog and HTTP GET in clear and over TLS across a
//! captured link; what it read from the capture must show the clear text in the clear runs and
//! none of it in the TLS runs, tshark must find the SNI the clients asked for, a client holding
//! another CA must refuse with "unknown issuer", and the CONNECT tunnel must be cached nowhere.

use std::path::Path;
use std::process::Command;

use protolab_tests::{require_peer, workspace_root};
use serde_json::Value;

const BODY_LINE: &str = "The vault code is 4711-2209.";
const COOKIE: &str = "session=alice-7f3a9c";

/// Runs the demo with `--json --out dir` (and `env`), returning its standard output and JSON.
fn demo(dir: &Path, env: &[(&str, &str)]) -> (String, Value) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--",
        "demo",
        "tls",
        "--json",
    ])
    .arg("--out")
    .arg(dir)
    .current_dir(workspace_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo xtask demo tls");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo tls failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&std::fs::read(dir.join("tls.json")).unwrap()).unwrap();
    (text, json)
}

fn run<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no run {label:?} in {report}"))
}

fn segments(run: &Value) -> &Vec<Value> {
    run["segments"].as_array().unwrap()
}

/// Every byte a run carried, both directions, in capture order.
fn payload(run: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segments(run) {
        let hex = s["payload_hex"].as_str().unwrap();
        out.extend(
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()),
        );
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The refusal and the proxy's counters, the same with and without the link.
fn check_refusal_and_tunnel(text: &str, report: &Value) {
    let refusal = report["refusal"].as_str().unwrap();
    assert!(
        refusal.contains("certificate refused: unknown issuer"),
        "{refusal}"
    );
    assert!(text.contains(refusal), "the refusal is printed:\n{text}");
    let proxy = &report["proxy"];
    assert_eq!(proxy["tunnels"], 1, "{proxy}");
    assert!(proxy["tunnel_bytes"].as_u64().unwrap() > 1000, "{proxy}");
    assert_eq!(proxy["cache"]["stored"], 0, "{proxy}");
    assert_eq!(proxy["cache"]["entries"], 0, "{proxy}");
    assert_eq!(proxy["upstream_requests"], 0, "{proxy}");
}

#[test]
fn tls_demo_shows_clear_text_then_only_records() {
    crate::harness::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (text, report) = demo(dir.path(), &[]);
    assert_eq!(report["root"], true);

    let clear = run(&report, "SMTP in clear");
    let client_text: Vec<&str> = segments(clear)
        .iter()
        .filter(|s| s["from"] == "client")
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(
        client_text
            .iter()
            .any(|t| t.contains("MAIL FROM:<alice@lab.test>")),
        "{client_text:?}"
    );
    assert!(
        client_text.iter().any(|t| t.contains(BODY_LINE)),
        "{client_text:?}"
    );
    assert!(contains(
        &payload(run(&report, "HTTP GET in clear")),
        COOKIE
    ));

    for label in [
        "SMTP with STARTTLS",
        "HTTPS GET",
        "HTTPS through the proxy (CONNECT)",
    ] {
        let r = run(&report, label);
        let bytes = payload(r);
        assert!(!contains(&bytes, BODY_LINE), "{label} carried the body");
        assert!(!contains(&bytes, COOKIE), "{label} carried the cookie");
        for s in segments(r) {
            assert!(
                !s["text"].as_str().unwrap().contains(BODY_LINE),
                "{label}: {s}"
            );
        }
        let records: Vec<&str> = segments(r)
            .iter()
            .flat_map(|s| s["records"].as_array().unwrap())
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert!(records.contains(&"handshake"), "{label}: {records:?}");
        assert!(
            records.iter().filter(|t| **t == "application_data").count() >= 3,
            "{label}: {records:?}"
        );
    }
    // The STARTTLS run is the same dialog up to the command: it is there in clear.
    assert!(contains(
        &payload(run(&report, "SMTP with STARTTLS")),
        "STARTTLS\r\n"
    ));

    // tshark, on its own, finds in each ClientHello the name the client asked for.
    let tshark = require_peer("tshark", "tshark");
    let out = Command::new(tshark)
        .arg("-r")
        .arg(dir.path().join("tls.pcap"))
        .args(["-Y", "tls.handshake.type == 1", "-T", "fields"])
        .args([
            "-e",
            "tcp.dstport",
            "-e",
            "tls.handshake.extensions_server_name",
        ])
        .output()
        .expect("run tshark");
    let hellos = String::from_utf8_lossy(&out.stdout);
    let hellos: Vec<&str> = hellos.lines().collect();
    assert!(hellos.contains(&"25\tmail.lab.test"), "{hellos:?}");
    assert!(hellos.contains(&"443\twww.lab.test"), "{hellos:?}");
    // The demo printed the same.
    assert!(text.contains("\t25\tmail.lab.test"), "{text}");

    check_refusal_and_tunnel(&text, &report);
}

#[test]
fn tls_demo_without_root_runs_the_tls_half_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (text, report) = demo(dir.path(), &[("PROTOLAB_DEMO_TLS_AS_USER", "1")]);
    assert_eq!(report["root"], false);
    assert!(text.contains("only root may make namespaces"), "{text}");
    assert!(text.contains("C: STARTTLS\nS: 220 2.0.0 ready to start TLS\n-- TLS: TLSv1.3"));
    assert!(text.contains("< HTTP/1.1 200 OK"), "{text}");
    assert!(!dir.path().join("tls.pcap").exists());
    check_refusal_and_tunnel(&text, &report);
}
