//! The cache part of `cargo xtask demo http`: `http proxy` in front of `http serve`, showing a
//! MISS that the origin answers, a HIT with its Age, and after max-age a revalidation that the
//! origin answers 304, each with the Cache-Status the proxy wrote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use protolab_lab::output_ok;
use protolab_tests::Server;

/// A note set apart by blank lines.
fn note(text: &str) {
    println!();
    super::note(text);
    println!();
}

/// `http get` through the proxy, printing the response head and body; returns the head lines.
fn get(http: &Path, url: &str, extra: &[&str]) -> Result<Vec<String>> {
    let mut shown = vec!["http", "get"];
    shown.extend_from_slice(extra);
    shown.push(url);
    // Quoted where the shell needs it (`-H 'Cache-Control: no-cache'`), so the line can be
    // run as shown.
    let quoted: Vec<String> = shown
        .iter()
        .map(|a| {
            if a.contains([' ', '*', '?', '&', ';']) {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    println!("$ {}", quoted.join(" "));
    let out = output_ok(Command::new(http).arg("get").args(extra).arg(url))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut head = Vec::new();
    for line in text.lines() {
        if line.starts_with("> ") || line == ">" || line.starts_with("* ") {
            continue;
        }
        println!("{line}");
        if let Some(h) = line.strip_prefix("< ") {
            head.push(h.to_owned());
        }
    }
    Ok(head)
}

fn field<'a>(head: &'a [String], name: &str) -> &'a str {
    head.iter()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or("(absent)")
}

/// Runs the cache demo with the `http` binary at `http`.
pub fn run_with(http: &Path) -> Result<()> {
    let origin = Server::start_cmd(
        "http serve",
        {
            let mut c = Command::new(http);
            c.args(["serve", "--listen", "127.0.0.1:0"])
                .env("RUST_LOG", "warn");
            c
        },
        1,
    );
    let upstream = format!("http://{}", origin.addr("tcp"));
    let proxy = Server::start_cmd(
        "http proxy",
        {
            let mut c = Command::new(http);
            c.args(["proxy", "--listen", "127.0.0.1:0", "--upstream", &upstream])
                .env("RUST_LOG", "warn");
            c
        },
        1,
    );
    let url = format!("http://{}/cache/2", proxy.addr("tcp"));
    note(&format!(
        "The origin (http serve, {upstream}) answers /cache/2 with Cache-Control: max-age=2 and\n\
         an ETag, and says in the body how many responses it generated. http proxy listens on\n\
         {} as a reverse proxy in front of it; every response it sends carries Age and a\n\
         Cache-Status (RFC 9211) saying what the cache did.",
        proxy.addr("tcp")
    ));

    note(
        "1. First request: nothing stored. The proxy forwards it (fwd=uri-miss), the origin\n   generates response number 1, and the proxy stores it.",
    );
    let h = get(http, &url, &[])?;
    println!(
        "=> Cache-Status: {}   Age: {}",
        field(&h, "cache-status"),
        field(&h, "age")
    );

    std::thread::sleep(Duration::from_millis(1100));
    note(
        "2. Again a second later: the stored response is fresh (age 1 < max-age 2), so the proxy\n   answers from the store. The origin is not asked: the body still says number 1.",
    );
    let h = get(http, &url, &[])?;
    println!(
        "=> Cache-Status: {}   Age: {}",
        field(&h, "cache-status"),
        field(&h, "age")
    );

    std::thread::sleep(Duration::from_millis(2100));
    note(
        "3. Three seconds on, max-age has passed: the stored response is stale. The proxy sends\n   the origin a conditional request (If-None-Match with the stored ETag); the origin answers\n   304 Not Modified without a body, and the proxy serves the stored body, fresh again.",
    );
    let h = get(http, &url, &[])?;
    println!(
        "=> Cache-Status: {}   Age: {}",
        field(&h, "cache-status"),
        field(&h, "age")
    );

    note(
        "4. The client can insist: Cache-Control: no-cache in the request makes the proxy check\n   with the origin even though its copy is fresh (fwd=request).",
    );
    let h = get(http, &url, &["-H", "Cache-Control: no-cache"])?;
    println!(
        "=> Cache-Status: {}   Age: {}",
        field(&h, "cache-status"),
        field(&h, "age")
    );

    note(
        "The origin generated one response and answered two revalidations with 304: the cache did\nthe rest. `http proxy --json` prints the same counters when it stops.",
    );
    drop(proxy);
    drop(origin);
    Ok(())
}
