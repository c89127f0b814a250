//! SMTP's wire format without I/O: command lines in, replies out (RFC 5321 section 4.1).
//!
//! [`Command::parse`] takes one command line without its line ending and names what it asks for;
//! verbs and parameter keywords are case-insensitive, as RFC 5321 section 2.4 requires (Python's
//! smtplib sends `mail FROM:<a@b> size=243`). [`Reply`] is a reply with its enhanced status code
//! (RFC 3463, RFC 2034) and emits itself, one or many lines, with `-` continuations.

use std::fmt;

/// The longest command line, with its CRLF (RFC 5321 section 4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// The longest text line of a message, with its CRLF (RFC 5321 section 4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// A reply: a three-digit code, an optional enhanced status code and one or more text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `class.subject.detail`, e.g. `2.1.0`; absent only on the greeting and HELO/EHLO replies,
    /// which RFC 2034 section 3 leaves without one.
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (greeting, HELO, EHLO).
    pub fn plain(code: u16, lines: Vec<String>) -> Self {
        Self {
            code,
            enhanced: None,
            lines,
        }
    }

    /// True for 2xx and 3xx replies.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the reply's wire form to `out`: every line but the last joins code and text with
    /// `-`, the last with a space, each with the enhanced code in front and CRLF at the end.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map_or("", String::as_str);
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}", self.code).as_bytes());
            if let Some(enh) = self.enhanced {
                out.extend_from_slice(enh.as_bytes());
                if !text.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(&self.to_bytes()).trim_end())
    }
}

/// The BODY= parameter of MAIL (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
}

/// The parameters of MAIL FROM this server knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// SIZE=: the size the client declares (RFC 1870).
    pub size: Option<u64>,
    /// BODY=7BIT or BODY=8BITMIME.
    pub body: Body,
    /// SMTPUTF8: addresses and headers may be UTF-8 (RFC 6531).
    pub smtputf8: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// MAIL FROM:<reverse-path>; the empty path `<>` is an empty string.
    Mail(String, MailParams),
    /// RCPT TO:<forward-path>.
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    /// STARTTLS (RFC 3207): switch this connection to TLS.
    StartTls,
    /// A verb this server knows of but does not offer (EXPN, AUTH, BDAT, TURN...).
    NotImplemented(String),
}

/// Why a command line was refused before any state was consulted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not a verb of SMTP: 500 5.5.2.
    #[error("unknown command {0:?}")]
    UnknownVerb(String),
    /// A known verb with bad arguments: 501 with the enhanced code given.
    #[error("{1}")]
    Syntax(&'static str, String),
    /// A parameter this server does not know: 555 5.5.4 (RFC 5321 section 4.1.1.11).
    #[error("{0}")]
    UnknownParameter(String),
    /// SIZE= over the limit is checked by the session; this is a SIZE too large to even parse.
    #[error("declared size too large")]
    SizeTooLarge,
}

impl Command {
    /// Parses one command line, given without its CRLF.
    ///
    /// # Errors
    /// [`CommandError`] says which reply the line deserves.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| CommandError::Syntax("5.5.2", "command line is not valid UTF-8".into()))?;
        let (verb, rest) = match text.find(' ') {
            Some(i) => (&text[..i], &text[i + 1..]),
            None => (text, ""),
        };
        let verb_upper = verb.to_ascii_uppercase();
        let no_args = |cmd: Command| {
            if rest.trim().is_empty() {
                Ok(cmd)
            } else {
                Err(CommandError::Syntax(
                    "5.5.4",
                    format!("{verb_upper} takes no arguments"),
                ))
            }
        };
        match verb_upper.as_str() {
            "EHLO" | "HELO" => {
                let domain = rest.trim();
                // The name goes into the Received: header of every message of the session.
                if domain.contains(char::is_control) {
                    return Err(CommandError::Syntax(
                        "5.5.4",
                        format!("syntax: {verb_upper} your.host.name (no control characters)"),
                    ));
                }
                if domain.is_empty() || domain.contains(char::is_whitespace) {
                    return Err(CommandError::Syntax(
                        "5.5.4",
                        format!("syntax: {verb_upper} your.host.name"),
                    ));
                }
                Ok(if verb_upper == "EHLO" {
                    Command::Ehlo(domain.to_owned())
                } else {
                    Command::Helo(domain.to_owned())
                })
            }
            "MAIL" => {
                let syntax = || {
                    CommandError::Syntax("5.5.4", "syntax: MAIL FROM:<address> [parameters]".into())
                };
                let (path, params) = parse_path_arg(rest, "FROM:").ok_or_else(syntax)?;
                check_no_controls(path, "5.1.7")?;
                let path = strip_source_route(path).ok_or_else(syntax)?.to_owned();
                if !path.is_empty() {
                    check_mailbox(&path)?;
                }
                let params = parse_mail_params(params)?;
                Ok(Command::Mail(path, params))
            }
            "RCPT" => {
                let syntax = || CommandError::Syntax("5.5.4", "syntax: RCPT TO:<address>".into());
                let (path, params) = parse_path_arg(rest, "TO:").ok_or_else(syntax)?;
                check_no_controls(path, "5.1.3")?;
                let path = strip_source_route(path).ok_or_else(syntax)?.to_owned();
                if path.is_empty() {
                    return Err(CommandError::Syntax(
                        "5.1.3",
                        "an empty recipient <> cannot receive mail".into(),
                    ));
                }
                if !path.eq_ignore_ascii_case("postmaster") {
                    check_mailbox(&path)?;
                }
                if let Some(p) = params.split_whitespace().next() {
                    return Err(CommandError::UnknownParameter(format!(
                        "RCPT parameter {p:?} is not supported"
                    )));
                }
                Ok(Command::Rcpt(path))
            }
            "DATA" => no_args(Command::Data),
            "RSET" => no_args(Command::Rset),
            "QUIT" => no_args(Command::Quit),
            // RFC 3207 section 4: "STARTTLS" takes no parameters; 501 otherwise.
            "STARTTLS" => no_args(Command::StartTls),
            // NOOP and HELP may carry an argument, which is ignored (RFC 5321 4.1.1.9, 4.1.1.8).
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help),
            "VRFY" => {
                if rest.trim().is_empty() {
                    Err(CommandError::Syntax(
                        "5.5.4",
                        "syntax: VRFY <address>".into(),
                    ))
                } else {
                    Ok(Command::Vrfy)
                }
            }
            "EXPN" | "TURN" | "ETRN" | "AUTH" | "BDAT" | "SEND" | "SOML" | "SAML" => {
                Ok(Command::NotImplemented(verb_upper))
            }
            _ => Err(CommandError::UnknownVerb(printable(verb))),
        }
    }
}

/// The verb as it may be shown in a reply: printable ASCII only, at most 32 characters.
fn printable(verb: &str) -> String {
    verb.chars()
        .take(32)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Splits `FROM:<path> params` (keyword case-insensitive, spaces after the colon tolerated as
/// many clients send them) into the path without brackets and the parameter text.
fn parse_path_arg<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let after = rest[keyword.len()..].trim_start();
    let inner = after.strip_prefix('<')?;
    let close = find_path_end(inner)?;
    let path = &inner[..close];
    let params = &inner[close + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return None;
    }
    Some((path, params.trim()))
}

/// Drops an obsolete source route (`@a,@b:user@c`), which is accepted and ignored (RFC 5321
/// section 4.1.2); `None` for a route without its colon.
fn strip_source_route(path: &str) -> Option<&str> {
    if path.starts_with('@') {
        Some(&path[path.find(':')? + 1..])
    } else {
        Some(path)
    }
}

/// Refuses a path holding a control character anywhere, quoted local parts and address
/// literals included: the grammar of RFC 5321 section 4.1.2 allows none (qtextSMTP, dcontent),
/// and the path is written into the stored message's `Return-Path:`, `Delivered-To:` and
/// `Received:` headers, where a bare CR, an LF or a NUL would forge or break a header.
fn check_no_controls(path: &str, enhanced: &'static str) -> Result<(), CommandError> {
    if path.contains(char::is_control) {
        return Err(CommandError::Syntax(
            enhanced,
            "bad address: CR, LF, NUL and other control characters are not allowed".into(),
        ));
    }
    Ok(())
}

/// The index of the `>` closing a path, skipping over a quoted local part.
fn find_path_end(inner: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Checks a mailbox `local@domain` loosely: both parts present, no spaces or controls outside
/// a quoted local part, domain made of letters, digits, hyphens, dots or an address literal.
fn check_mailbox(path: &str) -> Result<(), CommandError> {
    let bad = |why: &str| {
        CommandError::Syntax(
            "5.1.7",
            format!("bad address <{}>: {why}", printable_addr(path)),
        )
    };
    let at = path
        .rfind('@')
        .ok_or_else(|| bad("an address is local-part@domain"))?;
    let (local, domain) = (&path[..at], &path[at + 1..]);
    if local.is_empty() || domain.is_empty() {
        return Err(bad("an address is local-part@domain"));
    }
    if !(local.starts_with('"') && local.ends_with('"') && local.len() >= 2)
        && local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
    {
        return Err(bad("the local part has characters that need quoting"));
    }
    let literal = domain.starts_with('[') && domain.ends_with(']');
    if !literal
        && domain
            .chars()
            .any(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(bad("the domain has characters a domain name cannot have"));
    }
    Ok(())
}

fn printable_addr(path: &str) -> String {
    path.chars().take(64).filter(|c| !c.is_control()).collect()
}

fn parse_mail_params(text: &str) -> Result<MailParams, CommandError> {
    let mut params = MailParams::default();
    for word in text.split_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CommandError::Syntax(
                        "5.5.4",
                        "SIZE= takes a number of octets".into(),
                    ));
                }
                params.size = Some(v.parse().map_err(|_| CommandError::SizeTooLarge)?);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => params.body = Body::SevenBit,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                params.body = Body::EightBitMime
            }
            ("BODY", _) => {
                return Err(CommandError::Syntax(
                    "5.5.4",
                    "BODY= takes 7BIT or 8BITMIME".into(),
                ));
            }
            ("SMTPUTF8", None) => params.smtputf8 = true,
            _ => {
                return Err(CommandError::UnknownParameter(format!(
                    "MAIL parameter {:?} is not supported",
                    printable(word)
                )));
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_single_and_multi_line() {
        assert_eq!(
            Reply::new(250, "2.1.0", "OK").to_bytes(),
            b"250 2.1.0 OK\r\n"
        );
        let ehlo = Reply::plain(
            250,
            vec!["mx.test".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            ehlo.to_bytes(),
            b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            Command::parse(b"ehlo client.test").unwrap(),
            Command::Ehlo("client.test".into())
        );
        assert_eq!(Command::parse(b"QuIt").unwrap(), Command::Quit);
        let Command::Mail(from, params) = Command::parse(b"mail FROM:<a@b.test> size=243").unwrap()
        else {
            panic!("not MAIL");
        };
        assert_eq!(from, "a@b.test");
        assert_eq!(params.size, Some(243));
        assert_eq!(
            Command::parse(b"rcpt to:<c@d.test>").unwrap(),
            Command::Rcpt("c@d.test".into())
        );
    }

    #[test]
    fn mail_parameters() {
        let Command::Mail(from, p) =
            Command::parse("MAIL FROM:<jörg@exämple.test> BODY=8BITMIME SMTPUTF8".as_bytes())
                .unwrap()
        else {
            panic!("not MAIL");
        };
        assert_eq!(from, "jörg@exämple.test");
        assert_eq!(p.body, Body::EightBitMime);
        assert!(p.smtputf8);
        assert_eq!(
            Command::parse(b"MAIL FROM:<>").unwrap(),
            Command::Mail(String::new(), MailParams::default())
        );
        assert!(matches!(
            Command::parse(b"MAIL FROM:<a@b> BODY=BINARYMIME"),
            Err(CommandError::Syntax("5.5.4", _))
        ));
        assert!(matches!(
            Command::parse(b"MAIL FROM:<a@b> RET=HDRS"),
            Err(CommandError::UnknownParameter(_))
        ));
        assert!(matches!(
            Command::parse(b"MAIL FROM:<a@b> SIZE=x"),
            Err(CommandError::Syntax(..))
        ));
        assert_eq!(
            Command::parse(b"MAIL FROM:<a@b> SIZE=99999999999999999999999"),
            Err(CommandError::SizeTooLarge)
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            Command::parse(b"MAIL FROM: <a@b.test>").unwrap(),
            Command::Mail("a@b.test".into(), MailParams::default())
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<@relay.test:c@d.test>").unwrap(),
            Command::Rcpt("c@d.test".into())
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<\"a b>\"@d.test>").unwrap(),
            Command::Rcpt("\"a b>\"@d.test".into())
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<Postmaster>").unwrap(),
            Command::Rcpt("Postmaster".into())
        );
        assert!(matches!(
            Command::parse(b"RCPT TO:c@d.test"),
            Err(CommandError::Syntax(..))
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<c@d.test"),
            Err(CommandError::Syntax(..))
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<cd.test>"),
            Err(CommandError::Syntax("5.1.7", _))
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<a b@d.test>"),
            Err(CommandError::Syntax("5.1.7", _))
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<>"),
            Err(CommandError::Syntax("5.1.3", _))
        ));
        assert!(matches!(
            Command::parse(b"MAIL TO:<a@b>"),
            Err(CommandError::Syntax(..))
        ));
    }

    #[test]
    fn control_characters_in_paths_and_helo_are_refused() {
        let rcpt: [&[u8]; 6] = [
            b"RCPT TO:<\"v\rX-Injected: yes\"@y.test>",
            b"RCPT TO:<v@[1.2.3.4\rX-Evil: 1]>",
            b"RCPT TO:<\"a\x00b\"@y.test>",
            b"RCPT TO:<\"tab\there\"@y.test>",
            b"RCPT TO:<@relay\r.test:c@d.test>",
            b"RCPT TO:<Postmaster\x00>",
        ];
        for line in rcpt {
            assert!(
                matches!(Command::parse(line), Err(CommandError::Syntax("5.1.3", _))),
                "{line:?}"
            );
        }
        let mail: [&[u8]; 3] = [
            b"MAIL FROM:<\"a\x00b\"@x.test>",
            b"MAIL FROM:<a@[1.2.3.4\r]>",
            b"MAIL FROM:<\"a\x7fb\"@x.test> SIZE=10",
        ];
        for line in mail {
            assert!(
                matches!(Command::parse(line), Err(CommandError::Syntax("5.1.7", _))),
                "{line:?}"
            );
        }
        for line in [&b"EHLO c\x00X-Evil: 1"[..], b"HELO c\x1b[1m", b"EHLO a\rb"] {
            assert!(
                matches!(Command::parse(line), Err(CommandError::Syntax("5.5.4", _))),
                "{line:?}"
            );
        }
        // Quoted local parts and address literals without controls still pass.
        assert_eq!(
            Command::parse(b"RCPT TO:<\"a b\"@[1.2.3.4]>").unwrap(),
            Command::Rcpt("\"a b\"@[1.2.3.4]".into())
        );
    }

    #[test]
    fn unknown_and_not_implemented() {
        assert_eq!(
            Command::parse(b"FOO bar"),
            Err(CommandError::UnknownVerb("FOO".into()))
        );
        assert_eq!(
            Command::parse(b"expn staff"),
            Ok(Command::NotImplemented("EXPN".into()))
        );
        // RFC 3207 section 4: STARTTLS takes no parameters.
        assert_eq!(Command::parse(b"starttls"), Ok(Command::StartTls));
        assert_eq!(
            Command::parse(b"STARTTLS now"),
            Err(CommandError::Syntax(
                "5.5.4",
                "STARTTLS takes no arguments".into()
            ))
        );
        assert!(matches!(
            Command::parse(b"DATA now"),
            Err(CommandError::Syntax(..))
        ));
        assert!(matches!(
            Command::parse(b"\xff\xfe"),
            Err(CommandError::Syntax(..))
        ));
        assert_eq!(Command::parse(b"NOOP anything"), Ok(Command::Noop));
        assert!(matches!(
            Command::parse(b"EHLO"),
            Err(CommandError::Syntax(..))
        ));
    }
}
