//! [`RoleData`] for the miner and the validator daemons. The validator's scores and weights and
//! the bench daemon's bots are wired here once their workstreams land (see the module docs of
//! `crate::validator` and `crate::bench`); until then those calls answer UNIMPLEMENTED.

use super::role::RoleData;
use crate::control::miner::MinerState;
use crate::control::registry::MetagraphRegistry;
use crate::validator::view::ScoringView;
use crate::validator::{JobRow, Store};
use crate::wire::handshake::now_ms;
use mr_proto::v1::{
    GetWeightsRequest, JobList, JobMiner, JobState, JobSummary, MinerInfo, MinerList, MinerSummary,
    Role, Status as DaemonStatus, ValidatorSummary, Weights, status::Summary,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::Status;

/// The chain block last seen in the metagraph, and when it was first seen (unix ms).
#[derive(Default)]
pub struct BlockSeen(Mutex<(u64, u64)>);

impl BlockSeen {
    pub fn observe(&self, registry: &MetagraphRegistry) -> (u64, u64) {
        let block = registry.get().map_or(0, |m| m.block);
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if block != g.0 {
            *g = (block, now_ms());
        }
        *g
    }
}

fn chain_fields(s: &mut DaemonStatus, registry: &MetagraphRegistry, seen: &BlockSeen) {
    let (block, at) = seen.observe(registry);
    s.last_block = block;
    s.last_block_at_ms = at;
    if let Some(m) = registry.get() {
        s.uid = m.by_hotkey(&s.hotkey).map(|n| u32::from(n.uid));
    }
}

/// The miner daemon's side.
pub struct MinerRole {
    pub state: Arc<MinerState>,
    pub registry: MetagraphRegistry,
    pub axon_address: String,
    pub seen: BlockSeen,
}

#[tonic::async_trait]
impl RoleData for MinerRole {
    fn role(&self) -> Role {
        Role::Miner
    }

    fn fill_status(&self, s: &mut DaemonStatus) {
        chain_fields(s, &self.registry, &self.seen);
        let st = &self.state;
        let (limit, reserved) = st.memory();
        let jobs = st.jobs_running() as u32;
        s.jobs_running = jobs;
        s.summary = Some(Summary::Miner(MinerSummary {
            axon_address: self.axon_address.clone(),
            relay_address: st.relay_address.clone(),
            memory_limit: limit,
            memory_reserved: reserved,
            jobs_running: jobs,
            jobs_served: st.jobs_accepted(),
            bytes_in_per_s: 0.0,
            bytes_out_per_s: 0.0,
            draining: st.draining(),
        }));
    }

    fn gauges(&self) -> (u32, u64) {
        (self.state.jobs_running() as u32, self.state.memory().1)
    }

    async fn list_jobs(&self, _recent: u32) -> Result<JobList, Status> {
        // A miner keeps no history: its jobs are the reservations and what the relay holds.
        let relay = self.state.relay.jobs_snapshot();
        let mut jobs: HashMap<u64, JobSummary> = HashMap::new();
        for (id, validator, expires) in self.state.accepted_jobs() {
            jobs.insert(
                id,
                JobSummary {
                    job_id: id,
                    name: String::new(),
                    state: JobState::Pending as i32,
                    reason: format!("reserved for validator {validator} until {expires} ms"),
                    ..Default::default()
                },
            );
        }
        for r in relay {
            let j = jobs.entry(r.job).or_insert_with(|| JobSummary {
                job_id: r.job,
                ..Default::default()
            });
            j.state = if r.failed.is_some() {
                JobState::Failed as i32
            } else {
                JobState::Running as i32
            };
            j.reason = r.failed.unwrap_or_default();
            j.world_size = r.peers;
            j.peers = r.peer_hotkeys;
            j.elements += r.elements;
            j.dtype = r.dtype;
        }
        let mut jobs: Vec<JobSummary> = jobs.into_values().collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.job_id));
        Ok(JobList { jobs })
    }
}

/// The validator daemon's side.
pub struct ValidatorRole {
    pub store: Arc<Store>,
    pub registry: MetagraphRegistry,
    pub axon_address: String,
    pub seen: BlockSeen,
    /// Scores and weights (the scoring workstream's read API); None: miners without scores,
    /// GetWeights UNIMPLEMENTED.
    pub scoring: Option<ScoringView>,
}

fn db(e: crate::validator::StoreError) -> Status {
    Status::internal(e.to_string())
}

fn host_of(addr: &str) -> String {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_string()
}

/// Hotkeys of the job's spares, from its signed ticket.
fn spares_of(j: &JobRow) -> Vec<String> {
    use prost::Message;
    j.ticket
        .as_deref()
        .and_then(|t| mr_proto::v1::SignedTicket::decode(t).ok())
        .and_then(|st| mr_proto::v1::JobTicket::decode(st.ticket.as_slice()).ok())
        .map(|t| t.spares.into_iter().map(|m| m.hotkey).collect())
        .unwrap_or_default()
}

/// A stored job as the admin API shows it; a live job past its expiry shows as expired.
pub fn job_summary(j: &JobRow, uids: &HashMap<String, (u32, String)>) -> JobSummary {
    let live = j.state == JobState::Pending as i32 || j.state == JobState::Running as i32;
    let state = if live && j.expires_at_ms <= now_ms() {
        JobState::Expired as i32
    } else {
        j.state
    };
    let spares = spares_of(j);
    JobSummary {
        job_id: j.job_id,
        name: j.name.clone(),
        state,
        reason: j.reason.clone(),
        world_size: j.world_size,
        peers: j.peers.clone(),
        miners: j
            .miners
            .iter()
            .map(|hk| {
                let (uid, address) = uids.get(hk).cloned().unwrap_or_default();
                JobMiner {
                    uid,
                    hotkey: hk.clone(),
                    address,
                    spare: spares.contains(hk),
                }
            })
            .collect(),
        elements: j.elements,
        dtype: j.dtype,
        created_at_ms: j.created_at_ms,
        ..Default::default()
    }
}

impl ValidatorRole {
    fn miner_index(&self) -> Result<HashMap<String, (u32, String)>, Status> {
        Ok(self
            .store
            .miners()
            .map_err(db)?
            .into_iter()
            .map(|m| (m.hotkey, (u32::from(m.uid), m.relay_address)))
            .collect())
    }
}

/// Validator keys applied without a restart: the sample rate of jobs created from then on.
pub const VALIDATOR_LIVE: &[&str] = &["validator.sample_rate"];

#[tonic::async_trait]
impl RoleData for ValidatorRole {
    fn role(&self) -> Role {
        Role::Validator
    }

    /// `mrd validator` applies these from the config watch (validator_cmd.rs).
    fn live_keys(&self) -> Vec<&'static str> {
        VALIDATOR_LIVE.to_vec()
    }

    fn fill_status(&self, s: &mut DaemonStatus) {
        chain_fields(s, &self.registry, &self.seen);
        let miners = self.store.miners().unwrap_or_default();
        let running = self
            .store
            .recent_jobs(0)
            .map(|j| {
                j.iter()
                    .filter(|j| j.state == JobState::Running as i32 && j.expires_at_ms > now_ms())
                    .count() as u32
            })
            .unwrap_or(0);
        s.jobs_running = running;
        let mut summary = ValidatorSummary {
            axon_address: self.axon_address.clone(),
            miners_total: miners.len() as u32,
            miners_reachable: miners.iter().filter(|m| m.reachable).count() as u32,
            jobs_running: running,
            ..Default::default()
        };
        if let Some(v) = &self.scoring {
            let chain = v.chain.read().unwrap_or_else(|e| e.into_inner()).clone();
            summary.last_weights_block = chain.last_set_block;
            summary.next_weights_block = chain.next_allowed_block;
            summary.bots_known = v.options.benchmark_hotkeys.len() as u32;
            summary.benchmarks_total = v
                .miners()
                .map(|m| {
                    m.iter()
                        .map(|i| u64::from(i.score.as_ref().map_or(0, |s| s.benchmarks)))
                        .sum()
                })
                .unwrap_or(0);
        }
        s.summary = Some(Summary::Validator(summary));
    }

    fn gauges(&self) -> (u32, u64) {
        let running = self
            .store
            .recent_jobs(0)
            .map(|j| j.iter().filter(|j| j.expires_at_ms > now_ms()).count() as u32)
            .unwrap_or(0);
        (running, 0)
    }

    async fn get_weights(&self, req: GetWeightsRequest) -> Result<Weights, Status> {
        match &self.scoring {
            Some(v) => v
                .weights(req.history)
                .map_err(|e| Status::internal(e.to_string())),
            None => Err(Status::unimplemented("this validator runs without scoring")),
        }
    }

    async fn list_miners(&self) -> Result<MinerList, Status> {
        if let Some(v) = &self.scoring {
            return v
                .miners()
                .map(|miners| MinerList { miners })
                .map_err(|e| Status::internal(e.to_string()));
        }
        let miners = self
            .store
            .miners()
            .map_err(db)?
            .into_iter()
            .map(|m| MinerInfo {
                uid: u32::from(m.uid),
                ip: host_of(&m.axon),
                hotkey: m.hotkey,
                axon: m.axon,
                relay: m.relay_address,
                reachable: m.reachable,
                memory_free: m.memory_free,
                flags: if m.reachable {
                    Vec::new()
                } else {
                    vec!["unreachable".into()]
                },
                ..Default::default()
            })
            .collect();
        Ok(MinerList { miners })
    }

    async fn list_jobs(&self, recent: u32) -> Result<JobList, Status> {
        let uids = self.miner_index()?;
        let jobs = self
            .store
            .recent_jobs(recent)
            .map_err(db)?
            .iter()
            .map(|j| {
                let mut s = job_summary(j, &uids);
                if let Ok(v) = self.store.job_verdict(j.job_id) {
                    s.samples_checked = v.checked;
                    s.samples_failed = v.failed;
                    s.verdict = v.verdict;
                }
                s
            })
            .collect();
        Ok(JobList { jobs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_the_port() {
        assert_eq!(host_of("127.0.0.3:8091"), "127.0.0.3");
        assert_eq!(host_of("[::1]:8091"), "::1");
    }

    #[test]
    fn a_jobs_spare_is_marked_from_its_ticket() {
        use crate::wire::handshake::{JobTicket, MinerSlot, issue};
        use prost::Message;
        let key = crate::wallet::Keypair::from_mini_secret(&[9; 32]).expect("key");
        let slot = |h: &str| MinerSlot {
            hotkey: h.into(),
            address: "127.0.0.1:9000".into(),
            weight: 1,
        };
        let ticket = JobTicket {
            miners: vec![slot("m1")],
            spares: vec![slot("m2")],
            ..Default::default()
        };
        let signed = issue(ticket, &key).expect("sign");
        let j = JobRow {
            job_id: 1,
            state: JobState::Running as i32,
            reason: String::new(),
            name: String::new(),
            world_size: 1,
            peers: vec!["p".into()],
            elements: 1,
            dtype: 1,
            miners_wanted: 1,
            ticket: Some(signed.encode_to_vec()),
            miners: vec!["m1".into(), "m2".into()],
            created_at_ms: 0,
            expires_at_ms: u64::MAX,
        };
        let s = job_summary(&j, &HashMap::new());
        let spare: Vec<(String, bool)> =
            s.miners.into_iter().map(|m| (m.hotkey, m.spare)).collect();
        assert_eq!(spare, vec![("m1".into(), false), ("m2".into(), true)]);
    }
}

/// Latest event per miner of recent runs, and the events re-broadcast after they are recorded
/// (so a watcher's snapshot and its live events never leave a gap between them).
#[derive(Default)]
struct Runs {
    runs: std::collections::BTreeMap<u64, (std::collections::BTreeMap<u32, BenchEventPb>, bool)>,
}

/// Runs remembered for late watchers.
const RUNS_KEPT: usize = 32;

/// The bench daemon's side: the bot's handle.
pub struct BenchRole {
    pub handle: crate::bench::BotHandle,
    /// The validator the bot works for (host:port).
    pub validator: String,
    runs: Arc<Mutex<Runs>>,
    events: tokio::sync::broadcast::Sender<BenchEventPb>,
    _recorder: tokio::task::JoinHandle<()>,
    /// The chain the bot reads miners from, for the block it has seen.
    chain: Option<crate::chain::ChainClient>,
}

use mr_proto::v1::BenchEvent as BenchEventPb;

impl BenchRole {
    /// Starts recording the bot's progress events (call inside the runtime).
    pub fn new(handle: crate::bench::BotHandle, validator: String) -> BenchRole {
        let runs: Arc<Mutex<Runs>> = Arc::default();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let mut rx = handle.subscribe();
        let recorder = {
            let (runs, events) = (Arc::clone(&runs), events.clone());
            tokio::spawn(async move {
                loop {
                    let ev = match rx.recv().await {
                        Ok(e) => e.to_proto(),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    };
                    let mut g = runs.lock().unwrap_or_else(|e| e.into_inner());
                    let run = g.runs.entry(ev.run_id).or_default();
                    run.0.insert(ev.miner_uid, ev.clone());
                    run.1 |= ev.run_finished;
                    while g.runs.len() > RUNS_KEPT {
                        g.runs.pop_first();
                    }
                    let _ = events.send(ev);
                }
            })
        };
        BenchRole {
            handle,
            validator,
            runs,
            events,
            _recorder: recorder,
            chain: None,
        }
    }
}

impl BenchRole {
    /// Reports the chain's last block in the status (the bot follows the chain for its miners).
    pub fn with_chain(mut self, chain: Option<crate::chain::ChainClient>) -> BenchRole {
        self.chain = chain;
        self
    }
}

impl Drop for BenchRole {
    fn drop(&mut self) {
        self._recorder.abort();
    }
}

#[tonic::async_trait]
impl RoleData for BenchRole {
    fn role(&self) -> Role {
        Role::Bench
    }

    fn fill_status(&self, s: &mut DaemonStatus) {
        let st = self.handle.status();
        let bot = st.to_proto();
        if let Some(c) = &self.chain {
            let (block, ago) = c.last_block_seen();
            if block > 0 {
                s.last_block = block;
                s.last_block_at_ms = now_ms().saturating_sub(ago.as_millis() as u64);
            }
        }
        s.jobs_running = u32::from(bot.miner_uid.is_some());
        s.summary = Some(Summary::Bench(mr_proto::v1::BenchSummary {
            validator: self.validator.clone(),
            benchmarks_ok: bot.benchmarks_ok,
            benchmarks_failed: bot.benchmarks_failed,
            bot: Some(bot),
        }));
    }

    fn gauges(&self) -> (u32, u64) {
        (
            u32::from(self.handle.status().to_proto().miner_uid.is_some()),
            0,
        )
    }

    async fn bots(&self) -> Result<Vec<mr_proto::v1::BotStatus>, Status> {
        Ok(vec![self.handle.status().to_proto()])
    }

    async fn start_bench(
        &self,
        req: mr_proto::v1::StartBenchRequest,
    ) -> Result<mr_proto::v1::StartBenchResponse, Status> {
        use crate::bench::{StartError, Target};
        let target = match req.miner_uid {
            Some(uid) => Target::Miner(uid),
            None => Target::All,
        };
        let mib = (req.mib > 0).then_some(req.mib);
        match self.handle.start(target, mib).await {
            Ok(run) => Ok(mr_proto::v1::StartBenchResponse {
                run_id: run.run_id,
                miner_uids: run.miner_uids,
            }),
            Err(e @ StartError::Size(_)) => Err(Status::invalid_argument(e.to_string())),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn watch_bench(&self, run_id: u64) -> Result<super::role::BenchStream, Status> {
        use futures_util::StreamExt;
        // Snapshot and subscription under the recorder's lock: no event falls between them.
        let (first, finished, rx) = {
            let g = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            let rx = self.events.subscribe();
            let (first, finished): (Vec<BenchEventPb>, bool) = match g.runs.get(&run_id) {
                Some((m, f)) if run_id != 0 => (m.values().cloned().collect(), *f),
                _ => (Vec::new(), false),
            };
            (first, finished, rx)
        };
        let mut first = first;
        // The run's last event last, since a client stops reading at it.
        first.sort_by_key(|e| e.run_finished);
        let head = futures_util::stream::iter(first.into_iter().map(Ok));
        if finished {
            return Ok(head.boxed());
        }
        let live = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(|r| async move { r.ok() })
            .filter(move |e| {
                let keep = run_id == 0 || e.run_id == run_id;
                async move { keep }
            })
            .scan(false, move |done, e| {
                // Ends after the run's last event (a watch of every run goes on).
                let out = if *done { None } else { Some(e.clone()) };
                *done = run_id != 0 && e.run_finished;
                async move { out }
            })
            .map(Ok);
        Ok(head.chain(live).boxed())
    }
}
