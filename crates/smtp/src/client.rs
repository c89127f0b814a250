//! A small SMTP client for demos and scripts: one message, one dialog, every line observable.
//!
//! It speaks plainly, one command at a time without pipelining, so the dialog reads like the
//! RFC's examples. The message is built from headers and a body whose line endings are turned
//! into CRLF and whose leading dots are stuffed ([`dot_stuff`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use protolab_transport::tls::{self, TlsConnector, TlsError, TlsInfo};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::maildir::rfc5322_date;

/// Why sending failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}; is `smtp serve` running there?")]
    Connect(SocketAddr, std::io::Error),
    #[error("connection to the server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the server sent a malformed reply line {0:?}")]
    BadReply(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server refused {step}: {reply}")]
    Refused { step: String, reply: String },
    #[error(transparent)]
    BadValue(#[from] BadValue),
    #[error("{0}")]
    TlsSetup(#[from] TlsError),
    #[error("TLS with {server} failed: {why}")]
    Tls { server: SocketAddr, why: String },
    #[error("the server does not offer STARTTLS (its EHLO reply has no STARTTLS line)")]
    NoStartTls,
    #[error(
        "the server sent more after its 220 to STARTTLS; refusing what may be an injected reply"
    )]
    InjectedAfterStartTls,
}

/// Whether and how the client uses TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext.
    #[default]
    Off,
    /// Plaintext first, then STARTTLS (RFC 3207) before anything else; refused if not offered.
    StartTls,
    /// TLS from the first octet, on the implicit-TLS port (RFC 8314).
    Implicit,
}

/// The client's TLS settings.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub mode: TlsMode,
    /// The CAs to trust (PEM); `None` trusts the system's.
    pub cacert: Option<PathBuf>,
    /// The name the certificate must be valid for; `None` is the server's IP address.
    pub name: Option<String>,
}

/// A value of a [`Message`] that cannot be sent as it is: it would end a command line or a
/// header early and start one the caller never wrote (`Subject: hi\r\nBcc: ...`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct BadValue {
    /// The [`Message`] field: `from`, `to`, `subject` or `helo`.
    pub field: &'static str,
    pub why: &'static str,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Message {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: Vec<u8>,
    /// The name given in EHLO.
    pub helo: String,
}

impl Message {
    /// Checks every value that goes into a command line or a header: addresses and the EHLO
    /// name hold no control characters (RFC 5321 section 4.1.2 allows none, and CR or LF would
    /// add a command), the EHLO name no spaces, and the subject no CR, LF or NUL (they would
    /// add a header).
    ///
    /// # Errors
    /// The first field that cannot be sent.
    pub fn check(&self) -> Result<(), BadValue> {
        let address = |field, value: &str| {
            if value.contains(char::is_control) {
                Err(BadValue {
                    field,
                    why: "an address cannot hold CR, LF, NUL or other control characters",
                })
            } else {
                Ok(())
            }
        };
        address("from", &self.from)?;
        for to in &self.to {
            address("to", to)?;
        }
        if self.subject.contains(['\r', '\n', '\0']) {
            return Err(BadValue {
                field: "subject",
                why: "a header value cannot hold CR, LF or NUL (CR LF would start another header)",
            });
        }
        if self.helo.is_empty()
            || self
                .helo
                .contains(|c: char| c.is_control() || c.is_whitespace())
        {
            return Err(BadValue {
                field: "helo",
                why: "the EHLO name is one word without CR, LF, spaces or other control characters",
            });
        }
        Ok(())
    }
}

/// What happened, for `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendReport {
    pub server: SocketAddr,
    /// The server's reply to the end of data, e.g. `250 2.0.0 OK: queued as ...`.
    pub reply: String,
    /// The server's id for the message, when its reply names one (`queued as ID`).
    pub id: Option<String>,
    pub octets: usize,
    /// The TLS the message went over, e.g. `TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256`.
    pub tls: Option<String>,
}

/// A reply read from the server: its code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl std::fmt::Display for ServerReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

/// Parses one reply line: its code, whether it is the last line, and its text.
pub fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let last = match line.as_bytes().get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return None,
    };
    Some((code.parse().ok()?, last, line.get(4..).unwrap_or("")))
}

/// Turns any line endings into CRLF and stuffs a dot before every line that starts with one
/// (RFC 5321 section 4.5.2), ending with CRLF; the `.` CRLF terminator is not included.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 2);
    let mut at_start = true;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if at_start && b == b'.' {
            out.push(b'.');
        }
        at_start = false;
        match b {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_start = true;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_start = true;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    if !at_start {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Builds the message: From, To, Subject, Date and Message-ID headers, then the body.
pub fn compose(msg: &Message, now: SystemTime) -> Vec<u8> {
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut text = format!(
        "From: <{}>\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}.{}@{}>\r\n\r\n",
        msg.from,
        msg.to
            .iter()
            .map(|t| format!("<{t}>"))
            .collect::<Vec<_>>()
            .join(", "),
        msg.subject,
        rfc5322_date(now),
        stamp.as_secs(),
        stamp.subsec_nanos(),
        msg.helo
    )
    .into_bytes();
    text.extend_from_slice(&msg.body);
    text
}

/// A connection, plaintext or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The connection and its dialog, one command and one reply at a time.
struct Wire<'a> {
    io: BufReader<Box<dyn Io>>,
    timeout: Duration,
    dialog: &'a mut dyn FnMut(&str),
}

impl Wire<'_> {
    async fn reply(&mut self) -> Result<ServerReply, ClientError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(self.timeout, self.io.read_line(&mut line))
                .await
                .map_err(|_| ClientError::Timeout(self.timeout))??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            (self.dialog)(&format!("S: {}", line.trim_end()));
            let (code, last, text) =
                parse_reply_line(&line).ok_or_else(|| ClientError::BadReply(line.clone()))?;
            lines.push(text.to_owned());
            if last {
                return Ok(ServerReply { code, lines });
            }
        }
    }

    async fn say(&mut self, text: &str) -> Result<(), ClientError> {
        (self.dialog)(&format!("C: {text}"));
        self.io
            .get_mut()
            .write_all(format!("{text}\r\n").as_bytes())
            .await?;
        self.io.get_mut().flush().await?;
        Ok(())
    }

    /// Sends a command and checks its reply's code.
    async fn step(&mut self, text: &str, code: u16) -> Result<ServerReply, ClientError> {
        self.say(text).await?;
        let reply = self.reply().await?;
        expect(&reply, code, text)?;
        Ok(reply)
    }
}

/// Sends `msg` to `server`, calling `dialog` with every line sent (`C: `) and received (`S: `).
///
/// # Errors
/// [`ClientError`] names the step that failed and the server's reply.
pub async fn send(
    server: SocketAddr,
    msg: &Message,
    timeout: Duration,
    tls_options: &TlsOptions,
    dialog: &mut dyn FnMut(&str),
) -> Result<SendReport, ClientError> {
    msg.check()?;
    // Everything that can be wrong with the TLS settings is found before connecting.
    let tls_setup = match tls_options.mode {
        TlsMode::Off => None,
        _ => {
            let connector = TlsConnector::from(tls::client_config(tls_options.cacert.as_deref())?);
            let name = match &tls_options.name {
                Some(n) => n.clone(),
                None => server.ip().to_string(),
            };
            let name = tls::server_name(&name).map_err(|why| ClientError::Tls { server, why })?;
            Some((connector, name))
        }
    };
    let handshake = |stream: Box<dyn Io>| {
        let (connector, name) = tls_setup.clone().expect("TLS set up for a TLS mode");
        async move {
            let stream = tls::connect(&connector, name, stream, timeout)
                .await
                .map_err(|e| ClientError::Tls {
                    server,
                    why: tls::describe_error(&e),
                })?;
            let info = TlsInfo::of(stream.get_ref().1);
            Ok::<_, ClientError>((Box::new(stream) as Box<dyn Io>, info))
        }
    };
    // Through transport, the one layer that opens sockets (it also sets TCP_NODELAY).
    let stream = protolab_transport::connect_tcp(server, timeout)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ClientError::Timeout(timeout),
            _ => ClientError::Connect(server, e),
        })?;
    let mut stream: Box<dyn Io> = Box::new(stream);
    let mut tls_info = None;
    if tls_options.mode == TlsMode::Implicit {
        let (s, info) = handshake(stream).await?;
        (dialog)(&format!("-- TLS: {info}"));
        stream = s;
        tls_info = Some(info);
    }
    let mut w = Wire {
        io: BufReader::new(stream),
        timeout,
        dialog,
    };
    let greeting = w.reply().await?;
    expect(&greeting, 220, "the connection")?;

    w.say(&format!("EHLO {}", msg.helo)).await?;
    let mut ehlo = w.reply().await?;
    if tls_options.mode == TlsMode::StartTls {
        let offered = ehlo.code == 250
            && ehlo
                .lines
                .iter()
                .any(|l| l.trim().eq_ignore_ascii_case("STARTTLS"));
        if !offered {
            return Err(ClientError::NoStartTls);
        }
        w.step("STARTTLS", 220).await?;
        // The client's half of the injection defence: a reply that arrived with the 220 came
        // in plaintext and would be read as if it came over TLS.
        if !w.io.buffer().is_empty() {
            return Err(ClientError::InjectedAfterStartTls);
        }
        let Wire {
            io,
            timeout,
            dialog,
        } = w;
        let (s, info) = handshake(io.into_inner()).await?;
        (dialog)(&format!("-- TLS: {info}"));
        tls_info = Some(info);
        w = Wire {
            io: BufReader::new(s),
            timeout,
            dialog,
        };
        // RFC 3207 section 4.2: start over; what the server said before TLS no longer counts.
        w.say(&format!("EHLO {}", msg.helo)).await?;
        ehlo = w.reply().await?;
    }
    let esmtp = ehlo.code == 250;
    if !esmtp {
        w.step(&format!("HELO {}", msg.helo), 250).await?;
    }
    let has = |ext: &str| {
        esmtp
            && ehlo.lines.iter().any(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case(ext))
            })
    };

    let data = dot_stuff(&compose(msg, SystemTime::now()));
    let utf8 = !msg.from.is_ascii() || msg.to.iter().any(|t| !t.is_ascii());
    let mut mail = format!("MAIL FROM:<{}>", msg.from);
    if has("SIZE") {
        mail.push_str(&format!(" SIZE={}", data.len()));
    }
    if has("8BITMIME") && !data.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 && has("SMTPUTF8") {
        mail.push_str(" SMTPUTF8");
    }
    w.step(&mail, 250).await?;
    for to in &msg.to {
        w.step(&format!("RCPT TO:<{to}>"), 250).await?;
    }
    w.step("DATA", 354).await?;
    for line in data.split_inclusive(|&b| b == b'\n') {
        (w.dialog)(&format!("C: {}", String::from_utf8_lossy(line).trim_end()));
    }
    (w.dialog)("C: .");
    w.io.get_mut().write_all(&data).await?;
    w.io.get_mut().write_all(b".\r\n").await?;
    w.io.get_mut().flush().await?;
    let done = w.reply().await?;
    expect(&done, 250, "the message")?;
    w.say("QUIT").await?;
    // The 221 is a courtesy: the message is already safe, so a missing one is no failure.
    let _ = w.reply().await;
    let reply = done.to_string();
    let id = reply
        .split("queued as ")
        .nth(1)
        .map(|s| s.trim().to_owned());
    Ok(SendReport {
        server,
        reply,
        id,
        octets: data.len(),
        tls: tls_info.map(|t| t.to_string()),
    })
}

fn expect(reply: &ServerReply, code: u16, step: &str) -> Result<(), ClientError> {
    if reply.code == code {
        Ok(())
    } else {
        Err(ClientError::Refused {
            step: step.to_owned(),
            reply: reply.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b".a\n..b\nc.\n."), b"..a\r\n...b\r\nc.\r\n..\r\n");
        assert_eq!(dot_stuff(b"x\r\n.\r\n"), b"x\r\n..\r\n");
        assert_eq!(dot_stuff(b""), b"");
        assert_eq!(dot_stuff(b"a\rb"), b"a\r\nb\r\n");
    }

    #[test]
    fn values_that_would_inject_are_refused() {
        let ok = Message {
            from: "a@x.test".into(),
            to: vec!["b@x.test".into()],
            subject: "hi\tthere".into(),
            body: Vec::new(),
            helo: "c.test".into(),
        };
        assert_eq!(ok.check(), Ok(()));
        let field = |m: Message| m.check().unwrap_err().field;
        let subject = Message {
            subject: "hi\r\nBcc: evil@x.test".into(),
            ..ok.clone()
        };
        assert_eq!(field(subject), "subject");
        let to = Message {
            to: vec!["b@x.test".into(), "c@x.test\r\nRSET".into()],
            ..ok.clone()
        };
        assert_eq!(field(to), "to");
        let from = Message {
            from: "a\0@x.test".into(),
            ..ok.clone()
        };
        assert_eq!(field(from), "from");
        let helo = Message {
            helo: "c.test\nX: y".into(),
            ..ok.clone()
        };
        assert_eq!(field(helo), "helo");
    }

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line("250-PIPELINING\r\n"),
            Some((250, false, "PIPELINING"))
        );
        assert_eq!(
            parse_reply_line("250 2.0.0 OK\r\n"),
            Some((250, true, "2.0.0 OK"))
        );
        assert_eq!(parse_reply_line("250"), Some((250, true, "")));
        assert_eq!(parse_reply_line("25x OK"), None);
        assert_eq!(parse_reply_line("250+x"), None);
    }
}
