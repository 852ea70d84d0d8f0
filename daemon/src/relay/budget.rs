//! The relay's global memory budget: jobs reserve their worst case up front and give it back when
//! they are dropped, on every exit path (the reservation is a guard).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A job could not get its memory.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "memory budget exhausted: the job needs {need_mib:.1} MiB, {free_mib:.1} MiB of {limit_mib:.1} MiB are free"
)]
pub struct BudgetError {
    pub need_mib: f64,
    pub free_mib: f64,
    pub limit_mib: f64,
}

#[derive(Debug)]
pub struct Budget {
    limit: u64,
    used: AtomicU64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Budget {
    pub fn new(limit_bytes: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit: limit_bytes,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reserves `bytes`, or refuses without reserving anything.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, BudgetError> {
        let res = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            });
        match res {
            Ok(_) => Ok(Reservation {
                budget: Arc::clone(self),
                bytes,
            }),
            Err(used) => Err(BudgetError {
                need_mib: bytes as f64 / MIB,
                free_mib: self.limit.saturating_sub(used) as f64 / MIB,
                limit_mib: self.limit as f64 / MIB,
            }),
        }
    }
}

/// Memory held for one job; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_refuse_release() {
        let b = Budget::new(100);
        let r1 = b.reserve(60).expect("fits");
        let err = b.reserve(50).expect_err("over");
        assert!(err.to_string().contains("memory budget exhausted"), "{err}");
        assert_eq!(b.used(), 60, "a refusal reserves nothing");
        drop(r1);
        assert_eq!(b.used(), 0);
        let _r2 = b.reserve(100).expect("fits again");
        assert!(b.reserve(u64::MAX).is_err());
    }
}
