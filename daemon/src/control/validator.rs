//! The validator service: jobs for training peers.
//!
//! A job is created by rank 0 (RequestJob) and completed by the other ranks (JoinJob). When every
//! rank has a hotkey the validator reserves miners (AcceptJob, most free memory first, the next
//! one when a miner refuses), signs the ticket and the job runs; peers fetch the ticket with
//! JoinJob or JobStatus and report the end with ReportJob. Every change is in the [`Store`]
//! before the answer leaves.

use super::auth::Caller;
use super::sign;
use crate::core::{Dtype, Version};
use crate::validator::{JobRow, MinerRow, Store};
use crate::wallet::Keypair;
use crate::wire::handshake::{JobTicket, MinerSlot, SignedTicket, issue, now_ms};
use mr_proto::v1::miner_client::MinerClient;
use mr_proto::v1::validator_server::Validator;
use mr_proto::v1::{
    AcceptJobRequest, BenchmarkAssignment, JobInfo, JobState, JobStatusRequest, JoinJobRequest,
    ReleaseJobRequest, RenewJobRequest, ReportBenchmarkRequest, ReportBenchmarkResponse,
    ReportJobRequest, ReportSamplesRequest, ReportSamplesResponse, RequestBenchmarkRequest,
    RequestJobRequest,
};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use tonic::{Request, Response, Status};

mod renew;

/// What the service needs from configuration.
#[derive(Debug, Clone)]
pub struct ValidatorOptions {
    /// Reservation and ticket lifetime.
    pub session_time: Duration,
    /// Largest tensor, in bytes.
    pub max_job_bytes: u64,
    /// Elements per block of the tickets.
    pub block_elems: u32,
    /// Time for each miner call.
    pub miner_timeout: Duration,
    /// Most peers in one job.
    pub max_world_size: u32,
    /// Miners per job when the request leaves it at 0; 0 here too means one per peer.
    pub miners_per_job: u32,
    /// Spare miners reserved per job when capacity allows (named in the ticket; see
    /// `peer::failover`).
    pub spares: u32,
}

pub struct ValidatorState {
    pub key: Arc<Keypair>,
    pub store: Arc<Store>,
    pub options: ValidatorOptions,
    /// Serialises job transitions (join, start) so two ranks never start a job twice.
    jobs_lock: AsyncMutex<()>,
    /// Live-job verification: peers' evidence waiting for the other peers.
    pub verifier: crate::validator::verify::Verifier,
    /// Blocks sampled per job, in parts per million (validator.sample_rate); 0: no sampling.
    sample_ppm: std::sync::atomic::AtomicU32,
}

impl ValidatorState {
    pub fn new(key: Arc<Keypair>, store: Arc<Store>, options: ValidatorOptions) -> Arc<Self> {
        Arc::new(ValidatorState {
            key,
            store,
            options,
            jobs_lock: AsyncMutex::new(()),
            verifier: Default::default(),
            sample_ppm: std::sync::atomic::AtomicU32::new(crate::core::sample::rate_to_ppm(0.01)),
        })
    }

    /// Samples this fraction of the blocks of jobs created from now on (0 turns sampling off).
    pub fn set_sample_rate(&self, rate: f64) {
        self.sample_ppm.store(
            crate::core::sample::rate_to_ppm(rate),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A job as `caller` may see it: the ticket and the sample seed only for its own peers.
    fn info(&self, j: &JobRow, caller: &str) -> JobInfo {
        let mut i = info(j, caller);
        if let Ok(v) = self.store.job_verdict(j.job_id) {
            i.samples_checked = v.checked;
            i.samples_failed = v.failed;
            i.verdict = v.verdict;
        }
        i.samples_pending = self.verifier.pending(j.job_id);
        if j.peers.iter().any(|p| p == caller)
            && let Ok(Some(spec)) = self.store.sample_spec(j.job_id)
        {
            i.sample_seed = spec.seed;
            i.sample_ppm = spec.ppm;
        }
        i
    }
}

#[derive(Clone)]
pub struct ValidatorService {
    pub state: Arc<ValidatorState>,
    /// Benchmarks of the bench bots; None answers them UNIMPLEMENTED.
    pub bench: Option<Arc<super::benchmark::BenchDesk>>,
}

fn db(e: crate::validator::StoreError) -> Status {
    Status::internal(e.to_string())
}

fn info(j: &JobRow, caller: &str) -> JobInfo {
    // Tickets name the miners; only the job's own peers get them.
    let ticket = if j.peers.iter().any(|p| p == caller) {
        j.ticket
            .as_deref()
            .and_then(|t| SignedTicket::decode(t).ok())
    } else {
        None
    };
    JobInfo {
        job_id: j.job_id,
        state: j.state,
        reason: j.reason.clone(),
        world_size: j.world_size,
        peers: j.peers.clone(),
        ticket,
        created_at_ms: j.created_at_ms,
        expires_at_ms: j.expires_at_ms,
        ..Default::default()
    }
}

fn live(state: i32) -> bool {
    state == JobState::Pending as i32 || state == JobState::Running as i32
}

impl ValidatorState {
    /// The job, marked expired (and saved) when its time is up.
    fn load(&self, job_id: u64) -> Result<JobRow, Status> {
        let mut j = self
            .store
            .job(job_id)
            .map_err(db)?
            .ok_or_else(|| Status::not_found(format!("no job {job_id} on this validator")))?;
        if live(j.state) && now_ms() > j.expires_at_ms {
            j.state = JobState::Expired as i32;
            self.store.put_job(&j).map_err(db)?;
        }
        Ok(j)
    }

    /// Reserves miners and signs the ticket of a job whose ranks are all known.
    async fn start(&self, j: &mut JobRow) -> Result<(), Status> {
        let dtype = u8::try_from(j.dtype)
            .ok()
            .and_then(Dtype::from_code)
            .ok_or_else(|| Status::invalid_argument(format!("unknown dtype {}", j.dtype)))?;
        let mut candidates: Vec<MinerRow> = self
            .store
            .miners()
            .map_err(db)?
            .into_iter()
            .filter(|m| m.reachable && !m.relay_address.is_empty())
            .collect();
        candidates.sort_by_key(|m| std::cmp::Reverse(m.memory_free));
        let want = j.miners_wanted.max(1) as usize;
        let shard_elems = j.elements.div_ceil(want as u64);
        let mut slots = Vec::new();
        let mut spares = Vec::new();
        let mut refusals = Vec::new();
        let want_spares = self.options.spares as usize;
        for m in &candidates {
            if slots.len() == want && spares.len() == want_spares {
                break;
            }
            if slots.len() == want {
                // Capacity allows: a spare, reserved the same way, named in the ticket.
                match self.accept(m, j, dtype, shard_elems).await {
                    Ok(address) => spares.push(MinerSlot {
                        hotkey: m.hotkey.clone(),
                        address,
                        weight: 1,
                    }),
                    Err(e) => {
                        tracing::info!(job = j.job_id, miner = %m.hotkey, "miner refused to be a spare: {e}");
                    }
                }
                continue;
            }
            match self.accept(m, j, dtype, shard_elems).await {
                Ok(address) => {
                    slots.push(MinerSlot {
                        hotkey: m.hotkey.clone(),
                        address,
                        weight: 1,
                    });
                }
                Err(e) => {
                    tracing::info!(job = j.job_id, miner = %m.hotkey, "miner refused: {e}");
                    refusals.push(format!("{}: {e}", m.hotkey));
                }
            }
        }
        if slots.len() < want {
            self.release(
                &slots.iter().map(|s| s.hotkey.clone()).collect::<Vec<_>>(),
                j.job_id,
                "not enough miners",
            )
            .await;
            j.state = JobState::Failed as i32;
            j.reason = format!(
                "{} of {want} miners accepted ({} candidates){}{}",
                slots.len(),
                candidates.len(),
                if refusals.is_empty() {
                    ""
                } else {
                    "; refusals: "
                },
                refusals.join("; ")
            );
            self.store.put_job(j).map_err(db)?;
            return Err(Status::unavailable(j.reason.clone()));
        }
        let ticket = JobTicket {
            job_id: j.job_id,
            validator: String::new(),
            peers: j.peers.clone(),
            miners: slots.clone(),
            dtype: j.dtype,
            block_elems: self.options.block_elems,
            elements: j.elements,
            expires_at_ms: j.expires_at_ms,
            deadline_ms: 0,
            spares: spares.clone(),
        };
        let signed = issue(ticket, &self.key).map_err(|e| Status::internal(e.to_string()))?;
        j.ticket = Some(signed.encode_to_vec());
        // Every miner holding a reservation, spares last (they are released the same way).
        j.miners = slots
            .into_iter()
            .chain(spares.iter().cloned())
            .map(|s| s.hotkey)
            .collect();
        j.state = JobState::Running as i32;
        self.store.put_job(j).map_err(db)?;
        tracing::info!(job = j.job_id, miners = ?j.miners, spares = spares.len(), "job running");
        Ok(())
    }

    /// Records the miners a peer saw fail in its job (only miners of the job's ticket: a peer
    /// cannot name someone else's miner). Scoring counts a failure once most peers report it.
    fn record_failures(
        &self,
        j: &JobRow,
        reporter: &str,
        r: &ReportJobRequest,
    ) -> Result<(), Status> {
        for m in &r.failed_miners {
            if !j.miners.iter().any(|x| x == m) {
                return Err(Status::invalid_argument(format!(
                    "{m} is not a miner of job {}",
                    j.job_id
                )));
            }
        }
        let reason: String = r.reason.chars().take(500).collect();
        for m in &r.failed_miners {
            self.store
                .put_job_failure(j.job_id, m, reporter, &reason, now_ms())
                .map_err(db)?;
            tracing::warn!(job = j.job_id, miner = %m, by = %reporter, "miner failed in a job");
        }
        Ok(())
    }

    async fn client(&self, m: &MinerRow) -> Result<MinerClient<sign::SignedChannel>, String> {
        let ch = sign::connect(
            &m.axon,
            Arc::clone(&self.key),
            &m.hotkey,
            self.options.miner_timeout,
        )
        .await
        .map_err(|e| format!("unreachable at {}: {e}", m.axon))?;
        Ok(MinerClient::new(ch))
    }

    async fn accept(
        &self,
        m: &MinerRow,
        j: &JobRow,
        _dtype: Dtype,
        shard_elems: u64,
    ) -> Result<String, String> {
        let mut c = self.client(m).await?;
        let r = c
            .accept_job(AcceptJobRequest {
                version: Some(Version::CURRENT.into()),
                job_id: j.job_id,
                peers: j.world_size,
                dtype: j.dtype,
                block_elems: self.options.block_elems,
                shard_elements: shard_elems,
                expires_at_ms: j.expires_at_ms,
            })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        Ok(if r.relay_address.is_empty() {
            m.relay_address.clone()
        } else {
            r.relay_address
        })
    }

    /// Best effort: a miner that misses this releases at expiry anyway.
    async fn release(&self, miners: &[String], job_id: u64, reason: &str) {
        let Ok(all) = self.store.miners() else { return };
        for h in miners {
            let Some(m) = all.iter().find(|m| &m.hotkey == h) else {
                continue;
            };
            if let Ok(mut c) = self.client(m).await {
                let _ = c
                    .release_job(ReleaseJobRequest {
                        version: Some(Version::CURRENT.into()),
                        job_id,
                        reason: reason.to_string(),
                    })
                    .await;
            }
        }
    }
}

#[tonic::async_trait]
impl Validator for ValidatorService {
    async fn request_job(
        &self,
        req: Request<RequestJobRequest>,
    ) -> Result<Response<JobInfo>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        if r.world_size == 0 || r.world_size > s.options.max_world_size {
            return Err(Status::invalid_argument(format!(
                "world_size must be 1 to {}",
                s.options.max_world_size
            )));
        }
        let dtype = u8::try_from(r.dtype)
            .ok()
            .and_then(Dtype::from_code)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "unknown dtype code {} (1 f32, 2 f16, 3 bf16)",
                    r.dtype
                ))
            })?;
        let bytes = r.elements.saturating_mul(dtype.size() as u64);
        if r.elements == 0 || bytes > s.options.max_job_bytes {
            return Err(Status::invalid_argument(format!(
                "tensor of {bytes} bytes: must be 1 to {} bytes (validator.max_job_mib)",
                s.options.max_job_bytes
            )));
        }
        let now = now_ms();
        let mut peers = vec![String::new(); r.world_size as usize];
        peers[0] = caller.hotkey.clone();
        let mut j = JobRow {
            job_id: rand::random::<u64>().max(1),
            state: JobState::Pending as i32,
            reason: String::new(),
            name: r.name,
            world_size: r.world_size,
            peers,
            elements: r.elements,
            dtype: r.dtype,
            miners_wanted: match (r.miners, s.options.miners_per_job) {
                (0, 0) => r.world_size,
                (0, m) => m,
                (m, _) => m,
            },
            ticket: None,
            miners: Vec::new(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(s.options.session_time.as_millis() as u64),
        };
        let _g = s.jobs_lock.lock().await;
        s.store.put_job(&j).map_err(db)?;
        let ppm = s.sample_ppm.load(std::sync::atomic::Ordering::Relaxed);
        if ppm > 0 {
            // The secret sample: only the job's peers ever see it (JobInfo), never its miners.
            let spec = crate::core::sample::SampleSpec {
                seed: rand::random::<u64>().max(1),
                ppm,
            };
            s.store.put_sample_spec(j.job_id, spec).map_err(db)?;
        }
        tracing::info!(job = j.job_id, peers = j.world_size, by = %caller.hotkey, "job requested");
        if r.world_size == 1 {
            s.start(&mut j).await?;
        }
        Ok(Response::new(s.info(&j, &caller.hotkey)))
    }

    async fn join_job(&self, req: Request<JoinJobRequest>) -> Result<Response<JobInfo>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        let _g = s.jobs_lock.lock().await;
        let job_id = if r.job_id != 0 {
            r.job_id
        } else {
            s.store
                .job_by_name(&r.name)
                .map_err(db)?
                .map(|j| j.job_id)
                .ok_or_else(|| Status::not_found(format!("no job named {:?}", r.name)))?
        };
        let mut j = s.load(job_id)?;
        let rank = r.rank as usize;
        if rank >= j.peers.len() {
            return Err(Status::invalid_argument(format!(
                "rank {rank} out of range: job {job_id} has {} ranks",
                j.world_size
            )));
        }
        if j.peers[rank] == caller.hotkey {
            return Ok(Response::new(s.info(&j, &caller.hotkey)));
        }
        if j.state != JobState::Pending as i32 {
            return Err(Status::failed_precondition(format!(
                "job {job_id} is {:?}, not open for joining",
                JobState::try_from(j.state).unwrap_or(JobState::Unspecified)
            )));
        }
        if !j.peers[rank].is_empty() {
            return Err(Status::already_exists(format!(
                "rank {rank} of job {job_id} is taken by {}",
                j.peers[rank]
            )));
        }
        j.peers[rank] = caller.hotkey.clone();
        s.store.put_job(&j).map_err(db)?;
        if j.peers.iter().all(|p| !p.is_empty()) {
            s.start(&mut j).await?;
        }
        Ok(Response::new(s.info(&j, &caller.hotkey)))
    }

    async fn job_status(
        &self,
        req: Request<JobStatusRequest>,
    ) -> Result<Response<JobInfo>, Status> {
        let caller = Caller::of(&req)?;
        let j = self.state.load(req.into_inner().job_id)?;
        Ok(Response::new(self.state.info(&j, &caller.hotkey)))
    }

    async fn report_job(
        &self,
        req: Request<ReportJobRequest>,
    ) -> Result<Response<JobInfo>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        let mut j = {
            let _g = s.jobs_lock.lock().await;
            let mut j = s.load(r.job_id)?;
            if !j.peers.iter().any(|p| p == &caller.hotkey) {
                return Err(Status::permission_denied(format!(
                    "{} is not a peer of job {}",
                    caller.hotkey, r.job_id
                )));
            }
            s.record_failures(&j, &caller.hotkey, &r)?;
            if j.state == JobState::Running as i32 {
                if r.ok {
                    j.state = JobState::Done as i32;
                } else {
                    j.state = JobState::Failed as i32;
                    j.reason = r.reason.clone();
                }
                s.store.put_job(&j).map_err(db)?;
                tracing::info!(job = j.job_id, state = j.state, "job ended");
            }
            j
        };
        if !live(j.state) {
            let miners = std::mem::take(&mut j.miners);
            s.release(&miners, j.job_id, if r.ok { "done" } else { "failed" })
                .await;
            j.miners = miners;
        }
        Ok(Response::new(s.info(&j, &caller.hotkey)))
    }

    async fn renew_job(&self, req: Request<RenewJobRequest>) -> Result<Response<JobInfo>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let (j, extend) = self.state.renew(r.job_id, &caller.hotkey).await?;
        if extend {
            self.state.extend_reservations(&j);
        }
        Ok(Response::new(self.state.info(&j, &caller.hotkey)))
    }

    async fn report_samples(
        &self,
        req: Request<ReportSamplesRequest>,
    ) -> Result<Response<ReportSamplesResponse>, Status> {
        use crate::validator::verify::{JobFacts, ReportError};
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let s = &self.state;
        let j = s.load(r.job_id)?;
        if !j.peers.iter().any(|p| p == &caller.hotkey) {
            return Err(Status::permission_denied(format!(
                "{} is not a peer of job {}",
                caller.hotkey, r.job_id
            )));
        }
        let dtype = u8::try_from(j.dtype)
            .ok()
            .and_then(Dtype::from_code)
            .ok_or_else(|| Status::internal(format!("job {} has dtype {}", j.job_id, j.dtype)))?;
        let facts = JobFacts {
            job: j.job_id,
            peers: j.peers.clone(),
            miners: j.miners.clone(),
            dtype,
        };
        let (accepted, _) = s
            .verifier
            .report(&s.store, &facts, &caller.hotkey, &r, now_ms())
            .map_err(|e| match e {
                ReportError::Busy(_) => Status::resource_exhausted(e.to_string()),
                ReportError::Store(e) => db(e),
                ReportError::NotSampled(_) => Status::failed_precondition(e.to_string()),
                e => Status::invalid_argument(e.to_string()),
            })?;
        Ok(Response::new(ReportSamplesResponse { accepted }))
    }

    async fn request_benchmark(
        &self,
        req: Request<RequestBenchmarkRequest>,
    ) -> Result<Response<BenchmarkAssignment>, Status> {
        let caller = Caller::of(&req)?;
        let Some(b) = &self.bench else {
            return Err(Status::unimplemented("this validator serves no benchmarks"));
        };
        Ok(Response::new(b.request(&caller, req.into_inner()).await?))
    }

    async fn report_benchmark(
        &self,
        req: Request<ReportBenchmarkRequest>,
    ) -> Result<Response<ReportBenchmarkResponse>, Status> {
        let caller = Caller::of(&req)?;
        let Some(b) = &self.bench else {
            return Err(Status::unimplemented("this validator serves no benchmarks"));
        };
        Ok(Response::new(b.report(&caller, req.into_inner()).await?))
    }
}
