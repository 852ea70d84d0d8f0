//! Per-block deadlines that follow measured throughput, never below a floor: a slow but steady
//! link is not cut off, and a dead one is noticed within the floor (10 s by default).

use std::time::Duration;

/// How many times the expected block time a block may take before the miner is given up on.
const SLACK: f64 = 8.0;
/// Added on the peer's side so that a relay's own report (sent at the floor) arrives first.
const MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Deadline {
    floor: Duration,
    /// Smoothed seconds per block of the slowest shard, once measured.
    per_block: Option<f64>,
}

impl Deadline {
    pub fn new(floor: Duration) -> Deadline {
        Deadline {
            floor,
            per_block: None,
        }
    }

    /// The time to wait for the next frame.
    pub fn current(&self) -> Duration {
        let adaptive = self
            .per_block
            .map(|s| Duration::from_secs_f64((s * SLACK).min(3600.0)))
            .unwrap_or_default();
        self.floor.max(adaptive) + MARGIN
    }

    /// Records an operation that moved `blocks` blocks (per miner, at most) in `took`.
    pub fn observe(&mut self, blocks: u32, took: Duration) {
        if blocks == 0 {
            return;
        }
        let s = took.as_secs_f64() / f64::from(blocks);
        self.per_block = Some(match self.per_block {
            Some(old) => 0.7 * old + 0.3 * s,
            None => s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_then_adapts_to_slow_links() {
        let mut d = Deadline::new(Duration::from_secs(10));
        assert_eq!(d.current(), Duration::from_secs(11));
        d.observe(10, Duration::from_millis(10));
        assert_eq!(
            d.current(),
            Duration::from_secs(11),
            "fast links keep the floor"
        );
        d.observe(1, Duration::from_secs(5));
        assert!(
            d.current() > Duration::from_secs(11),
            "a slow link gets more time"
        );
    }
}
