//! `cargo xtask bench http`: `http serve` against nginx serving the same small file, with the
//! same load generator (wrk, keep-alive GETs) in one run, taking turns for `--rounds` rounds and
//! keeping each server's best: requests per second, p99 latency and the server's CPU time per
//! 1,000 requests; then the memory of each holding 10,000 idle keep-alive connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_lab::http_peers::start_nginx;
use protolab_lab::sample::rss_kib;
use protolab_lab::{Server, raise_fd_limit, require_peer};

use crate::util::{self, Table};

struct Options {
    connections: usize,
    threads: usize,
    duration: String,
    idle: usize,
    workers: usize,
    rounds: usize,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        connections: 256,
        threads: 2,
        duration: "10s".into(),
        idle: 10_000,
        workers: 2,
        rounds: 2,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--connections" => o.connections = value()?.parse()?,
            "--threads" => o.threads = value()?.parse()?,
            "--duration" => o.duration = value()?.clone(),
            "--idle" => o.idle = value()?.parse()?,
            "--workers" => o.workers = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            other => bail!(
                "unknown option {other:?}: bench http takes --connections N --threads N \
                 --duration DUR --idle N --workers N --rounds N"
            ),
        }
    }
    Ok(o)
}

/// What one wrk run measured.
pub(super) struct Load {
    pub(super) rps: f64,
    pub(super) requests: u64,
    pub(super) p99_ms: f64,
    pub(super) errors: u64,
}

fn wrk(o: &Options, url: &str) -> Result<Load> {
    println!(
        "  wrk -t{} -c{} -d{} --latency {url}",
        o.threads, o.connections, o.duration
    );
    wrk_load(o.threads, o.connections, &o.duration, url)
}

/// One wrk run (`http://` or `https://`): requests per second, requests, p99 and errors.
pub(super) fn wrk_load(
    threads: usize,
    connections: usize,
    duration: &str,
    url: &str,
) -> Result<Load> {
    let wrk = require_peer("wrk", "wrk");
    let out = Command::new(wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{duration}"))
        .args(["--latency", url])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let word_after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
    };
    let rps: f64 = word_after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p99_ms = word_after("99%").map_or(f64::NAN, |v| duration_ms(&v));
    // "Socket errors: connect 0, read 0, write 0, timeout 0" and "Non-2xx or 3xx responses: N".
    let mut errors = 0;
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors:")) {
        errors += line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum::<u64>();
    }
    if let Some(n) = word_after("Non-2xx or 3xx responses:") {
        errors += n.parse::<u64>().unwrap_or(0);
    }
    Ok(Load {
        rps,
        requests,
        p99_ms,
        errors,
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn duration_ms(v: &str) -> f64 {
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    if let Some(x) = v.strip_suffix("us") {
        num(x) / 1000.0
    } else if let Some(x) = v.strip_suffix("ms") {
        num(x)
    } else if let Some(x) = v.strip_suffix('m') {
        num(x) * 60_000.0
    } else if let Some(x) = v.strip_suffix('s') {
        num(x) * 1000.0
    } else {
        f64::NAN
    }
}

/// utime + stime of a process, in milliseconds; 0 once it is gone.
fn cpu_ms(pid: i32) -> f64 {
    util::process_cpu(pid).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Opens `n` keep-alive connections, each with one GET answered, and keeps them open.
fn idle_connections(addr: SocketAddr, path: &str, n: usize) -> Result<Vec<TcpStream>> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut conns = Vec::with_capacity(n);
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..n {
        let mut s =
            util::connect(addr).with_context(|| format!("open idle connection {i} of {n}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(request.as_bytes())?;
        // One read holds the whole small response on loopback; a missing byte does not matter
        // here, only that the connection was served and is kept.
        let got = s.read(&mut buf).context("read the response")?;
        if got == 0 {
            bail!("connection {i} closed by the server");
        }
        conns.push(s);
    }
    Ok(conns)
}

pub(super) fn write_site(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    // About the size of nginx's default index page.
    let body: String = (0..12)
        .map(|i| format!("<p>line {i:02} of the small page served by both servers</p>\n"))
        .collect();
    std::fs::write(dir.join("index.html"), body)?;
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let limit = raise_fd_limit();
    let bins = util::build_bins_of(true, &["protolab-http"])?;
    let http = bins.join("http");
    let dir = util::root().join("target").join("bench").join("http-run");
    let _ = std::fs::remove_dir_all(&dir);
    let site = dir.join("site");
    write_site(&site)?;

    println!(
        "bench http: wrk keep-alive GET of a {}-byte file, {} connections, {} threads, {} each; \
         servers with {} workers; one machine",
        std::fs::metadata(site.join("index.html"))?.len(),
        o.connections,
        o.threads,
        o.duration,
        o.workers
    );
    let mut table = Table::new(
        "http",
        &["server", "requests/s", "p99 ms", "CPU ms/1k req", "errors"],
    );
    let add = |table: &mut Table, name: &str, l: &Load, cpu: f64| {
        let per_k = cpu / (l.requests.max(1) as f64 / 1000.0);
        table.row(vec![
            name.to_owned(),
            format!("{:.0}", l.rps),
            format!("{:.2}", l.p99_ms),
            format!("{per_k:.1}"),
            l.errors.to_string(),
        ]);
        table.figure(
            name,
            serde_json::json!({
                "requests_per_sec": l.rps, "requests": l.requests, "p99_ms": l.p99_ms,
                "cpu_ms": cpu, "cpu_ms_per_1000": per_k, "errors": l.errors,
            }),
        );
        l.rps
    };

    let start_ours = || {
        let mut c = Command::new(&http);
        c.args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(&site)
            .args(["--threads", &o.workers.to_string()])
            .env("RUST_LOG", "warn");
        Server::start_cmd("http serve", c, 1)
    };

    // The machine is shared: the servers take turns, round after round, and each keeps its best
    // round, so a burst of someone else's load does not decide the comparison.
    let mut ours: Option<(Load, f64)> = None;
    let mut theirs: Option<(Load, f64)> = None;
    let keep_best = |best: &mut Option<(Load, f64)>, run: (Load, f64)| {
        if best.as_ref().is_none_or(|(b, _)| run.0.rps > b.rps) {
            *best = Some(run);
        }
    };
    for round in 1..=o.rounds {
        println!("  round {round} of {}", o.rounds);
        {
            let server = start_ours();
            let url = format!("http://{}/index.html", server.addr("tcp"));
            let before = cpu_ms(server.proc.pid());
            let load = wrk(&o, &url)?;
            let cpu = cpu_ms(server.proc.pid()) - before;
            keep_best(&mut ours, (load, cpu));
        }
        {
            let ndir = dir.join(format!("nginx-{round}"));
            std::fs::create_dir_all(&ndir)?;
            let nginx = start_nginx(&ndir, &site, o.workers);
            let url = format!("http://{}/index.html", nginx.addr);
            let pids = || {
                let mut p = nginx.workers();
                p.push(nginx.proc.pid());
                p
            };
            let before: f64 = pids().into_iter().map(cpu_ms).sum();
            let load = wrk(&o, &url)?;
            let cpu = pids().into_iter().map(cpu_ms).sum::<f64>() - before;
            keep_best(&mut theirs, (load, cpu));
        }
    }
    let (Some((ours, ours_cpu)), Some((theirs, theirs_cpu))) = (ours, theirs) else {
        bail!("--rounds must be at least 1");
    };
    let ours_rps = add(&mut table, "http serve", &ours, ours_cpu);
    let nginx_rps = add(
        &mut table,
        &format!("nginx (worker_processes {})", o.workers),
        &theirs,
        theirs_cpu,
    );
    // ---- Proxy rows --------------------------------------------------------------------------
    // `http proxy` and the Debian caches in front of the same origin are measured here, with the
    // same wrk run, and added as rows of this table (see the proxy's own benchmark code).
    super::http_proxy::rows(
        &mut table,
        &bins,
        &super::http_proxy::Load {
            threads: o.threads,
            connections: o.connections,
            duration: o.duration.clone(),
            ..super::http_proxy::Load::default()
        },
    )?;
    // ---- End of proxy rows -------------------------------------------------------------------
    table.note(format!(
        "http serve/nginx: {:.2}x requests/s  (target >= 1.0x)",
        ours_rps / nginx_rps
    ));
    table.figure("ratio_http_nginx", ours_rps / nginx_rps);

    if o.idle > 0 {
        if limit < o.idle as u64 + 100 {
            bail!(
                "the open-file limit is {limit}; {} idle connections need more (ulimit -Hn)",
                o.idle
            );
        }
        let mib = |k: u64| k as f64 / 1024.0;
        {
            let server = start_ours();
            let before = rss_kib(server.proc.pid());
            let conns = idle_connections(server.addr("tcp"), "/index.html", o.idle)?;
            std::thread::sleep(Duration::from_millis(500));
            let rss = rss_kib(server.proc.pid());
            drop(conns);
            table.note(format!(
                "http serve RSS: {:.1} MiB at rest, {:.1} MiB holding {} idle keep-alive \
                 connections  (target <= 64 MiB)",
                mib(before),
                mib(rss),
                o.idle
            ));
            table.figure("http_rss_idle_kib", rss);
        }
        {
            let ndir = dir.join("nginx-idle");
            std::fs::create_dir_all(&ndir)?;
            let nginx = start_nginx(&ndir, &site, o.workers);
            let total = |pids: Vec<i32>| pids.into_iter().map(rss_kib).sum::<u64>();
            let mut all = nginx.workers();
            all.push(nginx.proc.pid());
            let before = total(all.clone());
            let conns = idle_connections(nginx.addr, "/index.html", o.idle)?;
            std::thread::sleep(Duration::from_millis(500));
            let rss = total(all);
            drop(conns);
            table.note(format!(
                "nginx RSS (master + workers): {:.1} MiB at rest, {:.1} MiB holding {} idle \
                 keep-alive connections",
                mib(before),
                mib(rss),
                o.idle
            ));
            table.figure("nginx_rss_idle_kib", rss);
        }
        table.figure("idle_connections", o.idle as u64);
    }
    table.finish()
}
