//! `dns`: dig-like queries, a caching resolver and a lab zone server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;

use protolab_dns::client::{Client, ClientConfig};
use protolab_dns::iterate::{self, IterConfig, RootHints};
use protolab_dns::present;
use protolab_dns::rrl::RrlConfig;
use protolab_dns::server::{
    Bound, DotListen, ResolverConfig, Upstream, ZoneConfig, bind_resolver, bind_zone, run_resolver,
    run_zone,
};
use protolab_dns::zone::{Catalog, Zone};
use protolab_transport::cli::{Failure, init_tracing, parse_duration};
use protolab_transport::tls::ServerIdentity;
use protolab_transport::{out, outln, parse_addr};

const EXAMPLES: &str = "\
Examples:
  dns zone --zone examples/dns/example.test.zone --listen 127.0.0.1:5300
  dns query www.example.test A @127.0.0.1:5300
  dns serve --forward 127.0.0.1:5300

Exit status: 0 ok, 1 failure, 2 usage error, 9 no server answered.
";

#[derive(Parser)]
#[command(
    name = "dns",
    version,
    about = "A tiny DNS toolkit: dig-like queries, a caching resolver, lab zones",
    after_help = EXAMPLES
)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Reports (and the `listening` lines) as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a DNS question, like dig.
    ///
    /// dig's spellings work too: @SERVER before or after the name, +short, +tcp, +trace,
    /// +norecurse, +noedns, +json, +time=N, +tries=N, -p PORT, -t TYPE, and TYPEnnn for any type.
    #[command(after_help = "Examples:
  dns query example.test A @127.0.0.1:5300
  dns query @127.0.0.1 -p 5300 example.test MX +short
  dns query example.test MX @127.0.0.1 --port 5300 --short
  dns query example.test TYPE257 @127.0.0.1:5300                (CAA by number)
  dns query big.example.test TXT @127.0.0.1:5300 --no-edns     (TC, then TCP)
  dns query www.example.test --trace --root-hints root.hints --port 5300
  dns query example.test SOA --json
  dns query www.example.test @127.0.0.1:5300 @127.0.0.2:5300 --timeout 500ms   (2nd: fallback)
  dns query www.example.test @127.0.0.1:8853 --tls --cacert target/lab-ca/ca.pem   (DNS over TLS)")]
    Query(QueryArgs),
    /// Run a caching resolver on UDP and TCP.
    #[command(after_help = "Examples:
  dns serve --forward 127.0.0.1:5300
  dns serve --listen 127.0.0.1:1053 --root-hints root.hints
  dns serve --forward 127.0.0.1:5300 --allow 127.0.0.0/8 --allow 10.0.0.0/8 --cache-size 64MiB
  dns serve --forward 127.0.0.1:5300 --dot-listen 127.0.0.1:8853 --tls-self-signed lab-ca.pem
  dns serve --forward 127.0.0.1:853 --forward-tls --cacert lab-ca.pem --tls-name localhost

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
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

#[derive(clap::Args)]
struct QueryArgs {
    /// The name to look up.
    name: String,
    /// The record type (A by default, or TYPEnnn), and `@SERVER[:PORT]`, in any order; the
    /// name may come after `@SERVER` too.
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
    /// Forward over DNS over TLS (RFC 7858; port 853 unless given), on connections kept open
    /// and shared by many queries.
    #[arg(long, requires = "forward")]
    forward_tls: bool,
    /// With --forward-tls: trust the CAs in FILE (PEM) instead of the system's.
    #[arg(long, value_name = "FILE", requires = "forward_tls")]
    cacert: Option<PathBuf>,
    /// With --forward-tls: the name the upstream's certificate must be valid for [default: its
    /// address].
    #[arg(long, value_name = "NAME", requires = "forward_tls")]
    tls_name: Option<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse_from(dig_words(std::env::args()));
    protolab_transport::cli::set_json(cli.json);
    protolab_transport::cli::exit_with(start(cli))
}

/// dig's spellings in `dns query`, turned into this command's flags before clap reads them:
/// `+short`, `+tcp`, `+trace`, `+norecurse`/`+norec`, `+noedns`, `+json`, `+time=N`,
/// `+tries=N`, `-p PORT`, `-t TYPE`. A dig option without an equivalent is left as it is, and
/// [`query`] refuses it naming the flag to use.
fn dig_words(args: impl Iterator<Item = String>) -> Vec<String> {
    let args: Vec<String> = args.collect();
    if args.get(1).map(String::as_str) != Some("query") {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(word) = it.next() {
        let lower = word.to_ascii_lowercase();
        let mapped: Option<Vec<String>> = match lower.as_str() {
            "+short" => Some(vec!["--short".into()]),
            "+tcp" | "+vc" => Some(vec!["--tcp".into()]),
            "+trace" => Some(vec!["--trace".into()]),
            "+norecurse" | "+norec" => Some(vec!["--norecurse".into()]),
            "+noedns" => Some(vec!["--no-edns".into()]),
            "+json" => Some(vec!["--json".into()]),
            "+notcp" | "+recurse" | "+rec" | "+edns" | "+nocmd" | "+nostats" => Some(Vec::new()),
            "-p" => Some(vec!["--port".into(), it.next().unwrap_or_default()]),
            "-t" => Some(vec![it.next().unwrap_or_default()]),
            _ => {
                if let Some(n) = lower.strip_prefix("+time=") {
                    Some(vec!["--timeout".into(), format!("{n}s")])
                } else {
                    lower
                        .strip_prefix("+tries=")
                        .or_else(|| lower.strip_prefix("+retry="))
                        .map(|n| vec!["--tries".into(), n.to_owned()])
                }
            }
        };
        match mapped {
            Some(words) => out.extend(words),
            None => out.push(word),
        }
    }
    out
}

/// A record type by name (`MX`, `CAA`, `DS`) or by number (`TYPE15`, RFC 3597).
fn record_type(word: &str) -> Result<RecordType> {
    let upper = word.to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE") {
        let code: u16 = n.parse().map_err(|_| {
            Failure::usage(format!(
                "bad record type {word:?}: TYPE takes a number from 0 to 65535"
            ))
        })?;
        return Ok(RecordType::from(code));
    }
    upper.parse().map_err(|_| {
        Failure::usage(format!("unknown record type {word:?}"))
            .hint("use A, AAAA, MX, TXT, NS, SOA, CNAME, PTR, SRV, CAA, DS, ANY, or TYPEnnn for any other")
            .into()
    })
}

fn start(cli: Cli) -> Result<()> {
    let json = cli.json;
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
            Command::Query(a) => query(a, json).await,
            Command::Serve(a) => serve(a, json).await,
            Command::Zone(a) => zone(a, json).await,
            Command::Generate(g) => {
                protolab_transport::cli::generate(Cli::command(), &g)?;
                Ok(())
            }
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

async fn query(a: QueryArgs, json: bool) -> Result<()> {
    // dig takes @SERVER, the name and the type in any order: the first word that is neither a
    // server nor a dig option is the name, the next the type.
    let mut named: Vec<String> = Vec::new();
    let mut plain: Vec<&String> = Vec::new();
    for word in std::iter::once(&a.name).chain(&a.rest) {
        if let Some(s) = word.strip_prefix('@') {
            named.push(s.to_owned());
        } else if let Some(opt) = word.strip_prefix('+') {
            return Err(Failure::usage(format!("dig option +{opt} is not supported"))
                .hint(
                    "dns query takes +short, +tcp, +trace, +norecurse, +noedns, +json, +time=N, \
                     +tries=N and -p PORT; see dns query --help for the rest",
                )
                .into());
        } else {
            plain.push(word);
        }
    }
    let Some(name_text) = plain.first() else {
        return Err(Failure::usage("no name to look up")
            .hint("dns query www.example.test A @127.0.0.1:5300")
            .into());
    };
    if plain.len() > 2 {
        return Err(Failure::usage(format!(
            "too many words: {:?} (one name and one type)",
            plain
        ))
        .into());
    }
    // ASCII names keep their letter case (from_utf8 would lower it through IDNA mapping).
    let name = Name::from_ascii(name_text.as_str())
        .or_else(|_| Name::from_utf8(name_text.as_str()))
        .map_err(|_| {
            Failure::usage(format!(
                "bad name {name_text:?}: write a domain name like www.example.test"
            ))
        })?;
    let name = if name.is_fqdn() {
        name
    } else {
        name.append_domain(&Name::root())?
    };
    let qtype = match plain.get(1) {
        Some(t) => record_type(t)?,
        None => RecordType::A,
    };
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
    let transport = match (a.tls, a.tcp) {
        (true, _) => "tls",
        (false, true) => "tcp",
        (false, false) => "udp",
    };
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
        if json {
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
            outln!("{}", serde_json::to_string(&v)?);
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
    let list = servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    // What -v adds: whom we asked and what came back, for a query that "just failed".
    tracing::info!(
        "asking {list} over {transport} for {name} {qtype} (timeout {:?}, {} attempt(s))",
        a.timeout,
        a.tries
    );
    let x = client.query(&servers, &name, qtype).await.map_err(|e| {
        let what = format!("query {name} {qtype}: {e}");
        // No server answered at all: dig's status 9.
        if matches!(e, protolab_dns::client::ClientError::Timeout { .. }) {
            Failure::no_answer(what).hint("is a DNS server listening there (and on that port)?")
        } else {
            Failure::new(what)
        }
    })?;
    tracing::info!(
        "reply from {} over {}: {}, {} bytes in {} us{}",
        x.server,
        x.transport,
        protolab_dns::wire::rcode_name(x.reply.metadata.response_code),
        x.size,
        x.elapsed.as_micros(),
        if x.retried_over_tcp {
            " (truncated over UDP, asked again over TCP)"
        } else {
            ""
        }
    );
    if json {
        let mut v = present::message_json(&x.reply);
        v["server"] = serde_json::Value::String(x.server.to_string());
        v["transport"] = serde_json::Value::String(x.transport.into());
        v["retriedOverTcp"] = serde_json::Value::Bool(x.retried_over_tcp);
        v["messageSize"] = x.size.into();
        v["queryTimeUs"] = u64::try_from(x.elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .into();
        v["client"] = client.stats.snapshot();
        outln!("{}", serde_json::to_string(&v)?);
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

/// Asks every root server of the hints for `. NS` once at start and says in the log whether
/// any answers: hints that point nowhere (or the wrong `--port`) would otherwise show only as
/// a SERVFAIL for every query, seconds later. Its query id and port come from `--seed` too
/// (through `seed`), so a seeded run sends the same bytes every time.
async fn check_root_hints(hints: RootHints, port: u16, timeout: Duration, seed: Option<u64>) {
    let servers: Vec<SocketAddr> = hints
        .servers
        .iter()
        .flat_map(|(_, ips)| ips.iter().map(|ip| SocketAddr::new(*ip, port)))
        .collect();
    let config = ClientConfig {
        tcp: false,
        edns: true,
        recursion_desired: false,
        timeout,
        attempts: 1,
        tls: None,
    };
    // Another stream than the resolver's own: the same seed, but not the same first ids.
    let (rng, _) = protolab_transport::rng::seeded(seed.map(|s| s ^ 0x5eed_c4ec_0000_0001));
    let client = Client::new(config, rng);
    let list = servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match client.query(&servers, &Name::root(), RecordType::NS).await {
        Ok(x) => tracing::info!(server = %x.server, "a root server from the hints answers"),
        Err(e) => tracing::warn!(
            "no root server from --root-hints answers ({list}): {e}; every query will get \
             SERVFAIL. Check the hints file and --port (53 on the Internet, 5300 in the lab)"
        ),
    }
}

/// A server's start-up error: bind errors in the words every binary uses for them.
fn listen_error(listen: SocketAddr, e: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::AddrInUse | K::AddrNotAvailable | K::PermissionDenied
    ) {
        protolab_transport::cli::ListenError::new("udp and tcp", listen, e).into()
    } else {
        anyhow::Error::new(e).context(format!("serve on {listen}"))
    }
}

/// The `listening <proto> <addr>` lines, once every socket is bound and the signal handlers
/// are installed: a reader may act on them at once.
fn announce(bound: &Bound, json: bool) {
    for (proto, addr) in bound.local_addrs() {
        protolab_transport::cli::listening(proto, addr, json);
    }
}

/// The counters a server prints when it stops: one JSON line under `--json`, otherwise a
/// `name value` line per counter.
fn print_stats(report: &serde_json::Value, json: bool) {
    if json {
        let mut v = serde_json::json!({"event": "stats"});
        if let (Some(to), Some(from)) = (v.as_object_mut(), report.as_object()) {
            to.extend(from.clone());
        }
        outln!("{v}");
        return;
    }
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push(format!("  {prefix:<40} {other}")),
        }
    }
    let mut lines = Vec::new();
    walk("", report, &mut lines);
    outln!("counters:");
    for l in lines {
        outln!("{l}");
    }
}

async fn serve(a: ServeArgs, json: bool) -> Result<()> {
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
        let port = if a.forward_tls { 853 } else { 53 };
        let servers = a
            .forward
            .iter()
            .map(|s| parse_addr(s, port).with_context(|| format!("bad --forward {s}")))
            .collect::<Result<Vec<_>>>()?;
        if a.forward_tls {
            let config = protolab_transport::tls::client_config(a.cacert.as_deref())
                .context("cannot set up TLS for --forward-tls")?;
            Upstream::ForwardTls {
                servers,
                tls: protolab_dns::client::DotClient {
                    connector: protolab_transport::tls::TlsConnector::from(config),
                    name: a.tls_name.clone(),
                },
            }
        } else {
            Upstream::Forward(servers)
        }
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
    if let Upstream::Iterate { hints, config } = &config.upstream {
        tokio::spawn(check_root_hints(
            hints.clone(),
            config.port,
            a.timeout,
            a.seed,
        ));
    }
    let bound = bind_resolver(&config).map_err(|e| listen_error(listen, e))?;
    let shutdown = shutdown_on_signals()?;
    announce(&bound, json);
    let report = run_resolver(bound, config, shutdown)
        .await
        .context("dns serve")?;
    print_stats(&serde_json::to_value(report)?, json);
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
            return Err(
                Failure::usage("--tls-cert and --tls-self-signed need --dot-listen ADDR").into(),
            );
        }
        return Ok(None);
    };
    let listen = parse_addr(addr, 853).with_context(|| format!("bad --dot-listen {addr}"))?;
    let Some(identity) = identity else {
        return Err(Failure::usage(
            "--dot-listen needs a certificate: give --tls-cert and --tls-key, or --tls-self-signed FILE",
        )
        .into());
    };
    let acceptor = identity
        .acceptor()
        .context("cannot set up TLS for --dot-listen")?;
    if let Some(ca) = &a.tls_self_signed {
        protolab_transport::cli::lab_ca_written(ca, protolab_transport::cli::json());
    }
    Ok(Some(DotListen { listen, acceptor }))
}

async fn zone(a: ZoneArgs, json: bool) -> Result<()> {
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
        catalog: Catalog::new(zones),
    };
    let bound = bind_zone(&config).map_err(|e| listen_error(listen, e))?;
    let shutdown = shutdown_on_signals()?;
    announce(&bound, json);
    let report = run_zone(bound, config, shutdown)
        .await
        .context("dns zone")?;
    print_stats(&serde_json::to_value(report)?, json);
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
