//! `udpecho bulk` and `udpecho sink`: one bulk TCP transfer, with the sender's congestion
//! control state sampled from the kernel (TCP_INFO) every few milliseconds.
//!
//! The sender picks a congestion control per socket (TCP_CONGESTION: reno, cubic, bbr, ...),
//! writes as fast as the path takes for a fixed time, and a second thread reads TCP_INFO of the
//! same socket on a fixed period: the congestion window and slow-start threshold, the smoothed
//! RTT, retransmissions, the delivery rate and the bytes acknowledged. The sink reads and
//! discards, through protolab-transport's TCP runner. This is what `cargo xtask demo
//! congestion` runs on both ends of `impair link` and draws.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use protolab_transport::cli::ListenError;
use protolab_transport::tcp::{
    BlockingConnect, BlockingConnectError, congestion_of, connect_tcp_blocking,
};
use protolab_transport::{CancellationToken, Next, TcpServerConfig, TcpServerStats};
use serde::{Deserialize, Serialize};

/// The kernel reports an unset slow-start threshold (before the first loss) as this or more.
pub const SSTHRESH_INFINITE: u32 = 0x7fff_ffff;

/// Samples kept at most: at the shortest period (1 ms) a transfer of the longest duration.
const MAX_SAMPLES: usize = 200_000;

/// The longest transfer `bulk` runs.
pub const MAX_DURATION: Duration = Duration::from_secs(120);

/// Unsent bytes the socket holds before a write blocks (TCP_NOTSENT_LOWAT): enough to keep
/// the path busy, few enough that the transfer ends close to its deadline instead of draining
/// a send buffer of megabytes through a slow bottleneck.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// What `udpecho bulk` does.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    pub target: SocketAddr,
    /// The congestion control to ask for (TCP_CONGESTION); the system default when `None`.
    pub congestion: Option<String>,
    /// How long to keep writing.
    pub duration: Duration,
    /// How often to read TCP_INFO.
    pub sample: Duration,
}

/// Seconds held as `f64` for drawing, written in JSON as whole microseconds: every report's
/// times are integers whose key names the unit (docs/cli.md).
mod micros {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64((seconds.max(0.0) * 1e6).round() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(|us| us as f64 / 1e6)
    }
}

/// One reading of TCP_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the connection was established (`t_us`, whole microseconds, in JSON).
    #[serde(rename = "t_us", with = "micros")]
    pub t: f64,
    /// Congestion window, in segments (tcpi_snd_cwnd).
    pub cwnd: u32,
    /// Slow-start threshold in segments; `None` while the kernel holds it infinite (no loss
    /// seen yet), which a picture must not draw as 2^31.
    pub ssthresh: Option<u32>,
    /// Smoothed RTT, microseconds (tcpi_rtt).
    pub srtt_us: u32,
    /// Segments retransmitted so far (tcpi_total_retrans).
    pub total_retrans: u32,
    /// The kernel's latest delivery rate estimate, bits per second (tcpi_delivery_rate).
    pub delivery_rate_bps: u64,
    /// Bytes the receiver acknowledged so far (tcpi_bytes_acked; the SYN and the FIN count one
    /// each).
    pub bytes_acked: u64,
    /// The sender's maximum segment size (tcpi_snd_mss).
    pub mss: u32,
}

/// What one transfer did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkReport {
    pub target: SocketAddr,
    /// The congestion control the socket ran, read back from the kernel.
    pub congestion: String,
    /// Seconds from connect to the last acknowledgement (`elapsed_us` in JSON).
    #[serde(rename = "elapsed_us", with = "micros")]
    pub seconds: f64,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub total_retrans: u32,
    /// bytes_acked over seconds, in bits per second: what reached the receiving application.
    pub goodput_bps: f64,
    pub samples: Vec<Sample>,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, io::Error),
    #[error(
        "congestion control {0:?} refused: {1} (see `sysctl net.ipv4.tcp_available_congestion_control`)"
    )]
    Congestion(String, io::Error),
    #[error("sending to {0}: {1}")]
    Send(SocketAddr, io::Error),
    #[error("--duration {0:?} is longer than the maximum of 120s")]
    TooLong(Duration),
}

/// The slow-start threshold as TCP_INFO gives it, or `None` while the kernel holds it infinite.
pub fn ssthresh(raw: u32) -> Option<u32> {
    (raw < SSTHRESH_INFINITE).then_some(raw)
}

/// Reads TCP_INFO as one [`Sample`], `t` seconds into the transfer.
///
/// # Errors
/// The getsockopt error.
pub fn sample(socket: &impl AsRawFd, t: f64) -> io::Result<Sample> {
    let info = protolab_transport::batch::tcp_info(socket)?;
    Ok(Sample {
        t,
        cwnd: info.snd_cwnd,
        ssthresh: ssthresh(info.snd_ssthresh),
        srtt_us: info.rtt_us,
        total_retrans: info.total_retrans,
        delivery_rate_bps: info.delivery_rate.saturating_mul(8),
        bytes_acked: info.bytes_acked,
        mss: info.snd_mss,
    })
}

fn connect(cfg: &BulkConfig) -> Result<(TcpStream, String), BulkError> {
    let options = BlockingConnect {
        congestion: cfg.congestion.clone(),
        notsent_lowat: Some(NOTSENT_LOWAT),
        nodelay: false,
    };
    let stream = connect_tcp_blocking(cfg.target, Duration::from_secs(5), &options).map_err(
        |e| match e {
            BlockingConnectError::Congestion { name, source } => {
                BulkError::Congestion(name, source)
            }
            BlockingConnectError::Connect(e) => BulkError::Connect(cfg.target, e),
        },
    )?;
    let congestion = congestion_of(&stream).unwrap_or_default();
    Ok((stream, congestion))
}

/// Runs one transfer: writes for `duration`, closes its side, waits for the sink to close, and
/// returns what TCP_INFO said along the way.
///
/// # Errors
/// Connecting, a refused congestion control, or the connection failing.
pub fn run(cfg: &BulkConfig) -> Result<BulkReport, BulkError> {
    if cfg.duration > MAX_DURATION {
        return Err(BulkError::TooLong(cfg.duration));
    }
    let target = cfg.target;
    let (stream, congestion) = connect(cfg)?;
    let start = Instant::now();
    let watch = stream
        .try_clone()
        .map_err(|e| BulkError::Connect(target, e))?;
    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let period = cfg.sample.max(Duration::from_millis(1));
    let deadline = start + cfg.duration;

    let (sent_result, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut samples = Vec::new();
            let mut next = start;
            while !done.load(Ordering::Acquire) && samples.len() < MAX_SAMPLES {
                match sample(&watch, start.elapsed().as_secs_f64()) {
                    Ok(one) => samples.push(one),
                    Err(e) => {
                        tracing::debug!(error = %e, "TCP_INFO unavailable");
                        break;
                    }
                }
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    // Fell behind (a busy machine): take the next reading now, not a burst.
                    next = now;
                }
            }
            samples
        });
        let result = send(&stream, deadline, &sent);
        // The last reading: everything is acknowledged once the sink closed.
        let last = sample(&watch, start.elapsed().as_secs_f64());
        done.store(true, Ordering::Release);
        let mut samples = sampler.join().unwrap_or_default();
        if let Ok(last) = last {
            samples.push(last);
        }
        (result, samples)
    });
    sent_result.map_err(|e| BulkError::Send(target, e))?;
    let last = samples.last().copied();
    let seconds = last.map_or(0.0, |l| l.t);
    let bytes_acked = last.map_or(0, |l| l.bytes_acked);
    Ok(BulkReport {
        target,
        congestion,
        seconds,
        bytes_sent: sent.into_inner(),
        bytes_acked,
        total_retrans: last.map_or(0, |l| l.total_retrans),
        goodput_bps: if seconds > 0.0 {
            bytes_acked as f64 * 8.0 / seconds
        } else {
            0.0
        },
        samples,
    })
}

/// Writes until the deadline, closes the sending side and reads until the sink closes too:
/// then every byte sent has been acknowledged.
fn send(mut stream: &TcpStream, deadline: Instant, sent: &AtomicU64) -> io::Result<()> {
    let chunk = vec![0x5a_u8; 64 * 1024];
    while Instant::now() < deadline {
        stream.write_all(&chunk)?;
        sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = [0u8; 512];
    // The sink sends nothing; EOF says it read everything and closed.
    while stream.read(&mut buf)? > 0 {}
    Ok(())
}

/// What `udpecho sink` received, per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkReceived {
    pub peer: SocketAddr,
    pub bytes: u64,
    #[serde(rename = "elapsed_us", with = "micros")]
    pub seconds: f64,
}

/// What `udpecho sink` does.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where [`bind_sink`] listens.
    pub listen: SocketAddr,
    /// Connections at once; more are turned away.
    pub max_connections: usize,
    /// A connection silent this long is closed.
    pub idle_timeout: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5001)),
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The sink's listening socket, bound and not yet served.
#[derive(Debug)]
pub struct SinkBound {
    listener: tokio::net::TcpListener,
}

impl SinkBound {
    /// The address to announce (`tcp`).
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        // A bound socket always has an address; an error here would be the kernel's, and
        // `sink` meets the same socket again.
        self.listener
            .local_addr()
            .map(|a| vec![("tcp", a)])
            .unwrap_or_default()
    }
}

/// Binds the sink's `config.listen` through protolab-transport. Call it inside a tokio
/// runtime.
///
/// # Errors
/// The address cannot be bound (a port in use, an address not on this machine).
pub fn bind_sink(config: &SinkConfig) -> Result<SinkBound, ListenError> {
    let listener = protolab_transport::bind_tcp(config.listen)
        .map_err(|e| ListenError::new("tcp", config.listen, e))?;
    Ok(SinkBound { listener })
}

/// What the sink did, over all its connections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkReport {
    /// Connections accepted.
    pub connections: u64,
    /// Connections turned away at the cap.
    pub busy: u64,
    /// Bytes read and dropped.
    pub bytes: u64,
}

/// Runs the sink on `bound` until `shutdown`: every connection's bytes are read and dropped;
/// `on_closed` hears of each finished connection as it ends (the per-connection lines of
/// `udpecho sink` are printed while it runs, not at the end).
///
/// # Errors
/// The listener failing.
pub async fn sink(
    bound: SinkBound,
    config: SinkConfig,
    shutdown: CancellationToken,
    on_closed: impl Fn(SinkReceived) + Send + Sync + 'static,
) -> io::Result<SinkReport> {
    let tcp = TcpServerConfig {
        max_connections: config.max_connections,
        idle_timeout: Some(config.idle_timeout),
        ..TcpServerConfig::default()
    };
    let on_closed = Arc::new(on_closed);
    let stats = Arc::new(TcpServerStats::default());
    let total = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&total);
    protolab_transport::run_tcp(
        bound.listener,
        tcp,
        shutdown,
        Arc::clone(&stats),
        move |mut stream, conn| {
            let on_closed = Arc::clone(&on_closed);
            let counted = Arc::clone(&counted);
            async move {
                let start = Instant::now();
                let mut bytes = 0u64;
                // One 64 KiB buffer per connection, emptied after every read.
                let mut buf = BytesMut::with_capacity(64 * 1024);
                loop {
                    match conn.read_buf(&mut stream, &mut buf).await {
                        Next::Item(Ok(n)) => {
                            bytes += n as u64;
                            buf.clear();
                        }
                        Next::Item(Err(e)) => {
                            tracing::debug!(error = %e, "sink read failed");
                            break;
                        }
                        Next::Eof | Next::IdleTimeout | Next::Closing => break,
                    }
                }
                counted.fetch_add(bytes, Ordering::Relaxed);
                on_closed(SinkReceived {
                    peer: conn.peer,
                    bytes,
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
        },
    )
    .await?;
    Ok(SinkReport {
        connections: stats.accepted.load(Ordering::Relaxed),
        busy: stats.busy.load(Ordering::Relaxed),
        bytes: total.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_over_loopback_is_sampled_and_acknowledged_in_full() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = SinkConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..SinkConfig::default()
        };
        let bound = rt.block_on(async { bind_sink(&config) }).unwrap();
        let addr = bound.local_addrs()[0].1;
        let shutdown = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let server = rt.spawn(sink(bound, config, shutdown.clone(), move |r| {
            let _ = tx.send(r);
        }));
        let report = run(&BulkConfig {
            target: addr,
            congestion: Some("reno".into()),
            duration: Duration::from_millis(300),
            sample: Duration::from_millis(5),
        })
        .unwrap();
        let received = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        shutdown.cancel();
        let sunk = rt.block_on(server).unwrap().unwrap();
        assert_eq!(sunk.connections, 1);
        assert_eq!(sunk.bytes, received.bytes);
        assert_eq!(report.congestion, "reno");
        assert!(report.bytes_sent > 0);
        assert_eq!(received.bytes, report.bytes_sent);
        // tcpi_bytes_acked counts the SYN's and the FIN's sequence numbers too.
        assert_eq!(report.bytes_acked, report.bytes_sent + 2);
        assert!(
            report.samples.len() >= 2,
            "{} samples",
            report.samples.len()
        );
        assert!(report.samples.iter().all(|s| s.cwnd > 0));
    }

    #[test]
    fn an_infinite_ssthresh_is_absent() {
        assert_eq!(ssthresh(0x7fff_ffff), None);
        assert_eq!(ssthresh(u32::MAX), None);
        assert_eq!(ssthresh(42), Some(42));
        assert_eq!(ssthresh(2), Some(2));
    }

    #[test]
    fn an_unknown_congestion_control_is_refused_by_name() {
        let err = run(&BulkConfig {
            target: "127.0.0.1:9".parse().unwrap(),
            congestion: Some("no-such-cc".into()),
            duration: Duration::from_millis(10),
            sample: Duration::from_millis(5),
        })
        .unwrap_err();
        assert!(err.to_string().contains("no-such-cc"), "{err}");
    }
}
