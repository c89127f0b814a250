//! `cargo xtask bench <name>`: protolab and its real peers, measured in one run.

mod dns;
mod http;
mod http_proxy;
mod link;
mod maildir;
mod smtp;
mod tcp;
mod udp;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    let Some((which, rest)) = args.split_first() else {
        bail!("say which benchmark: cargo xtask bench <tcp|udp|dns|smtp|http|link>");
    };
    match which.as_str() {
        "tcp" => tcp::run(rest),
        "udp" => udp::run(rest),
        "dns" => dns::run(rest),
        "http" => http::run(rest),
        "smtp" => smtp::run(rest),
        "link" => link::run(rest),
        other => bail!("no benchmark {other:?}: choose tcp, udp, dns, smtp, http or link"),
    }
}
