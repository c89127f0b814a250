//! `cargo xtask demo layers` takes one captured packet apart layer by layer with etherparse
//! and hickory-proto; tshark's dissection of the same capture must read the same fields.

use std::process::Command;

use protolab_tests::{require_peer, workspace_root};
use serde_json::Value;

/// tshark's value of each field, for frame `frame` of `pcap`.
fn tshark(pcap: &std::path::Path, frame: u64, fields: &[&str]) -> Vec<String> {
    let tool = require_peer("tshark", "tshark");
    let mut cmd = Command::new(tool);
    cmd.arg("-r")
        .arg(pcap)
        .args(["-Y", &format!("frame.number == {frame}"), "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no frame {frame}"));
    line.split('\t').map(str::to_owned).collect()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn layers_demo_reads_what_tshark_reads() {
    crate::harness::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "demo",
            "layers",
            "--json",
        ])
        .arg("--out")
        .arg(dir.path())
        .current_dir(workspace_root())
        .output()
        .expect("run cargo xtask demo layers");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo layers failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "IP header",
        "TCP header",
        "UDP header",
        "\"Hello, Michael!\\n\"",
        "network 198.18.0.0/24 | host 0.0.0.2",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let pcap = dir.path().join("layers.pcap");
    let read: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("layers.json")).unwrap()).unwrap();
    assert_eq!(read.len(), 3, "a TCP segment, a probe and a DNS query");

    for packet in &read {
        let frame = packet["frame"].as_u64().unwrap();
        let ip = &packet["ip"];
        let got = tshark(
            &pcap,
            frame,
            &[
                "ip.src",
                "ip.dst",
                "ip.ttl",
                "ip.id",
                "ip.len",
                "ip.proto",
                "ip.checksum",
            ],
        );
        let ours = [
            s(&ip["src"]),
            s(&ip["dst"]),
            s(&ip["ttl"]),
            format!("0x{:04x}", ip["id"].as_u64().unwrap()),
            s(&ip["len"]),
            s(&ip["proto"]),
            format!("0x{:04x}", ip["checksum"].as_u64().unwrap()),
        ];
        assert_eq!(got, ours, "IP header of frame {frame}");
        if let Some(tcp) = packet.get("tcp") {
            let got = tshark(
                &pcap,
                frame,
                &[
                    "tcp.srcport",
                    "tcp.dstport",
                    "tcp.seq_raw",
                    "tcp.ack_raw",
                    "tcp.len",
                    "tcp.payload",
                ],
            );
            let payload = tcp["payload"].as_str().unwrap();
            assert_eq!(payload, "Hello, Michael!\n");
            let hex: String = payload.bytes().map(|b| format!("{b:02x}")).collect();
            let ours = [
                s(&tcp["srcport"]),
                s(&tcp["dstport"]),
                s(&tcp["seq"]),
                s(&tcp["ack"]),
                s(&tcp["len"]),
                hex,
            ];
            assert_eq!(got, ours, "TCP header of frame {frame}");
        }
        if let Some(udp) = packet.get("udp") {
            let got = tshark(&pcap, frame, &["udp.srcport", "udp.dstport", "udp.length"]);
            let ours = [s(&udp["srcport"]), s(&udp["dstport"]), s(&udp["length"])];
            assert_eq!(got, ours, "UDP header of frame {frame}");
        }
        if let Some(dns) = packet.get("dns") {
            // Port 5300 is not DNS's own: tell tshark to read it as DNS.
            let tool = require_peer("tshark", "tshark");
            let out = Command::new(tool)
                .arg("-r")
                .arg(&pcap)
                .args(["-d", "udp.port==5300,dns"])
                .args(["-Y", &format!("frame.number == {frame}"), "-T", "fields"])
                .args(["-e", "dns.id", "-e", "dns.qry.name", "-e", "dns.qry.type"])
                .output()
                .expect("run tshark");
            let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .trim_end()
                .split('\t')
                .map(str::to_owned)
                .collect();
            let ours = [
                format!("0x{:04x}", dns["id"].as_u64().unwrap()),
                s(&dns["name"]),
                s(&dns["type"]),
            ];
            assert_eq!(got, ours, "DNS question of frame {frame}");
        }
    }
}
