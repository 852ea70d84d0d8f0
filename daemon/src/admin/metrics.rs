//! Per-second traffic samples: a 15-minute ring buffer for WatchMetrics' history, and a
//! broadcast of each new sample.

use crate::core::traffic::Traffic;
use mr_proto::v1::{Flow, MetricsSample};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// 15 minutes of 1 s samples.
pub const HISTORY: usize = 15 * 60;

/// Gauges the sampler reads each second: (jobs running, memory reserved in bytes).
pub type Gauges = Arc<dyn Fn() -> (u32, u64) + Send + Sync>;

#[derive(Clone)]
pub struct Metrics {
    ring: Arc<Mutex<VecDeque<MetricsSample>>>,
    tx: broadcast::Sender<MetricsSample>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn now_ms() -> u64 {
    crate::wire::handshake::now_ms()
}

/// Resident memory of this process, from /proc (0 where there is none).
pub fn rss_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(HISTORY))),
            tx: broadcast::channel(64).0,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<MetricsSample>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The history (oldest first) and a receiver of the samples after it.
    pub fn subscribe(&self) -> (Vec<MetricsSample>, broadcast::Receiver<MetricsSample>) {
        let ring = self.ring();
        (ring.iter().cloned().collect(), self.tx.subscribe())
    }

    /// The newest sample.
    pub fn last(&self) -> Option<MetricsSample> {
        self.ring().back().cloned()
    }

    /// Records one sample from the counters (reset by reading) and gauges.
    pub fn sample(&self, traffic: &[Traffic], gauges: &Gauges) -> MetricsSample {
        let flows: Vec<Flow> = traffic
            .iter()
            .flat_map(Traffic::take)
            .map(|f| Flow {
                kind: f.kind.to_string(),
                id: f.id,
                label: f.label,
                bytes_in: f.bytes_in,
                bytes_out: f.bytes_out,
            })
            .collect();
        let (jobs_running, memory_reserved) = gauges();
        let s = MetricsSample {
            at_ms: now_ms(),
            bytes_in: flows.iter().map(|f| f.bytes_in).sum(),
            bytes_out: flows.iter().map(|f| f.bytes_out).sum(),
            flows,
            jobs_running,
            memory_reserved,
            rss_bytes: rss_bytes(),
            history: false,
        };
        {
            let mut ring = self.ring();
            if ring.len() == HISTORY {
                ring.pop_front();
            }
            ring.push_back(s.clone());
        }
        let _ = self.tx.send(s.clone());
        s
    }

    /// Samples once a second until the returned task is aborted.
    pub fn spawn_sampler(
        &self,
        traffic: Vec<Traffic>,
        gauges: Gauges,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                me.sample(&traffic, &gauges);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_fifteen_minutes() {
        let m = Metrics::new();
        let t = Traffic::new();
        let flow = t.flow("peer", "5Abc", "rank 0");
        let g: Gauges = Arc::new(|| (2, 100));
        flow.add_in(7);
        let first = m.sample(std::slice::from_ref(&t), &g);
        assert_eq!((first.bytes_in, first.jobs_running), (7, 2));
        assert_eq!(first.flows[0].id, "5Abc");
        for _ in 0..HISTORY {
            m.sample(std::slice::from_ref(&t), &g);
        }
        let (hist, _) = m.subscribe();
        assert_eq!(hist.len(), HISTORY);
        assert_eq!(hist[0].bytes_in, 0, "the oldest was dropped");
        assert!(rss_bytes() > 0);
    }
}
