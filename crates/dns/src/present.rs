//! Presenting messages to people and scripts: dig-like text, `+short`, and JSON with the field
//! names of RFC 8427 where they fit.

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, Record};
use serde_json::{Value, json};

use crate::client::Exchange;
use crate::iterate::{Outcome, Step};
use crate::wire::rcode_name;

/// A TXT character-string as dig writes it: quoted, with `"` and `\` escaped and bytes outside
/// printable ASCII as `\DDD`.
fn quoted(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03}")),
        }
    }
    s.push('"');
    s
}

/// The RDATA of a record in presentation form (RFC 1035 section 5.1), as dig prints it.
pub fn rdata_text(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| quoted(s))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// One record as a master-file line: `name TTL IN TYPE RDATA`, tab-separated.
pub fn record_line(r: &Record) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        rdata_text(&r.data)
    )
}

fn flag_list(m: &Message) -> String {
    let md = &m.metadata;
    let mut f = Vec::new();
    if md.message_type == hickory_proto::op::MessageType::Response {
        f.push("qr");
    }
    for (on, name) in [
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
        (md.authentic_data, "ad"),
        (md.checking_disabled, "cd"),
    ] {
        if on {
            f.push(name);
        }
    }
    f.join(" ")
}

/// dig's default output for one exchange.
pub fn dig_text(x: &Exchange, command: &str) -> String {
    let m = &x.reply;
    let mut out = String::new();
    out.push_str(&format!("; <<>> dns query <<>> {command}\n"));
    if x.retried_over_tcp {
        out.push_str(";; Truncated, retrying in TCP mode.\n");
    }
    out.push_str(";; Got answer:\n");
    out.push_str(&format!(
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}\n",
        m.metadata.op_code.to_string().to_uppercase(),
        rcode_name(m.metadata.response_code),
        m.metadata.id
    ));
    out.push_str(&format!(
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}\n",
        flag_list(m),
        m.queries.len(),
        m.answers.len(),
        m.authorities.len(),
        m.additionals.len() + usize::from(m.edns.is_some())
    ));
    if let Some(e) = &m.edns {
        out.push_str(&format!(
            "\n;; OPT PSEUDOSECTION:\n; EDNS: version: {}, flags:{}; udp: {}\n",
            e.version(),
            if e.flags().dnssec_ok { " do" } else { "" },
            e.max_payload()
        ));
    }
    out.push_str("\n;; QUESTION SECTION:\n");
    for q in &m.queries {
        out.push_str(&format!(
            ";{}\t\t{}\t{}\n",
            q.name(),
            q.query_class(),
            q.query_type()
        ));
    }
    for (title, records) in [
        ("ANSWER", &m.answers),
        ("AUTHORITY", &m.authorities),
        ("ADDITIONAL", &m.additionals),
    ] {
        if records.is_empty() {
            continue;
        }
        out.push_str(&format!("\n;; {title} SECTION:\n"));
        for r in records {
            out.push_str(&record_line(r));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n;; Query time: {} msec\n;; SERVER: {}#{}({}) ({})\n;; MSG SIZE  rcvd: {}\n",
        x.elapsed.as_millis(),
        x.server.ip(),
        x.server.port(),
        x.server.ip(),
        x.transport.to_uppercase(),
        x.size
    ));
    out
}

/// dig +short: the RDATA of each answer, one a line.
pub fn short_text(m: &Message) -> String {
    m.answers
        .iter()
        .map(|r| rdata_text(&r.data) + "\n")
        .collect()
}

fn record_json(r: &Record) -> Value {
    let ty = r.record_type().to_string();
    let mut v = json!({
        "NAME": r.name.to_string(),
        "TYPE": u16::from(r.record_type()),
        "TYPEname": ty,
        "CLASS": u16::from(r.dns_class),
        "TTL": r.ttl,
        "RDATA": rdata_text(&r.data),
    });
    v[format!("rdata{ty}")] = Value::String(rdata_text(&r.data));
    v
}

/// A message as JSON with RFC 8427 member names.
pub fn message_json(m: &Message) -> Value {
    let md = &m.metadata;
    json!({
        "ID": md.id,
        "QR": u8::from(md.message_type == hickory_proto::op::MessageType::Response),
        "Opcode": u8::from(md.op_code),
        "AA": u8::from(md.authoritative),
        "TC": u8::from(md.truncation),
        "RD": u8::from(md.recursion_desired),
        "RA": u8::from(md.recursion_available),
        "AD": u8::from(md.authentic_data),
        "CD": u8::from(md.checking_disabled),
        "RCODE": u16::from(md.response_code),
        "RCODEname": rcode_name(md.response_code),
        "QDCOUNT": m.queries.len(),
        "ANCOUNT": m.answers.len(),
        "NSCOUNT": m.authorities.len(),
        "ARCOUNT": m.additionals.len() + usize::from(m.edns.is_some()),
        "questionRRs": m.queries.iter().map(|q| json!({
            "NAME": q.name().to_string(),
            "TYPE": u16::from(q.query_type()),
            "TYPEname": q.query_type().to_string(),
            "CLASS": u16::from(q.query_class()),
        })).collect::<Vec<_>>(),
        "answerRRs": m.answers.iter().map(record_json).collect::<Vec<_>>(),
        "authorityRRs": m.authorities.iter().map(record_json).collect::<Vec<_>>(),
        "additionalRRs": m.additionals.iter().map(record_json).collect::<Vec<_>>(),
        "EDNS": m.edns.as_ref().map(|e| json!({"version": e.version(), "udpPayload": e.max_payload()})),
    })
}

/// The word `--trace` shows for an outcome.
pub fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Referral => "referral",
        Outcome::Answer => "answer",
        Outcome::Cname => "cname",
        Outcome::Lame(_) => "lame",
        Outcome::Timeout | Outcome::Failed(_) => "error",
    }
}

/// The lines under a step: its reply's records, or why there was no reply.
fn step_lines(s: &Step) -> Vec<String> {
    match &s.outcome {
        Outcome::Timeout => vec!["no reply within the timeout".into()],
        Outcome::Failed(why) => vec![why.clone()],
        _ => s.records.iter().map(record_line).collect(),
    }
}

fn step_rcode(s: &Step) -> String {
    s.rcode.map(rcode_name).unwrap_or_default()
}

/// The steps of an iterative resolution, like dig +trace: what each server said.
pub fn trace_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        let indent = "  ".repeat(s.depth);
        out.push_str(&format!(
            "{indent};; ask {} ({}) about {} {} [zone {}]\n",
            s.server_name, s.server, s.qname, s.qtype, s.zone
        ));
        for r in step_lines(s) {
            out.push_str(&format!("{indent}{r}\n"));
        }
        let rcode = step_rcode(s);
        out.push_str(&format!(
            "{indent};; {} {}: {} bytes from {}#{}({}) in {:.1} ms\n\n",
            outcome_label(&s.outcome),
            if rcode.is_empty() { "-" } else { &rcode },
            s.size,
            s.server.ip(),
            s.server.port(),
            s.server_name,
            s.elapsed.as_secs_f64() * 1e3
        ));
    }
    out
}

/// One step as JSON: the names, type and code in presentation form, the records as master
/// file lines.
pub fn step_json(s: &Step) -> Value {
    json!({
        "zone": s.zone.to_string(),
        "qname": s.qname.to_string(),
        "qtype": s.qtype.to_string(),
        "server_name": s.server_name.to_string(),
        "server": s.server.to_string(),
        "rcode": step_rcode(s),
        "outcome": outcome_label(&s.outcome),
        "records": step_lines(s),
        "size": s.size,
        "elapsed_ms": s.elapsed.as_secs_f64() * 1e3,
        "depth": s.depth,
    })
}

impl serde::Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        step_json(self).serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData};

    #[test]
    fn txt_is_quoted_like_dig() {
        let txt = RData::TXT(TXT::from_bytes(vec![b"a \"q\" \\", b"\x01\xff"]));
        assert_eq!(rdata_text(&txt), r#""a \"q\" \\" "\001\255""#);
    }

    #[test]
    fn record_line_is_master_file_form() {
        let r = Record::from_rdata(
            Name::from_ascii("www.example.test.").unwrap(),
            60,
            RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
        );
        assert_eq!(record_line(&r), "www.example.test.\t60\tIN\tA\t192.0.2.1");
        let j = record_json(&r);
        assert_eq!(j["rdataA"], "192.0.2.1");
        assert_eq!(j["TYPE"], 1);
    }
}
