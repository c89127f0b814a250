//! `smtp`: serve SMTP into a Maildir, send a message, list and show what arrived.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use protolab_smtp::client::{TlsMode, TlsOptions};
use protolab_smtp::{
    DEFAULT_PORT, DEFAULT_TLS_PORT, Maildir, ServerConfig, SessionConfig, SmtpStats, Tls, client,
    inbox, maildir,
};
use protolab_transport::cli::{init_tracing, parse_duration};
use protolab_transport::tls::ServerIdentity;
use protolab_transport::{CancellationToken, TcpServerStats, bind_tcp, outln};

const EXAMPLES: &str = "\
Examples:
  smtp serve                                   # 127.0.0.1:2525 into ./maildir
  smtp serve --listen 127.0.0.1:0 --maildir /tmp/mail --max-size 10485760
  smtp send --from a@example.test --to b@example.test --subject hi -v
  smtp serve --tls-self-signed lab-ca.pem --tls-listen 127.0.0.1:4650
  smtp send --starttls --cacert lab-ca.pem --from a@example.test --to b@example.test -v
  swaks --server 127.0.0.1 --port 2525 --to b@example.test --pipeline
  smtp serve --http 127.0.0.1:8025             # and the web inbox at http://127.0.0.1:8025/
  smtp web --maildir ./maildir                 # the web inbox alone
  smtp list ./maildir
  smtp show ./maildir 1764045153.M1234P42Q0.myhost";

#[derive(Parser, Debug)]
#[command(
    name = "smtp",
    version,
    about = "An SMTP receiver that never loses mail: RFC 5321 server, Maildir delivery, a small client",
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
    /// Receive mail into a Maildir; 250 is sent only once a message is on disk for good.
    #[command(
        after_help = "Examples:\n  smtp serve\n  smtp serve --listen 127.0.0.1:0 --maildir /tmp/mail --idle-timeout 30s\n  \
                      smtp serve --drain-timeout 1m    # the first Ctrl-C lets sessions finish, a second exits\n  \
                      smtp serve --tls-cert target/lab-ca/server.pem --tls-key target/lab-ca/server.key --require-tls\n  \
                      smtp serve --tls-self-signed lab-ca.pem --tls-listen 127.0.0.1:4650   # STARTTLS on 2525, TLS on 4650"
    )]
    Serve {
        /// Address to listen on (a bare port means loopback).
        #[arg(long, default_value = "127.0.0.1:2525")]
        listen: String,
        /// The Maildir to deliver into (tmp/, new/ and cur/ are created).
        #[arg(long, default_value = "maildir")]
        maildir: PathBuf,
        /// The name in the greeting and the Received: headers [default: this machine's name].
        #[arg(long)]
        hostname: Option<String>,
        /// The largest message accepted, in octets (advertised as SIZE).
        #[arg(long, default_value_t = 32 * 1024 * 1024)]
        max_size: u64,
        /// Recipients per message; more get 452 4.5.3.
        #[arg(long, default_value_t = 100)]
        max_recipients: usize,
        /// Sessions at once; more get 421 at the greeting.
        #[arg(long, default_value_t = 1000)]
        max_connections: usize,
        /// How long a client may stay silent before 421 4.4.2.
        // `--timeout` is the old name, kept as a hidden alias so existing scripts still run.
        #[arg(long, alias = "timeout", default_value = "5m", value_parser = parse_duration)]
        idle_timeout: Duration,
        /// On SIGINT/SIGTERM, let sessions finish their messages for this long, then 421 4.3.2;
        /// a second signal exits at once.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// The certificate chain (PEM, server's first) for STARTTLS and --tls-listen.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Make a lab CA in memory and a certificate for localhost, 127.0.0.1, ::1 and the lab
        /// link's addresses; the CA certificate is written to FILE for clients' --cacert.
        #[arg(long, conflicts_with = "tls_cert", value_name = "FILE")]
        tls_self_signed: Option<PathBuf>,
        /// Also serve implicit TLS (RFC 8314) on this address, e.g. 127.0.0.1:4650.
        #[arg(long, value_name = "ADDR")]
        tls_listen: Option<String>,
        /// Answer MAIL, RCPT, DATA and VRFY with 530 5.7.0 until the client has said STARTTLS.
        #[arg(long)]
        require_tls: bool,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Serve an existing Maildir's web inbox and JSON API, without SMTP.
    #[command(
        after_help = "Examples:\n  smtp web --maildir ./maildir            # http://127.0.0.1:8025/\n  \
                      smtp web --maildir ./maildir --http 0.0.0.0:8025 --http-auth creds.txt\n  \
                      curl -s http://127.0.0.1:8025/api/v1/messages"
    )]
    Web {
        /// The Maildir to show.
        #[arg(long, default_value = "maildir")]
        maildir: PathBuf,
        #[command(flatten)]
        web: WebArgs,
    },
    /// Send one message and show the dialog with -v.
    #[command(
        after_help = "Examples:\n  smtp send --from a@example.test --to b@example.test -v\n  \
                            smtp send --server 127.0.0.1:2525 --from a@x.test --to b@x.test --to c@x.test --body-file note.txt"
    )]
    Send {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:2525")]
        server: String,
        /// The envelope sender (MAIL FROM) and From: header.
        #[arg(long)]
        from: String,
        /// An envelope recipient (RCPT TO); repeat for more.
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long, default_value = "A message from smtp send")]
        subject: String,
        /// The body, from a file (line endings become CRLF) [default: a short greeting].
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// The name given in EHLO.
        #[arg(long, default_value = "client.example.test")]
        helo: String,
        /// How long to wait for each reply.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
        /// Say STARTTLS after EHLO and send the message over TLS; fail if it is not offered.
        #[arg(long, conflicts_with = "tls")]
        starttls: bool,
        /// Speak TLS from the first octet (the implicit-TLS port, e.g. 4650).
        #[arg(long)]
        tls: bool,
        /// Trust the CAs in FILE (PEM) instead of the system's, e.g. target/lab-ca/ca.pem.
        #[arg(long, value_name = "FILE")]
        cacert: Option<PathBuf>,
        /// The name the server's certificate must be valid for [default: the server's address].
        #[arg(long, value_name = "NAME")]
        tls_name: Option<String>,
    },
    /// List the messages in a Maildir's new/ and cur/.
    #[command(after_help = "Examples:\n  smtp list ./maildir\n  smtp list ./maildir --json")]
    List {
        /// The Maildir.
        dir: PathBuf,
    },
    /// Print one message as stored (an id prefix is enough).
    #[command(
        after_help = "Examples:\n  smtp show ./maildir 1764045153.M1234P42Q0\n  smtp show ./maildir 17640 --json"
    )]
    Show {
        /// The Maildir.
        dir: PathBuf,
        /// The message's id (its file name), or a unique prefix of it.
        id: String,
    },
}

/// The web inbox's options, shared by `serve` (off unless `--http` is given) and `web`.
#[derive(clap::Args, Debug)]
struct WebArgs {
    /// Serve the web inbox and its JSON API on this address (`smtp web`: default
    /// 127.0.0.1:8025).
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    /// A file holding `user:password`, required by HTTP basic authentication (needed to bind
    /// the inbox anywhere but loopback).
    #[arg(long, value_name = "FILE")]
    http_auth: Option<PathBuf>,
}

/// Opens the inbox of `dir` and binds it as `web` says; `None` without `--http` when
/// `default` is `None`.
fn bind_inbox(
    web: &WebArgs,
    dir: &std::path::Path,
    default: Option<&str>,
) -> Result<Option<(tokio::net::TcpListener, Arc<inbox::Inbox>)>> {
    let Some(spec) = web.http.as_deref().or(default) else {
        return Ok(None);
    };
    let addr = protolab_transport::parse_addr(spec, inbox::DEFAULT_HTTP_PORT)
        .map_err(|e| Usage(format!("--http {spec:?}: {e}")))?;
    let auth = match &web.http_auth {
        Some(path) => Some(inbox::read_credentials(path)?),
        None if !addr.ip().is_loopback() => {
            return Err(Usage(format!(
                "--http {addr}: the inbox shows every message; outside loopback give \
                 --http-auth FILE (a user:password line)"
            ))
            .into());
        }
        None => None,
    };
    let config = inbox::InboxConfig {
        auth,
        ..inbox::InboxConfig::default()
    };
    let inbox = inbox::Inbox::open(dir, config)?;
    let listener =
        bind_tcp(addr).with_context(|| format!("cannot listen on {addr}; is the port in use?"))?;
    Ok(Some((listener, inbox)))
}

/// A command line that cannot be run as given: exit code 2, as clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line, `what: why: why`, leaving out a cause whose text an
/// outer message already holds (the library's errors name their cause themselves).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> Result<()> {
    let base = match cli.command {
        Cmd::Serve { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    init_tracing(base, cli.verbose);
    match cli.command {
        Cmd::Serve {
            listen,
            maildir,
            hostname,
            max_size,
            max_recipients,
            max_connections,
            idle_timeout,
            drain_timeout,
            tls_cert,
            tls_key,
            tls_self_signed,
            tls_listen,
            require_tls,
            web,
        } => {
            let addr = protolab_transport::parse_addr(&listen, DEFAULT_PORT)
                .with_context(|| format!("bad --listen {listen:?}"))?;
            let identity = match (tls_cert, tls_key, tls_self_signed) {
                (Some(cert), Some(key), _) => Some(ServerIdentity::Files { cert, key }),
                (_, _, Some(ca_out)) => Some(ServerIdentity::SelfSigned { ca_out }),
                _ => None,
            };
            if identity.is_none() && (tls_listen.is_some() || require_tls) {
                return Err(Usage(
                    "--tls-listen and --require-tls need a certificate: give --tls-cert and \
                     --tls-key, or --tls-self-signed FILE"
                        .into(),
                )
                .into());
            }
            let tls_addr = match &tls_listen {
                Some(t) => Some(
                    protolab_transport::parse_addr(t, DEFAULT_TLS_PORT)
                        .map_err(|e| Usage(format!("--tls-listen {t:?}: {e}")))?,
                ),
                None => None,
            };
            let hostname = hostname.unwrap_or_else(protolab_smtp::system_hostname);
            // The name goes into the greeting, every Received: header and every message's file
            // name: one word of printable characters.
            if hostname.is_empty()
                || hostname.contains(|c: char| c.is_control() || c.is_whitespace())
            {
                return Err(Usage(format!(
                    "--hostname: {hostname:?} is not a host name: give one word without spaces or \
                     control characters"
                ))
                .into());
            }
            let config = ServerConfig {
                session: SessionConfig {
                    hostname: hostname.clone(),
                    max_size,
                    max_recipients,
                    require_tls,
                    ..SessionConfig::default()
                },
                max_connections,
                idle_timeout,
                drain_timeout,
                tls: None,
            };
            serve(addr, tls_addr, identity, &maildir, config, &web, cli.json)
        }
        Cmd::Web { maildir, web } => web_only(&maildir, &web, cli.json),
        Cmd::Send {
            server,
            from,
            to,
            subject,
            body_file,
            helo,
            timeout,
            starttls,
            tls,
            cacert,
            tls_name,
        } => {
            let mode = match (starttls, tls) {
                (true, _) => TlsMode::StartTls,
                (false, true) => TlsMode::Implicit,
                (false, false) => TlsMode::Off,
            };
            if mode == TlsMode::Off && (cacert.is_some() || tls_name.is_some()) {
                return Err(
                    Usage("--cacert and --tls-name need --starttls or --tls".into()).into(),
                );
            }
            let tls_options = TlsOptions {
                mode,
                cacert,
                name: tls_name,
            };
            let server = protolab_transport::parse_addr(&server, DEFAULT_PORT)
                .with_context(|| format!("bad --server {server:?}"))?;
            let body = match body_file {
                Some(path) => std::fs::read(&path)
                    .with_context(|| format!("cannot read --body-file {}", path.display()))?,
                None => b"Hello from protolab's smtp send.\n".to_vec(),
            };
            let msg = client::Message {
                from,
                to,
                subject,
                body,
                helo,
            };
            msg.check()
                .map_err(|e| Usage(format!("--{}: {}", e.field, e.why)))?;
            send(
                server,
                &msg,
                timeout,
                &tls_options,
                cli.verbose > 0,
                cli.json,
            )
        }
        Cmd::List { dir } => list(&dir, cli.json),
        Cmd::Show { dir, id } => show(&dir, &id, cli.json),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn serve(
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    identity: Option<ServerIdentity>,
    dir: &std::path::Path,
    mut config: ServerConfig,
    web: &WebArgs,
    json: bool,
) -> Result<()> {
    let maildir = Arc::new(
        Maildir::open(dir, &config.session.hostname)
            .with_context(|| format!("cannot use --maildir {}", dir.display()))?,
    );
    if let Some(identity) = &identity {
        let acceptor = identity.acceptor().with_context(|| match identity {
            ServerIdentity::Files { cert, .. } => {
                format!("cannot use --tls-cert {}", cert.display())
            }
            ServerIdentity::SelfSigned { ca_out } => {
                format!("cannot use --tls-self-signed {}", ca_out.display())
            }
        })?;
        config.tls = Some(Tls { acceptor });
        if let ServerIdentity::SelfSigned { ca_out } = identity {
            outln!(
                "tls lab CA written to {}: give it to clients with --cacert",
                ca_out.display()
            );
        }
    }
    runtime()?.block_on(async move {
        let listener = bind_tcp(addr)
            .with_context(|| format!("cannot listen on {addr}; is the port in use?"))?;
        let local = listener.local_addr()?;
        let tls_listener = match tls_addr {
            Some(a) => Some(bind_tcp(a).with_context(|| {
                format!("cannot listen on --tls-listen {a}; is the port in use?")
            })?),
            None => None,
        };
        let web = bind_inbox(web, dir, None)?;
        // Before the announcement, so that a signal sent as soon as it is read drains.
        let shutdown = shutdown_on_signals_twice();
        outln!("listening tcp {local}");
        if let Some(l) = &tls_listener {
            outln!("listening tls {}", l.local_addr()?);
        }
        if let Some((http, inbox)) = web {
            outln!("listening http {} (web inbox)", http.local_addr()?);
            tokio::spawn(inbox::run(http, inbox, shutdown.clone()));
        }
        if config.tls.is_some() {
            tracing::info!(require_tls = config.session.require_tls, "STARTTLS offered");
        }
        tracing::info!(maildir = %maildir.root().display(), "delivering into Maildir");
        let stats = Arc::new(SmtpStats::default());
        let tcp_stats = Arc::new(TcpServerStats::default());
        protolab_smtp::serve(
            listener,
            tls_listener,
            config,
            maildir,
            shutdown,
            stats.clone(),
            tcp_stats.clone(),
        )
        .await
        .context("the server stopped")?;
        let stored = stats.messages_stored.load(Ordering::Relaxed);
        let sessions = tcp_stats.accepted.load(Ordering::Relaxed);
        if json {
            let report = serde_json::json!({
                "listen": local.to_string(),
                "sessions": sessions,
                "busy": tcp_stats.busy.load(Ordering::Relaxed),
                "stats": &*stats,
            });
            outln!("{report}");
        } else {
            tracing::info!(sessions, stored, "stopped");
        }
        Ok(())
    })
}

/// `smtp web`: the inbox of an existing Maildir, without SMTP.
fn web_only(dir: &std::path::Path, web: &WebArgs, json: bool) -> Result<()> {
    runtime()?.block_on(async move {
        let started = std::time::Instant::now();
        let (listener, inbox) =
            bind_inbox(web, dir, Some("127.0.0.1:8025"))?.context("no address to serve on")?;
        let local = listener.local_addr()?;
        let indexed = inbox.index.read().len();
        tracing::info!(indexed, elapsed = ?started.elapsed(), "Maildir indexed");
        let shutdown = shutdown_on_signals_twice();
        outln!("listening http {local}");
        let report = inbox::run(listener, inbox, shutdown)
            .await
            .context("the server stopped")?;
        if json {
            outln!(
                "{}",
                serde_json::json!({ "listen": local.to_string(), "http": report })
            );
        } else {
            tracing::info!(requests = report.requests, "stopped");
        }
        Ok(())
    })
}

/// A token cancelled by the first SIGINT or SIGTERM, which starts the drain; a second signal
/// ends the process at once with 130 (128 + SIGINT), for an operator who will not wait.
///
/// A session cut this way has not been told 250 for the message it was sending, so nothing
/// acknowledged is lost: its client retries, and the partial file in `tmp/` is what a crash
/// leaves (removed at a later start once it is 36 hours old).
fn shutdown_on_signals_twice() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let fire = token.clone();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the process with SIGKILL");
        return token;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: draining; a second signal exits at once"),
            _ = term.recv() => tracing::info!("SIGTERM: draining; a second signal exits at once"),
        }
        fire.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting for sessions");
        std::process::exit(130);
    });
    token
}

fn send(
    server: SocketAddr,
    msg: &client::Message,
    timeout: Duration,
    tls: &TlsOptions,
    show: bool,
    json: bool,
) -> Result<()> {
    let mut dialog = |line: &str| {
        if show {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    };
    let report = runtime()?
        .block_on(client::send(server, msg, timeout, tls, &mut dialog))
        .context("sending failed")?;
    if json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        let over = report
            .tls
            .as_ref()
            .map(|t| format!(" over {t}"))
            .unwrap_or_default();
        outln!(
            "sent {} octets to {}{over}: {}",
            report.octets,
            report.server,
            report.reply
        );
    }
    Ok(())
}

fn list(dir: &std::path::Path, json: bool) -> Result<()> {
    let messages = maildir::list(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&messages)?);
        return Ok(());
    }
    if messages.is_empty() {
        outln!("no messages in {}", dir.display());
    }
    for m in &messages {
        outln!("{}  {:>7} octets  {}", m.id, m.size, m.folder);
        outln!(
            "    from {}  to {}",
            m.return_path,
            m.delivered_to.join(", ")
        );
        outln!("    subject: {}", m.subject);
    }
    Ok(())
}

fn show(dir: &std::path::Path, id: &str, json: bool) -> Result<()> {
    let path = maildir::find(dir, id)?;
    if json {
        let content =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let head_end = content
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(content.len(), |i| i + 2);
        let headers: Vec<_> = maildir::parse_headers(&content[..head_end])
            .into_iter()
            .map(|(n, v)| serde_json::json!([n, v]))
            .collect();
        let report = serde_json::json!({
            "id": path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "path": path.display().to_string(),
            "size": content.len(),
            "headers": headers,
            "body": String::from_utf8_lossy(content.get(head_end + 2..).unwrap_or_default()),
        });
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    match std::io::copy(&mut file, &mut out).and_then(|_| out.flush()) {
        // The reader went away (`smtp show ... | head`): nothing more to do, and no failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result
            .map(|_| ())
            .with_context(|| format!("cannot copy {} to standard output", path.display())),
    }
}
