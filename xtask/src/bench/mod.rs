//! `cargo xtask bench <name>`: protolab and its real peers, measured in one run.

mod dns;
mod http;
mod http_proxy;
mod inbox;
mod link;
mod maildir;
mod smtp;
mod tcp;
mod tls;
mod udp;

use anyhow::Result;
use protolab_transport::cli::Failure;

const HELP: &str = "\
cargo xtask bench: protolab and its real peers, measured in one run on this machine

Usage:
  cargo xtask bench <tcp|udp|dns|smtp|http|tls|inbox|link> [OPTIONS]

Benchmarks:
  tcp       greet against redis-server and the classic Python server (greet bench), then
            greet's memory with 10,000 idle connections
  udp       udpecho against irtt, iperf3 and sockperf: loss-free rate, RTT, memory, then
            --workers 1 against the default under 8 probes at once (--workers-only: that row;
            --against UDPECHO: another build's servers in the same rounds)
  dns       dns against unbound and knot with dnsperf (--seconds N per warm run, default 10)
  smtp      smtp serve against Postfix's smtp-sink and aiosmtpd under smtp-source, then memory
  http      http serve against nginx under wrk: requests/s, p99, CPU, idle memory (--duration DUR)
  tls       http serve --tls against nginx with TLS (same ECDSA P-256 certificate): HTTPS
            keep-alive requests/s under wrk, full handshakes/s under openssl s_time -new; then
            SMTP with STARTTLS against plain (--json prints the table as JSON)
  inbox     the web inbox with 10,000 and 100,000 messages: first list, list p50/p99 under
            wrk, search, RSS, and SMTP intake with the inbox on and off
  link      impair link beside a plain veth pair: forwarding rate and round trip (root)

Each prints a table with ratios and the server's CPU time per 1,000 requests, and writes it
as JSON to target/bench/<name>.json. Binaries are built in release mode first. With
--svg FILE the table is also drawn as bar charts (throughput and CPU per request, ours first).

Examples:
  cargo xtask bench tcp
  cargo xtask bench dns --seconds 5
  cargo xtask bench http --svg target/bench/http.svg
  cargo xtask bench tls --json
";

pub fn run(args: &[String]) -> Result<()> {
    if args.is_empty() || crate::wants_help(args) {
        print!("{HELP}");
        return if args.is_empty() {
            Err(Failure::usage("say which benchmark").into())
        } else {
            Ok(())
        };
    }
    let (which, rest) = args.split_first().expect("not empty");
    // `--svg FILE` is every benchmark's: it draws the tables the run prints.
    let mut rest = rest.to_vec();
    if let Some(i) = rest.iter().position(|a| a == "--svg") {
        let Some(file) = rest.get(i + 1).cloned() else {
            return Err(Failure::usage("--svg needs a file name")
                .hint("cargo xtask bench http --svg target/bench/http.svg")
                .into());
        };
        rest.drain(i..=i + 1);
        crate::util::draw_tables_to(file.into());
    }
    let rest = rest.as_slice();
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "http" => http::run(rest),
        "inbox" => inbox::run(rest),
        "smtp" => smtp::run(rest),
        "link" => link::run(rest),
        "tls" => tls::run(rest),
        other => Err(Failure::usage(format!("no benchmark {other:?}"))
            .hint("choose tcp, udp, dns, smtp, http, tls, inbox or link (cargo xtask bench --help)")
            .into()),
    }
}
