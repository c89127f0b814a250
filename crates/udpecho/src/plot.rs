//! Pictures of runs, as SVG files drawn with plotters: a probe's RTT over time with its losses,
//! reordering and percentiles, and its IPDV histogram; a bulk transfer's congestion window, RTT
//! and goodput on one time axis; goodput of several transfers side by side.
//!
//! Only data in, a file out: the figures are computed from the reports the other modules make.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bulk::BulkReport;
use crate::stats::{PacketRecord, Report};

/// Why a picture could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("draw {path}: {why}")]
pub struct PlotError {
    path: String,
    why: String,
}

fn failed(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Runs `draw` and turns plotters' error (generic over the backend) into a [`PlotError`].
macro_rules! tried {
    ($path:expr, $e:expr) => {
        $e.map_err(|e| failed($path)(&e))?
    };
}

/// The window over which goodput is averaged: long enough to smooth the bursts of a recovery.
const GOODPUT_WINDOW: f64 = 0.2;
const FONT: &str = "sans-serif";
const CWND: RGBColor = RGBColor(31, 119, 180);
const SSTHRESH: RGBColor = RGBColor(255, 127, 14);
const RETRANS: RGBColor = RGBColor(214, 39, 40);
const RTT: RGBColor = RGBColor(44, 160, 44);
const GOODPUT: RGBColor = RGBColor(23, 140, 160);
const DELIVERY: RGBColor = RGBColor(148, 103, 189);
const LIMIT: RGBColor = RGBColor(80, 80, 80);
const LOST_UP: RGBColor = RGBColor(214, 39, 40);
const LOST_DOWN: RGBColor = RGBColor(255, 127, 14);
const LOST_UNKNOWN: RGBColor = RGBColor(127, 127, 127);
const REORDERED: RGBColor = RGBColor(148, 103, 189);

/// The goodput of a transfer over consecutive windows of `window` seconds, from the bytes
/// acknowledged: (window end, bits per second).
pub fn goodput_series(report: &BulkReport, window: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let Some(first) = report.samples.first() else {
        return out;
    };
    let (mut t0, mut acked0) = (first.t, first.bytes_acked);
    for s in &report.samples {
        if s.t - t0 >= window {
            let bits = s.bytes_acked.saturating_sub(acked0) as f64 * 8.0;
            out.push((s.t, bits / (s.t - t0)));
            t0 = s.t;
            acked0 = s.bytes_acked;
        }
    }
    out
}

/// The times at which the retransmission count rose, with the congestion window then.
pub fn retransmissions(report: &BulkReport) -> Vec<(f64, u32)> {
    report
        .samples
        .windows(2)
        .filter(|w| w[1].total_retrans > w[0].total_retrans)
        .map(|w| (w[1].t, w[1].cwnd))
        .collect()
}

/// Contiguous runs of `Some`, each as its own line: a gap is drawn as a gap.
fn runs<T: Copy>(points: impl Iterator<Item = (f64, Option<T>)>) -> Vec<Vec<(f64, T)>> {
    let mut all = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) => current.push((x, y)),
            None if !current.is_empty() => all.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// Draws one transfer: the congestion window with the slow-start threshold (absent while
/// infinite) and retransmission marks; the smoothed RTT; goodput and the kernel's delivery
/// rate against the bottleneck. Three panels over one time axis.
///
/// # Errors
/// The file cannot be written.
pub fn congestion(
    path: &Path,
    report: &BulkReport,
    bottleneck_bps: Option<f64>,
    title: &str,
) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    tried!(path, root.fill(&WHITE));
    let root = tried!(path, root.titled(title, (FONT, 22)));
    let panels = root.split_evenly((3, 1));
    let t_max = report.samples.last().map_or(1.0, |s| s.t).max(0.1);

    // Panel 1: the congestion window and the threshold, in segments.
    let cwnd_max = report
        .samples
        .iter()
        .map(|s| s.cwnd.max(s.ssthresh.unwrap_or(0)))
        .max()
        .unwrap_or(10)
        .max(10);
    let mut chart = tried!(
        path,
        ChartBuilder::on(&panels[0])
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..f64::from(cwnd_max) * 1.1)
    );
    tried!(
        path,
        chart
            .configure_mesh()
            .y_desc("segments")
            .x_desc("time (s)")
            .light_line_style(WHITE)
            .draw()
    );
    tried!(
        path,
        chart.draw_series(LineSeries::new(
            report.samples.iter().map(|s| (s.t, f64::from(s.cwnd))),
            CWND.stroke_width(2),
        ))
    )
    .label("cwnd (congestion window)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], CWND.stroke_width(2)));
    let thresholds = runs(
        report
            .samples
            .iter()
            .map(|s| (s.t, s.ssthresh.map(f64::from))),
    );
    for (i, run) in thresholds.into_iter().enumerate() {
        let series = tried!(
            path,
            chart.draw_series(LineSeries::new(run, SSTHRESH.stroke_width(2)))
        );
        if i == 0 {
            series
                .label("ssthresh (absent until the first loss)")
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], SSTHRESH.stroke_width(2))
                });
        }
    }
    let marks = retransmissions(report);
    if !marks.is_empty() {
        tried!(
            path,
            chart.draw_series(marks.iter().map(|&(t, c)| TriangleMarker::new(
                (t, f64::from(c)),
                6,
                RETRANS.filled()
            )),)
        )
        .label("retransmission")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, RETRANS.filled()));
    }
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );

    // Panel 2: the smoothed RTT: the queue at the bottleneck filling shows as added delay.
    let rtt_max = report
        .samples
        .iter()
        .map(|s| f64::from(s.srtt_us) / 1e3)
        .fold(1.0, f64::max);
    let mut chart = tried!(
        path,
        ChartBuilder::on(&panels[1])
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..rtt_max * 1.1)
    );
    tried!(
        path,
        chart
            .configure_mesh()
            .y_desc("smoothed RTT (ms)")
            .x_desc("time (s)")
            .light_line_style(WHITE)
            .draw()
    );
    tried!(
        path,
        chart.draw_series(LineSeries::new(
            report
                .samples
                .iter()
                .filter(|s| s.srtt_us > 0)
                .map(|s| (s.t, f64::from(s.srtt_us) / 1e3)),
            RTT.stroke_width(2),
        ))
    )
    .label("srtt (TCP_INFO)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RTT.stroke_width(2)));
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );

    // Panel 3: goodput (bytes acknowledged per 200 ms) and the kernel's delivery rate.
    let goodput = goodput_series(report, GOODPUT_WINDOW);
    let mbit = |bps: f64| bps / 1e6;
    let top = goodput
        .iter()
        .map(|&(_, g)| mbit(g))
        .chain(
            report
                .samples
                .iter()
                .map(|s| mbit(s.delivery_rate_bps as f64)),
        )
        .chain(bottleneck_bps.map(mbit))
        .fold(1.0, f64::max);
    let mut chart = tried!(
        path,
        ChartBuilder::on(&panels[2])
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..top * 1.15)
    );
    tried!(
        path,
        chart
            .configure_mesh()
            .y_desc("Mbit/s")
            .x_desc("time (s)")
            .light_line_style(WHITE)
            .draw()
    );
    tried!(
        path,
        chart.draw_series(LineSeries::new(
            report
                .samples
                .iter()
                .map(|s| (s.t, mbit(s.delivery_rate_bps as f64))),
            DELIVERY.mix(0.6).stroke_width(1),
        ))
    )
    .label("delivery rate (TCP_INFO)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], DELIVERY.stroke_width(1)));
    tried!(
        path,
        chart.draw_series(LineSeries::new(
            goodput.iter().map(|&(t, g)| (t, mbit(g))),
            GOODPUT.stroke_width(2),
        ))
    )
    .label("goodput (bytes acked per 200 ms)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GOODPUT.stroke_width(2)));
    if let Some(limit) = bottleneck_bps {
        tried!(
            path,
            chart.draw_series(DashedLineSeries::new(
                [(0.0, mbit(limit)), (t_max, mbit(limit))],
                8,
                5,
                LIMIT.stroke_width(2),
            ))
        )
        .label("bottleneck rate")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LIMIT.stroke_width(2)));
    }
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );
    tried!(path, root.present());
    Ok(())
}

/// One bar of [`throughput`]: a transfer's goodput and what the application lost.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// What the sender offered, bits per second.
    pub offered_bps: f64,
    /// What reached the receiving application, bits per second.
    pub goodput_bps: f64,
    /// The share of the offered data the application never got (0 to 1).
    pub app_loss: f64,
}

/// Draws offered load and goodput of several transfers side by side, with the loss each
/// application saw written over its bars, against the bottleneck rate.
///
/// # Errors
/// The file cannot be written.
pub fn throughput(
    path: &Path,
    bars: &[Bar],
    bottleneck_bps: f64,
    title: &str,
) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    tried!(path, root.fill(&WHITE));
    let top = bars
        .iter()
        .map(|b| b.offered_bps.max(b.goodput_bps))
        .fold(bottleneck_bps, f64::max)
        / 1e6
        * 1.3;
    let n = bars.len().max(1) as f64;
    let mut chart = tried!(
        path,
        ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n, 0.0..top)
    );
    let names: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    tried!(
        path,
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_desc("Mbit/s")
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor();
                if (x - i - 0.5).abs() < 0.26 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()
    );
    let offered = RGBColor(174, 199, 232);
    tried!(
        path,
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.48, b.offered_bps / 1e6)],
                offered.filled(),
            )
        }))
    )
    .label("offered by the sender")
    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], offered.filled()));
    tried!(
        path,
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let x = i as f64;
            Rectangle::new(
                [(x + 0.52, 0.0), (x + 0.85, b.goodput_bps / 1e6)],
                GOODPUT.filled(),
            )
        }))
    )
    .label("goodput: reached the application")
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], GOODPUT.filled()));
    tried!(
        path,
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!(
                    "{:.2} Mbit/s, {:.1}% lost",
                    b.goodput_bps / 1e6,
                    b.app_loss * 100.0
                ),
                // Above the taller bar and the bottleneck line: a text's anchor is its top left.
                (
                    i as f64 + 0.2,
                    b.goodput_bps.max(b.offered_bps).max(bottleneck_bps) / 1e6 + top * 0.1,
                ),
                (FONT, 16),
            )
        }))
    );
    tried!(
        path,
        chart.draw_series(DashedLineSeries::new(
            [(0.0, bottleneck_bps / 1e6), (n, bottleneck_bps / 1e6)],
            8,
            5,
            LIMIT.stroke_width(2),
        ))
    )
    .label("bottleneck rate")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LIMIT.stroke_width(2)));
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );
    tried!(path, root.present());
    Ok(())
}

/// The IPDV of consecutive probes both answered: RTT(i+1) - RTT(i), in milliseconds.
pub fn ipdv_ms(packets: &[PacketRecord]) -> Vec<f64> {
    packets
        .windows(2)
        .filter(|w| w[1].seq == w[0].seq + 1)
        .filter_map(|w| match (w[0].rtt_ns, w[1].rtt_ns) {
            (Some(a), Some(b)) => Some((b as f64 - a as f64) / 1e6),
            _ => None,
        })
        .collect()
}

/// Draws a probe run: RTT per probe over send time (reordered replies in their own colour),
/// losses marked along the top (upstream, downstream and unknown apart), p50/p90/p99 lines;
/// below, the histogram of IPDV.
///
/// # Errors
/// The file cannot be written.
pub fn probe(
    path: &Path,
    packets: &[PacketRecord],
    report: &Report,
    title: &str,
) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    tried!(path, root.fill(&WHITE));
    let root = tried!(path, root.titled(title, (FONT, 22)));
    let (upper, lower) = root.split_vertically(500);
    rtt_panel(path, &upper, packets, report)?;
    ipdv_panel(path, &lower, packets)?;
    tried!(path, root.present());
    Ok(())
}

fn rtt_panel(
    path: &Path,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    packets: &[PacketRecord],
    report: &Report,
) -> Result<(), PlotError> {
    let ms = |ns: u64| ns as f64 / 1e6;
    let t_max = packets
        .last()
        .map_or(1.0, |p| p.sent_ns as f64 / 1e9)
        .max(0.01);
    let rtt_top = report.rtt_max_ns.map_or(1.0, ms).max(0.001);
    // Lost probes are marked in a band above the highest RTT.
    let band = rtt_top * 1.12;
    let mut chart = tried!(
        path,
        ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..rtt_top * 1.25)
    );
    tried!(
        path,
        chart
            .configure_mesh()
            .x_desc("probe sent at (s)")
            .y_desc("RTT (ms)")
            .light_line_style(WHITE)
            .draw()
    );
    let t = |p: &PacketRecord| p.sent_ns as f64 / 1e9;
    tried!(
        path,
        chart.draw_series(packets.iter().filter(|p| !p.reordered).filter_map(|p| {
            p.rtt_ns
                .map(|r| Circle::new((t(p), ms(r)), 2, RTT.filled()))
        }))
    )
    .label("RTT of a probe")
    .legend(|(x, y)| Circle::new((x + 10, y), 3, RTT.filled()));
    let reordered: Vec<_> = packets.iter().filter(|p| p.reordered).collect();
    if !reordered.is_empty() {
        tried!(
            path,
            chart.draw_series(reordered.iter().filter_map(|p| {
                p.rtt_ns
                    .map(|r| Circle::new((t(p), ms(r)), 3, REORDERED.filled()))
            }))
        )
        .label("reply arrived after a later one (reordered)")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, REORDERED.filled()));
    }
    for (kind, colour, label) in [
        ("upstream", LOST_UP, "lost on the way out"),
        ("downstream", LOST_DOWN, "lost on the way back"),
        ("unknown", LOST_UNKNOWN, "lost, direction unknown"),
    ] {
        let lost: Vec<_> = packets
            .iter()
            .filter(|p| p.rtt_ns.is_none() && p.lost == Some(kind))
            .collect();
        if lost.is_empty() {
            continue;
        }
        tried!(
            path,
            chart.draw_series(lost.iter().map(|p| Cross::new(
                (t(p), band),
                5,
                colour.stroke_width(2)
            )))
        )
        .label(label)
        .legend(move |(x, y)| Cross::new((x + 10, y), 5, colour.stroke_width(2)));
    }
    let lines = [
        ("p50", report.rtt_p50_ns, [0, 0, 0]),
        ("p90", report.rtt_p90_ns, [90, 90, 90]),
        ("p99", report.rtt_p99_ns, [160, 160, 160]),
    ];
    for (name, value, [r, g, b]) in lines {
        let Some(v) = value else { continue };
        let colour = RGBColor(r, g, b);
        tried!(
            path,
            chart.draw_series(DashedLineSeries::new(
                [(0.0, ms(v)), (t_max, ms(v))],
                6,
                4,
                colour.stroke_width(1),
            ))
        )
        .label(format!("{name} {:.2} ms", ms(v)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );
    Ok(())
}

fn ipdv_panel(
    path: &Path,
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    packets: &[PacketRecord],
) -> Result<(), PlotError> {
    let values = ipdv_ms(packets);
    let lo = values.iter().copied().fold(0.0, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if hi - lo < 1e-6 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    const BINS: usize = 40;
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0u64; BINS];
    for v in &values {
        let i = (((v - lo) / width) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut chart = tried!(
        path,
        ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..top * 1.1)
    );
    tried!(
        path,
        chart
            .configure_mesh()
            .x_desc("IPDV: RTT of a probe minus the previous probe's (ms)")
            .y_desc("pairs")
            .light_line_style(WHITE)
            .draw()
    );
    tried!(
        path,
        chart.draw_series(
            counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, &c)| {
                    let x0 = lo + width * i as f64;
                    Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], CWND.filled())
                })
        )
    )
    .label(format!("{} pairs of consecutive replies", values.len()))
    .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], CWND.filled()));
    tried!(
        path,
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.7))
            .border_style(BLACK)
            .draw()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::Sample;

    fn sample(t: f64, cwnd: u32, ssthresh: Option<u32>, retrans: u32, acked: u64) -> Sample {
        Sample {
            t,
            cwnd,
            ssthresh,
            srtt_us: 40_000,
            total_retrans: retrans,
            delivery_rate_bps: 10_000_000,
            bytes_acked: acked,
            mss: 1448,
        }
    }

    fn report(samples: Vec<Sample>) -> BulkReport {
        BulkReport {
            target: "127.0.0.1:5001".parse().unwrap(),
            congestion: "reno".into(),
            seconds: samples.last().map_or(0.0, |s| s.t),
            bytes_sent: 0,
            bytes_acked: 0,
            total_retrans: 0,
            goodput_bps: 0.0,
            samples,
        }
    }

    #[test]
    fn an_absent_threshold_leaves_a_gap_not_a_line() {
        let lines = runs(
            [
                (0.0, None),
                (0.1, Some(5)),
                (0.2, Some(6)),
                (0.3, None),
                (0.4, Some(7)),
            ]
            .into_iter(),
        );
        assert_eq!(lines, vec![vec![(0.1, 5), (0.2, 6)], vec![(0.4, 7)]]);
        assert!(runs([(0.0, None::<u32>)].into_iter()).is_empty());
    }

    #[test]
    fn retransmissions_are_marked_where_the_count_rises() {
        let r = report(vec![
            sample(0.0, 10, None, 0, 0),
            sample(0.1, 20, None, 0, 0),
            sample(0.2, 40, None, 3, 0),
            sample(0.3, 20, Some(20), 3, 0),
            sample(0.4, 21, Some(20), 4, 0),
        ]);
        assert_eq!(retransmissions(&r), vec![(0.2, 40), (0.4, 21)]);
    }

    #[test]
    fn goodput_is_bytes_acked_per_window() {
        // 156,250 bytes per 0.125 s is 10 Mbit/s (times exact in binary).
        let r = report(
            (0..=10u32)
                .map(|i| sample(f64::from(i) * 0.125, 10, None, 0, u64::from(i) * 156_250))
                .collect(),
        );
        let g = goodput_series(&r, 0.25);
        assert_eq!(g.len(), 5);
        for (_, bps) in g {
            assert!((bps - 10e6).abs() < 1.0, "{bps}");
        }
    }

    #[test]
    fn ipdv_pairs_only_consecutive_answered_probes() {
        let p = |seq, rtt_ms: Option<u64>| PacketRecord {
            seq,
            sent_ns: seq * 1_000_000,
            rtt_ns: rtt_ms.map(|m| m * 1_000_000),
            duplicates: 0,
            lost: rtt_ms.is_none().then_some("upstream"),
            reordered: false,
        };
        let v = ipdv_ms(&[
            p(0, Some(10)),
            p(1, Some(13)),
            p(2, None),
            p(3, Some(9)),
            p(4, Some(7)),
        ]);
        assert_eq!(v, vec![3.0, -2.0]);
    }
}

/// One panel of [`bench_bars`]: a measure (say requests per second) of each server in a run.
#[derive(Debug, Clone)]
pub struct Panel {
    /// What the bars measure, with its unit, as the panel's title.
    pub measure: String,
    /// Whether a longer bar is better (throughput) or worse (CPU per request): said in the title
    /// so nobody reads a CPU bar as a score.
    pub higher_is_better: bool,
    /// (server, value); ours first, as the table has it.
    pub bars: Vec<(String, f64)>,
}

const OURS: RGBColor = RGBColor(31, 119, 180);
const PEER: RGBColor = RGBColor(160, 160, 160);

/// Draws a benchmark table as horizontal bar charts, one panel per measure, ours in colour and
/// each peer in grey, each bar labelled with its value.
///
/// # Errors
/// The file cannot be written.
pub fn bench_bars(path: &Path, title: &str, panels: &[Panel]) -> Result<(), PlotError> {
    let rows = panels
        .iter()
        .map(|p| p.bars.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let height = 80 + panels.len().max(1) as u32 * (60 + 34 * rows as u32);
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    tried!(path, root.fill(&WHITE));
    let root = tried!(path, root.titled(title, (FONT, 22)));
    for (area, panel) in root
        .split_evenly((panels.len().max(1), 1))
        .iter()
        .zip(panels)
    {
        let top = panel.bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.25;
        let top = if top > 0.0 { top } else { 1.0 };
        let n = panel.bars.len().max(1);
        let caption = format!(
            "{} ({} is better)",
            panel.measure,
            if panel.higher_is_better {
                "longer"
            } else {
                "shorter"
            }
        );
        let names: Vec<String> = panel.bars.iter().map(|b| b.0.clone()).collect();
        let mut chart = tried!(
            path,
            ChartBuilder::on(area)
                .caption(caption, (FONT, 17))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(230)
                .build_cartesian_2d(0.0..top, 0.0..n as f64)
        );
        tried!(
            path,
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n * 2 + 1)
                .y_label_formatter(&|y| {
                    let i = y.floor();
                    if (y - i - 0.5).abs() < 0.26 && i >= 0.0 {
                        // Row 0 is drawn at the top, as in the printed table.
                        names.get(n - 1 - i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .draw()
        );
        tried!(
            path,
            chart.draw_series(panel.bars.iter().enumerate().map(|(i, (_, v))| {
                let y = (n - 1 - i) as f64;
                let colour = if i == 0 { OURS } else { PEER };
                Rectangle::new([(0.0, y + 0.2), (*v, y + 0.8)], colour.filled())
            }))
        );
        tried!(
            path,
            chart.draw_series(panel.bars.iter().enumerate().map(|(i, (_, v))| {
                let y = (n - 1 - i) as f64;
                Text::new(format_value(*v), (*v + top * 0.01, y + 0.7), (FONT, 14))
            }))
        );
    }
    tried!(path, root.present());
    Ok(())
}

/// A bar's label: whole numbers for large values, two decimals for small ones.
fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}
