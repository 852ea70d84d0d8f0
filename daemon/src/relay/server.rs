//! The relay's listener and its registry of jobs.

use super::budget::Budget;
use super::conn;
use super::job::JobCell;
use super::machine::{Fault, Machine, Params};
use crate::wire::handshake::Verified;
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Validator hotkeys (ss58) whose tickets this relay serves. Clones share one set, so a miner
/// can [`Trust::replace`] it as its metagraph changes while the relay runs.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    validators: Arc<std::sync::RwLock<HashSet<String>>>,
}

impl Trust {
    pub fn new(validators: impl IntoIterator<Item = String>) -> Trust {
        Trust {
            validators: Arc::new(std::sync::RwLock::new(validators.into_iter().collect())),
        }
    }

    fn set(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.validators.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn trusts(&self, ss58: &str) -> bool {
        self.set().contains(ss58)
    }

    pub fn len(&self) -> usize {
        self.set().len()
    }

    pub fn is_empty(&self) -> bool {
        self.set().is_empty()
    }

    /// Replaces the trusted set for every clone (connections already admitted are not affected).
    pub fn replace(&self, validators: impl IntoIterator<Item = String>) {
        *self.validators.write().unwrap_or_else(|e| e.into_inner()) =
            validators.into_iter().collect();
    }
}

/// What a relay enforces.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Blocks of a job held at once.
    pub window_blocks: u32,
    /// Memory budget over all jobs, in bytes.
    pub max_memory: u64,
    pub trust: Trust,
    /// Time a new connection has to send its handshake.
    pub handshake_timeout: Duration,
    /// Largest block a ticket may ask for, in wire bytes.
    pub max_block_bytes: u64,
    /// Connections one remote address may hold open at once.
    pub max_conns_per_ip: u32,
    /// This miner's hotkey (ss58): a ticket must name it for the shard joined (or among its
    /// spares), so a ticket issued for other miners cannot make this one reserve memory. None
    /// for a standalone `mrd relay`, which has no hotkey.
    pub own_hotkey: Option<String>,
}

impl RelayOptions {
    pub fn from_config(c: &crate::config::RelayConfig) -> RelayOptions {
        RelayOptions {
            window_blocks: c.window_blocks,
            max_memory: c.max_memory_mib.saturating_mul(1024 * 1024),
            trust: Trust::new(c.trust.iter().cloned()),
            handshake_timeout: Duration::from_secs(c.handshake_timeout_secs),
            max_block_bytes: 64 * 1024 * 1024,
            max_conns_per_ip: c.max_conns_per_ip,
            own_hotkey: None,
        }
    }
}

/// A running relay: options, memory budget and the jobs it serves.
pub struct Relay {
    pub options: RelayOptions,
    pub budget: Arc<Budget>,
    /// Bytes in and out per peer, for the admin API's metrics.
    pub traffic: crate::core::traffic::Traffic,
    jobs: Mutex<HashMap<(u64, u32), Arc<JobCell>>>,
    per_ip: Arc<super::limits::PerIp>,
    /// Signs end-of-shard receipts (the miner's hotkey); unset for a standalone relay, whose
    /// receipts go unsigned.
    receipt_key: std::sync::OnceLock<Arc<crate::wallet::Keypair>>,
}

/// A job as the relay holds it, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayJob {
    pub job: u64,
    pub shard: u32,
    pub peers: u32,
    /// Wire dtype code.
    pub dtype: u32,
    /// Elements of this shard.
    pub elements: u64,
    pub peer_hotkeys: Vec<String>,
    /// Why it failed, while it closes.
    pub failed: Option<String>,
}

/// Why a handshake's job cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("job {0} already runs here with a different ticket")]
    TicketMismatch(u64),
    #[error("job {job} failed: {reason}")]
    Failed { job: u64, reason: String },
    #[error("job {job} asks for blocks of {bytes} bytes, more than this relay's {max}")]
    BlockTooLarge { job: u64, bytes: u64, max: u64 },
    #[error("{0}")]
    Budget(#[from] super::budget::BudgetError),
}

impl Relay {
    pub fn new(options: RelayOptions) -> Arc<Relay> {
        Arc::new(Relay {
            budget: Budget::new(options.max_memory),
            traffic: crate::core::traffic::Traffic::new(),
            options,
            jobs: Mutex::new(HashMap::new()),
            per_ip: Arc::default(),
            receipt_key: std::sync::OnceLock::new(),
        })
    }

    /// Signs this relay's receipts with `key` from now on (the first call wins).
    pub fn set_receipt_key(&self, key: Arc<crate::wallet::Keypair>) {
        let _ = self.receipt_key.set(key);
    }

    pub fn receipt_key(&self) -> Option<Arc<crate::wallet::Keypair>> {
        self.receipt_key.get().cloned()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u32), Arc<JobCell>>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs currently held (running, or failed and still closing).
    pub fn job_count(&self) -> usize {
        self.jobs().len()
    }

    /// The jobs held now: (job id, shard, peers, elements of the shard, dtype, closed).
    pub fn jobs_snapshot(&self) -> Vec<RelayJob> {
        let mut out: Vec<RelayJob> = self
            .jobs()
            .iter()
            .map(|(&(job, shard), cell)| {
                let g = cell.lock();
                let p = g.machine.params();
                RelayJob {
                    job,
                    shard,
                    peers: p.p(),
                    dtype: u32::from(p.dtype.code()),
                    elements: p.plan.elements,
                    peer_hotkeys: p.peers.clone(),
                    failed: g.machine.failed().map(|f| f.reason.clone()),
                }
            })
            .collect();
        out.sort_by_key(|j| (j.job, j.shard));
        out
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(x) => x,
                // Out of descriptors and the like: back off instead of spinning.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let max = self.options.max_conns_per_ip;
            let Some(slot) = self.per_ip.enter(addr.ip(), max) else {
                tokio::spawn(super::limits::refuse(stream, addr, max));
                continue;
            };
            let relay = Arc::clone(&self);
            tokio::spawn(async move {
                conn::run(relay, stream, addr).await;
                drop(slot);
            });
        }
    }

    /// The job a verified handshake belongs to, created (and its memory reserved) if new.
    pub fn admit(self: &Arc<Self>, v: &Verified, shard: u32) -> Result<Arc<JobCell>, AdmitError> {
        self.admit_at(v, shard, 0)
    }

    /// [`Relay::admit`] for a join that may be a failover: a new job's shard starts at operation
    /// `resume_seq` (a spare taking over a shard mid-job), not 0.
    pub fn admit_at(
        self: &Arc<Self>,
        v: &Verified,
        shard: u32,
        resume_seq: u32,
    ) -> Result<Arc<JobCell>, AdmitError> {
        let job = v.ticket.job_id;
        let key = (job, shard);
        let mut jobs = self.jobs();
        if let Some(cell) = jobs.get(&key) {
            if cell.ticket_sig != v.signed.signature {
                return Err(AdmitError::TicketMismatch(job));
            }
            if let Some(f) = cell.failure() {
                return Err(AdmitError::Failed {
                    job,
                    reason: f.reason,
                });
            }
            return Ok(Arc::clone(cell));
        }
        // A block is 4 * block_elems bytes whatever the dtype (`Dtype::block_elems`).
        let bytes = u64::from(v.ticket.block_elems) * 4;
        if bytes > self.options.max_block_bytes {
            return Err(AdmitError::BlockTooLarge {
                job,
                bytes,
                max: self.options.max_block_bytes,
            });
        }
        let params = Params {
            job,
            shard,
            plan: v.layout.shard_plan(shard as usize),
            dtype: v.dtype,
            window: self.options.window_blocks,
            peers: v.ticket.peers.clone(),
        };
        let reservation = self.budget.reserve(params.reservation_bytes())?;
        let deadline = Duration::from_millis(u64::from(v.deadline_ms()));
        let mut machine = Machine::new(params);
        machine.resume_at(resume_seq);
        let cell = JobCell::new(
            key,
            v.signed.signature.clone(),
            machine,
            deadline,
            reservation,
        );
        jobs.insert(key, Arc::clone(&cell));
        drop(jobs);
        tracing::info!(job, shard, peers = v.peers(), dtype = %v.dtype, resume_seq, "job admitted");
        tokio::spawn(watchdog(Arc::downgrade(&cell)));
        Ok(cell)
    }

    /// Forgets a job once its last connection has closed.
    pub fn remove(&self, cell: &Arc<JobCell>) {
        let mut jobs = self.jobs();
        if jobs.get(&cell.key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            jobs.remove(&cell.key);
        }
    }
}

/// Fails a job that makes no progress for its deadline while it has work in progress, naming
/// whom it waits for. Ends when the job is gone.
async fn watchdog(cell: std::sync::Weak<JobCell>) {
    let tick = match cell.upgrade() {
        Some(c) => (c.deadline / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        None => return,
    };
    loop {
        tokio::time::sleep(tick).await;
        let Some(c) = cell.upgrade() else { return };
        if c.cancel.is_cancelled() {
            return;
        }
        let reason = {
            let g = c.lock();
            let waited = g.last_progress.elapsed();
            (g.machine.busy() && waited > c.deadline).then(|| g.machine.stall_reason(waited))
        };
        if let Some(reason) = reason {
            tracing::warn!(job = c.key.0, shard = c.key.1, "{reason}");
            c.fail(Fault {
                reason,
                culprit: None,
            });
            return;
        }
    }
}
