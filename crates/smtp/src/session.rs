//! The SMTP server session as a state machine without I/O (RFC 5321 sections 3 and 4).
//!
//! The driver feeds every octet the client sends into [`Session::feed`] and gets [`Output`]s
//! back, in order: replies to write, message content to store, and the moment a message is
//! complete. When a message is complete the session stops consuming input until the driver has
//! stored it and called [`Session::stored`], which gives the reply to the DATA: that is how the
//! 250 waits for the disk while pipelined commands that follow wait in the buffer, untouched.
//!
//! Replies are produced in the order the commands arrived; PIPELINING (RFC 2920) only needs the
//! driver to write them before it waits for more input.

use bytes::{Buf, BytesMut};

use crate::data::DataDecoder;
use crate::wire::{Body, Command, CommandError, MAX_COMMAND_LINE, Reply};

/// Limits and names a session works with.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name this server gives itself in the greeting, EHLO and Received: headers.
    pub hostname: String,
    /// The largest message accepted, in octets, advertised as SIZE.
    pub max_size: u64,
    /// Recipients accepted per message.
    pub max_recipients: usize,
    /// Protocol errors before the session is ended with 421.
    pub max_errors: u32,
    /// The driver has a certificate: offer STARTTLS (RFC 3207) on a plaintext connection.
    pub starttls: bool,
    /// Refuse MAIL, RCPT, DATA and VRFY with 530 5.7.0 until the connection is in TLS.
    pub require_tls: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_size: 32 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            starttls: false,
            require_tls: false,
        }
    }
}

/// The envelope of a message: what the SMTP dialog said, apart from the message's own headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Envelope {
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    /// True after EHLO, false after HELO (the Received: header says ESMTP or SMTP).
    pub esmtp: bool,
    /// MAIL FROM's reverse-path; empty for the null sender `<>`.
    pub mail_from: String,
    /// RCPT TO's forward-paths, in order.
    pub rcpt_to: Vec<String>,
    pub body: Body,
    pub smtputf8: bool,
    /// The TLS the message came over, e.g. `TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256`;
    /// `None` for plaintext. The Received: header says `with ESMTPS` and names it.
    pub tls: Option<String>,
}

/// Why the driver could not store a message; either way nothing of it is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk or the quota is full: 452 4.3.1, the client may retry once space is free.
    #[error("{0}")]
    NoSpace(String),
    /// Any other failure: 451 4.3.0.
    #[error("{0}")]
    Failed(String),
}

impl StoreError {
    /// Classifies an I/O error by whether more space would cure it.
    pub fn from_io(context: &str, e: &std::io::Error) -> Self {
        let why = format!("{context}: {e}");
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                StoreError::NoSpace(why)
            }
            _ => StoreError::Failed(why),
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Write this reply.
    Reply(Reply),
    /// A message's content begins: prepare to store it under this envelope.
    MessageStart(Envelope),
    /// More content of the current message, dot-stuffing removed.
    Content(bytes::Bytes),
    /// The current message was refused (too large, bad lines): drop what was stored of it. Its
    /// reply follows once the client has sent the end of the data.
    MessageAbort,
    /// The current message is complete: make it durable, then call [`Session::stored`].
    MessageEnd(Envelope),
    /// The client said STARTTLS and was told 220: write the replies, throw away any input
    /// already buffered (it came in plaintext and must not be read as if it came over TLS),
    /// run the TLS handshake and start a new session with [`Session::after_tls`]. This
    /// session reads nothing more.
    StartTls,
    /// Close the connection after writing the replies before this.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeted, waiting for EHLO or HELO.
    Fresh,
    /// After EHLO/HELO or a finished transaction: MAIL may start one.
    Ready,
    /// After MAIL.
    Mail,
    /// After at least one accepted RCPT.
    Rcpt,
    /// Receiving the message.
    Data,
    /// The message is complete and being stored.
    Storing,
    /// QUIT or a fatal error: nothing more is read.
    Closed,
}

/// Why the content of a message in progress is being thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    TooLarge,
}

/// Counters a session keeps for the server's statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionCounts {
    pub errors: u32,
    pub messages_refused: u32,
}

/// One client's SMTP session.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    envelope: Envelope,
    data: DataDecoder,
    size: u64,
    discard: Option<Discard>,
    /// A command line longer than the limit is being skipped up to its LF.
    skipping_long_line: bool,
    pub counts: SessionCounts,
}

impl Session {
    /// A new session; send [`Session::greeting`] first.
    pub fn new(config: SessionConfig) -> Self {
        Self::with_tls(config, None)
    }

    /// A session over TLS described by `tls` (see [`Envelope::tls`]): after STARTTLS, where no
    /// greeting is sent and the client starts over with EHLO (RFC 3207 section 4.2: nothing
    /// learnt before the handshake survives it), or on the implicit-TLS port (RFC 8314).
    pub fn after_tls(config: SessionConfig, tls: String) -> Self {
        Self::with_tls(config, Some(tls))
    }

    fn with_tls(config: SessionConfig, tls: Option<String>) -> Self {
        Self {
            config,
            state: State::Fresh,
            envelope: Envelope {
                tls,
                ..Envelope::default()
            },
            data: DataDecoder::new(),
            size: 0,
            discard: None,
            skipping_long_line: false,
            counts: SessionCounts::default(),
        }
    }

    /// The 220 greeting.
    pub fn greeting(&self) -> Reply {
        Reply::plain(
            220,
            vec![format!(
                "{} ESMTP protolab-smtp ready",
                self.config.hostname
            )],
        )
    }

    /// True once the session has nothing more to read (after QUIT or a fatal error).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True while a message is being received, so the driver knows what an idle timeout cuts.
    pub fn in_data(&self) -> bool {
        self.state == State::Data
    }

    /// Consumes what it can of `input`, appending what the driver must do to `out`.
    ///
    /// Returns without consuming everything when more input is needed, when a message is
    /// complete (until [`Session::stored`]) or when the session closed.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut Vec<Output>) {
        loop {
            match self.state {
                State::Closed | State::Storing => return,
                State::Data => {
                    if !self.feed_data(input, out) {
                        return;
                    }
                }
                _ => {
                    if !self.feed_command(input, out) {
                        return;
                    }
                }
            }
        }
    }

    /// The reply to a DATA whose message was stored (`Ok` with its id) or failed to be.
    pub fn stored(&mut self, result: Result<String, StoreError>) -> Reply {
        debug_assert_eq!(self.state, State::Storing);
        self.state = State::Ready;
        self.envelope = Envelope {
            helo: std::mem::take(&mut self.envelope.helo),
            esmtp: self.envelope.esmtp,
            tls: self.envelope.tls.take(),
            ..Envelope::default()
        };
        match result {
            Ok(id) => Reply::new(250, "2.0.0", format!("OK: queued as {id}")),
            Err(StoreError::NoSpace(why)) => {
                tracing::warn!(error = %why, "storing a message failed: no space");
                // RFC 5321 section 4.2.2 and RFC 3463's "mail system full".
                Reply::new(452, "4.3.1", "insufficient system storage; try again later")
            }
            Err(StoreError::Failed(why)) => {
                tracing::warn!(error = %why, "storing a message failed");
                Reply::new(
                    451,
                    "4.3.0",
                    "local error in storing the message; try again later",
                )
            }
        }
    }

    /// The reply for a connection the server ends because it idled too long.
    pub fn idle_timeout_reply(&self) -> Reply {
        Reply::new(
            421,
            "4.4.2",
            format!("{} idle too long; closing connection", self.config.hostname),
        )
    }

    /// The reply for a connection the server ends because it is shutting down.
    pub fn shutdown_reply(&self) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{} shutting down; try again later", self.config.hostname),
        )
    }

    /// Handles one command line if a whole one is buffered; false when more input is needed.
    fn feed_command(&mut self, input: &mut BytesMut, out: &mut Vec<Output>) -> bool {
        if self.skipping_long_line {
            // Drop the rest of an over-long line without buffering it; answer at its LF.
            let Some(lf) = input.iter().position(|&b| b == b'\n') else {
                input.clear();
                return false;
            };
            input.advance(lf + 1);
            self.skipping_long_line = false;
            self.error(
                out,
                Reply::new(
                    500,
                    "5.5.2",
                    "line too long: a command line may hold 512 octets with its CRLF",
                ),
            );
            return true;
        }
        let Some(lf) = input
            .iter()
            .take(MAX_COMMAND_LINE)
            .position(|&b| b == b'\n')
        else {
            if input.len() >= MAX_COMMAND_LINE {
                self.skipping_long_line = true;
                return true;
            }
            return false;
        };
        let line = input.split_to(lf + 1);
        // Commands end with CRLF; a bare LF is tolerated here because it cannot smuggle
        // anything (it only matters inside DATA, where it is never a line end).
        let mut text = &line[..lf];
        if let Some(t) = text.strip_suffix(b"\r") {
            text = t;
        }
        match Command::parse(text) {
            Ok(cmd) => self.command(cmd, out),
            Err(e) => {
                tracing::debug!(error = %e, "bad command");
                let reply = match e {
                    CommandError::UnknownVerb(v) => {
                        Reply::new(500, "5.5.2", format!("command {v:?} not recognized"))
                    }
                    CommandError::Syntax(enh, why) => Reply::new(501, enh, why),
                    CommandError::UnknownParameter(why) => Reply::new(555, "5.5.4", why),
                    CommandError::SizeTooLarge => self.too_large_reply(),
                };
                self.error(out, reply);
            }
        }
        true
    }

    fn too_large_reply(&self) -> Reply {
        Reply::new(
            552,
            "5.3.4",
            format!(
                "message size exceeds the limit of {} octets",
                self.config.max_size
            ),
        )
    }

    /// Sends an error reply and counts it; too many end the session.
    fn error(&mut self, out: &mut Vec<Output>, reply: Reply) {
        out.push(Output::Reply(reply));
        self.counts.errors += 1;
        if self.counts.errors >= self.config.max_errors {
            out.push(Output::Reply(Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} too many errors; closing connection",
                    self.config.hostname
                ),
            )));
            out.push(Output::Close);
            self.state = State::Closed;
        }
    }

    fn out_of_sequence(&mut self, out: &mut Vec<Output>, why: &str) {
        self.error(out, Reply::new(503, "5.5.1", why.to_owned()));
    }

    fn reset_transaction(&mut self) {
        self.envelope.mail_from.clear();
        self.envelope.rcpt_to.clear();
        self.envelope.body = Body::SevenBit;
        self.envelope.smtputf8 = false;
    }

    /// STARTTLS is offered: a certificate is configured and the connection is not in TLS yet.
    fn offers_starttls(&self) -> bool {
        self.config.starttls && self.envelope.tls.is_none()
    }

    fn command(&mut self, cmd: Command, out: &mut Vec<Output>) {
        let reply = |r: Reply| Output::Reply(r);
        if self.config.require_tls
            && self.envelope.tls.is_none()
            && matches!(
                cmd,
                Command::Mail(..) | Command::Rcpt(_) | Command::Data | Command::Vrfy
            )
        {
            // RFC 3207 section 4: the reply a server that requires TLS gives to commands
            // other than NOOP, EHLO, STARTTLS and QUIT.
            self.error(
                out,
                Reply::new(530, "5.7.0", "must issue a STARTTLS command first"),
            );
            return;
        }
        match cmd {
            Command::Ehlo(domain) => {
                self.reset_transaction();
                self.envelope.helo = domain.clone();
                self.envelope.esmtp = true;
                self.state = State::Ready;
                let mut lines = vec![
                    format!("{} greets {domain}", self.config.hostname),
                    "PIPELINING".into(),
                    format!("SIZE {}", self.config.max_size),
                    "8BITMIME".into(),
                    "SMTPUTF8".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ];
                if self.offers_starttls() {
                    lines.push("STARTTLS".into());
                }
                lines.push("HELP".into());
                out.push(reply(Reply::plain(250, lines)));
            }
            Command::StartTls => {
                if self.envelope.tls.is_some() {
                    self.out_of_sequence(out, "already in TLS");
                } else if !self.config.starttls {
                    self.error(
                        out,
                        Reply::new(
                            502,
                            "5.5.1",
                            "STARTTLS is not offered: this server has no certificate",
                        ),
                    );
                } else if self.state == State::Fresh {
                    self.out_of_sequence(out, "say EHLO first");
                } else {
                    out.push(reply(Reply::new(220, "2.0.0", "ready to start TLS")));
                    out.push(Output::StartTls);
                    self.state = State::Closed;
                }
            }
            Command::Helo(domain) => {
                self.reset_transaction();
                self.envelope.helo = domain;
                self.envelope.esmtp = false;
                self.state = State::Ready;
                out.push(reply(Reply::plain(250, vec![self.config.hostname.clone()])));
            }
            Command::Mail(from, params) => match self.state {
                State::Fresh => self.out_of_sequence(out, "say EHLO or HELO first"),
                State::Mail | State::Rcpt => {
                    self.out_of_sequence(out, "a MAIL transaction is already open; RSET first")
                }
                _ => {
                    if params.size.is_some_and(|s| s > self.config.max_size) {
                        let r = self.too_large_reply();
                        self.error(out, r);
                        return;
                    }
                    if !from.is_ascii() && !params.smtputf8 {
                        self.error(
                            out,
                            Reply::new(
                                553,
                                "5.6.7",
                                "a non-ASCII address needs the SMTPUTF8 parameter",
                            ),
                        );
                        return;
                    }
                    if !self.envelope.esmtp
                        && (params.smtputf8
                            || params.body != Body::SevenBit
                            || params.size.is_some())
                    {
                        self.error(
                            out,
                            Reply::new(555, "5.5.4", "MAIL parameters need EHLO, not HELO"),
                        );
                        return;
                    }
                    self.envelope.mail_from = from;
                    self.envelope.body = params.body;
                    self.envelope.smtputf8 = params.smtputf8;
                    self.state = State::Mail;
                    out.push(reply(Reply::new(250, "2.1.0", "sender OK")));
                }
            },
            Command::Rcpt(to) => match self.state {
                State::Mail | State::Rcpt => {
                    if !to.is_ascii() && !self.envelope.smtputf8 {
                        self.error(
                            out,
                            Reply::new(
                                553,
                                "5.6.7",
                                "a non-ASCII address needs SMTPUTF8 on MAIL FROM",
                            ),
                        );
                    } else if self.envelope.rcpt_to.len() >= self.config.max_recipients {
                        // 452 is the RFC 5321 section 4.5.3.1.10 reply; it is no protocol error.
                        out.push(reply(Reply::new(
                            452,
                            "4.5.3",
                            "too many recipients; send the rest in another message",
                        )));
                    } else {
                        self.envelope.rcpt_to.push(to);
                        self.state = State::Rcpt;
                        out.push(reply(Reply::new(250, "2.1.5", "recipient OK")));
                    }
                }
                _ => self.out_of_sequence(out, "say MAIL FROM first"),
            },
            Command::Data => match self.state {
                State::Rcpt => {
                    self.state = State::Data;
                    self.data = DataDecoder::new();
                    self.size = 0;
                    self.discard = None;
                    out.push(reply(Reply::new(
                        354,
                        "2.0.0",
                        "send the message; end with <CRLF>.<CRLF>",
                    )));
                    out.push(Output::MessageStart(self.envelope.clone()));
                }
                State::Mail => self.out_of_sequence(out, "no valid recipients; say RCPT TO first"),
                _ => self.out_of_sequence(out, "say MAIL FROM and RCPT TO first"),
            },
            Command::Rset => {
                self.reset_transaction();
                if self.state != State::Fresh {
                    self.state = State::Ready;
                }
                out.push(reply(Reply::new(250, "2.0.0", "OK")));
            }
            Command::Noop => out.push(reply(Reply::new(250, "2.0.0", "OK"))),
            Command::Vrfy => out.push(reply(Reply::new(
                252,
                "2.5.0",
                "cannot VRFY a user, but will accept the message and deliver it",
            ))),
            Command::Help => out.push(reply(Reply {
                code: 214,
                enhanced: Some("2.0.0"),
                lines: vec![
                    if self.offers_starttls() {
                        "commands: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"
                            .into()
                    } else {
                        "commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP".into()
                    },
                    "messages are stored in a Maildir; see `smtp --help`".into(),
                ],
            })),
            Command::Quit => {
                out.push(reply(Reply::new(
                    221,
                    "2.0.0",
                    format!("{} closing connection", self.config.hostname),
                )));
                out.push(Output::Close);
                self.state = State::Closed;
            }
            Command::NotImplemented(verb) => {
                self.error(
                    out,
                    Reply::new(502, "5.5.1", format!("{verb} is not implemented")),
                );
            }
        }
    }

    /// Handles message content; false when more input is needed or the message is complete.
    fn feed_data(&mut self, input: &mut BytesMut, out: &mut Vec<Output>) -> bool {
        if input.is_empty() {
            return false;
        }
        let decoded = self.data.decode(input);
        let mut chunk = input.split_to(decoded.consumed).freeze();
        let mut offset = 0;
        for range in decoded.content {
            self.size += range.len() as u64;
            if self.discard.is_none() && self.size > self.config.max_size {
                self.discard = Some(Discard::TooLarge);
                out.push(Output::MessageAbort);
            }
            if self.discard.is_none() {
                // Consecutive ranges are split off the frozen chunk without copying.
                chunk.advance(range.start - offset);
                out.push(Output::Content(chunk.split_to(range.len())));
                offset = range.end;
            }
        }
        if !decoded.end {
            return false;
        }
        let flaws = self.data.flaws();
        let refusal = if self.discard == Some(Discard::TooLarge) {
            Some(self.too_large_reply())
        } else if flaws.bare_lf || flaws.bare_cr {
            Some(Reply::new(
                550,
                "5.6.0",
                "message refused: it holds a bare LF or bare CR; end every line with CRLF",
            ))
        } else if flaws.long_line {
            Some(Reply::new(
                500,
                "5.6.0",
                "line too long: a text line may hold 1000 octets with its CRLF",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            if self.discard.is_none() {
                out.push(Output::MessageAbort);
            }
            self.counts.messages_refused += 1;
            self.state = State::Ready;
            self.reset_transaction();
            out.push(Output::Reply(r));
            return true;
        }
        self.state = State::Storing;
        out.push(Output::MessageEnd(self.envelope.clone()));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.test".into(),
            max_size: 100,
            max_recipients: 2,
            max_errors: 4,
            ..SessionConfig::default()
        }
    }

    /// Feeds `input` and returns the transcript of replies, with `[start]`, `[abort]`, `[close]`
    /// and `[end ...]` markers, storing every complete message successfully as "ID".
    fn transcript(session: &mut Session, input: &[u8]) -> (String, Vec<u8>) {
        let mut buf = BytesMut::from(input);
        let mut text = String::new();
        let mut content = Vec::new();
        loop {
            let mut out = Vec::new();
            session.feed(&mut buf, &mut out);
            let mut ended = false;
            for o in out {
                match o {
                    Output::Reply(r) => text.push_str(&String::from_utf8(r.to_bytes()).unwrap()),
                    Output::MessageStart(_) => text.push_str("[start]\n"),
                    Output::Content(b) => content.extend_from_slice(&b),
                    Output::MessageAbort => text.push_str("[abort]\n"),
                    Output::Close => text.push_str("[close]\n"),
                    Output::StartTls => text.push_str("[starttls]\n"),
                    Output::MessageEnd(env) => {
                        text.push_str(&format!("[end {} {:?}]\n", env.mail_from, env.rcpt_to));
                        ended = true;
                    }
                }
            }
            if ended {
                let r = session.stored(Ok("ID".into()));
                text.push_str(&String::from_utf8(r.to_bytes()).unwrap());
            } else {
                return (text, content);
            }
        }
    }

    #[test]
    fn pipelined_transaction_in_one_packet() {
        let mut s = Session::new(config());
        let (t, body) = transcript(
            &mut s,
            b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nhi\r\n..dot\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(
            t,
            "250-mx.test greets c.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
             250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n\
             354 2.0.0 send the message; end with <CRLF>.<CRLF>\r\n[start]\n[end a@b.test [\"c@d.test\"]]\n\
             250 2.0.0 OK: queued as ID\r\n221 2.0.0 mx.test closing connection\r\n[close]\n"
        );
        assert_eq!(body, b"hi\r\n.dot\r\n");
        assert!(s.is_closed());
    }

    #[test]
    fn starttls_is_offered_only_with_a_certificate_and_only_once() {
        let (t, _) = transcript(&mut Session::new(config()), b"EHLO c\r\nSTARTTLS\r\n");
        assert!(!t.contains("STARTTLS\r\n250"), "{t}");
        assert!(
            t.ends_with("502 5.5.1 STARTTLS is not offered: this server has no certificate\r\n"),
            "{t}"
        );

        let offering = || SessionConfig {
            starttls: true,
            ..config()
        };
        let mut s = Session::new(offering());
        let mut buf = BytesMut::from(&b"EHLO c\r\nSTARTTLS\r\nEHLO injected\r\n"[..]);
        let mut out = Vec::new();
        s.feed(&mut buf, &mut out);
        let ehlo = match &out[0] {
            Output::Reply(r) => String::from_utf8(r.to_bytes()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(ehlo.contains("250-STARTTLS\r\n250 HELP"), "{ehlo}");
        assert_eq!(
            out[1..],
            [
                Output::Reply(Reply::new(220, "2.0.0", "ready to start TLS")),
                Output::StartTls
            ]
        );
        // The session stops at STARTTLS: what follows is left for the driver to throw away.
        assert_eq!(&buf[..], b"EHLO injected\r\n");
        assert!(s.is_closed());

        // Over TLS the client starts over; STARTTLS is neither offered nor accepted again, and
        // the Received: header learns the TLS parameters from the envelope.
        let mut s = Session::after_tls(offering(), "TLSv1.3 with cipher X".into());
        let (t, _) = transcript(
            &mut s,
            b"MAIL FROM:<a@b>\r\nEHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n",
        );
        assert!(
            t.starts_with("503 5.5.1 say EHLO or HELO first\r\n250-mx.test"),
            "{t}"
        );
        assert!(!t.contains("STARTTLS\r\n250"), "{t}");
        assert!(
            t.contains("250 HELP\r\n503 5.5.1 already in TLS\r\n250 2.1.0"),
            "{t}"
        );
        let mut s = Session::after_tls(offering(), "TLSv1.3 with cipher X".into());
        let mut buf =
            BytesMut::from(&b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n"[..]);
        let mut out = Vec::new();
        s.feed(&mut buf, &mut out);
        match out.last() {
            Some(Output::MessageEnd(env)) => {
                assert_eq!(env.tls.as_deref(), Some("TLSv1.3 with cipher X"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn require_tls_refuses_mail_before_starttls_with_530() {
        let mut s = Session::new(SessionConfig {
            starttls: true,
            require_tls: true,
            max_errors: 10,
            ..config()
        });
        let (t, _) = transcript(
            &mut s,
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nNOOP\r\nSTARTTLS\r\n",
        );
        assert!(
            t.ends_with(
                "530 5.7.0 must issue a STARTTLS command first\r\n\
                 530 5.7.0 must issue a STARTTLS command first\r\n\
                 530 5.7.0 must issue a STARTTLS command first\r\n\
                 250 2.0.0 OK\r\n220 2.0.0 ready to start TLS\r\n[starttls]\n"
            ),
            "{t}"
        );
    }

    #[test]
    fn storing_waits_and_failure_is_451() {
        let mut s = Session::new(config());
        let mut buf = BytesMut::from(
            &b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n.\r\nNOOP\r\n"[..],
        );
        let mut out = Vec::new();
        s.feed(&mut buf, &mut out);
        assert!(matches!(out.last(), Some(Output::MessageEnd(_))));
        assert_eq!(&buf[..], b"NOOP\r\n", "pipelined input waits for the store");
        let mut again = Vec::new();
        s.feed(&mut buf, &mut again);
        assert!(again.is_empty());
        assert_eq!(
            s.stored(Err(StoreError::Failed("EIO".into()))).to_bytes(),
            b"451 4.3.0 local error in storing the message; try again later\r\n"
        );
        s.feed(&mut buf, &mut again);
        assert_eq!(again, vec![Output::Reply(Reply::new(250, "2.0.0", "OK"))]);
    }

    #[test]
    fn a_full_disk_is_452_and_the_session_goes_on() {
        let mut s = Session::new(config());
        let (_, _) = transcript(&mut s, b"HELO c\r\n");
        let mut buf = BytesMut::from(&b"MAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n.\r\n"[..]);
        let mut out = Vec::new();
        s.feed(&mut buf, &mut out);
        assert!(matches!(out.last(), Some(Output::MessageEnd(_))));
        let e = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            s.stored(Err(StoreError::from_io("writing", &e))).to_bytes(),
            b"452 4.3.1 insufficient system storage; try again later\r\n"
        );
        let (t, _) = transcript(&mut s, b"MAIL FROM:<a@b>\r\n");
        assert_eq!(t, "250 2.1.0 sender OK\r\n");
    }

    #[test]
    fn control_characters_never_reach_the_envelope() {
        let mut s = Session::new(SessionConfig {
            max_errors: 10,
            ..config()
        });
        let (t, _) = transcript(
            &mut s,
            b"EHLO c\x00X: y\r\nEHLO c\r\nMAIL FROM:<\"a\x00b\"@x.test>\r\nMAIL FROM:<a@x.test>\r\n\
              RCPT TO:<\"v\rX-Injected: yes\"@y.test>\r\nRCPT TO:<v@[1.2.3.4\rX-Evil: 1]>\r\n\
              RCPT TO:<ok@y.test>\r\nDATA\r\n.\r\n",
        );
        assert!(
            t.starts_with(
                "501 5.5.4 syntax: EHLO your.host.name (no control characters)\r\n250-mx.test"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "250 HELP\r\n\
                 501 5.1.7 bad address: CR, LF, NUL and other control characters are not allowed\r\n\
                 250 2.1.0 sender OK\r\n\
                 501 5.1.3 bad address: CR, LF, NUL and other control characters are not allowed\r\n\
                 501 5.1.3 bad address: CR, LF, NUL and other control characters are not allowed\r\n\
                 250 2.1.5 recipient OK\r\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("[end a@x.test [\"ok@y.test\"]]\n250 2.0.0 OK: queued as ID\r\n"),
            "{t}"
        );
    }

    #[test]
    fn out_of_order_commands() {
        let mut s = Session::new(config());
        let (t, _) = transcript(
            &mut s,
            b"MAIL FROM:<a@b>\r\nHELO c\r\nRCPT TO:<a@b>\r\nDATA\r\n",
        );
        assert_eq!(
            t,
            "503 5.5.1 say EHLO or HELO first\r\n250 mx.test\r\n503 5.5.1 say MAIL FROM first\r\n\
             503 5.5.1 say MAIL FROM and RCPT TO first\r\n"
        );
    }

    #[test]
    fn too_many_recipients_and_size() {
        let mut s = Session::new(config());
        let (t, _) = transcript(
            &mut s,
            b"EHLO c\r\nMAIL FROM:<a@b> SIZE=101\r\nMAIL FROM:<a@b> SIZE=100\r\nRCPT TO:<1@b>\r\nRCPT TO:<2@b>\r\nRCPT TO:<3@b>\r\n",
        );
        assert!(
            t.contains("552 5.3.4 message size exceeds the limit of 100 octets\r\n250 2.1.0"),
            "{t}"
        );
        assert!(t.ends_with("250 2.1.5 recipient OK\r\n250 2.1.5 recipient OK\r\n452 4.5.3 too many recipients; send the rest in another message\r\n"), "{t}");
    }

    #[test]
    fn oversized_message_is_read_and_discarded() {
        let mut s = Session::new(config());
        let mut input = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
        input.extend(std::iter::repeat_n(b"0123456789\r\n", 20).flatten());
        input.extend_from_slice(b".\r\nNOOP\r\n");
        let (t, body) = transcript(&mut s, &input);
        assert!(t.ends_with("[start]\n[abort]\n552 5.3.4 message size exceeds the limit of 100 octets\r\n250 2.0.0 OK\r\n"), "{t}");
        assert!(body.len() <= 100);
        assert!(!s.is_closed());
    }

    #[test]
    fn smuggled_commands_stay_content() {
        let mut s = Session::new(config());
        let (t, _) = transcript(
            &mut s,
            b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\n.\nMAIL FROM:<evil@e>\r\n.\r\nNOOP\r\n",
        );
        assert!(t.ends_with("[start]\n[abort]\n550 5.6.0 message refused: it holds a bare LF or bare CR; end every line with CRLF\r\n250 2.0.0 OK\r\n"), "{t}");
    }

    #[test]
    fn long_lines() {
        let mut s = Session::new(config());
        let mut input = vec![b'N'; 600];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let (t, _) = transcript(&mut s, &input);
        assert_eq!(
            t,
            "500 5.5.2 line too long: a command line may hold 512 octets with its CRLF\r\n250 2.0.0 OK\r\n"
        );
    }

    #[test]
    fn too_many_errors_close() {
        let mut s = Session::new(config());
        let (t, _) = transcript(&mut s, b"A\r\nB\r\nC\r\nD\r\nE\r\n");
        assert!(t.ends_with("500 5.5.2 command \"D\" not recognized\r\n421 4.7.0 mx.test too many errors; closing connection\r\n[close]\n"), "{t}");
        assert!(s.is_closed());
    }

    #[test]
    fn smtputf8_rules() {
        let mut s = Session::new(config());
        let (t, _) = transcript(
            &mut s,
            "EHLO c\r\nMAIL FROM:<jörg@b>\r\nMAIL FROM:<jörg@b> SMTPUTF8\r\nRCPT TO:<zoë@d>\r\n"
                .as_bytes(),
        );
        assert!(t.contains("553 5.6.7"), "{t}");
        assert!(
            t.ends_with("250 2.1.0 sender OK\r\n250 2.1.5 recipient OK\r\n"),
            "{t}"
        );
    }
}
