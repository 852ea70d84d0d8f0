//! Byte counters per counterpart (a peer of a relay, a miner of a peer), read and reset once a
//! second by the admin API's metrics sampler. Counting is two relaxed atomic adds per frame.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes to and from one counterpart since the last [`Traffic::take`].
#[derive(Debug)]
pub struct FlowCounter {
    /// "peer" or "miner".
    pub kind: &'static str,
    /// Hotkey (ss58), or address when the hotkey is unknown.
    pub id: String,
    /// Short human label ("rank 1 of job 7", "uid 3").
    pub label: String,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl FlowCounter {
    pub fn add_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
}

/// One counterpart's bytes over a sampling interval.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSample {
    pub kind: &'static str,
    pub id: String,
    pub label: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Counters by (kind, id).
type Flows = HashMap<(&'static str, String), Arc<FlowCounter>>;

/// Every counterpart's counters. Clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    flows: Arc<Mutex<Flows>>,
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic::default()
    }

    /// The counter of a counterpart, created on first use; hold it while the connection lives.
    pub fn flow(&self, kind: &'static str, id: &str, label: &str) -> Arc<FlowCounter> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(flows.entry((kind, id.to_string())).or_insert_with(|| {
            Arc::new(FlowCounter {
                kind,
                id: id.to_string(),
                label: label.to_string(),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            })
        }))
    }

    /// Reads and resets every counter; counters nobody holds any more are dropped once read.
    pub fn take(&self) -> Vec<FlowSample> {
        let mut flows = self.flows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(flows.len());
        flows.retain(|_, c| {
            let (i, o) = (
                c.bytes_in.swap(0, Ordering::Relaxed),
                c.bytes_out.swap(0, Ordering::Relaxed),
            );
            if i > 0 || o > 0 {
                out.push(FlowSample {
                    kind: c.kind,
                    id: c.id.clone(),
                    label: c.label.clone(),
                    bytes_in: i,
                    bytes_out: o,
                });
            }
            Arc::strong_count(c) > 1
        });
        out.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_resets_and_forgets_dropped_flows() {
        let t = Traffic::new();
        let a = t.flow("peer", "A", "rank 0");
        a.add_in(10);
        a.add_out(3);
        t.flow("peer", "A", "rank 0").add_in(5);
        let s = t.take();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].bytes_in, s[0].bytes_out), (15, 3));
        assert!(t.take().is_empty());
        a.add_out(1);
        drop(a);
        assert_eq!(t.take()[0].bytes_out, 1);
        assert!(t.flows.lock().expect("lock").is_empty());
    }
}
