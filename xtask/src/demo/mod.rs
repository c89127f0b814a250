//! `cargo xtask demo <protocol>`.

mod compare;
mod congestion;
mod dns;
mod http;
mod http_cache;
mod layers;
mod smtp;
mod tcp;
mod tcp_trace;
mod tls;
mod udp;

use std::process::Command;

use anyhow::{Context, Result, bail};
use protolab_transport::cli::Failure;

/// An aside in a demo's narration: each line of `text` indented behind a bar.
fn note(text: &str) {
    for line in text.lines() {
        println!("    | {line}");
    }
}

/// Runs `cmd`, shown as `$ shown`, prints what it wrote (its standard error first when
/// `with_stderr`, for a client whose dialog goes there) and returns its standard output.
fn run_shown(cmd: &mut Command, shown: &str, with_stderr: bool) -> Result<String> {
    println!("$ {shown}");
    let out = cmd.output().with_context(|| format!("run {shown}"))?;
    if with_stderr {
        print!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        // Its standard error is on the screen already when `with_stderr`.
        let why = if with_stderr {
            String::new()
        } else {
            format!(": {}", String::from_utf8_lossy(&out.stderr))
        };
        bail!("{shown} failed ({}){why}", out.status);
    }
    Ok(stdout)
}

const HELP: &str = "\
cargo xtask demo: a protocol end to end on loopback, narrated

Usage:
  cargo xtask demo <tcp|udp|dns|smtp|http|compare|congestion|layers|tls> [OPTIONS]

Demos:
  tcp       the greeting conversation step by step, with the kernel's socket states
            (--trace, as root: the same in a namespace, with the packets of each step)
  udp       echo server, impairment relay and probe; the probe's counts beside the relay's truth
  dns       a lab hierarchy of zones and the resolver walking it
  smtp      a message through the receiver into a Maildir, and what fsync buys
  http      one GET line by line, statelessness, cookies, and a smuggling attempt refused
  compare   UDP and TCP through the same impaired path (root: namespaces and `impair link`;
            otherwise `impair udp` on loopback). Options: --loss P --reorder P --dup P
            --delay DUR --jitter DUR --count N --interval DUR --seed N
  congestion  reno, cubic and bbr through one bottleneck, drawn (root); --cc, --rate, --queue
  layers    one captured packet taken apart layer by layer (root)
  tls       the same SMTP dialog and HTTP GET in clear and over TLS, segment by segment
            from a capture (root), tshark's view, a wrong CA refused, a CONNECT tunnel;
            without root the TLS half on loopback. Options: --out DIR --json

The demos build the binaries they run (debug) and print where they are.

Examples:
  cargo xtask demo tcp
  cargo xtask demo udp
  cargo xtask demo compare --loss 5% --reorder 10% --delay 20ms --jitter 5ms --seed 7
  cargo xtask demo congestion --cc reno,cubic,bbr --rate 10mbit --queue 100kB
  cargo xtask demo tls
";

pub fn run(args: &[String]) -> Result<()> {
    if args.is_empty() || crate::wants_help(args) {
        print!("{HELP}");
        return if args.is_empty() {
            Err(Failure::usage("say which demo").into())
        } else {
            Ok(())
        };
    }
    let (which, rest) = args.split_first().expect("not empty");
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "http" => http::run(rest),
        "smtp" => smtp::run(rest),
        "compare" => compare::run(rest),
        "congestion" => congestion::run(rest),
        "layers" => layers::run(rest),
        "tls" => tls::run(rest),
        other => Err(Failure::usage(format!("no demo {other:?}"))
            .hint("choose tcp, udp, dns, smtp, http, compare, congestion, layers or tls (cargo xtask demo --help)")
            .into()),
    }
}
