//! `cargo xtask bench dns`: dnsperf against `dns serve` with a warm cache, unbound answering
//! from its cache in the same forwarding setup, and knot answering authoritatively; then the
//! cold-cache cost of forwarding through a fresh `dns serve` and a fresh unbound, against
//! asking knot directly (the median of three cold runs each). Each row also shows the server's
//! CPU time (user + system, from `/proc/PID/stat`) per 1,000 queries completed.
//!
//! Options: `--seconds N` per warm run (10 by default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_lab::{Proc, Server, free_port, require_peer, wait_udp_reply};

use crate::util::{ProcCpu, Table, build_bins_of, with_cpu};

/// A query for `. SOA`, as a readiness probe: any reply means the server is up.
pub const PROBE: &[u8] = b"\x77\x77\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01";

/// Names in the zone for cold-cache runs: each is asked once.
const COLD_NAMES: usize = 5_000;

/// Cold runs per server, each against a freshly started one. A cold run lasts well under a
/// second, so one stall of a busy machine can halve it: the table shows the median run.
const COLD_ROUNDS: usize = 3;

fn zone() -> String {
    let mut z = String::from(
        "$ORIGIN example.test.
$TTL 3600
@      IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@      IN NS  ns1
@      IN MX  10 mail
ns1    IN A   127.0.0.1
www    IN A   192.0.2.10
www    IN AAAA 2001:db8::10
mail   IN A   192.0.2.25
alias  IN CNAME www
txt    IN TXT \"v=spf1 -all\"
",
    );
    for i in 0..COLD_NAMES {
        z.push_str(&format!("h{i} IN A 198.51.100.{}\n", i % 250));
    }
    z
}

const WARM_QUERIES: &str = "www.example.test A
www.example.test AAAA
example.test MX
mail.example.test A
alias.example.test A
txt.example.test TXT
example.test NS
example.test SOA
nope.example.test A
www.example.test MX
";

/// What dnsperf reported, and the CPU time the server under test spent meanwhile.
#[derive(Debug, Clone, Copy)]
struct Perf {
    qps: f64,
    avg_latency_ms: f64,
    completed: u64,
    lost: u64,
    /// Milliseconds of CPU (user + system) per 1,000 queries completed.
    cpu_ms_per_1k: f64,
}

/// The run with the median queries/s, with its latency; the CPU time per 1,000 queries is
/// that of all the runs together: the kernel counts CPU time in ticks of 10 ms, a fifth of one
/// run's CPU, so one run alone would show it in steps of 2 ms per 1,000 queries.
fn median(mut runs: Vec<Perf>) -> Perf {
    let queries: u64 = runs.iter().map(|p| p.completed).sum();
    let cpu: f64 = runs
        .iter()
        .map(|p| p.cpu_ms_per_1k * p.completed as f64 / 1e3)
        .sum();
    runs.sort_by(|a, b| a.qps.total_cmp(&b.qps));
    let mut m = runs[runs.len() / 2];
    m.cpu_ms_per_1k = cpu * 1e3 / (queries.max(1) as f64);
    m
}

/// dnsperf against `addr`, with the CPU time of `server_pid` measured around it.
fn measured(server_pid: i32, addr: SocketAddr, queries: &Path, extra: &[&str]) -> Result<Perf> {
    let (mut p, cpu) = with_cpu(ProcCpu::Process(server_pid), || {
        dnsperf(addr, queries, extra)
    })?;
    p.cpu_ms_per_1k = cpu.ms_per_thousand(p.completed);
    Ok(p)
}

fn dnsperf(addr: SocketAddr, queries: &Path, extra: &[&str]) -> Result<Perf> {
    let dnsperf = require_peer("dnsperf", "dnsperf");
    let out = Command::new(dnsperf)
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(extra)
        .output()
        .context("run dnsperf")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |label: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no {label:?} in dnsperf output: {text}"))
    };
    Ok(Perf {
        qps: field("Queries per second:")?,
        avg_latency_ms: field("Average Latency (s):")? * 1e3,
        completed: field("Queries completed:")? as u64,
        lost: field("Queries lost:")? as u64,
        cpu_ms_per_1k: 0.0,
    })
}

fn start_knot(dir: &Path, zone: &Path) -> Result<(Proc, SocketAddr)> {
    let knotd = require_peer("knotd", "knot");
    let port = free_port();
    let run = dir.join("knot");
    std::fs::create_dir_all(run.join("db"))?;
    let conf = format!(
        "server:\n    rundir: \"{r}\"\n    listen: 127.0.0.1@{port}\n\
         database:\n    storage: \"{r}/db\"\n\
         log:\n  - target: stderr\n    any: error\n\
         template:\n  - id: default\n    zonefile-sync: -1\n    journal-content: none\n\
         zone:\n  - domain: example.test.\n    file: \"{z}\"\n",
        r = run.display(),
        z = zone.display()
    );
    let path = run.join("knot.conf");
    std::fs::write(&path, conf)?;
    let proc = Proc::spawn("knotd", Command::new(knotd).arg("-c").arg(&path));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_udp_reply(addr, PROBE, Duration::from_secs(10));
    Ok((proc, addr))
}

fn start_unbound(dir: &Path, upstream: SocketAddr) -> Result<(Proc, SocketAddr)> {
    let unbound = require_peer("unbound", "unbound");
    let port = free_port();
    let d = dir.display();
    // Two threads, like `dns serve` on this two-core machine, so neither gets more cores.
    let conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  num-threads: 2\n  so-reuseport: yes\n\
         \x20 do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n\
         \x20 pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n\
         \x20 access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  do-ip6: no\n\
         \x20 module-config: \"iterator\"\n  local-zone: \"test.\" nodefault\n\
         remote-control:\n  control-enable: no\n\
         forward-zone:\n  name: \".\"\n  forward-addr: {}@{}\n",
        upstream.ip(),
        upstream.port()
    );
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf)?;
    let proc = Proc::spawn(
        "unbound",
        Command::new(unbound).arg("-d").arg("-c").arg(&path),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_udp_reply(addr, PROBE, Duration::from_secs(10));
    Ok((proc, addr))
}

fn start_dns_serve(bin: &Path, upstream: SocketAddr) -> Server {
    let mut cmd = Command::new(bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &upstream.to_string(),
    ]);
    Server::start_cmd("dns serve", cmd, 2)
}

/// A scratch folder under the system's temporary directory, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `protolab-dns-<what>-<pid>` in the temporary directory.
    ///
    /// # Errors
    /// Creating the folder.
    pub fn new(what: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!("protolab-dns-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(Self(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn row(t: &mut Table, who: &str, how: &str, p: Perf) {
    t.row(vec![
        who.into(),
        how.into(),
        format!("{:.0}", p.qps),
        format!("{:.3}", p.avg_latency_ms),
        p.completed.to_string(),
        p.lost.to_string(),
        format!("{:.1}", p.cpu_ms_per_1k),
    ]);
}

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 10u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds takes a whole number")?;
            }
            other => bail!("unknown option {other:?}: bench dns takes --seconds N"),
        }
    }
    // Only the binary measured: a release build of the whole workspace would cost minutes.
    let bins: PathBuf = build_bins_of(true, &["protolab-dns"])?;
    let dns = bins.join("dns");
    let dir = ScratchDir::new("bench")?;
    let zone_path = dir.path().join("example.test.zone");
    std::fs::write(&zone_path, zone())?;
    let warm_path = dir.path().join("warm.txt");
    std::fs::write(&warm_path, WARM_QUERIES)?;
    let cold_path = dir.path().join("cold.txt");
    let cold: String = (0..COLD_NAMES)
        .map(|i| format!("h{i}.example.test A\n"))
        .collect();
    std::fs::write(&cold_path, cold)?;

    let (knot_proc, knot) = start_knot(dir.path(), &zone_path)?;
    let knot_pid = knot_proc.pid();
    let ours = start_dns_serve(&dns, knot);
    let ours_addr = ours.addr("udp");
    let warm_dir = dir.path().join("unbound-warm");
    std::fs::create_dir_all(&warm_dir)?;
    let (unbound_proc, unbound) = start_unbound(&warm_dir, knot)?;
    let secs = seconds.to_string();
    let warm = ["-l", secs.as_str()];

    println!("warming both caches with one pass over the query file");
    for addr in [ours_addr, unbound] {
        dnsperf(addr, &warm_path, &["-n", "1"])?;
    }
    println!(
        "dnsperf, {seconds} s each, the same {} questions",
        WARM_QUERIES.lines().count()
    );
    let p_ours = measured(ours.proc.pid(), ours_addr, &warm_path, &warm)?;
    let p_unbound = measured(unbound_proc.pid(), unbound, &warm_path, &warm)?;
    let p_knot = measured(knot_pid, knot, &warm_path, &warm)?;
    drop(ours);
    drop(unbound_proc);

    // Cold cache: a fresh resolver, every question asked once, so every one is a miss that goes
    // to knot; a fresh unbound the same way; the same file straight to knot is the baseline.
    println!(
        "cold cache: {COLD_NAMES} distinct names, each asked once; {COLD_ROUNDS} rounds, fresh servers each"
    );
    let cold_args = ["-n", "1", "-q", "20"];
    let (mut colds, mut unbound_colds, mut directs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..COLD_ROUNDS {
        let cold_server = start_dns_serve(&dns, knot);
        colds.push(measured(
            cold_server.proc.pid(),
            cold_server.addr("udp"),
            &cold_path,
            &cold_args,
        )?);
        drop(cold_server);
        let cold_dir = dir.path().join(format!("unbound-cold-{round}"));
        std::fs::create_dir_all(&cold_dir)?;
        let (cold_unbound_proc, cold_unbound) = start_unbound(&cold_dir, knot)?;
        unbound_colds.push(measured(
            cold_unbound_proc.pid(),
            cold_unbound,
            &cold_path,
            &cold_args,
        )?);
        drop(cold_unbound_proc);
        directs.push(measured(knot_pid, knot, &cold_path, &cold_args)?);
    }
    let (p_cold, p_unbound_cold, p_direct) =
        (median(colds), median(unbound_colds), median(directs));

    let mut t = Table::new(
        "dns",
        &[
            "server",
            "answering from",
            "queries/s",
            "avg latency ms",
            "completed",
            "lost",
            "server CPU ms/1k q",
        ],
    );
    row(
        &mut t,
        "dns serve",
        "warm cache (forwarding to knot)",
        p_ours,
    );
    row(
        &mut t,
        "unbound",
        "warm cache (forwarding to knot)",
        p_unbound,
    );
    row(&mut t, "knot", "authoritative zone", p_knot);
    row(
        &mut t,
        "dns serve",
        "cold cache: every query a miss",
        p_cold,
    );
    row(
        &mut t,
        "unbound",
        "cold cache: every query a miss",
        p_unbound_cold,
    );
    row(&mut t, "knot", "the same queries, directly", p_direct);
    let ratio = p_ours.qps / p_unbound.qps;
    t.note(format!(
        "dns serve / unbound, warm cache: {ratio:.2}x queries/s (target >= 1.0x: {})",
        if ratio >= 1.0 { "met" } else { "NOT met" }
    ));
    t.note(format!(
        "dns serve / knot authoritative: {:.2}x queries/s",
        p_ours.qps / p_knot.qps
    ));
    let overhead = p_cold.avg_latency_ms - p_direct.avg_latency_ms;
    let unbound_overhead = p_unbound_cold.avg_latency_ms - p_direct.avg_latency_ms;
    t.note(format!(
        "cold-cache forwarding overhead: dns serve {overhead:+.3} ms, unbound {unbound_overhead:+.3} ms average latency per query over knot direct ({:.3} ms)",
        p_direct.avg_latency_ms
    ));
    let overhead_ratio = overhead / unbound_overhead;
    t.note(format!(
        "dns serve / unbound, cold-miss overhead: {overhead_ratio:.2}x (target <= 0.5x: {})",
        if overhead_ratio <= 0.5 {
            "met"
        } else {
            "NOT met"
        }
    ));
    let cold_ratio = p_cold.qps / p_unbound_cold.qps;
    t.note(format!(
        "dns serve / unbound, cold queries/s: {cold_ratio:.2}x (target >= 2.0x: {}); {:.2}x the direct queries/s",
        if cold_ratio >= 2.0 { "met" } else { "NOT met" },
        p_cold.qps / p_direct.qps
    ));
    t.note(format!(
        "dnsperf shares the machine's cores with the server under test; warm rows one run each, cold rows the median of {COLD_ROUNDS} runs with fresh servers (CPU time: all {COLD_ROUNDS} together)."
    ));
    t.figure("dns_serve_warm_qps", p_ours.qps);
    t.figure("unbound_warm_qps", p_unbound.qps);
    t.figure("knot_qps", p_knot.qps);
    t.figure("ratio_vs_unbound", ratio);
    t.figure("cold_avg_latency_ms", p_cold.avg_latency_ms);
    t.figure("unbound_cold_avg_latency_ms", p_unbound_cold.avg_latency_ms);
    t.figure("direct_avg_latency_ms", p_direct.avg_latency_ms);
    t.figure("cold_qps", p_cold.qps);
    t.figure("unbound_cold_qps", p_unbound_cold.qps);
    t.figure("cold_overhead_ratio_vs_unbound", overhead_ratio);
    t.figure("cold_qps_ratio_vs_unbound", cold_ratio);
    t.figure("cold_cpu_ms_per_1k", p_cold.cpu_ms_per_1k);
    t.figure("unbound_cold_cpu_ms_per_1k", p_unbound_cold.cpu_ms_per_1k);
    t.finish()
}
