//! The forwarding loop of one direction: read packets from one TUN device, let the impairment
//! engine decide their fate, write what it releases to the other device.
//!
//! Each direction runs on a thread of its own with non-blocking descriptors: it drains every
//! packet waiting (up to a batch), forwards what is due at once, and only then sleeps in
//! ppoll(2) until a packet arrives, the next delayed packet is due, or the link shuts down. With
//! no delay configured the engine releases a packet at the instant it arrives, so a packet is
//! written out before the next one is read and the link adds one read and one write per packet.

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::engine::{Engine, GroundTruth};

use super::trace::{Action, Direction};
use super::tun::{Tun, Waker, wait_readable};

/// Packets read in one go before the loop releases due packets and checks for shutdown again.
const BATCH: usize = 256;
/// The largest packet a TUN device hands over (its MTU can be raised up to 64 KiB).
const MAX_PACKET: usize = 65_536;

/// A packet seen entering the link, for the trace and the capture.
#[derive(Debug)]
pub struct Seen {
    pub at: Duration,
    pub direction: Direction,
    pub action: Action,
    pub packet: Vec<u8>,
}

/// What one direction's thread shares with the rest of the link.
#[derive(Debug)]
pub struct Shared<'a> {
    pub start: Instant,
    pub stop: &'a Waker,
    /// The engine's ground truth, copied after every batch so the link can report it at exit.
    pub truth: &'a Mutex<GroundTruth>,
    /// Packets the kernel refused to take on the far side (not counted by the engine).
    pub write_errors: &'a AtomicU64,
    /// Trace events not recorded because the tracer fell behind.
    pub trace_lost: &'a AtomicU64,
    /// Where to send what the trace or capture needs, when either is on.
    pub seen: Option<SyncSender<Seen>>,
}

/// Forwards packets from `from` to `to` through `engine` until the link shuts down.
///
/// # Errors
/// Reading the source device or waiting on it failing (the device was removed under us).
pub fn run(
    direction: Direction,
    from: &Tun,
    to: &Tun,
    mut engine: Engine<Vec<u8>>,
    shared: &Shared<'_>,
) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let mut drained = false;
        for _ in 0..BATCH {
            let n = match from.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let now = shared.start.elapsed();
            let packet = buf[..n].to_vec();
            // The trace copy is taken before the packet is forwarded, so that an answer it
            // provokes on the far side is always traced after it.
            let seen = shared.seen.as_ref().map(|tx| (tx, packet.clone()));
            let fate = engine.push(now, n, packet);
            if let Some((tx, packet)) = seen {
                let event = Seen {
                    at: now,
                    direction,
                    action: Action::from_fate(fate, now),
                    packet,
                };
                if let Err(TrySendError::Full(_)) = tx.try_send(event) {
                    shared.trace_lost.fetch_add(1, Ordering::Relaxed);
                }
            }
            release(&mut engine, now, to, shared);
        }
        release(&mut engine, shared.start.elapsed(), to, shared);
        *shared.truth.lock().unwrap_or_else(|p| p.into_inner()) = engine.truth().clone();
        if !drained {
            // A full batch: more may be waiting, read again before sleeping.
            continue;
        }
        let timeout = engine
            .next_release()
            .map(|due| due.saturating_sub(shared.start.elapsed()));
        if wait_readable(from.fd(), shared.stop.fd(), timeout)? {
            return Ok(());
        }
    }
}

/// Writes every packet the engine has released by `now` to the far device.
fn release(engine: &mut Engine<Vec<u8>>, now: Duration, to: &Tun, shared: &Shared<'_>) {
    while let Some(packet) = engine.pop_ready(now) {
        if let Err(e) = to.send(&packet) {
            // The far kernel refusing one packet (not IP, or the device going down at
            // shutdown) must not stop the link; it is counted and logged once per kind.
            shared.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("the far device refused a {}-byte packet: {e}", packet.len());
        }
    }
}
