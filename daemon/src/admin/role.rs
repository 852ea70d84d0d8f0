//! What a daemon gives the admin server: the narrow interface each role implements. Calls a
//! role does not serve keep the default, which answers UNIMPLEMENTED naming the role.

use futures_util::stream::BoxStream;
use mr_proto::v1::{
    BenchEvent, BotStatus, GetWeightsRequest, JobList, MinerList, Role, StartBenchRequest,
    StartBenchResponse, Status as DaemonStatus, Weights,
};
use tonic::Status;

/// A stream of bench progress events.
pub type BenchStream = BoxStream<'static, Result<BenchEvent, Status>>;

/// `UNIMPLEMENTED: ListMiners is not served by a miner daemon (it is a validator call)`.
pub fn not_served(call: &str, role: Role, who: &str) -> Status {
    Status::unimplemented(format!(
        "{call} is not served by a {} daemon ({who})",
        role_name(role)
    ))
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Miner => "miner",
        Role::Validator => "validator",
        Role::Bench => "bench",
        Role::Unspecified => "unknown",
    }
}

/// The per-role side of the admin API.
#[tonic::async_trait]
pub trait RoleData: Send + Sync + 'static {
    fn role(&self) -> Role;

    /// Fills the role's parts of a status: summary, jobs running, uid, last block.
    fn fill_status(&self, status: &mut DaemonStatus);

    /// (jobs running, memory reserved in bytes), sampled every second for WatchMetrics.
    fn gauges(&self) -> (u32, u64) {
        (0, 0)
    }

    /// Config keys (dotted) this role applies live from the config watch, besides the logging
    /// level, which the admin server applies itself.
    fn live_keys(&self) -> Vec<&'static str> {
        Vec::new()
    }

    async fn list_miners(&self) -> Result<MinerList, Status> {
        Err(not_served(
            "ListMiners",
            self.role(),
            "a validator serves it",
        ))
    }

    async fn get_weights(&self, _req: GetWeightsRequest) -> Result<Weights, Status> {
        Err(not_served(
            "GetWeights",
            self.role(),
            "a validator serves it",
        ))
    }

    /// Running jobs and up to `recent` finished ones, newest first.
    async fn list_jobs(&self, _recent: u32) -> Result<JobList, Status> {
        Err(not_served("ListJobs", self.role(), "no jobs here"))
    }

    /// Every known bot now (WatchBots polls this and sends what changed).
    async fn bots(&self) -> Result<Vec<BotStatus>, Status> {
        Err(not_served(
            "WatchBots",
            self.role(),
            "a bench daemon serves it",
        ))
    }

    async fn start_bench(&self, _req: StartBenchRequest) -> Result<StartBenchResponse, Status> {
        Err(not_served(
            "StartBench",
            self.role(),
            "a validator or bench daemon serves it",
        ))
    }

    /// Progress of run `run_id` (0: every run): current state first, then changes.
    async fn watch_bench(&self, _run_id: u64) -> Result<BenchStream, Status> {
        Err(not_served(
            "WatchBench",
            self.role(),
            "a validator or bench daemon serves it",
        ))
    }
}
