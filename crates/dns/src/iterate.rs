//! Iterative resolution from root hints (RFC 1034 section 5.3.3), as a state machine without
//! I/O.
//!
//! Starting from the root servers, the resolver asks each server the full question without RD.
//! A server either answers, says the name does not exist, or refers the resolver to the servers
//! of a zone closer to the name (NS records in the authority section, and maybe their addresses
//! as glue in the additional section). The resolver follows referrals until an answer comes.
//!
//! [`Walk`] holds that logic. The driver calls [`Walk::action`] and gets either
//! [`Action::Ask`] (send this question to this server, then [`Walk::feed`] the [`Reply`]: a
//! message, a timeout or another failure) or [`Action::Done`] with the answer or the error. The
//! walk keeps a typed trace ([`Step`]) of every question asked. [`resolve_with`] drives it over
//! an [`Ask`] (sockets in the servers); the tests feed it constructed replies directly.
//!
//! Defences and bounds:
//! - glue is used only for nameserver names inside the zone of the server that gave the
//!   referral (in bailiwick); other glue is ignored and the name resolved on its own;
//! - a referral must lead strictly closer to the name, otherwise it is a loop (or a lame
//!   delegation) and the server is skipped;
//! - CNAMEs are followed at most [`IterConfig::max_cname`] times, and a name seen twice in a
//!   chain is a loop;
//! - nameserver names without glue are resolved by a nested walk (a frame on a stack), at most
//!   [`IterConfig::max_depth`] deep, and every query counts against one total budget.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
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

/// What came of one question sent for the walk.
#[derive(Debug, Clone)]
pub enum Reply {
    /// An accepted reply (the driver has checked source, id and question).
    Answer(Answer),
    /// No acceptable reply within the driver's timeout.
    Timeout,
    /// Anything else that left no usable reply (an I/O error, a port unreachable).
    Failed(String),
}

/// Sends a non-recursive question to one server, for [`resolve_with`].
pub trait Ask: Sync {
    /// Asks `server` about `name`/`qtype`.
    fn ask(
        &self,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
    ) -> impl Future<Output = Reply> + Send;
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

/// What became of one question of the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A referral to the servers of a zone closer to the name, followed.
    Referral,
    /// The end of this name's walk: an answer, NXDOMAIN or NODATA.
    Answer,
    /// An alias: the walk goes on with its target.
    Cname,
    /// A reply with nothing usable (an error code, a referral that leads nowhere closer): the
    /// next server is tried. The reason is kept.
    Lame(String),
    /// No acceptable reply in time: the next server is tried.
    Timeout,
    /// No reply for another reason: the next server is tried.
    Failed(String),
}

/// What one question of the resolution saw, for `--trace`.
#[derive(Debug, Clone)]
pub struct Step {
    /// The zone whose servers were asked.
    pub zone: Name,
    /// The question asked.
    pub qname: Name,
    pub qtype: RecordType,
    /// The server asked, by name and address.
    pub server_name: Name,
    pub server: SocketAddr,
    /// The reply's response code; `None` when no reply came.
    pub rcode: Option<ResponseCode>,
    pub outcome: Outcome,
    /// The reply's records: answer, authority and additional sections in order.
    pub records: Vec<Record>,
    pub size: usize,
    pub elapsed: Duration,
    /// How deep in nameserver-name resolution this step was (0: the question itself).
    pub depth: usize,
}

/// The result of a resolution: a response message for the original question, and the steps.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub reply: Message,
    pub steps: Vec<Step>,
}

/// Nameservers of a zone: their names and the addresses known for them (none: look them up).
pub type Servers = Vec<(Name, Vec<IpAddr>)>;

/// Delegations learnt from earlier referrals, so that a resolver starts from the closest zone
/// it knows instead of the root every time. The store decides how long entries live (it gets
/// the NS records' TTL) and keeps the clock; the walk only asks and tells.
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

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `name`/`qtype` (class IN, RD clear) to `server`, then [`Walk::feed`] what came.
    Ask {
        server: SocketAddr,
        name: Name,
        qtype: RecordType,
    },
    /// The walk is over: the reply for the original question, or why there is none.
    Done(Result<Message, ResolveError>),
}

/// The resolution of one name (the question itself, or a nameserver's address) in progress.
#[derive(Debug)]
struct Frame {
    /// The question this frame answers.
    qname: Name,
    qtype: RecordType,
    depth: usize,
    /// CNAME records followed so far, and the names seen (lower case) to catch loops.
    chain: Vec<Record>,
    seen: Vec<Name>,
    /// The name asked now: `qname` or the last CNAME's target.
    name: Name,
    /// The zone whose servers are being asked, and those servers.
    zone: Name,
    servers: Servers,
    /// True when `zone` came from the delegation memory: if all its servers fail, the walk
    /// starts again from the root hints instead of giving up.
    remembered: bool,
    /// The server being tried, and the next of its addresses to ask.
    server: usize,
    ip: usize,
    /// True once the current server's addresses were looked up (glue-less nameserver).
    looked_up: bool,
    /// Why the last server failed, for the error if all do.
    last: String,
}

impl Frame {
    fn new(qname: Name, qtype: RecordType, depth: usize, start: (Name, Servers, bool)) -> Self {
        let (zone, servers, remembered) = start;
        Self {
            seen: vec![qname.to_lowercase()],
            name: qname.clone(),
            qname,
            qtype,
            depth,
            chain: Vec::new(),
            zone,
            servers,
            remembered,
            server: 0,
            ip: 0,
            looked_up: false,
            last: String::from("no addresses"),
        }
    }

    /// Moves on to the servers of `zone`.
    fn enter(&mut self, zone: Name, servers: Servers, remembered: bool) {
        self.zone = zone;
        self.servers = servers;
        self.remembered = remembered;
        self.server = 0;
        self.ip = 0;
        self.looked_up = false;
    }

    /// Gives up on the current server, noting why.
    fn skip_server(&mut self, why: String) {
        self.last = why;
        self.server += 1;
        self.ip = 0;
        self.looked_up = false;
    }
}

/// The question in flight.
#[derive(Debug)]
struct Asked {
    server: SocketAddr,
    server_name: Name,
}

/// One iterative resolution in progress: yields questions to send, is fed their replies, and
/// finishes with an answer. No I/O and no clock: the driver sends, waits and times out.
pub struct Walk<'a> {
    hints: &'a RootHints,
    config: IterConfig,
    delegations: &'a dyn Delegations,
    /// The question itself at the bottom, nested nameserver lookups above it.
    frames: Vec<Frame>,
    queries: usize,
    steps: Vec<Step>,
    asked: Option<Asked>,
    done: Option<Result<Message, ResolveError>>,
}

impl std::fmt::Debug for Walk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walk")
            .field("frames", &self.frames)
            .field("queries", &self.queries)
            .field("steps", &self.steps.len())
            .field("done", &self.done.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Walk<'a> {
    /// A walk for `name`/`qtype`, starting from the closest zone `delegations` knows (the root
    /// hints when it knows none) and teaching it the referrals followed.
    pub fn new(
        hints: &'a RootHints,
        config: IterConfig,
        delegations: &'a dyn Delegations,
        name: Name,
        qtype: RecordType,
    ) -> Self {
        let mut walk = Self {
            hints,
            config,
            delegations,
            frames: Vec::new(),
            queries: 0,
            steps: Vec::new(),
            asked: None,
            done: None,
        };
        if hints.servers.is_empty() {
            walk.done = Some(Err(ResolveError::NoHints));
        } else {
            let start = walk.start_of(&name);
            walk.frames.push(Frame::new(name, qtype, 0, start));
        }
        walk
    }

    /// The steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The steps, once the walk is over.
    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }

    /// Queries asked so far, nameserver lookups included.
    pub fn queries(&self) -> usize {
        self.queries
    }

    fn start_of(&self, name: &Name) -> (Name, Servers, bool) {
        match self.delegations.closest(name) {
            Some((zone, servers)) => (zone, servers, true),
            None => (Name::root(), self.hints.servers.clone(), false),
        }
    }

    /// What to do next. While a question is in flight (asked, not yet fed), it is asked again.
    pub fn action(&mut self) -> Action {
        loop {
            if let Some(done) = &self.done {
                return Action::Done(done.clone());
            }
            let hints = self.hints;
            let (max_queries, max_depth, port) = (
                self.config.max_queries,
                self.config.max_depth,
                self.config.port,
            );
            let Some(f) = self.frames.last_mut() else {
                // Not reachable: the last frame's end sets `done`.
                self.done = Some(Err(ResolveError::NoHints));
                continue;
            };
            if let Some(a) = &self.asked {
                return Action::Ask {
                    server: a.server,
                    name: f.name.clone(),
                    qtype: f.qtype,
                };
            }
            let Some((ns_name, ips)) = f.servers.get(f.server) else {
                if f.remembered {
                    // The remembered servers failed: they may have moved. Start over.
                    f.enter(Name::root(), hints.servers.clone(), false);
                    continue;
                }
                let e = ResolveError::NoServer {
                    zone: f.zone.to_string(),
                    name: f.name.to_string(),
                    last: f.last.clone(),
                };
                self.end_frame(Err(e));
                continue;
            };
            if ips.is_empty() && !f.looked_up {
                // A nameserver without glue: find its address first, in a nested walk.
                f.looked_up = true;
                let ns_name = ns_name.clone();
                let depth = f.depth + 1;
                if depth > max_depth {
                    f.skip_server(format!("{ns_name}: {}", ResolveError::Depth(max_depth)));
                    continue;
                }
                let start = self.start_of(&ns_name);
                self.frames
                    .push(Frame::new(ns_name, RecordType::A, depth, start));
                continue;
            }
            let Some(&ip) = ips.get(f.ip) else {
                f.server += 1;
                f.ip = 0;
                f.looked_up = false;
                continue;
            };
            if self.queries >= max_queries {
                self.done = Some(Err(ResolveError::Budget(self.queries)));
                continue;
            }
            self.queries += 1;
            f.ip += 1;
            let server = SocketAddr::new(ip, port);
            self.asked = Some(Asked {
                server,
                server_name: ns_name.clone(),
            });
            return Action::Ask {
                server,
                name: f.name.clone(),
                qtype: f.qtype,
            };
        }
    }

    /// Hands over what came of the question last asked. Without a question in flight it is
    /// ignored.
    pub fn feed(&mut self, reply: Reply) {
        let Some(asked) = self.asked.take() else {
            return;
        };
        let Some(f) = self.frames.last_mut() else {
            return;
        };
        let mut step = Step {
            zone: f.zone.clone(),
            qname: f.name.clone(),
            qtype: f.qtype,
            server_name: asked.server_name,
            server: asked.server,
            rcode: None,
            outcome: Outcome::Timeout,
            records: Vec::new(),
            size: 0,
            elapsed: Duration::ZERO,
            depth: f.depth,
        };
        let a = match reply {
            Reply::Timeout => {
                f.last = format!("{}: no reply within the timeout", asked.server);
                self.steps.push(step);
                return;
            }
            Reply::Failed(why) => {
                f.last = format!("{}: {why}", asked.server);
                step.outcome = Outcome::Failed(why);
                self.steps.push(step);
                return;
            }
            Reply::Answer(a) => a,
        };
        step.size = a.size;
        step.elapsed = a.elapsed;
        step.rcode = Some(a.reply.metadata.response_code);
        step.records = a
            .reply
            .answers
            .iter()
            .chain(&a.reply.authorities)
            .chain(&a.reply.additionals)
            .cloned()
            .collect();
        let c = classify(&a.reply, &f.zone, &f.name, f.qtype);
        step.outcome = match &c {
            Classified::Final => Outcome::Answer,
            Classified::Cname(..) => Outcome::Cname,
            Classified::Referral(..) => Outcome::Referral,
            Classified::Lame(why) => Outcome::Lame(why.clone()),
        };
        self.steps.push(step);
        match c {
            Classified::Lame(why) => f.last = format!("{}: {why}", asked.server),
            Classified::Final => {
                let mut out = response_for(&f.qname, f.qtype, &a.reply);
                let mut answers = std::mem::take(&mut f.chain);
                answers.extend(a.reply.answers);
                out.answers = answers;
                self.end_frame(Ok(out));
            }
            Classified::Cname(target, records) => {
                f.chain.extend(records);
                // The same reply may already hold the target's records.
                let rest: Vec<Record> = a
                    .reply
                    .answers
                    .iter()
                    .filter(|r| r.name == target && r.record_type() == f.qtype)
                    .cloned()
                    .collect();
                if !rest.is_empty() {
                    let mut out = response_for(&f.qname, f.qtype, &a.reply);
                    let mut answers = std::mem::take(&mut f.chain);
                    answers.extend(rest);
                    out.answers = answers;
                    self.end_frame(Ok(out));
                    return;
                }
                let key = target.to_lowercase();
                if f.seen.contains(&key) {
                    self.end_frame(Err(ResolveError::CnameLoop(target.to_string())));
                    return;
                }
                if f.seen.len() > self.config.max_cname {
                    self.end_frame(Err(ResolveError::CnameLimit(self.config.max_cname)));
                    return;
                }
                f.seen.push(key);
                f.name = target.clone();
                let (zone, servers, remembered) = self.start_of(&target);
                if let Some(f) = self.frames.last_mut() {
                    f.enter(zone, servers, remembered);
                }
            }
            Classified::Referral(child, next, ttl) => {
                self.delegations.learn(&child, &next, ttl);
                let remembered = f.remembered;
                f.enter(child, next, remembered);
            }
        }
    }

    /// Ends the top frame: the whole walk when it is the last, or a nameserver lookup whose
    /// addresses (or failure) go to the frame below.
    fn end_frame(&mut self, result: Result<Message, ResolveError>) {
        let Some(child) = self.frames.pop() else {
            return;
        };
        let Some(parent) = self.frames.last_mut() else {
            self.done = Some(result);
            return;
        };
        match result {
            Ok(m) => {
                let ips = m
                    .answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        _ => None,
                    })
                    .collect();
                if let Some(entry) = parent.servers.get_mut(parent.server) {
                    entry.1 = ips;
                }
                parent.ip = 0;
            }
            Err(e @ ResolveError::Budget(_)) => self.done = Some(Err(e)),
            Err(e) => parent.skip_server(format!("{}: {e}", child.qname)),
        }
    }
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

/// Drives a [`Walk`] for `name`/`qtype` over `asker`, starting from the closest zone
/// `delegations` knows and teaching it the referrals followed. If the servers of a remembered
/// zone all fail, the walk starts again from the root.
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
    let mut walk = Walk::new(hints, config.clone(), delegations, name.clone(), qtype);
    loop {
        match walk.action() {
            Action::Ask {
                server,
                name,
                qtype,
            } => {
                let reply = asker.ask(server, &name, qtype).await;
                walk.feed(reply);
            }
            Action::Done(result) => {
                return result.map(|reply| Resolution {
                    reply,
                    steps: walk.into_steps(),
                });
            }
        }
    }
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
        async fn ask(&self, server: SocketAddr, name: &Name, qtype: RecordType) -> Reply {
            let Some(cat) = self.0.get(&server.ip()) else {
                return Reply::Timeout;
            };
            let q = crate::wire::build_query(1, name, qtype, false, false);
            let reply = cat.respond(&q);
            Reply::Answer(Answer {
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
        let outcomes: Vec<_> = r.steps.iter().map(|s| s.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Referral, Outcome::Referral, Outcome::Answer]
        );
        assert_eq!(r.steps[2].zone.to_string(), "example.test.");
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
        assert_eq!(again.steps[0].zone.to_string(), "example.test.");
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
        assert_eq!(r.steps[0].outcome, Outcome::Timeout);
        assert_eq!(r.steps[1].zone, Name::root());
    }

    // The machine driven by hand: each test plays the servers with constructed replies.

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::from_rdata(
            n(name),
            300,
            RData::A(ip.parse::<std::net::Ipv4Addr>().unwrap().into()),
        )
    }

    fn ns(zone: &str, host: &str) -> Record {
        Record::from_rdata(
            n(zone),
            600,
            RData::NS(hickory_proto::rr::rdata::NS(n(host))),
        )
    }

    fn cname(name: &str, target: &str) -> Record {
        Record::from_rdata(
            n(name),
            300,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(n(target))),
        )
    }

    fn soa(zone: &str) -> Record {
        Record::from_rdata(
            n(zone),
            300,
            RData::SOA(hickory_proto::rr::rdata::SOA::new(
                n("ns1.test."),
                n("h.test."),
                1,
                2,
                3,
                4,
                60,
            )),
        )
    }

    /// A server's reply with these sections.
    fn reply(rcode: ResponseCode, an: Vec<Record>, ns: Vec<Record>, ar: Vec<Record>) -> Reply {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.answers = an;
        m.authorities = ns;
        m.additionals = ar;
        Reply::Answer(Answer {
            reply: m,
            size: 100,
            elapsed: Duration::from_millis(1),
        })
    }

    fn hints2() -> RootHints {
        RootHints::parse(". NS a.root.\n. NS b.root.\na.root. A 127.0.0.1\nb.root. A 127.0.0.2\n")
            .unwrap()
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 53)
    }

    /// Runs `walk` to its end, answering each question with `play`; returns the result and
    /// the questions asked.
    fn drive(
        walk: &mut Walk<'_>,
        mut play: impl FnMut(SocketAddr, &Name, RecordType) -> Reply,
    ) -> (Result<Message, ResolveError>, Vec<(SocketAddr, String)>) {
        let mut asked = Vec::new();
        for _ in 0..100 {
            match walk.action() {
                Action::Ask {
                    server,
                    name,
                    qtype,
                } => {
                    asked.push((server, format!("{name} {qtype}")));
                    let r = play(server, &name, qtype);
                    walk.feed(r);
                }
                Action::Done(r) => return (r, asked),
            }
        }
        panic!("the walk did not end: {asked:?}");
    }

    #[test]
    fn machine_follows_a_referral_with_glue() {
        let hints = hints2();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("www.example.test."),
            RecordType::A,
        );
        assert_eq!(
            w.action(),
            Action::Ask {
                server: at("127.0.0.1"),
                name: n("www.example.test."),
                qtype: RecordType::A
            }
        );
        // Asking again before feeding repeats the question instead of sending another.
        assert!(matches!(w.action(), Action::Ask { server, .. } if server == at("127.0.0.1")));
        w.feed(reply(
            ResponseCode::NoError,
            vec![],
            vec![ns("example.test.", "ns1.example.test.")],
            vec![a("ns1.example.test.", "10.0.0.3")],
        ));
        assert!(matches!(w.action(), Action::Ask { server, .. } if server == at("10.0.0.3")));
        w.feed(reply(
            ResponseCode::NoError,
            vec![a("www.example.test.", "192.0.2.1")],
            vec![],
            vec![],
        ));
        let Action::Done(Ok(m)) = w.action() else {
            panic!("done expected")
        };
        assert_eq!(m.answers, vec![a("www.example.test.", "192.0.2.1")]);
        assert_eq!(m.queries[0].name(), &n("www.example.test."));
        let steps = w.into_steps();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].outcome, Outcome::Referral);
        assert_eq!(steps[0].zone, Name::root());
        assert_eq!(steps[0].rcode, Some(ResponseCode::NoError));
        assert_eq!(steps[1].zone, n("example.test."));
        assert_eq!(steps[1].outcome, Outcome::Answer);
        assert_eq!(steps[1].records, vec![a("www.example.test.", "192.0.2.1")]);
    }

    #[test]
    fn machine_resolves_a_glueless_nameserver_and_ignores_out_of_bailiwick_glue() {
        let hints = hints2();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("www.example.test."),
            RecordType::A,
        );
        let (r, asked) = drive(&mut w, |server, name, _| {
            match (server.ip().to_string().as_str(), name.to_string().as_str()) {
                // The root: test. is at 10.0.0.2; elsewhere. at 10.0.0.9.
                ("127.0.0.1", "www.example.test.") => reply(
                    ResponseCode::NoError,
                    vec![],
                    vec![ns("test.", "ns1.test.")],
                    vec![a("ns1.test.", "10.0.0.2")],
                ),
                ("127.0.0.1", "ns.elsewhere.") => reply(
                    ResponseCode::NoError,
                    vec![],
                    vec![ns("elsewhere.", "ns.elsewhere.")],
                    vec![a("ns.elsewhere.", "10.0.0.9")],
                ),
                // test. refers to a server outside test., with glue it may not vouch for.
                ("10.0.0.2", _) => reply(
                    ResponseCode::NoError,
                    vec![],
                    vec![ns("example.test.", "ns.elsewhere.")],
                    vec![a("ns.elsewhere.", "6.6.6.6")],
                ),
                ("10.0.0.9", "ns.elsewhere.") => reply(
                    ResponseCode::NoError,
                    vec![a("ns.elsewhere.", "10.0.0.7")],
                    vec![],
                    vec![],
                ),
                ("10.0.0.7", "www.example.test.") => reply(
                    ResponseCode::NoError,
                    vec![a("www.example.test.", "192.0.2.1")],
                    vec![],
                    vec![],
                ),
                _ => Reply::Timeout,
            }
        });
        assert_eq!(
            r.unwrap().answers,
            vec![a("www.example.test.", "192.0.2.1")]
        );
        let servers: Vec<String> = asked.iter().map(|(s, _)| s.ip().to_string()).collect();
        assert_eq!(
            servers,
            ["127.0.0.1", "10.0.0.2", "127.0.0.1", "10.0.0.9", "10.0.0.7"]
        );
        let depths: Vec<usize> = w.steps().iter().map(|s| s.depth).collect();
        assert_eq!(depths, [0, 0, 1, 1, 0]);
    }

    #[test]
    fn machine_follows_a_cname_chain_into_another_zone() {
        let hints = hints2();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("alias.test."),
            RecordType::A,
        );
        let (r, asked) = drive(&mut w, |_, name, _| match name.to_string().as_str() {
            // One reply holds two links of the chain; the target is elsewhere.
            "alias.test." => reply(
                ResponseCode::NoError,
                vec![
                    cname("alias.test.", "mid.test."),
                    cname("mid.test.", "www.other."),
                ],
                vec![],
                vec![],
            ),
            "www.other." => reply(
                ResponseCode::NoError,
                vec![a("www.other.", "192.0.2.2")],
                vec![],
                vec![],
            ),
            _ => Reply::Timeout,
        });
        let m = r.unwrap();
        let types: Vec<_> = m.answers.iter().map(Record::record_type).collect();
        assert_eq!(types, [RecordType::CNAME, RecordType::CNAME, RecordType::A]);
        assert_eq!(m.queries[0].name(), &n("alias.test."));
        assert_eq!(asked.len(), 2);
        assert_eq!(w.steps()[0].outcome, Outcome::Cname);
    }

    #[test]
    fn machine_ends_on_nxdomain_with_the_soa() {
        let hints = hints2();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("nope.test."),
            RecordType::A,
        );
        let (r, _) = drive(&mut w, |_, _, _| {
            reply(
                ResponseCode::NXDomain,
                vec![],
                vec![soa("test."), ns("test.", "x.test.")],
                vec![],
            )
        });
        let m = r.unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // Only the SOA goes into the final reply's authority section.
        assert_eq!(m.authorities, vec![soa("test.")]);
        assert_eq!(w.steps()[0].rcode, Some(ResponseCode::NXDomain));
    }

    #[test]
    fn machine_skips_a_lame_server_then_a_silent_one() {
        let hints = RootHints::parse(
            ". NS a.root.\n. NS b.root.\n. NS c.root.\n\
             a.root. A 127.0.0.1\nb.root. A 127.0.0.2\nc.root. A 127.0.0.3\n",
        )
        .unwrap();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("www.test."),
            RecordType::A,
        );
        let (r, _) = drive(&mut w, |server, _, _| {
            match server.ip().to_string().as_str() {
                "127.0.0.1" => reply(ResponseCode::Refused, vec![], vec![], vec![]),
                "127.0.0.2" => Reply::Timeout,
                _ => reply(
                    ResponseCode::NoError,
                    vec![a("www.test.", "192.0.2.3")],
                    vec![],
                    vec![],
                ),
            }
        });
        assert_eq!(r.unwrap().answers.len(), 1);
        let outcomes: Vec<Outcome> = w.steps().iter().map(|s| s.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Lame("rcode REFUSED".into()),
                Outcome::Timeout,
                Outcome::Answer
            ]
        );
    }

    #[test]
    fn machine_reports_the_last_failure_when_every_server_fails() {
        let hints = hints2();
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("www.test."),
            RecordType::A,
        );
        let (r, asked) = drive(&mut w, |server, _, _| {
            match server.ip().to_string().as_str() {
                "127.0.0.1" => Reply::Timeout,
                // A referral sideways: to a zone that is not below the root... upwards to itself.
                _ => reply(
                    ResponseCode::NoError,
                    vec![],
                    vec![ns(".", "a.root.")],
                    vec![],
                ),
            }
        });
        assert_eq!(asked.len(), 2);
        let ResolveError::NoServer { zone, last, .. } = r.unwrap_err() else {
            panic!("NoServer expected")
        };
        assert_eq!(zone, ".");
        assert!(
            last.starts_with("127.0.0.2:53: referral to . does not lead closer"),
            "{last}"
        );
    }

    #[test]
    fn machine_bounds_cname_loops_chains_queries_and_depth() {
        let hints = hints2();
        // a -> b -> a: a loop.
        let mut w = Walk::new(
            &hints,
            IterConfig::default(),
            &NoDelegations,
            n("a.test."),
            RecordType::A,
        );
        let (r, _) = drive(&mut w, |_, name, _| {
            let to = if name == &n("a.test.") {
                "b.test."
            } else {
                "a.test."
            };
            reply(
                ResponseCode::NoError,
                vec![cname(&name.to_string(), to)],
                vec![],
                vec![],
            )
        });
        assert_eq!(r.unwrap_err(), ResolveError::CnameLoop("a.test.".into()));

        // c0 -> c1 -> c2 -> ...: a chain longer than max_cname.
        let config = IterConfig {
            max_cname: 3,
            ..IterConfig::default()
        };
        let mut w = Walk::new(&hints, config, &NoDelegations, n("c0.test."), RecordType::A);
        let (r, asked) = drive(&mut w, |_, name, _| {
            let i: usize = name.to_string()[1..]
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            reply(
                ResponseCode::NoError,
                vec![cname(&name.to_string(), &format!("c{}.test.", i + 1))],
                vec![],
                vec![],
            )
        });
        assert_eq!(r.unwrap_err(), ResolveError::CnameLimit(3));
        assert_eq!(asked.len(), 4);

        // Referrals one level deeper each time, without end: the query budget stops it.
        let config = IterConfig {
            max_queries: 5,
            ..IterConfig::default()
        };
        let mut w = Walk::new(
            &hints,
            config,
            &NoDelegations,
            n("a.b.c.d.e.f.g.h.test."),
            RecordType::A,
        );
        let mut level = 0;
        let (r, asked) = drive(&mut w, |_, _, _| {
            level += 1;
            let zone = n("a.b.c.d.e.f.g.h.test.").trim_to(level).to_string();
            let host = format!("ns.{zone}");
            reply(
                ResponseCode::NoError,
                vec![],
                vec![ns(&zone, &host)],
                vec![a(&host, &format!("10.0.1.{level}"))],
            )
        });
        assert_eq!(r.unwrap_err(), ResolveError::Budget(5));
        assert_eq!(asked.len(), 5);

        // Glue-less nameservers nested deeper than max_depth: that server is given up.
        let config = IterConfig {
            max_depth: 1,
            ..IterConfig::default()
        };
        let mut w = Walk::new(
            &hints,
            config,
            &NoDelegations,
            n("www.test."),
            RecordType::A,
        );
        let (r, asked) = drive(&mut w, |_, name, _| {
            // Every name's zone has its server named one level further down, without glue.
            let zone = name.trim_to(1).to_string();
            reply(
                ResponseCode::NoError,
                vec![],
                vec![ns(&zone, &format!("ns.{}", name))],
                vec![],
            )
        });
        let e = r.unwrap_err();
        assert!(matches!(e, ResolveError::NoServer { .. }), "{e}");
        assert!(e.to_string().contains("nested deeper than 1"), "{e}");
        assert!(asked.len() <= 4, "{asked:?}");
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
