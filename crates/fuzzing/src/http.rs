//! HTTP/1.1: the server connection (head parsing and framing decisions) and the body decoder.

use bytes::BytesMut;
use protolab_http::body::{
    BodyDecoder, Decoded, Framing, content_length, encode_chunk, encode_last_chunk,
};
use protolab_http::conn::{ServerConn, ServerEvent};
use protolab_http::wire::{HeadScanner, Headers, Limits, RequestHead, Version, parse_request};

fn small_limits() -> Limits {
    Limits {
        max_request_line: 512,
        max_field_line: 512,
        max_fields: 32,
        max_head: 4096,
        max_body: 64 * 1024,
    }
}

/// The events of a whole connection, bodies joined, as text to compare.
fn run_conn(data: &[u8], piece: usize) -> Vec<String> {
    let mut conn = ServerConn::new(small_limits());
    let mut input = BytesMut::new();
    let mut events = Vec::new();
    let mut body = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        input.extend_from_slice(chunk);
        while let Some(ev) = conn.poll(&mut input) {
            match ev {
                ServerEvent::Request(req) => {
                    check_accepted(&req.head, req.framing);
                    events.push(format!(
                        "request {:?} {:?} {:?} keep-alive {} continue {}",
                        req.head, req.framing, req.raw_head, req.keep_alive, req.expect_continue
                    ));
                }
                ServerEvent::Body(b) => body.extend_from_slice(&b),
                ServerEvent::End(trailers) => {
                    events.push(format!("body {body:?} trailers {trailers:?}"));
                    body.clear();
                    // Answer at once and go on with the pipelined input, as the driver does.
                    conn.response_sent(false);
                }
                ServerEvent::Error(e) => events.push(format!("error {}", e.status())),
            }
        }
    }
    events
}

/// A request the connection accepted has exactly one framing, the one its fields say, and its
/// head written back parses to the same head.
fn check_accepted(head: &RequestHead, framing: Framing) {
    let te = head.headers.count("transfer-encoding");
    let cl = head.headers.count("content-length");
    assert!(
        te == 0 || cl == 0,
        "both Transfer-Encoding and Content-Length accepted"
    );
    assert!(cl <= 1, "several Content-Length fields accepted");
    match framing {
        Framing::Chunked => {
            assert!(
                te > 0 && head.version == Version::Http11,
                "chunked without TE/1.1"
            );
        }
        Framing::Length(n) => {
            assert_eq!(te, 0);
            assert_eq!(content_length(&head.headers), Ok(Some(n)));
        }
        Framing::None => {
            assert_eq!(te, 0);
            assert!(matches!(content_length(&head.headers), Ok(None | Some(0))));
        }
        Framing::Close => panic!("a request framed by close"),
    }
    for f in &head.headers {
        assert!(
            !f.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "CR, LF or NUL in an accepted field value"
        );
    }
    let emitted = bytes::Bytes::from(head.to_bytes());
    let limits = Limits {
        max_request_line: usize::MAX / 2,
        max_field_line: usize::MAX / 2,
        max_head: usize::MAX / 2,
        ..small_limits()
    };
    let end = HeadScanner::new()
        .scan(&emitted, &limits)
        .expect("an emitted head scans")
        .expect("an emitted head is complete");
    assert_eq!(end, emitted.len());
    let again = parse_request(&emitted, &limits).expect("an emitted head parses");
    assert_eq!(&again, head, "emit then parse changed the head");
}

/// The server connection on arbitrary input (the first byte picks the size of the pieces).
///
/// No panic; the same events whatever the pieces; every accepted request has exactly one
/// framing, never both Transfer-Encoding and Content-Length nor two lengths; accepted field
/// values hold no CR, LF or NUL; an accepted head, emitted, parses back to itself.
pub fn http_request(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let whole = run_conn(rest, rest.len());
    let pieces = run_conn(rest, usize::from(first % 16) + 1);
    assert_eq!(whole, pieces, "events depend on how the input was cut");
}

/// Decodes `data` as a chunked body in pieces of `piece` bytes.
fn decode_chunked(data: &[u8], piece: usize, limits: Limits) -> Option<(Vec<u8>, Headers, usize)> {
    let mut d = BodyDecoder::new(Framing::Chunked, limits);
    let mut input = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    for chunk in data.chunks(piece.max(1)) {
        input.extend_from_slice(chunk);
        fed += chunk.len();
        loop {
            match d.decode(&mut input) {
                Ok(Some(Decoded::Data(b))) => {
                    body.extend_from_slice(&b);
                    assert!(body.len() as u64 <= limits.max_body, "body over the limit");
                }
                Ok(Some(Decoded::End(t))) => return Some((body, t, fed - input.len())),
                Ok(None) => break,
                Err(_) => return None,
            }
        }
    }
    None
}

/// The chunked decoder on arbitrary input, and the encoder on arbitrary bodies.
///
/// No panic; the decoded body never passes the limit; the same result whole and in pieces; a
/// decoded body and its trailers, encoded again in chunks of any size, decode to the same body
/// and trailers, consuming exactly the encoding.
pub fn http_framing(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_body: 4096,
        ..small_limits()
    };
    let whole = decode_chunked(rest, rest.len(), limits);
    let pieces = decode_chunked(rest, usize::from(first % 7) + 1, limits);
    assert_eq!(
        whole, pieces,
        "chunked decoding depends on how the input was cut"
    );

    // Round trip: whatever decoded (or the raw bytes as a body) is encoded and decoded again.
    let (body, trailers) = match whole {
        Some((b, t, consumed)) => {
            assert!(consumed <= rest.len());
            (b, t)
        }
        None => (rest.to_vec(), Headers::new()),
    };
    let mut wire = BytesMut::new();
    for piece in body.chunks(usize::from(first) + 1) {
        encode_chunk(piece, &mut wire);
    }
    encode_last_chunk(&trailers, &mut wire);
    let big = Limits {
        max_body: u64::MAX,
        ..small_limits()
    };
    let Some((again, t2, consumed)) = decode_chunked(
        &wire,
        13,
        Limits {
            max_fields: 256,
            max_head: usize::MAX / 2,
            max_field_line: usize::MAX / 2,
            ..big
        },
    ) else {
        panic!("an encoded body does not decode");
    };
    assert_eq!(again, body, "chunked round trip changed the body");
    assert_eq!(t2, trailers, "chunked round trip changed the trailers");
    assert_eq!(
        consumed,
        wire.len(),
        "the decoder did not stop at the end of the encoding"
    );
}
