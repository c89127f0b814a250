//! `cargo xtask bench inbox`: the web inbox over large Maildirs, and what it costs SMTP intake.
//!
//! For each size (10,000 and 100,000 messages by default) the bench writes a Maildir itself
//! (kept under target/bench/ and reused), starts `smtp web` on it and measures the time from
//! the start to the first answered `GET /api/v1/messages`, the list's latency under wrk, the
//! search's latency, and the server's RSS. Then smtp-source delivers into `smtp serve` with the
//! inbox off and on, in turns, to see what indexing costs durable delivery.
//!
//! Targets: first list <= 1 s at 100,000; list p99 <= 20 ms; RSS <= 128 MiB at 100,000;
//! intake with the inbox on within 5% of it off.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use protolab_lab::process::drain;
use protolab_lab::sample::rss_kib;
use protolab_lab::{Proc, Server, require_peer};

use crate::util::{self, Table};

struct Options {
    sizes: Vec<usize>,
    duration: String,
    messages: u32,
    rounds: u32,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        sizes: vec![10_000, 100_000],
        duration: "5s".into(),
        messages: 2000,
        rounds: 2,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context("a value after the option");
        match a.as_str() {
            "--sizes" => {
                o.sizes = value()?
                    .split(',')
                    .map(|s| s.parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?;
            }
            "--duration" => o.duration = value()?.clone(),
            "--messages" => o.messages = value()?.parse().context("--messages")?,
            "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
            other => bail!(
                "unknown option {other:?}: bench inbox takes --sizes N,N --duration 5s \
                 --messages N --rounds N"
            ),
        }
    }
    Ok(o)
}

/// Writes `n` messages into a fresh Maildir (every tenth in cur/, read), unless one of that
/// size is there already.
fn generate(dir: &Path, n: usize) -> Result<()> {
    let marker = dir.join(".generated");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&n.to_string()) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let start = Instant::now();
    let base = 1_700_000_000u64;
    for i in 0..n {
        let name = format!("{}.M{:06}P1Q{i}.bench", base + i as u64, i % 1_000_000);
        let path = if i % 10 == 0 {
            dir.join("cur").join(format!("{name}:2,S"))
        } else {
            dir.join("new").join(name)
        };
        let body = format!(
            "Return-Path: <user{u}@example.test>\r\nDelivered-To: bob@example.test\r\n\
             Received: from client.example.test ([127.0.0.1])\r\n\tby mx.bench (protolab-smtp) \
             with ESMTP id {i}\r\n\tfor <bob@example.test>;\r\n\tTue, 14 Nov 2023 22:13:20 +0000\r\n\
             From: User {u} <user{u}@example.test>\r\nTo: Bob <bob@example.test>\r\n\
             Subject: {kind} number {i}\r\nMessage-ID: <{i}@bench.example.test>\r\n\
             Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n{}",
            "A line of the body that is long enough to look like a real message's text.\r\n"
                .repeat(16),
            u = i % 97,
            kind = if i % 13 == 0 { "invoice" } else { "note" },
        );
        std::fs::write(path, body)?;
    }
    std::fs::write(&marker, n.to_string())?;
    println!(
        "  wrote {n} messages into {} in {:.1} s",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One GET on a fresh connection; the status.
fn get(addr: SocketAddr, target: &str) -> Option<u16> {
    let mut s = util::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    std::str::from_utf8(out.get(9..12)?).ok()?.parse().ok()
}

/// Starts a server and returns it with the address it announced first; its later output is
/// drained, so it never blocks on a full pipe.
fn spawn(bin: &Path, args: &[&str], sockets: usize) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("RUST_LOG", "warn");
    let Server {
        proc,
        listening,
        stdout,
    } = Server::start_cmd(&bin.display().to_string(), cmd, sockets);
    drain(stdout);
    (proc, listening[0].1)
}

fn stop(mut proc: Proc) {
    proc.terminate(Duration::from_secs(60));
}

/// wrk's p50 and p99 in ms and its requests per second.
fn wrk(url: &str, duration: &str) -> Result<(f64, f64, f64)> {
    let wrk = require_peer("wrk", "wrk");
    println!("  wrk -t2 -c16 -d{duration} --latency {url}");
    let out = Command::new(wrk)
        .args(["-t2", "-c16", &format!("-d{duration}"), "--latency", url])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("Non-2xx") {
        bail!("wrk failed or saw errors: {text}");
    }
    let after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next().map(str::to_owned))
    };
    let ms = |v: Option<String>| {
        let v = v.unwrap_or_default();
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        if let Some(x) = v.strip_suffix("us") {
            num(x) / 1000.0
        } else if let Some(x) = v.strip_suffix("ms") {
            num(x)
        } else if let Some(x) = v.strip_suffix('s') {
            num(x) * 1000.0
        } else {
            f64::NAN
        }
    };
    let rps = after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    Ok((ms(after("50%")), ms(after("99%")), rps))
}

/// smtp-source into `smtp serve` (with `extra` arguments): messages per second.
fn intake(bin: &Path, dir: &Path, extra: &[&str], messages: u32) -> Result<f64> {
    let source = require_peer("smtp-source", "postfix");
    let _ = std::fs::remove_dir_all(dir);
    let md = dir.to_str().context("UTF-8 path")?;
    let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--maildir", md];
    args.extend_from_slice(extra);
    let (child, addr) = spawn(bin, &args, 1 + usize::from(!extra.is_empty()));
    let start = Instant::now();
    let out = Command::new(source)
        .args(["-s", "20", "-m", &messages.to_string(), "-l", "1024"])
        .args(["-f", "bench@example.test", "-t", "sink@example.test"])
        .arg(addr.to_string())
        .output()
        .context("run smtp-source")?;
    let secs = start.elapsed().as_secs_f64();
    stop(child);
    if !out.status.success() {
        bail!(
            "smtp-source failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = std::fs::read_dir(dir.join("new"))?.count();
    if stored != messages as usize {
        bail!("{stored} of {messages} messages stored");
    }
    Ok(f64::from(messages) / secs)
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let bins = util::build_bins_of(true, &["protolab-smtp"])?;
    let smtp = bins.join("smtp");
    let work: PathBuf = util::root().join("target").join("bench");
    std::fs::create_dir_all(&work)?;
    let mut table = Table::new(
        "inbox",
        &[
            "messages",
            "first list ms",
            "list p50 ms",
            "list p99 ms",
            "list req/s",
            "search ms",
            "RSS MiB",
        ],
    );
    for &n in &o.sizes {
        let dir = work.join(format!("inbox-{n}"));
        generate(&dir, n)?;
        let md = dir.to_str().context("UTF-8 path")?;
        let started = Instant::now();
        let (child, addr) = spawn(&smtp, &["web", "--maildir", md, "--http", "127.0.0.1:0"], 1);
        let status = get(addr, "/api/v1/messages");
        let first = started.elapsed().as_secs_f64() * 1000.0;
        if status != Some(200) {
            stop(child);
            bail!("the first list answered {status:?}");
        }
        let (p50, p99, rps) = wrk(&format!("http://{addr}/api/v1/messages"), &o.duration)?;
        let mut searches: Vec<f64> = (0..20)
            .map(|i| {
                let t = Instant::now();
                let _ = get(
                    addr,
                    &format!("/api/v1/search?query=from%3Auser{i}+subject%3Ainvoice"),
                );
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        searches.sort_by(f64::total_cmp);
        let search = searches[searches.len() / 2];
        let rss = rss_kib(child.pid()) as f64 / 1024.0;
        stop(child);
        table.row(vec![
            n.to_string(),
            format!("{first:.0}"),
            format!("{p50:.2}"),
            format!("{p99:.2}"),
            format!("{rps:.0}"),
            format!("{search:.1}"),
            format!("{rss:.1}"),
        ]);
        table.figure(&format!("first_list_ms_{n}"), first);
        table.figure(&format!("list_p99_ms_{n}"), p99);
        table.figure(&format!("search_median_ms_{n}"), search);
        table.figure(&format!("rss_mib_{n}"), rss);
    }
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        println!("  intake round {}: inbox off, then on", round + 1);
        let a = intake(&smtp, &work.join("inbox-intake"), &[], o.messages)?;
        let b = intake(
            &smtp,
            &work.join("inbox-intake"),
            &["--http", "127.0.0.1:0"],
            o.messages,
        )?;
        println!("    off {a:.0} msg/s, on {b:.0} msg/s");
        off.push(a);
        on.push(b);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (off, on) = (mean(&off), mean(&on));
    table.note(format!(
        "SMTP intake (smtp-source -s 20 -m {} -l 1024, durable): inbox off {off:.0} msg/s, on {on:.0} msg/s ({:+.1}%)",
        o.messages,
        (on / off - 1.0) * 100.0
    ));
    table.note("targets: first list <= 1000 ms at 100,000; list p99 <= 20 ms; RSS <= 128 MiB at 100,000; intake within 5%");
    table.figure("intake_off_per_s", off);
    table.figure("intake_on_per_s", on);
    table.finish()
}
