//! `cargo xtask bench smtp`: `smtp serve` (Maildir, fsync before every 250) against a private
//! Postfix delivering durably into a Maildir, against the disk's own floor for the same durable
//! steps with no SMTP at all, and against Postfix's smtp-sink and aiosmtpd (both store nothing),
//! driven by the same `smtp-source` load in one run, with each server's CPU time per 1,000
//! messages; then `smtp serve`'s peak memory receiving a 25 MiB message and serving 1,000
//! sessions at once.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use protolab_lab::{Proc, Server, free_port, is_root, raise_fd_limit, require_peer, wait_tcp};

use super::maildir;
use crate::util::{self, CPU_COLUMN, CpuClock, CpuUse, ProcCpu, Side, Table, cpu_cell, with_cpu};

struct Options {
    sessions: u32,
    messages: u32,
    size: u32,
    concurrent: usize,
    tls_messages: u32,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        sessions: 20,
        messages: 5000,
        size: 1024,
        concurrent: 1000,
        tls_messages: 2000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sessions" => o.sessions = value()?.parse()?,
            "--messages" => o.messages = value()?.parse()?,
            "--size" => o.size = value()?.parse()?,
            "--concurrent" => o.concurrent = value()?.parse()?,
            "--tls-messages" => o.tls_messages = value()?.parse()?,
            other => bail!(
                "unknown option {other:?}: bench smtp takes --sessions N --messages N --size OCTETS --concurrent N --tls-messages N"
            ),
        }
    }
    Ok(o)
}

/// Runs smtp-source against `addr` with the CPU time of the server `of` measured around it:
/// messages per second, seconds, and the server's CPU.
fn load_cpu(
    source: &Path,
    o: &Options,
    addr: SocketAddr,
    of: ProcCpu,
) -> Result<(f64, f64, CpuUse)> {
    let ((rate, secs), cpu) = with_cpu(of, || load(source, o, addr))?;
    Ok((rate, secs, cpu))
}

/// One table row: who, what it stores, its rate, its seconds and its CPU per 1,000 messages.
fn row(table: &mut Table, who: &str, stores: &str, rate: f64, secs: f64, cpu_per_k: f64) {
    table.row(vec![
        who.into(),
        stores.into(),
        format!("{rate:.0}"),
        format!("{secs:.2}"),
        cpu_cell(cpu_per_k),
    ]);
}

/// Runs smtp-source against `addr` and returns messages per second.
fn load(source: &Path, o: &Options, addr: SocketAddr) -> Result<(f64, f64)> {
    let args = [
        "-s".to_owned(),
        o.sessions.to_string(),
        "-m".to_owned(),
        o.messages.to_string(),
        "-l".to_owned(),
        o.size.to_string(),
        "-f".to_owned(),
        "bench@example.test".to_owned(),
        "-t".to_owned(),
        "sink@example.test".to_owned(),
        addr.to_string(),
    ];
    println!("  smtp-source {}", args.join(" "));
    let start = Instant::now();
    let out = Command::new(source)
        .args(&args)
        .output()
        .context("run smtp-source")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "smtp-source against {addr} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rate = f64::from(o.messages) / secs;
    println!("    {rate:.0} messages/s ({secs:.2} s)");
    Ok((rate, secs))
}

/// Python's smtplib sending N messages from 20 threads, each message on a new connection,
/// plaintext or with STARTTLS (trusting the server's lab CA); prints the seconds taken.
const SMTPLIB_LOOP: &str = r#"
import smtplib, ssl, sys, threading, time
port, ca, mode, total = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
context = ssl.create_default_context(cafile=ca)
body = b"Subject: bench\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10
lock = threading.Lock()
left = [total]
errors = []
def worker():
    while True:
        with lock:
            if left[0] == 0 or errors:
                return
            left[0] -= 1
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                if mode == "starttls":
                    s.starttls(context=context)
                s.sendmail("bench@example.test", ["sink@example.test"], body)
        except Exception as e:
            errors.append(repr(e))
start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(20)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit("failed: " + errors[0])
print(time.monotonic() - start)
"#;

/// Runs [`SMTPLIB_LOOP`] against `port` (`mode` is `plain` or `starttls`, trusting `ca`) and
/// returns the seconds it took to send `messages`.
pub(super) fn smtplib_seconds(
    python: &Path,
    port: &str,
    ca: &str,
    mode: &str,
    messages: u32,
) -> Result<f64> {
    let out = Command::new(python)
        .args(["-c", SMTPLIB_LOOP, port, ca, mode, &messages.to_string()])
        .output()
        .context("run the smtplib loop")?;
    if !out.status.success() {
        bail!(
            "the smtplib {mode} loop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("the smtplib loop prints its seconds")
}

/// Reads a peer's standard output to its end, so that a chatty peer never blocks on a full pipe.
fn drain(proc: &mut Proc) {
    protolab_lab::process::drain(proc.stdout());
}

fn start_smtp(smtp: &Path, maildir: &Path, extra: &[&str]) -> Result<Server> {
    let _ = std::fs::remove_dir_all(maildir);
    let mut c = Command::new(smtp);
    c.args(["serve", "--listen", "127.0.0.1:0", "--maildir"])
        .arg(maildir)
        .args(["--hostname", "bench.test"])
        .args(extra)
        .env("RUST_LOG", "warn");
    Ok(Server::start_cmd("smtp serve", c, 1))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A venv under target/ with aiosmtpd from PyPI, made once.
fn aiosmtpd_python(python: &Path, dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("aiosmtpd-venv");
    let bin = venv.join("bin").join("python");
    let ready = Command::new(&bin)
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        println!("  creating {} with aiosmtpd from PyPI", venv.display());
        let ok = Command::new(python)
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?
            .success()
            && Command::new(&bin)
                .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
                .status()?
                .success();
        if !ok {
            bail!(
                "cannot install aiosmtpd into {}: pip needs to reach PyPI",
                venv.display()
            );
        }
    }
    Ok(bin)
}

/// A raw client step: send a line, expect a reply starting with `code`.
fn step(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    send: &[u8],
    code: &str,
) -> Result<()> {
    writer.write_all(send)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection, expecting {code}");
        }
        if !line.starts_with(code) {
            bail!("expected {code}, got {line:?}");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let limit = raise_fd_limit();
    let bins = util::build_bins_of(true, &["protolab-smtp"])?;
    let smtp = bins.join("smtp");
    let source = require_peer("smtp-source", "postfix");
    let sink = require_peer("smtp-sink", "postfix");
    let python = require_peer("python3", "python3");
    let dir = util::root().join("target").join("bench").join("smtp-run");
    std::fs::create_dir_all(&dir)?;
    let aiosmtpd = aiosmtpd_python(&python, &dir)?;

    println!(
        "bench smtp: smtp-source, {} sessions, {} messages of {} octets, one machine",
        o.sessions, o.messages, o.size
    );
    let mut table = Table::new(
        "smtp",
        &["server", "stores", "messages/s", "seconds", CPU_COLUMN],
    );
    let messages = u64::from(o.messages);

    let maildir = dir.join("maildir");
    let ours = {
        let server = start_smtp(&smtp, &maildir, &["--max-connections", "1100"])?;
        let of = ProcCpu::Process(server.proc.pid());
        let (rate, secs, cpu) = load_cpu(&source, &o, server.addr("tcp"), of)?;
        let stored = count(&maildir.join("new"));
        if stored != o.messages as usize {
            bail!("smtp serve stored {stored} of {} messages", o.messages);
        }
        let per_k = cpu.ms_per_thousand(messages);
        row(
            &mut table,
            "smtp serve",
            "Maildir, fsync before 250",
            rate,
            secs,
            per_k,
        );
        table.figure("smtp_serve_msgs_per_sec", rate);
        table.figure("smtp_serve_cpu_ms_per_1k", per_k);
        Side {
            per_sec: rate,
            cpu_ms_per_thousand: per_k,
        }
    };

    // The same durable steps with no SMTP, from threads of this process, on the same disk.
    let floor = {
        println!(
            "  floor: {} threads, {} messages of {} octets: write, fsync, rename into new/, fsync new/",
            o.sessions, o.messages, o.size
        );
        let of = ProcCpu::Process(std::process::id() as i32);
        let (f, cpu) = with_cpu(of, || {
            maildir::durable_floor(&dir.join("floor"), o.sessions, o.messages, o.size)
        })?;
        let _ = std::fs::remove_dir_all(dir.join("floor"));
        println!("    {:.0} messages/s ({:.2} s)", f.rate, f.secs);
        let per_k = cpu.ms_per_thousand(messages);
        row(
            &mut table,
            "floor: no SMTP, same durable steps",
            "Maildir, fsync file + new/",
            f.rate,
            f.secs,
            per_k,
        );
        table.figure("floor_msgs_per_sec", f.rate);
        table.figure("floor_cpu_ms_per_1k", per_k);
        Side {
            per_sec: f.rate,
            cpu_ms_per_thousand: per_k,
        }
    };

    // A private Postfix delivering into a Maildir: accepted when smtp-source is done, delivered
    // when the last message is in vmail/catchall/new.
    let postfix = if is_root() {
        let pf = maildir::PrivatePostfix::start(&dir.join("postfix"))?;
        let clock = CpuClock::start(ProcCpu::Tree(pf.master))?;
        let started = Instant::now();
        let (accepted, accepted_secs) = load(&source, &o, pf.addr)?;
        let accepted_cpu = clock.stop()?;
        // Bounded: Postfix delivers at hundreds a second here; ten minutes is far beyond that.
        let deadline = started + Duration::from_secs(600);
        while count(&pf.new) < o.messages as usize {
            if Instant::now() > deadline {
                bail!(
                    "Postfix delivered {} of {} messages in 600 s",
                    count(&pf.new),
                    o.messages
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = clock.stop()?;
        let rate = f64::from(o.messages) / secs;
        println!("    delivered into the Maildir: {rate:.0} messages/s ({secs:.2} s)");
        let accepted_per_k = accepted_cpu.ms_per_thousand(messages);
        let per_k = cpu.ms_per_thousand(messages);
        row(
            &mut table,
            "Postfix, accepted",
            "queue file, fsync before 250",
            accepted,
            accepted_secs,
            accepted_per_k,
        );
        row(
            &mut table,
            "Postfix, delivered (end to end)",
            "virtual(8) into Maildir",
            rate,
            secs,
            per_k,
        );
        table.figure("postfix_accepted_msgs_per_sec", accepted);
        table.figure("postfix_delivered_msgs_per_sec", rate);
        table.figure("postfix_accepted_cpu_ms_per_1k", accepted_per_k);
        table.figure("postfix_delivered_cpu_ms_per_1k", per_k);
        Some((
            Side {
                per_sec: accepted,
                cpu_ms_per_thousand: accepted_per_k,
            },
            Side {
                per_sec: rate,
                cpu_ms_per_thousand: per_k,
            },
        ))
    } else {
        table.note("Postfix delivering to a Maildir: not measured (a private instance needs root)");
        None
    };

    let sink_side = {
        let port = free_port();
        let mut sink_proc = Proc::spawn(
            "smtp-sink",
            Command::new(&sink)
                .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "1000"])
                .current_dir(&dir),
        );
        drain(&mut sink_proc);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        wait_tcp(addr, Duration::from_secs(10));
        let of = ProcCpu::Process(sink_proc.pid());
        let (rate, secs, cpu) = load_cpu(&source, &o, addr, of)?;
        let per_k = cpu.ms_per_thousand(messages);
        row(
            &mut table,
            "Postfix smtp-sink",
            "nothing",
            rate,
            secs,
            per_k,
        );
        table.figure("smtp_sink_msgs_per_sec", rate);
        Side {
            per_sec: rate,
            cpu_ms_per_thousand: per_k,
        }
    };
    let aio_side = {
        let port = free_port();
        let mut aio_proc = Proc::spawn(
            "aiosmtpd",
            Command::new(&aiosmtpd)
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-c",
                    "aiosmtpd.handlers.Sink",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                ])
                .current_dir(&dir),
        );
        drain(&mut aio_proc);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        wait_tcp(addr, Duration::from_secs(20));
        let of = ProcCpu::Process(aio_proc.pid());
        let (rate, secs, cpu) = load_cpu(&source, &o, addr, of)?;
        let per_k = cpu.ms_per_thousand(messages);
        row(
            &mut table,
            "aiosmtpd (Sink handler)",
            "nothing",
            rate,
            secs,
            per_k,
        );
        table.figure("aiosmtpd_msgs_per_sec", rate);
        Side {
            per_sec: rate,
            cpu_ms_per_thousand: per_k,
        }
    };
    if let Some((accepted, delivered)) = postfix {
        table.ratios(
            "postfix_delivered",
            "smtp serve / Postfix into Maildir (end to end)",
            ours,
            delivered,
            "target >= 2.0x throughput with CPU per message below 1.0x",
        );
        table.ratios(
            "postfix_accepted",
            "smtp serve / Postfix accepted (queue file fsynced)",
            ours,
            accepted,
            "",
        );
    }
    table.ratios(
        "floor",
        "smtp serve / disk floor (no SMTP)",
        ours,
        floor,
        "target >= 0.8x throughput",
    );
    table.ratios(
        "smtp_sink",
        "smtp serve / smtp-sink",
        ours,
        sink_side,
        "target >= 1.0x, while durable",
    );
    table.ratios(
        "aiosmtpd",
        "smtp serve / aiosmtpd",
        ours,
        aio_side,
        "target >= 2.0x",
    );
    table.note(
        "CPU ms/1k: utime + stime of the server's processes (all of Postfix's, reaped daemons \
         included; for the floor, the writer threads' process) over the run, per 1,000 messages. \
         smtp-source shares the two cores with the server, so messages/s also says who got the \
         CPU; CPU per message does not.",
    );

    // The cost of TLS: the same client, plaintext and with STARTTLS, one new connection (and
    // so one full handshake) per message, into the same durable Maildir.
    {
        let ca = dir.join("bench-ca.pem");
        let ca_arg = ca.to_str().context("utf-8 path")?.to_owned();
        let server = start_smtp(
            &smtp,
            &maildir,
            &["--tls-self-signed", &ca_arg, "--max-connections", "1100"],
        )?;
        let port = server.addr("tcp").port().to_string();
        let mut rates = Vec::new();
        for mode in ["plain", "starttls"] {
            println!(
                "  python3 smtplib loop: {mode}, 20 threads, {} messages",
                o.tls_messages
            );
            let secs = smtplib_seconds(&python, &port, &ca_arg, mode, o.tls_messages)?;
            let rate = f64::from(o.tls_messages) / secs;
            println!("    {rate:.0} messages/s ({secs:.2} s)");
            table.row(vec![
                format!("smtp serve, smtplib, {mode}"),
                "Maildir, fsync before 250".into(),
                format!("{rate:.0}"),
                format!("{secs:.2}"),
            ]);
            table.figure(&format!("smtplib_{mode}_msgs_per_sec"), rate);
            rates.push(rate);
        }
        let stored = count(&maildir.join("new"));
        if stored != 2 * o.tls_messages as usize {
            bail!(
                "smtp serve stored {stored} of {} messages",
                2 * o.tls_messages
            );
        }
        table.note(format!(
            "STARTTLS / plain, a new connection per message: {:.2}x",
            rates[1] / rates[0]
        ));
        table.figure("ratio_starttls_plain", rates[1] / rates[0]);
    }

    // Peak memory while receiving one 25 MiB message: the body streams to tmp/.
    {
        let server = start_smtp(&smtp, &maildir, &["--max-size", "33554432"])?;
        let body = dir.join("25mib.txt");
        let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n";
        let lines = 25 * 1024 * 1024 / line.len() + 1;
        std::fs::write(&body, line.repeat(lines))?;
        let out = Command::new(&smtp)
            .args([
                "send",
                "--server",
                &server.addr("tcp").to_string(),
                "--from",
                "big@example.test",
            ])
            .args([
                "--to",
                "sink@example.test",
                "--subject",
                "25 MiB",
                "--body-file",
            ])
            .arg(&body)
            .output()?;
        if !out.status.success() {
            bail!(
                "sending the 25 MiB message failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let peak = util::memory(server.proc.pid())?.peak_kib;
        let size = std::fs::read_dir(maildir.join("new"))?
            .flatten()
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum::<u64>();
        table.note(format!(
            "smtp serve peak RSS receiving a {:.1} MiB message: {:.1} MiB  (target <= 64 MiB)",
            size as f64 / 1048576.0,
            peak as f64 / 1024.0
        ));
        table.figure("peak_rss_kib_25mib_message", peak);
        let _ = std::fs::remove_file(&body);
    }

    // Peak memory with 1,000 sessions open at once, each inside DATA, then all completed.
    if o.concurrent > 0 {
        if limit < o.concurrent as u64 + 100 {
            bail!(
                "the open-file limit is {limit}; {} sessions need more (ulimit -Hn)",
                o.concurrent
            );
        }
        let cap = (o.concurrent + 100).to_string();
        let server = start_smtp(&smtp, &maildir, &["--max-connections", &cap])?;
        let addr = server.addr("tcp");
        let mut conns = Vec::with_capacity(o.concurrent);
        for i in 0..o.concurrent {
            let s = util::connect(addr).context("open a session")?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut r = BufReader::new(s.try_clone()?);
            let mut w = s;
            step(&mut r, &mut w, b"", "220")?;
            step(&mut r, &mut w, b"EHLO bench.test\r\n", "250")?;
            step(&mut r, &mut w, b"MAIL FROM:<c@example.test>\r\n", "250")?;
            step(
                &mut r,
                &mut w,
                format!("RCPT TO:<r{i}@example.test>\r\n").as_bytes(),
                "250",
            )?;
            step(&mut r, &mut w, b"DATA\r\n", "354")?;
            w.write_all(format!("Subject: session {i}\r\n\r\n{}\r\n", "x".repeat(900)).as_bytes())?;
            conns.push((r, w));
        }
        for (r, w) in &mut conns {
            step(r, w, b".\r\n", "250")?;
        }
        let peak = util::memory(server.proc.pid())?.peak_kib;
        for (r, w) in &mut conns {
            step(r, w, b"QUIT\r\n", "221")?;
        }
        let stored = count(&maildir.join("new"));
        table.note(format!(
            "smtp serve peak RSS with {} sessions open at once ({stored} messages stored): {:.1} MiB  (target <= 64 MiB)",
            o.concurrent,
            peak as f64 / 1024.0
        ));
        table.figure("peak_rss_kib_concurrent_sessions", peak);
        table.figure("concurrent_sessions", o.concurrent as u64);
    }
    table.finish()
}
