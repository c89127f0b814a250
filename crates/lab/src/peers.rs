//! Real peers: finding them, giving them a port when they cannot bind port 0 and say which,
//! and waiting until they answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::Proc;

/// Where peers are looked for, in order: the Debian packages put them in these.
const PEER_DIRS: [&str; 5] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"];

/// The path of a program `command` in the usual system folders, if it is installed.
pub fn which(command: &str) -> Option<PathBuf> {
    PEER_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(command))
        .find(|p| p.exists())
}

/// Fails loudly when a real peer is missing, naming the package that brings it.
///
/// Missing peers are never a silent skip: `cargo xtask test` installs them when run as root.
pub fn require_peer(command: &str, package: &str) -> PathBuf {
    which(command).unwrap_or_else(|| {
        panic!(
            "real peer `{command}` is missing: install it with `apt-get install -y {package}` \
             (cargo xtask test does this when run as root)"
        )
    })
}

/// A port free on 127.0.0.1 for both TCP and UDP at the time of asking, for peers that cannot
/// bind port 0 and report it.
pub fn free_port() -> u16 {
    free_port_on(&[Ipv4Addr::LOCALHOST.into()])
}

/// A port free for both TCP and UDP on every one of `ips` at the time of asking (a lab
/// hierarchy puts several servers on one port at 127.0.0.1, 127.0.0.2, ...).
pub fn free_port_on(ips: &[IpAddr]) -> u16 {
    let first = ips.first().copied().unwrap_or(Ipv4Addr::LOCALHOST.into());
    for _ in 0..100 {
        let tcp = TcpListener::bind((first, 0)).expect("bind tcp");
        let port = tcp.local_addr().expect("local_addr").port();
        drop(tcp);
        let free = ips.iter().all(|ip| {
            UdpSocket::bind((*ip, port)).is_ok() && TcpListener::bind((*ip, port)).is_ok()
        });
        if free {
            return port;
        }
    }
    panic!("no port free on {ips:?}");
}

/// Waits until something accepts TCP connections on `addr`, at most `limit`.
pub fn wait_tcp(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after {limit:?}");
}

/// Sends `probe` to `addr` over UDP every 50 ms until any datagram comes back, at most `limit`:
/// readiness for UDP servers (such as DNS peers) that print nothing when they are up.
pub fn wait_udp_reply(addr: SocketAddr, probe: &[u8], limit: Duration) {
    let sock = UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).expect("bind probe socket");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        let _ = sock.send_to(probe, addr);
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("nothing answers UDP on {addr} after {limit:?}");
}

/// Starts redis-server on a free loopback port, storing nothing, in `dir`, and waits until it
/// accepts connections. It answers the inline line `PING` with `+PONG`: a one-line
/// request/response peer for the TCP load generator.
pub fn start_redis(dir: &Path) -> (Proc, SocketAddr) {
    let redis = require_peer("redis-server", "redis-server");
    let port = free_port();
    let proc = Proc::spawn(
        "redis-server",
        Command::new(redis)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "10000"])
            .current_dir(dir),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_tcp(addr, Duration::from_secs(10));
    (proc, addr)
}
