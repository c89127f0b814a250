//! `cargo xtask demo dns`: a lab DNS hierarchy on loopback, resolved step by step.
//!
//! Three lab zone servers (the root, `test.`, `example.test.`) listen on 127.0.0.1, 127.0.0.2
//! and 127.0.0.3 at one shared high port, so no root privilege is needed: the resolver is told
//! to ask every nameserver on that port instead of 53. The demo then resolves a name
//! iteratively with a trace, shows a truncated UDP answer followed by the TCP retry, and a
//! caching resolver answering the second time from its cache.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use protolab_lab::Server;
use protolab_lab::fixtures::{lab_dns_dir, start_lab_dns};

use crate::util;

/// A note set apart by blank lines.
fn note(text: &str) {
    println!();
    super::note(text);
    println!();
}

/// Runs `dns` with `args`, printing the command line and its output. Long record lines (a
/// big TXT) are clipped; comment lines, which repeat the command line, never are.
fn show(dns: &Path, args: &[&str]) -> Result<String> {
    println!("$ dns {}", args.join(" "));
    let text = quiet(dns, args)?;
    for line in text.lines() {
        match line.char_indices().nth(110) {
            Some((i, _)) if !line.starts_with(';') => println!("{} [...]", &line[..i]),
            _ => println!("{line}"),
        }
    }
    Ok(text)
}

/// Runs `dns` with `args` and returns its output without printing it.
fn quiet(dns: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(dns).args(args).output().context("run dns")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "dns {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        bail!("demo dns takes no options (got {other:?})");
    }
    let bins = util::build_bins(false)?;
    let dns = bins.join("dns");
    // The hierarchy is the lab's, in examples/dns (the README's commands use the same files).
    let hints = lab_dns_dir().join("root.hints");
    let hints_arg = hints.to_str().context("the workspace path is not UTF-8")?;

    println!("== A lab DNS hierarchy on loopback ==");
    let (servers, port) = start_lab_dns(&dns);
    let port_arg = port.to_string();
    for (s, zone) in servers.iter().zip([".", "test.", "example.test."]) {
        println!(
            "dns zone for {zone:<14} listening on {} (UDP and TCP)",
            s.addr("udp")
        );
    }
    note(&format!(
        "Three authoritative servers, one per level of the name www.example.test. The root knows\n\
         only who serves test., test. knows only who serves example.test.: each hands out a\n\
         referral (NS records, with the servers' addresses as glue). All listen on port {port}\n\
         instead of 53, so no root privilege is needed; resolvers are told so with --port.\n\
         The zone files and root.hints are the lab's own, kept in {}.",
        lab_dns_dir().display()
    ));

    println!("== 1. Iterative resolution, step by step ==\n");
    show(
        &dns,
        &[
            "query",
            "www.example.test",
            "A",
            "--trace",
            "--root-hints",
            hints_arg,
            "--port",
            &port_arg,
        ],
    )?;
    note(
        "Each step asked one server the full question without RD (recursion desired) and\n\
         followed the referral it got, using only glue inside the referring server's zone.\n\
         The last server answered with AA (authoritative answer).",
    );

    println!("== 2. Too big for UDP: TC, then TCP ==\n");
    let at = format!("@127.0.0.3:{port}");
    show(
        &dns,
        &["query", "big.example.test", "TXT", &at, "--no-edns"],
    )?;
    let x = quiet(
        &dns,
        &[
            "query",
            "big.example.test",
            "TXT",
            &at,
            "--no-edns",
            "--json",
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&x)?;
    note(&format!(
        "Without EDNS a UDP answer may be at most 512 bytes. The TXT record is bigger, so the\n\
         server sent an empty answer with TC (truncated) set; the client asked again over TCP,\n\
         where each message is led by its 16-bit length: transport={}, retriedOverTcp={},\n\
         {} bytes.",
        v["transport"], v["retriedOverTcp"], v["messageSize"]
    ));

    println!("== 3. A caching resolver ==\n");
    let mut c = Command::new(&dns);
    c.env("RUST_LOG", "warn");
    c.args([
        "serve",
        "--json",
        "--listen",
        "127.0.0.1:0",
        "--root-hints",
        hints_arg,
        "--port",
        &port_arg,
    ]);
    let resolver = Server::start_cmd("dns serve", c, 2);
    let raddr = resolver.addr("udp");
    println!("dns serve listening on {raddr}, resolving from the lab root");
    let at = format!("@{raddr}");
    show(&dns, &["query", "www.example.test", &at])?;
    note("The first question missed the cache: the resolver walked the hierarchy (as above).");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    show(&dns, &["query", "www.example.test", &at])?;
    note(
        "The second was a cache hit: answered from the receive loop with the stored reply, its\n\
         id set to the new query's and its TTL counted down by the time spent in the cache.",
    );
    resolver.proc.signal(libc::SIGTERM);
    let mut resolver = resolver;
    let mut line = String::new();
    use std::io::BufRead;
    while resolver.stdout.read_line(&mut line)? > 0 {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["event"] == "stats" {
            println!(
                "resolver counters: {} queries, {} cache hits, {} misses",
                v["resolver"]["queries"],
                v["resolver"]["cache_hits"],
                v["resolver"]["cache_misses"]
            );
            break;
        }
        line.clear();
    }
    drop(servers);
    Ok(())
}
