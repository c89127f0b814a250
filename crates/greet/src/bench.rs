//! `greet bench`: a load generator for any server that answers one line with one line.
//!
//! Each connection sends a line, waits for the reply line, and repeats until the time is up
//! (one request in flight per connection, as an interactive client would). Latencies go into an
//! HDR histogram per connection, merged at the end. The same generator drives `greet serve`,
//! redis-server (`--line PING`) and the classic Python server, so they are compared fairly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Options of `greet bench`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub server: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    /// The request line, sent with a trailing LF.
    pub line: String,
    /// Read and discard one banner line after connecting (greet's `Welcome!`).
    pub skip_banner: bool,
    /// Told once a second how the load stands, and once more when it ends; the caller
    /// decides whether and where to show it (the library prints nothing).
    pub progress: Option<OnProgress>,
    /// Ends the load early (the first Ctrl-C): every connection stops after its request in
    /// flight and the report covers what was done, as ping and irtt do.
    pub stop: CancellationToken,
}

/// How the load stands, handed to [`BenchConfig::progress`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Requests answered so far.
    pub requests: u64,
    /// Time since the load started.
    pub elapsed: Duration,
    /// The load has ended: the last call of the run, carrying no new figures.
    pub finished: bool,
}

/// A progress callback, called from a task of the runtime.
pub type OnProgress = protolab_transport::progress::OnProgress<Progress>;

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    pub server: SocketAddr,
    pub connections: usize,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Connections that ended early (reset, closed, refused).
    pub errors: u64,
    pub requests: u64,
    /// How long the load ran, in microseconds.
    pub elapsed_us: u64,
    pub requests_per_sec: f64,
    pub latency_us: Latency,
    /// True when a signal ended the load before `--duration`.
    pub interrupted: bool,
}

/// Request latencies in microseconds.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("no connection to tcp {0} could be opened: {1}")]
    NoConnection(SocketAddr, std::io::Error),
}

/// How long one connection's handshake may take before it counts as a connect error. Generous:
/// a burst of connections may find the accept queue full, and the kernel retries a dropped SYN
/// after 1, 3 and 7 seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Runs the load.
///
/// # Errors
/// [`BenchError::NoConnection`] when not a single connection opens.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    // Open every connection before the clock starts, a few hundred at a time so that the
    // server's accept queue is not flooded.
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut connecting = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let gate = gate.clone();
        let (server, skip) = (config.server, config.skip_banner);
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore open");
            let stream = protolab_transport::connect_tcp(server, CONNECT_TIMEOUT).await?;
            let mut reader = BufReader::new(stream);
            if skip {
                let mut banner = Vec::new();
                reader.read_until(b'\n', &mut banner).await?;
            }
            Ok::<_, std::io::Error>(reader)
        }));
    }
    let mut streams = Vec::new();
    let mut connect_errors = 0u64;
    let mut last_error = None;
    for c in connecting {
        match c.await.expect("connect task") {
            Ok(s) => streams.push(s),
            Err(e) => {
                connect_errors += 1;
                last_error = Some(e);
            }
        }
    }
    if streams.is_empty() {
        let e = last_error.unwrap_or_else(|| std::io::Error::other("zero connections asked"));
        return Err(BenchError::NoConnection(config.server, e));
    }

    let request = Bytes::from(format!("{}\n", config.line));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + config.duration;
    let progress = config.progress.clone().map(|on| {
        let count = count.clone();
        let ticker = tokio::spawn({
            let on = on.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    on.call(&Progress {
                        requests: count.load(Ordering::Relaxed),
                        elapsed: start.elapsed(),
                        finished: false,
                    });
                }
            }
        });
        (ticker, on)
    });
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            tokio::spawn(connection(
                stream,
                request.clone(),
                deadline,
                count.clone(),
                config.stop.clone(),
            ))
        })
        .collect();
    let mut hist = histogram();
    let mut errors = 0;
    for t in tasks {
        let (h, ok) = t.await.expect("connection task");
        hist.add(&h).expect("same histogram bounds");
        errors += u64::from(!ok);
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some((ticker, on)) = progress {
        ticker.abort();
        on.call(&Progress {
            finished: true,
            ..Progress::default()
        });
    }
    let requests = hist.len();
    Ok(BenchReport {
        server: config.server,
        connections: config.connections,
        connect_errors,
        errors,
        requests,
        elapsed_us: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        requests_per_sec: requests as f64 / seconds,
        interrupted: config.stop.is_cancelled(),
        latency_us: Latency {
            mean: hist.mean().round() as u64,
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            max: hist.max(),
        },
    })
}

/// One connection's loop; returns its latencies and whether it ran to the deadline.
async fn connection(
    mut stream: BufReader<TcpStream>,
    request: Bytes,
    deadline: Instant,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> (Histogram<u64>, bool) {
    let mut hist = histogram();
    let mut reply = Vec::with_capacity(64);
    loop {
        let sent = Instant::now();
        if sent >= deadline || stop.is_cancelled() {
            return (hist, true);
        }
        if stream.get_mut().write_all(&request).await.is_err() {
            return (hist, false);
        }
        reply.clear();
        match stream.read_until(b'\n', &mut reply).await {
            Ok(n) if n > 0 && reply.ends_with(b"\n") => {}
            _ => return (hist, false),
        }
        let us = sent.elapsed().as_micros() as u64;
        let _ = hist.record(us.max(1));
        count.fetch_add(1, Ordering::Relaxed);
    }
}
