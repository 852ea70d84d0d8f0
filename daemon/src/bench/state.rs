//! What a bot is doing and how its benchmarks end, as Rust types with their admin-API (proto)
//! forms: [`BotState`] (admin.proto BotState), [`Phase`] (BenchPhase), [`Outcome`]
//! (control.proto BenchmarkOutcome), the [`BotStatus`] snapshot and [`BenchEvent`] progress.

use mr_proto::v1 as pb;

/// The bot's state machine: idle → requesting → running → verifying → reporting → idle, and
/// backing_off after a failure to talk to the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BotState {
    #[default]
    Idle,
    Requesting,
    Running,
    Verifying,
    Reporting,
    BackingOff,
}

impl BotState {
    pub fn name(self) -> &'static str {
        match self {
            BotState::Idle => "idle",
            BotState::Requesting => "requesting",
            BotState::Running => "running",
            BotState::Verifying => "verifying",
            BotState::Reporting => "reporting",
            BotState::BackingOff => "backing_off",
        }
    }
}

impl From<BotState> for pb::BotState {
    fn from(s: BotState) -> Self {
        match s {
            BotState::Idle => pb::BotState::Idle,
            BotState::Requesting => pb::BotState::Requesting,
            BotState::Running => pb::BotState::Running,
            BotState::Verifying => pb::BotState::Verifying,
            BotState::Reporting => pb::BotState::Reporting,
            BotState::BackingOff => pb::BotState::BackingOff,
        }
    }
}

/// Where one benchmark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Queued,
    Connecting,
    AllReduce,
    Broadcast,
    Verifying,
    Reporting,
    Done,
    Failed,
}

impl From<Phase> for pb::BenchPhase {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Queued => pb::BenchPhase::Queued,
            Phase::Connecting => pb::BenchPhase::Connecting,
            Phase::AllReduce => pb::BenchPhase::AllReduce,
            Phase::Broadcast => pb::BenchPhase::Broadcast,
            Phase::Verifying => pb::BenchPhase::Verifying,
            Phase::Reporting => pb::BenchPhase::Reporting,
            Phase::Done => pb::BenchPhase::Done,
            Phase::Failed => pb::BenchPhase::Failed,
        }
    }
}

/// How a benchmark ended, as the bot saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every element of every result equalled the known answer.
    Ok,
    /// A result differed from the known answer (the reason names the first difference).
    WrongResult,
    /// The relay could not be reached or closed the connection.
    Unreachable,
    /// No progress within the deadline.
    Timeout,
    /// The relay refused the job (handshake or memory).
    Refused,
    /// Anything else.
    Error,
}

impl Outcome {
    /// "ok", "wrong_result", ...: the verdict's prefix in statuses and logs.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::WrongResult => "wrong_result",
            Outcome::Unreachable => "unreachable",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
}

impl From<Outcome> for pb::BenchmarkOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => pb::BenchmarkOutcome::Ok,
            Outcome::WrongResult => pb::BenchmarkOutcome::WrongResult,
            Outcome::Unreachable => pb::BenchmarkOutcome::Unreachable,
            Outcome::Timeout => pb::BenchmarkOutcome::Timeout,
            Outcome::Refused => pb::BenchmarkOutcome::Refused,
            Outcome::Error => pb::BenchmarkOutcome::Error,
        }
    }
}

/// A snapshot of the bot, as the admin API serves it (`WatchBots`, `GetStatus`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotStatus {
    pub hotkey: String,
    pub state: BotState,
    /// Miner under test (while running .. reporting).
    pub miner_uid: Option<u32>,
    pub miner_hotkey: String,
    /// 0..1 of the current benchmark.
    pub progress: f64,
    /// Unix ms of the last state change.
    pub since_ms: u64,
    /// Throughput now during a benchmark; the last benchmark's all_reduce throughput after it.
    pub last_bytes_per_s: f64,
    /// "ok", "wrong_result: ...", "timeout: ...", ... of the last finished benchmark.
    pub last_verdict: String,
    /// The last failure to talk to the validator (cleared by the next success).
    pub last_error: String,
    pub benchmarks_ok: u64,
    pub benchmarks_failed: u64,
    /// While backing off: when the bot tries again (unix ms).
    pub next_attempt_ms: u64,
}

impl BotStatus {
    pub fn to_proto(&self) -> pb::BotStatus {
        pb::BotStatus {
            hotkey: self.hotkey.clone(),
            state: pb::BotState::from(self.state) as i32,
            miner_uid: self.miner_uid,
            miner_hotkey: self.miner_hotkey.clone(),
            progress: self.progress,
            since_ms: self.since_ms,
            last_bytes_per_s: self.last_bytes_per_s,
            last_verdict: self.last_verdict.clone(),
            last_error: self.last_error.clone(),
            benchmarks_ok: self.benchmarks_ok,
            benchmarks_failed: self.benchmarks_failed,
            next_attempt_ms: self.next_attempt_ms,
        }
    }
}

/// The result of one benchmark, as measured and checked by the bot.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    pub outcome: Outcome,
    /// Empty when ok; where and what otherwise (a wrong result names block and element).
    pub reason: String,
    /// Seed of the data (drawn after the assignment; never sent to the miner).
    pub seed: u64,
    /// Tensor bytes (f32) per virtual peer.
    pub bytes: u64,
    pub peers: u32,
    /// Elements compared with the known answer.
    pub checked_elements: u64,
    /// Per virtual peer, during all_reduce: tensor bytes sent / received per second.
    pub upload_bytes_per_s: f64,
    pub download_bytes_per_s: f64,
    /// Tensor bytes per second delivered to each receiving peer during broadcast.
    pub broadcast_bytes_per_s: f64,
    /// From the first handshake sent to the first reduced block received.
    pub latency_ms: f64,
    pub all_reduce_s: f64,
    pub broadcast_s: f64,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

impl BenchResult {
    /// "ok", or "wrong_result: block 3 ...".
    pub fn verdict(&self) -> String {
        if self.reason.is_empty() {
            self.outcome.name().to_string()
        } else {
            format!("{}: {}", self.outcome.name(), self.reason)
        }
    }

    /// The admin API's form (`score` is the validator's answer, 0 when unknown).
    pub fn to_proto(&self, score: f64) -> pb::BenchResult {
        pb::BenchResult {
            outcome: pb::BenchmarkOutcome::from(self.outcome) as i32,
            reason: self.reason.clone(),
            upload_bytes_per_s: self.upload_bytes_per_s,
            download_bytes_per_s: self.download_bytes_per_s,
            broadcast_bytes_per_s: self.broadcast_bytes_per_s,
            latency_ms: self.latency_ms,
            bytes: self.bytes,
            score,
        }
    }
}

/// Progress of one miner's benchmark within a run (`WatchBench`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchEvent {
    pub run_id: u64,
    pub miner_uid: Option<u32>,
    pub miner_hotkey: String,
    pub bot_hotkey: String,
    pub phase: Phase,
    /// Tensor bytes moved by all virtual peers together, of `bytes_total`.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Throughput now (bytes per second, all virtual peers together).
    pub bytes_per_s: f64,
    /// Set when the phase is Done or Failed; with the validator's score when it answered.
    pub result: Option<(BenchResult, f64)>,
    /// The last event of the run.
    pub run_finished: bool,
}

impl BenchEvent {
    pub fn to_proto(&self) -> pb::BenchEvent {
        pb::BenchEvent {
            run_id: self.run_id,
            miner_uid: self.miner_uid.unwrap_or_default(),
            miner_hotkey: self.miner_hotkey.clone(),
            bot_hotkey: self.bot_hotkey.clone(),
            phase: pb::BenchPhase::from(self.phase) as i32,
            bytes_done: self.bytes_done,
            bytes_total: self.bytes_total,
            bytes_per_s: self.bytes_per_s,
            result: self.result.as_ref().map(|(r, s)| r.to_proto(*s)),
            run_finished: self.run_finished,
        }
    }
}
