//! `cargo xtask bench tcp`: greet against redis-server and the classic Python server, with the
//! same load generator (`greet bench`) in one run; then greet's memory with 10,000 idle
//! connections.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use protolab_lab::output_ok;
use protolab_lab::{Server, raise_fd_limit, require_peer, start_redis};

use crate::util::{self, CPU_COLUMN, CpuUse, ProcCpu, Side, Table, cpu_cell, with_cpu};

struct Options {
    connections: usize,
    duration: String,
    idle: usize,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        connections: 256,
        duration: "10s".into(),
        idle: 10_000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--connections" => o.connections = value()?.parse()?,
            "--duration" => o.duration = value()?.clone(),
            "--idle" => o.idle = value()?.parse()?,
            other => bail!(
                "unknown option {other:?}: bench tcp takes --connections N --duration DUR --idle N"
            ),
        }
    }
    Ok(o)
}

/// Runs `greet bench` against `addr` while measuring the CPU time of the server process `pid`.
fn load(
    greet: &Path,
    o: &Options,
    addr: SocketAddr,
    pid: i32,
    extra: &[&str],
) -> Result<(serde_json::Value, CpuUse)> {
    with_cpu(ProcCpu::Process(pid), || load_only(greet, o, addr, extra))
}

fn load_only(
    greet: &Path,
    o: &Options,
    addr: SocketAddr,
    extra: &[&str],
) -> Result<serde_json::Value> {
    println!(
        "  greet bench --server {addr} --connections {} --duration {} {}",
        o.connections,
        o.duration,
        extra.join(" ")
    );
    let mut out = Command::new(greet);
    out.args(["bench", "--json", "--server", &addr.to_string()])
        .args([
            "--connections",
            &o.connections.to_string(),
            "--duration",
            &o.duration,
        ])
        .args(extra);
    let out = output_ok(&mut out)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let limit = raise_fd_limit();
    let bins = util::build_bins_of(true, &["protolab-greet"])?;
    let greet = bins.join("greet");
    let python = require_peer("python3", "python3");
    let dir = tempfile_dir()?;

    println!(
        "bench tcp: {} connections, {} each, same load generator, one machine",
        o.connections, o.duration
    );
    let mut table = Table::new(
        "tcp",
        &[
            "server",
            "requests/s",
            CPU_COLUMN,
            "p50 us",
            "p99 us",
            "errors",
        ],
    );
    let mut sides = Vec::new();
    let mut add = |table: &mut Table, name: &str, (r, cpu): (serde_json::Value, CpuUse)| {
        let x = r["requests_per_sec"].as_f64().unwrap_or(0.0);
        let per_k = cpu.ms_per_thousand(r["requests"].as_u64().unwrap_or(0));
        sides.push(Side {
            per_sec: x,
            cpu_ms_per_thousand: per_k,
        });
        table.row(vec![
            name.to_owned(),
            format!("{x:.0}"),
            cpu_cell(per_k),
            r["latency_us"]["p50"].to_string(),
            r["latency_us"]["p99"].to_string(),
            (r["errors"].as_u64().unwrap_or(0) + r["connect_errors"].as_u64().unwrap_or(0))
                .to_string(),
        ]);
        let mut r = r;
        r["server_cpu_ms_per_1k"] = per_k.into();
        r["server_cpu_s"] = cpu.cpu.as_secs_f64().into();
        r["server_cores_busy"] = cpu.cores().into();
        table.figure(name, r);
    };

    {
        let server = Server::start_cmd(
            "greet serve",
            {
                let mut c = Command::new(&greet);
                c.args(["serve", "--listen", "127.0.0.1:0"])
                    .env("RUST_LOG", "warn");
                c
            },
            1,
        );
        let r = load(
            &greet,
            &o,
            server.addr("tcp"),
            server.proc.pid(),
            &["--skip-banner"],
        )?;
        add(&mut table, "greet serve", r);
    }
    {
        let (redis, addr) = start_redis(&dir);
        let r = load(&greet, &o, addr, redis.pid(), &["--line", "PING"])?;
        add(&mut table, "redis-server (inline PING)", r);
    }
    {
        let script = util::root().join("tests/test-data/greet/seed_server.py");
        let mut c = Command::new(&python);
        c.arg(script).args(["127.0.0.1", "0", "0"]);
        let server = Server::start_cmd("seed server (Python 3)", c, 1);
        let r = load(&greet, &o, server.addr("tcp"), server.proc.pid(), &[])?;
        add(&mut table, "seed server, Python 3, no sleep", r);
    }
    let (ours, redis, seed) = (sides[0], sides[1], sides[2]);
    table.ratios(
        "greet_redis",
        "greet / redis-server",
        ours,
        redis,
        "target >= 1.0x throughput; CPU per request below 1.0x is better",
    );
    table.ratios("greet_seed", "greet / seed server", ours, seed, "");
    table.note(
        "The load generator shares both cores with the server: requests/s says as much about \
         who got the CPU as about the server; CPU per 1,000 requests (utime + stime of the \
         server process over the run) is the steadier figure.",
    );

    // Memory: many idle connections, each holding a task, a small buffer and a socket.
    if o.idle > 0 {
        if limit < o.idle as u64 + 100 {
            bail!(
                "the open-file limit is {limit}; {} idle connections need more (ulimit -Hn)",
                o.idle
            );
        }
        let server = Server::start_cmd(
            "greet serve",
            {
                let mut c = Command::new(&greet);
                c.args([
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--max-connections",
                    "20000",
                ])
                .env("RUST_LOG", "warn");
                c
            },
            1,
        );
        let addr = server.addr("tcp");
        let before = util::memory(server.proc.pid())?.rss_kib;
        let mut conns = Vec::with_capacity(o.idle);
        for _ in 0..o.idle {
            let mut s = util::connect(addr).context("open idle connection")?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut welcome = [0u8; 9];
            s.read_exact(&mut welcome).context("read welcome")?;
            conns.push(s);
        }
        std::thread::sleep(Duration::from_millis(500));
        let util::Memory {
            rss_kib: rss,
            peak_kib: hwm,
        } = util::memory(server.proc.pid())?;
        drop(conns);
        let mib = |k: u64| k as f64 / 1024.0;
        table.note(format!(
            "greet serve RSS: {:.1} MiB idle, {:.1} MiB holding {} idle connections (peak {:.1} MiB; target <= 64 MiB)",
            mib(before),
            mib(rss),
            o.idle,
            mib(hwm)
        ));
        table.figure("rss_idle_connections_kib", rss);
        table.figure("rss_peak_kib", hwm);
        table.figure("idle_connections", o.idle as u64);
    }
    table.finish()
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = util::root().join("target").join("bench").join("tcp-run");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
