//! `impair link --diagram`: the greeting conversation across a lossy link drawn as a sequence
//! diagram, one arrow per packet delivered and one cross per packet dropped, as the link's own
//! JSON trace counts them; and the picture renders.

use serde_json::Value;

use crate::harness::{Link, greet_across};
use crate::render;

/// Colours of the diagram (crates/impair/src/link/diagram.rs).
const ARROW: &str = "#1F77B4";
const DROP: &str = "#D62728";

#[test]
fn diagram_draws_an_arrow_per_packet_and_a_cross_per_drop() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("greet.svg");
    // A seed under which the link drops some of the conversation's segments, and the
    // retransmissions get through.
    let link = Link::start(
        "diagram",
        &[
            "--trace",
            "--json",
            "--loss",
            "25%",
            "--seed",
            "4",
            "--diagram",
            svg.to_str().unwrap(),
        ],
    );
    let (server, transcript, _closed) = greet_across(&link);
    assert!(transcript.contains("Hello, Michael!"), "{transcript}");
    drop(server);
    let stopped = link.stop();
    assert!(stopped.status.success());
    let packets: Vec<Value> = stopped
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("direction").is_some())
        .collect();
    let dropped = packets
        .iter()
        .filter(|p| p["action"]["dropped"] == true)
        .count();
    let delivered = packets.len() - dropped;
    assert!(dropped > 0, "the seed drops something: {packets:?}");
    assert!(packets.len() <= 200, "all packets fit the diagram");

    render::with_svg(&svg, |doc| {
        // An arrowhead per delivered packet; a cross (two lines) per dropped one.
        assert_eq!(render::count(doc, "polygon", "fill", ARROW), delivered);
        assert_eq!(render::count(doc, "line", "stroke", DROP), 2 * dropped);
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        assert!(
            texts.iter().any(|t| t.starts_with("[SYN] seq=0 (ISN ")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("[SYN, ACK] seq=0 (ISN "))
        );
        assert!(texts.iter().any(|t| t.starts_with("[FIN, ACK]")));
        assert_eq!(texts.iter().filter(|t| **t == "dropped").count(), dropped);
        assert!(texts.contains(&"198.18.0.1") && texts.contains(&"198.18.0.2"));
    });
    render::assert_drawn(&svg, 0.01);
}
