//! `greet serve`: the greeting protocol over TCP (line or raw framing) and over UDP.
//!
//! Where the classic Python server went wrong, and what this one does instead:
//! - It started its thread after the accept loop (a mis-indented `t.start()`), so it served no
//!   one; here every accepted connection is a task, so thousands are served at once.
//! - It slept one second per message on its thread; here `--delay` sleeps inside the
//!   connection's task, so 1,000 clients with a one-second delay all get their reply after about
//!   one second, not one thousand.
//! - It took each `recv()` for one message; here messages are lines (`--framing raw` keeps the
//!   old behaviour, to show why it is wrong).
//! - It had no limits; here connections, line length, idle time and shutdown are bounded.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use protolab_transport::tcp::{Conn, Next, TcpServerConfig, TcpServerStats};
use protolab_transport::udp::{UdpReply, UdpServerConfig, UdpServerStats};
use protolab_transport::{CancellationToken, Line, LineCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::codec::Decoder;

use crate::wire::{self, Action, Framing};

/// How long a client may pause in the middle of a line before what it sent is taken as the
/// line. The classic client sends names with no newline and waits for the reply; this pause is
/// the only message boundary it ever had.
pub const LINGER: Duration = Duration::from_millis(20);

/// Options of `greet serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Serve UDP instead of TCP.
    pub udp: bool,
    /// How TCP messages are told apart.
    pub framing: Framing,
    /// A pause before each reply, as the classic server's `time.sleep(1)`.
    pub delay: Option<Duration>,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a connection may stay silent.
    pub idle_timeout: Option<Duration>,
    /// How long live connections may go on after SIGINT or SIGTERM.
    pub drain_timeout: Duration,
    /// Answer UDP datagrams from addresses other than loopback (replies are 8 bytes longer than
    /// requests, so an open UDP greeter would amplify spoofed traffic).
    pub allow_remote: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9999)),
            udp: false,
            framing: Framing::Line,
            delay: None,
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(300)),
            drain_timeout: Duration::from_secs(5),
            allow_remote: false,
        }
    }
}

/// A bound socket, ready to serve.
#[derive(Debug)]
pub enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Bound {
    /// `("tcp" | "udp", local address)` of the socket, for the `listening` line. A socket whose
    /// address the kernel cannot tell (it never happens to a bound socket) is left out.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        let local = match self {
            Bound::Tcp(l) => l.local_addr().map(|a| ("tcp", a)),
            Bound::Udp(s) => s.local_addr().map(|a| ("udp", a)),
        };
        local.into_iter().collect()
    }
}

/// Binds the socket `config` asks for.
///
/// # Errors
/// The bind error (address in use, permission denied).
pub fn bind(config: &ServeConfig) -> io::Result<Bound> {
    if config.udp {
        protolab_transport::bind_udp(config.listen, 1 << 20).map(Bound::Udp)
    } else {
        protolab_transport::bind_tcp(config.listen).map(Bound::Tcp)
    }
}

/// Counters beyond the transport's own.
#[derive(Debug, Default)]
pub struct GreetStats {
    /// Names answered.
    pub greeted: AtomicU64,
    /// Lines refused for their length.
    pub too_long: AtomicU64,
    /// UDP datagrams from non-loopback peers ignored without `--allow-remote`.
    pub remote_refused: AtomicU64,
}

/// What a run did, returned when it stops: the counters `greet serve` prints at exit. The TCP
/// counters stay zero on a UDP run and the UDP ones on a TCP run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// TCP connections accepted and served.
    pub accepted: u64,
    /// TCP connections turned away at the cap with `ERR busy`.
    pub busy: u64,
    /// TCP connections closed for being idle.
    pub idle_timeouts: u64,
    /// Names answered, over TCP or UDP.
    pub greeted: u64,
    /// Lines refused for their length.
    pub too_long: u64,
    /// UDP datagrams from non-loopback peers ignored without `--allow-remote`.
    pub remote_refused: u64,
    /// UDP datagrams received.
    pub udp_received: u64,
    /// UDP replies sent.
    pub udp_replied: u64,
}

/// Serves until `shutdown` fires, then drains, and says what it did.
///
/// # Errors
/// Errors of the listening socket itself.
pub async fn run(
    bound: Bound,
    config: ServeConfig,
    shutdown: CancellationToken,
) -> io::Result<Report> {
    let stats = Arc::new(GreetStats::default());
    let mut report = Report::default();
    match bound {
        Bound::Tcp(listener) => {
            let tcp_config = TcpServerConfig {
                max_connections: config.max_connections,
                idle_timeout: config.idle_timeout,
                drain_timeout: config.drain_timeout,
                busy_reply: Bytes::from_static(wire::BUSY),
                nodelay: true,
            };
            let tcp_stats = Arc::new(TcpServerStats::default());
            let opts = ConnOptions {
                framing: config.framing,
                delay: config.delay,
                stats: stats.clone(),
            };
            protolab_transport::run_tcp(
                listener,
                tcp_config,
                shutdown,
                tcp_stats.clone(),
                move |stream, conn| handle(stream, conn, opts.clone()),
            )
            .await?;
            report.accepted = tcp_stats.accepted.load(Ordering::Relaxed);
            report.busy = tcp_stats.busy.load(Ordering::Relaxed);
            report.idle_timeouts = tcp_stats.idle_timeouts.load(Ordering::Relaxed);
        }
        Bound::Udp(socket) => {
            let udp_stats = Arc::new(UdpServerStats::default());
            let (delay, allow_remote, s) = (config.delay, config.allow_remote, stats.clone());
            protolab_transport::run_udp(
                socket,
                UdpServerConfig::default(),
                shutdown,
                udp_stats.clone(),
                move |peer, datagram| answer_datagram(peer, datagram, delay, allow_remote, &s),
            )
            .await?;
            report.udp_received = udp_stats.received.load(Ordering::Relaxed);
            report.udp_replied = udp_stats.replied.load(Ordering::Relaxed);
        }
    }
    report.greeted = stats.greeted.load(Ordering::Relaxed);
    report.too_long = stats.too_long.load(Ordering::Relaxed);
    report.remote_refused = stats.remote_refused.load(Ordering::Relaxed);
    Ok(report)
}

fn answer_datagram(
    peer: SocketAddr,
    datagram: &[u8],
    delay: Option<Duration>,
    allow_remote: bool,
    stats: &GreetStats,
) -> UdpReply {
    if !allow_remote && !peer.ip().is_loopback() {
        stats.remote_refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, "datagram from a remote peer ignored (see --allow-remote)");
        return UdpReply::None;
    }
    let Some(reply) = wire::on_datagram(datagram) else {
        return UdpReply::None;
    };
    stats.greeted.fetch_add(1, Ordering::Relaxed);
    match delay {
        None => UdpReply::Now(reply.freeze()),
        Some(d) => UdpReply::Later(Box::pin(async move {
            tokio::time::sleep(d).await;
            Some(reply.freeze())
        })),
    }
}

/// What one connection needs to know.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    pub framing: Framing,
    pub delay: Option<Duration>,
    pub stats: Arc<GreetStats>,
}

/// Serves one connection over any byte stream (a socket, or an in-memory pair in tests).
pub async fn handle<S>(stream: S, conn: Conn, opts: ConnOptions)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let result = match opts.framing {
        Framing::Line => serve_lines(stream, &conn, &opts).await,
        Framing::Raw => serve_raw(stream, &conn, &opts).await,
    };
    if let Err(e) = result {
        // Resets and stalled peers end their own connection and nobody else's.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// What to do after answering one line.
enum Step {
    Continue,
    Close,
}

async fn answer(line: Line, out: &mut BytesMut, opts: &ConnOptions) -> Step {
    match line {
        Line::Line(name) => {
            if let Some(d) = opts.delay {
                tokio::time::sleep(d).await;
            }
            match wire::on_message(Framing::Line, &name, out) {
                Action::Close => Step::Close,
                Action::Continue => {
                    opts.stats.greeted.fetch_add(1, Ordering::Relaxed);
                    Step::Continue
                }
            }
        }
        Line::TooLong => {
            opts.stats.too_long.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("line too long");
            out.extend_from_slice(wire::TOO_LONG);
            Step::Close
        }
    }
}

async fn serve_lines<S>(mut stream: S, conn: &Conn, opts: &ConnOptions) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut codec = LineCodec::new(wire::MAX_LINE);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    conn.write_all(&mut stream, wire::welcome(Framing::Line))
        .await?;
    loop {
        // Answer every whole line already here; a client that sent several at once gets all
        // its replies in one write.
        let mut step = Step::Continue;
        while let Some(line) = codec.decode(&mut buf)? {
            step = answer(line, &mut out, opts).await;
            if matches!(step, Step::Close) {
                break;
            }
        }
        if !out.is_empty() {
            conn.write_all(&mut stream, &out).await?;
            out.clear();
        }
        if matches!(step, Step::Close) {
            return Ok(());
        }
        // A small buffer keeps thousands of idle connections cheap; it grows for long lines.
        if buf.capacity() - buf.len() < 128 {
            buf.reserve(512);
        }
        let next = if buf.is_empty() {
            conn.read_buf(&mut stream, &mut buf).await
        } else {
            // Part of a line is here: wait for the rest, but take a pause as its end.
            match tokio::time::timeout(LINGER, conn.read_buf(&mut stream, &mut buf)).await {
                Ok(next) => next,
                Err(_) => {
                    if let Some(line) = codec.take_partial(&mut buf) {
                        if matches!(answer(line, &mut out, opts).await, Step::Close) {
                            return conn.write_all(&mut stream, &out).await;
                        }
                    }
                    continue;
                }
            }
        };
        match next {
            Next::Item(Ok(_)) => {}
            Next::Item(Err(e)) => return Err(e),
            Next::Eof => {
                // A last line without newline, then EOF, still counts.
                while let Some(line) = codec.decode_eof(&mut buf)? {
                    if matches!(answer(line, &mut out, opts).await, Step::Close) {
                        break;
                    }
                }
                return conn.write_all(&mut stream, &out).await;
            }
            Next::IdleTimeout | Next::Closing => return Ok(()),
        }
    }
}

async fn serve_raw<S>(mut stream: S, conn: &Conn, opts: &ConnOptions) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.write_all(&mut stream, wire::welcome(Framing::Raw))
        .await?;
    let mut chunk = BytesMut::with_capacity(wire::RAW_CHUNK);
    let mut out = BytesMut::new();
    loop {
        chunk.clear();
        // Exactly the classic server's `sock.recv(1024)`: whatever arrived is the message.
        let mut limited = (&mut stream).take(wire::RAW_CHUNK as u64);
        match conn.read_buf(&mut limited, &mut chunk).await {
            Next::Item(Ok(_)) => {}
            Next::Item(Err(e)) => return Err(e),
            Next::Eof | Next::IdleTimeout | Next::Closing => return Ok(()),
        }
        if let Some(d) = opts.delay {
            tokio::time::sleep(d).await;
        }
        if wire::on_message(Framing::Raw, &chunk, &mut out) == Action::Close {
            return Ok(());
        }
        opts.stats.greeted.fetch_add(1, Ordering::Relaxed);
        conn.write_all(&mut stream, &out).await?;
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn opts(framing: Framing) -> ConnOptions {
        ConnOptions {
            framing,
            delay: None,
            stats: Arc::default(),
        }
    }

    async fn converse(framing: Framing, input: &[u8]) -> Vec<u8> {
        let (mut client, server, conn) = protolab_transport::memory::pair(None);
        let task = tokio::spawn(handle(server, conn, opts(framing)));
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        task.await.unwrap();
        got
    }

    #[tokio::test]
    async fn seed_conversation_in_lines() {
        let got = converse(Framing::Line, b"Michael\nTracy\r\nSarah\nexit\nignored\n").await;
        assert_eq!(
            got,
            b"Welcome!\nHello, Michael!\nHello, Tracy!\nHello, Sarah!\n"
        );
    }

    #[tokio::test]
    async fn eof_without_exit_answers_the_last_line() {
        let got = converse(Framing::Line, b"Michael\nTracy").await;
        assert_eq!(got, b"Welcome!\nHello, Michael!\nHello, Tracy!\n");
    }

    #[tokio::test]
    async fn overlong_line_gets_an_error_and_close() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\nafter\n");
        let got = converse(Framing::Line, &input).await;
        assert_eq!(got, b"Welcome!\nHello, ok!\nERR line too long\n");
    }

    #[tokio::test]
    async fn line_of_exactly_the_limit_is_greeted() {
        let mut input = vec![b'n'; wire::MAX_LINE];
        input.push(b'\n');
        let got = converse(Framing::Line, &input).await;
        assert_eq!(got.len(), b"Welcome!\n".len() + wire::MAX_LINE + 9);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_a_line_without_newline() {
        let (mut client, server, conn) = protolab_transport::memory::pair(None);
        let task = tokio::spawn(handle(server, conn, opts(Framing::Line)));
        let mut buf = vec![0u8; 64];
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"Welcome!\n");
        client.write_all(b"Michael").await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"Hello, Michael!\n");
        client.write_all(b"exit").await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_closed() {
        let (mut client, server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(30)));
        let task = tokio::spawn(handle(server, conn, opts(Framing::Line)));
        let mut got = Vec::new();
        // With time paused, the runtime jumps to the idle deadline as soon as all tasks wait.
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"Welcome!\n");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn raw_framing_takes_each_read_as_a_message() {
        let (mut client, server, conn) = protolab_transport::memory::pair(None);
        let task = tokio::spawn(handle(server, conn, opts(Framing::Raw)));
        let mut buf = vec![0u8; 64];
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"Welcome!");
        client.write_all(b"Michael").await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"Hello, Michael!");
        client.write_all(b"exit").await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        task.await.unwrap();
    }

    #[test]
    fn udp_refuses_remote_peers_unless_allowed() {
        let stats = GreetStats::default();
        let remote = SocketAddr::from(([192, 0, 2, 1], 5000));
        assert!(matches!(
            answer_datagram(remote, b"x", None, false, &stats),
            UdpReply::None
        ));
        assert_eq!(stats.remote_refused.load(Ordering::Relaxed), 1);
        assert!(matches!(
            answer_datagram(remote, b"x", None, true, &stats),
            UdpReply::Now(_)
        ));
    }
}
