//! Pre-bound upstream sockets, each on its own random port, kept per upstream server.
//!
//! RFC 5452 asks for an unpredictable source port per query, so that an off-path attacker
//! racing forged replies must guess it as well as the 16-bit id. Binding a fresh socket for
//! every query gives that at the price of several system calls per miss (socket, two buffer
//! options, bind with retries on a taken port, registration with the event loop, and close).
//!
//! This pool keeps the property at a fraction of the cost:
//! - every socket is bound to a port drawn at random, and connected to one upstream server;
//! - a socket carries one query at a time, so queries in flight never share a port;
//! - a socket is only ever reused for the same server, so its port is known to nobody but that
//!   server (which could forge its own answers anyway) and whoever sits on the path (who could
//!   read the id too); an attacker who gets the resolver to ask a server of theirs learns ports
//!   that are never used to ask anyone else;
//! - among the idle sockets for a server one is taken at random, and each is retired after
//!   [`PoolConfig::max_uses`] queries and replaced by a fresh random port, so the ports keep
//!   moving;
//! - a socket whose query timed out or failed is closed, never reused: a late reply cannot
//!   land on the next query.
//!
//! The pool is bounded: at most [`PoolConfig::max_idle`] idle sockets in all. Sockets in use
//! are bounded by the caller (`--max-pending`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

use tokio::net::UdpSocket;

/// Bounds of a pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Idle sockets kept, all servers together.
    pub max_idle: usize,
    /// Queries one socket carries before it is closed and its port retired.
    pub max_uses: u32,
    /// Kernel receive and send buffer of each socket.
    pub buffer_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_idle: 64,
            max_uses: 64,
            buffer_bytes: 16 << 10,
        }
    }
}

/// Counters of a pool.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    /// Sockets bound (each on a fresh random port).
    pub bound: u64,
    /// Queries sent on a socket taken from the pool.
    pub reused: u64,
    /// Sockets closed after their last allowed query.
    pub retired: u64,
    /// Sockets closed after a timeout or error.
    pub discarded: u64,
    pub idle: usize,
}

/// A socket connected to one server, on loan for one query.
#[derive(Debug)]
pub struct Pooled {
    pub socket: UdpSocket,
    server: SocketAddr,
    uses: u32,
}

/// The pool; see the module documentation.
#[derive(Debug)]
pub struct SocketPool {
    config: PoolConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    idle: HashMap<SocketAddr, Vec<Pooled>>,
    count: usize,
    stats: PoolStats,
}

impl SocketPool {
    pub fn new(config: PoolConfig) -> Self {
        Self {
            config,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters so far.
    pub fn stats(&self) -> PoolStats {
        let inner = self.lock();
        PoolStats {
            idle: inner.count,
            ..inner.stats
        }
    }

    /// A socket for one query to `server`: an idle one picked with `pick` (given how many
    /// there are, it returns an index), or a new one bound to the port `port` draws (tried a
    /// few times; then the kernel's own random choice).
    ///
    /// # Errors
    /// Binding or connecting a new socket.
    pub fn take(
        &self,
        server: SocketAddr,
        pick: impl FnOnce(usize) -> usize,
        mut port: impl FnMut() -> u16,
    ) -> std::io::Result<Pooled> {
        {
            let mut inner = self.lock();
            if let Some(list) = inner.idle.get_mut(&server)
                && !list.is_empty()
            {
                let i = pick(list.len()).min(list.len() - 1);
                let mut p = list.swap_remove(i);
                if list.is_empty() {
                    inner.idle.remove(&server);
                }
                inner.count -= 1;
                inner.stats.reused += 1;
                p.uses += 1;
                return Ok(p);
            }
        }
        let ip = match server.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let bind = |p: u16| -> std::io::Result<UdpSocket> {
            let s = protolab_transport::bind_udp(SocketAddr::new(ip, p), self.config.buffer_bytes)?;
            // Connected: the kernel delivers only the server's datagrams to it.
            let std = s.into_std()?;
            std.connect(server)?;
            UdpSocket::from_std(std)
        };
        // A port taken by another socket is simply skipped.
        let mut socket = None;
        for _ in 0..8 {
            if let Ok(s) = bind(port()) {
                socket = Some(s);
                break;
            }
        }
        let socket = match socket {
            Some(s) => s,
            None => bind(0)?,
        };
        self.lock().stats.bound += 1;
        Ok(Pooled {
            socket,
            server,
            uses: 1,
        })
    }

    /// Returns a socket whose query ended with an accepted reply. It is closed instead when it
    /// has carried its last query or the pool is full.
    pub fn give_back(&self, p: Pooled) {
        let mut inner = self.lock();
        if p.uses >= self.config.max_uses {
            inner.stats.retired += 1;
            return;
        }
        if inner.count >= self.config.max_idle {
            return;
        }
        inner.count += 1;
        inner.idle.entry(p.server).or_default().push(p);
    }

    /// Closes a socket whose query timed out or failed: a late reply must not reach the next.
    pub fn discard(&self, p: Pooled) {
        self.lock().stats.discarded += 1;
        drop(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_are_reused_per_server_then_retired() {
        let pool = SocketPool::new(PoolConfig {
            max_idle: 2,
            max_uses: 3,
            buffer_bytes: 4096,
        });
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:9".parse().unwrap();
        let s = pool.take(a, |_| 0, || 0).unwrap();
        let port = s.socket.local_addr().unwrap().port();
        assert_eq!(s.socket.peer_addr().unwrap(), a);
        pool.give_back(s);
        // Another server never gets that socket.
        let other = pool.take(b, |_| 0, || 0).unwrap();
        assert_ne!(other.socket.local_addr().unwrap().port(), port);
        // The same server does, until its third query.
        let s = pool.take(a, |_| 0, || 0).unwrap();
        assert_eq!(s.socket.local_addr().unwrap().port(), port);
        pool.give_back(s);
        let s = pool.take(a, |_| 0, || 0).unwrap();
        assert_eq!(s.socket.local_addr().unwrap().port(), port);
        pool.give_back(s);
        let s = pool.take(a, |_| 0, || 0).unwrap();
        assert_ne!(s.socket.local_addr().unwrap().port(), port, "retired");
        // A failed query's socket is closed, not pooled.
        pool.discard(s);
        pool.give_back(other);
        let st = pool.stats();
        assert_eq!(
            (st.bound, st.reused, st.retired, st.discarded),
            (3, 2, 1, 1)
        );
        assert_eq!(st.idle, 1);
    }

    #[tokio::test]
    async fn idle_sockets_are_capped() {
        let pool = SocketPool::new(PoolConfig {
            max_idle: 2,
            max_uses: 100,
            buffer_bytes: 4096,
        });
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let taken: Vec<Pooled> = (0..5).map(|_| pool.take(a, |_| 0, || 0).unwrap()).collect();
        for p in taken {
            pool.give_back(p);
        }
        assert_eq!(pool.stats().idle, 2);
    }
}
