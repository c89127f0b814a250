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
use protolab_tests::http_peers::start_nginx_tls;
use protolab_tests::{Server, raise_fd_limit, require_peer};

use super::http::{Load, write_site, wrk_load};
use super::smtp::smtplib_seconds;
use crate::util::{self, CPU_COLUMN, ProcCpu, Side, Table, cpu_cell, with_cpu};

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
    json: bool,
}

const USAGE: &str = "bench tls takes --duration DUR --connections N --threads N --handshake-seconds N \
                     --clients N --workers N --messages N --json";

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        duration: "8s".into(),
        connections: 128,
        threads: 2,
        handshake_secs: 6,
        clients: 2,
        workers: 2,
        messages: 1000,
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
            "--json" => o.json = true,
            other => bail!("unknown option {other:?}: {USAGE}"),
        }
    }
    if o.clients == 0 || o.handshake_secs == 0 || o.messages == 0 {
        bail!("--clients, --handshake-seconds and --messages must be at least 1");
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
    eprintln!("  {clients} x openssl s_time -connect {addr} -new -time {secs}");
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
    let start_ours = || -> Result<Server> {
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
            .arg("--tls-no-resumption")
            .env("RUST_LOG", "warn");
        Ok(Server::start_cmd("http serve", cmd, 1))
    };
    let nginx_dir = |what: &str| -> Result<PathBuf> {
        let d = dir.join(format!("nginx-{what}"));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    let side = |rate: f64, per_k: f64| Side {
        per_sec: rate,
        cpu_ms_per_thousand: per_k,
    };

    // ---- HTTPS requests on keep-alive connections (wrk) ----------------------------------
    let keepalive = |url: &str, of: ProcCpu| -> Result<(Load, f64)> {
        eprintln!(
            "  wrk -t{} -c{} -d{} --latency {url}",
            o.threads, o.connections, o.duration
        );
        let (load, cpu) = with_cpu(of, || wrk_load(o.threads, o.connections, &o.duration, url))?;
        eprintln!("    {:.0} requests/s, {} errors", load.rps, load.errors);
        if load.errors > 0 {
            bail!("wrk saw {} errors against {url}", load.errors);
        }
        let per_k = cpu.ms_per_thousand(load.requests);
        Ok((load, per_k))
    };
    eprintln!("HTTPS keep-alive GET of a {body}-byte file");
    let (ours_ka, ours_ka_cpu) = {
        let server = start_ours()?;
        let url = format!("https://{}/index.html", server.addr("tls"));
        keepalive(&url, ProcCpu::Process(server.proc.pid()))?
    };
    let (nginx_ka, nginx_ka_cpu) = {
        let nginx = start_nginx_tls(&nginx_dir("keepalive")?, &site, o.workers, &c.cert, &c.key);
        let url = format!("https://{}/index.html", nginx.addr);
        keepalive(&url, ProcCpu::Tree(nginx.proc.pid()))?
    };
    let ours_name = format!("http serve --tls ({} threads)", o.workers);
    let nginx_name = format!("nginx ssl ({} workers)", o.workers);
    let ka = "HTTPS requests, wrk keep-alive";
    row(
        &mut table,
        &format!("{ours_name}, keep-alive"),
        ka,
        ours_ka.rps,
        Some(ours_ka.p99_ms),
        ours_ka_cpu,
    );
    row(
        &mut table,
        &format!("{nginx_name}, keep-alive"),
        ka,
        nginx_ka.rps,
        Some(nginx_ka.p99_ms),
        nginx_ka_cpu,
    );

    // ---- Full handshakes (openssl s_time -new) --------------------------------------------
    eprintln!("full handshakes, no resumption on either side");
    let handshakes = |addr: String, of: ProcCpu| -> Result<(f64, f64)> {
        let ((rate, n), cpu) = with_cpu(of, || s_time(&addr, o.clients, o.handshake_secs))?;
        eprintln!("    {rate:.0} handshakes/s ({n} in all)");
        Ok((rate, cpu.ms_per_thousand(n)))
    };
    let (ours_hs, ours_hs_cpu) = {
        let server = start_ours()?;
        handshakes(
            server.addr("tls").to_string(),
            ProcCpu::Process(server.proc.pid()),
        )?
    };
    let (nginx_hs, nginx_hs_cpu) = {
        let nginx = start_nginx_tls(&nginx_dir("handshakes")?, &site, o.workers, &c.cert, &c.key);
        handshakes(nginx.addr.to_string(), ProcCpu::Tree(nginx.proc.pid()))?
    };
    let hs = format!("full handshakes, {} x s_time -new", o.clients);
    row(
        &mut table,
        &format!("{ours_name}, handshakes"),
        &hs,
        ours_hs,
        None,
        ours_hs_cpu,
    );
    row(
        &mut table,
        &format!("{nginx_name}, handshakes"),
        &hs,
        nginx_hs,
        None,
        nginx_hs_cpu,
    );

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
        side(ours_ka.rps, ours_ka_cpu),
        side(nginx_ka.rps, nginx_ka_cpu),
        "target >= 1.0x",
    );
    table.ratios(
        "handshakes",
        "http serve/nginx, full handshakes",
        side(ours_hs, ours_hs_cpu),
        side(nginx_hs, nginx_hs_cpu),
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
        "{ka}: -t{} -c{} -d{}; handshakes: TLS 1.3, X25519, ECDSA P-256, {} s each; the load \
         shares the 2 cores with the server, so CPU per 1,000 is the steadier figure",
        o.threads, o.connections, o.duration, o.handshake_secs
    ));
    for (k, v) in [
        ("ours_keepalive_rps", ours_ka.rps),
        ("nginx_keepalive_rps", nginx_ka.rps),
        ("ours_handshakes_per_sec", ours_hs),
        ("nginx_handshakes_per_sec", nginx_hs),
        ("smtp_plain_msgs_per_sec", smtp_sides[0].per_sec),
        ("smtp_starttls_msgs_per_sec", smtp_sides[1].per_sec),
        ("seconds", started.elapsed().as_secs_f64()),
    ] {
        table.figure(k, v);
    }
    eprintln!("  done in {:.0} s", started.elapsed().as_secs_f64());
    table.finish_as(o.json)
}
