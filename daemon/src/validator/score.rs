//! The validator's scoring state: which miners are scored, their benchmarks in the window turned
//! into [`core::scoring`](crate::core::scoring) inputs, and a round (round scores, EMA update,
//! weights) computed from the store. The math is in `core::scoring`; this module only gathers.

use super::records::{BenchRow, BenchState, ScoreRow};
use super::store::{MinerRow, Store, StoreError};
use crate::chain::Metagraph;
use crate::config::ValidatorConfig;
use crate::core::scoring::{
    self, ChainLimits, MinerInput, Parts, Sample, SampleOutcome, ScoreWeights, ScoringError,
};
use mr_proto::v1::BenchmarkOutcome;
use std::collections::HashMap;
use std::time::Duration;

/// The scoring and benchmark settings of `[validator]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringOptions {
    /// Hotkeys allowed to call RequestBenchmark / ReportBenchmark.
    pub benchmark_hotkeys: Vec<String>,
    /// Miners tried per benchmark request.
    pub retries: u32,
    /// Time a bot has to report.
    pub report_time: Duration,
    /// Largest benchmark tensor, bytes.
    pub max_bytes: u64,
    pub window: Duration,
    pub weights: ScoreWeights,
    pub ema_alpha: f64,
    pub interval_blocks: u64,
}

impl ScoringOptions {
    pub fn from_config(v: &ValidatorConfig) -> ScoringOptions {
        ScoringOptions {
            benchmark_hotkeys: v.benchmark_hotkeys.clone(),
            retries: v.benchmark_retries.max(1),
            report_time: Duration::from_secs(v.benchmark_report_secs),
            max_bytes: v.max_benchmark_mib.saturating_mul(1024 * 1024),
            window: Duration::from_secs(v.score_window_secs),
            weights: ScoreWeights {
                upload: v.score_upload,
                download: v.score_download,
                latency: v.score_latency,
                capacity: v.score_capacity,
            },
            ema_alpha: v.ema_alpha,
            interval_blocks: v.weights_interval_blocks.max(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("scoring: {0}")]
    Math(#[from] ScoringError),
}

/// The IP of a `host:port` address ("" when it has none).
pub fn ip_of(addr: &str) -> String {
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        return sa.ip().to_string();
    }
    addr.rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_default()
}

/// The miners scored: those in the store that are still on the subnet under the same uid
/// (all of them when no metagraph is known), ourselves excluded.
pub fn scored_miners(
    store: &Store,
    metagraph: Option<&Metagraph>,
    own: &str,
) -> Result<Vec<MinerRow>, StoreError> {
    Ok(store
        .miners()?
        .into_iter()
        .filter(|m| m.hotkey != own)
        .filter(|m| metagraph.is_none_or(|g| g.by_uid(m.uid).is_some_and(|n| n.hotkey == m.hotkey)))
        .collect())
}

/// A stored benchmark as a scoring sample; `None` while its report is outstanding.
pub fn sample(b: &BenchRow) -> Option<Sample> {
    let (outcome, reason) = match b.state {
        BenchState::Assigned => return None,
        BenchState::Expired => (SampleOutcome::Failed, format!("no report: {}", b.reason)),
        BenchState::Refused => (SampleOutcome::Failed, format!("refused: {}", b.reason)),
        BenchState::Reported => match BenchmarkOutcome::try_from(b.outcome) {
            Ok(BenchmarkOutcome::Ok) => (SampleOutcome::Ok, String::new()),
            Ok(BenchmarkOutcome::WrongResult) => (SampleOutcome::WrongResult, b.reason.clone()),
            Ok(o) => (
                SampleOutcome::Failed,
                format!(
                    "{}: {}",
                    o.as_str_name()
                        .trim_start_matches("BENCHMARK_OUTCOME_")
                        .to_lowercase(),
                    b.reason
                ),
            ),
            Err(_) => (SampleOutcome::Failed, b.reason.clone()),
        },
    };
    Some(Sample {
        outcome,
        upload_bytes_per_s: b.upload,
        download_bytes_per_s: b.download,
        latency_ms: b.latency_ms,
        reason,
    })
}

/// Score parts over the window ending at `now_ms`, one per miner (same order as `miners`).
pub fn window_parts(
    store: &Store,
    miners: &[MinerRow],
    opts: &ScoringOptions,
    now_ms: u64,
) -> Result<Vec<Parts>, ScoreError> {
    let since = now_ms.saturating_sub(opts.window.as_millis() as u64);
    let mut by_miner: HashMap<String, Vec<Sample>> = HashMap::new();
    for b in store.benchmarks_since(since)? {
        if let Some(s) = sample(&b) {
            by_miner.entry(b.miner_hotkey.clone()).or_default().push(s);
        }
    }
    let inputs: Vec<MinerInput> = miners
        .iter()
        .map(|m| MinerInput {
            uid: m.uid,
            ip: ip_of(&m.axon),
            capacity_bytes: m.memory_free,
            samples: by_miner.remove(&m.hotkey).unwrap_or_default(),
        })
        .collect();
    Ok(scoring::round_scores(&inputs, &opts.weights)?)
}

/// A round ready to store: every miner's line and the vector to send (empty with `error` when
/// there is nothing to send).
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub scores: Vec<ScoreRow>,
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
    pub error: String,
    /// Benchmarks in the window (a round with none is not worth storing).
    pub benchmarks: u32,
}

/// Computes a round from the store: window parts, EMA step from the stored EMAs, weights.
pub fn compute_round(
    store: &Store,
    miners: &[MinerRow],
    opts: &ScoringOptions,
    limits: ChainLimits,
    now_ms: u64,
) -> Result<Round, ScoreError> {
    let parts = window_parts(store, miners, opts, now_ms)?;
    let prev: HashMap<String, (u16, f64)> = store
        .emas()?
        .into_iter()
        .map(|(h, u, e)| (h, (u, e)))
        .collect();
    let mut emas = Vec::with_capacity(miners.len());
    for (m, p) in miners.iter().zip(&parts) {
        // A uid that changed hands starts again from 0.
        let before = match prev.get(&m.hotkey) {
            Some((uid, e)) if *uid == m.uid => *e,
            _ => 0.0,
        };
        emas.push((m.uid, scoring::ema(before, p.round, opts.ema_alpha)?));
    }
    // Padding for min allowed weights: unflagged miners first, never a wrong one.
    let pad: Vec<u16> = parts.iter().filter(|p| !p.wrong()).map(|p| p.uid).collect();
    let (uids, weights, error, shown) = match scoring::chain_weights(&emas, limits, &pad) {
        Ok((u, w, _)) if u.is_empty() => (
            u,
            w,
            "no miner has a score yet: nothing to set".to_string(),
            Vec::new(),
        ),
        Ok((u, w, shown)) => (u, w, String::new(), shown),
        Err(e) => (Vec::new(), Vec::new(), e.to_string(), Vec::new()),
    };
    let scores = miners
        .iter()
        .zip(&parts)
        .zip(&emas)
        .map(|((m, p), (_, ema))| ScoreRow {
            hotkey: m.hotkey.clone(),
            uid: m.uid,
            ip: ip_of(&m.axon),
            upload: p.upload_bytes_per_s,
            download: p.download_bytes_per_s,
            latency_ms: p.latency_ms,
            success_rate: p.success_rate,
            capacity: p.capacity_bytes,
            benchmarks: p.benchmarks,
            shared_ip: p.shared_ip,
            round: p.round,
            ema: *ema,
            weight: shown
                .iter()
                .find(|(u, _)| *u == m.uid)
                .map_or(0.0, |(_, w)| *w),
            weight_u16: uids
                .iter()
                .position(|u| *u == m.uid)
                .map_or(0, |i| weights[i]),
            flags: p.flags.clone(),
        })
        .collect();
    Ok(Round {
        benchmarks: parts.iter().map(|p| p.benchmarks).sum(),
        scores,
        uids,
        weights,
        error,
    })
}
