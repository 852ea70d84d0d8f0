//! Failover on the data plane: when the miner of a shard dies or stalls mid-operation, the peer
//! moves that shard to a spare miner named in the ticket and runs the shard again there.
//!
//! Choices, and why:
//! - **Which spare**: derived from the signed ticket, with no round trip. The k-th failover of
//!   shard i (k = 0, 1, ...) goes to `spares[(i + k) % spares.len()]`, and a shard fails over at
//!   most `spares.len()` times. Every peer sees the same failure (the miner's connection closes
//!   or goes silent for all of them), so every peer picks the same spare. A validator-signed
//!   reassignment would cost a control-plane round trip from every peer in the middle of an
//!   operation and would add a dependency on the validator being up for the data plane.
//! - **From where**: the start of the shard, for the operation that was running. The relays do
//!   not acknowledge blocks to peers, and a peer's received results say nothing about what the
//!   other peers received; since results are written in place over the inputs, a block some peer
//!   has already received could not be contributed again by it. So each peer keeps a copy of its
//!   shard's input while the job has spares ([`Backup`]), restores it on failover and sends the
//!   whole shard to the spare, which reduces it again in rank order: the result is bit-exact.
//!   The cost is one copy of the tensor per operation, and only for jobs with spares.
//! - **What counts as the miner failing**: its connection closed, reset, timed out past the
//!   adaptive deadline, or broke the protocol. A relay's own error report (`PeerError::Relay`)
//!   is not: it names a peer that failed, and a spare would not help.
//! - **Limits**: a peer that had already received all of a shard before its miner died does not
//!   come to the spare, so the others' failover then fails at the join with a clear error (a
//!   broadcast's source, which receives nothing, is the usual case). No peer returns data for an
//!   operation whose shard it did not receive in full.

use super::conn::Conn;
use super::{Job, PeerError};
use crate::wire::MinerSlot;
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;

/// How a miner failed, as every peer sees it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Closed or reset its connection (the process died, the network dropped).
    Dropped,
    /// Went silent past the adaptive deadline (stalled, or the link did).
    Stalled,
    /// Sent frames that break the protocol.
    Protocol,
}

impl LossKind {
    pub fn of(e: &PeerError) -> Option<LossKind> {
        match e {
            PeerError::Closed { .. } | PeerError::Io { .. } => Some(LossKind::Dropped),
            PeerError::Timeout { .. } => Some(LossKind::Stalled),
            PeerError::Protocol { .. } => Some(LossKind::Protocol),
            PeerError::MinerLost { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            LossKind::Dropped => "dropped the connection",
            LossKind::Stalled => "stalled past the deadline",
            LossKind::Protocol => "broke the protocol",
        }
    }
}

/// Whether an error means the miner itself failed (a spare may take over its shard).
pub fn is_miner_failure(e: &PeerError) -> bool {
    matches!(
        e,
        PeerError::Closed { .. }
            | PeerError::Timeout { .. }
            | PeerError::Io { .. }
            | PeerError::Protocol { .. }
    )
}

/// The spare that takes over `shard` at its `k`-th failover, if the ticket has one left.
pub fn spare_for(job: &Job, shard: usize, k: u32) -> Option<(usize, &MinerSlot)> {
    let n = job.spares.len();
    if n == 0 || k as usize >= n {
        return None;
    }
    let i = (shard + k as usize) % n;
    Some((i, &job.spares[i]))
}

/// "spare i (hotkey at address)", for errors.
pub fn spare_name(job: &Job, i: usize) -> String {
    match job.spares.get(i) {
        Some(m) => format!("spare {i} ({} at {})", m.hotkey, m.address),
        None => format!("spare {i}"),
    }
}

/// A copy of one shard's input, kept while an operation runs when the job has spares.
pub enum Backup {
    /// No spare: no failover, nothing kept.
    None,
    /// This peer sends nothing in this operation (a broadcast's receivers): the spare's result
    /// overwrites the whole shard, so nothing needs keeping either.
    NotSending,
    Copy(Vec<f32>),
}

impl Backup {
    pub fn of(job: &Job, shard: &[f32], sends: bool) -> Backup {
        match (job.spares.is_empty(), sends) {
            (true, _) => Backup::None,
            (false, false) => Backup::NotSending,
            (false, true) => Backup::Copy(shard.to_vec()),
        }
    }

    /// Puts the input back (results of the failed miner may have overwritten part of it);
    /// false when there is no failover.
    pub fn restore(&self, shard: &mut [f32]) -> bool {
        match self {
            Backup::None => false,
            Backup::NotSending => true,
            Backup::Copy(b) => {
                shard.copy_from_slice(b);
                true
            }
        }
    }
}

/// Clones of every shard's socket, so any thread can unblock all of them at once, including a
/// connection that replaced a failed one mid-operation.
pub struct Aborts {
    socks: Mutex<Vec<Option<TcpStream>>>,
    aborted: std::sync::atomic::AtomicBool,
}

impl Aborts {
    pub fn new(conns: &[Conn]) -> Aborts {
        Aborts {
            socks: Mutex::new(conns.iter().map(|c| c.reader.try_clone().ok()).collect()),
            aborted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Shuts every connection down: the operation is over for this peer.
    pub fn abort_all(&self) {
        self.aborted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let g = self.socks.lock().unwrap_or_else(|p| p.into_inner());
        for s in g.iter().flatten() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`Aborts::abort_all`] ran (errors seen after it are our own doing).
    pub fn aborted(&self) -> bool {
        self.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Shard `i` now runs over `c`.
    pub fn replace(&self, i: usize, c: &Conn) {
        let mut g = self.socks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = g.get_mut(i) {
            *slot = c.reader.try_clone().ok();
        }
        if self.aborted() {
            // Lost the race with an abort: this one must not keep the operation waiting.
            c.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Dtype, Layout};
    use crate::wire::SignedTicket;
    use std::time::Duration;

    fn job(spares: usize) -> Job {
        let slot = |n: usize| MinerSlot {
            hotkey: format!("m{n}"),
            address: format!("127.0.0.1:{}", 9000 + n),
            weight: 1,
        };
        Job {
            id: 1,
            rank: 0,
            peers: 2,
            peer_hotkeys: vec!["a".into(), "b".into()],
            miners: (0..3).map(slot).collect(),
            spares: (10..10 + spares).map(slot).collect(),
            dtype: Dtype::F32,
            elements: 30,
            layout: Layout::new(30, &[1, 1, 1], 4).expect("layout"),
            deadline_floor: Duration::from_secs(1),
            ticket: SignedTicket::default(),
            sample: Default::default(),
        }
    }

    #[test]
    fn every_peer_derives_the_same_spare_and_spares_run_out() {
        let j = job(2);
        assert_eq!(spare_for(&j, 0, 0).map(|s| s.0), Some(0));
        assert_eq!(spare_for(&j, 1, 0).map(|s| s.0), Some(1));
        assert_eq!(spare_for(&j, 1, 1).map(|s| s.0), Some(0));
        assert!(spare_for(&j, 1, 2).is_none(), "two spares, two failovers");
        assert!(spare_for(&job(0), 0, 0).is_none());
        assert!(spare_name(&j, 1).contains("m11 at 127.0.0.1:9011"));
    }

    #[test]
    fn only_the_miners_own_failures_move_its_shard() {
        let closed = PeerError::Closed {
            miner: "m".into(),
            during: "x".into(),
        };
        assert!(is_miner_failure(&closed));
        let relay = PeerError::Relay {
            miner: "m".into(),
            reason: "rank 1 disconnected".into(),
        };
        assert!(
            !is_miner_failure(&relay),
            "a peer's failure: no spare helps"
        );
        let lost = PeerError::MinerLost {
            miner: "miner 1 (m at 127.0.0.1:1)".into(),
            kind: LossKind::of(&closed).expect("a loss"),
            why: "the job has no spare miner".into(),
            detail: closed.to_string(),
        };
        assert_eq!(
            lost.to_string(),
            "miner 1 (m at 127.0.0.1:1) dropped the connection mid-operation and the job has no \
             spare miner; the operation is abandoned, no result is returned (seen here: m closed \
             the connection x)"
        );
    }

    #[test]
    fn a_backup_is_kept_only_when_there_is_a_spare() {
        let mut shard = vec![1.0f32, 2.0];
        let b = Backup::of(&job(1), &shard, true);
        shard[0] = 9.0;
        assert!(b.restore(&mut shard));
        assert_eq!(shard, vec![1.0, 2.0]);
        assert!(!Backup::of(&job(0), &shard, true).restore(&mut shard));
        assert!(matches!(
            Backup::of(&job(1), &shard, false),
            Backup::NotSending
        ));
    }
}
