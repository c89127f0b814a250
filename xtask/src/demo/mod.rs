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
mod udp;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    let Some((which, rest)) = args.split_first() else {
        bail!("say which demo: cargo xtask demo <tcp|udp|dns|smtp|http|compare|congestion|layers>");
    };
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "http" => http::run(rest),
        "smtp" => smtp::run(rest),
        "compare" => compare::run(rest),
        "congestion" => congestion::run(rest),
        "layers" => layers::run(rest),
        other => bail!(
            "no demo {other:?}: choose tcp, udp, dns, smtp, http, compare, congestion or layers"
        ),
    }
}
