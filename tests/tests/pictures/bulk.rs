//! `udpecho bulk --svg` on loopback: the congestion picture has one point per TCP_INFO sample
//! in each of its time series, and renders.

use std::process::Command;

use protolab_tests::{Server, bin, run_ok};
use serde_json::Value;

use crate::render;

#[test]
fn bulk_svg_draws_every_tcp_info_sample() {
    let sink = Server::start("udpecho", &["sink", "--listen", "127.0.0.1:0"], 1);
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cubic.svg");
    let out = run_ok(
        Command::new(bin("udpecho"))
            .args(["bulk", &sink.addr("tcp").to_string()])
            .args(["--cc", "cubic", "--duration", "500ms", "--sample", "5ms"])
            .args(["--bottleneck", "10mbit", "--json", "--svg"])
            .arg(&svg),
    );
    drop(sink);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["congestion"], "cubic");
    let samples = report["samples"].as_array().unwrap().len();
    assert!(samples > 10, "{samples} samples in 500 ms");
    let with_rtt = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["srtt_us"].as_u64() > Some(0))
        .count();
    render::with_svg(&svg, |doc| {
        // cwnd (blue), srtt (green) and delivery rate (purple), one point per sample.
        assert_eq!(render::polylines(doc, "#1F77B4").first(), Some(&samples));
        assert_eq!(render::polylines(doc, "#2CA02C").first(), Some(&with_rtt));
        assert_eq!(render::polylines(doc, "#9467BD").first(), Some(&samples));
    });
    render::assert_drawn(&svg, 0.02);
}
