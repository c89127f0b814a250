//! The server's I/O driver: [`Session`] over protolab-transport's TCP runner, into a [`Maildir`].
//!
//! Per connection the driver reads octets into a buffer, lets the session consume them, writes
//! the replies before it reads again (so pipelined commands get their replies in one write), and
//! streams message content to a file in `tmp/`: content is gathered up to [`FLUSH_AT`] octets and
//! then written by a blocking-pool thread, so a 25 MiB message never sits whole in memory. At the
//! end of a message the rest is written, the file fsynced and renamed into `new/`, and `new/`
//! fsynced by the Maildir's group commit; only then does the session produce its 250.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use protolab_transport::{CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, run_tcp};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::maildir::{Maildir, trace_headers};
use crate::session::{Envelope, Output, Session, SessionConfig, StoreError};

/// Message content gathered in memory before it is written to the file in `tmp/`.
pub const FLUSH_AT: usize = 256 * 1024;
/// Input read at once while a message arrives; commands need far less.
const DATA_READ: usize = 64 * 1024;
const COMMAND_READ: usize = 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub session: SessionConfig,
    /// Sessions at once; the next client is told 421 at the greeting.
    pub max_connections: usize,
    /// How long the server waits for a command or a piece of a message (RFC 5321 section
    /// 4.5.3.2 suggests minutes).
    pub idle_timeout: Duration,
    /// At shutdown, how long sessions may go on to finish their messages before they are told
    /// 421 4.3.2 and closed.
    pub drain_timeout: Duration,
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
}

/// Serves SMTP on `listener` into `maildir` until `shutdown` fires and sessions have drained.
///
/// # Errors
/// Only the listener's own errors.
pub async fn serve(
    listener: TcpListener,
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
    let session = Arc::new(config.session);
    run_tcp(listener, tcp, shutdown, tcp_stats, move |stream, conn| {
        let session = session.clone();
        let maildir = maildir.clone();
        let stats = stats.clone();
        async move {
            if let Err(e) = handle(stream, conn, &session, &maildir, &stats).await {
                tracing::debug!(error = %e, "session ended with an error");
            }
        }
    })
    .await
}

/// Runs one SMTP session over `stream`.
///
/// # Errors
/// The connection's I/O errors; the session's state is then simply dropped, and a message in
/// progress is removed from `tmp/`.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    conn: Conn,
    config: &SessionConfig,
    maildir: &Arc<Maildir>,
    stats: &SmtpStats,
) -> io::Result<()> {
    let mut session = Session::new(config.clone());
    let mut replies = Vec::with_capacity(512);
    session.greeting().emit(&mut replies);
    let mut input = BytesMut::new();
    let mut message: Option<Incoming> = None;
    let mut outputs = Vec::new();
    let result = async {
        loop {
            session.feed(&mut input, &mut outputs);
            let mut stored_one = false;
            let mut close = false;
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
                    Output::Close => close = true,
                }
            }
            if close {
                conn.write_all(&mut stream, &replies).await?;
                let _ = stream.shutdown().await;
                return Ok(());
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
                Next::Eof => return Ok(()),
                Next::IdleTimeout => {
                    stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(in_data = session.in_data(), "idle timeout");
                    let _ = conn
                        .write_all(&mut stream, &session.idle_timeout_reply().to_bytes())
                        .await;
                    return Ok(());
                }
                Next::Closing => {
                    let _ = conn
                        .write_all(&mut stream, &session.shutdown_reply().to_bytes())
                        .await;
                    return Ok(());
                }
            }
        }
    }
    .await;
    if let Some(m) = message.take() {
        m.abandon().await;
    }
    result
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
            handle(server, conn, &config, &maildir, &stats)
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
