//! `cargo xtask demo <protocol>`.

mod compare;
mod dns;
mod http_cache;
mod smtp;
mod tcp;
mod tcp_trace;
mod udp;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    let Some((which, rest)) = args.split_first() else {
        bail!("say which demo: cargo xtask demo <tcp|udp|dns|smtp|compare|http>");
    };
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "smtp" => smtp::run(rest),
        "compare" => compare::run(rest),
        "http" => http_cache::run(rest),
        other => bail!("no demo {other:?}: choose tcp, udp, dns, smtp, compare or http"),
    }
}
