//! The DNS message format at the byte level, where hickory-proto's full decoder is more than
//! the job needs.
//!
//! A resolver answering from its cache looks at a query's header and question only, and patches
//! a stored reply's id and TTLs in place: decoding and re-encoding a whole message per cache hit
//! would cost more than the rest of the hit. This module walks the wire format (RFC 1035 section
//! 4.1) without allocating and never panics on any input: every read is bounds-checked.
//! Building and decoding whole messages goes through hickory-proto.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The EDNS(0) UDP payload size this crate advertises and accepts at most: 1232 bytes avoids IP
/// fragmentation on every common path (DNS Flag Day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// The largest UDP reply to a query without EDNS (RFC 1035 section 4.2.1).
pub const CLASSIC_UDP_LIMIT: usize = 512;
/// The length of the fixed header.
pub const HEADER_LEN: usize = 12;
/// The longest question: a 255-byte name, QTYPE and QCLASS.
pub const MAX_QUESTION: usize = 255 + 4;

/// Header flag bits (RFC 1035 section 4.1.1, RFC 4035 for AD and CD).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    /// The opcode's four bits.
    pub const OPCODE: u16 = 0x7800;
    /// The response code's low four bits (the upper ones live in an OPT record).
    pub const RCODE: u16 = 0x000F;
}

/// Why bytes are not a usable DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than the 12-byte header")]
    ShortHeader,
    #[error("message ends inside a name or record")]
    Truncated,
    #[error("bad name: label too long, name over 255 bytes, or a reserved label type")]
    BadName,
    #[error("compression pointer in a query's question")]
    PointerInQuestion,
    #[error("a query must carry exactly one question")]
    QuestionCount,
    #[error("the message is a response, not a query")]
    NotAQuery,
}

fn u16_at(buf: &[u8], pos: usize) -> Result<u16, WireError> {
    match buf.get(pos..pos + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(WireError::Truncated),
    }
}

fn u32_at(buf: &[u8], pos: usize) -> Result<u32, WireError> {
    match buf.get(pos..pos + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(WireError::Truncated),
    }
}

/// Skips a possibly compressed name starting at `pos`, returning the position after it.
///
/// A pointer ends the name where it stands, so the walk never follows it: no pointer loop can
/// stall it.
pub fn skip_name(buf: &[u8], pos: usize) -> Result<usize, WireError> {
    skip_name_noting_pointer(buf, pos).map(|(end, _)| end)
}

/// As [`skip_name`], and tells whether the name ended in a compression pointer.
fn skip_name_noting_pointer(buf: &[u8], mut pos: usize) -> Result<(usize, bool), WireError> {
    let mut len = 0usize;
    loop {
        let b = *buf.get(pos).ok_or(WireError::Truncated)?;
        match b & 0xC0 {
            0x00 if b == 0 => return Ok((pos + 1, false)),
            0x00 => {
                len += usize::from(b) + 1;
                if len > 255 {
                    return Err(WireError::BadName);
                }
                pos += usize::from(b) + 1;
            }
            0xC0 => {
                buf.get(pos + 1).ok_or(WireError::Truncated)?;
                return Ok((pos + 2, true));
            }
            _ => return Err(WireError::BadName),
        }
    }
}

/// EDNS(0) facts of a query: the payload size the client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdnsInfo {
    pub payload: u16,
    pub version: u8,
}

/// A query's header and question, read straight from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryView<'a> {
    pub id: u16,
    pub flags: u16,
    /// The question's bytes: the uncompressed name, QTYPE and QCLASS.
    pub question: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<EdnsInfo>,
}

impl QueryView<'_> {
    /// The opcode from the header.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }

    /// The cache key: the question with the name lowered to ASCII lower case, so `WWW.Example`
    /// and `www.example` share an entry (names compare case-insensitively, RFC 4343).
    pub fn cache_key(&self) -> Vec<u8> {
        let mut buf = [0u8; MAX_QUESTION];
        self.cache_key_in(&mut buf).to_vec()
    }

    /// The cache key written into `buf`, so a lookup needs no allocation.
    pub fn cache_key_in<'b>(&self, buf: &'b mut [u8; MAX_QUESTION]) -> &'b [u8] {
        // parse_query caps names at 255 bytes, so the question always fits.
        let len = self.question.len().min(MAX_QUESTION);
        let key = &mut buf[..len];
        key.copy_from_slice(&self.question[..len]);
        let name_len = len.saturating_sub(4);
        key[..name_len].make_ascii_lowercase();
        key
    }

    /// The largest UDP reply this client accepts.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(e.payload.clamp(512, EDNS_PAYLOAD)),
            None => CLASSIC_UDP_LIMIT,
        }
    }
}

/// A query's header facts and question, owned: what a miss carries from the receive loop to
/// the task that asks upstream, so the query is read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedQuery {
    pub id: u16,
    pub flags: u16,
    /// The question's bytes as the client sent them: name, QTYPE and QCLASS.
    pub question: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<EdnsInfo>,
}

impl OwnedQuery {
    /// The borrowed view, for the functions that take one.
    pub fn view(&self) -> QueryView<'_> {
        QueryView {
            id: self.id,
            flags: self.flags,
            question: &self.question,
            qtype: self.qtype,
            qclass: self.qclass,
            edns: self.edns,
        }
    }

    /// The question's name, decoded (hickory's form, for the iterative resolver and for
    /// replies built from messages).
    pub fn name(&self) -> Option<Name> {
        question_name(&self.question)
    }
}

impl QueryView<'_> {
    /// An owned copy of the header facts and the question.
    pub fn to_owned_query(&self) -> OwnedQuery {
        OwnedQuery {
            id: self.id,
            flags: self.flags,
            question: self.question.to_vec(),
            qtype: self.qtype,
            qclass: self.qclass,
            edns: self.edns,
        }
    }
}

/// The name at the start of a question in wire form (uncompressed).
pub fn question_name(question: &[u8]) -> Option<Name> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    Name::read(&mut BinDecoder::new(question)).ok()
}

/// True when two questions in wire form (uncompressed name, QTYPE, QCLASS) are the same, the
/// names compared without regard to ASCII case (RFC 4343). Label lengths are below 64, so no
/// length byte is a letter; QTYPE and QCLASS are compared exactly.
pub fn same_question(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.len() >= 5
        && a[..a.len() - 4].eq_ignore_ascii_case(&b[..b.len() - 4])
        && a[a.len() - 4..] == b[b.len() - 4..]
}

/// A query for `question` (wire form, as [`QueryView::question`]) with `id`, RD as asked, and
/// an OPT record advertising [`EDNS_PAYLOAD`] when `edns` is set: the bytes are copied, nothing
/// is decoded or encoded.
pub fn query_for_question(
    id: u16,
    question: &[u8],
    recursion_desired: bool,
    edns: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + 11);
    out.extend_from_slice(&id.to_be_bytes());
    let f = if recursion_desired { flags::RD } else { 0 };
    out.extend_from_slice(&f.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    out.extend_from_slice(question);
    if edns {
        out.extend_from_slice(&opt_record());
    }
    out
}

/// The question of a query built for `name`/`qtype` (class IN), in wire form.
pub fn question_bytes(
    name: &Name,
    qtype: RecordType,
) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let bytes = build_query(0, name, qtype, false, false).to_vec()?;
    Ok(bytes.get(HEADER_LEN..).unwrap_or_default().to_vec())
}

/// What the header and first question of a reply say, after a walk of the whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHead<'a> {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    /// The first question's bytes (empty without one).
    pub question: &'a [u8],
}

/// Walks a whole message, header, questions and every record, bounds-checked, and returns its
/// header and first question. A question whose name is compressed is returned empty: it cannot
/// be the question a query asked.
///
/// # Errors
/// [`WireError`] for bytes that are not a complete DNS message.
pub fn walk_message(buf: &[u8]) -> Result<ReplyHead<'_>, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader);
    }
    let id = u16_at(buf, 0)?;
    let flags = u16_at(buf, 2)?;
    let qdcount = u16_at(buf, 4)?;
    let records =
        usize::from(u16_at(buf, 6)?) + usize::from(u16_at(buf, 8)?) + usize::from(u16_at(buf, 10)?);
    let mut pos = HEADER_LEN;
    let mut question: &[u8] = &[];
    for i in 0..qdcount {
        let start = pos;
        let (end, pointer) = skip_name_noting_pointer(buf, pos)?;
        u32_at(buf, end)?;
        pos = end + 4;
        if i == 0 && !pointer {
            question = &buf[start..pos];
        }
    }
    for _ in 0..records {
        pos = skip_name(buf, pos)?;
        pos += 10 + usize::from(u16_at(buf, pos + 8)?);
        if pos > buf.len() {
            return Err(WireError::Truncated);
        }
    }
    Ok(ReplyHead {
        id,
        flags,
        qdcount,
        question,
    })
}

/// Reads a query's header and question without decoding the rest.
///
/// # Errors
/// [`WireError::ShortHeader`] when there is not even a header to answer; the other errors
/// concern a message that has a header, so it can be answered with FORMERR.
pub fn parse_query(buf: &[u8]) -> Result<QueryView<'_>, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader);
    }
    let id = u16_at(buf, 0)?;
    let flags = u16_at(buf, 2)?;
    if flags & flags::QR != 0 {
        return Err(WireError::NotAQuery);
    }
    if u16_at(buf, 4)? != 1 {
        return Err(WireError::QuestionCount);
    }
    let (ancount, nscount, arcount) = (u16_at(buf, 6)?, u16_at(buf, 8)?, u16_at(buf, 10)?);
    let mut pos = HEADER_LEN;
    let mut name_len = 0usize;
    loop {
        let b = *buf.get(pos).ok_or(WireError::Truncated)?;
        if b & 0xC0 == 0xC0 {
            return Err(WireError::PointerInQuestion);
        }
        if b & 0xC0 != 0 {
            return Err(WireError::BadName);
        }
        name_len += usize::from(b) + 1;
        if name_len > 255 {
            return Err(WireError::BadName);
        }
        pos += usize::from(b) + 1;
        if b == 0 {
            break;
        }
    }
    let qtype = u16_at(buf, pos)?;
    let qclass = u16_at(buf, pos + 2)?;
    let question = &buf[HEADER_LEN..pos + 4];
    pos += 4;
    let mut edns = None;
    for i in 0..usize::from(ancount) + usize::from(nscount) + usize::from(arcount) {
        let start = pos;
        pos = skip_name(buf, pos)?;
        let rtype = u16_at(buf, pos)?;
        let class = u16_at(buf, pos + 2)?;
        let ttl = u32_at(buf, pos + 4)?;
        let rdlen = usize::from(u16_at(buf, pos + 8)?);
        pos += 10 + rdlen;
        if pos > buf.len() {
            return Err(WireError::Truncated);
        }
        let in_additional = i >= usize::from(ancount) + usize::from(nscount);
        if in_additional && rtype == u16::from(RecordType::OPT) && buf[start] == 0 {
            edns = Some(EdnsInfo {
                payload: class,
                version: (ttl >> 16) as u8,
            });
        }
    }
    Ok(QueryView {
        id,
        flags,
        question,
        qtype,
        qclass,
        edns,
    })
}

/// Where the TTL of each record of a message sits, with its value, skipping OPT.
///
/// # Errors
/// [`WireError`] for a message that does not parse to its end.
pub fn ttl_positions(buf: &[u8]) -> Result<Vec<(usize, u32)>, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::ShortHeader);
    }
    let qdcount = u16_at(buf, 4)?;
    let records =
        usize::from(u16_at(buf, 6)?) + usize::from(u16_at(buf, 8)?) + usize::from(u16_at(buf, 10)?);
    let mut pos = HEADER_LEN;
    for _ in 0..qdcount {
        pos = skip_name(buf, pos)? + 4;
    }
    let mut out = Vec::with_capacity(records);
    for _ in 0..records {
        pos = skip_name(buf, pos)?;
        let rtype = u16_at(buf, pos)?;
        let ttl = u32_at(buf, pos + 4)?;
        if rtype != u16::from(RecordType::OPT) {
            out.push((pos + 4, ttl));
        }
        pos += 10 + usize::from(u16_at(buf, pos + 8)?);
        if pos > buf.len() {
            return Err(WireError::Truncated);
        }
    }
    Ok(out)
}

/// The 11 bytes of an OPT record advertising [`EDNS_PAYLOAD`], with no options.
pub fn opt_record() -> [u8; 11] {
    let p = EDNS_PAYLOAD.to_be_bytes();
    [0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]
}

/// A reply carrying only the header and question of `query`, with `rcode` and the given extra
/// flags, and an OPT record when the query had one.
///
/// This is what a server sends for errors (FORMERR, SERVFAIL, REFUSED) and for an answer that
/// does not fit over UDP (with TC set): it is never larger than the query's question.
///
/// An extended code (BADVERS) puts its upper bits in the OPT record (RFC 6891 section 6.1.3).
pub fn bare_reply(query: &QueryView<'_>, extra_flags: u16, rcode: ResponseCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + query.question.len() + 11);
    out.extend_from_slice(&query.id.to_be_bytes());
    let opcode_rd_cd = query.flags & (flags::OPCODE | flags::RD | flags::CD);
    let f = flags::QR | opcode_rd_cd | extra_flags | (u16::from(rcode.low()) & flags::RCODE);
    out.extend_from_slice(&f.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(query.edns.is_some())]);
    out.extend_from_slice(query.question);
    if query.edns.is_some() {
        let mut opt = opt_record();
        opt[5] = rcode.high();
        out.extend_from_slice(&opt);
    }
    out
}

/// True when a message's header has TC set.
pub fn is_truncated(message: &[u8]) -> bool {
    message.len() >= 4 && u16::from_be_bytes([message[2], message[3]]) & flags::TC != 0
}

/// A reply to a message whose question could not be read: the header only, with FORMERR.
/// Returns `None` when there is no header to echo an id from, or when the message is itself a
/// response (answering responses could make two servers bounce errors forever).
pub fn formerr_header(buf: &[u8]) -> Option<Vec<u8>> {
    let query_flags = u16_at(buf, 2).ok()?;
    if buf.len() < HEADER_LEN || query_flags & flags::QR != 0 {
        return None;
    }
    let mut out = vec![0u8; HEADER_LEN];
    out[..2].copy_from_slice(&buf[..2]);
    let f = flags::QR
        | (query_flags & (flags::OPCODE | flags::RD))
        | u16::from(ResponseCode::FormErr.low());
    out[2..4].copy_from_slice(&f.to_be_bytes());
    Some(out)
}

/// The response code in a message's header (its low four bits; `None` without a header).
pub fn header_rcode(message: &[u8]) -> Option<ResponseCode> {
    let f = u16_at(message, 2).ok()?;
    Some(ResponseCode::from(0, (f & flags::RCODE) as u8))
}

/// Builds a query message: a random `id` chosen by the caller (RFC 5452), one question, RD as
/// asked, and an OPT record advertising [`EDNS_PAYLOAD`] when `edns` is set.
pub fn build_query(
    id: u16,
    name: &Name,
    qtype: RecordType,
    recursion_desired: bool,
    edns: bool,
) -> Message {
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = recursion_desired;
    let mut q = Query::query(name.clone(), qtype);
    q.set_query_class(DNSClass::IN);
    msg.add_query(q);
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        e.set_version(0);
        msg.set_edns(e);
    }
    msg
}

/// Encodes `msg` for a transport that carries at most `limit` bytes: when the whole message
/// does not fit, the reply is cut to its header and question with TC set, telling the client to
/// ask again over TCP (RFC 1035 section 4.2.1, RFC 7766).
///
/// # Errors
/// hickory-proto's encoding error (a name or record it cannot write).
pub fn encode_limited(msg: &Message, limit: usize) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let bytes = msg.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    let mut cut = Message::new(
        msg.metadata.id,
        msg.metadata.message_type,
        msg.metadata.op_code,
    );
    cut.metadata = msg.metadata;
    cut.metadata.truncation = true;
    cut.queries = msg.queries.clone();
    cut.edns = msg.edns.clone();
    cut.to_vec()
}

/// The mnemonic of a response code as dig prints it (`NOERROR`, `NXDOMAIN`).
pub fn rcode_name(rcode: ResponseCode) -> String {
    match u16::from(rcode) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        16 => "BADVERS".into(),
        n => format!("RCODE{n}"),
    }
}

/// True when `reply` answers `query`: same id, a response, and the same question (names
/// compared without regard to case). A reply failing this is dropped, not believed.
pub fn answers_question(reply: &Message, id: u16, name: &Name, qtype: RecordType) -> bool {
    reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries.len() == 1
        && reply.queries[0].query_type() == qtype
        && reply.queries[0].query_class() == DNSClass::IN
        && reply.queries[0].name().eq_ignore_root(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // dig www.example.test A +edns=0: id 0x1234, RD, one question, OPT with payload 1232.
    const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
        \x03WWW\x07example\x04test\x00\x00\x01\x00\x01\
        \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

    #[test]
    fn parse_query_reads_header_question_and_edns() {
        let q = parse_query(QUERY).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.flags, 0x0100);
        assert_eq!(q.qtype, 1);
        assert_eq!(q.qclass, 1);
        assert_eq!(q.question.len(), 18 + 4);
        assert_eq!(
            q.edns,
            Some(EdnsInfo {
                payload: 1232,
                version: 0
            })
        );
        assert_eq!(q.udp_limit(), 1232);
        assert_eq!(&q.cache_key()[..4], b"\x03www");
        assert_eq!(q.opcode(), 0);
    }

    #[test]
    fn parse_query_rejects_bad_input_without_panicking() {
        assert_eq!(parse_query(b"\x00\x01"), Err(WireError::ShortHeader));
        let mut resp = QUERY.to_vec();
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(WireError::NotAQuery));
        let mut two = QUERY.to_vec();
        two[5] = 2;
        assert_eq!(parse_query(&two), Err(WireError::QuestionCount));
        let ptr = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01";
        assert_eq!(parse_query(ptr), Err(WireError::PointerInQuestion));
        // Every prefix of a valid query fails cleanly.
        for n in 0..QUERY.len() {
            assert!(parse_query(&QUERY[..n]).is_err(), "prefix {n}");
        }
        // An OPT claiming more data than there is.
        let mut long = QUERY.to_vec();
        *long.last_mut().unwrap() = 9;
        assert_eq!(parse_query(&long), Err(WireError::Truncated));
    }

    #[test]
    fn no_edns_means_512() {
        let q = parse_query(&QUERY[..QUERY.len() - 11]);
        // ARCOUNT still says 1: the record is missing.
        assert_eq!(q, Err(WireError::Truncated));
        let mut plain = QUERY[..QUERY.len() - 11].to_vec();
        plain[11] = 0;
        let q = parse_query(&plain).unwrap();
        assert_eq!(q.edns, None);
        assert_eq!(q.udp_limit(), 512);
    }

    #[test]
    fn bare_reply_echoes_question_and_opt() {
        let q = parse_query(QUERY).unwrap();
        let r = bare_reply(&q, flags::TC | flags::RA, ResponseCode::ServFail);
        assert_eq!(&r[..2], b"\x12\x34");
        assert_eq!(
            u16::from_be_bytes([r[2], r[3]]),
            0x8000 | 0x0200 | 0x0100 | 0x0080 | 2
        );
        assert_eq!(&r[4..12], b"\x00\x01\x00\x00\x00\x00\x00\x01");
        assert_eq!(&r[12..12 + q.question.len()], q.question);
        assert_eq!(r.len(), QUERY.len());
    }

    #[test]
    fn formerr_header_only_for_queries() {
        assert_eq!(formerr_header(b"\x00"), None);
        let r = formerr_header(b"\xab\xcd\x01\x00garbage!").unwrap();
        assert_eq!(r, b"\xab\xcd\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(
            formerr_header(b"\xab\xcd\x81\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
            None
        );
    }

    #[test]
    fn ttl_positions_walk_compressed_records() {
        // A reply for example.test A with two answers, the second using a pointer, and an OPT.
        let reply = b"\x00\x01\x81\x80\x00\x01\x00\x02\x00\x00\x00\x01\
            \x07example\x04test\x00\x00\x01\x00\x01\
            \xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x7f\x00\x00\x01\
            \xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x02\
            \x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
        let t = ttl_positions(reply).unwrap();
        assert_eq!(t, vec![(12 + 18 + 6, 3600), (12 + 18 + 16 + 6, 60)]);
        for n in 0..reply.len() {
            assert!(ttl_positions(&reply[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn build_query_round_trips_through_hickory() {
        let name = Name::from_ascii("example.test.").unwrap();
        let msg = build_query(7, &name, RecordType::MX, true, true);
        let bytes = msg.to_vec().unwrap();
        let view = parse_query(&bytes).unwrap();
        assert_eq!(view.id, 7);
        assert_eq!(view.qtype, 15);
        assert_eq!(view.edns.map(|e| e.payload), Some(1232));
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.recursion_desired);
        let mut reply = back.clone();
        reply.metadata.message_type = MessageType::Response;
        assert!(answers_question(
            &reply,
            7,
            &Name::from_ascii("EXAMPLE.test").unwrap(),
            RecordType::MX
        ));
        assert!(!answers_question(&reply, 8, &name, RecordType::MX));
        assert!(!answers_question(&reply, 7, &name, RecordType::A));
    }
}
