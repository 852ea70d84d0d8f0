//! Crash points for the real-process crash tests: with `MAPREDUCE_TEST_PAUSE_AT=<point>` in the
//! environment, the daemon logs `test pause at <point>` when it reaches that point and waits
//! there (for an hour), so a test can kill -9 it at an exact place. The variable does not start
//! with `MR_` on purpose: those are config keys. Unset (always, outside tests), this is a no-op.
//!
//! Points: `before_submit` (weight intent stored, set_weights not sent), `after_submit` (sent,
//! inclusion not yet seen), `after_inclusion` (included, weight set not yet recorded).

use std::sync::OnceLock;
use std::time::Duration;

/// The variable's name.
pub const PAUSE_AT: &str = "MAPREDUCE_TEST_PAUSE_AT";

fn point() -> Option<&'static str> {
    static P: OnceLock<Option<String>> = OnceLock::new();
    P.get_or_init(|| std::env::var(PAUSE_AT).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Waits here when the test asked to pause at `name`.
pub async fn pause(name: &str) {
    if point() == Some(name) {
        tracing::warn!("test pause at {name}");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
