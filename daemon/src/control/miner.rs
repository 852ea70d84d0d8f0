//! The miner service: status, job reservations, probe.
//!
//! Accepted jobs hold a reservation in a budget of their own (same limit as the relay's), not in
//! the relay's: the relay reserves the job's real memory when its peers connect, and counting the
//! promise and the use in one budget would halve the capacity. A reservation ends on ReleaseJob
//! (the validator calls it when the job ends) or at its expiry (session time), whichever is first.

use super::auth::Caller;
use crate::core::{Dtype, Version};
use crate::relay::{Budget, Relay, Reservation};
use crate::wire::handshake::now_ms;
use mr_proto::v1::miner_server::Miner;
use mr_proto::v1::{
    AcceptJobRequest, AcceptJobResponse, ExtendJobRequest, ExtendJobResponse, ProbeRequest,
    ProbeResponse, ReleaseJobRequest, ReleaseJobResponse, StatusRequest, StatusResponse,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// Largest probe payload echoed back.
const MAX_PROBE: usize = 64 * 1024;

struct Accepted {
    _reservation: Reservation,
    expires_at_ms: u64,
    validator: String,
}

/// A miner's control-plane state, shared with the daemon (drain, sweeper).
pub struct MinerState {
    pub hotkey: String,
    pub relay: Arc<Relay>,
    /// What peers are told to connect to.
    pub relay_address: String,
    /// Longest a reservation lives (the original's session_time).
    pub session_time: Duration,
    accepted_budget: Arc<Budget>,
    accepted: Mutex<HashMap<u64, Accepted>>,
    draining: AtomicBool,
    started: Instant,
    /// Jobs accepted since start (benchmarks included).
    jobs_accepted: AtomicU64,
}

impl MinerState {
    pub fn new(
        hotkey: String,
        relay: Arc<Relay>,
        relay_address: String,
        session_time: Duration,
    ) -> Arc<Self> {
        Arc::new(MinerState {
            accepted_budget: Budget::new(relay.budget.limit()),
            hotkey,
            relay,
            relay_address,
            session_time,
            accepted: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            jobs_accepted: AtomicU64::new(0),
        })
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Accepted>> {
        self.accepted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs accepted since the daemon started (benchmarks included).
    pub fn jobs_accepted(&self) -> u64 {
        self.jobs_accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting jobs; running ones continue.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Jobs holding a reservation or data-plane state.
    pub fn jobs_running(&self) -> usize {
        self.accepted().len().max(self.relay.job_count())
    }

    /// (memory limit, memory reserved) in bytes, as Status reports them.
    pub fn memory(&self) -> (u64, u64) {
        (
            self.accepted_budget.limit(),
            self.accepted_budget.used().max(self.relay.budget.used()),
        )
    }

    /// Accepted jobs: (job id, validator hotkey, reservation expiry in unix ms), by job id.
    pub fn accepted_jobs(&self) -> Vec<(u64, String, u64)> {
        let mut v: Vec<(u64, String, u64)> = self
            .accepted()
            .iter()
            .map(|(&id, a)| (id, a.validator.clone(), a.expires_at_ms))
            .collect();
        v.sort();
        v
    }

    /// Drops expired reservations; returns how many.
    pub fn sweep(&self) -> usize {
        let now = now_ms();
        let mut a = self.accepted();
        let before = a.len();
        a.retain(|job, acc| {
            let keep = acc.expires_at_ms > now;
            if !keep {
                tracing::info!(job, validator = %acc.validator, "reservation expired");
            }
            keep
        });
        before - a.len()
    }

    /// Sweeps once a second until the state is dropped elsewhere.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match weak.upgrade() {
                    Some(s) => {
                        s.sweep();
                    }
                    None => return,
                }
            }
        });
    }

    /// Bytes a job's shard needs on this relay (the relay's own worst case for the window).
    fn reservation_bytes(&self, r: &AcceptJobRequest, dtype: Dtype) -> u64 {
        let elems = dtype
            .block_elems(u64::from(r.block_elems))
            .min(r.shard_elements.max(1));
        let wire = elems * dtype.size() as u64;
        let per_block = u64::from(r.peers.max(1)) * wire + 4 * elems;
        u64::from(self.relay.options.window_blocks) * per_block + 64 * 1024
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct MinerService {
    pub state: Arc<MinerState>,
}

fn load_average() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |l| l / cores)
}

#[tonic::async_trait]
impl Miner for MinerService {
    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Caller::of(&req)?;
        let s = &self.state;
        let limit = s.accepted_budget.limit();
        let reserved = s.accepted_budget.used().max(s.relay.budget.used());
        Ok(Response::new(StatusResponse {
            version: Some(Version::CURRENT.into()),
            hotkey: s.hotkey.clone(),
            memory_limit: limit,
            memory_reserved: reserved,
            memory_free: limit.saturating_sub(reserved),
            cpu_load: load_average(),
            jobs_running: s.jobs_running() as u32,
            relay_address: s.relay_address.clone(),
            capacity_bytes_per_s: 0,
            uptime_s: s.started.elapsed().as_secs(),
            draining: s.draining(),
        }))
    }

    async fn accept_job(
        &self,
        req: Request<AcceptJobRequest>,
    ) -> Result<Response<AcceptJobResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        if s.draining() {
            return Err(Status::unavailable(
                "this miner is draining: it finishes its running jobs and accepts no new ones; pick another miner",
            ));
        }
        let now = now_ms();
        if r.expires_at_ms <= now {
            return Err(Status::failed_precondition(format!(
                "job {} expired {} ms ago; request a new job",
                r.job_id,
                now - r.expires_at_ms
            )));
        }
        let dtype = u8::try_from(r.dtype)
            .ok()
            .and_then(Dtype::from_code)
            .ok_or_else(|| Status::invalid_argument(format!("unknown dtype code {}", r.dtype)))?;
        if r.block_elems == 0 || r.peers == 0 {
            return Err(Status::invalid_argument(
                "block_elems and peers must be positive",
            ));
        }
        let mut accepted = s.accepted();
        if accepted.contains_key(&r.job_id) {
            return Err(Status::already_exists(format!(
                "job {} is already accepted here",
                r.job_id
            )));
        }
        let bytes = s.reservation_bytes(&r, dtype);
        let reservation = s.accepted_budget.reserve(bytes).map_err(|e| {
            Status::resource_exhausted(format!("over capacity: {e}; pick another miner"))
        })?;
        let session_end = now.saturating_add(s.session_time.as_millis() as u64);
        accepted.insert(
            r.job_id,
            Accepted {
                _reservation: reservation,
                expires_at_ms: r.expires_at_ms.min(session_end),
                validator: caller.hotkey.clone(),
            },
        );
        s.jobs_accepted.fetch_add(1, Ordering::Relaxed);
        tracing::info!(job = r.job_id, validator = %caller.hotkey, bytes, "job accepted");
        Ok(Response::new(AcceptJobResponse {
            reserved_bytes: bytes,
            relay_address: s.relay_address.clone(),
        }))
    }

    async fn release_job(
        &self,
        req: Request<ReleaseJobRequest>,
    ) -> Result<Response<ReleaseJobResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let mut accepted = self.state.accepted();
        // Only the validator that reserved may release.
        let released = match accepted.get(&r.job_id) {
            Some(a) if a.validator == caller.hotkey => accepted.remove(&r.job_id).is_some(),
            Some(_) => {
                return Err(Status::permission_denied(format!(
                    "job {} was accepted for another validator",
                    r.job_id
                )));
            }
            None => false,
        };
        if released {
            tracing::info!(job = r.job_id, reason = %r.reason, "job released");
        }
        Ok(Response::new(ReleaseJobResponse { released }))
    }

    async fn extend_job(
        &self,
        req: Request<ExtendJobRequest>,
    ) -> Result<Response<ExtendJobResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        let now = now_ms();
        let mut accepted = s.accepted();
        let Some(a) = accepted.get_mut(&r.job_id) else {
            return Err(Status::not_found(format!(
                "job {} is not reserved here (released or expired); request a new job",
                r.job_id
            )));
        };
        if a.validator != caller.hotkey {
            return Err(Status::permission_denied(format!(
                "job {} was accepted for another validator",
                r.job_id
            )));
        }
        // Never past this miner's own session bound, counted from now.
        let end = r
            .expires_at_ms
            .min(now.saturating_add(s.session_time.as_millis() as u64));
        if end > a.expires_at_ms {
            a.expires_at_ms = end;
            tracing::debug!(job = r.job_id, expires_at_ms = end, "reservation extended");
        }
        Ok(Response::new(ExtendJobResponse {
            expires_at_ms: a.expires_at_ms,
        }))
    }

    async fn probe(&self, req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        Caller::of(&req)?;
        let mut payload = req.into_inner().payload;
        payload.truncate(MAX_PROBE);
        Ok(Response::new(ProbeResponse { payload }))
    }
}
