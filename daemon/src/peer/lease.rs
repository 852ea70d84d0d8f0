//! A job's lease at the validator. A job lives validator.job_ttl_secs from its last renewal; a
//! [`super::Session`] renews it before a collective once half of the lease has gone, so a job in
//! use never expires while one left alone does.

use mr_proto::v1::JobInfo;

/// When the job expires, and when to renew it.
#[derive(Debug, Clone)]
pub struct Lease {
    ttl_ms: u64,
    expires_at_ms: u64,
    /// After a failed renewal (validator unreachable), not before this.
    retry_at_ms: u64,
}

impl Lease {
    /// From the job as the validator last described it (the lease length is its lifetime then).
    pub fn from_info(info: &JobInfo) -> Lease {
        Lease {
            ttl_ms: info.expires_at_ms.saturating_sub(info.created_at_ms),
            expires_at_ms: info.expires_at_ms,
            retry_at_ms: 0,
        }
    }

    /// Whether to renew before using the job at `now_ms`.
    pub fn due(&self, now_ms: u64) -> bool {
        now_ms >= self.retry_at_ms && now_ms.saturating_add(self.ttl_ms / 2) >= self.expires_at_ms
    }

    /// The validator renewed the job.
    pub fn renewed(&mut self, info: &JobInfo) {
        self.expires_at_ms = self.expires_at_ms.max(info.expires_at_ms);
        self.retry_at_ms = 0;
    }

    /// A renewal could not be made (not refused): try again after an eighth of the lease.
    pub fn failed(&mut self, now_ms: u64) {
        self.retry_at_ms = now_ms.saturating_add((self.ttl_ms / 8).max(1000));
    }

    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(created: u64, expires: u64) -> JobInfo {
        JobInfo {
            created_at_ms: created,
            expires_at_ms: expires,
            ..Default::default()
        }
    }

    #[test]
    fn due_past_half_the_lease_and_after_a_failure_backs_off() {
        let mut l = Lease::from_info(&info(1_000, 11_000)); // 10 s lease
        assert!(!l.due(1_000));
        assert!(!l.due(5_999));
        assert!(l.due(6_000));
        l.renewed(&info(1_000, 16_000));
        assert_eq!(l.expires_at_ms(), 16_000);
        assert!(!l.due(10_999));
        assert!(l.due(11_000));
        l.failed(11_000);
        assert!(!l.due(11_500), "backs off after a failed renewal");
        assert!(l.due(12_250));
        // An older answer never moves the expiry back.
        l.renewed(&info(1_000, 12_000));
        assert_eq!(l.expires_at_ms(), 16_000);
    }
}
