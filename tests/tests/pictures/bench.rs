//! The bar chart `cargo xtask bench ... --svg` draws of a benchmark table (drawn by
//! `protolab_udpecho::plot::bench_bars`): one bar per server and measure, ours in colour, each
//! labelled with its value, and the rendering not blank.

use protolab_udpecho::plot::{Panel, bench_bars};

use crate::render;

const OURS: &str = "#1F77B4";
const PEER: &str = "#A0A0A0";

#[test]
fn bench_svg_has_a_bar_per_server_and_measure_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench-http.svg");
    let servers = ["http serve", "nginx (worker_processes 2)", "varnish"];
    let panels = vec![
        Panel {
            measure: "requests/s".into(),
            higher_is_better: true,
            bars: servers
                .iter()
                .zip([125_044.0, 104_293.0, 64_635.0])
                .map(|(s, v)| ((*s).to_owned(), v))
                .collect(),
        },
        Panel {
            measure: "server CPU ms/1k".into(),
            higher_is_better: false,
            bars: servers
                .iter()
                .zip([4.9, 6.9, 20.2])
                .map(|(s, v)| ((*s).to_owned(), v))
                .collect(),
        },
    ];
    bench_bars(&svg, "bench http", &panels).unwrap();
    render::with_svg(&svg, |doc| {
        // Ours once per panel, each peer once per panel.
        assert_eq!(render::count(doc, "rect", "fill", OURS), panels.len());
        assert_eq!(
            render::count(doc, "rect", "fill", PEER),
            panels.len() * (servers.len() - 1)
        );
        let text: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for want in [
            "125044",
            "64635",
            "4.90",
            "20.20",
            "http serve",
            "varnish",
            "requests/s (longer is better)",
            "server CPU ms/1k (shorter is better)",
        ] {
            assert!(text.contains(&want), "{want:?} not in {text:?}");
        }
    });
    render::assert_drawn(&svg, 0.01);
}
