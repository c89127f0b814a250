//! `greet hello`: the classic client. It reads the welcome, sends each name, prints each reply
//! and says `exit`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

/// The names the classic client sends when given none.
pub const DEFAULT_NAMES: [&str; 3] = ["Michael", "Tracy", "Sarah"];

/// Why a conversation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1} (is `greet serve` running there?)")]
    Connect(SocketAddr, std::io::Error),
    #[error("no reply from {0} within {1:?} (over UDP, is `greet serve --udp` running there?)")]
    Timeout(SocketAddr, Duration),
    #[error("the server closed the connection before replying to {0:?}")]
    Closed(String),
    #[error("the server refused us: {0}")]
    Refused(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Options of `greet hello`.
#[derive(Debug, Clone)]
pub struct HelloConfig {
    pub server: SocketAddr,
    pub names: Vec<String>,
    pub udp: bool,
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
    tokio::time::timeout(config.timeout, fut)
        .await
        .map_err(|_| ClientError::Timeout(config.server, config.timeout))?
        .map_err(ClientError::Io)
}

fn text(mut line: Vec<u8>) -> String {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8_lossy(&line).into_owned()
}

async fn hello_tcp(config: &HelloConfig) -> Result<Transcript, ClientError> {
    let stream = tokio::time::timeout(config.timeout, TcpStream::connect(config.server))
        .await
        .map_err(|_| ClientError::Timeout(config.server, config.timeout))?
        .map_err(|e| ClientError::Connect(config.server, e))?;
    tracing::debug!(local = ?stream.local_addr().ok(), "connected");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    timed(config, read.read_until(b'\n', &mut line)).await?;
    let welcome = text(std::mem::take(&mut line));
    if welcome.starts_with("ERR") {
        return Err(ClientError::Refused(welcome));
    }
    let mut transcript = Transcript {
        welcome: Some(welcome),
        replies: Vec::new(),
    };
    for name in &config.names {
        timed(config, write.write_all(format!("{name}\n").as_bytes())).await?;
        if timed(config, read.read_until(b'\n', &mut line)).await? == 0 {
            return Err(ClientError::Closed(name.clone()));
        }
        transcript.replies.push(text(std::mem::take(&mut line)));
    }
    timed(config, write.write_all(b"exit\n")).await?;
    // Wait for the server's close, so the conversation ends as the protocol says.
    let mut rest = Vec::new();
    timed(config, read.read_to_end(&mut rest)).await?;
    Ok(transcript)
}

async fn hello_udp(config: &HelloConfig) -> Result<Transcript, ClientError> {
    let local: SocketAddr = if config.server.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(config.server).await?;
    let mut transcript = Transcript::default();
    let mut buf = vec![0u8; 2048];
    for name in &config.names {
        socket.send(name.as_bytes()).await?;
        let n = timed(config, socket.recv(&mut buf)).await?;
        transcript.replies.push(text(buf[..n].to_vec()));
    }
    Ok(transcript)
}
