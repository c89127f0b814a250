//! SMTP: the command parser, the DATA decoder and the whole server session.

use bytes::BytesMut;
use protolab_smtp::data::{DataDecoder, DataFlaws};
use protolab_smtp::session::Output;
use protolab_smtp::wire::{CommandError, MAX_TEXT_LINE};
use protolab_smtp::{Command, Envelope, Reply, Session, SessionConfig};

/// An address may be stored in headers and file names: no octet that ends or cuts a line.
fn check_address(path: &str) {
    assert!(
        !path.contains(['\r', '\n', '\0']),
        "address {path:?} accepted with CR, LF or NUL"
    );
}

/// The command parser on one arbitrary line.
///
/// Non-UTF-8 lines are syntax errors; the verb's letter case never changes the outcome; an
/// accepted EHLO/HELO names a domain without spaces; accepted addresses hold no CR, LF or NUL.
pub fn smtp_command(data: &[u8]) {
    let parsed = Command::parse(data);
    if std::str::from_utf8(data).is_err() {
        assert!(
            matches!(parsed, Err(CommandError::Syntax(..))),
            "{parsed:?}"
        );
        return;
    }
    let verb_end = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
    let mut flipped = data.to_vec();
    for b in &mut flipped[..verb_end] {
        if b.is_ascii_alphabetic() {
            *b ^= 0x20;
        }
    }
    if !matches!(parsed, Err(CommandError::UnknownVerb(_))) {
        assert_eq!(
            Command::parse(&flipped),
            parsed,
            "the verb's case changed the outcome"
        );
    }
    match parsed {
        Ok(Command::Ehlo(d) | Command::Helo(d)) => {
            assert!(
                !d.is_empty() && !d.contains(char::is_whitespace),
                "domain {d:?}"
            );
            check_address(&d);
        }
        Ok(Command::Mail(path, _)) => {
            assert!(
                path.is_empty() || path.contains('@'),
                "reverse-path {path:?}"
            );
            check_address(&path);
        }
        Ok(Command::Rcpt(path)) => {
            assert!(!path.is_empty());
            check_address(&path);
        }
        Ok(_) | Err(_) => {}
    }
}

/// What the DATA phase of `input` holds, read line by line without the decoder's state machine.
#[derive(Debug, PartialEq, Eq)]
pub struct DataOracle {
    /// The message content (dots of stuffing removed); when the end was not seen, including the
    /// unstuffed start of the last, unfinished line.
    pub content: Vec<u8>,
    /// Octets up to and including the `.` CRLF that ends the message.
    pub end: Option<usize>,
    pub flaws: DataFlaws,
}

/// Lines end at CRLF and nowhere else; a line that is exactly `.` ends the message; a line's
/// leading dot is dropped; a bare LF or CR inside a line and a line over 1,000 octets with its
/// CRLF are flaws.
pub fn data_oracle(input: &[u8]) -> DataOracle {
    let mut content = Vec::new();
    let mut flaws = DataFlaws::default();
    let mut pos = 0;
    while let Some(k) = input[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[pos..pos + k];
        if line == b"." {
            return DataOracle {
                content,
                end: Some(pos + 3),
                flaws,
            };
        }
        let body = line.strip_prefix(b".").unwrap_or(line);
        flaws.bare_lf |= body.contains(&b'\n');
        flaws.bare_cr |= body.contains(&b'\r');
        flaws.long_line |= body.len() + 2 > MAX_TEXT_LINE;
        content.extend_from_slice(body);
        content.extend_from_slice(b"\r\n");
        pos += k + 2;
    }
    let rest = &input[pos..];
    content.extend_from_slice(rest.strip_prefix(b".").unwrap_or(rest));
    DataOracle {
        content,
        end: None,
        flaws,
    }
}

/// Piece sizes from a seed: 1 to 64 octets, reproducible.
fn pieces(seed: u8) -> impl FnMut() -> usize {
    let mut x = u32::from(seed) | 0x100;
    move || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        ((x >> 16) % 64) as usize + 1
    }
}

/// The DATA decoder driven as the session drives it, the input arriving in pieces.
fn run_decoder(
    input: &[u8],
    mut next: impl FnMut() -> usize,
) -> (Vec<u8>, Option<usize>, usize, DataFlaws) {
    let mut dec = DataDecoder::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut content = Vec::new();
    let (mut fed, mut consumed) = (0, 0);
    loop {
        let take = next().min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + take]);
        fed += take;
        let d = dec.decode(&buf);
        assert!(d.consumed <= buf.len());
        let mut last = 0;
        for r in &d.content {
            assert!(
                r.start >= last && r.end <= d.consumed && !r.is_empty(),
                "range {r:?}"
            );
            last = r.end;
            content.extend_from_slice(&buf[r.clone()]);
        }
        buf.drain(..d.consumed);
        consumed += d.consumed;
        if d.end {
            return (content, Some(consumed), buf.len(), dec.flaws());
        }
        assert!(buf.len() <= 2, "{} octets held back", buf.len());
        if fed == input.len() {
            return (content, None, buf.len(), dec.flaws());
        }
    }
}

/// The DATA decoder against the line-by-line oracle, with the input whole and in pieces.
///
/// The end is found exactly where the first line `.` ends, never at a bare LF or CR; content and
/// flaws agree with the oracle; an unfinished message yields a prefix of the oracle's content
/// and holds back at most two octets.
pub fn smtp_data(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let oracle = data_oracle(input);
    let whole = run_decoder(input, || usize::MAX);
    let cut = run_decoder(input, pieces(seed));
    let one = run_decoder(input, || 1);
    for (content, end, _held, flaws) in [&whole, &cut, &one] {
        assert_eq!(*end, oracle.end, "end of message");
        if end.is_some() {
            assert_eq!(content, &oracle.content);
            assert_eq!(*flaws, oracle.flaws);
        } else {
            assert!(
                oracle.content.starts_with(content),
                "content not a prefix of the oracle's"
            );
        }
    }
    assert_eq!(whole.0, cut.0);
    assert_eq!(whole.0, one.0);
}

/// What a session did, with content merged so that different pieces compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Reply(Vec<u8>),
    Start(Envelope),
    Content(Vec<u8>),
    Abort,
    End(Envelope),
    Close,
}

fn check_reply(r: &Reply) {
    assert!((200..600).contains(&r.code), "reply code {}", r.code);
    for line in &r.lines {
        assert!(
            !line.contains(['\r', '\n']),
            "reply line {line:?} breaks the framing"
        );
    }
    // RFC 3463 classes are 2, 4 and 5; the 354 intermediate reply is left alone.
    if let Some(enh) = r.enhanced.filter(|_| r.code / 100 != 3) {
        assert_eq!(
            enh.as_bytes()[0],
            b'0' + (r.code / 100) as u8,
            "enhanced code {enh} under {}",
            r.code
        );
    }
    let wire = r.to_bytes();
    assert!(wire.ends_with(b"\r\n"));
    for line in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.starts_with(r.code.to_string().as_bytes()));
    }
}

/// Drives a session over `stream` arriving in pieces; with pieces of one octet every position
/// is exact and the DATA phase of each stored message is checked against [`data_oracle`].
fn run_session(
    cfg: &SessionConfig,
    stream: &[u8],
    fail_mask: u8,
    mut next: impl FnMut() -> usize,
    exact: bool,
) -> Vec<Event> {
    let mut s = Session::new(cfg.clone());
    let mut buf = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    let mut out = Vec::new();
    let (mut fed, mut messages) = (0usize, 0u32);
    let mut data_start: Option<usize> = None;
    let mut content: Vec<u8> = Vec::new();
    let mut aborted = false;
    let mut closed = false;
    let push = |events: &mut Vec<Event>, e: Event| match (events.last_mut(), e) {
        (Some(Event::Content(c)), Event::Content(more)) => c.extend_from_slice(&more),
        (_, e) => events.push(e),
    };
    while fed < stream.len() && !closed {
        let take = next().min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + take]);
        fed += take;
        loop {
            s.feed(&mut buf, &mut out);
            let consumed = fed - buf.len();
            let mut ended = None;
            for o in out.drain(..) {
                assert!(!closed, "output after Close");
                match o {
                    Output::Reply(r) => {
                        check_reply(&r);
                        if r.code == 354 && exact {
                            data_start = Some(consumed);
                        }
                        push(&mut events, Event::Reply(r.to_bytes()));
                    }
                    Output::MessageStart(env) => {
                        content.clear();
                        aborted = false;
                        push(&mut events, Event::Start(env));
                    }
                    Output::Content(c) => {
                        assert!(!aborted, "content after the message was refused");
                        content.extend_from_slice(&c);
                        assert!(content.len() as u64 <= cfg.max_size, "content over SIZE");
                        push(&mut events, Event::Content(c.to_vec()));
                    }
                    Output::StartTls => panic!("STARTTLS begun by a server with no certificate"),
                    Output::MessageAbort => {
                        aborted = true;
                        // The driver throws away what it stored of a refused message, and how
                        // much that was depends on the pieces: compare without it.
                        if matches!(events.last(), Some(Event::Content(_))) {
                            events.pop();
                        }
                        push(&mut events, Event::Abort);
                    }
                    Output::MessageEnd(env) => {
                        assert!(!aborted, "a refused message completed");
                        assert!(!env.rcpt_to.is_empty() && env.rcpt_to.len() <= cfg.max_recipients);
                        check_address(&env.mail_from);
                        env.rcpt_to.iter().for_each(|r| check_address(r));
                        if exact {
                            let start = data_start.take().expect("a message without 354");
                            let phase = &stream[start..consumed];
                            let oracle = data_oracle(phase);
                            assert_eq!(
                                oracle.end,
                                Some(phase.len()),
                                "message ended without CRLF.CRLF: {phase:?}"
                            );
                            assert_eq!(
                                oracle.flaws,
                                DataFlaws::default(),
                                "a flawed message was accepted"
                            );
                            assert_eq!(oracle.content, content);
                        }
                        ended = Some(env.clone());
                        push(&mut events, Event::End(env));
                    }
                    Output::Close => {
                        closed = true;
                        push(&mut events, Event::Close);
                    }
                }
            }
            let Some(_) = ended else { break };
            let ok = fail_mask & (1 << (messages % 8)) == 0;
            messages += 1;
            let reply = s.stored(if ok {
                Ok(format!("m{messages}"))
            } else {
                Err(protolab_smtp::session::StoreError::Failed(
                    "disk full".into(),
                ))
            });
            check_reply(&reply);
            assert_eq!(reply.code, if ok { 250 } else { 451 });
            push(&mut events, Event::Reply(reply.to_bytes()));
        }
        assert!(s.counts.errors <= cfg.max_errors);
        if closed {
            assert!(s.is_closed());
        }
    }
    events
}

/// The whole session fed an arbitrary octet stream.
///
/// Layout: one octet of limits, one of storage failures, one seeding the piece sizes, then the
/// stream. Fed one octet at a time, every DATA that gets its 250 (or 451) ended exactly at CRLF
/// `.` CRLF with no bare LF, bare CR or overlong line, and its stored content is the oracle's;
/// nothing follows Close; replies never break the line framing; fed in other pieces, the
/// session does exactly the same.
pub fn smtp_session(data: &[u8]) {
    let [limits, fail_mask, seed, stream @ ..] = data else {
        return;
    };
    let cfg = SessionConfig {
        hostname: "mx.fuzz.test".into(),
        max_size: if limits & 0x0F == 0 {
            32 << 20
        } else {
            u64::from(limits & 0x0F) * 64
        },
        max_recipients: usize::from((limits >> 4) & 3) + 1,
        max_errors: u32::from(limits >> 6) * 4 + 3,
        // No certificate: STARTTLS must be refused, never begun (checked below).
        starttls: false,
        require_tls: false,
    };
    let exact = run_session(&cfg, stream, *fail_mask, || 1, true);
    let cut = run_session(&cfg, stream, *fail_mask, pieces(*seed), false);
    assert_eq!(
        exact, cut,
        "the pieces the stream arrived in changed the session"
    );
}
