//! A bulk transfer through a bottleneck: the sender's TCP_INFO (read by `udpecho bulk`)
//! checked against tcptrace's reading of the link's capture, and the transfer's picture
//! checked by rendering it.

use std::path::Path;
use std::process::Command;

use protolab_tests::{Server, bin, require_peer};
use serde_json::Value;

use crate::harness::{Link, Side};
use crate::render;

/// One connection's figures as tcptrace reports them (`tcptrace -l -n`), sender to receiver.
#[derive(Debug)]
struct Tcptrace {
    rexmt_data_pkts: u64,
    unique_bytes: u64,
    /// Bytes per second, unique bytes over the connection's elapsed time.
    throughput_bps: f64,
}

/// Reads the first column (host a to host b) of the field `name` in tcptrace's long output.
fn field(text: &str, name: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("tcptrace printed no {name:?}:\n{text}"));
    line[line.find(':').unwrap() + 1..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable {name:?} line: {line}"))
}

fn tcptrace(pcap: &Path) -> Tcptrace {
    let tool = require_peer("tcptrace", "tcptrace");
    let out = Command::new(tool)
        .args(["-l", "-n"])
        .arg(pcap)
        .output()
        .expect("run tcptrace");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "tcptrace failed: {text}");
    assert!(
        text.contains("1 TCP connection traced"),
        "one connection expected:\n{text}"
    );
    Tcptrace {
        rexmt_data_pkts: field(&text, "rexmt data pkts:"),
        unique_bytes: field(&text, "unique bytes sent:"),
        throughput_bps: field(&text, "throughput:") as f64 * 8.0,
    }
}

#[test]
fn tcp_info_agrees_with_tcptrace_on_retransmissions_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("bulk.pcap");
    let svg = dir.path().join("reno.svg");
    // A shallow queue: slow start overflows it, so there are retransmissions to count.
    let link = Link::start(
        "cc",
        &[
            "--rate",
            "10mbit",
            "--queue",
            "40kB",
            "--delay",
            "10ms",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    let mut sink = link.exec(
        Side::Right,
        &bin("udpecho"),
        &["sink", "--listen", "198.18.0.2:5001"],
    );
    sink.env("RUST_LOG", "warn");
    let sink = Server::start_cmd("udpecho sink", sink, 1);
    let out = link
        .exec(
            Side::Left,
            &bin("udpecho"),
            &[
                "bulk",
                "198.18.0.2:5001",
                "--cc",
                "reno",
                "--duration",
                "3s",
                "--sample",
                "5ms",
                "--bottleneck",
                "10mbit",
                "--json",
                "--svg",
                svg.to_str().unwrap(),
            ],
        )
        .output()
        .expect("run udpecho bulk");
    drop(sink);
    let stopped = link.stop();
    assert!(
        out.status.success(),
        "udpecho bulk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let retrans = report["total_retrans"].as_u64().unwrap();
    let acked = report["bytes_acked"].as_u64().unwrap();
    let goodput = report["goodput_bps"].as_f64().unwrap();
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(report["congestion"], "reno");
    assert!(
        stopped.truth["left_to_right"]["queue_dropped"]
            .as_u64()
            .unwrap()
            > 0,
        "the shallow queue overflowed: {}",
        stopped.truth
    );
    assert!(
        retrans > 0,
        "the kernel retransmitted what the queue dropped"
    );

    let trace = tcptrace(&pcap);
    eprintln!(
        "TCP_INFO: {retrans} retransmitted, {acked} bytes acked, {:.3} Mbit/s; tcptrace: {} \
         rexmt data pkts, {} unique bytes, {:.3} Mbit/s",
        goodput / 1e6,
        trace.rexmt_data_pkts,
        trace.unique_bytes,
        trace.throughput_bps / 1e6
    );
    // Every retransmitted segment entered the link, and the capture holds every packet that
    // did: the counts agree within 5% (a segment the kernel counts when it queues it may
    // still sit in the device when the transfer ends).
    let tolerance = (retrans as f64 * 0.05).ceil().max(1.0);
    assert!(
        (trace.rexmt_data_pkts as f64 - retrans as f64).abs() <= tolerance,
        "tcptrace counted {} retransmitted segments, TCP_INFO {retrans}",
        trace.rexmt_data_pkts
    );
    // Bytes: tcpi_bytes_acked counts the SYN's and the FIN's sequence numbers too.
    assert!(
        trace.unique_bytes.abs_diff(acked) <= 2,
        "tcptrace saw {} unique bytes, TCP_INFO acknowledged {acked}",
        trace.unique_bytes
    );
    // Throughput: the two clocks start and stop a few packets apart; within 5%.
    let ratio = trace.throughput_bps / goodput;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "tcptrace throughput {:.3} Mbit/s against TCP_INFO's {:.3} Mbit/s",
        trace.throughput_bps / 1e6,
        goodput / 1e6
    );

    // The picture: one cwnd point per sample, one mark per rise of the retransmission count.
    let rises = samples
        .windows(2)
        .filter(|w| w[1]["total_retrans"].as_u64() > w[0]["total_retrans"].as_u64())
        .count();
    render::with_svg(&svg, |doc| {
        let cwnd = render::polylines(doc, "#1F77B4");
        assert_eq!(cwnd.first(), Some(&samples.len()), "cwnd lines {cwnd:?}");
        // One triangle per rise, and one in the legend.
        assert_eq!(render::count(doc, "polygon", "fill", "#D62728"), rises + 1);
        let ssthresh_points: usize = render::polylines(doc, "#FF7F0E").iter().sum::<usize>() - 2;
        let finite = samples.iter().filter(|s| !s["ssthresh"].is_null()).count();
        assert_eq!(
            ssthresh_points, finite,
            "ssthresh is drawn only where it is finite"
        );
        assert!(finite < samples.len(), "ssthresh starts infinite (absent)");
    });
    render::assert_drawn(&svg, 0.02);
}
