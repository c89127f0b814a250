//! The real peers the tests run against, and their installation from Debian's packages.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// (command the tests start, Debian package that brings it).
pub const PEERS: &[(&str, &str)] = &[
    // TCP
    ("redis-server", "redis-server"),
    ("python3", "python3"),
    // UDP and the lab link
    ("irtt", "irtt"),
    ("iperf3", "iperf3"),
    ("sockperf", "sockperf"),
    ("nft", "nftables"),
    ("ip", "iproute2"),
    ("tshark", "tshark"),
    ("tcptrace", "tcptrace"),
    // Pictures: every SVG the programs draw is rendered headless by a test
    ("chromium", "chromium"),
    // DNS
    ("knotd", "knot"),
    ("nsd", "nsd"),
    ("unbound", "unbound"),
    ("dig", "dnsutils"),
    ("kdig", "knot-dnsutils"),
    ("drill", "ldnsutils"),
    ("dnsperf", "dnsperf"),
    // SMTP
    ("smtp-sink", "postfix"),
    ("smtp-source", "postfix"),
    ("swaks", "swaks"),
    ("msmtp", "msmtp"),
    ("curl", "curl"),
    // The web inbox: npm installs playwright-core and mailpit-api into target/browser/ (see
    // xtask/src/test.rs); playwright-core drives the chromium above.
    ("node", "nodejs"),
    ("npm", "npm"),
    // TLS. swaks speaks TLS only through Perl's IO::Socket::SSL (which brings Net::SSLeay): an
    // absolute path stands for a file that is not a command.
    ("/usr/share/perl5/IO/Socket/SSL.pm", "libio-socket-ssl-perl"),
    ("openssl", "openssl"),
    ("testssl", "testssl.sh"),
    // HTTP
    ("nginx", "nginx"),
    ("wget", "wget"),
    ("ab", "apache2-utils"),
    ("wrk", "wrk"),
    // A Python module, not a command: an absolute path is checked as it is.
    (
        "/usr/lib/python3/dist-packages/requests/__init__.py",
        "python3-requests",
    ),
    // Subnets
    ("ipcalc", "ipcalc"),
    ("sipcalc", "sipcalc"),
    // The caches `http proxy` is measured against; node and npm run the HTTP cache test suite.
    ("varnishd", "varnish"),
    ("squid", "squid"),
    ("traffic_server", "trafficserver"),
    ("apache2", "apache2"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

/// Where a peer's command is found, if anywhere.
pub fn find(command: &str) -> Option<std::path::PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(command))
        .find(|p| p.exists())
}

/// The packages whose commands are missing.
pub fn missing() -> Vec<&'static str> {
    let mut pkgs: Vec<&str> = PEERS
        .iter()
        .filter(|(cmd, _)| find(cmd).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    pkgs.dedup();
    pkgs
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Installs the missing peers with apt-get when running as root; otherwise prints the exact
/// install line. With `CI=true` a peer still missing afterwards is an error.
///
/// # Errors
/// apt-get failing, or (in CI) a peer still missing.
pub fn ensure(ci: bool) -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        println!("peers: all {} present", PEERS.len());
        return Ok(());
    }
    let line = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        println!(
            "peers missing: {}\ninstall them as root with:\n    apt-get update && {line}",
            missing.join(" ")
        );
        if ci {
            bail!("CI=true and real peers are missing: {}", missing.join(" "));
        }
        return Ok(());
    }
    println!("peers: installing {}", missing.join(" "));
    // Keep packages (postfix, unbound, knot, nsd, redis) from starting their system services.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let created = !policy.exists();
    if created {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("write policy-rc.d")?;
        std::process::Command::new("chmod")
            .args(["755", "/usr/sbin/policy-rc.d"])
            .status()?;
    }
    let result = install(&missing);
    if created {
        let _ = std::fs::remove_file(policy);
    }
    result?;
    let still = self::missing();
    if !still.is_empty() {
        bail!(
            "after apt-get install these peers are still missing: {}",
            still.join(" ")
        );
    }
    Ok(())
}

fn install(pkgs: &[&str]) -> Result<()> {
    // tshark asks whether non-root users may capture; answer before it asks.
    let mut debconf = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("debconf-set-selections")?;
    if let Some(stdin) = debconf.stdin.as_mut() {
        use std::io::Write;
        stdin.write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n")?;
    }
    debconf.wait()?;
    let apt = |args: &[&str]| -> Result<bool> {
        Ok(Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("run apt-get")?
            .success())
    };
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(pkgs);
    if !apt(&args)? {
        // A fresh machine has no package lists yet.
        if !apt(&["update", "-q"])? || !apt(&args)? {
            bail!("apt-get install {} failed", pkgs.join(" "));
        }
    }
    Ok(())
}
