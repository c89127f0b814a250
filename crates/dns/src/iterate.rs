//! Iterative resolution from root hints (RFC 1034 section 5.3.3).
//!
//! Starting from the root servers, the resolver asks each server the full question without RD.
//! A server either answers, says the name does not exist, or refers the resolver to the servers
//! of a zone closer to the name (NS records in the authority section, and maybe their addresses
//! as glue in the additional section). The resolver follows referrals until an answer comes.
//!
//! Defences and bounds:
//! - glue is used only for nameserver names inside the zone of the server that gave the
//!   referral (in bailiwick); other glue is ignored and the name resolved on its own;
//! - a referral must lead strictly closer to the name, otherwise it is a loop (or a lame
//!   delegation) and the server is skipped;
//! - CNAMEs are followed at most [`IterConfig::max_cname`] times, and a name seen twice in a
//!   chain is a loop;
//! - nameserver names without glue are resolved recursively, at most
//!   [`IterConfig::max_depth`] deep, and every query counts against one total budget.
//!
//! The sending of queries is abstracted by [`Ask`], so this logic runs over sockets in the
//! driver and over in-memory zones in the tests below.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One server's reply to one question.
#[derive(Debug, Clone)]
pub struct Answer {
    pub reply: Message,
    pub size: usize,
    pub elapsed: Duration,
}

/// Sends a non-recursive question to one server.
pub trait Ask: Sync {
    /// Asks `server` about `name`/`qtype`; an error means no usable reply.
    fn ask(
        &self,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
    ) -> impl Future<Output = Result<Answer, String>> + Send;
}

/// Limits of one resolution.
#[derive(Debug, Clone)]
pub struct IterConfig {
    /// The port every nameserver is asked on: 53, or another for a lab hierarchy.
    pub port: u16,
    /// Most queries sent in total, including those for nameserver addresses.
    pub max_queries: usize,
    /// Most CNAMEs followed.
    pub max_cname: usize,
    /// Most levels of resolving a nameserver's name to resolve another name.
    pub max_depth: usize,
}

impl Default for IterConfig {
    fn default() -> Self {
        Self {
            port: 53,
            max_queries: 64,
            max_cname: 8,
            max_depth: 4,
        }
    }
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("gave up after {0} queries: the work bound per question was reached")]
    Budget(usize),
    #[error("CNAME loop at {0}")]
    CnameLoop(String),
    #[error("more than {0} CNAMEs in a chain")]
    CnameLimit(usize),
    #[error("no server of zone {zone} gave a usable reply for {name}: {last}")]
    NoServer {
        zone: String,
        name: String,
        last: String,
    },
    #[error("nameserver names nested deeper than {0} levels")]
    Depth(usize),
    #[error("no root servers in the hints: give a hints file with NS and A records for the root")]
    NoHints,
}

/// Root hints: the root's nameserver names and addresses.
#[derive(Debug, Clone, Default)]
pub struct RootHints {
    pub servers: Vec<(Name, Vec<IpAddr>)>,
}

impl RootHints {
    /// Parses a hints file in master file form (as named.root): `. NS name` lines and
    /// `name A addr` / `name AAAA addr` lines; TTL and class may be present; `;` starts a comment.
    ///
    /// # Errors
    /// A message naming the bad line.
    pub fn parse(text: &str) -> Result<RootHints, String> {
        let mut ns: Vec<Name> = Vec::new();
        let mut addrs: Vec<(Name, IpAddr)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split(';').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('$') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let bad = || {
                format!(
                    "root hints line {}: {raw:?}: expected `NAME [TTL] [IN] NS|A|AAAA DATA`",
                    i + 1
                )
            };
            let ty = words
                .iter()
                .position(|w| matches!(w.to_ascii_uppercase().as_str(), "NS" | "A" | "AAAA"))
                .ok_or_else(bad)?;
            let owner = Name::from_ascii(words[0]).map_err(|_| bad())?;
            let data = words.get(ty + 1).ok_or_else(bad)?;
            match words[ty].to_ascii_uppercase().as_str() {
                "NS" => {
                    if owner.is_root() {
                        ns.push(Name::from_ascii(data).map_err(|_| bad())?.to_lowercase());
                    }
                }
                _ => addrs.push((owner.to_lowercase(), data.parse().map_err(|_| bad())?)),
            }
        }
        let servers: Vec<(Name, Vec<IpAddr>)> = ns
            .into_iter()
            .map(|n| {
                let ips = addrs
                    .iter()
                    .filter(|(a, _)| *a == n)
                    .map(|(_, ip)| *ip)
                    .collect();
                (n, ips)
            })
            .filter(|(_, ips): &(Name, Vec<IpAddr>)| !ips.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(RootHints::default_error());
        }
        Ok(RootHints { servers })
    }

    fn default_error() -> String {
        ResolveError::NoHints.to_string()
    }
}

/// What one step of the resolution saw, for `--trace`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// The zone whose servers were asked.
    pub zone: String,
    /// The question asked.
    pub qname: String,
    pub qtype: String,
    /// The server asked, by name and address.
    pub server_name: String,
    pub server: SocketAddr,
    pub rcode: String,
    /// `referral`, `answer`, `cname`, `nxdomain`, `nodata`, `lame` or `error`.
    pub outcome: String,
    /// The records that mattered, in presentation form.
    pub records: Vec<String>,
    pub size: usize,
    pub elapsed_ms: f64,
    /// How deep in nameserver-name resolution this step was (0: the question itself).
    pub depth: usize,
}

/// The result of a resolution: a response message for the original question, and the steps.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub reply: Message,
    pub steps: Vec<Step>,
}

struct State {
    queries: usize,
    steps: Vec<Step>,
}

/// Nameservers of a zone: their names and the addresses known for them (none: look them up).
pub type Servers = Vec<(Name, Vec<IpAddr>)>;

/// Delegations learnt from earlier referrals, so that a resolver starts from the closest zone
/// it knows instead of the root every time. The store decides how long entries live (it gets
/// the NS records' TTL) and keeps the clock; this module only asks and tells.
pub trait Delegations: Send + Sync {
    /// The closest enclosing zone of `name` with known servers.
    fn closest(&self, name: &Name) -> Option<(Name, Servers)>;
    /// A referral to `zone` was accepted, with NS records valid for `ttl` seconds.
    fn learn(&self, zone: &Name, servers: &Servers, ttl: u32);
}

/// No memory of delegations: every resolution starts at the root (as `--trace` wants).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelegations;

impl Delegations for NoDelegations {
    fn closest(&self, _name: &Name) -> Option<(Name, Servers)> {
        None
    }

    fn learn(&self, _zone: &Name, _servers: &Servers, _ttl: u32) {}
}

/// Resolves `name`/`qtype` from the root.
///
/// # Errors
/// [`ResolveError`] when the bounds are reached or no server answers usefully.
pub async fn resolve<A: Ask>(
    asker: &A,
    hints: &RootHints,
    config: &IterConfig,
    name: &Name,
    qtype: RecordType,
) -> Result<Resolution, ResolveError> {
    resolve_with(asker, hints, config, &NoDelegations, name, qtype).await
}

/// Resolves `name`/`qtype`, starting from the closest zone `delegations` knows and teaching
/// it the referrals followed. If the servers of a remembered zone all fail, the walk starts
/// again from the root.
///
/// # Errors
/// [`ResolveError`] when the bounds are reached or no server answers usefully.
pub async fn resolve_with<A: Ask>(
    asker: &A,
    hints: &RootHints,
    config: &IterConfig,
    delegations: &dyn Delegations,
    name: &Name,
    qtype: RecordType,
) -> Result<Resolution, ResolveError> {
    if hints.servers.is_empty() {
        return Err(ResolveError::NoHints);
    }
    let mut state = State {
        queries: 0,
        steps: Vec::new(),
    };
    let ctx = Ctx {
        asker,
        hints,
        config,
        delegations,
    };
    let r = resolve_at(&ctx, name.clone(), qtype, 0, &mut state).await;
    let reply = r?;
    Ok(Resolution {
        reply,
        steps: state.steps,
    })
}

/// What stays the same through one resolution, including its nested lookups.
struct Ctx<'a, A> {
    asker: &'a A,
    hints: &'a RootHints,
    config: &'a IterConfig,
    delegations: &'a dyn Delegations,
}

fn resolve_at<'a, A: Ask>(
    ctx: &'a Ctx<'a, A>,
    qname: Name,
    qtype: RecordType,
    depth: usize,
    state: &'a mut State,
) -> Pin<Box<dyn Future<Output = Result<Message, ResolveError>> + Send + 'a>> {
    let Ctx {
        asker,
        hints,
        config,
        delegations,
    } = *ctx;
    Box::pin(async move {
        if depth > config.max_depth {
            return Err(ResolveError::Depth(config.max_depth));
        }
        let mut chain: Vec<Record> = Vec::new();
        let mut seen: Vec<Name> = vec![qname.to_lowercase()];
        let mut name = qname.clone();
        'cname: loop {
            let (mut zone, mut servers, mut remembered) = match delegations.closest(&name) {
                Some((zone, servers)) => (zone, servers, true),
                None => (Name::root(), hints.servers.clone(), false),
            };
            loop {
                let mut last = String::from("no addresses");
                let mut outcome = None;
                'servers: for entry in &mut servers {
                    let (ns_name, mut ips) = entry.clone();
                    if ips.is_empty() {
                        // A nameserver without glue: find its address first.
                        match resolve_at(ctx, ns_name.clone(), RecordType::A, depth + 1, state)
                            .await
                        {
                            Ok(m) => {
                                ips = m
                                    .answers
                                    .iter()
                                    .filter_map(|r| match &r.data {
                                        RData::A(a) => Some(IpAddr::V4(a.0)),
                                        _ => None,
                                    })
                                    .collect();
                                entry.1.clone_from(&ips);
                            }
                            Err(e @ ResolveError::Budget(_)) => return Err(e),
                            Err(e) => {
                                last = format!("{ns_name}: {e}");
                                continue;
                            }
                        }
                    }
                    for ip in ips {
                        if state.queries >= config.max_queries {
                            return Err(ResolveError::Budget(state.queries));
                        }
                        state.queries += 1;
                        let server = SocketAddr::new(ip, config.port);
                        let mut step = Step {
                            zone: zone.to_string(),
                            qname: name.to_string(),
                            qtype: qtype.to_string(),
                            server_name: ns_name.to_string(),
                            server,
                            rcode: String::new(),
                            outcome: String::new(),
                            records: Vec::new(),
                            size: 0,
                            elapsed_ms: 0.0,
                            depth,
                        };
                        match asker.ask(server, &name, qtype).await {
                            Err(e) => {
                                step.outcome = "error".into();
                                step.records.push(e.clone());
                                state.steps.push(step);
                                last = format!("{server}: {e}");
                            }
                            Ok(a) => {
                                step.size = a.size;
                                step.elapsed_ms = a.elapsed.as_secs_f64() * 1e3;
                                step.rcode =
                                    crate::wire::rcode_name(a.reply.metadata.response_code);
                                let c = classify(&a.reply, &zone, &name, qtype);
                                step.outcome = c.label().into();
                                step.records = a
                                    .reply
                                    .answers
                                    .iter()
                                    .chain(&a.reply.authorities)
                                    .chain(&a.reply.additionals)
                                    .map(crate::present::record_line)
                                    .collect();
                                state.steps.push(step);
                                if let Classified::Lame(why) = &c {
                                    last = format!("{server}: {why}");
                                    continue;
                                }
                                outcome = Some((c, a.reply));
                                break 'servers;
                            }
                        }
                    }
                }
                let Some((c, reply)) = outcome else {
                    if remembered {
                        // The remembered servers failed: they may have moved. Start over.
                        remembered = false;
                        zone = Name::root();
                        servers = hints.servers.clone();
                        continue;
                    }
                    return Err(ResolveError::NoServer {
                        zone: zone.to_string(),
                        name: name.to_string(),
                        last,
                    });
                };
                match c {
                    Classified::Lame(_) => unreachable!("lame replies are skipped above"),
                    Classified::Final => {
                        let mut out = response_for(&qname, qtype, &reply);
                        let mut answers = chain;
                        answers.extend(reply.answers.iter().cloned());
                        out.answers = answers;
                        return Ok(out);
                    }
                    Classified::Cname(target, records) => {
                        chain.extend(records);
                        // The same reply may already hold the target's records.
                        let rest: Vec<Record> = reply
                            .answers
                            .iter()
                            .filter(|r| r.name == target && r.record_type() == qtype)
                            .cloned()
                            .collect();
                        if !rest.is_empty() {
                            let mut out = response_for(&qname, qtype, &reply);
                            chain.extend(rest);
                            out.answers = chain;
                            return Ok(out);
                        }
                        let key = target.to_lowercase();
                        if seen.contains(&key) {
                            return Err(ResolveError::CnameLoop(target.to_string()));
                        }
                        if seen.len() > config.max_cname {
                            return Err(ResolveError::CnameLimit(config.max_cname));
                        }
                        seen.push(key);
                        name = target;
                        continue 'cname;
                    }
                    Classified::Referral(child, next, ttl) => {
                        delegations.learn(&child, &next, ttl);
                        zone = child;
                        servers = next;
                    }
                }
            }
        }
    })
}

pub enum Classified {
    /// An answer, NXDOMAIN or NODATA: resolution ends here.
    Final,
    /// The name is an alias: the chain so far (CNAME records) and the target.
    Cname(Name, Vec<Record>),
    /// Go on with the servers of this closer zone.
    Referral(Name, Servers, u32),
    /// Nothing usable from this server: try the next.
    Lame(String),
}

impl Classified {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Final => "answer",
            Self::Cname(..) => "cname",
            Self::Referral(..) => "referral",
            Self::Lame(_) => "lame",
        }
    }
}

pub fn classify(reply: &Message, zone: &Name, name: &Name, qtype: RecordType) -> Classified {
    let rcode = reply.metadata.response_code;
    if rcode == ResponseCode::NXDomain {
        return Classified::Final;
    }
    if rcode != ResponseCode::NoError {
        return Classified::Lame(format!("rcode {}", crate::wire::rcode_name(rcode)));
    }
    if reply
        .answers
        .iter()
        .any(|r| r.name == *name && (r.record_type() == qtype || qtype == RecordType::ANY))
    {
        return Classified::Final;
    }
    // Follow the CNAME chain inside the answer as far as it goes.
    let mut cur = name.clone();
    let mut records = Vec::new();
    for _ in 0..=reply.answers.len() {
        let next = reply
            .answers
            .iter()
            .find(|r| r.name == cur && r.record_type() == RecordType::CNAME);
        match next.map(|r| (r, &r.data)) {
            Some((r, RData::CNAME(t))) => {
                records.push(r.clone());
                cur = t.0.clone();
            }
            _ => break,
        }
    }
    if !records.is_empty() {
        return Classified::Cname(cur, records);
    }
    let ns: Vec<&Record> = reply
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    if let Some(first) = ns.first() {
        let child = first.name.clone();
        // A referral must lead strictly below the zone asked and towards the name.
        if !(zone.zone_of(&child) && child.num_labels() > zone.num_labels() && child.zone_of(name))
        {
            return Classified::Lame(format!(
                "referral to {child} does not lead closer to {name} from {zone}"
            ));
        }
        let servers = ns
            .iter()
            .filter(|r| r.name == child)
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.clone()),
                _ => None,
            })
            .map(|ns_name| {
                // In-bailiwick glue only: the referring server is authoritative for `zone`, so
                // it may vouch for addresses of names inside `zone`, nothing else.
                let ips = if zone.zone_of(&ns_name) {
                    reply
                        .additionals
                        .iter()
                        .filter(|r| r.name == ns_name)
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                (ns_name.to_lowercase(), ips)
            })
            .collect();
        let ttl = ns
            .iter()
            .filter(|r| r.name == child)
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0);
        return Classified::Referral(child, servers, ttl);
    }
    if reply.answers.is_empty() {
        // NODATA: the name exists without this type (an SOA may explain how long to cache it).
        return Classified::Final;
    }
    Classified::Lame("answer does not match the question".into())
}

/// A recursive server's reply for the original question, built from the final server reply.
fn response_for(qname: &Name, qtype: RecordType, last: &Message) -> Message {
    let mut out = Message::new(0, MessageType::Response, OpCode::Query);
    out.metadata.recursion_desired = true;
    out.metadata.recursion_available = true;
    out.metadata.response_code = last.metadata.response_code;
    out.add_query(hickory_proto::op::Query::query(qname.clone(), qtype));
    out.authorities = last
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::SOA)
        .cloned()
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{Catalog, Zone};
    use std::collections::HashMap;

    /// Lab servers held in memory, keyed by address.
    struct Lab(HashMap<IpAddr, Catalog>);

    impl Ask for Lab {
        async fn ask(
            &self,
            server: SocketAddr,
            name: &Name,
            qtype: RecordType,
        ) -> Result<Answer, String> {
            let cat = self.0.get(&server.ip()).ok_or("timeout")?;
            let q = crate::wire::build_query(1, name, qtype, false, false);
            let reply = cat.respond(&q);
            Ok(Answer {
                size: reply.to_vec().map(|v| v.len()).unwrap_or(0),
                reply,
                elapsed: Duration::ZERO,
            })
        }
    }

    fn zone(text: &str) -> Catalog {
        Catalog::new(vec![Zone::parse(text, "t", None).unwrap()])
    }

    fn lab() -> (Lab, RootHints) {
        let root = zone(
            "$ORIGIN .\n$TTL 60\n@ SOA a.root. h. 1 2 3 4 60\n@ NS a.root.\na.root. A 127.0.0.1\n\
             test. NS ns1.test.\nns1.test. A 127.0.0.2\n\
             other. NS ns.elsewhere.test.\n",
        );
        let test = zone(
            "$ORIGIN test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 60\n@ NS ns1\nns1 A 127.0.0.2\n\
             example NS ns1.example\nns1.example A 127.0.0.3\n\
             ns.elsewhere A 127.0.0.4\nloop NS ns1.loop\nns1.loop A 127.0.0.5\n",
        );
        let example = zone(
            "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 30\n@ NS ns1\nns1 A 127.0.0.3\n\
             www A 192.0.2.1\nalias CNAME www.other.\nself CNAME self\n",
        );
        let other = zone(
            "$ORIGIN other.\n$TTL 60\n@ SOA ns h 1 2 3 4 60\n@ NS ns.elsewhere.test.\nwww.other. A 192.0.2.2\n",
        );
        // A server that refers `loop.test.` back to the root zone's servers.
        let looping =
            zone("$ORIGIN test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 60\n@ NS a.root.\nloop NS a.root.\n");
        let mut m = HashMap::new();
        m.insert("127.0.0.1".parse().unwrap(), root);
        m.insert("127.0.0.2".parse().unwrap(), test);
        m.insert("127.0.0.3".parse().unwrap(), example);
        m.insert("127.0.0.4".parse().unwrap(), other);
        m.insert("127.0.0.5".parse().unwrap(), looping);
        let hints =
            RootHints::parse(". 3600 IN NS a.root.\na.root. 3600 IN A 127.0.0.1 ; lab root\n")
                .unwrap();
        (Lab(m), hints)
    }

    fn run(name: &str, qtype: RecordType) -> Result<Resolution, ResolveError> {
        let (lab, hints) = lab();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(resolve(
            &lab,
            &hints,
            &IterConfig::default(),
            &Name::from_ascii(name).unwrap(),
            qtype,
        ))
    }

    #[test]
    fn follows_referrals_with_glue() {
        let r = run("www.example.test.", RecordType::A).unwrap();
        assert_eq!(r.reply.answers.len(), 1);
        assert_eq!(r.reply.answers[0].data.to_string(), "192.0.2.1");
        let outcomes: Vec<_> = r.steps.iter().map(|s| s.outcome.as_str()).collect();
        assert_eq!(outcomes, vec!["referral", "referral", "answer"]);
        assert_eq!(r.steps[2].zone, "example.test.");
    }

    #[test]
    fn cname_out_of_zone_and_ns_without_glue() {
        // www.other. is served by ns.elsewhere.test., which the root gives no glue for.
        let r = run("alias.example.test.", RecordType::A).unwrap();
        let types: Vec<_> = r.reply.answers.iter().map(Record::record_type).collect();
        assert_eq!(types, vec![RecordType::CNAME, RecordType::A]);
        assert_eq!(r.reply.answers[1].data.to_string(), "192.0.2.2");
        assert!(
            r.steps.iter().any(|s| s.depth == 1),
            "the NS name was resolved on its own"
        );
    }

    #[test]
    fn nxdomain_and_nodata_end_with_soa() {
        let r = run("nope.example.test.", RecordType::A).unwrap();
        assert_eq!(r.reply.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(r.reply.authorities[0].record_type(), RecordType::SOA);
        let r = run("www.example.test.", RecordType::MX).unwrap();
        assert_eq!(r.reply.metadata.response_code, ResponseCode::NoError);
        assert!(r.reply.answers.is_empty());
    }

    #[test]
    fn loops_are_detected() {
        assert_eq!(
            run("self.example.test.", RecordType::A).unwrap_err(),
            ResolveError::CnameLoop("self.example.test.".into())
        );
        let e = run("x.loop.test.", RecordType::A).unwrap_err();
        assert!(matches!(e, ResolveError::NoServer { .. }), "{e}");
    }

    /// Remembers delegations without expiry.
    #[derive(Default)]
    struct Remember(std::sync::Mutex<HashMap<Name, Servers>>);

    impl Delegations for Remember {
        fn closest(&self, name: &Name) -> Option<(Name, Servers)> {
            let m = self.0.lock().unwrap();
            (1..=name.num_labels())
                .rev()
                .map(|n| name.trim_to(usize::from(n)))
                .find_map(|z| m.get(&z).map(|s| (z, s.clone())))
        }

        fn learn(&self, zone: &Name, servers: &Servers, _ttl: u32) {
            self.0.lock().unwrap().insert(zone.clone(), servers.clone());
        }
    }

    #[test]
    fn remembered_delegations_skip_the_root_and_stale_ones_fall_back() {
        let (lab, hints) = lab();
        let memory = Remember::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cfg = IterConfig::default();
        let ask = |name: &str| {
            rt.block_on(resolve_with(
                &lab,
                &hints,
                &cfg,
                &memory,
                &Name::from_ascii(name).unwrap(),
                RecordType::A,
            ))
            .unwrap()
        };
        assert_eq!(ask("www.example.test.").steps.len(), 3);
        let again = ask("ns1.example.test.");
        assert_eq!(again.steps.len(), 1, "straight to example.test.'s server");
        assert_eq!(again.steps[0].zone, "example.test.");
        // A remembered server that is gone: the walk starts over from the root.
        memory.learn(
            &Name::from_ascii("example.test.").unwrap(),
            &vec![(
                Name::from_ascii("gone.test.").unwrap(),
                vec!["127.0.0.99".parse().unwrap()],
            )],
            60,
        );
        let r = ask("www.example.test.");
        assert_eq!(r.reply.answers.len(), 1);
        assert_eq!(r.steps[0].outcome, "error");
        assert_eq!(r.steps[1].zone, ".");
    }

    #[test]
    fn hints_parse() {
        assert!(RootHints::parse("; nothing\n").is_err());
        assert!(RootHints::parse(". NS a.root.\na.root. A not-ip\n").is_err());
        let h = RootHints::parse(
            ".  NS  a.root.\n.  NS  b.root.\na.root. A 10.0.0.1\nb.root. AAAA ::1\n",
        )
        .unwrap();
        assert_eq!(h.servers.len(), 2);
    }
}
