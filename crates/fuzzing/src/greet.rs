//! The greeting service's input: transport's [`LineCodec`] and the replies of the greet wire.

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use protolab_greet::wire::{self, Action, Framing, MAX_LINE, TOO_LONG};
use protolab_transport::{Line, LineCodec};
use tokio_util::codec::Decoder;

#[derive(Debug, Arbitrary)]
struct CodecInput {
    max_len: u8,
    /// Pieces of the stream as they arrive, each optionally followed by a pause that ends the
    /// line so far (the greeting service's raw-ish peers).
    chunks: Vec<(Vec<u8>, bool)>,
}

/// What the codec must make of a whole stream with no pauses: split at LF, one CR before the LF
/// dropped, lines over `max` (CR of CRLF not counted) reported as too long, and a last line
/// without LF kept as a line.
fn lines_oracle(stream: &[u8], max: usize) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    for p in pieces {
        let p = p.strip_suffix(b"\r").unwrap_or(p);
        out.push(if p.len() > max {
            Line::TooLong
        } else {
            Line::Line(bytes::Bytes::copy_from_slice(p))
        });
    }
    if !last.is_empty() {
        let p = last.strip_suffix(b"\r").unwrap_or(last);
        out.push(if p.len() > max {
            Line::TooLong
        } else {
            Line::Line(bytes::Bytes::copy_from_slice(p))
        });
    }
    out
}

/// Transport's line codec fed a stream in arbitrary pieces, with pauses taking partial lines.
///
/// Without pauses the lines must be exactly the oracle's whatever the pieces; with them every
/// line still respects the limit and holds no LF.
pub fn line_codec(data: &[u8]) {
    let Ok(input) = CodecInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let max = usize::from(input.max_len % 64);
    let pauses = input.chunks.iter().any(|(_, p)| *p);
    let mut codec = LineCodec::new(max);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut stream = Vec::new();
    for (chunk, pause) in &input.chunks {
        stream.extend_from_slice(chunk);
        buf.extend_from_slice(chunk);
        while let Some(line) = codec.decode(&mut buf).expect("decode never fails") {
            got.push(line);
        }
        if *pause {
            got.extend(codec.take_partial(&mut buf));
        }
    }
    while let Some(line) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        got.push(line);
    }
    assert!(buf.is_empty(), "bytes left after EOF: {buf:?}");
    for line in &got {
        if let Line::Line(l) = line {
            assert!(
                l.len() <= max,
                "line of {} bytes over the limit {max}",
                l.len()
            );
            assert!(!l.contains(&b'\n'), "line holds an LF: {l:?}");
        }
    }
    if !pauses {
        assert_eq!(
            got,
            lines_oracle(&stream, max),
            "stream {stream:?}, max {max}"
        );
    }
}

/// The greeting replies: exactly `Hello, NAME!` (with LF in line framing), nothing for `exit`,
/// and over UDP at most 8 bytes more than the datagram (the reply can be no shorter than the
/// greeting around the name) or the fixed too-long error.
pub fn greet_wire(data: &[u8]) {
    for framing in [Framing::Line, Framing::Raw] {
        let mut out = BytesMut::from(&b"before"[..]);
        let action = wire::on_message(framing, data, &mut out);
        if data == wire::EXIT {
            assert_eq!(action, Action::Close);
            assert_eq!(&out[..], b"before");
        } else {
            assert_eq!(action, Action::Continue);
            let mut want = b"beforeHello, ".to_vec();
            want.extend_from_slice(data);
            want.push(b'!');
            if framing == Framing::Line {
                want.push(b'\n');
            }
            assert_eq!(&out[..], &want[..]);
        }
    }
    let name = match data.strip_suffix(b"\r\n") {
        Some(n) => n,
        None => data.strip_suffix(b"\n").unwrap_or(data),
    };
    let reply = wire::on_datagram(data);
    if name.len() > MAX_LINE {
        assert_eq!(reply.as_deref(), Some(TOO_LONG));
    } else if name == wire::EXIT {
        assert_eq!(reply, None);
    } else {
        let reply = reply.expect("a name gets a reply");
        assert_eq!(&reply[..7], b"Hello, ");
        assert_eq!(&reply[7..reply.len() - 1], name);
        assert!(reply.len() <= data.len() + 8);
    }
}
