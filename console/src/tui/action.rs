//! Everything that can happen to the console becomes one `Action`: keys, ticks, and what the daemons
//! send. `update` turns actions into state changes and `Command`s for the daemons.

use mr_proto::v1::{
    BenchEvent, BotStatus, ConfigDocument, JobEvent, LogLine, MetricsSample, MinerList,
    StartBenchResponse, Status, UpdateConfigResponse, Weights,
};
use ratatui::crossterm::event::KeyEvent;

// A few hundred actions a second at most, moved once each: their size does not matter, and boxing
// every daemon event would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Action {
    Key(KeyEvent),
    /// The clock moved (unix ms); sent at the frame rate.
    Tick(u64),
    /// Something from daemon number `.0` (index into `App::daemons`).
    Daemon(usize, DaemonEvent),
}

#[derive(Debug, Clone)]
pub enum DaemonEvent {
    Connecting,
    Connected(Box<Status>),
    /// The connection failed or was lost; the next attempt is at `retry_at_ms` (unix ms).
    Disconnected {
        error: String,
        retry_at_ms: u64,
    },
    Status(Box<Status>),
    Metrics(MetricsSample),
    Bot(BotStatus),
    Bench(BenchEvent),
    Job(JobEvent),
    Log(LogLine),
    Miners(MinerList),
    Weights(Weights),
    Config(ConfigDocument),
    /// Answer to `Command::CheckConfig` (a dry run).
    ConfigChecked(UpdateConfigResponse),
    /// Answer to `Command::ApplyConfig`.
    ConfigApplied(UpdateConfigResponse),
    /// Answer to `Command::ApplyConfig` that was applied, with the configuration read back.
    ConfigAppliedWith(UpdateConfigResponse, ConfigDocument),
    BenchStarted(StartBenchResponse),
    /// A command failed (the text says which and why).
    CommandFailed(String),
}

/// What `update` asks of a daemon's connection task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Benchmark one miner, or all when `None`.
    StartBench { miner_uid: Option<u32> },
    /// UpdateConfig with dry_run: validation problems and the diff.
    CheckConfig(Vec<(String, String)>),
    /// UpdateConfig for real.
    ApplyConfig(Vec<(String, String)>),
    /// GetConfig again.
    ReloadConfig,
}
