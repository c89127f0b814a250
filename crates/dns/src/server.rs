//! The servers: the caching resolver (`dns serve`) and the lab zone server (`dns zone`), each
//! on UDP and TCP at the same port, through protolab-transport's runners.
//!
//! The resolver answers a cache hit from the UDP receive loop itself ([`UdpReply::Now`]): the
//! query's header and question are read in place, the stored reply copied and patched. Only a
//! miss becomes a task ([`UdpReply::Later`]) that asks upstream, stores the answer and replies.
//! Both servers answer bad input with FORMERR when it has a header to answer, drop it
//! otherwise, count it, and never let it reach other clients.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use tokio::net::{TcpListener, UdpSocket};

use protolab_transport::{
    CancellationToken, Conn, Next, TcpServerConfig, TcpServerStats, UdpReply, UdpServerConfig,
    UdpServerStats, bind_tcp, run_tcp, run_udp,
};

use crate::cache::{Cache, CacheStats};
use crate::client::{Client, ClientConfig, ClientCounters, ClientError, DotClient};
use crate::dot::{DotConfig, DotCounters, DotUpstream};
use crate::iterate::{self, Answer, Ask, Delegations, IterConfig, RootHints, Servers};
use crate::pool::{PoolConfig, PoolStats, SocketPool};
use crate::rrl::{RateLimiter, RrlConfig, RrlStats, Verdict};
use crate::wire::{self, OwnedQuery, QueryView, WireError, flags};
use crate::zone::Catalog;

/// The largest message over TCP.
const TCP_LIMIT: usize = 65_535;

/// Binds UDP and TCP on the same port: DNS clients retry a truncated UDP answer over TCP at
/// the address they asked, so the two must match even when port 0 lets the kernel choose.
///
/// # Errors
/// The bind error of either socket.
fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    // One worker socket: the resolver's UDP loop is one task; the caller names the address.
    let pair = protolab_transport::udp::bind_pair(addr, 1, 4 << 20, true).map_err(|e| e.source)?;
    let udp = pair
        .udp
        .into_iter()
        .next()
        .expect("bind_pair binds at least one socket");
    let tcp = pair.tcp.expect("bind_pair binds TCP when asked");
    Ok((protolab_transport::udp::into_tokio(udp)?, tcp))
}

/// A server's sockets, bound and not yet serving: UDP and TCP on one port, and DNS over TLS
/// on its own when asked for. Made by [`bind_resolver`] or [`bind_zone`], so that the caller
/// can announce the real addresses (port 0 picks one) before [`run_resolver`] or [`run_zone`].
#[derive(Debug)]
pub struct Bound {
    udp: UdpSocket,
    tcp: TcpListener,
    dot: Option<TcpListener>,
}

impl Bound {
    /// Each socket's protocol (`udp`, `tcp`, `tls`) and address, for the `listening` lines.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut v = Vec::with_capacity(3);
        if let Ok(a) = self.udp.local_addr() {
            v.push(("udp", a));
        }
        if let Ok(a) = self.tcp.local_addr() {
            v.push(("tcp", a));
        }
        if let Some(Ok(a)) = self.dot.as_ref().map(TcpListener::local_addr) {
            v.push(("tls", a));
        }
        v
    }
}

/// Why a server could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listening socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where the resolver gets answers it does not have.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// Forward the question, with RD set, to these recursive servers.
    Forward(Vec<SocketAddr>),
    /// Forward as [`Upstream::Forward`] does, over DNS over TLS (RFC 7858), on connections
    /// kept open and shared ([`DotUpstream`]).
    ForwardTls {
        servers: Vec<SocketAddr>,
        tls: DotClient,
    },
    /// Resolve iteratively from root hints.
    Iterate {
        hints: RootHints,
        config: IterConfig,
    },
}

/// Settings of the caching resolver.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// Clients allowed to ask; everyone else gets REFUSED.
    pub allow: Vec<IpNet>,
    /// Bytes the cache may account to its entries (see [`Cache::cost`]).
    pub cache_bytes: usize,
    /// How long to wait for each upstream server.
    pub timeout: Duration,
    pub seed: Option<u64>,
    /// Tasks receiving UDP at once (0: one per core).
    pub udp_workers: usize,
    /// Upstream queries in flight at once; a miss beyond it is answered SERVFAIL.
    pub max_pending: usize,
    /// TCP connections open at once from one client address.
    pub max_tcp_per_client: usize,
    /// DNS over TLS (RFC 7858) on a port of its own, the same messages as over TCP inside TLS.
    pub dot: Option<DotListen>,
}

/// Where and with which certificate DNS over TLS is served.
#[derive(Clone)]
pub struct DotListen {
    pub listen: SocketAddr,
    pub acceptor: protolab_transport::tls::TlsAcceptor,
}

impl std::fmt::Debug for DotListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotListen")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

counters! {
    /// Counters of the resolver.
    pub struct ResolverStats => ResolverCounts {
        pub queries,
        /// Datagrams and messages from sources outside the allow-list: dropped unread,
        /// unanswered.
        pub not_allowed,
        pub upstream_failures,
        /// Misses answered from an upstream query already in flight for the same question.
        pub merged,
        /// Misses answered SERVFAIL at once because `max_pending` upstream queries were in
        /// flight, or [`MAX_WAITERS`] misses were waiting for them.
        pub overloaded,
        pub refused,
        pub formerr,
        pub notimp,
        pub dropped,
    }
}

/// The resolver's own counters in the report.
///
/// Cache hits and misses are the cache's own counters ([`CacheStats`]), shown under both
/// `resolver` and `cache` in the report: one count, never two that could disagree.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ResolverCounters {
    #[serde(flatten)]
    pub counts: ResolverCounts,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub tcp: TcpCounters,
}

/// What the resolver counted, printed when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ResolverReport {
    pub resolver: ResolverCounters,
    pub cache: CacheStats,
    /// The client asking upstream over UDP and TCP.
    pub upstream_client: ClientCounters,
    /// The upstream UDP sockets.
    pub upstream_sockets: Option<PoolStats>,
    /// The DNS-over-TLS connections upstream, with `--forward-tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<DotCounters>,
}

/// Most zones whose delegations the resolver remembers.
const MAX_DELEGATIONS: usize = 10_000;

/// Delegations learnt from referrals, each until its NS records' TTL runs out (at most a day).
#[derive(Debug, Default)]
pub struct DelegationCache {
    zones: Mutex<std::collections::HashMap<Name, (Servers, Instant)>>,
}

impl Delegations for DelegationCache {
    fn closest(&self, name: &Name) -> Option<(Name, Servers)> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        (1..=name.num_labels()).rev().find_map(|n| {
            let zone = name.trim_to(usize::from(n)).to_lowercase();
            match zones.get(&zone) {
                Some((servers, until)) if *until > now => Some((zone, servers.clone())),
                _ => None,
            }
        })
    }

    fn learn(&self, zone: &Name, servers: &Servers, ttl: u32) {
        if ttl == 0 || servers.is_empty() {
            return;
        }
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if zones.len() >= MAX_DELEGATIONS {
            zones.retain(|_, (_, until)| *until > now);
            if zones.len() >= MAX_DELEGATIONS {
                return;
            }
        }
        let until = now + Duration::from_secs(u64::from(ttl.min(crate::cache::MAX_TTL)));
        zones.insert(zone.to_lowercase(), (servers.clone(), until));
    }
}

/// What an upstream query in flight ends with, for every query waiting on it: the upstream's
/// reply in wire form, or `None` when it failed.
type Outcome = Option<Arc<Vec<u8>>>;

/// The upstream queries in flight, by cache key (the question: name in lower case, type,
/// class). A miss for a question already asked waits for that query instead of sending its
/// own: one query per question means an off-path attacker racing forged replies has one id and
/// port to hit, not as many as there are clients asking (RFC 5452 section 5).
///
/// The channel to the waiters is made by the first miss that joins: most questions in flight
/// are asked by one client only, and they cost no channel.
type InFlight =
    Mutex<std::collections::HashMap<Vec<u8>, Option<tokio::sync::broadcast::Sender<Outcome>>>>;

/// The one query asking upstream for a question, holding one of the `--max-pending` slots.
/// Dropping it ends the flight: the key is removed, the slot freed and, if [`Flight::finish`]
/// was not called (the task was cancelled), the waiters see the channel closed and answer
/// SERVFAIL instead of waiting forever.
struct Flight {
    resolver: Arc<Resolver>,
    key: Vec<u8>,
    ended: bool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Flight {
    /// Ends the flight and hands `outcome` to every query that joined it.
    fn finish(mut self, outcome: Outcome) {
        if let Some(tx) = self.end() {
            // A receiver that went away is fine.
            let _ = tx.send(outcome);
        }
    }

    /// Removes the flight from the table, returning its waiters' channel if any joined.
    fn end(&mut self) -> Option<tokio::sync::broadcast::Sender<Outcome>> {
        self.ended = true;
        let mut map = self
            .resolver
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key).flatten()
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.ended {
            // Dropping the channel here tells the waiters the flight is over, empty-handed.
            self.end();
        }
    }
}

/// How a miss gets its answer.
enum Miss {
    /// Ask upstream: no query for this question is in flight.
    Lead(Flight),
    /// Wait for the query in flight, holding one of the [`MAX_WAITERS`] places.
    Join(
        tokio::sync::broadcast::Receiver<Outcome>,
        tokio::sync::OwnedSemaphorePermit,
    ),
}

/// Misses waiting at once for a query in flight for the same question. A waiter costs a task,
/// its datagram and a channel receiver (about 2 KiB all told); past this bound a miss is
/// answered SERVFAIL at once, like one beyond `--max-pending`.
pub const MAX_WAITERS: usize = 4_096;

/// The caching resolver's state, shared by every socket and task.
#[derive(Debug)]
pub struct Resolver {
    cache: Mutex<Cache>,
    inflight: InFlight,
    /// One permit per upstream query in flight: each holds a socket and a receive buffer.
    upstream_slots: Arc<tokio::sync::Semaphore>,
    /// One permit per miss waiting for a query in flight.
    waiting_slots: Arc<tokio::sync::Semaphore>,
    tcp_clients: TcpClients,
    delegations: DelegationCache,
    client: Client,
    /// The upstream TLS connections, with [`Upstream::ForwardTls`].
    dot: Option<DotUpstream>,
    upstream: Upstream,
    allow: Vec<IpNet>,
    pub stats: ResolverStats,
    pub tcp_stats: TcpStats,
}

/// What to do with one message.
enum Handled {
    Drop,
    Now(Vec<u8>),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>> + Send>>),
}

impl Ask for Client {
    async fn ask(&self, server: SocketAddr, name: &Name, qtype: RecordType) -> iterate::Reply {
        match self.query_one(server, name, qtype).await {
            Ok(x) => iterate::Reply::Answer(Answer {
                reply: x.reply,
                size: x.size,
                elapsed: x.elapsed,
            }),
            Err(ClientError::Timeout { .. }) => iterate::Reply::Timeout,
            Err(e) => iterate::Reply::Failed(e.to_string()),
        }
    }
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(config: &ResolverConfig) -> Self {
        let (rng, seed) = protolab_transport::rng::seeded(config.seed);
        tracing::debug!(seed, "resolver RNG");
        let client = Client::new(
            ClientConfig {
                tcp: false,
                edns: true,
                recursion_desired: !matches!(config.upstream, Upstream::Iterate { .. }),
                timeout: config.timeout,
                attempts: 1,
                tls: None,
            },
            rng,
        )
        .with_pool(SocketPool::new(PoolConfig::default()));
        let dot = match &config.upstream {
            Upstream::ForwardTls { tls, .. } => Some(DotUpstream::new(
                tls.clone(),
                DotConfig {
                    timeout: config.timeout,
                    ..DotConfig::default()
                },
                client.fork_rng(),
            )),
            _ => None,
        };
        Self {
            dot,
            cache: Mutex::new(Cache::new(config.cache_bytes)),
            inflight: Mutex::default(),
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(config.max_pending.max(1))),
            waiting_slots: Arc::new(tokio::sync::Semaphore::new(MAX_WAITERS)),
            tcp_clients: TcpClients::new(config.max_tcp_per_client),
            client,
            upstream: config.upstream.clone(),
            delegations: DelegationCache::default(),
            allow: config.allow.clone(),
            stats: ResolverStats::default(),
            tcp_stats: TcpStats::default(),
        }
    }

    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).stats()
    }

    /// All counters, for the report printed at shutdown.
    pub fn report(&self) -> ResolverReport {
        let cache = self.cache_stats();
        ResolverReport {
            resolver: ResolverCounters {
                counts: self.stats.counters(),
                cache_hits: cache.hits,
                cache_misses: cache.misses,
                tcp: self.tcp_stats.counters(),
            },
            cache,
            upstream_client: self.client.stats.counters(),
            upstream_sockets: self.client.pool().map(SocketPool::stats),
            upstream_tls: self.dot.as_ref().map(DotUpstream::counters),
        }
    }

    fn handle(self: &Arc<Self>, peer: SocketAddr, packet: &[u8], limit_udp: bool) -> Handled {
        // The source is checked before a byte is parsed, and an outsider hears nothing: not
        // even REFUSED or FORMERR, which would make this server a reflector for forged
        // sources and tell a scanner that a resolver is here.
        if !self.allow.iter().any(|n| n.contains(&peer.ip())) {
            self.stats.not_allowed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "client not allowed: dropped");
            return Handled::Drop;
        }
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let view = match wire::parse_query(packet) {
            Ok(v) => v,
            Err(e) => return self.malformed(peer, packet, e),
        };
        if view.opcode() != 0 {
            self.stats.notimp.fetch_add(1, Ordering::Relaxed);
            return Handled::Now(wire::bare_reply(&view, flags::RA, ResponseCode::NotImp));
        }
        // A resolver answers questions about the Internet class only and does not relay zone
        // transfers (IXFR 251, AXFR 252), which could pull whole zones through it.
        if view.qclass != 1 || view.qtype == 251 || view.qtype == 252 {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Handled::Now(wire::bare_reply(&view, flags::RA, ResponseCode::Refused));
        }
        if view.edns.is_some_and(|e| e.version > 0) {
            // BADVERS: its upper bits go in the OPT record (RFC 6891 section 6.1.3).
            return Handled::Now(wire::bare_reply(&view, flags::RA, ResponseCode::BADVERS));
        }
        let limit = if limit_udp {
            view.udp_limit()
        } else {
            TCP_LIMIT
        };
        let now = Instant::now();
        let hit = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(&view, now, limit);
        if let Some(reply) = hit {
            return Handled::Now(reply);
        }
        let key = view.cache_key();
        let miss = {
            use std::collections::hash_map::Entry;
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            // One hash of the key for both the look-up and the insertion.
            match map.entry(key.clone()) {
                Entry::Occupied(mut waiters) => {
                    let Ok(place) = self.waiting_slots.clone().try_acquire_owned() else {
                        return self.overloaded(peer, &view, "waiting misses");
                    };
                    self.stats.merged.fetch_add(1, Ordering::Relaxed);
                    let rx = match waiters.get_mut() {
                        Some(tx) => tx.subscribe(),
                        None => {
                            let (tx, rx) = tokio::sync::broadcast::channel(1);
                            *waiters.get_mut() = Some(tx);
                            rx
                        }
                    };
                    Miss::Join(rx, place)
                }
                Entry::Vacant(vacant) => {
                    let Ok(slot) = self.upstream_slots.clone().try_acquire_owned() else {
                        return self.overloaded(peer, &view, "--max-pending upstream queries");
                    };
                    vacant.insert(None);
                    Miss::Lead(Flight {
                        resolver: self.clone(),
                        key,
                        ended: false,
                        _slot: slot,
                    })
                }
            }
        };
        // The question goes on as read here: the miss path parses nothing again.
        let query = view.to_owned_query();
        let this = self.clone();
        Handled::Later(Box::pin(async move {
            this.resolve_miss(miss, query, limit).await
        }))
    }

    /// SERVFAIL at once for a miss over a bound: answering costs nothing, while queueing would
    /// hold memory for a reply that could only come late.
    fn overloaded(&self, peer: SocketAddr, view: &QueryView<'_>, what: &str) -> Handled {
        self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%peer, "{what} at their bound: SERVFAIL");
        Handled::Now(wire::bare_reply(view, flags::RA, ResponseCode::ServFail))
    }

    fn malformed(&self, peer: SocketAddr, packet: &[u8], e: WireError) -> Handled {
        tracing::debug!(%peer, error = %e, len = packet.len(), "malformed query");
        match wire::formerr_header(packet) {
            Some(r) if e != WireError::NotAQuery => {
                self.stats.formerr.fetch_add(1, Ordering::Relaxed);
                Handled::Now(r)
            }
            _ => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Handled::Drop
            }
        }
    }

    async fn resolve_miss(
        self: Arc<Self>,
        miss: Miss,
        query: OwnedQuery,
        limit: usize,
    ) -> Option<Vec<u8>> {
        let view = query.view();
        let outcome = match miss {
            Miss::Join(mut rx, _place) => rx.recv().await.ok().flatten(),
            Miss::Lead(flight) => {
                // Boxed: the upstream exchange's state is large, and without the box every
                // waiter's task would be sized for it too.
                let outcome = Box::pin(self.ask_upstream(&query)).await.map(Arc::new);
                if let Some(reply) = &outcome {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    cache.insert_wire(flight.key.clone(), reply, Instant::now());
                }
                // Stored before the flight ends: a query arriving after it finds the cache.
                flight.finish(outcome.clone());
                outcome
            }
        };
        let Some(reply) = outcome else {
            return Some(wire::bare_reply(&view, flags::RA, ResponseCode::ServFail));
        };
        let stored =
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .peek(&view, Instant::now(), limit);
        if stored.is_some() {
            return stored;
        }
        // Not cacheable (SERVFAIL from upstream, TTL 0): answer from what came.
        Some(direct_reply(&query, &reply, limit))
    }

    /// Asks upstream the question of `query`; the reply in wire form, or `None` (counted,
    /// logged) when that failed.
    async fn ask_upstream(&self, query: &OwnedQuery) -> Option<Vec<u8>> {
        let qtype = RecordType::from(query.qtype);
        let reply = match &self.upstream {
            // The client's question bytes go upstream as they came, and the reply's bytes come
            // back checked by accept() but not decoded: the cache takes them as they are.
            Upstream::Forward(servers) => self
                .client
                .query_question_wire(servers, &query.question)
                .await
                .map(|x| x.bytes)
                .map_err(|e| e.to_string()),
            Upstream::ForwardTls { servers, .. } => match &self.dot {
                Some(dot) => dot
                    .query(servers, &query.question)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("no DNS-over-TLS connections".into()),
            },
            Upstream::Iterate { hints, config } => match query.name() {
                Some(name) => iterate::resolve_with(
                    &self.client,
                    hints,
                    config,
                    &self.delegations,
                    &name,
                    qtype,
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.reply.to_vec().map_err(|e| e.to_string())),
                None => Err("the question's name does not decode".into()),
            },
        };
        match reply {
            Ok(r) => Some(r),
            Err(e) => {
                self.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(name = ?query.name(), %qtype, error = %e, "upstream failed: SERVFAIL");
                None
            }
        }
    }
}

/// A reply to `query` carrying an upstream reply's sections, for a reply the cache did not
/// take (SERVFAIL, TTL 0): the only place a miss decodes the upstream's reply. The query's
/// header facts come from its owned form.
fn direct_reply(query: &OwnedQuery, upstream: &[u8], limit: usize) -> Vec<u8> {
    let view = query.view();
    let (Some(name), Ok(upstream)) = (query.name(), Message::from_vec(upstream)) else {
        return wire::bare_reply(&view, flags::RA, ResponseCode::ServFail);
    };
    let mut m = Message::new(
        query.id,
        MessageType::Response,
        hickory_proto::op::OpCode::from_u8(view.opcode()),
    );
    m.metadata.recursion_desired = query.flags & flags::RD != 0;
    m.metadata.recursion_available = true;
    m.metadata.response_code = upstream.metadata.response_code;
    let mut q = hickory_proto::op::Query::query(name, RecordType::from(query.qtype));
    q.set_query_class(hickory_proto::rr::DNSClass::from(query.qclass));
    m.add_query(q);
    m.answers = upstream.answers.clone();
    m.authorities = upstream.authorities.clone();
    m.additionals = upstream.additionals.clone();
    if query.edns.is_some() {
        let mut e = hickory_proto::op::Edns::new();
        e.set_max_payload(wire::EDNS_PAYLOAD);
        m.set_edns(e);
    }
    wire::encode_limited(&m, limit)
        .unwrap_or_else(|_| wire::bare_reply(&view, flags::RA, ResponseCode::ServFail))
}

fn to_udp_reply(h: Handled) -> UdpReply {
    match h {
        Handled::Drop => UdpReply::None,
        Handled::Now(v) => UdpReply::Now(Bytes::from(v)),
        Handled::Later(f) => UdpReply::Later(Box::pin(async move { f.await.map(Bytes::from) })),
    }
}

/// How long a whole message may take to arrive over TCP, counted from its first byte, or from
/// the connection's start for the first message. A client that stalls inside a message (or
/// connects and says nothing) holds a connection for this long, not for the idle timeout.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(2);

counters! {
    /// Counters of DNS over TCP, beside the transport's own.
    pub struct TcpStats => TcpCounters {
        /// Connections closed at once because their client already had `max_per_client` open.
        pub over_client_cap,
        /// Connections closed because a message did not arrive whole within its deadline.
        pub message_timeouts,
        /// Connections closed for a zero-length message.
        pub bad_frames,
        /// DNS-over-TLS handshakes that failed or timed out.
        pub tls_handshake_failures,
    }
}

/// Open TCP connections per client address, so that one client cannot take every connection
/// the server allows. The table holds only addresses with a connection open: it is bounded by
/// the server's connection cap.
#[derive(Debug)]
pub struct TcpClients {
    open: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max_per_client: usize,
}

/// One client's connection slot; dropping it frees the slot.
pub struct TcpSlot<'a> {
    clients: &'a TcpClients,
    ip: std::net::IpAddr,
}

impl TcpClients {
    /// A table allowing `max_per_client` connections per address (at least one).
    pub fn new(max_per_client: usize) -> Self {
        Self {
            open: Mutex::default(),
            max_per_client: max_per_client.max(1),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when it has its share open already.
    pub fn admit(&self, ip: std::net::IpAddr) -> Option<TcpSlot<'_>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        Some(TcpSlot { clients: self, ip })
    }
}

impl Drop for TcpSlot<'_> {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Reads the next length-prefixed message into `buf` (which keeps what follows it), or `None`
/// when the connection should close. Between messages the transport's idle timeout applies;
/// once a message has begun (or, for the first message, once the connection is open) it must
/// arrive whole within [`MESSAGE_DEADLINE`].
async fn read_message<R>(
    read: &mut R,
    buf: &mut BytesMut,
    conn: &Conn,
    first: bool,
    stats: &TcpStats,
) -> Option<BytesMut>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut deadline = first.then(|| tokio::time::Instant::now() + MESSAGE_DEADLINE);
    loop {
        if buf.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if len == 0 {
                stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("zero-length TCP message: closing");
                return None;
            }
            if buf.len() >= 2 + len {
                let mut frame = buf.split_to(2 + len);
                let _ = frame.split_to(2);
                return Some(frame);
            }
            buf.reserve(2 + len - buf.len());
        } else {
            buf.reserve(2);
        }
        if !buf.is_empty() && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + MESSAGE_DEADLINE);
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, conn.read_buf(read, buf)).await {
                Ok(next) => next,
                Err(_) => {
                    stats.message_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("TCP message not whole within its deadline: closing");
                    return None;
                }
            },
            None => conn.read_buf(read, buf).await,
        };
        match next {
            Next::Item(Ok(_)) => {}
            Next::Item(Err(e)) => {
                tracing::debug!(error = %e, "TCP read: closing");
                return None;
            }
            Next::Eof | Next::IdleTimeout | Next::Closing => return None,
        }
    }
}

/// Serves DNS messages over one TCP connection: length-prefixed queries in, replies out, in
/// order, until the client closes, idles out, stalls inside a message, or the server shuts
/// down. A client with `max_per_client` connections open already is closed at once.
async fn serve_tcp_conn<S, F>(
    stream: S,
    conn: Conn,
    clients: &TcpClients,
    stats: &TcpStats,
    handle: F,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    F: Fn(SocketAddr, &[u8]) -> Handled,
{
    let Some(_slot) = clients.admit(conn.peer.ip()) else {
        stats.over_client_cap.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %conn.peer, "over --max-tcp-per-client: closing");
        return;
    };
    let (mut read, mut write) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(512);
    let mut first = true;
    loop {
        let Some(frame) = read_message(&mut read, &mut buf, &conn, first, stats).await else {
            return;
        };
        first = false;
        let reply = match handle(conn.peer, &frame) {
            Handled::Drop => continue,
            Handled::Now(r) => r,
            Handled::Later(f) => match f.await {
                Some(r) => r,
                None => continue,
            },
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&(reply.len().min(TCP_LIMIT) as u16).to_be_bytes());
        out.extend_from_slice(&reply[..reply.len().min(TCP_LIMIT)]);
        if conn.write_all(&mut write, &out).await.is_err() {
            return;
        }
    }
}

/// Connections either server keeps open at once. With the resolver's 256 upstream queries in
/// flight and the process's own descriptors this stays under the usual limit of 1,024.
const TCP_MAX_CONNECTIONS: usize = 512;

fn tcp_config() -> TcpServerConfig {
    TcpServerConfig {
        max_connections: TCP_MAX_CONNECTIONS,
        // RFC 7766 section 6.2.3 suggests seconds, not minutes, for idle DNS connections.
        idle_timeout: Some(Duration::from_secs(10)),
        drain_timeout: Duration::from_secs(2),
        ..TcpServerConfig::default()
    }
}

/// Binds the resolver's sockets: UDP and TCP on `config.listen`, and the DNS-over-TLS port
/// when `config.dot` asks for one.
///
/// # Errors
/// Binding any of the sockets.
pub fn bind_resolver(config: &ResolverConfig) -> io::Result<Bound> {
    let (udp, tcp) = bind_pair(config.listen)?;
    let dot = match &config.dot {
        Some(d) => Some(bind_tcp(d.listen)?),
        None => None,
    };
    Ok(Bound { udp, tcp, dot })
}

/// Runs the caching resolver on `bound` until `shutdown` fires and its connections have
/// drained; returns what it counted. Prints nothing.
///
/// # Errors
/// A listening socket's failure.
pub async fn run_resolver(
    bound: Bound,
    config: ResolverConfig,
    shutdown: CancellationToken,
) -> Result<ResolverReport, ServeError> {
    let Bound { udp, tcp, dot } = bound;
    let dot = match (dot, &config.dot) {
        (Some(listener), Some(d)) => Some((listener, d.acceptor.clone())),
        _ => None,
    };
    let resolver = Arc::new(Resolver::new(&config));
    let dot_task = {
        let resolver = resolver.clone();
        let shutdown = shutdown.clone();
        async move {
            let Some((listener, acceptor)) = dot else {
                return Ok(());
            };
            run_tcp(
                listener,
                tcp_config(),
                shutdown,
                Arc::new(TcpServerStats::default()),
                move |stream, conn| {
                    let r = resolver.clone();
                    let acceptor = acceptor.clone();
                    async move {
                        // The same message loop as plain TCP, inside TLS (RFC 7858 section 3.3).
                        let stream =
                            match protolab_transport::tls::accept(&acceptor, stream, &conn).await {
                                Ok(s) => s,
                                Err(e) => {
                                    r.tcp_stats
                                        .tls_handshake_failures
                                        .fetch_add(1, Ordering::Relaxed);
                                    tracing::debug!(
                                        error = %protolab_transport::tls::describe_error(&e),
                                        "DoT handshake failed"
                                    );
                                    return;
                                }
                            };
                        let h = r.clone();
                        serve_tcp_conn(
                            stream,
                            conn,
                            &r.tcp_clients,
                            &r.tcp_stats,
                            move |peer, pkt| h.handle(peer, pkt, false),
                        )
                        .await;
                    }
                },
            )
            .await
        }
    };
    let r_udp = resolver.clone();
    let mut udp_config = UdpServerConfig::default();
    if config.udp_workers > 0 {
        udp_config.workers = config.udp_workers;
    }
    let udp_task = run_udp(
        udp,
        udp_config,
        shutdown.clone(),
        Arc::new(UdpServerStats::default()),
        move |peer, pkt| to_udp_reply(r_udp.handle(peer, pkt, true)),
    );
    let r_tcp = resolver.clone();
    let tcp_task = run_tcp(
        tcp,
        tcp_config(),
        shutdown,
        Arc::new(TcpServerStats::default()),
        move |stream, conn| {
            let r = r_tcp.clone();
            async move {
                let h = r.clone();
                serve_tcp_conn(
                    stream,
                    conn,
                    &r.tcp_clients,
                    &r.tcp_stats,
                    move |peer, pkt| h.handle(peer, pkt, false),
                )
                .await;
            }
        },
    );
    let (u, t, d) = tokio::join!(udp_task, tcp_task, dot_task);
    u?;
    t?;
    d?;
    Ok(resolver.report())
}

counters! {
    /// Counters of the lab zone server.
    pub struct ZoneServerStats => ZoneCounts {
        pub queries,
        pub formerr,
        pub dropped,
        pub truncated,
    }
}

/// What the zone server counted, printed when it stops.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ZoneReport {
    #[serde(flatten)]
    pub counts: ZoneCounts,
    pub tcp: TcpCounters,
    pub rrl: RrlStats,
}

/// The lab authoritative server's state.
#[derive(Debug)]
pub struct ZoneServer {
    catalog: Catalog,
    tcp_clients: TcpClients,
    rrl: Mutex<RateLimiter>,
    pub stats: ZoneServerStats,
    pub tcp_stats: TcpStats,
}

/// Settings of the lab zone server.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub listen: SocketAddr,
    /// TCP connections open at once from one client address.
    pub max_tcp_per_client: usize,
    /// Response rate limiting of UDP replies (`rate` 0: off).
    pub rrl: RrlConfig,
    /// Seed for the rate limiter's table (random when absent).
    pub seed: Option<u64>,
    /// The zones served.
    pub catalog: Catalog,
}

impl ZoneServer {
    /// A server for `catalog`.
    pub fn new(catalog: Catalog, config: &ZoneConfig) -> Self {
        use rand::Rng;
        let (mut rng, _) = protolab_transport::rng::seeded(config.seed);
        Self {
            catalog,
            tcp_clients: TcpClients::new(config.max_tcp_per_client),
            rrl: Mutex::new(RateLimiter::new(config.rrl, rng.random(), Instant::now())),
            stats: ZoneServerStats::default(),
            tcp_stats: TcpStats::default(),
        }
    }

    /// The rate limiter's counters.
    pub fn rrl_stats(&self) -> RrlStats {
        self.rrl.lock().unwrap_or_else(|e| e.into_inner()).stats()
    }

    /// All counters, for the report printed at shutdown.
    pub fn report(&self) -> ZoneReport {
        ZoneReport {
            counts: self.stats.counters(),
            tcp: self.tcp_stats.counters(),
            rrl: self.rrl_stats(),
        }
    }

    /// Answers one UDP datagram from `peer`, through the rate limiter: over the limit the
    /// reply is dropped or, every `slip`-th time, replaced by a truncated one.
    pub fn answer_udp(&self, peer: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
        let reply = self.answer(packet, true)?;
        let verdict = self
            .rrl
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(peer.ip(), Instant::now());
        match verdict {
            Verdict::Send => Some(reply),
            Verdict::Drop => None,
            // The truncated reply: header and question, TC set, no records; never larger than
            // the query. A message without a question to echo is simply dropped.
            Verdict::Slip => wire::parse_query(packet)
                .ok()
                .map(|view| wire::bare_reply(&view, flags::AA | flags::TC, ResponseCode::NoError)),
        }
    }

    /// Answers one message; `None` means no reply is due.
    pub fn answer(&self, packet: &[u8], limit_udp: bool) -> Option<Vec<u8>> {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let view = match wire::parse_query(packet) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, len = packet.len(), "malformed query");
                return match wire::formerr_header(packet) {
                    Some(r) if e != WireError::NotAQuery => {
                        self.stats.formerr.fetch_add(1, Ordering::Relaxed);
                        Some(r)
                    }
                    _ => {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                };
            }
        };
        let Ok(query) = Message::from_vec(packet) else {
            self.stats.formerr.fetch_add(1, Ordering::Relaxed);
            return Some(wire::bare_reply(&view, 0, ResponseCode::FormErr));
        };
        let reply = self.catalog.respond(&query);
        let limit = if limit_udp {
            view.udp_limit()
        } else {
            TCP_LIMIT
        };
        match wire::encode_limited(&reply, limit) {
            Ok(bytes) => {
                if wire::is_truncated(&bytes) {
                    self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                }
                Some(bytes)
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot encode reply: SERVFAIL");
                Some(wire::bare_reply(&view, 0, ResponseCode::ServFail))
            }
        }
    }
}

/// Binds the zone server's UDP and TCP sockets on `config.listen`.
///
/// # Errors
/// Binding either socket.
pub fn bind_zone(config: &ZoneConfig) -> io::Result<Bound> {
    let (udp, tcp) = bind_pair(config.listen)?;
    Ok(Bound {
        udp,
        tcp,
        dot: None,
    })
}

/// Runs the lab zone server on `bound` until `shutdown` fires and its connections have
/// drained; returns what it counted. Prints nothing.
///
/// # Errors
/// A listening socket's failure.
pub async fn run_zone(
    bound: Bound,
    config: ZoneConfig,
    shutdown: CancellationToken,
) -> Result<ZoneReport, ServeError> {
    let Bound { udp, tcp, .. } = bound;
    let catalog = config.catalog.clone();
    let server = Arc::new(ZoneServer::new(catalog, &config));
    let s_udp = server.clone();
    let udp_task = run_udp(
        udp,
        UdpServerConfig::default(),
        shutdown.clone(),
        Arc::new(UdpServerStats::default()),
        move |peer, pkt| match s_udp.answer_udp(peer, pkt) {
            Some(r) => UdpReply::Now(Bytes::from(r)),
            None => UdpReply::None,
        },
    );
    let s_tcp = server.clone();
    let tcp_task = run_tcp(
        tcp,
        tcp_config(),
        shutdown,
        Arc::new(TcpServerStats::default()),
        move |stream, conn| {
            let s = s_tcp.clone();
            async move {
                let h = s.clone();
                serve_tcp_conn(
                    stream,
                    conn,
                    &s.tcp_clients,
                    &s.tcp_stats,
                    move |_peer, pkt| match h.answer(pkt, false) {
                        Some(r) => Handled::Now(r),
                        None => Handled::Drop,
                    },
                )
                .await;
            }
        },
    );
    let (u, t) = tokio::join!(udp_task, tcp_task);
    u?;
    t?;
    Ok(server.report())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Zone;

    fn server() -> ZoneServer {
        let z = Zone::parse(
            "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 h 1 2 3 4 60\n@ NS ns1\nns1 A 127.0.0.1\n",
            "z",
            None,
        )
        .unwrap();
        let config = ZoneConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_tcp_per_client: 16,
            rrl: RrlConfig { rate: 0, slip: 2 },
            seed: Some(1),
            catalog: Catalog::new(vec![z]),
        };
        ZoneServer::new(config.catalog.clone(), &config)
    }

    #[test]
    fn zone_server_survives_garbage() {
        let s = server();
        let q = wire::build_query(
            3,
            &Name::from_ascii("ns1.example.test.").unwrap(),
            RecordType::A,
            false,
            true,
        )
        .to_vec()
        .unwrap();
        let good = s.answer(&q, true).unwrap();
        assert_eq!(Message::from_vec(&good).unwrap().answers.len(), 1);
        // Every prefix, and every single-byte corruption, gives a reply or nothing: no panic.
        for n in 0..q.len() {
            let _ = s.answer(&q[..n], true);
        }
        for i in 0..q.len() {
            for b in [0x00, 0x3f, 0x40, 0xc0, 0xff] {
                let mut bad = q.clone();
                bad[i] = b;
                let _ = s.answer(&bad, true);
            }
        }
        assert!(s.stats.formerr.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn one_client_gets_its_share_of_tcp_slots() {
        let clients = TcpClients::new(2);
        let a: std::net::IpAddr = [127, 0, 0, 1].into();
        let b: std::net::IpAddr = [127, 0, 0, 2].into();
        let s1 = clients.admit(a).unwrap();
        let _s2 = clients.admit(a).unwrap();
        assert!(clients.admit(a).is_none());
        assert!(clients.admit(b).is_some());
        drop(s1);
        assert!(
            clients.admit(a).is_some(),
            "a closed connection frees its slot"
        );
        // Addresses with nothing open leave the table.
        assert_eq!(clients.open.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_must_arrive_whole_within_its_deadline() {
        use tokio::io::AsyncWriteExt;
        let stats = TcpStats::default();
        // Two pipelined messages in one write, then half a third that never ends.
        let (mut client, mut server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(10)));
        client
            .write_all(b"\x00\x03abc\x00\x02hi\x00\x05ab")
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let m1 = read_message(&mut server, &mut buf, &conn, true, &stats).await;
        assert_eq!(m1.as_deref(), Some(&b"abc"[..]));
        let m2 = read_message(&mut server, &mut buf, &conn, false, &stats).await;
        assert_eq!(m2.as_deref(), Some(&b"hi"[..]));
        let start = tokio::time::Instant::now();
        assert!(
            read_message(&mut server, &mut buf, &conn, false, &stats)
                .await
                .is_none()
        );
        assert_eq!(start.elapsed(), MESSAGE_DEADLINE);
        assert_eq!(stats.message_timeouts.load(Ordering::Relaxed), 1);

        // A connection that says nothing is closed after the deadline, not the idle timeout.
        let (_client, mut server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(10)));
        let start = tokio::time::Instant::now();
        let mut buf = BytesMut::new();
        assert!(
            read_message(&mut server, &mut buf, &conn, true, &stats)
                .await
                .is_none()
        );
        assert_eq!(start.elapsed(), MESSAGE_DEADLINE);

        // Between messages, the idle timeout applies.
        let (mut client, mut server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(10)));
        client.write_all(b"\x00\x01x").await.unwrap();
        let mut buf = BytesMut::new();
        assert!(
            read_message(&mut server, &mut buf, &conn, true, &stats)
                .await
                .is_some()
        );
        let start = tokio::time::Instant::now();
        assert!(
            read_message(&mut server, &mut buf, &conn, false, &stats)
                .await
                .is_none()
        );
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(stats.message_timeouts.load(Ordering::Relaxed), 2);

        // A zero-length message closes the connection.
        let (mut client, mut server, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(10)));
        client.write_all(b"\x00\x00").await.unwrap();
        let mut buf = BytesMut::new();
        assert!(
            read_message(&mut server, &mut buf, &conn, true, &stats)
                .await
                .is_none()
        );
        assert_eq!(stats.bad_frames.load(Ordering::Relaxed), 1);
    }

    /// One length-prefixed message read from `stream`.
    async fn read_frame<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let len = stream.read_u16().await.unwrap();
        let mut body = vec![0u8; usize::from(len)];
        stream.read_exact(&mut body).await.unwrap();
        body
    }

    fn framed(query: &[u8]) -> Vec<u8> {
        let mut v = (query.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(query);
        v
    }

    fn query_bytes(id: u16, name: &str) -> Vec<u8> {
        wire::build_query(
            id,
            &Name::from_ascii(name).unwrap(),
            RecordType::A,
            false,
            true,
        )
        .to_vec()
        .unwrap()
    }

    #[tokio::test]
    async fn tcp_handler_answers_pipelined_queries_in_order_over_a_memory_pair() {
        use tokio::io::AsyncWriteExt;
        let s = Arc::new(server());
        let (mut client, service, conn) =
            protolab_transport::memory::pair(Some(Duration::from_secs(10)));
        let h = s.clone();
        let task = tokio::spawn(async move {
            let s2 = h.clone();
            serve_tcp_conn(
                service,
                conn,
                &h.tcp_clients,
                &h.tcp_stats,
                move |_, pkt| match s2.answer(pkt, false) {
                    Some(r) => Handled::Now(r),
                    None => Handled::Drop,
                },
            )
            .await;
        });
        // Two queries and a message that is not a query, in one write.
        let mut bytes = framed(&query_bytes(7, "ns1.example.test."));
        bytes.extend(framed(&query_bytes(8, "nope.example.test.")));
        bytes.extend(framed(b"\x00\x09\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00"));
        bytes.extend(framed(&query_bytes(9, "example.test.")));
        client.write_all(&bytes).await.unwrap();
        let r1 = Message::from_vec(&read_frame(&mut client).await).unwrap();
        assert_eq!(r1.metadata.id, 7);
        assert_eq!(r1.answers.len(), 1);
        let r2 = Message::from_vec(&read_frame(&mut client).await).unwrap();
        assert_eq!(r2.metadata.id, 8);
        assert_eq!(r2.metadata.response_code, ResponseCode::NXDomain);
        // The response (QR set) got no reply; the next query did.
        let r3 = Message::from_vec(&read_frame(&mut client).await).unwrap();
        assert_eq!(r3.metadata.id, 9);
        assert_eq!(s.stats.dropped.load(Ordering::Relaxed), 1);
        // The client closes: the handler ends and frees its slot.
        drop(client);
        task.await.unwrap();
        assert!(s.tcp_clients.open.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn tcp_handler_closes_a_client_over_its_share_at_once() {
        let s = Arc::new(ZoneServer::new(
            Catalog::default(),
            &ZoneConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                max_tcp_per_client: 1,
                rrl: RrlConfig { rate: 0, slip: 2 },
                seed: Some(1),
                catalog: Catalog::default(),
            },
        ));
        let _held = s.tcp_clients.admit([127, 0, 0, 1].into()).unwrap();
        let (mut client, service, conn) = protolab_transport::memory::pair(None);
        serve_tcp_conn(service, conn, &s.tcp_clients, &s.tcp_stats, |_, _| {
            Handled::Now(vec![0; 12])
        })
        .await;
        let mut rest = Vec::new();
        use tokio::io::AsyncReadExt;
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing is read or written");
        assert_eq!(s.tcp_stats.over_client_cap.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn resolver_over_tcp_answers_refused_and_drops_outsiders_over_a_memory_pair() {
        use tokio::io::AsyncWriteExt;
        let config = |allow: &str| ResolverConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: Upstream::Forward(vec![SocketAddr::from(([127, 0, 0, 1], 9))]),
            allow: vec![allow.parse().unwrap()],
            cache_bytes: 1 << 20,
            timeout: Duration::from_millis(100),
            seed: Some(3),
            udp_workers: 1,
            max_pending: 4,
            max_tcp_per_client: 4,
            dot: None,
        };
        // A zone transfer is refused without asking upstream.
        let r = Arc::new(Resolver::new(&config("127.0.0.0/8")));
        let (mut client, service, conn) = protolab_transport::memory::pair(None);
        let h = r.clone();
        let task = tokio::spawn(async move {
            let h2 = h.clone();
            serve_tcp_conn(
                service,
                conn,
                &h.tcp_clients,
                &h.tcp_stats,
                move |peer, pkt| h2.handle(peer, pkt, false),
            )
            .await;
        });
        let axfr = wire::build_query(
            5,
            &Name::from_ascii("example.test.").unwrap(),
            RecordType::AXFR,
            true,
            false,
        )
        .to_vec()
        .unwrap();
        client.write_all(&framed(&axfr)).await.unwrap();
        let reply = Message::from_vec(&read_frame(&mut client).await).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        drop(client);
        task.await.unwrap();
        assert_eq!(r.stats.refused.load(Ordering::Relaxed), 1);
        assert_eq!(r.client.stats.queries_sent.load(Ordering::Relaxed), 0);

        // A client outside the allow-list hears nothing and the connection ends.
        let r = Arc::new(Resolver::new(&config("10.0.0.0/8")));
        let (mut client, service, conn) = protolab_transport::memory::pair(None);
        client.write_all(&framed(&axfr)).await.unwrap();
        client.shutdown().await.unwrap();
        let h = r.clone();
        serve_tcp_conn(
            service,
            conn,
            &r.tcp_clients,
            &r.tcp_stats,
            move |peer, pkt| h.handle(peer, pkt, false),
        )
        .await;
        let mut rest = Vec::new();
        use tokio::io::AsyncReadExt;
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(r.stats.not_allowed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn remembered_delegations_are_bounded() {
        let cache = DelegationCache::default();
        let servers: Servers = vec![(
            Name::from_ascii("ns.example.").unwrap(),
            vec![std::net::IpAddr::from([192, 0, 2, 1])],
        )];
        for i in 0..MAX_DELEGATIONS + 500 {
            let zone = Name::from_ascii(format!("z{i}.example.")).unwrap();
            cache.learn(&zone, &servers, 3600);
        }
        assert_eq!(cache.zones.lock().unwrap().len(), MAX_DELEGATIONS);
    }
}
