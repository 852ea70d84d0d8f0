//! Getting a job from a validator, then running collectives in it: the entry point training code
//! uses. Blocking, like [`Peer`]; the gRPC calls run on a small private runtime.
//!
//! Rank 0 creates the job ([`Session::create`]), the others join it by id ([`Session::join`]),
//! or every rank calls [`Session::init`] with a shared name and the validator does the
//! rendezvous. Each call returns once every rank has joined and the peer is connected to the
//! job's miners.

use super::lease::Lease;
use super::report::Reporter;
use super::{Job, Peer, PeerError};
use crate::control::sign::{self, SignedChannel};
use crate::core::sample::SampleSpec;
use crate::core::{Dtype, Op, Version};
use crate::wallet::Keypair;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{
    JobInfo, JobState, JobStatusRequest, JoinJobRequest, RenewJobRequest, ReportJobRequest,
    RequestJobRequest,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a validator's control plane is and who it is.
#[derive(Debug, Clone)]
pub struct ValidatorAddr {
    /// host:port (or http://host:port).
    pub endpoint: String,
    /// Its hotkey (ss58): calls are signed for it.
    pub hotkey: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot reach the validator at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("validator refused {call}: {code:?}: {message}")]
    Refused {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("job {job} {state}: {reason}")]
    JobEnded {
        job: u64,
        state: String,
        reason: String,
    },
    #[error("job {job}: not every rank joined within {secs} s")]
    Timeout { job: u64, secs: u64 },
    #[error("no job named {0:?} appeared in time (has rank 0 called init?)")]
    NoSuchName(String),
    #[error("{0}")]
    Peer(#[from] PeerError),
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "job {job} was found corrupted by its validator ({checked} sampled blocks checked, {failed} failed): {verdict}"
    )]
    Corrupted {
        job: u64,
        checked: u64,
        failed: u64,
        verdict: String,
    },
}

/// What the validator's live-job verification says of a job (see [`Session::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub job: u64,
    /// Sampled blocks recomputed so far, and those that did not match.
    pub checked: u64,
    pub failed: u64,
    /// Sampled blocks reported by some peers, waiting for the others.
    pub pending: u64,
    /// "" (nothing checked yet), "ok", "corrupted: ..." or "peer flagged: ...".
    pub verdict: String,
}

/// Knobs of the rendezvous.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// How long to wait for every rank to join.
    pub join_timeout: Duration,
    /// Time for each validator call.
    pub call_timeout: Duration,
    /// Miners to ask for (0: one per peer).
    pub miners: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            join_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(10),
            miners: 0,
        }
    }
}

/// A peer in a job, with the validator it came from.
pub struct Session {
    rt: tokio::runtime::Runtime,
    client: ValidatorClient<SignedChannel>,
    peer: Peer,
    reported: bool,
    lease: Lease,
    /// Sends live-job evidence in the background (started with the first evidence).
    reporter: Option<Reporter>,
    validator: ValidatorAddr,
    call_timeout: Duration,
}

fn refused(call: &'static str) -> impl Fn(tonic::Status) -> SessionError {
    move |s| SessionError::Refused {
        call,
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// Pause after the validator's per-hotkey rate limit refused a poll.
const RATE_LIMITED_PAUSE: Duration = Duration::from_secs(1);

/// Whether a job is over (done, failed, expired).
fn ended(info: &JobInfo) -> bool {
    !matches!(
        JobState::try_from(info.state).unwrap_or(JobState::Unspecified),
        JobState::Pending | JobState::Running
    )
}

fn v() -> Option<mr_proto::v1::Version> {
    Some(Version::CURRENT.into())
}

struct Rendezvous {
    rt: tokio::runtime::Runtime,
    client: ValidatorClient<SignedChannel>,
    opts: SessionOptions,
    validator: ValidatorAddr,
}

impl Rendezvous {
    fn open(
        validator: &ValidatorAddr,
        key: &Keypair,
        opts: SessionOptions,
    ) -> Result<Self, SessionError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SessionError::Runtime)?;
        let key = Arc::new(key.clone());
        let ch = rt
            .block_on(sign::connect(
                &validator.endpoint,
                key,
                &validator.hotkey,
                opts.call_timeout,
            ))
            .map_err(|e| SessionError::Connect {
                endpoint: validator.endpoint.clone(),
                reason: e.to_string(),
            })?;
        Ok(Rendezvous {
            rt,
            client: ValidatorClient::new(ch),
            opts,
            validator: validator.clone(),
        })
    }

    /// Polls until the job runs (every rank joined, miners reserved).
    fn wait_running(&mut self, mut info: JobInfo) -> Result<JobInfo, SessionError> {
        let start = Instant::now();
        loop {
            match JobState::try_from(info.state).unwrap_or(JobState::Unspecified) {
                JobState::Running if info.ticket.is_some() => return Ok(info),
                JobState::Pending | JobState::Running => {}
                other => {
                    return Err(SessionError::JobEnded {
                        job: info.job_id,
                        state: format!("{other:?}").to_lowercase(),
                        reason: info.reason,
                    });
                }
            }
            if start.elapsed() > self.opts.join_timeout {
                return Err(SessionError::Timeout {
                    job: info.job_id,
                    secs: self.opts.join_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
            let job_id = info.job_id;
            match self.rt.block_on(self.client.job_status(JobStatusRequest {
                version: v(),
                job_id,
            })) {
                Ok(r) => info = r.into_inner(),
                // Ranks sharing a hotkey share its rate limit: poll slower instead of failing.
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    std::thread::sleep(RATE_LIMITED_PAUSE)
                }
                Err(s) => return Err(refused("JobStatus")(s)),
            }
        }
    }

    fn connect(mut self, info: JobInfo, rank: u32, key: &Keypair) -> Result<Session, SessionError> {
        let info = self.wait_running(info)?;
        let lease = Lease::from_info(&info);
        let Some(ticket) = info.ticket else {
            return Err(SessionError::JobEnded {
                job: info.job_id,
                state: "running".into(),
                reason: "the validator sent no ticket".into(),
            });
        };
        let mut job = Job::from_ticket(ticket, rank)?;
        job.sample = SampleSpec {
            seed: info.sample_seed,
            ppm: info.sample_ppm.min(crate::core::sample::PPM),
        };
        let peer = Peer::connect(job, key)?;
        Ok(Session {
            rt: self.rt,
            client: self.client,
            peer,
            reported: false,
            lease,
            reporter: None,
            validator: self.validator,
            call_timeout: self.opts.call_timeout,
        })
    }

    fn request(
        &mut self,
        world_size: u32,
        elements: u64,
        dtype: Dtype,
        name: &str,
    ) -> Result<JobInfo, SessionError> {
        let start = Instant::now();
        loop {
            let r = self.rt.block_on(self.client.request_job(RequestJobRequest {
                version: v(),
                world_size,
                elements,
                dtype: u32::from(dtype.code()),
                miners: self.opts.miners,
                name: name.to_string(),
            }));
            match r {
                Ok(r) => return Ok(r.into_inner()),
                // Ranks sharing a hotkey share its rate limit: ask again shortly, within the
                // join timeout, instead of failing the job.
                Err(s)
                    if s.code() == tonic::Code::ResourceExhausted
                        && start.elapsed() < self.opts.join_timeout =>
                {
                    std::thread::sleep(RATE_LIMITED_PAUSE)
                }
                Err(s) => return Err(refused("RequestJob")(s)),
            }
        }
    }

    fn join(&mut self, job_id: u64, rank: u32, name: &str) -> Result<JobInfo, tonic::Status> {
        Ok(self
            .rt
            .block_on(self.client.join_job(JoinJobRequest {
                version: v(),
                job_id,
                rank,
                name: name.to_string(),
            }))?
            .into_inner())
    }
}

impl Session {
    /// Rank 0: creates a job of `world_size` peers moving `elements` elements of `dtype`.
    /// Returns once every rank has joined; [`Session::job_id`] is what the others join.
    /// Use [`Session::request`] to learn the job id before the others have joined.
    pub fn create(
        validator: &ValidatorAddr,
        key: &Keypair,
        world_size: u32,
        elements: u64,
        dtype: Dtype,
        opts: SessionOptions,
    ) -> Result<Session, SessionError> {
        let (r, info) = Self::request(validator, key, world_size, elements, dtype, "", opts)?;
        r.connect(info, key)
    }

    /// Rank 0 in two steps: the job id now (to hand to the other ranks), the session later.
    #[allow(clippy::type_complexity)]
    pub fn request(
        validator: &ValidatorAddr,
        key: &Keypair,
        world_size: u32,
        elements: u64,
        dtype: Dtype,
        name: &str,
        opts: SessionOptions,
    ) -> Result<(PendingSession, JobInfo), SessionError> {
        let mut r = Rendezvous::open(validator, key, opts)?;
        let info = r.request(world_size, elements, dtype, name)?;
        Ok((PendingSession(r), info))
    }

    /// Rank `rank` > 0 of job `job_id`.
    pub fn join(
        validator: &ValidatorAddr,
        key: &Keypair,
        job_id: u64,
        rank: u32,
        opts: SessionOptions,
    ) -> Result<Session, SessionError> {
        let mut r = Rendezvous::open(validator, key, opts)?;
        let info = r.join(job_id, rank, "").map_err(refused("JoinJob"))?;
        r.connect(info, rank, key)
    }

    /// torch-like rendezvous: every rank calls this with the same `name`; rank 0 creates the
    /// job, the others wait for it to appear and join it.
    // Everything at once, like torch's `init_process_group`.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        validator: &ValidatorAddr,
        key: &Keypair,
        world_size: u32,
        rank: u32,
        name: &str,
        elements: u64,
        dtype: Dtype,
        opts: SessionOptions,
    ) -> Result<Session, SessionError> {
        if rank == 0 {
            let (p, info) = Self::request(validator, key, world_size, elements, dtype, name, opts)?;
            return p.0.connect(info, 0, key);
        }
        let mut r = Rendezvous::open(validator, key, opts)?;
        let start = Instant::now();
        loop {
            let pause = match r.join(0, rank, name) {
                // A job of an earlier run by the same name, ended (or running without this
                // rank): wait for rank 0's new one rather than joining the past.
                Ok(info) if ended(&info) => Duration::from_millis(100),
                Ok(info) => return r.connect(info, rank, key),
                Err(s)
                    if s.code() == tonic::Code::NotFound
                        || s.code() == tonic::Code::FailedPrecondition =>
                {
                    Duration::from_millis(100)
                }
                Err(s) if s.code() == tonic::Code::ResourceExhausted => RATE_LIMITED_PAUSE,
                Err(s) => return Err(refused("JoinJob")(s)),
            };
            if start.elapsed() > r.opts.join_timeout {
                return Err(SessionError::NoSuchName(name.to_string()));
            }
            std::thread::sleep(pause);
        }
    }

    pub fn job_id(&self) -> u64 {
        self.peer.job().id
    }

    pub fn peer(&mut self) -> &mut Peer {
        &mut self.peer
    }

    pub fn all_reduce(&mut self, data: &mut [f32], op: Op) -> Result<(), PeerError> {
        self.renew_if_due()?;
        let r = self.peer.all_reduce(data, op);
        if let Err(e) = &r {
            self.report(false, &e.to_string());
        }
        self.ship_evidence();
        r
    }

    pub fn broadcast(&mut self, data: &mut [f32], src: u32) -> Result<(), PeerError> {
        self.renew_if_due()?;
        let r = self.peer.broadcast(data, src);
        if let Err(e) = &r {
            self.report(false, &e.to_string());
        }
        self.ship_evidence();
        r
    }

    /// Queues the last operations' evidence for the background sender.
    fn ship_evidence(&mut self) {
        let ev = self.peer.take_evidence();
        if ev.is_empty() {
            return;
        }
        let job = self.job_id();
        let reporter = self.reporter.get_or_insert_with(|| {
            Reporter::start(
                self.validator.clone(),
                self.peer.key().clone(),
                self.call_timeout,
            )
        });
        for e in ev {
            reporter.send(job, e);
        }
    }

    /// Live-job verification: sends this peer's evidence still queued, then asks the validator
    /// what it found, waiting up to `wait` for the blocks other peers have not reported yet.
    /// A job found corrupted is an error naming the miner, shard and block.
    pub fn verify(&mut self, wait: Duration) -> Result<Verification, SessionError> {
        let start = Instant::now();
        if let Some(r) = &self.reporter {
            r.flush(wait);
        }
        let job_id = self.job_id();
        loop {
            let r = self.rt.block_on(self.client.job_status(JobStatusRequest {
                version: v(),
                job_id,
            }));
            let info = match r {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                    std::thread::sleep(RATE_LIMITED_PAUSE);
                    continue;
                }
                Err(s) => return Err(refused("JobStatus")(s)),
            };
            let v = Verification {
                job: job_id,
                checked: info.samples_checked,
                failed: info.samples_failed,
                pending: info.samples_pending,
                verdict: info.verdict,
            };
            if v.verdict.starts_with("corrupted") {
                return Err(SessionError::Corrupted {
                    job: job_id,
                    checked: v.checked,
                    failed: v.failed,
                    verdict: v.verdict,
                });
            }
            if v.pending == 0 || start.elapsed() >= wait {
                return Ok(v);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// When the job's lease expires at the validator (unix ms); collectives renew it.
    pub fn expires_at_ms(&self) -> u64 {
        self.lease.expires_at_ms()
    }

    /// Renews the job's lease when half of it has gone. A job the validator no longer renews
    /// (expired, ended) is an error; an unreachable validator is not (the miners still serve
    /// the connected peers): it is tried again later.
    fn renew_if_due(&mut self) -> Result<(), PeerError> {
        let now = crate::wire::handshake::now_ms();
        if !self.lease.due(now) {
            return Ok(());
        }
        let job_id = self.job_id();
        let r = self.rt.block_on(self.client.renew_job(RenewJobRequest {
            version: v(),
            job_id,
        }));
        match r {
            Ok(info) => self.lease.renewed(&info.into_inner()),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition
                        | tonic::Code::NotFound
                        | tonic::Code::PermissionDenied
                ) =>
            {
                self.reported = true;
                return Err(PeerError::Expired {
                    job: job_id,
                    reason: s.message().to_string(),
                });
            }
            Err(s) => {
                tracing::warn!(
                    job = job_id,
                    "renewing the job: {:?}: {}",
                    s.code(),
                    s.message()
                );
                self.lease.failed(now);
            }
        }
        Ok(())
    }

    fn report(&mut self, ok: bool, reason: &str) {
        if self.reported {
            return;
        }
        self.reported = true;
        let job_id = self.job_id();
        let r = self.rt.block_on(self.client.report_job(ReportJobRequest {
            version: v(),
            job_id,
            ok,
            reason: reason.to_string(),
            failed_miners: self.peer.lost_miners().to_vec(),
        }));
        if let Err(s) = r {
            tracing::warn!(job = job_id, "reporting the job's end: {}", s.message());
        }
    }

    /// Tells the validator the job is done (its miners are released).
    pub fn close(mut self) {
        self.report(true, "");
    }
}

/// Rank 0 between RequestJob and the last rank's join.
pub struct PendingSession(Rendezvous);

impl PendingSession {
    /// Waits for every rank, then connects to the miners.
    pub fn connect(self, info: JobInfo, key: &Keypair) -> Result<Session, SessionError> {
        self.0.connect(info, 0, key)
    }
}
