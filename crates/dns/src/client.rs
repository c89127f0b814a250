//! The stub client: one question to a list of servers, over UDP with a TCP fallback.
//!
//! Defences against forged replies (RFC 5452): every query gets a random 16-bit id and a socket
//! on a random source port (a fresh one, or for the resolver one from its [`SocketPool`]), and
//! a reply is believed only if [`accept`] says it comes from the server's address and port,
//! carries the id, and repeats the question. Anything else is dropped and counted, and the
//! client keeps waiting for the real reply until its timeout.
//!
//! The question travels in wire form: the resolver forwards the bytes its client asked, with
//! nothing decoded or encoded on the way out.
//!
//! Fallbacks: a reply with TC set is asked again over TCP (RFC 7766); FORMERR or NOTIMP to a
//! query with EDNS is asked again without it (RFC 6891 section 7); a timeout moves on to the
//! next server, and the whole list is tried `attempts` times.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use protolab_transport::rng::StdRng;

use crate::accept::{Expected, Verdict, accept};
use crate::pool::SocketPool;
use crate::wire;

/// Kernel buffer of each query's socket: room for a few replies (forged ones included)
/// while the real one is awaited, without 64 KiB of kernel memory per pending query.
const SOCKET_BUFFER: usize = 16 << 10;

/// Why a query got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no reply from {servers} within {timeout:?} after {attempts} attempt(s); check the server address and port, or raise --timeout"
    )]
    Timeout {
        servers: String,
        timeout: Duration,
        attempts: u32,
    },
    #[error("I/O error talking to {server}: {error}")]
    Io {
        server: SocketAddr,
        error: std::io::Error,
    },
    #[error("no servers to ask: give @SERVER or fix /etc/resolv.conf")]
    NoServers,
    #[error("cannot encode the query: {0}")]
    Encode(String),
    #[error("{server} sent a malformed reply over TCP: {error}")]
    Malformed { server: SocketAddr, error: String },
    #[error("TLS with {server} failed: {why}")]
    Tls { server: SocketAddr, why: String },
}

/// DNS over TLS (RFC 7858): the client's TLS settings.
#[derive(Clone)]
pub struct DotClient {
    pub connector: protolab_transport::tls::TlsConnector,
    /// The name the certificate must be valid for; `None` is the server's IP address.
    pub name: Option<String>,
}

impl std::fmt::Debug for DotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotClient")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A stream the TCP exchange runs over: plain TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How queries are sent.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Ask over TCP from the start.
    pub tcp: bool,
    /// Add an OPT record (EDNS0, payload 1232).
    pub edns: bool,
    /// Set RD: ask the server to recurse.
    pub recursion_desired: bool,
    /// How long to wait for each server.
    pub timeout: Duration,
    /// How many times the whole server list is tried.
    pub attempts: u32,
    /// Ask over DNS over TLS (implies TCP framing; port 853 by convention).
    pub tls: Option<DotClient>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            tcp: false,
            edns: true,
            recursion_desired: true,
            timeout: Duration::from_secs(2),
            attempts: 2,
            tls: None,
        }
    }
}

counters! {
    /// Counters of what the client saw and did, shared by every query it makes.
    pub struct ClientStats => ClientCounters {
        pub queries_sent,
        pub replies_accepted,
        /// Datagrams from an address or port other than the server asked.
        pub dropped_wrong_source,
        /// Replies whose id differs from the query's.
        pub dropped_wrong_id,
        /// Replies with the right id but another question.
        pub dropped_wrong_question,
        /// Datagrams that are not DNS messages at all.
        pub dropped_garbage,
        pub timeouts,
        pub tcp_retries,
        pub edns_fallbacks,
    }
}

impl ClientStats {
    /// A plain snapshot, for reports.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::to_value(self.counters()).unwrap_or_default()
    }

    /// Replies dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_wrong_source.load(Ordering::Relaxed)
            + self.dropped_wrong_id.load(Ordering::Relaxed)
            + self.dropped_wrong_question.load(Ordering::Relaxed)
            + self.dropped_garbage.load(Ordering::Relaxed)
    }
}

/// One successful exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub reply: Message,
    pub server: SocketAddr,
    /// Size of the reply in bytes.
    pub size: usize,
    pub elapsed: Duration,
    /// `udp`, `tcp` or `tls`: how the accepted reply came.
    pub transport: &'static str,
    /// True when a truncated UDP reply was followed by this TCP one.
    pub retried_over_tcp: bool,
}

/// One accepted reply in wire form, undecoded: for a resolver that stores and forwards bytes.
#[derive(Debug, Clone)]
pub struct WireExchange {
    pub bytes: Vec<u8>,
    pub server: SocketAddr,
    pub elapsed: Duration,
    /// `udp` or `tcp`: how the accepted reply came.
    pub transport: &'static str,
    /// True when a truncated UDP reply was followed by this TCP one.
    pub retried_over_tcp: bool,
}

/// An accepted reply, decoded when the caller wants a message.
struct Got {
    wire: WireExchange,
    reply: Option<Message>,
}

impl Got {
    fn into_exchange(self) -> Result<Exchange, ClientError> {
        let server = self.wire.server;
        let reply = match self.reply {
            Some(r) => r,
            None => Message::from_vec(&self.wire.bytes).map_err(|e| ClientError::Malformed {
                server,
                error: e.to_string(),
            })?,
        };
        Ok(Exchange {
            reply,
            server,
            size: self.wire.bytes.len(),
            elapsed: self.wire.elapsed,
            transport: self.wire.transport,
            retried_over_tcp: self.wire.retried_over_tcp,
        })
    }
}

/// A query sent over UDP, as its reply is checked against it.
#[derive(Clone, Copy)]
struct Sent<'a> {
    id: u16,
    question: &'a [u8],
    bytes: &'a [u8],
    edns: bool,
    decode: bool,
}

/// A stub client with its own RNG and counters.
#[derive(Debug)]
pub struct Client {
    pub config: ClientConfig,
    rng: Mutex<StdRng>,
    pub stats: ClientStats,
    /// Pre-bound upstream sockets (the resolver's); without it every query binds a fresh one.
    pool: Option<SocketPool>,
}

impl Client {
    /// A client drawing ids and ports from `rng`.
    pub fn new(config: ClientConfig, rng: StdRng) -> Self {
        Self {
            config,
            rng: Mutex::new(rng),
            stats: ClientStats::default(),
            pool: None,
        }
    }

    /// This client, taking its UDP sockets from `pool` instead of binding one per query.
    pub fn with_pool(mut self, pool: SocketPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The pool's counters, when it has one.
    pub fn pool(&self) -> Option<&SocketPool> {
        self.pool.as_ref()
    }

    /// Another client with `config`, its RNG seeded from this one's: a run started with
    /// `--seed` stays repeatable however many clients it makes.
    pub fn fork(&self, config: ClientConfig) -> Client {
        let seed = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        Client::new(config, protolab_transport::rng::seeded(Some(seed)).0)
    }

    /// A new RNG seeded from this client's, for another part of the same run.
    pub fn fork_rng(&self) -> StdRng {
        let seed = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
        protolab_transport::rng::seeded(Some(seed)).0
    }

    fn random_id(&self) -> u16 {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).random()
    }

    fn random_port(&self) -> u16 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(1024..=65_535)
    }

    /// Asks `servers` in turn about `name`/`qtype` until one gives an acceptable reply.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no server answered, or the last I/O error.
    pub async fn query(
        &self,
        servers: &[SocketAddr],
        name: &Name,
        qtype: RecordType,
    ) -> Result<Exchange, ClientError> {
        let question = question_of(name, qtype)?;
        self.query_question(servers, &question).await
    }

    /// Asks `servers` in turn the `question` (wire form: uncompressed name, QTYPE, QCLASS)
    /// until one gives an acceptable reply.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no server answered, or the last I/O error.
    pub async fn query_question(
        &self,
        servers: &[SocketAddr],
        question: &[u8],
    ) -> Result<Exchange, ClientError> {
        self.ask_list(servers, question, true)
            .await?
            .into_exchange()
    }

    /// As [`Client::query_question`], returning the accepted reply's bytes undecoded: the
    /// checks of [`accept`] have walked every record, nothing more is done.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no server answered, or the last I/O error.
    pub async fn query_question_wire(
        &self,
        servers: &[SocketAddr],
        question: &[u8],
    ) -> Result<WireExchange, ClientError> {
        Ok(self.ask_list(servers, question, false).await?.wire)
    }

    async fn ask_list(
        &self,
        servers: &[SocketAddr],
        question: &[u8],
        decode: bool,
    ) -> Result<Got, ClientError> {
        if servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let mut last = None;
        for _ in 0..self.config.attempts.max(1) {
            for &server in servers {
                match self.ask_one(server, question, decode).await {
                    Ok(x) => return Ok(x),
                    Err(e) => {
                        tracing::debug!(%server, error = %e, "query failed");
                        last = Some(e);
                    }
                }
            }
        }
        match last {
            Some(ClientError::Timeout { .. }) | None => Err(ClientError::Timeout {
                servers: servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                timeout: self.config.timeout,
                attempts: self.config.attempts.max(1),
            }),
            Some(e) => Err(e),
        }
    }

    /// One question to one server, with the TC and EDNS fallbacks.
    ///
    /// # Errors
    /// Timeout or I/O errors of this server.
    pub async fn query_one(
        &self,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Exchange, ClientError> {
        let question = question_of(name, qtype)?;
        self.ask_one(server, &question, true).await?.into_exchange()
    }

    async fn ask_one(
        &self,
        server: SocketAddr,
        question: &[u8],
        decode: bool,
    ) -> Result<Got, ClientError> {
        let mut edns = self.config.edns;
        loop {
            let x = if self.config.tcp || self.config.tls.is_some() {
                self.tcp_exchange(server, question, edns, decode).await?
            } else {
                let x = self.udp_exchange(server, question, edns, decode).await?;
                if wire::is_truncated(&x.wire.bytes) {
                    self.stats.tcp_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%server, "truncated reply: asking again over TCP");
                    let mut t = self.tcp_exchange(server, question, edns, decode).await?;
                    t.wire.retried_over_tcp = true;
                    t
                } else {
                    x
                }
            };
            let rcode = wire::header_rcode(&x.wire.bytes).unwrap_or(ResponseCode::NoError);
            if edns && (rcode == ResponseCode::FormErr || rcode == ResponseCode::NotImp) {
                self.stats.edns_fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%server, %rcode, "EDNS refused: asking again without it");
                edns = false;
                continue;
            }
            return Ok(x);
        }
    }

    /// A query for `question` with a fresh random id.
    fn encode(&self, question: &[u8], edns: bool) -> (u16, Vec<u8>) {
        let id = self.random_id();
        let bytes = wire::query_for_question(id, question, self.config.recursion_desired, edns);
        (id, bytes)
    }

    /// Counts a dropped datagram by the verdict that dropped it.
    fn count_drop(&self, v: Verdict, from: SocketAddr, server: SocketAddr) {
        let counter = match v {
            Verdict::Accept => return,
            Verdict::WrongSource => &self.stats.dropped_wrong_source,
            Verdict::Garbage => &self.stats.dropped_garbage,
            Verdict::WrongId => &self.stats.dropped_wrong_id,
            Verdict::WrongQuestion => &self.stats.dropped_wrong_question,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%from, expected = %server, verdict = ?v, "reply dropped");
    }

    fn bind_random(&self, server: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
        let ip = match server.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        // A port taken by another socket is simply skipped; after a few tries the kernel's
        // own (also randomised) choice is used.
        for _ in 0..8 {
            if let Ok(s) =
                protolab_transport::bind_udp(SocketAddr::new(ip, self.random_port()), SOCKET_BUFFER)
            {
                return Ok(s);
            }
        }
        protolab_transport::bind_udp(SocketAddr::new(ip, 0), SOCKET_BUFFER)
    }

    async fn udp_exchange(
        &self,
        server: SocketAddr,
        question: &[u8],
        edns: bool,
        decode: bool,
    ) -> Result<Got, ClientError> {
        let io = |error| ClientError::Io { server, error };
        let (id, bytes) = self.encode(question, edns);
        let mut pooled = match &self.pool {
            Some(pool) => Some(
                pool.take(
                    server,
                    |n| {
                        self.rng
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .random_range(0..n)
                    },
                    || self.random_port(),
                )
                .map_err(io)?,
            ),
            None => None,
        };
        let fresh = match pooled {
            Some(_) => None,
            None => Some(self.bind_random(server).map_err(io)?),
        };
        let result = {
            let socket = match (&pooled, &fresh) {
                (Some(p), _) => &p.socket,
                (None, Some(s)) => s,
                (None, None) => unreachable!("one of the two is set above"),
            };
            let sent = Sent {
                id,
                question,
                bytes: &bytes,
                edns,
                decode,
            };
            self.udp_wait(socket, pooled.is_some(), server, &sent).await
        };
        if let (Some(pool), Some(p)) = (&self.pool, pooled.take()) {
            match &result {
                Ok(_) => pool.give_back(p),
                Err(_) => pool.discard(p),
            }
        }
        result
    }

    /// Sends `bytes` on `socket` and waits for the reply [`accept`] takes.
    async fn udp_wait(
        &self,
        socket: &tokio::net::UdpSocket,
        connected: bool,
        server: SocketAddr,
        sent: &Sent<'_>,
    ) -> Result<Got, ClientError> {
        let Sent {
            id,
            question,
            bytes,
            edns,
            decode,
        } = *sent;
        let io = |error| ClientError::Io { server, error };
        let start = Instant::now();
        if connected {
            socket.send(bytes).await.map_err(io)?;
        } else {
            socket.send_to(bytes, server).await.map_err(io)?;
        }
        self.stats.queries_sent.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        // The buffer is as large as the reply this query allows (RFC 6891 section 6.2.3):
        // a resolver may hold hundreds of these at once. A longer datagram arrives cut short,
        // fails the walk and is counted as garbage.
        let mut buf = vec![
            0u8;
            if edns {
                usize::from(wire::EDNS_PAYLOAD)
            } else {
                wire::CLASSIC_UDP_LIMIT
            }
        ];
        let expected = Expected {
            server,
            id,
            question,
        };
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let (len, from) = match received {
                Err(_) => {
                    self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(ClientError::Timeout {
                        servers: server.to_string(),
                        timeout: self.config.timeout,
                        attempts: 1,
                    });
                }
                // ICMP port unreachable shows up as an error on the next receive: the server
                // is not there, which is as good as a timeout but known sooner.
                Ok(Err(e)) => return Err(io(e)),
                Ok(Ok(pair)) => pair,
            };
            let verdict = accept(&buf[..len], from, &expected);
            if verdict != Verdict::Accept {
                self.count_drop(verdict, from, server);
                continue;
            }
            // The walk passed; hickory may still refuse a record's contents.
            let reply = if decode {
                let Ok(reply) = Message::from_vec(&buf[..len]) else {
                    self.count_drop(Verdict::Garbage, from, server);
                    continue;
                };
                Some(reply)
            } else {
                None
            };
            self.stats.replies_accepted.fetch_add(1, Ordering::Relaxed);
            if connected {
                forget_readiness(socket);
            }
            buf.truncate(len);
            return Ok(Got {
                wire: WireExchange {
                    bytes: buf,
                    server,
                    elapsed: start.elapsed(),
                    transport: "udp",
                    retried_over_tcp: false,
                },
                reply,
            });
        }
    }

    async fn tcp_exchange(
        &self,
        server: SocketAddr,
        question: &[u8],
        edns: bool,
        decode: bool,
    ) -> Result<Got, ClientError> {
        let (id, bytes) = self.encode(question, edns);
        let expected = Expected {
            server,
            id,
            question,
        };
        let timeout = self.config.timeout;
        let start = Instant::now();
        let work = async {
            let io = |error| ClientError::Io { server, error };
            // Within the whole exchange's timeout below; Nagle is off.
            let tcp = protolab_transport::connect_tcp(server, timeout)
                .await
                .map_err(io)?;
            let mut stream: Box<dyn Io> = match &self.config.tls {
                None => Box::new(tcp),
                Some(dot) => {
                    let tls_err = |why| ClientError::Tls { server, why };
                    let name = dot.name.clone().unwrap_or_else(|| server.ip().to_string());
                    let name = protolab_transport::tls::server_name(&name).map_err(tls_err)?;
                    let s = protolab_transport::tls::connect(&dot.connector, name, tcp, timeout)
                        .await
                        .map_err(|e| tls_err(protolab_transport::tls::describe_error(&e)))?;
                    Box::new(s)
                }
            };
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            stream.write_all(&framed).await.map_err(io)?;
            stream.flush().await.map_err(io)?;
            self.stats.queries_sent.fetch_add(1, Ordering::Relaxed);
            // A server may send other replies first on a shared connection; this connection
            // is ours alone, but the checks stay the same as for UDP.
            loop {
                let len = stream.read_u16().await.map_err(io)?;
                let mut body = vec![0u8; usize::from(len)];
                stream.read_exact(&mut body).await.map_err(io)?;
                let malformed = |error: String| ClientError::Malformed { server, error };
                match accept(&body, server, &expected) {
                    Verdict::Accept => {}
                    Verdict::Garbage => {
                        return Err(malformed("not a whole DNS message".into()));
                    }
                    v => {
                        self.count_drop(v, server, server);
                        continue;
                    }
                }
                let reply = if decode {
                    Some(Message::from_vec(&body).map_err(|e| malformed(e.to_string()))?)
                } else {
                    None
                };
                self.stats.replies_accepted.fetch_add(1, Ordering::Relaxed);
                return Ok(Got {
                    wire: WireExchange {
                        bytes: body,
                        server,
                        elapsed: start.elapsed(),
                        transport: if self.config.tls.is_some() {
                            "tls"
                        } else {
                            "tcp"
                        },
                        retried_over_tcp: false,
                    },
                    reply,
                });
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Err(ClientError::Timeout {
                    servers: server.to_string(),
                    timeout,
                    attempts: 1,
                })
            }
        }
    }
}

/// Tells the runtime that a pooled socket has nothing more to read, without asking the kernel.
///
/// The runtime marks a socket readable when epoll says so and unmarks it only when a receive
/// fails with `WouldBlock`. After a query's reply the mark stays, so the next query on the
/// socket would begin with a receive that can only fail (its reply cannot be there yet): one
/// wasted system call per miss. A closure that reports `WouldBlock` without a system call
/// unmarks it. A datagram that came after the reply stays queued and is read (and refused by
/// [`accept`]) when the next datagram's event comes: epoll in edge-triggered mode, as the
/// runtime uses it, reports every arrival, not only the first into an empty queue.
fn forget_readiness(socket: &tokio::net::UdpSocket) {
    let _ = socket.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
    });
}

/// The wire form of the question `name`/`qtype`, class IN.
fn question_of(name: &Name, qtype: RecordType) -> Result<Vec<u8>, ClientError> {
    wire::question_bytes(name, qtype).map_err(|e| ClientError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_client_draws_from_its_parents_seed() {
        let ids = |seed| {
            let parent = Client::new(
                ClientConfig::default(),
                protolab_transport::rng::seeded(Some(seed)).0,
            );
            let child = parent.fork(ClientConfig::default());
            (0..4)
                .map(|_| (parent.random_id(), child.random_id(), child.random_port()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(7), ids(7), "the same seed, the same ids and ports");
        assert_ne!(ids(7), ids(8));
    }

    #[tokio::test]
    async fn a_pooled_socket_hears_its_next_reply_after_a_stray_datagram() {
        use crate::pool::PoolConfig;
        let server = protolab_transport::bind_udp(([127, 0, 0, 1], 0).into(), 1 << 16).unwrap();
        let addr = server.local_addr().unwrap();
        // Echoes each query back as its reply; after the first, also a datagram that is not DNS.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            for n in 0.. {
                let Ok((len, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                buf[2] |= 0x80;
                let _ = server.send_to(&buf[..len], from).await;
                if n == 0 {
                    let _ = server.send_to(b"stray", from).await;
                }
            }
        });
        let client = Client::new(
            ClientConfig {
                timeout: Duration::from_secs(5),
                attempts: 1,
                ..ClientConfig::default()
            },
            protolab_transport::rng::seeded(Some(1)).0,
        )
        .with_pool(SocketPool::new(PoolConfig::default()));
        let name = Name::from_ascii("www.example.test.").unwrap();
        for _ in 0..2 {
            let x = client
                .query_one(addr, &name, RecordType::A)
                .await
                .expect("a reply each time, the stray one notwithstanding");
            assert_eq!(x.transport, "udp");
        }
        let pool = client.pool().unwrap().stats();
        assert_eq!((pool.bound, pool.reused), (1, 1), "one socket, used twice");
        assert_eq!(client.stats.dropped_garbage.load(Ordering::Relaxed), 1);
        assert_eq!(client.stats.replies_accepted.load(Ordering::Relaxed), 2);
    }
}
