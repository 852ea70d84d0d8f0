//! Optional progress counters of one peer, shared with whoever watches it (the bench bot shows
//! bytes done and throughput now, and takes latency and per-direction times from them).
//!
//! Updated once per block (1 MiB by default), so the cost is a few atomics per block.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Tensor bytes this peer has sent and received (in f32 terms: elements x 4), and when the
/// first result block and the last block of each direction went by.
#[derive(Debug, Default)]
pub struct PeerProgress {
    sent: AtomicU64,
    received: AtomicU64,
    times: Mutex<Times>,
}

/// Instants of the blocks, since the counters were made.
#[derive(Debug, Default, Clone, Copy)]
pub struct Times {
    pub first_received: Option<Instant>,
    pub last_sent: Option<Instant>,
    pub last_received: Option<Instant>,
}

impl PeerProgress {
    pub fn new() -> PeerProgress {
        PeerProgress::default()
    }

    pub(crate) fn on_sent(&self, elements: usize) {
        self.sent.fetch_add(4 * elements as u64, Ordering::Relaxed);
        self.lock().last_sent = Some(Instant::now());
    }

    pub(crate) fn on_received(&self, elements: usize) {
        self.received
            .fetch_add(4 * elements as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut t = self.lock();
        t.first_received.get_or_insert(now);
        t.last_received = Some(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tensor bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Tensor bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn times(&self) -> Times {
        *self.lock()
    }

    /// Forgets the last-block instants (between operations; the first result is kept).
    pub fn reset_last(&self) {
        let mut t = self.lock();
        t.last_sent = None;
        t.last_received = None;
    }
}
