//! `http`: an HTTP/1.1 origin server for the lab, and a client that shows both messages.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use protolab_http::cache::CacheConfig;
use protolab_http::client::{self, Exchange, GetConfig};
use protolab_http::cookie::CookieJar;
use protolab_http::proxy::{self, ProxyConfig, Upstream};
use protolab_http::serve::{self, ServeConfig};
use protolab_http::{DEFAULT_PORT, Limits, PROXY_PORT};
use protolab_transport::cli::{init_tracing, parse_duration};
use protolab_transport::{out, outln};

const EXAMPLES: &str = "\
Examples:
  http serve --root ./site                     # 127.0.0.1:8080
  http get http://127.0.0.1:8080/echo
  http get http://127.0.0.1:8080/cookies/set?flavour=oat http://127.0.0.1:8080/cookies
  http get -X POST -d 'a=1' -H 'X-Trace: on' http://127.0.0.1:8080/echo --json
  http get -c jar.txt http://127.0.0.1:8080/cookies   # run twice: the visit counter goes up
  http get --resolve example.test:8080:127.0.0.1 http://example.test:8080/cache/60
  curl -v http://127.0.0.1:8080/status/418
  http proxy --upstream http://127.0.0.1:8080  # a caching reverse proxy on 127.0.0.1:3128
  HTTP_PROXY=http://127.0.0.1:3128 curl -si http://127.0.0.1:8080/cache/60   # forward proxy";

#[derive(Parser, Debug)]
#[command(
    name = "http",
    version,
    about = "HTTP/1.1 without surprises: a lab origin server and a client that shows both messages",
    after_help = EXAMPLES
)]
struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Report as JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve files and the lab endpoints (/echo, /cookies, /cache/N, /status/N, /delay/D,
    /// /bytes/N, /stream/N); prints `listening tcp ADDR` once bound.
    #[command(
        after_help = "Examples:\n  http serve\n  http serve --root ./site --listen 127.0.0.1:0\n  \
                            http serve --max-body 1048576 --idle-timeout 5s --threads 1\n  \
                            http serve --listen 127.0.0.1:8443 --tls-self-signed lab-ca.pem   # HTTPS"
    )]
    Serve {
        /// Address to listen on (a bare port means loopback).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Serve files from this folder (index.html for folders).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Connections at once; more get 503.
        #[arg(long, default_value_t = 20_000, value_parser = protolab_transport::cli::parse_at_least_one)]
        max_connections: usize,
        /// The largest request body, in bytes (413 beyond).
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        max_body: u64,
        /// How long a request head may take once its first byte arrived (408 beyond).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        head_timeout: Duration,
        /// How long each read of a request body may wait (408 beyond).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        body_timeout: Duration,
        /// How long a keep-alive connection may wait for its next request.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// The longest /delay honoured.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        max_delay: Duration,
        /// Worker threads, each with its own event loop (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// HTTPS with this certificate chain (PEM); prints `listening tls ADDR`.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// HTTPS with a lab CA made in memory (a certificate for localhost, 127.0.0.1, ::1 and
        /// the lab link's addresses); the CA certificate is written to FILE for --cacert.
        #[arg(long, value_name = "FILE", conflicts_with = "tls_cert")]
        tls_self_signed: Option<PathBuf>,
        /// No TLS session resumption (no session cache, no tickets): every connection pays a
        /// full handshake, as for `cargo xtask bench tls`.
        #[arg(long)]
        tls_no_resumption: bool,
    },
    /// Send requests and show both messages with the timing of each phase, like curl -v.
    #[command(after_help = "Examples:\n  http get http://127.0.0.1:8080/\n  \
                            http get http://127.0.0.1:8080/a http://127.0.0.1:8080/b   # one connection, reused\n  \
                            http get -o page.html --proxy http://127.0.0.1:3128 http://example.test/\n  \
                            http get --json -H 'Accept: application/json' http://127.0.0.1:8080/echo\n  \
                            http get --cacert lab-ca.pem https://127.0.0.1:8443/   # HTTPS, verified")]
    Get {
        /// The URLs (http:// or https://); consecutive ones to one server share a connection.
        #[arg(required = true)]
        urls: Vec<String>,
        /// The method [default: GET, or POST with -d].
        #[arg(short = 'X', long = "request")]
        method: Option<String>,
        /// An extra field 'Name: value'; naming a default field replaces it, 'Name:' drops it.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// A request body (form-encoded unless -H says otherwise); @FILE reads a file.
        #[arg(short = 'd', long = "data")]
        data: Option<String>,
        /// Connect to ADDR for HOST:PORT, as curl's --resolve HOST:PORT:ADDR.
        #[arg(long)]
        resolve: Vec<String>,
        /// Send requests through this HTTP proxy (absolute-form request-target).
        #[arg(long)]
        proxy: Option<String>,
        /// Write the (last) response body to this file instead of standard output.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// How long each exchange may take.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
        /// A cookie jar in the Netscape format (curl's -b/-c): read before, written after.
        #[arg(long, short = 'c')]
        cookie_jar: Option<PathBuf>,
        /// For https:// URLs: trust the CAs in FILE (PEM) instead of the system's.
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
    },
    /// A caching proxy (RFC 9111): forward for absolute-form requests, reverse with --upstream;
    /// every response carries Cache-Status and Age. Prints `listening tcp ADDR` once bound.
    #[command(after_help = PROXY_EXAMPLES)]
    Proxy {
        /// Address to listen on (a bare port means loopback). Anything but loopback makes the
        /// proxy reachable by others: it forwards to any http:// host they name.
        #[arg(long, default_value = "127.0.0.1:3128")]
        listen: String,
        /// Reverse proxy: send origin-form requests to this origin (http://host:port).
        #[arg(long, value_parser = Upstream::parse)]
        upstream: Option<Upstream>,
        /// The cache's memory cap (responses, fields and keys), e.g. 64MiB; LRU beyond it.
        #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
        cache_size: usize,
        /// The largest response stored; larger ones stream through uncached.
        #[arg(long, default_value = "8MiB", value_parser = parse_bytes)]
        max_object: usize,
        /// Allow CONNECT beyond loopback: host:port, *:port or * (repeatable). Without it,
        /// tunnels go only to loopback addresses.
        #[arg(long)]
        allow_connect: Vec<String>,
        /// Connections at once; more get 503.
        #[arg(long, default_value_t = 10_000, value_parser = protolab_transport::cli::parse_at_least_one)]
        max_connections: usize,
        /// How long a client connection may stay silent.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// How long to wait for an origin: to connect, and for each read.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        upstream_timeout: Duration,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Write shell completions or man pages (used by `cargo xtask install`).
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
}

const PROXY_EXAMPLES: &str = "\
Examples:
  http proxy                                        # forward proxy on 127.0.0.1:3128
  HTTP_PROXY=http://127.0.0.1:3128 curl -si http://127.0.0.1:8080/cache/60
  http proxy --upstream http://127.0.0.1:8080       # reverse proxy (a gateway cache)
  http proxy --cache-size 256MiB --max-object 16MiB --json
  http proxy --allow-connect '*:443'                # CONNECT tunnels beyond loopback, port 443";

/// Parses a byte size such as `64MiB`, `512KiB` or `1000000`.
fn parse_bytes(text: &str) -> Result<usize, String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = match cli.command {
        Cmd::Serve { .. } | Cmd::Proxy { .. } => tracing::Level::INFO,
        Cmd::Get { .. } | Cmd::Generate(_) => tracing::Level::WARN,
    };
    init_tracing(base, cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => protolab_transport::cli::exit_with(Err::<(), _>(e)),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b
    };
    b.enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Generate(args) => {
            protolab_transport::cli::generate(<Cli as clap::CommandFactory>::command(), &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve {
            listen,
            root,
            max_connections,
            max_body,
            head_timeout,
            body_timeout,
            idle_timeout,
            max_delay,
            threads,
            tls_cert,
            tls_key,
            tls_self_signed,
            tls_no_resumption,
        } => {
            let addr = protolab_transport::parse_addr(&listen, DEFAULT_PORT)
                .with_context(|| format!("bad --listen {listen:?}"))?;
            let identity = match (tls_cert, tls_key, &tls_self_signed) {
                (Some(cert), Some(key), _) => {
                    Some(protolab_transport::tls::ServerIdentity::Files { cert, key })
                }
                (_, _, Some(ca_out)) => Some(protolab_transport::tls::ServerIdentity::SelfSigned {
                    ca_out: ca_out.clone(),
                }),
                _ => None,
            };
            let tls = match &identity {
                // ALPN `http/1.1`: the only protocol this server speaks, said in the handshake.
                Some(id) => Some(protolab_transport::tls::with_alpn(
                    &id.acceptor().context("cannot set up HTTPS")?,
                    &[b"http/1.1"],
                )),
                None => None,
            };
            let tls = match tls {
                Some(t) if tls_no_resumption => {
                    Some(protolab_transport::tls::without_resumption(&t))
                }
                other => other,
            };
            if let Some(ca) = &tls_self_signed {
                protolab_transport::cli::lab_ca_written(ca, cli.json);
            }
            if let Some(r) = &root
                && !r.is_dir()
            {
                anyhow::bail!("--root {}: not a folder", r.display());
            }
            let mut config = ServeConfig {
                listen: addr,
                max_connections,
                head_timeout,
                body_timeout,
                idle_timeout,
                limits: Limits {
                    max_body,
                    ..Limits::default()
                },
                tls,
                ..ServeConfig::default()
            };
            config.origin.root = root;
            config.origin.max_delay = max_delay;
            config.workers = if threads == 0 {
                std::thread::available_parallelism().map_or(1, usize::from)
            } else {
                threads
            };
            runtime(1)?.block_on(async move {
                let bound = serve::bind(&config)?;
                for (proto, addr) in bound.local_addrs() {
                    protolab_transport::cli::listening(proto, addr, cli.json);
                }
                let shutdown = protolab_transport::shutdown_on_signals();
                let report = serve::run(bound, config, shutdown).await?;
                if cli.json {
                    // One line: a --json stream is JSON lines.
                    outln!("{}", serde_json::to_string(&report)?);
                } else {
                    let [r1, r2, r3, r4, r5] = report.responses;
                    outln!(
                        "stopped: {} connections ({} busy), {} requests; responses 1xx {r1} 2xx {r2} \
                         3xx {r3} 4xx {r4} 5xx {r5}; {} refused, {} timed out, {} idle closed",
                        report.connections,
                        report.busy,
                        report.requests,
                        report.refused,
                        report.timeouts,
                        report.idle_closed
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Proxy {
            listen,
            upstream,
            cache_size,
            max_object,
            allow_connect,
            max_connections,
            idle_timeout,
            upstream_timeout,
            threads,
        } => {
            let addr = protolab_transport::parse_addr(&listen, PROXY_PORT)
                .with_context(|| format!("bad --listen {listen:?}"))?;
            let mut config = ProxyConfig {
                listen: addr,
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
            runtime(threads)?.block_on(async move {
                let bound = proxy::bind(&config)?;
                for (proto, addr) in bound.local_addrs() {
                    protolab_transport::cli::listening(proto, addr, cli.json);
                }
                let shutdown = protolab_transport::shutdown_on_signals();
                let report = proxy::run(bound, config, shutdown).await?;
                if cli.json {
                    // One line: a --json stream is JSON lines.
                    outln!("{}", serde_json::to_string(&report)?);
                } else {
                    let c = &report.cache;
                    outln!(
                        "stopped: {} connections, {} requests: {} hits, {} misses, {} revalidated, \
                         {} stale served; {} to origins ({} failed), {} refused, {} tunnels ({} bytes)",
                        report.connections,
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
                        "cache: {} responses, {} bytes (at most {}, cap {}); {} stored, {} evicted, \
                         {} invalidated",
                        c.entries,
                        c.bytes,
                        c.peak_bytes,
                        report.cache_max_bytes,
                        c.stored,
                        c.evicted,
                        c.invalidated
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Cmd::Get {
            urls,
            method,
            headers,
            data,
            resolve,
            proxy,
            output,
            timeout,
            cookie_jar,
            cacert,
        } => {
            let data = match data {
                Some(d) => Some(match d.strip_prefix('@') {
                    Some(path) => Bytes::from(
                        std::fs::read(path).with_context(|| format!("cannot read -d @{path}"))?,
                    ),
                    None => Bytes::from(d),
                }),
                None => None,
            };
            let config = GetConfig {
                urls,
                method,
                headers,
                data,
                resolve,
                proxy,
                timeout,
                cacert,
                ..GetConfig::default()
            };
            let json = cli.json;
            let printing_body = output.is_none() && !json;
            // Without --cookie-jar there is no jar at all: each request stands alone.
            let jar = std::cell::RefCell::new(load_jar(cookie_jar.as_deref())?);
            let keeping = cookie_jar.is_some();
            let exchanges = runtime(1)?.block_on(client::get(
                &config,
                |url| {
                    let url = url::Url::parse(url).ok().filter(|_| keeping)?;
                    jar.borrow_mut().cookie_header(&url, now())
                },
                |ex| {
                    if keeping && let Ok(url) = url::Url::parse(&ex.url) {
                        for header in &ex.set_cookies {
                            if let Err(why) = jar.borrow_mut().set_cookie(header, &url, now()) {
                                tracing::info!(%header, ?why, "cookie refused");
                            }
                        }
                    }
                    if !json {
                        print_exchange(ex, printing_body);
                    }
                },
            ))?;
            if let Some(path) = &cookie_jar {
                std::fs::write(path, jar.borrow().to_netscape(now()))
                    .with_context(|| format!("cannot write --cookie-jar {}", path.display()))?;
            }
            if let (Some(path), Some(last)) = (&output, exchanges.last()) {
                std::fs::write(path, &last.body)
                    .with_context(|| format!("cannot write -o {}", path.display()))?;
            }
            if json {
                // One line: a --json report is a JSON line.
                outln!("{}", serde_json::to_string(&exchanges)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Microseconds as milliseconds, for the human lines.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Seconds since the epoch, the cookie jar's clock.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn load_jar(path: Option<&std::path::Path>) -> Result<CookieJar> {
    let mut jar = CookieJar::new(protolab_http::cookie::Limits::default());
    if let Some(path) = path {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let report = jar.load_netscape(&text, now());
                tracing::debug!(?report, "cookie jar loaded");
            }
            // A jar that does not exist yet is created when the exchanges are done.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read --cookie-jar {}", path.display()));
            }
        }
    }
    Ok(jar)
}

fn print_exchange(ex: &Exchange, body: bool) {
    let t = &ex.timing;
    outln!(
        "* {} {} ({}); name lookup {:.3} ms, connect {:.3} ms",
        if ex.reused {
            "reusing connection to"
        } else {
            "connected to"
        },
        ex.remote,
        ex.url,
        ms(t.name_lookup_us),
        ms(t.connect_us)
    );
    for line in &ex.request {
        outln!("> {line}");
    }
    outln!(">");
    if ex.request_body_bytes > 0 {
        outln!("* {} request body bytes sent", ex.request_body_bytes);
    }
    for line in &ex.interim {
        outln!("< {line}");
        outln!("<");
    }
    for line in &ex.response {
        outln!("< {line}");
    }
    outln!("<");
    for line in &ex.trailers {
        outln!("< (trailer) {line}");
    }
    let framing = match ex.framing {
        protolab_http::Framing::None => "no body".to_owned(),
        protolab_http::Framing::Length(n) => format!("Content-Length {n}"),
        protolab_http::Framing::Chunked => "chunked".to_owned(),
        protolab_http::Framing::Close => "until close".to_owned(),
    };
    outln!(
        "* request sent {:.3} ms, first byte {:.3} ms, done {:.3} ms; {} body bytes ({framing})",
        ms(t.request_sent_us),
        ms(t.first_byte_us),
        ms(t.done_us),
        ex.body_bytes
    );
    if body && !ex.body.is_empty() {
        match std::str::from_utf8(&ex.body) {
            Ok(text) => {
                out!("{text}");
                if !text.ends_with('\n') {
                    outln!();
                }
            }
            Err(_) => outln!("* [{} bytes of binary body: use -o FILE]", ex.body.len()),
        }
    }
}
