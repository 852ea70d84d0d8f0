//! Counts of refused requests by where and why, for the Prometheus exporter. Process-wide: a
//! daemon refuses on several listeners (axon, relay) and the counts are read in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;

static COUNTS: Mutex<BTreeMap<(&'static str, &'static str), u64>> = Mutex::new(BTreeMap::new());

/// One refusal: `place` is the listener ("axon", "relay"), `reason` a short stable word
/// ("unauthenticated", "permission_denied", "rate_limited", "handshake", ...).
pub fn record(place: &'static str, reason: &'static str) {
    let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *c.entry((place, reason)).or_insert(0) += 1;
}

/// Every (place, reason) seen so far and its count.
pub fn snapshot() -> Vec<((&'static str, &'static str), u64)> {
    let c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    c.iter().map(|(k, v)| (*k, *v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_place_and_reason() {
        record("test-place", "a");
        record("test-place", "a");
        record("test-place", "b");
        let s = snapshot();
        let get = |r| {
            s.iter()
                .find(|(k, _)| *k == ("test-place", r))
                .map(|(_, n)| *n)
        };
        assert_eq!(get("a"), Some(2));
        assert_eq!(get("b"), Some(1));
    }
}
