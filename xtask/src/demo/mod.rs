//! `cargo xtask demo <protocol>`.

mod compare;
mod congestion;
mod dns;
mod layers;
mod smtp;
mod tcp;
mod tcp_trace;
mod udp;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    let Some((which, rest)) = args.split_first() else {
        bail!("say which demo: cargo xtask demo <tcp|udp|dns|smtp|compare|congestion|layers>");
    };
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "smtp" => smtp::run(rest),
        "compare" => compare::run(rest),
        "congestion" => congestion::run(rest),
        "layers" => layers::run(rest),
        other => {
            bail!("no demo {other:?}: choose tcp, udp, dns, smtp, compare, congestion or layers")
        }
    }
}
