//! `http`: HTTP/1.1 tools; `http proxy` is the caching proxy.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use protolab_http::cache::CacheConfig;
use protolab_http::proxy::{self, ProxyConfig, Upstream};
use protolab_transport::cli::parse_duration;
use protolab_transport::outln;

const EXAMPLES: &str = "\
Examples:
    http proxy                                        forward proxy on 127.0.0.1:3128
    HTTP_PROXY=http://127.0.0.1:3128 curl -si http://127.0.0.1:8080/   then look at Cache-Status and Age
    http proxy --upstream http://127.0.0.1:8080       reverse proxy (a gateway cache) for one origin
    http proxy --cache-size 256MiB --max-object 16MiB
    http proxy --allow-connect '*:443'                CONNECT tunnels beyond loopback, to port 443
";

fn addr(text: &str) -> Result<SocketAddr, String> {
    protolab_transport::parse_addr(text, protolab_http::PROXY_PORT).map_err(|e| e.to_string())
}

fn bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: usize = n
        .parse()
        .map_err(|_| format!("{text}: write a size like 64MiB, 512KiB or 1000000"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text}: unknown unit; use B, KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text}: too large"))
}

#[derive(Debug, Parser)]
#[command(name = "http", version, about, after_help = EXAMPLES)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A caching proxy (RFC 9111): forward, or reverse with --upstream; prints `listening tcp ADDR`.
    #[command(after_help = EXAMPLES)]
    Proxy {
        /// Address to listen on: host:port, [v6]:port, or a port (loopback).
        #[arg(long, default_value = "127.0.0.1:3128", value_parser = addr)]
        listen: SocketAddr,
        /// Reverse proxy: send origin-form requests to this origin (http://host:port).
        #[arg(long, value_parser = Upstream::parse)]
        upstream: Option<Upstream>,
        /// The cache's memory cap in bytes (responses, fields and keys); LRU beyond it.
        #[arg(long, default_value = "64MiB", value_parser = bytes)]
        cache_size: usize,
        /// The largest response stored; larger ones stream through uncached.
        #[arg(long, default_value = "8MiB", value_parser = bytes)]
        max_object: usize,
        /// Allow CONNECT beyond loopback: host:port, *:port or * (repeatable).
        #[arg(long)]
        allow_connect: Vec<String>,
        /// Connections served at once; the next client gets 503.
        #[arg(long, default_value_t = 10_000)]
        max_connections: usize,
        /// Close a client connection silent for this long.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// How long to wait for an origin (connect, and each read).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        upstream_timeout: Duration,
        /// Print the report as JSON when stopped.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    protolab_transport::cli::init_tracing(tracing::Level::INFO, cli.verbose);
    match cli.cmd {
        Cmd::Proxy {
            listen,
            upstream,
            cache_size,
            max_object,
            allow_connect,
            max_connections,
            idle_timeout,
            upstream_timeout,
            json,
        } => {
            let mut config = ProxyConfig {
                upstream,
                cache: CacheConfig {
                    max_bytes: cache_size,
                    max_object_bytes: max_object.min(cache_size),
                    ..CacheConfig::default()
                },
                allow_connect,
                upstream_timeout,
                ..ProxyConfig::default()
            };
            config.tcp.max_connections = max_connections;
            config.tcp.idle_timeout = Some(idle_timeout);
            let listener = protolab_transport::bind_tcp(listen).with_context(|| {
                format!("bind {listen}: is another proxy running there? try --listen 127.0.0.1:0")
            })?;
            outln!("listening tcp {}", listener.local_addr()?);
            let shutdown = protolab_transport::shutdown_on_signals();
            let report = proxy::run(listener, config, shutdown).await?;
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                let c = &report.cache;
                outln!(
                    "requests {} (hits {}, misses {}, revalidated {}, stale served {}), upstream {} ({} errors), refused {}, tunnels {} ({} bytes)",
                    report.requests,
                    c.hits,
                    c.misses,
                    c.revalidated,
                    c.stale_served,
                    report.upstream_requests,
                    report.upstream_errors,
                    report.refused,
                    report.tunnels,
                    report.tunnel_bytes
                );
                outln!(
                    "cache: {} responses, {} bytes now, {} at most, cap {}; stored {}, evicted {}, invalidated {}",
                    c.entries,
                    c.bytes,
                    c.peak_bytes,
                    report.cache_max_bytes,
                    c.stored,
                    c.evicted,
                    c.invalidated
                );
            }
            Ok(())
        }
    }
}
