//! Framing: turning a byte stream into messages.
//!
//! TCP delivers bytes, not messages; a protocol has to say where one message ends. Two ways are
//! used in protolab: lines ended by LF (CRLF accepted), with a maximum length, and frames led by
//! a 16-bit big-endian length (DNS over TCP, RFC 7766 section 8; the echo probe over TCP).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// One decoded line, or the news that a line was longer than allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole line without its LF or CRLF.
    Line(Bytes),
    /// A line passed the maximum length; its bytes up to the next LF are discarded, so the
    /// service can reply with its error and either close or read on.
    TooLong,
}

/// A codec for byte lines with a maximum length.
///
/// Unlike `tokio_util::codec::LinesCodec` it keeps bytes as they are (no UTF-8 check: names in
/// the greeting protocol are bytes) and reports an overlong line as a value instead of an error,
/// so the service turns it into its own reply. A last line without LF before EOF is a line too:
/// a client that writes `exit` and closes has still said `exit`.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_len: usize,
    /// Bytes already searched for LF, so each byte is scanned once however the line arrives.
    scanned: usize,
    /// True after [`Line::TooLong`] until the end of that line has been thrown away.
    discarding: bool,
}

impl LineCodec {
    /// A codec taking lines of at most `max_len` bytes, not counting the LF or CRLF.
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            scanned: 0,
            discarding: false,
        }
    }

    /// The longest line accepted.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Takes what is buffered of a line not yet ended, as if it had ended now.
    ///
    /// For peers that send no delimiter and wait for a reply, like the classic greeting client:
    /// a service may decide that a pause ends the message. Returns `None` when nothing is
    /// buffered or the buffer holds the tail of an overlong line.
    pub fn take_partial(&mut self, buf: &mut BytesMut) -> Option<Line> {
        self.scanned = 0;
        if buf.is_empty() || self.discarding {
            return None;
        }
        Some(self.ended(buf.split()))
    }

    /// A line ended by EOF or a pause rather than LF: its trailing CR is no line byte, and the
    /// byte [`Decoder::decode`] allows for a CR still on its way no longer is either, so the
    /// limit applies as to any line.
    fn ended(&self, line: BytesMut) -> Line {
        let line = strip_cr(line);
        if line.len() > self.max_len {
            Line::TooLong
        } else {
            Line::Line(line)
        }
    }
}

fn strip_cr(mut line: BytesMut) -> Bytes {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line.freeze()
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        loop {
            let newline = buf[self.scanned..].iter().position(|&b| b == b'\n');
            match (self.discarding, newline) {
                (true, Some(i)) => {
                    buf.advance(self.scanned + i + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (false, Some(i)) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    // The CR of a CRLF does not count towards the limit.
                    let len = if end > 0 && buf[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    };
                    if len > self.max_len {
                        buf.advance(end + 1);
                        return Ok(Some(Line::TooLong));
                    }
                    let line = buf.split_to(end);
                    buf.advance(1);
                    return Ok(Some(Line::Line(strip_cr(line))));
                }
                (false, None) => {
                    // One more byte is allowed for the CR of a CRLF still on its way.
                    if buf.len() > self.max_len + 1 {
                        self.discarding = true;
                        return Ok(Some(Line::TooLong));
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, Self::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        self.scanned = 0;
        if buf.is_empty() || self.discarding {
            buf.clear();
            return Ok(None);
        }
        let rest = buf.split();
        Ok(Some(self.ended(rest)))
    }
}

/// A codec for frames led by a 16-bit big-endian length, as DNS over TCP uses (RFC 7766).
pub fn u16_frames() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u16>()
        .max_frame_length(usize::from(u16::MAX))
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use tokio_util::codec::Encoder;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Line> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed one byte at a time: the hardest case for a streaming decoder.
        for &b in input {
            buf.put_u8(b);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    fn line(s: &str) -> Line {
        Line::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn lf_crlf_and_last_line_without_newline() {
        let mut c = LineCodec::new(16);
        assert_eq!(
            decode_all(&mut c, b"Michael\nTracy\r\n\nexit"),
            vec![line("Michael"), line("Tracy"), line(""), line("exit")]
        );
    }

    #[test]
    fn bytes_are_kept_as_they_are() {
        let mut c = LineCodec::new(16);
        assert_eq!(
            decode_all(&mut c, b"\xff\x00z\r\n"),
            vec![Line::Line(Bytes::from_static(b"\xff\x00z"))]
        );
    }

    #[test]
    fn exactly_max_is_accepted_one_more_is_too_long() {
        let mut c = LineCodec::new(4);
        assert_eq!(
            decode_all(&mut c, b"abcd\r\nabcde\nok\n"),
            vec![line("abcd"), Line::TooLong, line("ok")]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_and_discarded() {
        let mut c = LineCodec::new(4);
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nnext\r\n");
        assert_eq!(
            decode_all(&mut c, &input),
            vec![Line::TooLong, line("next")]
        );
        // Fed all at once as well.
        let mut c = LineCodec::new(4);
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Line::TooLong));
        assert_eq!(c.decode(&mut buf).unwrap(), Some(line("next")));
        assert_eq!(c.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn partial_line_taken_at_a_pause() {
        let mut c = LineCodec::new(8);
        let mut buf = BytesMut::from(&b"Mich"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        assert_eq!(c.take_partial(&mut buf), Some(line("Mich")));
        assert_eq!(c.take_partial(&mut buf), None);
        buf.extend_from_slice(b"ael\n");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(line("ael")));
    }

    #[test]
    fn a_line_cut_by_eof_or_a_pause_respects_the_limit_too() {
        // The byte allowed for a CR still on its way is no line byte once the line has ended.
        let mut c = LineCodec::new(4);
        assert_eq!(
            decode_all(&mut c, b"ok\nabcde"),
            vec![line("ok"), Line::TooLong]
        );
        let mut c = LineCodec::new(4);
        assert_eq!(decode_all(&mut c, b"abcd\r"), vec![line("abcd")]);
        let mut c = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abcde"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        assert_eq!(c.take_partial(&mut buf), Some(Line::TooLong));
        assert!(buf.is_empty());
    }

    #[test]
    fn u16_frames_round_trip() {
        let mut codec = u16_frames();
        let mut buf = BytesMut::new();
        codec.encode(Bytes::from_static(b"abc"), &mut buf).unwrap();
        assert_eq!(&buf[..], b"\x00\x03abc");
        buf.extend_from_slice(b"\x00\x02h");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"i");
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"hi");
    }
}
