//! `dns`: dig-like queries, a caching resolver and a lab zone server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;

use protolab_dns::client::{Client, ClientConfig};
use protolab_dns::iterate::{self, IterConfig, RootHints};
use protolab_dns::present;
use protolab_dns::rrl::RrlConfig;
use protolab_dns::server::{
    DotListen, ResolverConfig, Upstream, ZoneConfig, run_resolver, run_zone_server,
};
use protolab_dns::zone::{Catalog, Zone};
use protolab_transport::cli::{init_tracing, parse_duration};
use protolab_transport::tls::ServerIdentity;
use protolab_transport::{out, outln, parse_addr};

#[derive(Parser)]
#[command(
    name = "dns",
    version,
    about = "A tiny DNS toolkit: dig-like queries, a caching resolver, lab zones"
)]
struct Cli {
    /// More logging (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a DNS question, like dig.
    #[command(after_help = "Examples:
  dns query example.test A @127.0.0.1:5300
  dns query example.test MX @127.0.0.1 --port 5300 --short
  dns query big.example.test TXT @127.0.0.1:5300 --no-edns     (TC, then TCP)
  dns query www.example.test --trace --root-hints root.hints --port 5300
  dns query example.test SOA --json
  dns query www.example.test @127.0.0.1:5300 @127.0.0.2:5300 --timeout 500ms   (second is a fallback)
  dns query www.example.test @127.0.0.1:8853 --tls --cacert target/lab-ca/ca.pem   (DNS over TLS)")]
    Query(QueryArgs),
    /// Run a caching resolver on UDP and TCP.
    #[command(after_help = "Examples:
  dns serve --forward 127.0.0.1:5300
  dns serve --listen 127.0.0.1:1053 --root-hints root.hints
  dns serve --forward 127.0.0.1:5300 --allow 127.0.0.0/8 --allow 10.0.0.0/8 --cache-size 64MiB
  dns serve --forward 127.0.0.1:5300 --dot-listen 127.0.0.1:8853 --tls-self-signed lab-ca.pem

Only allowed clients (loopback by default) get answers; others get no reply at all, so the
resolver is never open to the world by accident. Counters are printed as JSON on exit.")]
    Serve(ServeArgs),
    /// Serve zones from master files, authoritatively, on UDP and TCP.
    #[command(after_help = "Examples:
  dns zone --zone example.test.zone
  dns zone --listen 127.0.0.1:5300 --zone root.zone --zone test.zone
  dns zone --listen 198.18.0.1:53 --zone test.zone --rrl 20 --rrl-slip 2

A zone file needs an SOA at its origin; $ORIGIN, $TTL and the usual types are understood.")]
    Zone(ZoneArgs),
}

#[derive(clap::Args)]
struct QueryArgs {
    /// The name to look up.
    name: String,
    /// The record type (A by default), and `@SERVER[:PORT]`, in any order.
    rest: Vec<String>,
    /// Ask over TCP from the start.
    #[arg(long)]
    tcp: bool,
    /// Ask over DNS over TLS (RFC 7858; port 853 unless given).
    #[arg(long, conflicts_with = "trace")]
    tls: bool,
    /// With --tls: trust the CAs in FILE (PEM) instead of the system's.
    #[arg(long, value_name = "FILE", requires = "tls")]
    cacert: Option<PathBuf>,
    /// With --tls: the name the certificate must be valid for [default: the server's address].
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_name: Option<String>,
    /// Resolve iteratively from the root, printing every step (like dig +trace).
    #[arg(long)]
    trace: bool,
    /// Print only the answers' data (like dig +short).
    #[arg(long)]
    short: bool,
    /// Print the reply as JSON (RFC 8427 names).
    #[arg(long)]
    json: bool,
    /// Root hints for --trace (named.root form); without it the server is asked for `. NS`.
    #[arg(long, value_name = "FILE")]
    root_hints: Option<PathBuf>,
    /// The port to use for the server, and for every nameserver with --trace.
    #[arg(long)]
    port: Option<u16>,
    /// Send no OPT record (plain RFC 1035: 512-byte UDP replies).
    #[arg(long)]
    no_edns: bool,
    /// Clear RD: ask the server not to recurse.
    #[arg(long)]
    norecurse: bool,
    /// How long to wait for each server.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// How many times to try the server list.
    #[arg(long, default_value_t = 2)]
    tries: u32,
    /// Seed for query ids and source ports (random when absent).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address for UDP and TCP.
    #[arg(long, default_value = "127.0.0.1:1053")]
    listen: String,
    /// Forward to these recursive servers (repeatable).
    #[arg(long, value_name = "ADDR", num_args = 1.., conflicts_with = "root_hints")]
    forward: Vec<String>,
    /// Resolve iteratively from these root hints instead.
    #[arg(long, value_name = "FILE")]
    root_hints: Option<PathBuf>,
    /// With --root-hints: the port every nameserver listens on (53 on the Internet).
    #[arg(long, default_value_t = 53)]
    port: u16,
    /// Networks allowed to ask (repeatable); loopback only by default.
    #[arg(long, value_name = "CIDR")]
    allow: Vec<IpNet>,
    /// Memory the cache may hold: bytes, or with a unit K, M, G (KiB, MiB, GiB also read);
    /// each reply is accounted at its wire bytes, key and bookkeeping.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    cache_size: usize,
    /// How long to wait for each upstream server.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    /// Seed for upstream query ids and source ports.
    #[arg(long)]
    seed: Option<u64>,
    /// Upstream queries in flight at once; each holds a socket. Misses beyond it get SERVFAIL
    /// at once (counted as resolver.overloaded).
    #[arg(long, default_value_t = 256)]
    max_pending: usize,
    /// TCP connections open at once from one client address; more are closed at once.
    #[arg(long, default_value_t = 16)]
    max_tcp_per_client: usize,
    /// Tasks receiving UDP queries at once (one per core by default).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    udp_workers: usize,
    /// Runtime threads (one per core by default).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    threads: usize,
    /// Also serve DNS over TLS (RFC 7858) on this address, e.g. 127.0.0.1:8853.
    #[arg(long, value_name = "ADDR")]
    dot_listen: Option<String>,
    /// The certificate chain (PEM) for --dot-listen.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Make a lab CA in memory and a certificate for localhost, 127.0.0.1, ::1 and the lab
    /// link's addresses; the CA certificate is written to FILE for clients' --cacert.
    #[arg(long, value_name = "FILE", conflicts_with = "tls_cert")]
    tls_self_signed: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ZoneArgs {
    /// Address for UDP and TCP.
    #[arg(long, default_value = "127.0.0.1:5300")]
    listen: String,
    /// Master files to serve (repeatable).
    #[arg(long = "zone", value_name = "FILE", required = true)]
    zones: Vec<PathBuf>,
    /// UDP replies per second per client /24 (IPv4) or /56 (IPv6); 0 turns limiting off.
    /// Default: off when listening on loopback, 20 otherwise.
    #[arg(long, value_name = "N")]
    rrl: Option<u32>,
    /// Over the rate, every Nth reply goes out truncated (TC=1) so real clients retry over
    /// TCP; the rest are dropped. 0: drop all.
    #[arg(long, value_name = "N", default_value_t = 2)]
    rrl_slip: u32,
    /// Seed for the rate limiter's hash table (random when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// TCP connections open at once from one client address; more are closed at once.
    #[arg(long, default_value_t = 16)]
    max_tcp_per_client: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Query(_) => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    init_tracing(level, cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(ServeArgs { threads, .. }) = &cli.command
        && *threads > 0
    {
        builder.worker_threads(*threads);
    }
    let rt = builder
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(async {
        match cli.command {
            Command::Query(a) => query(a).await,
            Command::Serve(a) => serve(a).await,
            Command::Zone(a) => zone(a).await,
        }
    })
}

/// Parses a size such as `32MiB`, `512K`, `1G` or `65536` (bytes); units are powers of 1024.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "unknown unit {unit:?}: write a size like 32MiB, 512K or 65536"
            ));
        }
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("bad size {text:?}: write a size like 32MiB, 512K or 65536"))
}

/// A token cancelled on SIGINT or SIGTERM, with both handlers installed before it returns: a
/// signal that comes right after the `listening` lines must stop the server cleanly, not kill
/// it with the default action.
fn shutdown_on_signals() -> Result<protolab_transport::CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let token = protolab_transport::CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        fire.cancel();
    });
    Ok(token)
}

fn resolv_conf_server() -> Result<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .context("no @SERVER given and /etc/resolv.conf unreadable: give @SERVER")?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .next()
        .context("no nameserver line in /etc/resolv.conf: give @SERVER")
}

async fn query(a: QueryArgs) -> Result<()> {
    // ASCII names keep their letter case (from_utf8 would lower it through IDNA mapping).
    let name = Name::from_ascii(&a.name)
        .or_else(|_| Name::from_utf8(&a.name))
        .with_context(|| {
            format!(
                "bad name {:?}: write a domain name like www.example.test",
                a.name
            )
        })?;
    let name = if name.is_fqdn() {
        name
    } else {
        name.append_domain(&Name::root())?
    };
    let mut qtype = RecordType::A;
    let mut named: Vec<String> = Vec::new();
    for word in &a.rest {
        if let Some(s) = word.strip_prefix('@') {
            named.push(s.to_owned());
        } else {
            qtype = word
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown record type {word:?}: use A, AAAA, MX, TXT, NS, SOA, CNAME, PTR, SRV, ANY"))?;
        }
    }
    let default_port = a.port.unwrap_or(if a.tls { 853 } else { 53 });
    // Several @SERVERs are tried in turn when one does not answer.
    let mut servers: Vec<SocketAddr> = Vec::new();
    for s in &named {
        let mut addr = parse_addr(s, default_port).with_context(|| format!("bad server @{s}"))?;
        if let Some(p) = a.port
            && !s.contains(':')
        {
            addr.set_port(p);
        }
        servers.push(addr);
    }
    if servers.is_empty() {
        servers.push(SocketAddr::new(resolv_conf_server()?, default_port));
    }
    let server = servers[0];
    let (rng, seed) = protolab_transport::rng::seeded(a.seed);
    tracing::debug!(seed, "query RNG");
    let config = ClientConfig {
        tcp: a.tcp,
        edns: !a.no_edns,
        recursion_desired: !a.norecurse && !a.trace,
        timeout: a.timeout,
        attempts: a.tries,
        tls: if a.tls {
            let config = protolab_transport::tls::client_config(a.cacert.as_deref())?;
            Some(protolab_dns::client::DotClient {
                connector: protolab_transport::tls::TlsConnector::from(config),
                name: a.tls_name.clone(),
            })
        } else {
            None
        },
    };
    let client = Client::new(config, rng);
    let command = std::env::args().skip(2).collect::<Vec<_>>().join(" ");
    if a.trace {
        let hints = match &a.root_hints {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("read root hints {}", p.display()))?;
                RootHints::parse(&text).map_err(anyhow::Error::msg)?
            }
            None => hints_from_server(&client, server).await?,
        };
        let config = IterConfig {
            port: a.port.unwrap_or(53),
            ..IterConfig::default()
        };
        let res = iterate::resolve(&client, &hints, &config, &name, qtype).await;
        let (reply, steps, err) = match res {
            Ok(r) => (Some(r.reply), r.steps, None),
            Err(e) => (None, Vec::new(), Some(e)),
        };
        if a.json {
            let mut v = serde_json::json!({
                "trace": steps,
                "client": client.stats.snapshot(),
            });
            if let Some(r) = &reply {
                v["reply"] = present::message_json(r);
            }
            if let Some(e) = &err {
                v["error"] = serde_json::Value::String(e.to_string());
            }
            outln!("{}", serde_json::to_string_pretty(&v)?);
        } else if a.short {
            if let Some(r) = &reply {
                out!("{}", present::short_text(r));
            }
        } else {
            outln!("; <<>> dns query <<>> {command}");
            out!("{}", present::trace_text(&steps));
            if let Some(r) = &reply {
                outln!(
                    ";; resolved: {}",
                    protolab_dns::wire::rcode_name(r.metadata.response_code)
                );
                for rec in r.answers.iter().chain(&r.authorities) {
                    outln!("{}", present::record_line(rec));
                }
            }
        }
        if let Some(e) = err {
            bail!("iterative resolution of {name} {qtype} failed: {e}");
        }
        return Ok(());
    }
    let x = client
        .query(&servers, &name, qtype)
        .await
        .with_context(|| format!("query {name} {qtype} @{}", named.join(" @")))?;
    if a.json {
        let mut v = present::message_json(&x.reply);
        v["server"] = serde_json::Value::String(x.server.to_string());
        v["transport"] = serde_json::Value::String(x.transport.into());
        v["retriedOverTcp"] = serde_json::Value::Bool(x.retried_over_tcp);
        v["messageSize"] = x.size.into();
        v["queryTimeMs"] = (x.elapsed.as_secs_f64() * 1e3).into();
        v["client"] = client.stats.snapshot();
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.short {
        out!("{}", present::short_text(&x.reply));
    } else {
        out!("{}", present::dig_text(&x, &command));
    }
    Ok(())
}

/// Root hints learnt from a recursive server's answer to `. NS`, as dig +trace does.
async fn hints_from_server(client: &Client, server: SocketAddr) -> Result<RootHints> {
    let mut c = ClientConfig {
        ..client.config.clone()
    };
    c.recursion_desired = true;
    let asker = client.fork(c);
    let x = asker
        .query(&[server], &Name::root(), RecordType::NS)
        .await
        .with_context(|| {
            format!("ask {server} for the root servers (or give --root-hints FILE)")
        })?;
    let mut servers = Vec::new();
    for r in &x.reply.answers {
        if let RData::NS(ns) = &r.data {
            let ips: Vec<IpAddr> = x
                .reply
                .additionals
                .iter()
                .filter(|g| g.name == ns.0)
                .filter_map(|g| match &g.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            if !ips.is_empty() {
                servers.push((ns.0.clone(), ips));
            }
        }
    }
    if servers.is_empty() {
        bail!("{server} gave no root servers with addresses: give --root-hints FILE");
    }
    Ok(RootHints { servers })
}

async fn serve(a: ServeArgs) -> Result<()> {
    let listen =
        parse_addr(&a.listen, 1053).with_context(|| format!("bad --listen {}", a.listen))?;
    let upstream = if let Some(p) = &a.root_hints {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("read root hints {}", p.display()))?;
        Upstream::Iterate {
            hints: RootHints::parse(&text).map_err(anyhow::Error::msg)?,
            config: IterConfig {
                port: a.port,
                ..IterConfig::default()
            },
        }
    } else if !a.forward.is_empty() {
        let servers = a
            .forward
            .iter()
            .map(|s| parse_addr(s, 53).with_context(|| format!("bad --forward {s}")))
            .collect::<Result<Vec<_>>>()?;
        Upstream::Forward(servers)
    } else {
        bail!(
            "say where answers come from: --forward ADDR (a recursive server) or --root-hints FILE"
        );
    };
    let dot = dot_listen(&a)?;
    let allow = if a.allow.is_empty() {
        vec!["127.0.0.0/8".parse()?, "::1/128".parse()?]
    } else {
        a.allow
    };
    let config = ResolverConfig {
        listen,
        upstream,
        allow,
        cache_bytes: a.cache_size,
        timeout: a.timeout,
        seed: a.seed,
        udp_workers: a.udp_workers,
        max_pending: a.max_pending,
        max_tcp_per_client: a.max_tcp_per_client,
        dot,
    };
    let shutdown = shutdown_on_signals()?;
    let resolver = run_resolver(config, shutdown)
        .await
        .with_context(|| format!("serve on {listen}"))?;
    outln!("stats {}", resolver.report());
    Ok(())
}

/// The DNS-over-TLS listener from `--dot-listen` and the certificate options.
fn dot_listen(a: &ServeArgs) -> Result<Option<DotListen>> {
    let identity = match (&a.tls_cert, &a.tls_key, &a.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(ServerIdentity::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (_, _, Some(ca_out)) => Some(ServerIdentity::SelfSigned {
            ca_out: ca_out.clone(),
        }),
        _ => None,
    };
    let Some(addr) = &a.dot_listen else {
        if identity.is_some() {
            bail!("--tls-cert and --tls-self-signed need --dot-listen ADDR");
        }
        return Ok(None);
    };
    let listen = parse_addr(addr, 853).with_context(|| format!("bad --dot-listen {addr}"))?;
    let Some(identity) = identity else {
        bail!(
            "--dot-listen needs a certificate: give --tls-cert and --tls-key, or --tls-self-signed FILE"
        );
    };
    let acceptor = identity
        .acceptor()
        .context("cannot set up TLS for --dot-listen")?;
    if let Some(ca) = &a.tls_self_signed {
        outln!(
            "tls lab CA written to {}: give it to clients with --cacert",
            ca.display()
        );
    }
    Ok(Some(DotListen { listen, acceptor }))
}

async fn zone(a: ZoneArgs) -> Result<()> {
    let listen =
        parse_addr(&a.listen, 5300).with_context(|| format!("bad --listen {}", a.listen))?;
    let mut zones = Vec::new();
    for p in &a.zones {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("read zone file {}", p.display()))?;
        let z = Zone::parse(&text, &p.display().to_string(), None)?;
        tracing::info!(origin = %z.origin(), names = z.len(), file = %p.display(), "zone loaded");
        zones.push(z);
    }
    let shutdown = shutdown_on_signals()?;
    // Off on loopback by default: nothing outside the machine can reach it (the kernel drops
    // loopback sources arriving from outside), so it cannot reflect at anyone, and tests and
    // benchmarks send tens of thousands of queries a second from 127.0.0.1.
    let rate = a
        .rrl
        .unwrap_or(if listen.ip().is_loopback() { 0 } else { 20 });
    tracing::info!(
        rate,
        slip = a.rrl_slip,
        "response rate limit per /24 or /56 (0: off)"
    );
    let config = ZoneConfig {
        listen,
        max_tcp_per_client: a.max_tcp_per_client,
        rrl: RrlConfig {
            rate,
            slip: a.rrl_slip,
        },
        seed: a.seed,
    };
    let server = run_zone_server(config, Catalog::new(zones), shutdown)
        .await
        .with_context(|| format!("serve zones on {listen}"))?;
    outln!("stats {}", server.report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size("65536"), Ok(65_536));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1 G"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").unwrap_err().contains("32MiB"));
        assert!(parse_size("").is_err());
    }
}
