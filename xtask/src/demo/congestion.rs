//! `cargo xtask demo congestion`: TCP's congestion controls through a bottleneck, drawn.
//!
//! As root, `impair link` makes a bottleneck (10 Mbit/s, a 100 kB queue, 20 ms each way, no
//! loss by default). For every congestion control the kernel offers among reno, cubic and bbr,
//! a fresh link carries one bulk transfer (`udpecho bulk` in the left namespace into `udpecho
//! sink` in the right one) while the sender reads TCP_INFO every 5 ms; each run is drawn as one
//! SVG (cwnd with ssthresh and retransmissions, RTT, goodput against the bottleneck). Then the
//! same bottleneck gets UDP offered at twice its rate (`udpecho probe`, 1400-byte probes), and
//! a table and a picture put UDP's goodput and loss beside TCP's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use protolab_lab::{Server, is_root};
use protolab_udpecho::bulk::BulkReport;
use protolab_udpecho::plot;
use serde_json::Value;

use super::compare::{DemoLink, Side, start_link};
use crate::util;

/// The controls the demo compares, when the kernel offers them.
const CONTROLS: [&str; 3] = ["reno", "cubic", "bbr"];

/// The probe's UDP payload: with 28 bytes of IP and UDP headers, a 1428-byte packet.
const UDP_PAYLOAD: u64 = 1400;
const UDP_HEADERS: u64 = 28;

#[derive(Debug, Clone)]
struct Options {
    rate: String,
    queue: String,
    delay: String,
    loss: String,
    seconds: u64,
    seed: u64,
    out: PathBuf,
    controls: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            rate: "10mbit".into(),
            queue: "100kB".into(),
            delay: "20ms".into(),
            loss: "0".into(),
            seconds: 10,
            seed: 1,
            out: util::root().join("target/demo-congestion"),
            controls: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--rate" => o.rate = value()?,
                "--queue" => o.queue = value()?,
                "--delay" => o.delay = value()?,
                "--loss" => o.loss = value()?,
                "--seconds" => {
                    o.seconds = value()?.parse().context("--seconds takes a number")?;
                    if !(1..=60).contains(&o.seconds) {
                        bail!("--seconds must be from 1 to 60");
                    }
                }
                "--seed" => o.seed = value()?.parse().context("--seed takes a number")?,
                "--out" => o.out = PathBuf::from(value()?),
                "--cc" => o.controls = value()?.split(',').map(str::to_owned).collect(),
                other => bail!(
                    "unknown option {other:?} for demo congestion: use --rate, --queue, --delay, \
                     --loss, --seconds, --seed, --cc or --out"
                ),
            }
        }
        Ok(o)
    }

    fn link_args(&self, pcap: &Path) -> Vec<String> {
        vec![
            "--rate".into(),
            self.rate.clone(),
            "--queue".into(),
            self.queue.clone(),
            "--delay".into(),
            self.delay.clone(),
            "--loss".into(),
            self.loss.clone(),
            "--seed".into(),
            self.seed.to_string(),
            "--pcap".into(),
            pcap.display().to_string(),
        ]
    }
}

/// Where the captures go: always under target/, since they are large (13 MB for 10 s at
/// 10 Mbit/s) and `--out` may be a folder of the docs.
fn captures() -> PathBuf {
    util::root().join("target/demo-congestion")
}

/// `10mbit`, `500kbit`, `64000` in bits per second.
fn bits_per_second(text: &str) -> Result<f64> {
    let t = text.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("mbit") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix("kbit") {
        (n, 1e3)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("--rate {text:?}: write bits per second like 10mbit"))?;
    if v <= 0.0 {
        bail!("--rate must be above zero");
    }
    Ok(v * mult)
}

/// `100kB`, `64KiB`, `1MB`, `1500` in bytes (as `impair link --queue` reads them), for the
/// time a full queue takes to drain; 0 when unreadable.
fn queue_bytes(text: &str) -> f64 {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let mult = match unit.trim() {
        "kB" | "KB" | "k" | "K" => 1e3,
        "KiB" | "kiB" => 1024.0,
        "MB" | "M" => 1e6,
        "MiB" => 1_048_576.0,
        _ => 1.0,
    };
    num.parse::<f64>().map_or(0.0, |n| n * mult)
}

/// The congestion controls this kernel offers.
fn available() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

pub fn run(args: &[String]) -> Result<()> {
    let mut opts = Options::parse(args)?;
    if !is_root() {
        bail!(
            "demo congestion needs root: it makes a bottleneck with `impair link` between two \
             network namespaces (run it as root, e.g. `sudo -E cargo xtask demo congestion`)"
        );
    }
    let offered = available();
    if opts.controls.is_empty() {
        opts.controls = CONTROLS
            .iter()
            .filter(|c| offered.iter().any(|o| o == *c))
            .map(|c| (*c).to_owned())
            .collect();
    }
    for c in &opts.controls {
        if !offered.contains(c) {
            bail!(
                "congestion control {c:?} is not offered by this kernel (it offers: {}); try \
                 `modprobe tcp_{c}`",
                offered.join(" ")
            );
        }
    }
    let rate = bits_per_second(&opts.rate)?;
    let bins = util::build_bins_of(false, &["protolab-impair", "protolab-udpecho"])?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("create {}", opts.out.display()))?;

    println!("== TCP congestion control through a bottleneck ==\n");
    println!(
        "Each run gets a fresh `impair link`: {} each way, {} one-way delay, a queue of {} per \
         direction, loss {}, seed {}.\nudpecho sink listens in the right namespace \
         (198.18.0.2:5001); udpecho bulk sends for {} s from the left one, reading TCP_INFO \
         every 5 ms.\n",
        opts.rate, opts.delay, opts.queue, opts.loss, opts.seed, opts.seconds
    );

    let mut reports = Vec::new();
    for cc in &opts.controls {
        let report = one_transfer(&opts, &bins, cc, rate)?;
        reports.push(report);
    }
    println!();
    let udp = udp_flood(&opts, &bins, rate)?;
    summarize(&opts, rate, &reports, &udp)?;
    Ok(())
}

/// One bulk transfer under `cc` through a fresh link; its picture and pcap in `--out`.
fn one_transfer(opts: &Options, bins: &Path, cc: &str, rate: f64) -> Result<BulkReport> {
    let pcap = captures().join(format!("congestion-{cc}.pcap"));
    let svg = opts.out.join(format!("congestion-{cc}.svg"));
    let link = start_link(bins, &format!("cc{cc}"), &opts.link_args(&pcap))?;
    let sink = Server::start_cmd(
        "udpecho sink",
        {
            let mut c = link.run_in(Side::Right, &bins.join("udpecho"));
            c.args(["sink", "--listen", "198.18.0.2:5001"]);
            c
        },
        1,
    );
    let mut cmd = link.run_in(Side::Left, &bins.join("udpecho"));
    cmd.args([
        "bulk",
        "198.18.0.2:5001",
        "--cc",
        cc,
        "--duration",
        &format!("{}s", opts.seconds),
        "--sample",
        "5ms",
        "--bottleneck",
        &opts.rate,
        "--json",
        "--svg",
    ])
    .arg(&svg);
    println!(
        "$ ip netns exec {} udpecho bulk 198.18.0.2:5001 --cc {cc} --duration {}s --svg {}",
        link.left,
        opts.seconds,
        svg.display()
    );
    let out = cmd.output().context("run udpecho bulk")?;
    drop(sink);
    let (truth, _) = link.stop_clean()?;
    if !out.status.success() {
        bail!(
            "udpecho bulk --cc {cc} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let report: BulkReport =
        serde_json::from_slice(&out.stdout).context("read udpecho bulk's JSON report")?;
    let queue_drops = truth["left_to_right"]["queue_dropped"]
        .as_u64()
        .unwrap_or(0);
    let cwnd_max = report.samples.iter().map(|s| s.cwnd).max().unwrap_or(0);
    let rtts: Vec<u32> = report
        .samples
        .iter()
        .map(|s| s.srtt_us)
        .filter(|&r| r > 0)
        .collect();
    let rtt_min = rtts.iter().copied().min().unwrap_or(0);
    let rtt_max = rtts.iter().copied().max().unwrap_or(0);
    println!(
        "  {cc}: goodput {:.2} Mbit/s ({:.0}% of the bottleneck), {} segments retransmitted, \
         {} packets dropped at the full queue, cwnd up to {cwnd_max} segments, smoothed RTT \
         {:.1} to {:.1} ms, {} samples",
        report.goodput_bps / 1e6,
        report.goodput_bps / rate * 100.0,
        report.total_retrans,
        queue_drops,
        f64::from(rtt_min) / 1e3,
        f64::from(rtt_max) / 1e3,
        report.samples.len()
    );
    Ok(report)
}

/// What the UDP run gave.
struct UdpRun {
    sent: u64,
    arrived: u64,
    offered_bps: f64,
    goodput_bps: f64,
}

/// UDP offered at twice the bottleneck's rate through a fresh link, for the same time.
fn udp_flood(opts: &Options, bins: &Path, rate: f64) -> Result<UdpRun> {
    let pps = 2.0 * rate / ((UDP_PAYLOAD + UDP_HEADERS) * 8) as f64;
    let pcap = captures().join("congestion-udp.pcap");
    let link = start_link(bins, "ccudp", &opts.link_args(&pcap))?;
    let server = Server::start_cmd(
        "udpecho serve",
        {
            let mut c = link.run_in(Side::Right, &bins.join("udpecho"));
            c.args(["serve", "--listen", "198.18.0.2:7777", "--no-tcp"]);
            c
        },
        1,
    );
    let mut cmd = link.run_in(Side::Left, &bins.join("udpecho"));
    cmd.args([
        "probe",
        "198.18.0.2:7777",
        "--size",
        &UDP_PAYLOAD.to_string(),
        "--rate",
        &format!("{pps:.0}"),
        "--duration",
        &format!("{}s", opts.seconds),
        "--wait",
        "2s",
        "--json",
        "--quiet",
    ]);
    println!(
        "$ ip netns exec {} udpecho probe 198.18.0.2:7777 --size {UDP_PAYLOAD} --rate {pps:.0} \
         --duration {}s   (UDP at twice the bottleneck's rate)",
        link.left, opts.seconds
    );
    let out = cmd.output().context("run udpecho probe")?;
    drop(server);
    let _ = link.stop_clean()?;
    let _ = std::fs::remove_file(&pcap);
    if !out.status.success() {
        bail!(
            "udpecho probe failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("read the probe's report")?;
    let r = &v;
    let sent = r["sent"].as_u64().unwrap_or(0);
    // What reached the server: the application at the far end of the bottleneck.
    let arrived = r["server_received"].as_u64().unwrap_or(0);
    let send_rate = r["send_rate_pps"].as_f64().unwrap_or(0.0);
    // Arrivals go on after the last send while the full queue drains: count that time too.
    let drain = queue_bytes(&opts.queue) * 8.0 / rate;
    let seconds = if send_rate > 0.0 {
        sent as f64 / send_rate
    } else {
        opts.seconds as f64
    } + drain;
    let run = UdpRun {
        sent,
        arrived,
        offered_bps: sent as f64 * (UDP_PAYLOAD * 8) as f64 / seconds,
        goodput_bps: arrived as f64 * (UDP_PAYLOAD * 8) as f64 / seconds,
    };
    println!(
        "  udp: {} probes sent ({:.2} Mbit/s of payload offered), {} reached the server: \
         goodput {:.2} Mbit/s, {:.1}% lost for good",
        run.sent,
        run.offered_bps / 1e6,
        run.arrived,
        run.goodput_bps / 1e6,
        loss(&run) * 100.0
    );
    Ok(run)
}

fn loss(run: &UdpRun) -> f64 {
    if run.sent == 0 {
        0.0
    } else {
        1.0 - run.arrived as f64 / run.sent as f64
    }
}

fn summarize(opts: &Options, rate: f64, reports: &[BulkReport], udp: &UdpRun) -> Result<()> {
    println!("\nThe same bottleneck, {} each way:\n", opts.rate);
    println!(
        "{:<10} {:>14} {:>14} {:>16} {:>16}",
        "transport", "offered Mbit/s", "goodput Mbit/s", "lost to the app", "retransmitted"
    );
    println!("{}", "-".repeat(74));
    let mut bars = Vec::new();
    for r in reports {
        let sent_bps = r.bytes_sent as f64 * 8.0 / r.seconds.max(1e-9);
        println!(
            "{:<10} {:>14.2} {:>14.2} {:>16} {:>16}",
            format!("tcp {}", r.congestion),
            sent_bps / 1e6,
            r.goodput_bps / 1e6,
            "0 (0.0%)",
            r.total_retrans
        );
        bars.push(plot::Bar {
            label: format!("TCP {}", r.congestion),
            offered_bps: sent_bps,
            goodput_bps: r.goodput_bps,
            app_loss: 0.0,
        });
    }
    println!(
        "{:<10} {:>14.2} {:>14.2} {:>16} {:>16}",
        "udp",
        udp.offered_bps / 1e6,
        udp.goodput_bps / 1e6,
        format!(
            "{} ({:.1}%)",
            udp.sent.saturating_sub(udp.arrived),
            loss(udp) * 100.0
        ),
        "-"
    );
    bars.push(plot::Bar {
        label: "UDP at 2x the rate".into(),
        offered_bps: udp.offered_bps,
        goodput_bps: udp.goodput_bps,
        app_loss: loss(udp),
    });
    let svg = opts.out.join("throughput.svg");
    plot::throughput(
        &svg,
        &bars,
        rate,
        &format!(
            "The same {} bottleneck: TCP adapts, UDP overflows the queue",
            opts.rate
        ),
    )?;
    let tcp_header_share = 52.0 / 1500.0;
    println!(
        "\nTCP's payload can at most reach the bottleneck rate less its headers (52 of every \
         1500 bytes with timestamps: {:.2} Mbit/s).",
        rate * (1.0 - tcp_header_share) / 1e6
    );
    println!(
        "TCP lost nothing the application could see: every dropped segment was sent again. UDP \
         kept sending at twice the rate, and what did not fit the queue was gone.\n"
    );
    println!("Pictures:");
    for r in reports {
        println!(
            "  {}",
            opts.out
                .join(format!("congestion-{}.svg", r.congestion))
                .display()
        );
    }
    println!("  {}", svg.display());
    println!(
        "Captures for tcptrace or tshark: {}",
        captures().join("congestion-<cc>.pcap").display()
    );
    Ok(())
}
