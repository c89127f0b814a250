//! The data the lab serves, kept as files and never inline: the lab DNS hierarchy of
//! `examples/dns` (which the README's commands use too) and the test data under
//! `tests/test-data`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::Server;
use crate::{peers::free_port_on, quiet_logs, workspace_root};

/// A file or folder under `tests/test-data`.
pub fn test_data(path: &str) -> PathBuf {
    workspace_root().join("tests/test-data").join(path)
}

/// The lab DNS hierarchy's folder: `root.zone` (on 127.0.0.1), `test.zone` (127.0.0.2),
/// `example.test.zone` (127.0.0.3) and `root.hints`.
pub fn lab_dns_dir() -> PathBuf {
    workspace_root().join("examples/dns")
}

/// The lab hierarchy's zones in the order of their servers' addresses, 127.0.0.1 first.
pub const LAB_DNS_ZONES: [&str; 3] = ["root.zone", "test.zone", "example.test.zone"];

/// Starts the lab DNS hierarchy with the `dns` binary at `dns`: one `dns zone` server per
/// zone of [`LAB_DNS_ZONES`] on 127.0.0.1, .2 and .3, all at one port free on the three
/// (so no root is needed; resolvers are told the port). Returns the servers and the port.
pub fn start_lab_dns(dns: &Path) -> (Vec<Server>, u16) {
    let dir = lab_dns_dir();
    let ips: Vec<IpAddr> = (1..=3)
        .map(|i| Ipv4Addr::new(127, 0, 0, i).into())
        .collect();
    let port = free_port_on(&ips);
    let servers = LAB_DNS_ZONES
        .iter()
        .zip(&ips)
        .map(|(zone, ip)| {
            let mut c = Command::new(dns);
            c.env("RUST_LOG", quiet_logs())
                .args(["zone", "--listen", &format!("{ip}:{port}"), "--zone"])
                .arg(dir.join(zone));
            Server::start_cmd("dns zone", c, 2)
        })
        .collect();
    (servers, port)
}
