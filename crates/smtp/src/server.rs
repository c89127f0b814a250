//! The server's I/O driver: [`Session`] over protolab-transport's TCP runner, into a [`Maildir`].
//!
//! Per connection the driver reads octets into a buffer, lets the session consume them, writes
//! the replies before it reads again (so pipelined commands get their replies in one write), and
//! streams message content to a file in `tmp/`: content is gathered up to [`FLUSH_AT`] octets and
//! then written by a blocking-pool thread, so a 25 MiB message never sits whole in memory. At the
//! end of a message the rest is written, the file fsynced and renamed into `new/`, and `new/`
//! fsynced by the Maildir's group commit; only then does the session produce its 250.
//!
//! The service has protolab's one shape: [`bind`] takes every resource that can fail at start
//! (the Maildir, proved writable, and the sockets, through protolab-transport), the caller
//! announces [`Bound::local_addrs`], and [`run`] serves until shutdown and returns the
//! [`Report`]. Nothing here prints.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use protolab_transport::cli::ListenError;
use protolab_transport::tls::{TlsAcceptor, TlsInfo};
use protolab_transport::{CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, run_tcp};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::inbox::{self, Inbox, InboxConfig, InboxError};
use crate::maildir::{Maildir, MaildirError, trace_headers};
use crate::session::{Envelope, Output, Session, SessionConfig, StoreError};

/// Message content gathered in memory before it is written to the file in `tmp/`.
pub const FLUSH_AT: usize = 256 * 1024;
/// Input read at once while a message arrives; commands need far less.
const DATA_READ: usize = 64 * 1024;
const COMMAND_READ: usize = 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where SMTP is served: plaintext, with STARTTLS when `tls` is set.
    pub listen: SocketAddr,
    /// Where implicit TLS (RFC 8314) is served as well, if anywhere; needs `tls`.
    pub tls_listen: Option<SocketAddr>,
    /// The Maildir delivered into (`tmp/`, `new/` and `cur/` are created).
    pub maildir: PathBuf,
    /// The web inbox served alongside, if any.
    pub web: Option<WebConfig>,
    pub session: SessionConfig,
    /// Sessions at once; the next client is told 421 at the greeting.
    pub max_connections: usize,
    /// How long the server waits for a command or a piece of a message (RFC 5321 section
    /// 4.5.3.2 suggests minutes).
    pub idle_timeout: Duration,
    /// At shutdown, how long sessions may go on to finish their messages before they are told
    /// 421 4.3.2 and closed.
    pub drain_timeout: Duration,
    /// The certificate, for STARTTLS and the implicit-TLS port; `None` offers no TLS.
    pub tls: Option<Tls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)),
            tls_listen: None,
            maildir: PathBuf::from("maildir"),
            web: None,
            session: SessionConfig::default(),
            max_connections: 1000,
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// The web inbox beside the SMTP server: where, and its options.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub inbox: InboxConfig,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Maildir cannot be used (created, written or synced).
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// A socket could not be bound.
    #[error("{0}")]
    Listen(#[source] ListenError),
    /// The web inbox cannot index or watch the Maildir.
    #[error(transparent)]
    Inbox(#[from] InboxError),
    /// Implicit TLS was asked for without a certificate.
    #[error("implicit TLS on {0} needs a certificate")]
    NoCertificate(SocketAddr),
    /// A listening socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Everything [`bind`] acquired: the Maildir and the listening sockets.
#[derive(Debug)]
pub struct Bound {
    maildir: Arc<Maildir>,
    smtp: TcpListener,
    tls: Option<TcpListener>,
    web: Option<(TcpListener, Arc<Inbox>)>,
    addrs: Vec<(&'static str, SocketAddr)>,
}

impl Bound {
    /// `(proto, address)` of every listening socket, for the `listening` lines: `tcp` for SMTP,
    /// `tls` for implicit TLS, `http` for the web inbox.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.addrs.clone()
    }

    /// The Maildir's root folder.
    pub fn maildir(&self) -> &Path {
        self.maildir.root()
    }
}

/// Opens the Maildir (proving it can deliver, so a server that cannot store mail fails here,
/// naming the path, not with a 451 per message), then binds SMTP, implicit TLS and the web
/// inbox as `config` asks. Call it inside a tokio runtime: the sockets and the inbox's watch
/// register with it.
///
/// # Errors
/// [`ServeError`]: the Maildir, a bind (a port in use), the inbox's index.
pub fn bind(config: &ServerConfig) -> Result<Bound, ServeError> {
    if let (Some(addr), None) = (config.tls_listen, &config.tls) {
        return Err(ServeError::NoCertificate(addr));
    }
    let maildir = Arc::new(Maildir::open(&config.maildir, &config.session.hostname)?);
    let listen = |proto: &'static str, addr: SocketAddr| {
        protolab_transport::bind_tcp(addr)
            .map_err(|e| ServeError::Listen(ListenError::new(proto, addr, e)))
    };
    let mut addrs = Vec::new();
    let smtp = listen("tcp", config.listen)?;
    addrs.push(("tcp", smtp.local_addr()?));
    let tls = match config.tls_listen {
        Some(addr) => {
            let l = listen("tls", addr)?;
            addrs.push(("tls", l.local_addr()?));
            Some(l)
        }
        None => None,
    };
    let web = match &config.web {
        Some(web) => {
            let l = listen("http", web.listen)?;
            addrs.push(("http", l.local_addr()?));
            let inbox = Inbox::open(&config.maildir, web.inbox.clone())?;
            Some((l, inbox))
        }
        None => None,
    };
    Ok(Bound {
        maildir,
        smtp,
        tls,
        web,
        addrs,
    })
}

/// What the server did, printed when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// SMTP sessions accepted (both ports).
    pub sessions: u64,
    /// Clients turned away at `max_connections`.
    pub busy: u64,
    /// Sessions still open when the drain deadline passed.
    pub cut_at_shutdown: u64,
    /// The SMTP counters.
    pub stats: Counters,
    /// The web inbox's report, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<protolab_http::serve::Report>,
}

/// Serves SMTP (and the web inbox) on `bound` into its Maildir until `shutdown` fires and
/// sessions have drained; then reports.
///
/// # Errors
/// Only the listeners' own errors.
pub async fn run(
    bound: Bound,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<Report, ServeError> {
    let web = bound
        .web
        .map(|(listener, inbox)| tokio::spawn(inbox::run(listener, inbox, shutdown.clone())));
    if config.tls.is_some() {
        tracing::info!(require_tls = config.session.require_tls, "STARTTLS offered");
    }
    tracing::info!(maildir = %bound.maildir.root().display(), "delivering into Maildir");
    let stats = Arc::new(SmtpStats::default());
    let tcp_stats = Arc::new(TcpServerStats::default());
    serve(
        bound.smtp,
        bound.tls,
        config,
        bound.maildir,
        shutdown,
        stats.clone(),
        tcp_stats.clone(),
    )
    .await?;
    let http = match web {
        Some(task) => Some(task.await.map_err(io::Error::other)??),
        None => None,
    };
    Ok(Report {
        sessions: tcp_stats.accepted.load(Ordering::Relaxed),
        busy: tcp_stats.busy.load(Ordering::Relaxed),
        cut_at_shutdown: tcp_stats.cut_at_shutdown.load(Ordering::Relaxed),
        stats: stats.snapshot(),
        http,
    })
}

/// The server's TLS: the certificate's acceptor, for STARTTLS on the plaintext port and for the
/// implicit-TLS port (RFC 8314).
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Counters of the SMTP server, readable while it runs.
#[derive(Debug, Default, serde::Serialize)]
pub struct SmtpStats {
    /// Messages made durable and acknowledged with 250.
    pub messages_stored: AtomicU64,
    /// Octets of those messages, trace headers included.
    pub octets_stored: AtomicU64,
    /// Messages refused after their data (too large, bare LF/CR, long lines).
    pub messages_refused: AtomicU64,
    /// Messages that could not be stored (answered 451).
    pub store_failures: AtomicU64,
    /// Protocol errors answered (5xx replies to commands).
    pub protocol_errors: AtomicU64,
    /// Sessions closed for idling, with 421 4.4.2.
    pub idle_timeouts: AtomicU64,
    /// TLS handshakes completed (STARTTLS and the implicit-TLS port).
    pub tls_sessions: AtomicU64,
    /// TLS handshakes that failed (a refused certificate, plaintext on the TLS port...).
    pub tls_handshake_failures: AtomicU64,
    /// STARTTLS commands followed by pipelined plaintext, which was thrown away unread.
    pub starttls_input_discarded: AtomicU64,
}

/// [`SmtpStats`] read once, for the [`Report`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub messages_stored: u64,
    /// Octets.
    pub octets_stored: u64,
    pub messages_refused: u64,
    pub store_failures: u64,
    pub protocol_errors: u64,
    pub idle_timeouts: u64,
    pub tls_sessions: u64,
    pub tls_handshake_failures: u64,
    pub starttls_input_discarded: u64,
}

impl SmtpStats {
    /// The counters now.
    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            messages_stored: get(&self.messages_stored),
            octets_stored: get(&self.octets_stored),
            messages_refused: get(&self.messages_refused),
            store_failures: get(&self.store_failures),
            protocol_errors: get(&self.protocol_errors),
            idle_timeouts: get(&self.idle_timeouts),
            tls_sessions: get(&self.tls_sessions),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            starttls_input_discarded: get(&self.starttls_input_discarded),
        }
    }
}

/// Where a session's listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// Plaintext, with STARTTLS when a certificate is configured.
    Plain,
    /// TLS from the first octet (RFC 8314's "implicit TLS").
    Implicit,
}

/// Serves SMTP on `listener` (and implicit TLS on `tls_listener`) into `maildir` until
/// `shutdown` fires and sessions have drained.
async fn serve(
    listener: TcpListener,
    tls_listener: Option<TcpListener>,
    config: ServerConfig,
    maildir: Arc<Maildir>,
    shutdown: CancellationToken,
    stats: Arc<SmtpStats>,
    tcp_stats: Arc<TcpServerStats>,
) -> io::Result<()> {
    let tcp = TcpServerConfig {
        max_connections: config.max_connections,
        idle_timeout: Some(config.idle_timeout),
        drain_timeout: config.drain_timeout,
        busy_reply: Bytes::from(format!(
            "421 4.3.2 {} too many connections; try again later\r\n",
            config.session.hostname
        )),
        nodelay: true,
    };
    let tls = config.tls;
    let mut session = config.session;
    session.starttls = tls.is_some();
    let session = Arc::new(session);
    let tls = tls.map(Arc::new);
    let runner = |listener: TcpListener, port: Port, tcp: TcpServerConfig| {
        let session = session.clone();
        let maildir = maildir.clone();
        let stats = stats.clone();
        let tls = tls.clone();
        run_tcp(
            listener,
            tcp,
            shutdown.clone(),
            tcp_stats.clone(),
            move |stream, conn| {
                let session = session.clone();
                let maildir = maildir.clone();
                let stats = stats.clone();
                let tls = tls.clone();
                async move {
                    let tls = tls.as_deref();
                    let result = match (port, tls) {
                        (Port::Implicit, Some(tls)) => {
                            handle_implicit_tls(stream, conn, &session, tls, &maildir, &stats).await
                        }
                        _ => handle(stream, conn, &session, tls, &maildir, &stats).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "session ended with an error");
                    }
                }
            },
        )
    };
    match tls_listener {
        Some(tls_listener) => {
            // A client turned away at the cap on the TLS port gets no plaintext 421: it
            // expects a TLS handshake, so it is simply closed.
            let tls_tcp = TcpServerConfig {
                busy_reply: Bytes::new(),
                ..tcp.clone()
            };
            tokio::try_join!(
                runner(listener, Port::Plain, tcp),
                runner(tls_listener, Port::Implicit, tls_tcp)
            )
            .map(|_| ())
        }
        None => runner(listener, Port::Plain, tcp).await,
    }
}

/// Runs one SMTP session over `stream`, a plaintext connection: STARTTLS switches it to TLS
/// when `tls` is given.
///
/// # Errors
/// The connection's I/O errors; the session's state is then simply dropped, and a message in
/// progress is removed from `tmp/`.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    conn: Conn,
    config: &SessionConfig,
    tls: Option<&Tls>,
    maildir: &Arc<Maildir>,
    stats: &SmtpStats,
) -> io::Result<()> {
    let session = Session::new(config.clone());
    let Ended::StartTls(stream) =
        drive(stream, &conn, session, true, config, maildir, stats).await?
    else {
        return Ok(());
    };
    let Some(tls) = tls else {
        // The session offers STARTTLS only when the driver has a certificate.
        return Ok(());
    };
    let stream = match protolab_transport::tls::accept(&tls.acceptor, stream, &conn).await {
        Ok(s) => s,
        Err(e) => {
            stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %protolab_transport::tls::describe_error(&e), "STARTTLS handshake failed");
            return Ok(());
        }
    };
    let info = TlsInfo::of(stream.get_ref().1);
    stats.tls_sessions.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(tls = %info, "STARTTLS: in TLS");
    // RFC 3207 section 4.2: the client starts over with EHLO, and nothing from before the
    // handshake survives it; the new session knows only the configuration and the TLS.
    let session = Session::after_tls(config.clone(), info.to_string());
    drive(stream, &conn, session, false, config, maildir, stats)
        .await
        .map(|_| ())
}

/// Runs one SMTP session on the implicit-TLS port: the handshake first, then the greeting.
///
/// # Errors
/// As [`handle`].
pub async fn handle_implicit_tls(
    stream: TcpStream,
    conn: Conn,
    config: &SessionConfig,
    tls: &Tls,
    maildir: &Arc<Maildir>,
    stats: &SmtpStats,
) -> io::Result<()> {
    let stream = match protolab_transport::tls::accept(&tls.acceptor, stream, &conn).await {
        Ok(s) => s,
        Err(e) => {
            stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %protolab_transport::tls::describe_error(&e), "TLS handshake failed");
            return Ok(());
        }
    };
    let info = TlsInfo::of(stream.get_ref().1);
    stats.tls_sessions.fetch_add(1, Ordering::Relaxed);
    let session = Session::after_tls(config.clone(), info.to_string());
    drive(stream, &conn, session, true, config, maildir, stats)
        .await
        .map(|_| ())
}

/// How a session's run over one stream ended.
enum Ended<S> {
    /// QUIT, an error reply that closes, end of input, idle timeout or shutdown.
    Done,
    /// 220 was sent to STARTTLS: the stream is handed back for the TLS handshake.
    StartTls(S),
}

/// Runs `session` over `stream` until it ends or says STARTTLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    conn: &Conn,
    mut session: Session,
    greet: bool,
    config: &SessionConfig,
    maildir: &Arc<Maildir>,
    stats: &SmtpStats,
) -> io::Result<Ended<S>> {
    let mut replies = Vec::with_capacity(512);
    if greet {
        session.greeting().emit(&mut replies);
    }
    let mut input = BytesMut::new();
    let mut message: Option<Incoming> = None;
    let mut outputs = Vec::new();
    let result = async {
        loop {
            session.feed(&mut input, &mut outputs);
            let mut stored_one = false;
            let mut close = false;
            let mut starttls = false;
            for out in outputs.drain(..) {
                match out {
                    Output::Reply(r) => {
                        if matches!(r.code, 500..=503 | 555) {
                            stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        r.emit(&mut replies);
                    }
                    Output::MessageStart(env) => {
                        message = Some(Incoming::new(
                            maildir.clone(),
                            &env,
                            conn.peer,
                            &config.hostname,
                        ));
                    }
                    Output::Content(chunk) => {
                        if let Some(m) = message.as_mut() {
                            m.push(&chunk).await;
                        }
                    }
                    Output::MessageAbort => {
                        stats.messages_refused.fetch_add(1, Ordering::Relaxed);
                        if let Some(m) = message.take() {
                            m.abandon().await;
                        }
                    }
                    Output::MessageEnd(_) => {
                        let result = match message.take() {
                            Some(m) => m.commit().await,
                            None => Err(StoreError::Failed("no message in progress".into())),
                        };
                        match &result {
                            Ok((_, octets)) => {
                                stats.messages_stored.fetch_add(1, Ordering::Relaxed);
                                stats.octets_stored.fetch_add(*octets, Ordering::Relaxed);
                            }
                            Err(_) => {
                                stats.store_failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        session.stored(result.map(|(id, _)| id)).emit(&mut replies);
                        stored_one = true;
                    }
                    Output::StartTls => starttls = true,
                    Output::Close => close = true,
                }
            }
            if starttls {
                // The STARTTLS injection defence (CVE-2011-0411): whatever the client sent
                // after STARTTLS in the same packet arrived in plaintext, where anyone on the
                // path could have added it. Read after the handshake it would pass for
                // commands sent over TLS, so it is thrown away before the 220 leaves, unread.
                if !input.is_empty() {
                    stats
                        .starttls_input_discarded
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        octets = input.len(),
                        peer = %conn.peer,
                        "plaintext pipelined after STARTTLS: discarded unread"
                    );
                    input.clear();
                }
                conn.write_all(&mut stream, &replies).await?;
                return Ok(true);
            }
            if close {
                conn.write_all(&mut stream, &replies).await?;
                let _ = stream.shutdown().await;
                return Ok(false);
            }
            if stored_one {
                // Pipelined commands after the message may already be buffered.
                continue;
            }
            if !replies.is_empty() {
                conn.write_all(&mut stream, &replies).await?;
                replies.clear();
            }
            let want = if session.in_data() {
                DATA_READ
            } else {
                COMMAND_READ
            };
            if input.capacity() - input.len() < want / 2 {
                input.reserve(want);
            }
            match conn.read_buf(&mut stream, &mut input).await {
                Next::Item(Ok(_)) => {}
                Next::Item(Err(e)) => return Err(e),
                Next::Eof => return Ok(false),
                Next::IdleTimeout => {
                    stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(in_data = session.in_data(), "idle timeout");
                    let _ = conn
                        .write_all(&mut stream, &session.idle_timeout_reply().to_bytes())
                        .await;
                    return Ok(false);
                }
                Next::Closing => {
                    let _ = conn
                        .write_all(&mut stream, &session.shutdown_reply().to_bytes())
                        .await;
                    return Ok(false);
                }
            }
        }
    }
    .await;
    if let Some(m) = message.take() {
        m.abandon().await;
    }
    match result? {
        true => Ok(Ended::StartTls(stream)),
        false => Ok(Ended::Done),
    }
}

/// A message being received: its name, its file in `tmp/` once opened, and content not yet
/// written.
///
/// Whatever ends a message other than a successful [`Incoming::commit`] (a failed write, a
/// refused or abandoned message, a dropped connection) removes its file from `tmp/`: a file
/// left there after a full disk would keep the disk full, and every later message would fail
/// until the 36-hour cleanup at a restart.
struct Incoming {
    maildir: Arc<Maildir>,
    name: String,
    file: Option<File>,
    /// Creating the file in `tmp/` has been tried, so a file may exist there to remove.
    created: bool,
    pending: Vec<u8>,
    octets: u64,
    /// The first write error; the message is then answered 451 or 452 at its end.
    error: Option<StoreError>,
}

impl Incoming {
    fn new(maildir: Arc<Maildir>, env: &Envelope, peer: SocketAddr, hostname: &str) -> Self {
        let name = maildir.unique_name();
        let pending = trace_headers(env, peer, hostname, &name, SystemTime::now());
        Self {
            maildir,
            name,
            file: None,
            created: false,
            pending,
            octets: 0,
            error: None,
        }
    }

    async fn push(&mut self, chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        self.pending.extend_from_slice(chunk);
        if self.pending.len() >= FLUSH_AT {
            self.flush().await;
        }
    }

    /// Writes the pending content to the file, opening it first if needed. On an error the file
    /// is removed at once, in the same blocking task, so its space is free before the client has
    /// even finished sending the rest of the message.
    async fn flush(&mut self) {
        let maildir = self.maildir.clone();
        let name = self.name.clone();
        let file = self.file.take();
        let mut pending = std::mem::take(&mut self.pending);
        self.created = true;
        let written = tokio::task::spawn_blocking(move || {
            let result = (|| {
                let mut file = match file {
                    Some(f) => f,
                    None => maildir.create_tmp(&name)?,
                };
                file.write_all(&pending)?;
                Ok::<_, io::Error>(file)
            })();
            match result {
                Ok(file) => {
                    let n = pending.len() as u64;
                    pending.clear();
                    Ok((file, pending, n))
                }
                Err(e) => {
                    // The file was closed when the closure above returned.
                    maildir.discard_tmp(&name);
                    Err(e)
                }
            }
        })
        .await;
        match written {
            Ok(Ok((file, pending, n))) => {
                self.file = Some(file);
                self.pending = pending;
                self.octets += n;
            }
            Ok(Err(e)) => self.error = Some(StoreError::from_io("writing to tmp/", &e)),
            Err(e) => self.error = Some(StoreError::Failed(format!("writer task failed: {e}"))),
        }
    }

    /// Makes the message durable in `new/` and returns its name and size: one blocking-pool
    /// task writes the rest, fsyncs, renames and waits for the directory's group commit.
    async fn commit(mut self) -> Result<(String, u64), StoreError> {
        if let Some(e) = self.error.take() {
            self.abandon().await;
            return Err(e);
        }
        let maildir = self.maildir.clone();
        let name = self.name.clone();
        let file = self.file.take();
        let pending = std::mem::take(&mut self.pending);
        // From here on `deliver` owns the file and removes it on any error of its own.
        self.created = false;
        let delivered =
            tokio::task::spawn_blocking(move || maildir.deliver(&name, file, &pending)).await;
        match delivered {
            Ok(Ok(n)) => Ok((self.name, self.octets + n)),
            Ok(Err(e)) => Err(StoreError::from_io("storing into the Maildir", &e)),
            Err(e) => {
                // The task died: whatever it left in tmp/ goes (a rename into new/ that
                // happened is not acknowledged, and a retry makes a second copy, which is the
                // safe side: nothing is lost).
                self.created = true;
                self.abandon().await;
                Err(StoreError::Failed(format!("delivery task failed: {e}")))
            }
        }
    }

    /// Drops the message and its file in `tmp/`, if one may exist.
    async fn abandon(mut self) {
        drop(self.file.take());
        if self.created {
            let maildir = self.maildir.clone();
            let name = self.name.clone();
            let _ = tokio::task::spawn_blocking(move || maildir.discard_tmp(&name)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

    async fn start(
        dir: &std::path::Path,
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let maildir = Arc::new(Maildir::open(dir, "mx.test").unwrap());
        let config = SessionConfig {
            hostname: "mx.test".into(),
            ..SessionConfig::default()
        };
        let task = tokio::spawn(async move {
            let conn = Conn::for_test(
                "127.0.0.1:4000".parse().unwrap(),
                Some(Duration::from_secs(5)),
            );
            let stats = SmtpStats::default();
            handle(server, conn, &config, None, &maildir, &stats)
                .await
                .unwrap();
        });
        (client, task)
    }

    #[tokio::test]
    async fn pipelined_message_lands_in_new() {
        let dir = tempfile::tempdir().unwrap();
        let (client, task) = start(dir.path()).await;
        let (rd, mut wr) = tokio::io::split(client);
        wr.write_all(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
            .await
            .unwrap();
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        loop {
            line.clear();
            rd.read_line(&mut line).await.unwrap();
            if line.starts_with("354") {
                break;
            }
        }
        wr.write_all(b"Subject: t\r\n\r\n..x\r\n.\r\nQUIT\r\n")
            .await
            .unwrap();
        let mut rest = String::new();
        rd.read_to_string(&mut rest).await.unwrap();
        task.await.unwrap();
        assert!(rest.starts_with("250 2.0.0 OK: queued as "), "{rest}");
        assert!(
            rest.ends_with("221 2.0.0 mx.test closing connection\r\n"),
            "{rest}"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path().join("new")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let body = std::fs::read(files[0].as_ref().unwrap().path()).unwrap();
        assert!(body.starts_with(b"Return-Path: <a@b.test>\r\nDelivered-To: c@d.test\r\nReceived: from c.test ([127.0.0.1])"));
        assert!(body.ends_with(b"\r\nSubject: t\r\n\r\n.x\r\n"));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn dropped_connection_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, task) = start(dir.path()).await;
        client
            .write_all(b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            .await
            .unwrap();
        let big = vec![b'x'; 70];
        for _ in 0..8000 {
            client.write_all(&big).await.unwrap();
            client.write_all(b"\r\n").await.unwrap();
        }
        drop(client);
        task.await.unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
