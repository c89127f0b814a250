//! The DATA phase without I/O: finding the end of a message and undoing dot-stuffing.
//!
//! A message ends only at CRLF `.` CRLF (RFC 5321 section 4.1.1.4); the opening CRLF may be the
//! one that ended the DATA command itself, so an empty message is `.` CRLF right after DATA.
//! A line is a run of octets ended by CRLF, and nothing else ends a line here:
//!
//! - a bare LF (not preceded by CR) and a bare CR (not followed by LF) are ordinary octets of the
//!   line they sit in. They never end a line, so a dot after them is neither the end of the
//!   message nor a stuffed dot. This is what defeats SMTP smuggling: `\n.\n`, `\r.\r`,
//!   `\n.\r\n`, `\r\n.\n` and the like never end a message here, whatever another server in the
//!   path would make of them;
//! - the decoder notes that the message held bare line-ending octets, and the session refuses
//!   such a message after its end (RFC 5321 section 2.3.8 forbids them; storing them would hand
//!   a mail reader the same ambiguity the smuggling attacks exploit);
//! - a line starting with `.` followed by anything but CRLF loses that first dot (unstuffing);
//! - a line longer than 1,000 octets with its CRLF is noted, and the message is refused after its
//!   end, since replying in the middle of DATA would desynchronise the client.
//!
//! [`DataDecoder::decode`] consumes what it can from a buffer and leaves at most two octets it
//! cannot judge yet (a dot at the start of a line or a trailing CR) for the next call.

use crate::wire::MAX_TEXT_LINE;

/// What one call of [`DataDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Octets of the buffer consumed.
    pub consumed: usize,
    /// Ranges of the buffer that are message content, in order (dots of stuffing left out).
    pub content: Vec<std::ops::Range<usize>>,
    /// The end of the message was consumed.
    pub end: bool,
}

/// What the decoder noticed about the whole message, read once it has ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DataFlaws {
    /// A bare LF was seen.
    pub bare_lf: bool,
    /// A bare CR was seen.
    pub bare_cr: bool,
    /// A line was longer than 1,000 octets with its CRLF.
    pub long_line: bool,
}

/// The state of one message's DATA phase.
#[derive(Debug)]
pub struct DataDecoder {
    at_line_start: bool,
    /// Octets of the current line so far, stuffing dot excluded.
    line_len: usize,
    flaws: DataFlaws,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    /// A decoder for the octets right after the DATA command's CRLF.
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            line_len: 0,
            flaws: DataFlaws::default(),
        }
    }

    /// What was wrong with the message so far.
    pub fn flaws(&self) -> DataFlaws {
        self.flaws
    }

    /// Consumes as much of `buf` as can be judged.
    pub fn decode(&mut self, buf: &[u8]) -> Decoded {
        let mut content = Vec::new();
        let mut start = 0;
        let mut i = 0;
        let push = |content: &mut Vec<std::ops::Range<usize>>, r: std::ops::Range<usize>| {
            if !r.is_empty() {
                content.push(r);
            }
        };
        loop {
            if self.at_line_start {
                if i >= buf.len() {
                    break;
                }
                if buf[i] == b'.' {
                    // Up to two more octets decide between the end and a stuffed dot.
                    match (buf.get(i + 1), buf.get(i + 2)) {
                        (None, _) | (Some(b'\r'), None) => break,
                        (Some(b'\r'), Some(b'\n')) => {
                            push(&mut content, start..i);
                            return Decoded {
                                consumed: i + 3,
                                content,
                                end: true,
                            };
                        }
                        _ => {
                            push(&mut content, start..i);
                            i += 1;
                            start = i;
                        }
                    }
                }
                self.at_line_start = false;
                self.line_len = 0;
            }
            let Some(off) = buf[i..].iter().position(|&b| b == b'\r' || b == b'\n') else {
                self.grow_line(buf.len() - i);
                i = buf.len();
                break;
            };
            let j = i + off;
            if buf[j] == b'\n' {
                self.flaws.bare_lf = true;
                self.grow_line(off + 1);
                i = j + 1;
                continue;
            }
            match buf.get(j + 1) {
                None => {
                    // A CR at the end of the buffer: wait to see whether LF follows.
                    self.grow_line(off);
                    i = j;
                    break;
                }
                Some(b'\n') => {
                    self.grow_line(off + 2);
                    i = j + 2;
                    self.at_line_start = true;
                }
                Some(_) => {
                    self.flaws.bare_cr = true;
                    self.grow_line(off + 1);
                    i = j + 1;
                }
            }
        }
        push(&mut content, start..i);
        Decoded {
            consumed: i,
            content,
            end: false,
        }
    }

    fn grow_line(&mut self, n: usize) {
        self.line_len += n;
        if self.line_len > MAX_TEXT_LINE {
            self.flaws.long_line = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` octets, as a network would, and returns the content,
    /// whether the end was seen, the octets left after it and the flaws.
    fn run(input: &[u8], step: usize) -> (Vec<u8>, bool, Vec<u8>, DataFlaws) {
        let mut dec = DataDecoder::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            let take = step.min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            let d = dec.decode(&buf);
            for r in &d.content {
                out.extend_from_slice(&buf[r.clone()]);
            }
            buf.drain(..d.consumed);
            if d.end {
                buf.extend_from_slice(&input[fed..]);
                return (out, true, buf, dec.flaws());
            }
            if fed == input.len() {
                return (out, false, buf, dec.flaws());
            }
        }
    }

    fn all_steps(input: &[u8]) -> (Vec<u8>, bool, Vec<u8>, DataFlaws) {
        let whole = run(input, input.len().max(1));
        for step in 1..8 {
            assert_eq!(run(input, step), whole, "step {step} differs for {input:?}");
        }
        whole
    }

    #[test]
    fn plain_message_and_what_follows() {
        let (body, end, rest, flaws) = all_steps(b"Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert_eq!(body, b"Subject: hi\r\n\r\nhello\r\n");
        assert!(end);
        assert_eq!(rest, b"QUIT\r\n");
        assert_eq!(flaws, DataFlaws::default());
    }

    #[test]
    fn empty_message() {
        let (body, end, rest, _) = all_steps(b".\r\n");
        assert!(body.is_empty() && end && rest.is_empty());
    }

    #[test]
    fn dot_unstuffing() {
        let (body, end, _, _) = all_steps(b"..leading\r\n...\r\n.x\r\n..\r\n.\r\n");
        assert!(end);
        assert_eq!(body, b".leading\r\n..\r\nx\r\n.\r\n");
    }

    #[test]
    fn smuggling_variants_never_end_a_message() {
        for trap in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r.\rMAIL FROM:<x@y>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\nMAIL FROM:<x@y>\r\n",
            b"a\r.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r\n.\rMAIL FROM:<x@y>\r\n",
            b"a\n\n.\n\nMAIL FROM:<x@y>\r\n",
        ] {
            let (_, end, _, flaws) = all_steps(trap);
            assert!(!end, "{trap:?} ended the message");
            assert!(flaws.bare_lf || flaws.bare_cr, "{trap:?} not flagged");
            let mut whole = trap.to_vec();
            whole.extend_from_slice(b"tail\r\n.\r\nNEXT");
            let (_, end, rest, _) = all_steps(&whole);
            assert!(end);
            assert_eq!(rest, b"NEXT", "{trap:?} split the message");
        }
    }

    #[test]
    fn bare_octets_are_content() {
        let (body, end, _, flaws) = all_steps(b"a\nb\rc\r\n.\r\n");
        assert!(end);
        assert_eq!(body, b"a\nb\rc\r\n");
        assert!(flaws.bare_lf && flaws.bare_cr && !flaws.long_line);
    }

    #[test]
    fn line_length_limit() {
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(all_steps(&ok).3, DataFlaws::default());
        let mut stuffed = vec![b'.'; 999];
        stuffed.extend_from_slice(b"\r\n.\r\n");
        assert!(
            !all_steps(&stuffed).3.long_line,
            "the stuffing dot does not count"
        );
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert!(all_steps(&long).3.long_line);
    }
}
