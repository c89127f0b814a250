//! `udpecho probe --svg` through `impair udp`: every answered probe is a point (reordered ones
//! in their own colour), every lost probe a cross in the colour of the direction it was lost
//! in, checked against the probe's own per-packet records.

use std::process::Command;
use std::time::Duration;

use protolab_tests::{Server, bin, run_ok};
use serde_json::Value;

use crate::render;

/// Colours of the probe picture (crates/udpecho/src/plot.rs).
const ANSWERED: &str = "#2CA02C";
const REORDERED: &str = "#9467BD";
const LOST_UP: &str = "#D62728";
const LOST_DOWN: &str = "#FF7F0E";

#[test]
fn probe_svg_marks_every_probe_loss_and_reordering() {
    let server = Server::start(
        "udpecho",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-tcp",
            "--workers",
            "1",
        ],
        1,
    );
    let mut relay = Server::start(
        "impair",
        &[
            "udp",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &server.addr("udp").to_string(),
            "--loss",
            "10%/5%",
            "--reorder",
            "10%",
            "--delay",
            "5ms",
            "--jitter",
            "3ms",
            "--seed",
            "3",
        ],
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("probe.svg");
    let packets = dir.path().join("probes.jsonl");
    let out = run_ok(
        Command::new(bin("udpecho"))
            .args(["probe", &relay.addr("udp").to_string()])
            .args(["--count", "300", "--interval", "5ms", "--json", "--quiet"])
            .arg("--svg")
            .arg(&svg)
            .arg("--packets")
            .arg(&packets),
    );
    relay.proc.signal(libc::SIGINT);
    relay.proc.wait_for(Duration::from_secs(10));
    let report: Value = serde_json::from_str(&out).unwrap();
    let records: Vec<Value> = std::fs::read_to_string(&packets)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let n = |f: &dyn Fn(&Value) -> bool| records.iter().filter(|r| f(r)).count();
    let in_order = n(&|r| !r["rtt_ns"].is_null() && r["reordered"] == false);
    let reordered = n(&|r| r["reordered"] == true);
    let up = n(&|r| r["lost"] == "upstream");
    let down = n(&|r| r["lost"] == "downstream");
    // The seed makes all four kinds appear, so each check below counts something.
    assert!(
        in_order > 0 && reordered > 0 && up > 0 && down > 0,
        "{report}"
    );
    assert_eq!(reordered as u64, report["reordered"].as_u64().unwrap());
    assert_eq!(
        (in_order + reordered) as u64,
        report["received"].as_u64().unwrap()
    );

    render::with_svg(&svg, |doc| {
        // One mark per probe, and one more in the legend for each kind shown.
        assert_eq!(render::count(doc, "circle", "fill", ANSWERED), in_order + 1);
        assert_eq!(
            render::count(doc, "circle", "fill", REORDERED),
            reordered + 1
        );
        // A cross is two lines.
        assert_eq!(render::count(doc, "line", "stroke", LOST_UP), 2 * (up + 1));
        assert_eq!(
            render::count(doc, "line", "stroke", LOST_DOWN),
            2 * (down + 1)
        );
        // The IPDV histogram's legend names the pairs it counts.
        let pairs = report["ipdv_pairs"].as_u64().unwrap();
        let text: String = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join("|");
        assert!(
            text.contains(&format!("{pairs} pairs of consecutive replies")),
            "{text}"
        );
        for p in ["p50", "p90", "p99"] {
            assert!(text.contains(p), "the {p} line is labelled: {text}");
        }
    });
    render::assert_drawn(&svg, 0.02);
}
