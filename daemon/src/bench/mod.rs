//! The benchmark bot (`mrd bench`): asks its validator for benchmarks, plays P virtual peers
//! through the assigned miner on data only it knows, checks every element of every result,
//! measures throughput and latency, and reports signed results.
//!
//! [`runner`] runs and checks one benchmark; [`bot`] is the loop and the [`BotHandle`] the admin
//! API serves; [`state`] holds the state machine and result types with their proto forms;
//! [`backoff`] spaces out retries when the validator cannot be reached.

pub mod backoff;
pub mod bot;
pub mod linkwatch;
pub mod runner;
pub mod state;

pub use bot::{Bot, BotHandle, BotOptions, MinerLister, StartError, StartedRun, Target};
pub use state::{BenchEvent, BenchResult, BotState, BotStatus, Outcome, Phase};
