//! Per-miner byte counters of every peer in this process, for a daemon's admin metrics (the bench
//! daemon's virtual peers). Off until a daemon calls [`enable`]: a training process pays nothing.

use crate::core::traffic::{FlowCounter, Traffic};
use std::sync::{Arc, OnceLock};

static GLOBAL: OnceLock<Traffic> = OnceLock::new();

/// Turns counting on for every peer of this process and returns the counters to sample.
pub fn enable() -> Traffic {
    GLOBAL.get_or_init(Traffic::new).clone()
}

/// The counter of the miner of `shard` of a job, when counting is on.
pub(crate) fn flow(job: &super::Job, shard: usize) -> Option<Arc<FlowCounter>> {
    let t = GLOBAL.get()?;
    let (id, label) = match job.miners.get(shard) {
        Some(m) => (m.hotkey.clone(), format!("miner {shard} at {}", m.address)),
        None => (format!("shard {shard}"), format!("miner {shard}")),
    };
    Some(t.flow("miner", &id, &label))
}
