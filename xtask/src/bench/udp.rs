//! `cargo xtask bench udp`: the probe and the echo server against irtt, iperf3 and sockperf,
//! in one run on one machine.
//!
//! - Loss-free rate: step the rate up; at each step send 64-byte probes for 5 s and keep the
//!   step if at least 99.9% came back and the sender kept 95% of the rate. The same search for
//!   irtt (`--timer=busy`, server `-i 0`).
//! - iperf3 -u, one way, 64-byte datagrams as fast as it can: a reference for what the kernel
//!   takes on this machine.
//! - RTT: sockperf ping-pong full-RTT median beside the probe's median at 1,000 probes/s, both
//!   with a receiver that spins (`--busy`), as sockperf's does.
//! - RTT against irtt: irtt's client and the probe, both one packet a millisecond, each against
//!   its own server; the ratio of the medians (a timing comparison, so it lives here and not in
//!   a test).
//! - Memory: the server's RSS probed by 1 flow, then by 1,000 flows at the same packet rate.
//!
//! Beside every rate, each server's CPU time per 1,000 datagrams it received (utime + stime
//! from /proc/PID/stat over the run): the load generator shares the two cores with the server,
//! so a rate says as much about who got the CPU as about the server.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use protolab_lab::output_ok;
use protolab_tests::{Proc, Server, free_port, require_peer};
use serde_json::Value;

use crate::util::{self, CPU_COLUMN, CpuUse, ProcCpu, Table, cpu_cell, with_cpu};

const STEP: &str = "5s";
const PPS_STEPS: &[u64] = &[
    10_000, 20_000, 30_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000, 250_000, 300_000,
    400_000,
];

fn probe_json(udpecho: &Path, target: SocketAddr, args: &[&str]) -> Result<Value> {
    let out = output_ok(
        Command::new(udpecho)
            .arg("probe")
            .arg(target.to_string())
            .args(["--json", "--quiet"])
            .args(args),
    )?;
    serde_json::from_slice(&out.stdout).context("probe JSON")
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// One step of a rate search.
struct Step {
    /// The fraction of probes that came back.
    delivered: f64,
    /// The rate the sender actually kept, packets/s.
    achieved: f64,
    /// The server's CPU milliseconds per 1,000 datagrams it received.
    cpu_per_k: f64,
    detail: String,
}

/// Steps the asked rate up. The result is the highest achieved rate of a step that delivered
/// at least 99.9%, with the server's CPU per 1,000 datagrams in that step. Stops at the second
/// failing step in a row (one may be a neighbour's burst on a shared machine), or when the
/// sender no longer gets faster (it has reached what it can send).
fn search(name: &str, mut try_rate: impl FnMut(u64) -> Result<Step>) -> Result<(f64, f64)> {
    let mut best: (f64, f64) = (0.0, f64::NAN);
    let mut misses = 0;
    let mut last_achieved: f64 = 0.0;
    for &pps in PPS_STEPS {
        let Step {
            delivered,
            achieved,
            cpu_per_k,
            detail,
        } = try_rate(pps)?;
        let ok = delivered >= 0.999;
        println!(
            "  {name:<8} asked {pps:>7}/s  sent {achieved:>7.0}/s  delivered {:>7.3}%  {}  CPU {} ms/1k  {detail}",
            delivered * 100.0,
            if ok { "pass" } else { "FAIL" },
            cpu_cell(cpu_per_k)
        );
        if ok {
            if achieved > best.0 {
                best = (achieved, cpu_per_k);
            }
            misses = 0;
        } else {
            misses += 1;
        }
        let saturated = achieved < 1.05 * last_achieved;
        last_achieved = last_achieved.max(achieved);
        if misses == 2 || saturated {
            break;
        }
    }
    Ok(best)
}

/// One `sockperf pp` run of 3 s against the server on `port`: its full-RTT median in us, and
/// how many pongs came back over the whole run (warm-up included, as the CPU reading is).
fn sockperf_median_us(sockperf: &Path, port: u16) -> Result<(f64, u64)> {
    let o = Command::new(sockperf)
        .args([
            "pp",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "3",
            "--full-rtt",
        ])
        .output()
        .context("run sockperf pp")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let median = text
        .lines()
        .find(|l| l.contains("percentile 50.000"))
        .and_then(|l| l.rsplit('=').next())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no median in sockperf's output: {text}"))?;
    let received = text
        .lines()
        .find(|l| l.contains("[Total Run]"))
        .and_then(|l| l.split("ReceivedMessages=").nth(1))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok((median, received))
}

/// The row cells for a comparison: ours, the peer's, the throughput or RTT ratio, the CPU
/// cells and the target.
fn compare_row(
    table: &mut Table,
    measure: &str,
    ours: String,
    peer: String,
    ratio: String,
    cpu: (f64, f64),
    target: &str,
) {
    let cpu_ratio = cpu.0 / cpu.1;
    table.row(vec![
        measure.into(),
        ours,
        peer,
        ratio,
        format!("{} / {}", cpu_cell(cpu.0), cpu_cell(cpu.1)),
        if cpu_ratio.is_finite() {
            format!("{cpu_ratio:.2}x")
        } else {
            "-".into()
        },
        target.into(),
    ]);
}

/// Sends 64-byte probes from `flows` flow ids in turn at about `pps` for `dur`, reading replies.
/// The packet is written out by hand from docs/udp.md, so the benchmark tests the format too.
fn flows_load(target: SocketAddr, flows: u32, pps: u64, dur: Duration) -> Result<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    socket.set_nonblocking(true)?;
    let mut pkt = [0u8; 64];
    pkt[..4].copy_from_slice(b"PLUE");
    pkt[4] = 1;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut replies = 0u64;
    let mut buf = [0u8; 128];
    while start.elapsed() < dur {
        let due = (start.elapsed().as_secs_f64() * pps as f64) as u64;
        while sent < due {
            let flow = 0xbe00_0000 + (sent % u64::from(flows)) as u32;
            pkt[8..12].copy_from_slice(&flow.to_be_bytes());
            pkt[16..24].copy_from_slice(&(sent / u64::from(flows)).to_be_bytes());
            let _ = socket.send(&pkt);
            sent += 1;
        }
        while socket.recv(&mut buf).is_ok() {
            replies += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(replies)
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        bail!("bench udp takes no options (got {other:?})");
    }
    let irtt = require_peer("irtt", "irtt");
    let iperf3 = require_peer("iperf3", "iperf3");
    let sockperf = require_peer("sockperf", "sockperf");
    let bins = util::build_bins_of(true, &["protolab-udpecho"])?;
    let udpecho = bins.join("udpecho");
    let cpu_column = format!("{CPU_COLUMN} ours / peer");
    let mut table = Table::new(
        "udp",
        &[
            "measure",
            "protolab",
            "peer",
            "ratio",
            &cpu_column,
            "CPU ratio",
            "target",
        ],
    );

    // Loss-free rate, udpecho.
    println!("Loss-free rate search, 64-byte probes, {STEP} per step, pass = 99.9% delivered:");
    let mut cmd = Command::new(&udpecho);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-tcp"])
        .stderr(Stdio::null());
    let server = Server::start_cmd("udpecho serve", cmd, 1);
    let target = server.addr("udp");
    let of = ProcCpu::Process(server.proc.pid());
    let (ours, ours_cpu) = search("udpecho", |pps| {
        let (r, cpu) = with_cpu(of, || {
            probe_json(
                &udpecho,
                target,
                &[
                    "--rate",
                    &pps.to_string(),
                    "--duration",
                    STEP,
                    "--size",
                    "64",
                    "--wait",
                    "1s",
                ],
            )
        })?;
        let delivered = f(&r, "received") / f(&r, "sent").max(1.0);
        let at_server = (f(&r, "sent") - f(&r, "lost_upstream")).max(0.0) as u64;
        let detail = format!(
            "lost upstream {} downstream {}",
            r["lost_upstream"], r["lost_downstream"]
        );
        Ok(Step {
            delivered,
            achieved: f(&r, "send_rate_pps"),
            cpu_per_k: cpu.ms_per_thousand(at_server),
            detail,
        })
    })?;
    drop(server);

    // Loss-free rate, irtt.
    let port = free_port();
    let mut cmd = Command::new(&irtt);
    cmd.args(["server", "-b", &format!("127.0.0.1:{port}"), "-i", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let irtt_server = Proc::spawn("irtt server", &mut cmd);
    std::thread::sleep(Duration::from_millis(500));
    let dir = std::env::temp_dir().join(format!("protolab-bench-udp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("irtt.json");
    let of = ProcCpu::Process(irtt_server.pid());
    let (theirs, theirs_cpu) = search("irtt", |pps| {
        let interval = format!("{}ns", 1_000_000_000 / pps);
        let clock = util::CpuClock::start(of)?;
        let status = Command::new(&irtt)
            .args([
                "client",
                "-i",
                &interval,
                "--timer=busy",
                "-d",
                STEP,
                "-l",
                "64",
                "-Q",
                "-o",
            ])
            .arg(&out)
            .arg(format!("127.0.0.1:{port}"))
            .status()
            .context("run irtt client")?;
        let cpu = clock.stop()?;
        if !status.success() {
            return Ok(Step {
                delivered: 0.0,
                achieved: 0.0,
                cpu_per_k: f64::NAN,
                detail: format!("irtt client exited with {status}"),
            });
        }
        let j: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        let s = &j["stats"];
        let sent = f(s, "packets_sent");
        let received = f(s, "packets_received");
        let delivered = received / sent.max(1.0);
        let detail = format!(
            "lost upstream {:.3}% downstream {:.3}%",
            f(s, "upstream_loss_percent"),
            f(s, "downstream_loss_percent")
        );
        Ok(Step {
            delivered,
            achieved: sent / 5.0,
            cpu_per_k: cpu.ms_per_thousand(f(s, "server_packets_received") as u64),
            detail,
        })
    })?;
    compare_row(
        &mut table,
        "loss-free echo rate, 64 B (packets/s)",
        format!("{ours:.0}"),
        format!("irtt {theirs:.0}"),
        if theirs > 0.0 {
            format!("{:.1}x", ours / theirs)
        } else {
            "-".into()
        },
        (ours_cpu, theirs_cpu),
        ">= 4x",
    );
    table.figure("udpecho_lossfree_pps", ours);
    table.figure("irtt_lossfree_pps", theirs);
    table.figure("udpecho_lossfree_cpu_ms_per_1k", ours_cpu);
    table.figure("irtt_lossfree_cpu_ms_per_1k", theirs_cpu);

    // RTT against irtt, one packet a millisecond each, each against its own server. Both
    // measure a loopback round trip, which here is mostly thread wake-up time; irtt adds its
    // Go runtime's hand-offs on both ends. Within 4x, a unit mistake (ms against us) or a probe
    // timing the wrong interval (send to send) would still stand out.
    let (irtt_report, irtt_cpu) = with_cpu(of, || {
        let status = Command::new(&irtt)
            .args(["client", "-i", "1ms", "-d", "3s", "-Q", "-o"])
            .arg(&out)
            .arg(format!("127.0.0.1:{port}"))
            .status()
            .context("run irtt client")?;
        if !status.success() {
            bail!("irtt client at 1 ms exited with {status}");
        }
        Ok(serde_json::from_str::<Value>(&std::fs::read_to_string(
            &out,
        )?)?)
    })?;
    drop(irtt_server);
    let irtt_stats = &irtt_report["stats"];
    let irtt_p50_us = f(&irtt_stats["rtt"], "median") / 1e3;
    let irtt_per_k = irtt_cpu.ms_per_thousand(f(irtt_stats, "server_packets_received") as u64);
    let mut cmd = Command::new(&udpecho);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-tcp",
        "--workers",
        "1",
    ])
    .stderr(Stdio::null());
    let one = Server::start_cmd("udpecho serve", cmd, 1);
    let (r, cpu) = with_cpu(ProcCpu::Process(one.proc.pid()), || {
        probe_json(
            &udpecho,
            one.addr("udp"),
            &["--interval", "1ms", "--count", "3000"],
        )
    })?;
    drop(one);
    let probe_p50_us = f(&r, "rtt_p50_ns") / 1e3;
    let probe_per_k = cpu.ms_per_thousand((f(&r, "sent") - f(&r, "lost_upstream")).max(0.0) as u64);
    let rtt_ratio = probe_p50_us / irtt_p50_us;
    println!(
        "RTT median at 1k/s: probe {probe_p50_us:.1} us, irtt {irtt_p50_us:.1} us ({rtt_ratio:.2}x)"
    );
    compare_row(
        &mut table,
        "RTT median (us): probe vs irtt client, both 1k/s",
        format!("{probe_p50_us:.1}"),
        format!("irtt {irtt_p50_us:.1}"),
        format!("{rtt_ratio:.2}x"),
        (probe_per_k, irtt_per_k),
        "within 4x",
    );
    table.figure("udpecho_rtt_p50_1ms_us", probe_p50_us);
    table.figure("irtt_rtt_p50_1ms_us", irtt_p50_us);
    table.figure("rtt_ratio_vs_irtt", rtt_ratio);

    // iperf3, one way.
    let port = free_port();
    let mut cmd = Command::new(&iperf3);
    cmd.args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let iperf_server = Proc::spawn("iperf3 -s", &mut cmd);
    let mut iperf = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let o = Command::new(&iperf3)
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                "-b",
                "0",
                "-l",
                "64",
                "-t",
                "5",
                "-J",
            ])
            .output()?;
        if o.status.success() {
            iperf = Some(serde_json::from_slice::<Value>(&o.stdout)?);
            break;
        }
    }
    drop(iperf_server);
    if let Some(j) = iperf {
        let sum = &j["end"]["sum"];
        let secs = f(sum, "seconds").max(1e-9);
        let sent = f(sum, "packets") / secs;
        let lost = f(sum, "lost_percent");
        compare_row(
            &mut table,
            "iperf3 -u one-way 64 B (packets/s sent, loss)",
            "-".into(),
            format!("{sent:.0}/s, {lost:.1}% lost"),
            "-".into(),
            (f64::NAN, f64::NAN),
            "reference",
        );
        table.figure("iperf3_sent_pps", sent);
        table.figure("iperf3_lost_percent", lost);
    } else {
        table.note("iperf3 did not run: its server never answered");
    }

    // RTT medians: sockperf ping-pong beside the probe at a low rate.
    let port = free_port();
    let mut cmd = Command::new(&sockperf);
    cmd.args(["sr", "-i", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let sockperf_server = Proc::spawn("sockperf sr", &mut cmd);
    std::thread::sleep(Duration::from_millis(500));
    let mut cmd = Command::new(&udpecho);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-tcp",
        "--workers",
        "1",
    ])
    .stderr(Stdio::null());
    let server = Server::start_cmd("udpecho serve", cmd, 1);
    let ours_of = ProcCpu::Process(server.proc.pid());
    let sockperf_of = ProcCpu::Process(sockperf_server.pid());
    // Server CPU and datagrams over the rounds: sockperf's server during its runs, ours during
    // the probe --busy runs at 1k/s.
    let (mut sockperf_use, mut sockperf_n) = (CpuUse::default(), 0u64);
    let (mut busy_use, mut busy_n) = (CpuUse::default(), 0u64);
    // Three interleaved rounds, medians of each kind: a neighbour's burst then hits both sides
    // alike instead of deciding the comparison.
    let mut rounds: [Vec<f64>; 4] = Default::default();
    for _ in 0..3 {
        let ((median, pongs), cpu) = with_cpu(sockperf_of, || sockperf_median_us(&sockperf, port))?;
        rounds[0].push(median);
        sockperf_use = sockperf_use.add(cpu);
        sockperf_n += pongs;
        for (i, extra) in [
            &["--rate", "1000", "--busy"][..],
            &["--rate", "1000"][..],
            &["--rate", "20000"][..],
        ]
        .iter()
        .enumerate()
        {
            let mut args = vec!["--duration", "3s"];
            args.extend_from_slice(extra);
            let (r, cpu) = with_cpu(ours_of, || probe_json(&udpecho, server.addr("udp"), &args))?;
            rounds[i + 1].push(f(&r, "rtt_p50_ns") / 1e3);
            if i == 0 {
                busy_use = busy_use.add(cpu);
                busy_n += (f(&r, "sent") - f(&r, "lost_upstream")).max(0.0) as u64;
            }
        }
    }
    drop(sockperf_server);
    println!(
        "RTT medians per round (us): sockperf {:?}, probe --busy 1k/s {:?}, probe 1k/s {:?}, probe 20k/s {:?}",
        rounds[0], rounds[1], rounds[2], rounds[3]
    );
    let [sockperf_p50_us, ours_p50_us, sleep_p50_us, warm_p50_us] = rounds.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    let busy_per_k = busy_use.ms_per_thousand(busy_n);
    let sockperf_per_k = sockperf_use.ms_per_thousand(sockperf_n);
    compare_row(
        &mut table,
        "RTT median (us): probe --busy at 1k/s vs sockperf pp",
        format!("{ours_p50_us:.1}"),
        format!("sockperf {sockperf_p50_us:.1}"),
        format!("{:.2}x", ours_p50_us / sockperf_p50_us),
        (busy_per_k, sockperf_per_k),
        "<= 1.5x",
    );
    compare_row(
        &mut table,
        "RTT median (us): probe, sleeping receiver, 1k/s",
        format!("{sleep_p50_us:.1}"),
        "-".into(),
        "-".into(),
        (f64::NAN, f64::NAN),
        "wake-up cost",
    );
    compare_row(
        &mut table,
        "RTT median (us): probe at 20k/s vs sockperf pp",
        format!("{warm_p50_us:.1}"),
        format!("sockperf {sockperf_p50_us:.1}"),
        format!("{:.2}x", warm_p50_us / sockperf_p50_us),
        (f64::NAN, f64::NAN),
        "CPUs kept warm",
    );
    table.figure("udpecho_busy_1k_cpu_ms_per_1k", busy_per_k);
    table.figure("sockperf_server_cpu_ms_per_1k", sockperf_per_k);
    table.figure("udpecho_rtt_p50_20k_us", warm_p50_us);
    table.figure("udpecho_rtt_p50_us", ours_p50_us);
    table.figure("udpecho_rtt_p50_sleeping_us", sleep_p50_us);
    table.figure("sockperf_rtt_p50_us", sockperf_p50_us);

    // RSS from 1 to 1,000 flows at the same packet rate.
    let pid = server.proc.pid();
    flows_load(server.addr("udp"), 1, 20_000, Duration::from_secs(2))?;
    let rss_one = util::memory(pid)?.rss_kib;
    let replies = flows_load(server.addr("udp"), 1000, 20_000, Duration::from_secs(3))?;
    let rss_many = util::memory(pid)?.rss_kib;
    let growth = rss_many as f64 / rss_one as f64 - 1.0;
    compare_row(
        &mut table,
        "server RSS, 1 flow -> 1,000 flows (KiB)",
        format!("{rss_one} -> {rss_many}"),
        "-".into(),
        format!("{:+.1}%", growth * 100.0),
        (f64::NAN, f64::NAN),
        "within 10%",
    );
    table.figure("rss_1_flow_kib", rss_one);
    table.figure("rss_1000_flows_kib", rss_many);
    table.figure("flows_load_replies", replies);
    let mut server = server;
    server.proc.signal(libc::SIGTERM);
    server.proc.wait_for(Duration::from_secs(5));
    let mut rest = String::new();
    let _ = server.stdout.read_to_string(&mut rest);

    table.note(format!(
        "Loss-free: the highest rate actually sent in a step that had >= 99.9% of its 64-byte \
         probes echoed over {STEP}; both searches ran on the same machine in this run."
    ));
    table.note(
        "sockperf pp sends its next ping as soon as the pong is in (tens of thousands a second), \
         so neither side ever sleeps; at 1k/s the probe's server sleeps between probes and each \
         round trip pays one thread wake-up. --busy removes the probe's own wake-up; the 20k/s \
         row shows the round trip with warm CPUs. Each RTT figure is the median of three \
         interleaved 3 s rounds.",
    );
    table.note(
        "Server CPU ms/1k: utime + stime of the server process per 1,000 datagrams it \
         received, over the loss-free step (the highest that passed) or over the RTT rounds. \
         sockperf pp keeps tens of thousands of pings a second in flight, so its server's CPU \
         per datagram is that of a warm, never-sleeping receiver.",
    );
    let _ = std::fs::remove_dir_all(&dir);
    table.finish()
}
