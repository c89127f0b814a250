//! `cargo xtask demo compare`: UDP and TCP side by side through the same impaired link.
//!
//! As root, `impair link` joins two fresh namespaces; `udpecho serve` runs in the right one and
//! `udpecho probe` in the left one, first over UDP and then over TCP (`--tcp`), each through a
//! link with the same settings and seed. The table puts the two reports side by side with the
//! kernel's own TCP counters (TCP_INFO), and a last part sends five 100-byte messages over each
//! to show that UDP keeps message boundaries and TCP does not. Without root there is no link:
//! the UDP half runs through `impair udp` on loopback and the demo says what it could not show.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
pub(super) use protolab_lab::link::{Link, Side};
use protolab_lab::output_ok;
use protolab_lab::{Relay, Server, is_root, quiet_logs};
use serde_json::Value;

use crate::util;

/// The demo's settings, from its command line.
#[derive(Debug, Clone)]
struct Options {
    loss: String,
    reorder: String,
    dup: String,
    delay: String,
    jitter: String,
    seed: u64,
    count: u64,
    interval: String,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        Self::parse_words(args).map_err(|e| {
            protolab_transport::cli::Failure::usage(format!("{e:#}"))
                .hint("cargo xtask demo --help")
                .into()
        })
    }

    fn parse_words(args: &[String]) -> Result<Options> {
        let mut o = Options {
            loss: "5%".into(),
            reorder: "10%".into(),
            dup: "0".into(),
            delay: "20ms".into(),
            jitter: "5ms".into(),
            seed: 7,
            count: 500,
            interval: "10ms".into(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--loss" => o.loss = value()?,
                "--reorder" => o.reorder = value()?,
                "--dup" => o.dup = value()?,
                "--delay" => o.delay = value()?,
                "--jitter" => o.jitter = value()?,
                "--seed" => o.seed = value()?.parse().context("--seed takes a number")?,
                "--count" => {
                    o.count = value()?
                        .parse()
                        .ok()
                        .filter(|&n: &u64| n > 0)
                        .context("--count takes a number from 1 up")?;
                }
                "--interval" => o.interval = value()?,
                other => bail!(
                    "unknown option {other:?} for demo compare: use --loss, --reorder, --dup, \
                     --delay, --jitter, --seed, --count or --interval"
                ),
            }
        }
        Ok(o)
    }

    /// The impairment flags, as `impair link` and `impair udp` both take them.
    fn impair_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (flag, value) in [
            ("--loss", &self.loss),
            ("--reorder", &self.reorder),
            ("--dup", &self.dup),
            ("--delay", &self.delay),
            ("--jitter", &self.jitter),
        ] {
            v.push(flag.to_owned());
            v.push(value.clone());
        }
        v.push("--seed".into());
        v.push(self.seed.to_string());
        v
    }

    fn probe_args(&self) -> Vec<String> {
        [
            "--count",
            &self.count.to_string(),
            "--interval",
            &self.interval,
            "--wait",
            "2s",
            "--seed",
            "1",
            "--json",
            "--quiet",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// Starts `impair link` (the lab's runner) from `bins` with `args` for a demo.
pub(super) fn start_link(bins: &Path, tag: &str, args: &[String]) -> Result<Link> {
    Link::spawn(&bins.join("impair"), tag, args).context("start impair link")
}

/// What the demos add to the lab's link: commands with quiet logs, and a stop that insists
/// on a clean exit.
pub(super) trait DemoLink {
    /// A command running `program` inside one end's namespace, logging warnings only.
    fn run_in(&self, side: Side, program: &Path) -> Command;
    /// Takes the link down (SIGTERM) and returns its ground truth and what it printed.
    fn stop_clean(self) -> Result<(Value, Vec<String>)>;
}

impl DemoLink for Link {
    fn run_in(&self, side: Side, program: &Path) -> Command {
        let mut cmd = self.exec(side, program, &[]);
        cmd.env("RUST_LOG", quiet_logs());
        cmd
    }

    fn stop_clean(self) -> Result<(Value, Vec<String>)> {
        let stopped = self.finish(libc::SIGTERM).context("stop impair link")?;
        if !stopped.status.success() {
            bail!("impair link did not stop cleanly: {}", stopped.status);
        }
        if stopped.truth.is_null() {
            bail!("impair link wrote no ground truth");
        }
        Ok((stopped.truth, stopped.lines))
    }
}

/// Runs a probe and returns its JSON report.
fn run_probe(mut cmd: Command) -> Result<Value> {
    let out = util::with_progress("probing", || output_ok(&mut cmd))?;
    serde_json::from_slice(&out.stdout).context("read the probe's JSON report")
}

/// The command line `cmd` runs, every argument of it (a demo never cuts one short), with the
/// binaries the demo built named without their folder.
fn shown(cmd: &Command, bins: &Path) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let p = Path::new(a);
            match (p.parent(), p.file_name()) {
                (Some(dir), Some(name)) if dir == bins => name.to_string_lossy(),
                _ => a.to_string_lossy(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(report: &Value, key: &str) -> String {
    report[key]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |ns| format!("{:.1} ms", ns / 1e6))
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or(0)
}

fn truth_n(truth: &Value, dir: &str, key: &str) -> u64 {
    truth[dir][key].as_u64().unwrap_or(0)
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let bins = util::build_bins(false)?;
    println!("== UDP and TCP through the same impaired path ==\n");
    if is_root() {
        with_link(&opts, &bins)
    } else {
        without_root(&opts, &bins)
    }
}

fn with_link(opts: &Options, bins: &Path) -> Result<()> {
    let target: SocketAddr = "198.18.0.2:7777".parse()?;
    println!(
        "Each run gets a fresh link: two network namespaces joined by `impair link`, the left \
         one 198.18.0.1, the right one 198.18.0.2,\nimpairing each direction with loss {}, \
         reordering {}, duplication {}, delay {} ± {}, seed {}.",
        opts.loss, opts.reorder, opts.dup, opts.delay, opts.jitter, opts.seed
    );
    println!(
        "udpecho serve runs in the right namespace; udpecho probe sends {} probes, one every {}, \
         from the left one.\n",
        opts.count, opts.interval
    );
    let mut reports = Vec::new();
    let mut truths = Vec::new();
    for tcp in [false, true] {
        let link = start_link(bins, if tcp { "tcp" } else { "udp" }, &opts.impair_args())?;
        let server = Server::start_cmd(
            "udpecho serve",
            {
                let mut c = link.run_in(Side::Right, &bins.join("udpecho"));
                c.args(["serve", "--listen", "198.18.0.2:7777", "--workers", "1"]);
                c
            },
            2,
        );
        let mut probe = link.run_in(Side::Left, &bins.join("udpecho"));
        probe
            .arg("probe")
            .arg(target.to_string())
            .args(opts.probe_args());
        if tcp {
            probe.arg("--tcp");
        }
        let picture = util::root().join("target").join(format!(
            "demo-compare-{}.svg",
            if tcp { "tcp" } else { "udp" }
        ));
        probe.arg("--svg").arg(&picture);
        println!("$ {}", shown(&probe, bins));
        let report = run_probe(probe);
        drop(server);
        let (truth, _) = link.stop_clean()?;
        reports.push(report?);
        truths.push(truth);
    }
    let (udp, tcp) = (&reports[0], &reports[1]);
    // The kernel's TCP_INFO for the probe's connection, read by the probe with getsockopt
    // after the last reply.
    let retrans = tcp["tcp_info"]["total_retrans"].as_u64();
    let srtt_us = tcp["tcp_info"]["rtt_us"].as_f64();

    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |name: &str, u: String, t: String| rows.push((name.to_owned(), u, t));
    row(
        "sent",
        count(udp, "sent").to_string(),
        count(tcp, "sent").to_string(),
    );
    row(
        "delivered",
        count(udp, "received").to_string(),
        count(tcp, "received").to_string(),
    );
    row(
        "lost",
        count(udp, "lost").to_string(),
        count(tcp, "lost").to_string(),
    );
    row(
        "duplicated",
        count(udp, "duplicates").to_string(),
        count(tcp, "duplicates").to_string(),
    );
    row(
        "reordered",
        count(udp, "reordered").to_string(),
        count(tcp, "reordered").to_string(),
    );
    row("RTT p50", ms(udp, "rtt_p50_ns"), ms(tcp, "rtt_p50_ns"));
    row("RTT p99", ms(udp, "rtt_p99_ns"), ms(tcp, "rtt_p99_ns"));
    row("RTT max", ms(udp, "rtt_max_ns"), ms(tcp, "rtt_max_ns"));
    row(
        "kernel retransmissions",
        "-".into(),
        retrans.map_or_else(|| "?".into(), |r| r.to_string()),
    );
    row(
        "kernel smoothed RTT",
        "-".into(),
        srtt_us.map_or_else(|| "?".into(), |r| format!("{:.1} ms", r / 1000.0)),
    );
    row(
        "link dropped (both ways)",
        (truth_n(&truths[0], "left_to_right", "dropped")
            + truth_n(&truths[0], "right_to_left", "dropped"))
        .to_string(),
        (truth_n(&truths[1], "left_to_right", "dropped")
            + truth_n(&truths[1], "right_to_left", "dropped"))
        .to_string(),
    );
    print_table(&rows);
    println!("(TCP retransmissions and smoothed RTT: the kernel's TCP_INFO, read by the probe)\n");

    explain(opts, udp, tcp, &truths, retrans);
    println!();
    boundaries(Some(("198.18.0.2", opts, bins)))
}

fn print_table(rows: &[(String, String, String)]) {
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(8);
    println!();
    println!("{:<w0$}  {:>w1$}  {:>w2$}", "", "UDP", "TCP");
    println!("{}  {}  {}", "-".repeat(w0), "-".repeat(w1), "-".repeat(w2));
    for (a, b, c) in rows {
        println!("{a:<w0$}  {b:>w1$}  {c:>w2$}");
    }
}

/// A few plain sentences reading the table.
fn explain(opts: &Options, udp: &Value, tcp: &Value, truths: &[Value], retrans: Option<u64>) {
    let sent = count(udp, "sent");
    let lost = count(udp, "lost");
    let up = truth_n(&truths[0], "left_to_right", "dropped");
    let down = truth_n(&truths[0], "right_to_left", "dropped");
    println!("What the table shows:");
    let matched = if up + down == lost {
        "exactly the packets the link dropped".to_owned()
    } else {
        format!(
            "the link dropped {up} going right and {down} coming back, the rest being the \
             probe's final counters exchange"
        )
    };
    println!(
        "- UDP passed the path's faults straight to the application: {lost} of {sent} probes \
         ({:.1}%) never came back ({} lost on the way out, {} on the way back: {matched}), {} \
         arrived out of order and {} twice.",
        100.0 * lost as f64 / sent.max(1) as f64,
        count(udp, "lost_upstream"),
        count(udp, "lost_downstream"),
        count(udp, "reordered"),
        count(udp, "duplicates"),
    );
    let tcp_drops = truth_n(&truths[1], "left_to_right", "dropped")
        + truth_n(&truths[1], "right_to_left", "dropped");
    println!(
        "- TCP delivered {} of {} in order, with nothing lost or doubled, over a path that \
         dropped {tcp_drops} of its packets: the kernel numbered the bytes, saw the gaps in the \
         acknowledgements and sent again{}. (Some dropped packets were bare acknowledgements, \
         which a later acknowledgement replaces and nobody resends.)",
        count(tcp, "received"),
        count(tcp, "sent"),
        retrans.map_or_else(String::new, |r| format!(" ({r} retransmitted segments)"))
    );
    println!(
        "- The price is latency. Both pay the {} delay each way, yet TCP's median RTT is {} \
         against UDP's {}, and its p99 and maximum ({} and {}) are far above UDP's ({} and {}). \
         A lost segment holds back every later byte until its retransmission arrives, a fast \
         retransmit or a retransmission timeout later: head-of-line blocking. UDP's late or \
         lost packets delay nobody else.",
        opts.delay,
        ms(tcp, "rtt_p50_ns"),
        ms(udp, "rtt_p50_ns"),
        ms(tcp, "rtt_p99_ns"),
        ms(tcp, "rtt_max_ns"),
        ms(udp, "rtt_p99_ns"),
        ms(udp, "rtt_max_ns"),
    );
    println!(
        "- The same seed gives the same decisions: run it again with --seed {} and the link \
         drops and reorders the same packets of the UDP run.",
        opts.seed
    );
}

fn without_root(opts: &Options, bins: &Path) -> Result<()> {
    println!(
        "Not running as root: `impair link` needs root to make network namespaces and TUN \
         devices, so this run impairs UDP only,\nthrough the `impair udp` relay on loopback. It \
         cannot show TCP over the impaired path (retransmissions, TCP_INFO, head-of-line \
         blocking):\nthe relay forwards datagrams, and TCP's segments never pass through it. \
         Run as root for the full comparison.\n"
    );
    let server = Server::start_cmd(
        "udpecho serve",
        {
            let mut c = Command::new(bins.join("udpecho"));
            c.env("RUST_LOG", quiet_logs());
            c.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--no-tcp",
            ]);
            c
        },
        1,
    );
    let impair: Vec<String> = opts.impair_args();
    let impair: Vec<&str> = impair.iter().map(String::as_str).collect();
    let relay = Relay::start_bin(&bins.join("impair"), server.addr("udp"), &impair);
    println!(
        "$ impair udp --listen 127.0.0.1:0 --forward {} --stats FILE {} &   (the relay; FILE, its ground truth, is removed at the end)",
        server.addr("udp"),
        impair.join(" ")
    );
    let mut probe = Command::new(bins.join("udpecho"));
    probe
        .arg("probe")
        .arg(relay.addr().to_string())
        .args(opts.probe_args());
    println!("$ {}   (through impair udp)", shown(&probe, bins));
    let report = run_probe(probe)?;
    let truth = relay.stop();
    drop(server);
    let rows = vec![
        (
            "sent".to_owned(),
            count(&report, "sent").to_string(),
            "-".to_owned(),
        ),
        (
            "delivered".into(),
            count(&report, "received").to_string(),
            "-".into(),
        ),
        (
            "lost".into(),
            count(&report, "lost").to_string(),
            "-".into(),
        ),
        (
            "duplicated".into(),
            count(&report, "duplicates").to_string(),
            "-".into(),
        ),
        (
            "reordered".into(),
            count(&report, "reordered").to_string(),
            "-".into(),
        ),
        ("RTT p50".into(), ms(&report, "rtt_p50_ns"), "-".into()),
        ("RTT p99".into(), ms(&report, "rtt_p99_ns"), "-".into()),
        ("RTT max".into(), ms(&report, "rtt_max_ns"), "-".into()),
        (
            "relay dropped (both ways)".into(),
            (truth["upstream"]["dropped"].as_u64().unwrap_or(0)
                + truth["downstream"]["dropped"].as_u64().unwrap_or(0))
            .to_string(),
            "-".into(),
        ),
    ];
    print_table(&rows);
    println!(
        "\nUDP passed the faults to the application: {} of {} probes lost, {} reordered, {} \
         duplicated. The TCP column needs root.\n",
        count(&report, "lost"),
        count(&report, "sent"),
        count(&report, "reordered"),
        count(&report, "duplicates"),
    );
    boundaries(None)
}

/// Moves the calling thread into the named network namespace.
fn enter_netns(name: &str) -> Result<()> {
    let ns = std::fs::File::open(format!("/run/netns/{name}"))
        .with_context(|| format!("open namespace {name}"))?;
    // SAFETY: setns with a valid namespace descriptor; it moves only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setns");
    }
    Ok(())
}

/// Five 100-byte sends over UDP and over TCP, and what the receiver's reads return.
///
/// With `link`, the sender runs in the left namespace and the receiver in the right one, across
/// a fresh impaired link; without, both run on loopback. The receiver reads only after the
/// sender has finished, as a busy server would: the datagrams wait as five, the bytes as one
/// stream.
fn boundaries(link: Option<(&str, &Options, &Path)>) -> Result<()> {
    println!(
        "Message boundaries: five sends of 100 bytes each, then the receiver reads{}.",
        if link.is_some() {
            ", across a fresh link with the same settings"
        } else {
            " (on loopback, unimpaired: without root there is no link)"
        }
    );
    let run = match link {
        Some((_, opts, bins)) => Some(start_link(bins, "msg", &opts.impair_args())?),
        None => None,
    };
    let host = link.map_or("127.0.0.1", |(h, _, _)| h);
    let (right, left) = match &run {
        Some(r) => (Some(r.right.clone()), Some(r.left.clone())),
        None => (None, None),
    };
    let (addr_tx, addr_rx) = mpsc::channel::<(SocketAddr, SocketAddr)>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let host_owned = host.to_owned();
    let receiver = std::thread::spawn(move || -> Result<(Vec<usize>, Vec<usize>)> {
        if let Some(ns) = &right {
            enter_netns(ns)?;
        }
        let ip: std::net::IpAddr = host_owned.parse()?;
        let udp = protolab_transport::udp::bind_udp_group(SocketAddr::new(ip, 0), 1, 1 << 20)?
            .0
            .remove(0);
        let tcp = protolab_transport::tcp::bind_tcp_blocking(SocketAddr::new(ip, 0))?;
        addr_tx.send((udp.local_addr()?, tcp.local_addr()?))?;
        let (mut conn, _) = tcp.accept()?;
        done_rx.recv()?;
        // Room for the link's delay (and a retransmission or two over TCP) before reading.
        std::thread::sleep(Duration::from_millis(600));
        let mut datagrams = Vec::new();
        udp.set_read_timeout(Some(Duration::from_millis(300)))?;
        let mut buf = [0u8; 2048];
        while let Ok(n) = udp.recv(&mut buf) {
            datagrams.push(n);
        }
        let mut reads = Vec::new();
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let start = Instant::now();
        let mut total = 0;
        while total < 500 && start.elapsed() < Duration::from_secs(5) {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reads.push(n);
                    total += n;
                }
            }
        }
        Ok((datagrams, reads))
    });
    let (udp_to, tcp_to) = addr_rx.recv().context("the receiver did not start")?;
    let sender = std::thread::spawn(move || -> Result<()> {
        if let Some(ns) = &left {
            enter_netns(ns)?;
        }
        let udp = protolab_transport::udp::connect_udp(udp_to, 1 << 20)?;
        let mut tcp = util::connect(tcp_to)?;
        // No Nagle: each write leaves as a segment of its own, so the five messages are five
        // segments on the wire too; what the receiver's reads return is TCP's choice alone.
        tcp.set_nodelay(true)?;
        for i in 0..5u8 {
            let message = [b'a' + i; 100];
            udp.send(&message)?;
            tcp.write_all(&message)?;
        }
        tcp.flush()?;
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    });
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender panicked"))??;
    done_tx.send(())?;
    let (datagrams, reads) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    if let Some(r) = run {
        r.stop_clean()?;
    }
    println!(
        "  UDP: {} datagram(s) received, of {:?} bytes: each send is one datagram, kept whole{}",
        datagrams.len(),
        datagrams,
        if datagrams.len() < 5 {
            format!(
                " ({} lost on the way, and UDP does not send again)",
                5 - datagrams.len()
            )
        } else {
            String::new()
        }
    );
    println!(
        "  TCP: {} read(s) returned {:?} bytes: one stream of {} bytes, with no trace of the \
         five sends it was written in",
        reads.len(),
        reads,
        reads.iter().sum::<usize>()
    );
    println!(
        "  A protocol over TCP must mark its own message boundaries (greet ends each message \
         with a newline; DNS over TCP puts a length first)."
    );
    Ok(())
}
