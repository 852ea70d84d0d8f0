//! Capped exponential backoff with jitter: after failure k the wait is a random duration in
//! [d/2, d] with d = min(initial x 2^k, max), so bots that failed together do not retry together.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The wait before the next attempt after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let half = d / 2;
        half + d.saturating_sub(half).mul_f64(rand::random::<f64>())
    }

    /// The upper bound of the next wait.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d >= c / 2 && d <= c, "{d:?} not in [{:?}, {c:?}]", c / 2);
            ceilings.push(c.as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10]);
        // Jitter: many draws at the cap are not all equal.
        let draws: std::collections::HashSet<u128> =
            (0..20).map(|_| b.next_delay().as_micros()).collect();
        assert!(draws.len() > 1);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
