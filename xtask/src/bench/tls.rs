//! `cargo xtask bench tls`: what TLS costs, ours against nginx, in one run with one certificate
//! (ECDSA P-256 from a lab CA) and load from tools that are not ours:
//!
//! - HTTPS requests on keep-alive connections: `http serve --tls-cert` against nginx with
//!   `listen ... ssl` serving the same file, under wrk;
//! - full handshakes: the same two servers under `openssl s_time -new` (a new connection and a
//!   new session for every handshake, never resumed), with session resumption also switched off
//!   in both servers (`--tls-no-resumption`; nginx `ssl_session_cache off; ssl_session_tickets
//!   off`), so neither spends anything on tickets or a session cache;
//! - SMTP with STARTTLS against plain SMTP into the same durable Maildir, from Python's smtplib
//!   with a new connection per message (smtp-source has no STARTTLS): the cost of TLS per
//!   message.
//!
//! Every row has the server's CPU time per 1,000 requests, handshakes or messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use protolab_lab::http_peers::start_nginx_tls;
use protolab_lab::{Server, raise_fd_limit, require_peer};

use super::http::{Load, write_site, wrk_load};
use super::smtp::smtplib_seconds;
use crate::util::{self, CPU_COLUMN, CpuUse, ProcCpu, Side, Table, cpu_cell, with_cpu};

struct Options {
    /// wrk's duration per server.
    duration: String,
    connections: usize,
    threads: usize,
    /// Seconds of `openssl s_time` per server.
    handshake_secs: u32,
    /// `openssl s_time` processes at once (each one connection at a time).
    clients: usize,
    /// Worker threads of `http serve`, worker processes of nginx.
    workers: usize,
    /// Messages per SMTP row.
    messages: u32,
    /// Alternating rounds of each HTTPS measurement.
    rounds: usize,
    json: bool,
}

const USAGE: &str = "bench tls takes --duration DUR --connections N --threads N --handshake-seconds N \
                     --clients N --workers N --messages N --rounds N --json";

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        duration: "2s".into(),
        connections: 128,
        threads: 2,
        handshake_secs: 2,
        clients: 2,
        workers: 2,
        messages: 1000,
        rounds: 5,
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = value()?.clone(),
            "--connections" => o.connections = value()?.parse()?,
            "--threads" => o.threads = value()?.parse()?,
            "--handshake-seconds" => o.handshake_secs = value()?.parse()?,
            "--clients" => o.clients = value()?.parse()?,
            "--workers" => o.workers = value()?.parse()?,
            "--messages" => o.messages = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            "--json" => o.json = true,
            other => bail!("unknown option {other:?}: {USAGE}"),
        }
    }
    if o.clients == 0 || o.handshake_secs == 0 || o.messages == 0 || o.rounds == 0 {
        bail!("--clients, --handshake-seconds, --messages and --rounds must be at least 1");
    }
    Ok(o)
}

/// The lab certificate both servers present: a lab CA and a server certificate (ECDSA P-256)
/// for localhost and 127.0.0.1, as `cargo xtask lab-ca` makes them.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs(dir: &Path) -> Result<Certs> {
    let (ca, id) = protolab_transport::tls::lab_ca().context("make the lab certificates")?;
    let c = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&c.ca, ca.cert_pem())?;
    std::fs::write(&c.cert, id.cert_pem)?;
    std::fs::write(&c.key, id.key_pem)?;
    Ok(c)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a path that is not UTF-8")
}

/// `clients` runs of `openssl s_time -new` at once for `secs` seconds: full handshakes per
/// second over all of them (counted by s_time, timed here) and the total.
fn s_time(addr: &str, clients: usize, secs: u32) -> Result<(f64, u64)> {
    let openssl = require_peer("openssl", "openssl");
    let start = Instant::now();
    let children = (0..clients)
        .map(|_| {
            Command::new(&openssl)
                .args(["s_time", "-connect", addr, "-new", "-time"])
                .arg(secs.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("run openssl s_time")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0u64;
    for child in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "openssl s_time against {addr} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // "1234 connections in 4.21s; 293.11 connections/user sec, bytes read 0"
        let n: u64 = text
            .lines()
            .find(|l| l.contains(" connections in ") && l.contains("user sec"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no connection count in s_time's output: {text}"))?;
        total += n;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((total as f64 / secs, total))
}

/// One row: who, what was counted, the rate, p99 (if measured), CPU per 1,000, errors.
fn row(table: &mut Table, who: &str, what: &str, rate: f64, p99_ms: Option<f64>, cpu_per_k: f64) {
    table.row(vec![
        who.into(),
        what.into(),
        format!("{rate:.0}"),
        p99_ms.map_or_else(|| "-".into(), |p| format!("{p:.2}")),
        cpu_cell(cpu_per_k),
    ]);
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    raise_fd_limit();
    let bins = util::build_bins_of(true, &["protolab-http", "protolab-smtp"])?;
    let python = require_peer("python3", "python3");
    let dir = util::root().join("target").join("bench").join("tls-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let c = certs(&dir)?;
    let site = dir.join("site");
    write_site(&site)?;
    let body = std::fs::metadata(site.join("index.html"))?.len();
    let started = Instant::now();
    eprintln!(
        "bench tls: one ECDSA P-256 lab certificate for both servers; http serve with {w} \
         threads, nginx with {w} workers; one machine",
        w = o.workers
    );

    let mut table = Table::new(
        "tls",
        &["server", "counted", "rate/s", "p99 ms", CPU_COLUMN],
    );
    // Both servers run for the whole measurement and take turns, round after round: the
    // machine is shared, and a burst of someone else's load then hits both, not one. Each
    // keeps its best round's rate; CPU per 1,000 is over all its rounds.
    let ours = {
        let mut cmd = Command::new(bins.join("http"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(&site)
            .args(["--threads", &o.workers.to_string()])
            .args([
                "--tls-cert",
                path_str(&c.cert)?,
                "--tls-key",
                path_str(&c.key)?,
            ])
            .arg("--tls-no-resumption");
        Server::start_cmd("http serve", cmd, 1)
    };
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir_all(&nginx_dir)?;
    let nginx = start_nginx_tls(&nginx_dir, &site, o.workers, &c.cert, &c.key);
    let servers = [
        (
            format!("http serve --tls ({} threads)", o.workers),
            ours.addr("tls").to_string(),
            ProcCpu::Process(ours.proc.pid()),
        ),
        (
            format!("nginx ssl ({} workers)", o.workers),
            nginx.addr.to_string(),
            ProcCpu::Tree(nginx.proc.pid()),
        ),
    ];
    let side = |rate: f64, per_k: f64| Side {
        per_sec: rate,
        cpu_ms_per_thousand: per_k,
    };

    // ---- HTTPS requests on keep-alive connections (wrk) ----------------------------------
    eprintln!(
        "HTTPS keep-alive GET of a {body}-byte file: wrk -t{} -c{} -d{}, {} rounds",
        o.threads, o.connections, o.duration, o.rounds
    );
    // Per server: the best round, and requests and CPU over all rounds.
    let mut best: [Option<Load>; 2] = [None, None];
    let mut totals = [(0u64, CpuUse::default()); 2];
    for round in 1..=o.rounds {
        for (i, (name, addr, of)) in servers.iter().enumerate() {
            let url = format!("https://{addr}/index.html");
            let (load, cpu) = with_cpu(*of, || {
                wrk_load(o.threads, o.connections, &o.duration, &url)
            })?;
            eprintln!(
                "  round {round}: {name}: {:.0} requests/s, {} errors",
                load.rps, load.errors
            );
            if load.errors > 0 {
                bail!("wrk saw {} errors against {name}", load.errors);
            }
            totals[i] = (totals[i].0 + load.requests, totals[i].1.add(cpu));
            if best[i].as_ref().is_none_or(|b| load.rps > b.rps) {
                best[i] = Some(load);
            }
        }
    }
    let ka = "HTTPS requests, wrk keep-alive";
    let mut ka_sides = Vec::new();
    for (i, (name, _, _)) in servers.iter().enumerate() {
        let load = best[i].take().context("--rounds must be at least 1")?;
        let per_k = totals[i].1.ms_per_thousand(totals[i].0);
        row(
            &mut table,
            &format!("{name}, keep-alive"),
            ka,
            load.rps,
            Some(load.p99_ms),
            per_k,
        );
        ka_sides.push(side(load.rps, per_k));
    }

    // ---- Full handshakes (openssl s_time -new) --------------------------------------------
    eprintln!(
        "full handshakes, no resumption on either side: {} x openssl s_time -new -time {}, {} \
         rounds",
        o.clients, o.handshake_secs, o.rounds
    );
    let mut best = [0f64; 2];
    let mut totals = [(0u64, CpuUse::default()); 2];
    for round in 1..=o.rounds {
        for (i, (name, addr, of)) in servers.iter().enumerate() {
            let ((rate, n), cpu) = with_cpu(*of, || s_time(addr, o.clients, o.handshake_secs))?;
            eprintln!("  round {round}: {name}: {rate:.0} handshakes/s");
            totals[i] = (totals[i].0 + n, totals[i].1.add(cpu));
            best[i] = best[i].max(rate);
        }
    }
    let hs = format!("full handshakes, {} x s_time -new", o.clients);
    let mut hs_sides = Vec::new();
    for (i, (name, _, _)) in servers.iter().enumerate() {
        let per_k = totals[i].1.ms_per_thousand(totals[i].0);
        row(
            &mut table,
            &format!("{name}, handshakes"),
            &hs,
            best[i],
            None,
            per_k,
        );
        hs_sides.push(side(best[i], per_k));
    }
    drop(ours);
    drop(nginx);

    // ---- SMTP: STARTTLS against plain -------------------------------------------------------
    eprintln!(
        "SMTP: {} messages each, smtplib in 20 threads, a new connection per message",
        o.messages
    );
    let maildir = dir.join("maildir");
    let mut smtp = Command::new(bins.join("smtp"));
    smtp.args(["serve", "--listen", "127.0.0.1:0", "--maildir"])
        .arg(&maildir)
        .args(["--hostname", "bench.test", "--max-connections", "1100"])
        .args([
            "--tls-cert",
            path_str(&c.cert)?,
            "--tls-key",
            path_str(&c.key)?,
        ])
        .env("RUST_LOG", "warn");
    let server = Server::start_cmd("smtp serve", smtp, 1);
    let port = server.addr("tcp").port().to_string();
    let mut smtp_sides = Vec::new();
    for mode in ["plain", "starttls"] {
        eprintln!("  python3 smtplib loop: {mode}");
        let (secs, cpu) = with_cpu(ProcCpu::Process(server.proc.pid()), || {
            smtplib_seconds(&python, &port, path_str(&c.ca)?, mode, o.messages)
        })?;
        let rate = f64::from(o.messages) / secs;
        let per_k = cpu.ms_per_thousand(u64::from(o.messages));
        eprintln!("    {rate:.0} messages/s ({secs:.2} s)");
        row(
            &mut table,
            &format!("smtp serve, {mode}"),
            "messages, smtplib, Maildir fsync",
            rate,
            None,
            per_k,
        );
        smtp_sides.push(side(rate, per_k));
    }
    let stored = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.count())
        .unwrap_or(0);
    if stored != 2 * o.messages as usize {
        bail!("smtp serve stored {stored} of {} messages", 2 * o.messages);
    }
    drop(server);

    table.ratios(
        "https_keepalive",
        "http serve/nginx, HTTPS keep-alive requests",
        ka_sides[0],
        ka_sides[1],
        "target >= 1.0x",
    );
    table.ratios(
        "handshakes",
        "http serve/nginx, full handshakes",
        hs_sides[0],
        hs_sides[1],
        "target >= 1.0x",
    );
    table.ratios(
        "starttls_plain",
        "SMTP STARTTLS/plain, a new connection and handshake per message",
        smtp_sides[1],
        smtp_sides[0],
        "the cost of TLS",
    );
    table.note(format!(
        "rates: each server's best of {} alternating rounds (wrk -t{} -c{} -d{}; s_time {} s); \
         CPU per 1,000 over all rounds. TLS 1.3, X25519, ECDSA P-256 on both. The load shares \
         the cores with the server, so CPU per 1,000 is the steadier figure",
        o.rounds, o.threads, o.connections, o.duration, o.handshake_secs
    ));
    for (k, v) in [
        ("ours_keepalive_rps", ka_sides[0].per_sec),
        ("nginx_keepalive_rps", ka_sides[1].per_sec),
        ("ours_handshakes_per_sec", hs_sides[0].per_sec),
        ("nginx_handshakes_per_sec", hs_sides[1].per_sec),
        ("smtp_plain_msgs_per_sec", smtp_sides[0].per_sec),
        ("smtp_starttls_msgs_per_sec", smtp_sides[1].per_sec),
        ("seconds", started.elapsed().as_secs_f64()),
    ] {
        table.figure(k, v);
    }
    eprintln!("  done in {:.0} s", started.elapsed().as_secs_f64());
    table.finish_as(o.json)
}
