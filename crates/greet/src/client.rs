//! `greet hello`: the classic client. It reads the welcome, sends each name, prints each reply
//! and says `exit`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::wire::{self, Framing};

/// The names the classic client sends when given none.
pub const DEFAULT_NAMES: [&str; 3] = ["Michael", "Tracy", "Sarah"];

/// Why a conversation failed. Each message names the transport that was used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to tcp {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("no reply from {proto} {server} within {}", humantime::format_duration(*.after))]
    Timeout {
        proto: &'static str,
        server: SocketAddr,
        after: Duration,
    },
    #[error("nothing listens on udp {0} (the host answered port unreachable)")]
    Unreachable(SocketAddr),
    #[error("the server closed the connection before replying to {0:?}")]
    Closed(String),
    #[error("the server refused us: {0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// True when the server never answered (nothing listening, or silence), as opposed to a
    /// conversation that went wrong.
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            ClientError::Timeout { .. } | ClientError::Unreachable(_)
        ) || matches!(self, ClientError::Connect(_, e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    }
}

/// Options of `greet hello`.
#[derive(Debug, Clone)]
pub struct HelloConfig {
    pub server: SocketAddr,
    pub names: Vec<String>,
    pub udp: bool,
    /// How the server frames TCP messages; `None` tells from its welcome.
    pub framing: Option<Framing>,
    /// How long to wait for each reply.
    pub timeout: Duration,
}

/// What the server said.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transcript {
    /// The greeting on connect (TCP only: UDP has no connection to greet).
    pub welcome: Option<String>,
    /// One reply per name, in order.
    pub replies: Vec<String>,
}

/// Holds the conversation.
///
/// # Errors
/// [`ClientError`] names what went wrong and what to check.
pub async fn hello(config: &HelloConfig) -> Result<Transcript, ClientError> {
    if config.udp {
        hello_udp(config).await
    } else {
        hello_tcp(config).await
    }
}

async fn timed<T>(
    config: &HelloConfig,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T, ClientError> {
    let proto = if config.udp { "udp" } else { "tcp" };
    match tokio::time::timeout(config.timeout, fut).await {
        Err(_) => Err(ClientError::Timeout {
            proto,
            server: config.server,
            after: config.timeout,
        }),
        Ok(Err(e)) if config.udp && e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(ClientError::Unreachable(config.server))
        }
        Ok(r) => r.map_err(ClientError::Io),
    }
}

fn text(mut line: Vec<u8>) -> String {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// How long a welcome without newline may wait for one before the client takes the server
/// for a raw-framing one (the classic server's `Welcome!` has no newline).
const RAW_GRACE: Duration = Duration::from_millis(300);

async fn hello_tcp(config: &HelloConfig) -> Result<Transcript, ClientError> {
    let stream = protolab_transport::connect_tcp(config.server, config.timeout)
        .await
        .map_err(|e| match e.kind() {
            // The handshake's deadline: as silent a server as one that never replies.
            std::io::ErrorKind::TimedOut => ClientError::Timeout {
                proto: "tcp",
                server: config.server,
                after: config.timeout,
            },
            _ => ClientError::Connect(config.server, e),
        })?;
    tracing::debug!(local = ?stream.local_addr().ok(), "connected");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let (welcome, framing) = read_welcome(config, &mut read).await?;
    if welcome.starts_with("ERR") {
        return Err(ClientError::Refused(welcome));
    }
    tracing::debug!(?framing, "welcome read");
    let mut transcript = Transcript {
        welcome: Some(welcome),
        replies: Vec::new(),
    };
    let mut line = Vec::new();
    for name in &config.names {
        match framing {
            Framing::Line => {
                timed(config, write.write_all(format!("{name}\n").as_bytes())).await?;
                if timed(config, read.read_until(b'\n', &mut line)).await? == 0 {
                    return Err(ClientError::Closed(name.clone()));
                }
            }
            Framing::Raw => {
                // One send, one recv: what the classic client does, and what works while
                // loopback keeps each send in one segment.
                timed(config, write.write_all(name.as_bytes())).await?;
                line.resize(wire::RAW_CHUNK, 0);
                let n = timed(config, read.read(&mut line)).await?;
                if n == 0 {
                    return Err(ClientError::Closed(name.clone()));
                }
                line.truncate(n);
            }
        }
        transcript.replies.push(text(std::mem::take(&mut line)));
    }
    let bye: &[u8] = match framing {
        Framing::Line => b"exit\n",
        Framing::Raw => wire::EXIT,
    };
    timed(config, write.write_all(bye)).await?;
    // Wait for the server's close, so the conversation ends as the protocol says.
    let mut rest = Vec::new();
    timed(config, read.read_to_end(&mut rest)).await?;
    Ok(transcript)
}

/// Reads the welcome and tells the framing: a line ends with a newline; a raw-framing server
/// sends `Welcome!` and nothing more until it hears from us.
async fn read_welcome<R: AsyncBufReadExt + Unpin>(
    config: &HelloConfig,
    read: &mut R,
) -> Result<(String, Framing), ClientError> {
    let mut line = Vec::new();
    if config.framing == Some(Framing::Line) {
        timed(config, read.read_until(b'\n', &mut line)).await?;
        return Ok((text(line), Framing::Line));
    }
    let raw_welcome = wire::welcome(Framing::Raw);
    let deadline = tokio::time::Instant::now() + config.timeout;
    loop {
        let mut chunk = [0u8; 256];
        // Past a whole raw welcome, wait only a moment for a newline before calling it raw.
        let limit = if line.as_slice() == raw_welcome {
            (tokio::time::Instant::now() + RAW_GRACE).min(deadline)
        } else {
            deadline
        };
        if config.framing == Some(Framing::Raw) && line.as_slice() == raw_welcome {
            return Ok((text(line), Framing::Raw));
        }
        match tokio::time::timeout_at(limit, read.read(&mut chunk)).await {
            Err(_) if line.as_slice() == raw_welcome => return Ok((text(line), Framing::Raw)),
            Err(_) => {
                return Err(ClientError::Timeout {
                    proto: "tcp",
                    server: config.server,
                    after: config.timeout,
                });
            }
            Ok(Err(e)) => return Err(ClientError::Io(e)),
            Ok(Ok(0)) => return Ok((text(line), Framing::Line)),
            Ok(Ok(n)) => line.extend_from_slice(&chunk[..n]),
        }
        if line.ends_with(b"\n") || line.len() > wire::MAX_LINE {
            return Ok((text(line), Framing::Line));
        }
    }
}

/// The UDP socket's buffers: a conversation is a few datagrams, one at a time.
const UDP_BUFFER: usize = 64 << 10;

async fn hello_udp(config: &HelloConfig) -> Result<Transcript, ClientError> {
    let socket = protolab_transport::udp::connect_udp(config.server, UDP_BUFFER)
        .and_then(protolab_transport::udp::into_tokio)?;
    let mut transcript = Transcript::default();
    let mut buf = vec![0u8; 2048];
    for name in &config.names {
        socket.send(name.as_bytes()).await?;
        let n = timed(config, socket.recv(&mut buf)).await?;
        transcript.replies.push(text(buf[..n].to_vec()));
    }
    Ok(transcript)
}
