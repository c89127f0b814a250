//! Whether a datagram is the reply to a query in flight (RFC 5452 section 9.1), decided from its
//! bytes alone.
//!
//! An off-path attacker racing the real server with forged replies must guess the source port,
//! the 16-bit id and the question; a forged reply that misses any of them is dropped, and the
//! client keeps waiting for the real one. The stub client and the resolver's upstream queries
//! both decide through [`accept`], before any full decoding: a flood of forgeries costs a walk
//! over bytes each, never a decoded message.

use std::net::SocketAddr;

use crate::wire::{self, flags};

/// What a query in flight expects of its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// The address and port the query was sent to.
    pub server: SocketAddr,
    /// The query's id.
    pub id: u16,
    /// The query's question in wire form (uncompressed name, QTYPE, QCLASS).
    pub question: &'a [u8],
}

/// The decision on one datagram, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The reply: from the server asked, with the id, a response, and the question.
    Accept,
    /// From another address or port than the server asked.
    WrongSource,
    /// Not a whole DNS message (short, cut, bad names or record lengths).
    Garbage,
    /// Another id.
    WrongId,
    /// The id, but not a response to this question (another question, none, several, or a
    /// query rather than a response).
    WrongQuestion,
}

/// Decides whether `bytes`, received from `from`, is the reply `expected` waits for. Pure: no
/// I/O, no clock, no allocation.
pub fn accept(bytes: &[u8], from: SocketAddr, expected: &Expected<'_>) -> Verdict {
    if from != expected.server {
        return Verdict::WrongSource;
    }
    let Ok(head) = wire::walk_message(bytes) else {
        return Verdict::Garbage;
    };
    if head.id != expected.id {
        return Verdict::WrongId;
    }
    if head.flags & flags::QR == 0
        || head.qdcount != 1
        || !wire::same_question(head.question, expected.question)
    {
        return Verdict::WrongQuestion;
    }
    Verdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:53";

    // The question www.example.test A IN.
    const QUESTION: &[u8] = b"\x03www\x07example\x04test\x00\x00\x01\x00\x01";

    // Reply id 0xbeef, QR RD RA, one question (in mixed case), one answer 192.0.2.10 whose
    // name is a pointer to the question, and an OPT record.
    const REPLY: &[u8] = b"\xbe\xef\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01\
        \x03WwW\x07ExAmple\x04TEST\x00\x00\x01\x00\x01\
        \xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x0a\
        \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

    fn expected() -> Expected<'static> {
        Expected {
            server: SERVER.parse().unwrap(),
            id: 0xbeef,
            question: QUESTION,
        }
    }

    fn from() -> SocketAddr {
        SERVER.parse().unwrap()
    }

    #[test]
    fn the_real_reply_is_accepted_whatever_the_letter_case() {
        assert_eq!(accept(REPLY, from(), &expected()), Verdict::Accept);
    }

    #[test]
    fn another_address_or_port_is_the_wrong_source() {
        for other in ["127.0.0.2:53", "127.0.0.1:54", "[::1]:53"] {
            let v = accept(REPLY, other.parse().unwrap(), &expected());
            assert_eq!(v, Verdict::WrongSource, "{other}");
        }
    }

    #[test]
    fn cut_or_broken_messages_are_garbage() {
        assert_eq!(
            accept(b"\xbe\xefgarbage", from(), &expected()),
            Verdict::Garbage
        );
        // Every prefix: the header, the question or a record ends early.
        for n in 0..REPLY.len() {
            assert_eq!(
                accept(&REPLY[..n], from(), &expected()),
                Verdict::Garbage,
                "prefix {n}"
            );
        }
        // A record claiming more data than there is.
        let mut long = REPLY.to_vec();
        long[12 + 22 + 11] = 0x40;
        assert_eq!(accept(&long, from(), &expected()), Verdict::Garbage);
        // A label type that does not exist (0x40).
        let mut bad = REPLY.to_vec();
        bad[12] = 0x43;
        assert_eq!(accept(&bad, from(), &expected()), Verdict::Garbage);
    }

    #[test]
    fn another_id_is_wrong_even_with_the_question() {
        let mut r = REPLY.to_vec();
        r[1] = 0xee;
        assert_eq!(accept(&r, from(), &expected()), Verdict::WrongId);
    }

    #[test]
    fn another_question_type_class_or_shape_is_wrong() {
        // Another name (one letter).
        let mut r = REPLY.to_vec();
        r[13] = b'x';
        assert_eq!(accept(&r, from(), &expected()), Verdict::WrongQuestion);
        // QTYPE AAAA, and QTYPE 0x0041 whose low byte is a letter: compared exactly.
        for ty in [0x1c, 0x41] {
            let mut r = REPLY.to_vec();
            r[12 + 18 + 1] = ty;
            assert_eq!(accept(&r, from(), &expected()), Verdict::WrongQuestion);
        }
        // QCLASS CH.
        let mut r = REPLY.to_vec();
        r[12 + 18 + 3] = 3;
        assert_eq!(accept(&r, from(), &expected()), Verdict::WrongQuestion);
        // QR clear: a query, not a response.
        let mut r = REPLY.to_vec();
        r[2] &= 0x7f;
        assert_eq!(accept(&r, from(), &expected()), Verdict::WrongQuestion);
        // No question at all: the header only, with the id.
        let head = b"\xbe\xef\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(accept(head, from(), &expected()), Verdict::WrongQuestion);
        // The question's name compressed (a pointer to itself would be a loop; this one points
        // at the header): not the question asked.
        let ptr = b"\xbe\xef\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x00\x00\x01\x00\x01";
        assert_eq!(accept(ptr, from(), &expected()), Verdict::WrongQuestion);
    }

    #[test]
    fn source_is_checked_before_anything_is_read() {
        assert_eq!(
            accept(b"", "10.0.0.1:53".parse().unwrap(), &expected()),
            Verdict::WrongSource
        );
    }
}
