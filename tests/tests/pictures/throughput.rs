//! The throughput picture of `cargo xtask demo congestion` (drawn by
//! `protolab_udpecho::plot::throughput`): two bars per transfer, the loss written over them,
//! and the rendering not blank.

use protolab_udpecho::plot::{Bar, throughput};

use crate::render;

const OFFERED: &str = "#AEC7E8";
const GOODPUT: &str = "#178CA0";

#[test]
fn throughput_svg_has_two_bars_per_transfer_and_names_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("throughput.svg");
    let bars = vec![
        Bar {
            label: "TCP cubic".into(),
            offered_bps: 9.57e6,
            goodput_bps: 9.57e6,
            app_loss: 0.0,
        },
        Bar {
            label: "UDP at 2x the rate".into(),
            offered_bps: 19.46e6,
            goodput_bps: 9.54e6,
            app_loss: 0.51,
        },
    ];
    throughput(&svg, &bars, 10e6, "the same bottleneck").unwrap();
    render::with_svg(&svg, |doc| {
        // One bar per transfer, and one more in the legend.
        assert_eq!(render::count(doc, "rect", "fill", OFFERED), bars.len() + 1);
        assert_eq!(render::count(doc, "rect", "fill", GOODPUT), bars.len() + 1);
        let text: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for want in [
            "9.57 Mbit/s, 0.0% lost",
            "9.54 Mbit/s, 51.0% lost",
            "TCP cubic",
            "UDP at 2x the rate",
        ] {
            assert!(text.contains(&want), "{want:?} not in {text:?}");
        }
    });
    render::assert_drawn(&svg, 0.02);
}
