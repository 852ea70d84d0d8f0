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
    // A miner that died or stalled in a real job (a spare took over, or the job failed) fails
    // that sample like a failed benchmark.
    for (miner, job, reason) in store.job_failures_since(since)? {
        by_miner
            .entry(miner)
            .or_default()
            .push(Sample::without_figures(
                SampleOutcome::Failed,
                format!("failed in job {job}: {reason}"),
            ));
    }
    // A miner caught returning a wrong result in a live job (a sampled block recomputed by this
    // validator, see `verify`) scores 0 for the window, like a wrong benchmark result.
    for (miner, job, reason) in store.corruptions_since(since)? {
        by_miner
            .entry(miner)
            .or_default()
            .push(Sample::without_figures(
                SampleOutcome::WrongResult,
                format!("corrupted live job {job}: {reason}"),
            ));
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
        // A wrong result (a bot's check or a live job's sample) costs the miner its whole record,
        // not one round's share of it: a cheat caught after earning weight while honest gets
        // weight 0 at once (issue 13), and builds up again from 0 once the window is clean.
        let ema = if p.wrong() {
            0.0
        } else {
            scoring::ema(before, p.round, opts.ema_alpha)?
        };
        emas.push((m.uid, ema));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validator::JobRow;

    fn job(store: &Store, job_id: u64, world_size: u32) {
        store
            .put_job(&JobRow {
                job_id,
                state: 2,
                reason: String::new(),
                name: String::new(),
                world_size,
                peers: (0..world_size).map(|r| format!("p{r}")).collect(),
                elements: 10,
                dtype: 1,
                miners_wanted: 1,
                ticket: None,
                miners: vec!["m1".into(), "spare".into()],
                created_at_ms: 1,
                expires_at_ms: u64::MAX / 2,
            })
            .expect("job");
    }

    fn miner(hotkey: &str, uid: u16) -> MinerRow {
        MinerRow {
            hotkey: hotkey.into(),
            uid,
            axon: format!("10.0.0.{uid}:8091"),
            relay_address: format!("10.0.0.{uid}:9000"),
            reachable: true,
            memory_free: 1 << 30,
            version: String::new(),
            last_seen_ms: 1,
        }
    }

    #[test]
    fn a_miner_failing_in_a_job_counts_once_most_peers_report_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("v.sqlite")).expect("open");
        job(&store, 7, 3);
        let now = 1_000_000;
        store
            .put_job_failure(7, "m1", "p0", "dropped", now)
            .expect("put");
        // Repeated by the same peer: still one reporter of three, not a majority.
        store
            .put_job_failure(7, "m1", "p0", "dropped", now)
            .expect("put");
        assert!(store.job_failures_since(0).expect("q").is_empty());
        store
            .put_job_failure(7, "m1", "p2", "dropped", now)
            .expect("put");
        let f = store.job_failures_since(0).expect("q");
        assert_eq!(f, vec![("m1".to_string(), 7, "dropped".to_string())]);
        assert!(store.job_failures_since(now + 1).expect("q").is_empty());

        let opts = ScoringOptions::from_config(&ValidatorConfig::default());
        let miners = [miner("m1", 1), miner("spare", 2)];
        let parts = window_parts(&store, &miners, &opts, now + 10).expect("parts");
        assert_eq!(parts[0].success_rate, 0.0, "its only sample is the failure");
        assert_eq!(parts[1].success_rate, 0.0, "no samples at all");
        assert_eq!(parts[0].benchmarks, 1, "the failure is one sample");
        assert_eq!(parts[1].benchmarks, 0);
        assert!(
            parts[0].flags.iter().any(|f| f.contains("failed in job 7")),
            "{:?}",
            parts[0].flags
        );
    }

    fn bench(id: u64, miner: &MinerRow, outcome: BenchmarkOutcome, at_ms: u64) -> BenchRow {
        BenchRow {
            benchmark_id: id,
            bot: "bot".into(),
            miner_uid: miner.uid,
            miner_hotkey: miner.hotkey.clone(),
            state: BenchState::Reported,
            outcome: outcome as i32,
            reason: if outcome == BenchmarkOutcome::WrongResult {
                "element 3 of rank 1 is 2, expected 1".into()
            } else {
                String::new()
            },
            bytes: 1 << 20,
            peers: 3,
            seed: id,
            checked_elements: 1 << 18,
            upload: 50e6,
            download: 50e6,
            broadcast: 50e6,
            latency_ms: 1.0,
            all_reduce_s: 0.1,
            broadcast_s: 0.1,
            assigned_at_ms: at_ms,
            report_by_ms: at_ms + 60_000,
            reported_at_ms: at_ms,
            score: 0.0,
        }
    }

    #[test]
    fn a_wrong_result_takes_a_miners_whole_ema_and_weight_not_one_rounds_share() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("v.sqlite")).expect("open");
        let opts = ScoringOptions::from_config(&ValidatorConfig::default());
        let limits = ChainLimits {
            max_weight_limit: u16::MAX,
            min_allowed_weights: 1,
        };
        let miners = [miner("m1", 1), miner("m2", 2)];
        let window = opts.window.as_millis() as u64;

        // Honest rounds: both build up an EMA.
        let mut now = 10 * window;
        for i in 0..3 {
            store
                .put_benchmark(&bench(2 * i, &miners[0], BenchmarkOutcome::Ok, now))
                .expect("put");
            store
                .put_benchmark(&bench(2 * i + 1, &miners[1], BenchmarkOutcome::Ok, now))
                .expect("put");
            let r = compute_round(&store, &miners, &opts, limits, now + 1).expect("round");
            store
                .put_round(i, now, &r.uids, &r.weights, &r.error, &r.scores)
                .expect("store round");
            now += 2 * window;
        }
        let before: HashMap<String, f64> = store
            .emas()
            .expect("emas")
            .into_iter()
            .map(|(h, _, e)| (h, e))
            .collect();
        assert!(before["m1"] > 0.0 && before["m2"] > 0.0, "{before:?}");

        // m1 is then caught once among good results: its EMA and weight go to 0 at once.
        store
            .put_benchmark(&bench(100, &miners[0], BenchmarkOutcome::Ok, now))
            .expect("put");
        store
            .put_benchmark(&bench(101, &miners[0], BenchmarkOutcome::WrongResult, now))
            .expect("put");
        store
            .put_benchmark(&bench(102, &miners[1], BenchmarkOutcome::Ok, now))
            .expect("put");
        let r = compute_round(&store, &miners, &opts, limits, now + 1).expect("round");
        let line = |uid| r.scores.iter().find(|s| s.uid == uid).expect("line");
        assert_eq!(line(1).ema, 0.0, "the cheat keeps nothing: {:?}", line(1));
        assert_eq!(line(1).weight_u16, 0);
        assert!(
            !r.uids.contains(&1),
            "the cheat is not in the vector: {r:?}"
        );
        assert!(line(2).ema >= before["m2"], "the honest miner is untouched");
        assert_eq!(r.uids, vec![2]);
        assert!(
            line(1)
                .flags
                .iter()
                .any(|f| f.contains("element 3 of rank 1"))
        );
    }
}
