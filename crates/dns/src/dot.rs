//! Forwarding upstream over DNS over TLS (RFC 7858), for `dns serve --forward-tls`.
//!
//! A TLS handshake costs a round trip or two and some CPU, so connections are kept and shared:
//! per upstream server at most [`DotConfig::max_connections`] are open, and each carries up to
//! [`DotConfig::max_in_flight`] queries at once, pipelined. Replies may come in any order (RFC
//! 7766 section 6.2.1.1): each is matched to its query by id and checked by [`accept`] like a
//! UDP reply. One task owns each connection; queries reach it through a bounded channel.
//!
//! Bounds and timeouts:
//! - the TCP connect and the handshake together take at most the query timeout;
//! - a query waits at most the query timeout for its reply; a reply that comes later is dropped
//!   and counted;
//! - a connection with nothing in flight for [`DotConfig::idle_timeout`] is closed (RFC 7858
//!   section 3.4: clients close idle connections, servers need not keep them);
//! - the read buffer holds at most one message (65,537 bytes with its length), the table of
//!   queries in flight `max_in_flight` entries, the channel as many again;
//! - after a failed connect or handshake the server is left alone for [`DotConfig::backoff`]:
//!   queries meanwhile fail at once with the same reason instead of each paying for another
//!   handshake that would fail the same way. Every failure is counted and logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use protolab_transport::rng::StdRng;

use crate::accept::{Expected, Verdict, accept};
use crate::client::{ClientError, DotClient};
use crate::wire;

/// Bounds of the upstream connections.
#[derive(Debug, Clone, Copy)]
pub struct DotConfig {
    /// Connections open at once to one server.
    pub max_connections: usize,
    /// Queries in flight at once on one connection.
    pub max_in_flight: usize,
    /// How long a connection with nothing in flight stays open.
    pub idle_timeout: Duration,
    /// How long a server whose connect or handshake failed is left alone.
    pub backoff: Duration,
    /// How long to wait for a connection and for each reply.
    pub timeout: Duration,
}

impl Default for DotConfig {
    fn default() -> Self {
        Self {
            max_connections: 4,
            max_in_flight: 64,
            idle_timeout: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        }
    }
}

counters! {
    /// Counters of the upstream DNS-over-TLS connections.
    pub struct DotStats => DotCounters {
        /// Connections whose handshake completed.
        pub connections_opened,
        /// Connects or handshakes that failed (each also logged with its reason).
        pub connect_failures,
        /// Queries sent.
        pub queries,
        /// Queries sent on a connection that had carried one before.
        pub reused,
        /// Replies accepted and handed to their query.
        pub replies,
        /// Queries that got no reply within the timeout.
        pub timeouts,
        /// Queries failed at once because their server was backing off after a failure.
        pub refused_backing_off,
        /// Queries failed at once because every connection to the server was full.
        pub overloaded,
        /// Replies matching no query in flight (late, or forged), or failing [`accept`].
        pub dropped_replies,
        /// Connections closed after their idle timeout.
        pub closed_idle,
        /// Connections closed by the server or by an error.
        pub closed_error,
    }
}

/// One query for a connection's task.
struct Request {
    /// The query with id 0; the task sets the id.
    message: Vec<u8>,
    /// Where the question starts in `message` and ends.
    question: std::ops::Range<usize>,
    reply: oneshot::Sender<Result<Vec<u8>, ConnFailure>>,
}

/// Why a connection gave no reply.
#[derive(Debug, Clone)]
enum ConnFailure {
    /// The connection closed before the query was written: another connection may take it.
    NotSent(String),
    /// The connection failed with the query written, or could not be opened.
    Failed(String),
}

/// A connection's task, as the pool sees it.
struct Handle {
    tx: mpsc::Sender<Request>,
    /// Queries handed to the task and not yet answered or failed.
    load: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Server {
    conns: Vec<Handle>,
    /// Until when the server is left alone after a failure, and why.
    down: Option<(Instant, String)>,
}

struct Shared {
    tls: DotClient,
    config: DotConfig,
    servers: Mutex<HashMap<SocketAddr, Server>>,
    rng: Mutex<StdRng>,
    stats: DotStats,
}

/// The pool of upstream DNS-over-TLS connections; see the module documentation.
#[derive(Clone)]
pub struct DotUpstream {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DotUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotUpstream")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl DotUpstream {
    /// A pool verifying servers with `tls`, drawing query ids from `rng`.
    pub fn new(tls: DotClient, config: DotConfig, rng: StdRng) -> Self {
        Self {
            shared: Arc::new(Shared {
                tls,
                config,
                servers: Mutex::default(),
                rng: Mutex::new(rng),
                stats: DotStats::default(),
            }),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> DotCounters {
        self.shared.stats.counters()
    }

    /// Asks `servers` in turn the `question` (wire form) with RD set and EDNS, until one
    /// answers; the accepted reply's bytes.
    ///
    /// # Errors
    /// The last server's failure: [`ClientError::Tls`] for a connection or handshake that
    /// failed, [`ClientError::Timeout`] for no reply in time.
    pub async fn query(
        &self,
        servers: &[SocketAddr],
        question: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let mut last = ClientError::NoServers;
        for &server in servers {
            match self.query_one(server, question).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(%server, error = %e, "DoT upstream query failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn query_one(&self, server: SocketAddr, question: &[u8]) -> Result<Vec<u8>, ClientError> {
        let shared = &self.shared;
        let timeout = shared.config.timeout;
        let deadline = Instant::now() + timeout;
        let message = wire::query_for_question(0, question, true, true);
        let start = wire::HEADER_LEN;
        let mut request = Request {
            question: start..start + question.len(),
            message,
            reply: oneshot::channel().0,
        };
        // Twice at most: a connection that closes (idle, or the server's choice) just as the
        // query reaches it hands it back unsent.
        for _ in 0..2 {
            let (tx, rx) = oneshot::channel();
            request.reply = tx;
            let (sender, load) = self.connection(server)?;
            load.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = sender.try_send(request) {
                load.fetch_sub(1, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        shared.stats.overloaded.fetch_add(1, Ordering::Relaxed);
                        return Err(ClientError::Tls {
                            server,
                            why: "every connection to it is full".into(),
                        });
                    }
                    mpsc::error::TrySendError::Closed(r) => {
                        request = r;
                        continue;
                    }
                }
            }
            let got = match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => {
                    shared.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    return Err(ClientError::Timeout {
                        servers: server.to_string(),
                        timeout,
                        attempts: 1,
                    });
                }
                Ok(Err(_)) => Err(ConnFailure::Failed("the connection's task ended".into())),
                Ok(Ok(r)) => r,
            };
            return match got {
                Ok(bytes) => Ok(bytes),
                Err(ConnFailure::Failed(why)) => Err(ClientError::Tls { server, why }),
                Err(ConnFailure::NotSent(why)) => {
                    // Rebuilt: the request went to the task and is gone.
                    let message = wire::query_for_question(0, question, true, true);
                    request = Request {
                        question: start..start + question.len(),
                        message,
                        reply: oneshot::channel().0,
                    };
                    tracing::debug!(%server, why, "query handed back unsent: another connection");
                    continue;
                }
            };
        }
        Err(ClientError::Tls {
            server,
            why: "connections kept closing".into(),
        })
    }

    /// A connection to `server` with room for one more query: the least loaded open one, or a
    /// new one while there are fewer than `max_connections`.
    fn connection(
        &self,
        server: SocketAddr,
    ) -> Result<(mpsc::Sender<Request>, Arc<AtomicUsize>), ClientError> {
        let shared = &self.shared;
        let config = shared.config;
        let mut servers = shared.servers.lock().unwrap_or_else(|e| e.into_inner());
        let state = servers.entry(server).or_default();
        if let Some((until, why)) = &state.down {
            if *until > Instant::now() {
                shared
                    .stats
                    .refused_backing_off
                    .fetch_add(1, Ordering::Relaxed);
                return Err(ClientError::Tls {
                    server,
                    why: why.clone(),
                });
            }
            state.down = None;
        }
        state.conns.retain(|h| !h.tx.is_closed());
        let least = state
            .conns
            .iter()
            .min_by_key(|h| h.load.load(Ordering::Relaxed));
        if let Some(h) = least
            && (h.load.load(Ordering::Relaxed) < config.max_in_flight
                || state.conns.len() >= config.max_connections)
        {
            return Ok((h.tx.clone(), h.load.clone()));
        }
        let (tx, rx) = mpsc::channel(config.max_in_flight.max(1));
        let load = Arc::new(AtomicUsize::new(0));
        let seed = shared
            .rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random();
        tokio::spawn(run_connection(
            shared.clone(),
            server,
            rx,
            load.clone(),
            protolab_transport::rng::seeded(Some(seed)).0,
        ));
        state.conns.push(Handle {
            tx: tx.clone(),
            load: load.clone(),
        });
        Ok((tx, load))
    }
}

/// A query written and waiting for its reply.
struct Pending {
    message: Vec<u8>,
    question: std::ops::Range<usize>,
    reply: oneshot::Sender<Result<Vec<u8>, ConnFailure>>,
    deadline: Instant,
}

/// Opens one connection and carries queries over it until it idles out or fails.
async fn run_connection(
    shared: Arc<Shared>,
    server: SocketAddr,
    mut rx: mpsc::Receiver<Request>,
    load: Arc<AtomicUsize>,
    mut rng: StdRng,
) {
    let config = shared.config;
    let stats = &shared.stats;
    let stream = match open(&shared.tls, server, config.timeout).await {
        Ok(s) => s,
        Err(why) => {
            stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%server, error = %why, "DNS over TLS upstream: cannot connect; SERVFAIL until it can");
            {
                let mut servers = shared.servers.lock().unwrap_or_else(|e| e.into_inner());
                servers.entry(server).or_default().down =
                    Some((Instant::now() + config.backoff, why.clone()));
            }
            fail_queued(&mut rx, &load, &ConnFailure::Failed(why));
            return;
        }
    };
    stats.connections_opened.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%server, "DNS over TLS upstream connection open");
    let (mut read, mut write) = tokio::io::split(stream);
    let mut pending: HashMap<u16, Pending> = HashMap::new();
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
    let mut carried = 0u64;
    let mut idle_since = Instant::now();
    let why = loop {
        let wake = match pending.values().map(|p| p.deadline).min() {
            Some(d) => d,
            None => idle_since + config.idle_timeout,
        };
        tokio::select! {
            request = rx.recv(), if pending.len() < config.max_in_flight => {
                let Some(first) = request else {
                    // The pool is gone: the server is stopping.
                    break None;
                };
                // Everything queued goes out in one write.
                out.clear();
                let mut next = Some(first);
                while let Some(r) = next.take() {
                    let id = loop {
                        let id: u16 = rng.random();
                        if !pending.contains_key(&id) {
                            break id;
                        }
                    };
                    let mut message = r.message;
                    message[..2].copy_from_slice(&id.to_be_bytes());
                    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
                    out.extend_from_slice(&message);
                    stats.queries.fetch_add(1, Ordering::Relaxed);
                    if carried > 0 {
                        stats.reused.fetch_add(1, Ordering::Relaxed);
                    }
                    carried += 1;
                    pending.insert(id, Pending {
                        message,
                        question: r.question,
                        reply: r.reply,
                        deadline: Instant::now() + config.timeout,
                    });
                    if pending.len() < config.max_in_flight {
                        next = rx.try_recv().ok();
                    }
                }
                let written = tokio::time::timeout(config.timeout, async {
                    write.write_all(&out).await?;
                    write.flush().await
                })
                .await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Some(format!("write: {e}")),
                    Err(_) => break Some("write timed out".into()),
                }
            }
            read_result = read.read_buf(&mut buf) => {
                match read_result {
                    Ok(0) => break Some("closed by the server".into()),
                    Err(e) => break Some(protolab_transport::tls::describe_error(&e)),
                    Ok(_) => {}
                }
                if let Err(why) = take_replies(&mut buf, &mut pending, server, &load, stats) {
                    break Some(why);
                }
                if pending.is_empty() {
                    idle_since = Instant::now();
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if pending.is_empty() {
                    if Instant::now() >= idle_since + config.idle_timeout {
                        stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%server, "DNS over TLS upstream connection idle: closed");
                        break None;
                    }
                } else {
                    // Their callers have given up already (same timeout): forget them.
                    let now = Instant::now();
                    let before = pending.len();
                    pending.retain(|_, p| p.deadline > now);
                    load.fetch_sub(before - pending.len(), Ordering::Relaxed);
                    if pending.is_empty() {
                        idle_since = now;
                    }
                }
            }
        }
    };
    // Nothing more is taken: queries still queued go back to the pool unsent.
    rx.close();
    let reason = why.clone().unwrap_or_else(|| "connection closed".into());
    if let Some(why) = &why {
        stats.closed_error.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%server, error = %why, "DNS over TLS upstream connection closed");
    }
    for (_, p) in pending.drain() {
        load.fetch_sub(1, Ordering::Relaxed);
        let _ = p.reply.send(Err(ConnFailure::Failed(reason.clone())));
    }
    fail_queued(&mut rx, &load, &ConnFailure::NotSent(reason));
    let _ = write.shutdown().await;
}

/// Hands back every query still queued on a closed channel with `failure`.
fn fail_queued(rx: &mut mpsc::Receiver<Request>, load: &AtomicUsize, failure: &ConnFailure) {
    rx.close();
    while let Ok(r) = rx.try_recv() {
        load.fetch_sub(1, Ordering::Relaxed);
        let _ = r.reply.send(Err(failure.clone()));
    }
}

/// Takes every whole message out of `buf` and hands each to its query. A zero length ends the
/// connection; a reply matching no query is dropped and counted.
fn take_replies(
    buf: &mut BytesMut,
    pending: &mut HashMap<u16, Pending>,
    server: SocketAddr,
    load: &AtomicUsize,
    stats: &DotStats,
) -> Result<(), String> {
    loop {
        if buf.len() < 2 {
            buf.reserve(2);
            return Ok(());
        }
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if len == 0 {
            return Err("zero-length message from the server".into());
        }
        if buf.len() < 2 + len {
            buf.reserve(2 + len - buf.len());
            return Ok(());
        }
        buf.advance(2);
        let body = buf.split_to(len);
        let id = u16::from_be_bytes([body[0], body.get(1).copied().unwrap_or(0)]);
        let Some(p) = pending.get(&id) else {
            stats.dropped_replies.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%server, id, "reply for no query in flight: dropped");
            continue;
        };
        let expected = Expected {
            server,
            id,
            question: &p.message[p.question.clone()],
        };
        let verdict = accept(&body, server, &expected);
        if verdict != Verdict::Accept {
            stats.dropped_replies.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%server, ?verdict, "reply refused: dropped");
            continue;
        }
        if let Some(p) = pending.remove(&id) {
            load.fetch_sub(1, Ordering::Relaxed);
            stats.replies.fetch_add(1, Ordering::Relaxed);
            let _ = p.reply.send(Ok(body.to_vec()));
        }
    }
}

/// The TCP connect and TLS handshake, within `timeout` together; the reason in words when it
/// fails.
async fn open(
    tls: &DotClient,
    server: SocketAddr,
    timeout: Duration,
) -> Result<protolab_transport::tls::ClientStream<tokio::net::TcpStream>, String> {
    let work = async {
        let tcp = protolab_transport::connect_tcp(server, timeout)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = tls.name.clone().unwrap_or_else(|| server.ip().to_string());
        let name = protolab_transport::tls::server_name(&name)?;
        protolab_transport::tls::connect(&tls.connector, name, tcp, timeout)
            .await
            .map_err(|e| protolab_transport::tls::describe_error(&e))
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err("connect and handshake timed out".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RecordType};
    use protolab_transport::tls::{self, TlsAcceptor, TlsConnector};

    /// A DoT server on loopback that reads `n` queries, then answers an id nobody asked and
    /// the queries in reverse order (each echoed with QR set), all in one write.
    async fn reversing_server(n: usize) -> (SocketAddr, TlsConnector, tempfile::TempDir) {
        let (ca, id) = tls::lab_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let acceptor = TlsAcceptor::from(
            tls::server_config(
                id.cert_pem.as_bytes(),
                id.key_pem.as_bytes(),
                std::path::Path::new("cert"),
                std::path::Path::new("key"),
            )
            .unwrap(),
        );
        let listener = protolab_transport::bind_tcp(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let mut queries = Vec::new();
            while queries.len() < n {
                let len = s.read_u16().await.unwrap();
                let mut q = vec![0u8; usize::from(len)];
                s.read_exact(&mut q).await.unwrap();
                q[2] |= 0x80;
                queries.push(q);
            }
            let mut out = Vec::new();
            let mut stray = queries[0].clone();
            let unasked = queries
                .iter()
                .map(|q| u16::from_be_bytes([q[0], q[1]]))
                .fold(0u16, |a, id| a.wrapping_add(id) | 1);
            stray[..2].copy_from_slice(&unasked.to_be_bytes());
            for m in std::iter::once(&stray).chain(queries.iter().rev()) {
                out.extend_from_slice(&(m.len() as u16).to_be_bytes());
                out.extend_from_slice(m);
            }
            s.write_all(&out).await.unwrap();
            s.flush().await.unwrap();
            // Held open until the client goes.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
        let connector = TlsConnector::from(tls::client_config(Some(&ca_path)).unwrap());
        (addr, connector, dir)
    }

    fn question(name: &str) -> Vec<u8> {
        wire::question_bytes(&Name::from_ascii(name).unwrap(), RecordType::A).unwrap()
    }

    #[tokio::test]
    async fn pipelined_queries_on_one_connection_get_their_own_replies_in_any_order() {
        let (addr, connector, _dir) = reversing_server(3).await;
        let dot = DotUpstream::new(
            DotClient {
                connector,
                name: Some("localhost".into()),
            },
            DotConfig {
                timeout: Duration::from_secs(10),
                ..DotConfig::default()
            },
            protolab_transport::rng::seeded(Some(5)).0,
        );
        let names = ["a.example.test.", "b.example.test.", "c.example.test."];
        let qs: Vec<Vec<u8>> = names.iter().map(|n| question(n)).collect();
        let servers = [addr];
        let (ra, rb, rc) = tokio::join!(
            dot.query(&servers, &qs[0]),
            dot.query(&servers, &qs[1]),
            dot.query(&servers, &qs[2]),
        );
        for (reply, q) in [ra, rb, rc].into_iter().zip(&qs) {
            let reply = reply.unwrap();
            let head = wire::walk_message(&reply).unwrap();
            assert!(wire::same_question(head.question, q), "each its own reply");
        }
        let c = dot.counters();
        assert_eq!(c.connections_opened, 1);
        assert_eq!((c.queries, c.reused, c.replies), (3, 2, 3));
        assert_eq!(c.dropped_replies, 1, "the reply to an id nobody asked");
    }

    #[tokio::test]
    async fn a_refused_certificate_fails_at_once_while_backing_off() {
        let (addr, _, _dir) = reversing_server(1).await;
        // Trusts another CA only.
        let other = tempfile::tempdir().unwrap();
        let path = other.path().join("other.pem");
        std::fs::write(&path, tls::LabCa::new("another").unwrap().cert_pem()).unwrap();
        let dot = DotUpstream::new(
            DotClient {
                connector: TlsConnector::from(tls::client_config(Some(&path)).unwrap()),
                name: None,
            },
            DotConfig {
                backoff: Duration::from_secs(60),
                ..DotConfig::default()
            },
            protolab_transport::rng::seeded(Some(5)).0,
        );
        let q = question("a.example.test.");
        let first = dot.query(&[addr], &q).await.unwrap_err().to_string();
        assert!(first.contains("unknown issuer"), "{first}");
        let second = dot.query(&[addr], &q).await.unwrap_err().to_string();
        assert!(second.contains("unknown issuer"), "{second}");
        let c = dot.counters();
        assert_eq!((c.connect_failures, c.refused_backing_off), (1, 1));
        assert_eq!(c.queries, 0);
    }
}
