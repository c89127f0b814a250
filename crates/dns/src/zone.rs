//! Authoritative data: zones loaded from RFC 1035 master files, and the answer an
//! authoritative server gives from them (RFC 1034 section 4.3.2).
//!
//! The master file is parsed by hickory-proto's zone parser (`$ORIGIN`, `$TTL`, `$INCLUDE`,
//! parentheses, relative names, every common type). This module decides what to answer: data
//! with AA set, a referral with glue below a delegation, NXDOMAIN or NODATA with the SOA, and
//! CNAME chains followed inside the zone. No I/O happens here beyond the caller handing in
//! the file's text.

use std::collections::HashMap;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::wire::EDNS_PAYLOAD;

/// Why a zone could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// Every problem found, each as `FILE:LINE: what`.
    #[error("{}", problems.join("; "))]
    Parse { file: String, problems: Vec<String> },
    #[error("zone file {file}: no SOA record at the origin {origin}; every zone starts with one")]
    NoSoa { file: String, origin: String },
}

/// One zone: its origin and every record under it, grouped by owner name.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Name,
    soa: Record,
    /// Records by lower-cased owner name.
    nodes: HashMap<Name, Vec<Record>>,
}

/// The entries of a master file: each with the line it starts on, parenthesised continuations
/// joined (RFC 1035 section 5.1).
fn entries(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut depth = 0i32;
    for (i, line) in text.lines().enumerate() {
        let mut quoted = false;
        let mut code = String::new();
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                '(' if !quoted => depth += 1,
                ')' if !quoted => depth -= 1,
                _ => {}
            }
            code.push(c);
        }
        match &mut current {
            Some((_, entry)) => {
                entry.push(' ');
                entry.push_str(&code);
            }
            None if code.trim().is_empty() => continue,
            None => current = Some((i + 1, code)),
        }
        if depth <= 0 {
            depth = 0;
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// Finds every entry of a file that does not parse, each parsed alone after the `$ORIGIN` and
/// `$TTL` directives and the SOA seen before it (the context a record depends on).
fn problems(text: &str, file: &str, origin: Option<Name>) -> Vec<String> {
    let mut context = String::new();
    let mut found = Vec::new();
    for (line, entry) in entries(text) {
        let word = entry.split_whitespace().next().unwrap_or_default();
        if word.starts_with('$') {
            let upper = word.to_ascii_uppercase();
            if upper == "$ORIGIN" || upper == "$TTL" {
                context.push_str(&entry);
                context.push('\n');
            } else {
                found.push(format!("{file}:{line}: {word} is not supported here"));
            }
            continue;
        }
        // A blank owner repeats the previous one: any valid name stands in for it here.
        let alone = if entry.starts_with([' ', '\t']) {
            format!("{context}blank-owner{entry}\n")
        } else {
            format!("{context}{entry}\n")
        };
        match Parser::new(alone, None, origin.clone()).parse() {
            Ok(_) => {
                if entry
                    .split_whitespace()
                    .any(|w| w.eq_ignore_ascii_case("SOA"))
                    && !context.contains(" SOA ")
                {
                    context.push_str(&entry);
                    context.push('\n');
                }
            }
            Err(e) => found.push(format!("{file}:{line}: {}", plain_words(&e.to_string()))),
        }
    }
    found
}

/// The parser's messages in the words of this project.
fn plain_words(message: &str) -> String {
    if message.contains("ttl not specified") {
        "record has no TTL and no $TTL is set".to_owned()
    } else if let Some((_, t)) = message.split_once("record type string unknown: ") {
        format!("unknown record type {t}")
    } else {
        message.to_owned()
    }
}

/// Most CNAMEs followed inside one zone for one answer.
const MAX_CNAME_IN_ZONE: usize = 8;

impl Zone {
    /// Parses a master file; `origin` is used when the file has no `$ORIGIN`.
    ///
    /// # Errors
    /// [`ZoneError`] naming the file and the problem.
    pub fn parse(text: &str, file: &str, origin: Option<Name>) -> Result<Zone, ZoneError> {
        let (origin, sets) = match Parser::new(text, None, origin.clone()).parse() {
            Ok(parsed) => parsed,
            Err(whole) => {
                let mut problems = problems(text, file, origin);
                if problems.is_empty() {
                    // The entries parse one by one but not together (a duplicate SOA, say).
                    problems.push(format!("{file}: {}", plain_words(&whole.to_string())));
                }
                return Err(ZoneError::Parse {
                    file: file.to_owned(),
                    problems,
                });
            }
        };
        let origin = origin.to_lowercase();
        let mut nodes: HashMap<Name, Vec<Record>> = HashMap::new();
        for (_, set) in sets {
            for r in set.records_without_rrsigs() {
                nodes
                    .entry(r.name.to_lowercase())
                    .or_default()
                    .push(r.clone());
            }
        }
        let soa = nodes
            .get(&origin)
            .and_then(|rs| rs.iter().find(|r| r.record_type() == RecordType::SOA))
            .cloned()
            .ok_or_else(|| ZoneError::NoSoa {
                file: file.to_owned(),
                origin: origin.to_string(),
            })?;
        Ok(Zone { origin, soa, nodes })
    }

    /// The zone's apex name.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// Number of owner names with records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for a zone without names (never the case once parsed: the apex has its SOA).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn rrset(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        self.nodes
            .get(&name.to_lowercase())
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The SOA with its TTL lowered to the SOA minimum, as negative answers carry it
    /// (RFC 2308 section 3).
    fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(s) = &soa.data {
            soa.ttl = soa.ttl.min(s.minimum);
        }
        soa
    }

    /// The closest delegation point strictly between the apex and `name` (inclusive of `name`).
    fn delegation(&self, name: &Name) -> Option<Name> {
        let apex_labels = self.origin.num_labels();
        for n in (apex_labels + 1)..=name.num_labels() {
            let cut = name.trim_to(usize::from(n));
            if !self.rrset(&cut, RecordType::NS).is_empty() {
                return Some(cut);
            }
        }
        None
    }

    /// True when some name in the zone lies at or below `name` (an empty non-terminal exists).
    fn has_descendants(&self, name: &Name) -> bool {
        self.nodes.keys().any(|k| name.zone_of(k))
    }

    /// Address records for names in this zone, for the additional section.
    fn addresses_for(&self, targets: &[Name], out: &mut Vec<Record>) {
        for t in targets {
            if !self.origin.zone_of(t) {
                continue;
            }
            for rtype in [RecordType::A, RecordType::AAAA] {
                for r in self.rrset(t, rtype) {
                    if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
        }
    }

    /// Answers a question about a name inside this zone, filling `reply`'s sections and code.
    pub fn answer(&self, qname: &Name, qtype: RecordType, reply: &mut Message) {
        reply.metadata.authoritative = true;
        let mut name = qname.clone();
        for _ in 0..=MAX_CNAME_IN_ZONE {
            if !self.origin.zone_of(&name) {
                // A CNAME led out of the zone: the client or resolver goes on from here.
                return;
            }
            if let Some(cut) = self.delegation(&name) {
                if reply.answers.is_empty() {
                    reply.metadata.authoritative = false;
                }
                let ns = self.rrset(&cut, RecordType::NS);
                let targets: Vec<Name> = ns
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::NS(n) => Some(n.0.clone()),
                        _ => None,
                    })
                    .collect();
                reply.authorities.extend(ns);
                self.addresses_for(&targets, &mut reply.additionals);
                return;
            }
            let Some(records) = self.nodes.get(&name.to_lowercase()) else {
                if self.has_descendants(&name) {
                    reply.authorities.push(self.negative_soa());
                } else {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                    reply.authorities.push(self.negative_soa());
                }
                return;
            };
            let matching: Vec<Record> = records
                .iter()
                .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                .cloned()
                .collect();
            if !matching.is_empty() {
                let targets: Vec<Name> = matching
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(mx.exchange.clone()),
                        RData::NS(n) => Some(n.0.clone()),
                        RData::SRV(srv) => Some(srv.target.clone()),
                        _ => None,
                    })
                    .collect();
                reply.answers.extend(matching);
                self.addresses_for(&targets, &mut reply.additionals);
                return;
            }
            let cname = records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME);
            match cname.map(|r| &r.data) {
                Some(RData::CNAME(target)) => {
                    let target = target.0.clone();
                    reply
                        .answers
                        .push(cname.cloned().expect("matched just above"));
                    name = target;
                }
                _ => {
                    reply.authorities.push(self.negative_soa());
                    return;
                }
            }
        }
    }
}

/// The zones one server is authoritative for.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
}

impl Catalog {
    /// A catalog of `zones`.
    pub fn new(zones: Vec<Zone>) -> Self {
        Self { zones }
    }

    /// The zones, in the order given.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The most specific zone holding `name`.
    pub fn find(&self, name: &Name) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.origin.zone_of(name))
            .max_by_key(|z| z.origin.num_labels())
    }

    /// Answers a decoded query as an authoritative server does.
    ///
    /// Opcodes other than QUERY get NOTIMP, classes other than IN get REFUSED, names outside
    /// every zone get REFUSED (this server is not a resolver).
    pub fn respond(&self, query: &Message) -> Message {
        let mut reply = Message::new(
            query.metadata.id,
            MessageType::Response,
            query.metadata.op_code,
        );
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.checking_disabled = query.metadata.checking_disabled;
        reply.queries = query.queries.clone();
        if query.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(EDNS_PAYLOAD);
            reply.set_edns(e);
        }
        if query.metadata.op_code != OpCode::Query {
            reply.metadata.response_code = ResponseCode::NotImp;
            return reply;
        }
        if query.queries.len() != 1 {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        }
        let q = &query.queries[0];
        // Zone transfers are not offered: the lab server answers questions only.
        if q.query_class() != DNSClass::IN
            || matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            reply.metadata.response_code = ResponseCode::Refused;
            return reply;
        }
        match self.find(q.name()) {
            Some(zone) => zone.answer(q.name(), q.query_type(), &mut reply),
            None => reply.metadata.response_code = ResponseCode::Refused,
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::build_query;

    #[test]
    fn every_problem_is_named_with_its_file_and_line() {
        let text = "$ORIGIN bad.test.
www 3600 IN A 192.0.2.1
ftp IN A 192.0.2.2
@ 3600 IN SOA ns admin ( 1 2 3
    4 5 )
mail 3600 IN BOGUS x
ok 3600 IN A 192.0.2.3
    3600 IN A not-an-address
";
        let err = Zone::parse(text, "bad1.zone", None).unwrap_err();
        let ZoneError::Parse { problems, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            problems[0],
            "bad1.zone:3: record has no TTL and no $TTL is set"
        );
        assert!(problems[1].starts_with("bad1.zone:6: "), "{problems:?}");
        assert!(problems[2].starts_with("bad1.zone:8: "), "{problems:?}");
        // A file without problems still parses whole.
        assert!(Zone::parse(ZONE, "good.zone", None).is_ok());
    }

    const ZONE: &str = "$ORIGIN example.test.
$TTL 3600
@       IN SOA ns1 admin 2024010101 7200 3600 1209600 300
@       IN NS  ns1
ns1     IN A   127.0.0.1
www     IN A   192.0.2.10
        IN AAAA 2001:db8::10
alias   IN CNAME www
chain   IN CNAME alias
out     IN CNAME www.elsewhere.test.
@       IN MX  10 mail
mail    IN A   192.0.2.25
a.b     IN TXT \"deep\"
sub     IN NS  ns.sub
ns.sub  IN A   192.0.2.53
";

    fn catalog() -> Catalog {
        Catalog::new(vec![Zone::parse(ZONE, "example.test.zone", None).unwrap()])
    }

    fn ask(name: &str, qtype: RecordType) -> Message {
        let q = build_query(1, &Name::from_ascii(name).unwrap(), qtype, false, false);
        catalog().respond(&q)
    }

    #[test]
    fn answer_with_aa() {
        let r = ask("WWW.example.test.", RecordType::A);
        assert!(r.metadata.authoritative);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data.to_string(), "192.0.2.10");
    }

    #[test]
    fn cname_chain_is_followed_in_zone() {
        let r = ask("chain.example.test.", RecordType::A);
        let types: Vec<_> = r.answers.iter().map(Record::record_type).collect();
        assert_eq!(
            types,
            vec![RecordType::CNAME, RecordType::CNAME, RecordType::A]
        );
        let r = ask("out.example.test.", RecordType::A);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn nxdomain_and_nodata_carry_soa_with_minimum_ttl() {
        let r = ask("nope.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].ttl, 300);
        let r = ask("www.example.test.", RecordType::MX);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        // An empty non-terminal is NODATA, not NXDOMAIN.
        let r = ask("b.example.test.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn referral_with_glue() {
        let r = ask("host.sub.example.test.", RecordType::A);
        assert!(!r.metadata.authoritative);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities[0].record_type(), RecordType::NS);
        assert_eq!(r.additionals.len(), 1);
        assert_eq!(r.additionals[0].data.to_string(), "192.0.2.53");
    }

    #[test]
    fn mx_gets_additional_address() {
        let r = ask("example.test.", RecordType::MX);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(
            r.additionals[0].name,
            Name::from_ascii("mail.example.test.").unwrap()
        );
    }

    #[test]
    fn refused_outside_zone_and_notimp_for_other_opcodes() {
        let r = ask("example.org.", RecordType::A);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        let r = ask("example.test.", RecordType::AXFR);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        let mut q = build_query(
            1,
            &Name::from_ascii("example.test.").unwrap(),
            RecordType::A,
            false,
            false,
        );
        q.metadata.op_code = OpCode::Status;
        assert_eq!(
            catalog().respond(&q).metadata.response_code,
            ResponseCode::NotImp
        );
    }

    #[test]
    fn missing_soa_and_bad_syntax_are_errors() {
        let e = Zone::parse("$ORIGIN x.test.\n@ 60 IN A 1.2.3.4\n", "x", None).unwrap_err();
        assert!(matches!(e, ZoneError::NoSoa { .. }));
        let e = Zone::parse("$ORIGIN x.test.\n@ 60 IN A not-an-address\n", "x", None).unwrap_err();
        assert!(matches!(e, ZoneError::Parse { .. }));
    }
}
