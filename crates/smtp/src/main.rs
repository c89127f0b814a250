//! `smtp`: serve SMTP into a Maildir, send a message, list and show what arrived.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use protolab_smtp::client::{TlsMode, TlsOptions};
use protolab_smtp::{
    DEFAULT_PORT, DEFAULT_TLS_PORT, ServeError, ServerConfig, SessionConfig, Tls, WebConfig,
    client, inbox, maildir,
};
use protolab_transport::cli::{
    Failure, ListenError, init_tracing, listening, parse_at_least_one, parse_duration,
};
use protolab_transport::tls::ServerIdentity;
use protolab_transport::{bind_tcp, outln};

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
  smtp show ./maildir 1764045153.M1234P42Q0.myhost

Exit status: 0 success, 1 runtime failure, 2 usage error.";

#[derive(Parser, Debug)]
#[command(
    name = "smtp",
    version,
    about = "An SMTP receiver that never loses mail: RFC 5321 server, Maildir delivery, a small client",
    after_help = EXAMPLES
)]
struct Cli {
    /// More logging (-v one level more, -vv two); `smtp send -v` also shows the dialog.
    /// RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Reports, and the `listening` lines, as JSON lines on standard output.
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
                      smtp serve --tls-self-signed lab-ca.pem --tls-listen 127.0.0.1:4650\n      \
                      (STARTTLS on 2525, implicit TLS on 4650)"
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
        #[arg(long, default_value_t = 100, value_parser = parse_at_least_one)]
        max_recipients: usize,
        /// Sessions at once; more get 421 at the greeting.
        #[arg(long, default_value_t = 1000, value_parser = parse_at_least_one)]
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
    /// Shell completions and man pages, for `cargo xtask install`.
    #[command(hide = true)]
    Generate(protolab_transport::cli::GenerateArgs),
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

/// The web inbox `web` asks for; `None` without `--http` when `default` is `None`.
fn web_config(web: &WebArgs, default: Option<&str>) -> Result<Option<WebConfig>> {
    let Some(spec) = web.http.as_deref().or(default) else {
        return Ok(None);
    };
    let listen = protolab_transport::parse_addr(spec, inbox::DEFAULT_HTTP_PORT)
        .map_err(|e| Failure::usage(format!("--http {spec:?}: {e}")))?;
    let auth = match &web.http_auth {
        Some(path) => Some(inbox::read_credentials(path)?),
        None if !listen.ip().is_loopback() => {
            return Err(Failure::usage(format!(
                "--http {listen}: the inbox shows every message; outside loopback give \
                 --http-auth FILE (a user:password line)"
            ))
            .into());
        }
        None => None,
    };
    Ok(Some(WebConfig {
        listen,
        inbox: inbox::InboxConfig {
            auth,
            ..inbox::InboxConfig::default()
        },
    }))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = match cli.command {
        Cmd::Serve { .. } | Cmd::Web { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    init_tracing(base, cli.verbose);
    protolab_transport::cli::set_json(cli.json);
    protolab_transport::cli::exit_with(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Generate(args) => {
            protolab_transport::cli::generate(<Cli as clap::CommandFactory>::command(), &args)?;
            Ok(())
        }
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
                return Err(Failure::usage(
                    "--tls-listen and --require-tls need a certificate: give --tls-cert and \
                     --tls-key, or --tls-self-signed FILE",
                )
                .into());
            }
            let tls_addr = match &tls_listen {
                Some(t) => Some(
                    protolab_transport::parse_addr(t, DEFAULT_TLS_PORT)
                        .map_err(|e| Failure::usage(format!("--tls-listen {t:?}: {e}")))?,
                ),
                None => None,
            };
            let hostname = hostname.unwrap_or_else(protolab_smtp::system_hostname);
            // The name goes into the greeting, every Received: header and every message's file
            // name: one word of printable characters.
            if hostname.is_empty()
                || hostname.contains(|c: char| c.is_control() || c.is_whitespace())
            {
                return Err(Failure::usage(format!(
                    "--hostname: {hostname:?} is not a host name: give one word without spaces or \
                     control characters"
                ))
                .into());
            }
            let config = ServerConfig {
                listen: addr,
                tls_listen: tls_addr,
                maildir,
                web: web_config(&web, None)?,
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
            serve(identity, config, cli.json)
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
                    Failure::usage("--cacert and --tls-name need --starttls or --tls").into(),
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
                .map_err(|e| Failure::usage(format!("--{}: {}", e.field, e.why)))?;
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

/// `smtp serve`: the Maildir and sockets bound, announced, served until a signal, reported.
fn serve(identity: Option<ServerIdentity>, mut config: ServerConfig, json: bool) -> Result<()> {
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
            protolab_transport::cli::lab_ca_written(ca_out, json);
        }
    }
    runtime()?.block_on(async move {
        let dir = config.maildir.clone();
        let bound = protolab_smtp::bind(&config).map_err(|e| match e {
            // The library names the folder that failed; the operator also sees the flag.
            ServeError::Maildir(e) => {
                anyhow::Error::new(e).context(format!("cannot use --maildir {}", dir.display()))
            }
            e => e.into(),
        })?;
        // Before the announcement, so that a signal sent as soon as it is read drains; a
        // second signal exits at once.
        let shutdown = protolab_transport::shutdown_on_signals();
        let addrs = bound.local_addrs();
        for (proto, addr) in &addrs {
            listening(proto, *addr, json);
        }
        let report = protolab_smtp::run(bound, config, shutdown)
            .await
            .context("the server stopped")?;
        let listen = addrs.first().map(|(_, a)| a.to_string());
        if json {
            let mut line = serde_json::to_value(&report)?;
            line["listen"] = serde_json::json!(listen);
            outln!("{line}");
        } else {
            let c = &report.stats;
            outln!(
                "sessions {}, busy {}, cut at shutdown {}",
                report.sessions,
                report.busy,
                report.cut_at_shutdown
            );
            outln!(
                "messages stored {} ({} octets), refused {}, store failures {}",
                c.messages_stored,
                c.octets_stored,
                c.messages_refused,
                c.store_failures
            );
            outln!(
                "protocol errors {}, idle timeouts {}, tls sessions {}, tls handshake failures {}",
                c.protocol_errors,
                c.idle_timeouts,
                c.tls_sessions,
                c.tls_handshake_failures
            );
        }
        Ok(())
    })
}

/// `smtp web`: the inbox of an existing Maildir, without SMTP.
fn web_only(dir: &std::path::Path, web: &WebArgs, json: bool) -> Result<()> {
    let web = web_config(web, Some("127.0.0.1:8025"))?.context("no address to serve on")?;
    runtime()?.block_on(async move {
        let started = std::time::Instant::now();
        let inbox = inbox::Inbox::open(dir, web.inbox)?;
        let listener = bind_tcp(web.listen).map_err(|e| ListenError::new("http", web.listen, e))?;
        let local = listener.local_addr()?;
        let indexed = inbox.index.read().len();
        tracing::info!(indexed, elapsed = ?started.elapsed(), "Maildir indexed");
        let shutdown = protolab_transport::shutdown_on_signals();
        listening("http", local, json);
        let report = inbox::run(listener, inbox, shutdown)
            .await
            .context("the server stopped")?;
        if json {
            outln!(
                "{}",
                serde_json::json!({ "listen": local.to_string(), "http": report })
            );
        } else {
            outln!(
                "requests {}, connections {}, refused {}",
                report.requests,
                report.connections,
                report.refused
            );
        }
        Ok(())
    })
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
        // One line: a --json report is a JSON line.
        outln!("{}", serde_json::to_string(&messages)?);
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
        outln!("{report}");
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
