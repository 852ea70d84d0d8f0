//! Scoring math: from verified benchmarks to the u16 weights subtensor stores. Pure, no I/O.
//!
//! The formula, per round (`validator.weights_interval_blocks`), over the benchmarks of the
//! window (`validator.score_window_secs`):
//!
//! 1. Per miner, from its benchmarks in the window: mean upload and download throughput and mean
//!    latency of the successful ones, `success_rate = ok / all` (a failure is any outcome but OK,
//!    a refused reservation, or a report that never came).
//! 2. Any wrong result in the window: the round score is 0 and the miner is flagged with the
//!    reason. No successful benchmark: 0 too.
//! 3. Otherwise, relative to the best miner of the round (so every term is in 0..=1):
//!    `quality = (w_up·up/max_up + w_down·down/max_down + w_lat·min_lat/lat + w_cap·cap/max_cap)
//!    / (w_up + w_down + w_lat + w_cap)` and `round = quality · success_rate`.
//! 4. Miners sharing one IP split it: `round / n` where n miners have that IP.
//! 5. `ema = α·round + (1 − α)·ema_prev` (a new miner starts from 0).
//! 6. Weights: the EMAs L1-normalised, capped at the subnet's max weight limit (the excess goes
//!    to the others in proportion), then scaled so the largest is `u16::MAX` as the Bittensor SDK
//!    does; zero weights are dropped, and when fewer uids remain than the subnet's
//!    min allowed weights, unflagged uids are added with the smallest weight (1).
//!
//! NaN, infinite or negative inputs are refused with an error rather than scored.

use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("{what} of uid {uid} is {value}: scoring inputs must be finite and non-negative")]
    BadInput {
        uid: u16,
        what: &'static str,
        value: f64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// How much each part counts; validated by the config (finite, ≥ 0, not all 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreWeights {
    pub upload: f64,
    pub download: f64,
    pub latency: f64,
    pub capacity: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights {
            upload: 0.4,
            download: 0.4,
            latency: 0.1,
            capacity: 0.1,
        }
    }
}

impl ScoreWeights {
    pub fn check(&self) -> Result<(), ScoringError> {
        let all = [self.upload, self.download, self.latency, self.capacity];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) || all.iter().sum::<f64>() <= 0.0 {
            return Err(ScoringError::Invalid(format!(
                "score weights {all:?}: each finite and ≥ 0, and not all 0"
            )));
        }
        Ok(())
    }
}

/// How a benchmark ended, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    Ok,
    /// The miner returned a wrong result: the window scores 0.
    WrongResult,
    /// Unreachable, timeout, refusal, error, or no report in time.
    Failed,
}

/// One benchmark of one miner.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub outcome: SampleOutcome,
    pub upload_bytes_per_s: f64,
    pub download_bytes_per_s: f64,
    pub latency_ms: f64,
    pub reason: String,
}

impl Sample {
    /// A sample that measured nothing: a failure or a wrong result, with its reason.
    pub fn without_figures(outcome: SampleOutcome, reason: String) -> Sample {
        Sample {
            outcome,
            upload_bytes_per_s: 0.0,
            download_bytes_per_s: 0.0,
            latency_ms: 0.0,
            reason,
        }
    }
}

/// A miner and its benchmarks in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerInput {
    pub uid: u16,
    /// IP of its axon ("" when unknown: never counted as shared).
    pub ip: String,
    /// Free relay memory the miner reports (self-reported: weigh it lightly).
    pub capacity_bytes: u64,
    pub samples: Vec<Sample>,
}

/// A miner's score parts for one round.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parts {
    pub uid: u16,
    pub upload_bytes_per_s: f64,
    pub download_bytes_per_s: f64,
    pub latency_ms: f64,
    pub success_rate: f64,
    pub capacity_bytes: u64,
    pub benchmarks: u32,
    /// Miners with this miner's IP (1: alone).
    pub shared_ip: u32,
    /// Round score (after the IP split).
    pub round: f64,
    /// Why the score is what it is, e.g. "wrong_result: block 3 differs".
    pub flags: Vec<String>,
}

impl Parts {
    /// True when flagged for a wrong result (never padded into the weights).
    pub fn wrong(&self) -> bool {
        self.flags.iter().any(|f| f.starts_with("wrong_result"))
    }
}

fn finite(uid: u16, what: &'static str, value: f64) -> Result<f64, ScoringError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ScoringError::BadInput { uid, what, value })
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / f64::from(n) }
}

/// Round scores of every miner given; same order as `inputs`.
pub fn round_scores(inputs: &[MinerInput], w: &ScoreWeights) -> Result<Vec<Parts>, ScoringError> {
    w.check()?;
    let mut seen = HashSet::new();
    for m in inputs {
        if !seen.insert(m.uid) {
            return Err(ScoringError::Invalid(format!(
                "uid {} appears twice",
                m.uid
            )));
        }
        for s in &m.samples {
            finite(m.uid, "upload throughput", s.upload_bytes_per_s)?;
            finite(m.uid, "download throughput", s.download_bytes_per_s)?;
            finite(m.uid, "latency", s.latency_ms)?;
        }
    }
    let mut per_ip: HashMap<&str, u32> = HashMap::new();
    for m in inputs.iter().filter(|m| !m.ip.is_empty()) {
        *per_ip.entry(m.ip.as_str()).or_default() += 1;
    }
    let mut parts: Vec<Parts> = inputs
        .iter()
        .map(|m| {
            let ok: Vec<&Sample> = m
                .samples
                .iter()
                .filter(|s| s.outcome == SampleOutcome::Ok)
                .collect();
            let mut flags = Vec::new();
            if let Some(bad) = m
                .samples
                .iter()
                .find(|s| s.outcome == SampleOutcome::WrongResult)
            {
                flags.push(format!("wrong_result: {}", bad.reason));
            }
            if ok.is_empty() {
                match m.samples.last() {
                    None => flags.push("no_benchmark".to_string()),
                    Some(s) if s.outcome == SampleOutcome::Failed => {
                        flags.push(format!("failing: {}", s.reason))
                    }
                    Some(_) => {}
                }
            }
            let shared = if m.ip.is_empty() {
                1
            } else {
                per_ip.get(m.ip.as_str()).copied().unwrap_or(1)
            };
            if shared > 1 {
                flags.push(format!("shared_ip: {shared} miners"));
            }
            Parts {
                uid: m.uid,
                upload_bytes_per_s: mean(ok.iter().map(|s| s.upload_bytes_per_s)),
                download_bytes_per_s: mean(ok.iter().map(|s| s.download_bytes_per_s)),
                latency_ms: mean(ok.iter().map(|s| s.latency_ms)),
                success_rate: if m.samples.is_empty() {
                    0.0
                } else {
                    ok.len() as f64 / m.samples.len() as f64
                },
                capacity_bytes: m.capacity_bytes,
                benchmarks: m.samples.len() as u32,
                shared_ip: shared,
                round: 0.0,
                flags,
            }
        })
        .collect();
    let eligible = |p: &Parts| p.success_rate > 0.0 && !p.wrong();
    let best = |f: fn(&Parts) -> f64| {
        parts
            .iter()
            .filter(|p| eligible(p))
            .map(f)
            .fold(0.0f64, f64::max)
    };
    let max_up = best(|p| p.upload_bytes_per_s);
    let max_down = best(|p| p.download_bytes_per_s);
    let max_cap = best(|p| p.capacity_bytes as f64);
    let min_lat = parts
        .iter()
        .filter(|p| eligible(p) && p.latency_ms > 0.0)
        .map(|p| p.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let rel = |v: f64, max: f64| if max > 0.0 { v / max } else { 0.0 };
    let total = w.upload + w.download + w.latency + w.capacity;
    for p in parts.iter_mut().filter(|p| eligible(p)) {
        // A latency of 0 (below the clock's resolution) is the best there is.
        let lat = if p.latency_ms <= 0.0 || !min_lat.is_finite() {
            1.0
        } else {
            min_lat / p.latency_ms
        };
        let quality = (w.upload * rel(p.upload_bytes_per_s, max_up)
            + w.download * rel(p.download_bytes_per_s, max_down)
            + w.latency * lat
            + w.capacity * rel(p.capacity_bytes as f64, max_cap))
            / total;
        p.round = quality * p.success_rate / f64::from(p.shared_ip);
    }
    Ok(parts)
}

/// One EMA step: `alpha·round + (1 − alpha)·prev`.
pub fn ema(prev: f64, round: f64, alpha: f64) -> Result<f64, ScoringError> {
    if !(alpha > 0.0 && alpha <= 1.0) {
        return Err(ScoringError::Invalid(format!(
            "ema_alpha {alpha}: must be above 0 and at most 1"
        )));
    }
    finite(0, "previous EMA", prev)?;
    finite(0, "round score", round)?;
    Ok(alpha * round + (1.0 - alpha) * prev)
}

/// Fractions summing to 1; all zero when every input is zero.
pub fn normalize_l1(values: &[f64]) -> Result<Vec<f64>, ScoringError> {
    for v in values {
        finite(0, "score", *v)?;
    }
    let sum: f64 = values.iter().sum();
    if sum <= 0.0 {
        return Ok(vec![0.0; values.len()]);
    }
    Ok(values.iter().map(|v| v / sum).collect())
}

/// Caps every fraction at `limit` (of 1) and hands the excess to the uncapped ones in
/// proportion, as subtensor's max weight limit requires. Input: fractions summing to 1.
/// Fails when the limit cannot be met (fewer non-zero weights than 1/limit).
pub fn cap_max_weight(fractions: &[f64], limit: f64) -> Result<Vec<f64>, ScoringError> {
    if !(limit > 0.0 && limit.is_finite()) {
        return Err(ScoringError::Invalid(format!("max weight limit {limit}")));
    }
    let nonzero = fractions.iter().filter(|w| **w > 0.0).count();
    if nonzero == 0 || limit >= 1.0 {
        return Ok(fractions.to_vec());
    }
    if (nonzero as f64) * limit < 1.0 - 1e-12 {
        return Err(ScoringError::Invalid(format!(
            "the subnet's max weight limit {limit:.4} needs at least {} miners with a score; {nonzero} have one",
            (1.0 / limit).ceil()
        )));
    }
    let mut out = fractions.to_vec();
    let mut capped = vec![false; out.len()];
    // Each pass caps at least one more entry, so this ends within len passes.
    for _ in 0..=out.len() {
        let over: Vec<usize> = (0..out.len())
            .filter(|&i| !capped[i] && out[i] > limit)
            .collect();
        if over.is_empty() {
            break;
        }
        for &i in &over {
            capped[i] = true;
        }
        let fixed: f64 = capped.iter().filter(|c| **c).count() as f64 * limit;
        let free: f64 = (0..out.len())
            .filter(|&i| !capped[i])
            .map(|i| fractions[i])
            .sum();
        for i in 0..out.len() {
            out[i] = if capped[i] {
                limit
            } else if free > 0.0 {
                fractions[i] / free * (1.0 - fixed)
            } else {
                0.0
            };
        }
    }
    Ok(out)
}

/// Converts float weights into the chain's u16 form: scaled so the largest is `u16::MAX`
/// (as the Bittensor SDK does), zero weights dropped. Fails on mismatched lengths, duplicate
/// uids, and negative or non-finite weights.
pub fn to_u16_weights(uids: &[u16], weights: &[f64]) -> Result<(Vec<u16>, Vec<u16>), ScoringError> {
    if uids.len() != weights.len() {
        return Err(ScoringError::Invalid(format!(
            "{} uids but {} weights",
            uids.len(),
            weights.len()
        )));
    }
    let mut seen = HashSet::new();
    for (u, w) in uids.iter().zip(weights) {
        if !seen.insert(*u) {
            return Err(ScoringError::Invalid(format!("uid {u} appears twice")));
        }
        if !w.is_finite() || *w < 0.0 {
            return Err(ScoringError::Invalid(format!(
                "weight {w} of uid {u}: weights are finite and non-negative"
            )));
        }
    }
    let max = weights.iter().copied().fold(0.0f64, f64::max);
    if max <= 0.0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut out_u = Vec::with_capacity(uids.len());
    let mut out_w = Vec::with_capacity(uids.len());
    for (u, w) in uids.iter().zip(weights) {
        let v = (w / max * f64::from(u16::MAX)).round() as u16;
        if v > 0 {
            out_u.push(*u);
            out_w.push(v);
        }
    }
    Ok((out_u, out_w))
}

/// The subnet's rules for a weight vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLimits {
    /// Largest normalised weight, as a fraction of u16::MAX (u16::MAX: no limit).
    pub max_weight_limit: u16,
    /// Fewest uids a weight vector may name (bounded by the subnet's size by the chain).
    pub min_allowed_weights: u16,
}

/// The weights a round sends: normalised EMAs, capped, as u16, padded to min allowed weights
/// with `pad` uids (unflagged miners without a score, in order). `emas` are (uid, EMA).
/// Returns (uids, u16 weights) ready for set_weights, and the float fractions by uid (after the
/// cap) for display. Empty when no miner has a score.
#[allow(clippy::type_complexity)]
pub fn chain_weights(
    emas: &[(u16, f64)],
    limits: ChainLimits,
    pad: &[u16],
) -> Result<(Vec<u16>, Vec<u16>, Vec<(u16, f64)>), ScoringError> {
    let uids: Vec<u16> = emas.iter().map(|(u, _)| *u).collect();
    let vals: Vec<f64> = emas.iter().map(|(_, e)| *e).collect();
    let norm = normalize_l1(&vals)?;
    let limit = f64::from(limits.max_weight_limit) / f64::from(u16::MAX);
    // Integer rounding can push the chain's own normalisation a hair above the limit: aim under.
    let fractions = if limits.max_weight_limit == u16::MAX {
        norm
    } else {
        cap_max_weight(&norm, limit * (1.0 - 1e-4))?
    };
    let (mut out_u, mut out_w) = to_u16_weights(&uids, &fractions)?;
    if out_u.is_empty() {
        return Ok((out_u, out_w, Vec::new()));
    }
    for p in pad {
        if out_u.len() >= usize::from(limits.min_allowed_weights) {
            break;
        }
        if !out_u.contains(p) {
            out_u.push(*p);
            out_w.push(1);
        }
    }
    let shown = uids.iter().copied().zip(fractions).collect();
    Ok((out_u, out_w, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(up: f64, down: f64, lat: f64) -> Sample {
        Sample {
            outcome: SampleOutcome::Ok,
            upload_bytes_per_s: up,
            download_bytes_per_s: down,
            latency_ms: lat,
            reason: String::new(),
        }
    }

    fn bad(outcome: SampleOutcome, reason: &str) -> Sample {
        Sample::without_figures(outcome, reason.into())
    }

    fn miner(uid: u16, ip: &str, samples: Vec<Sample>) -> MinerInput {
        MinerInput {
            uid,
            ip: ip.into(),
            capacity_bytes: 1 << 30,
            samples,
        }
    }

    const W: ScoreWeights = ScoreWeights {
        upload: 0.4,
        download: 0.4,
        latency: 0.1,
        capacity: 0.1,
    };

    #[test]
    fn best_miner_scores_one_and_the_rest_relative() {
        let p = round_scores(
            &[
                miner(1, "10.0.0.1", vec![ok(400.0, 400.0, 10.0)]),
                miner(2, "10.0.0.2", vec![ok(200.0, 200.0, 20.0)]),
            ],
            &W,
        )
        .expect("scores");
        assert!((p[0].round - 1.0).abs() < 1e-12, "{p:?}");
        // 0.8 · 0.5 + 0.1 · 0.5 + 0.1 · 1 = 0.55
        assert!((p[1].round - 0.55).abs() < 1e-12, "{p:?}");
        assert_eq!(p[0].shared_ip, 1);
        assert!(p[0].flags.is_empty());
    }

    #[test]
    fn means_and_success_rate_over_the_window() {
        let p = round_scores(
            &[miner(
                1,
                "a",
                vec![
                    ok(100.0, 300.0, 10.0),
                    ok(300.0, 100.0, 30.0),
                    bad(SampleOutcome::Failed, "timeout"),
                    bad(SampleOutcome::Failed, "unreachable"),
                ],
            )],
            &W,
        )
        .expect("scores");
        assert_eq!(p[0].upload_bytes_per_s, 200.0);
        assert_eq!(p[0].download_bytes_per_s, 200.0);
        assert_eq!(p[0].latency_ms, 20.0);
        assert_eq!(p[0].success_rate, 0.5);
        assert_eq!(p[0].benchmarks, 4);
        // Alone, so every relative term is 1: round = success rate.
        assert!((p[0].round - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_wrong_result_zeroes_the_window_with_the_reason() {
        let p = round_scores(
            &[
                miner(
                    1,
                    "a",
                    vec![
                        ok(900.0, 900.0, 1.0),
                        bad(SampleOutcome::WrongResult, "block 3 differs"),
                    ],
                ),
                miner(2, "b", vec![ok(100.0, 100.0, 10.0)]),
            ],
            &W,
        )
        .expect("scores");
        assert_eq!(p[0].round, 0.0);
        assert!(p[0].wrong());
        assert_eq!(p[0].flags, vec!["wrong_result: block 3 differs"]);
        // The cheat's speed does not set the bar for the honest one.
        assert!((p[1].round - 1.0).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn no_benchmark_or_only_failures_score_zero() {
        let p = round_scores(
            &[
                miner(1, "a", vec![]),
                miner(2, "b", vec![bad(SampleOutcome::Failed, "refused: memory")]),
            ],
            &W,
        )
        .expect("scores");
        assert_eq!(p[0].round, 0.0);
        assert_eq!(p[0].flags, vec!["no_benchmark"]);
        assert_eq!(p[1].round, 0.0);
        assert_eq!(p[1].flags, vec!["failing: refused: memory"]);
    }

    #[test]
    fn miners_sharing_an_ip_split_their_score() {
        let p = round_scores(
            &[
                miner(1, "10.0.0.1", vec![ok(100.0, 100.0, 5.0)]),
                miner(2, "10.0.0.1", vec![ok(100.0, 100.0, 5.0)]),
                miner(3, "10.0.0.2", vec![ok(100.0, 100.0, 5.0)]),
                miner(4, "", vec![ok(100.0, 100.0, 5.0)]),
                miner(5, "", vec![ok(100.0, 100.0, 5.0)]),
            ],
            &W,
        )
        .expect("scores");
        assert_eq!(p[0].shared_ip, 2);
        assert!((p[0].round - 0.5).abs() < 1e-12);
        assert!((p[1].round - 0.5).abs() < 1e-12);
        assert!((p[2].round - 1.0).abs() < 1e-12);
        assert_eq!(p[0].flags, vec!["shared_ip: 2 miners"]);
        // Unknown addresses are not one shared address.
        assert_eq!(p[3].shared_ip, 1);
        assert!((p[4].round - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nan_and_inf_inputs_are_refused() {
        for v in [f64::NAN, f64::INFINITY, -1.0] {
            let e = round_scores(&[miner(7, "a", vec![ok(v, 1.0, 1.0)])], &W).expect_err("bad");
            assert!(matches!(e, ScoringError::BadInput { uid: 7, .. }), "{e}");
            assert!(round_scores(&[miner(7, "a", vec![ok(1.0, 1.0, v)])], &W).is_err());
            assert!(ema(0.5, v, 0.1).is_err());
            assert!(ema(v, 0.5, 0.1).is_err());
            assert!(normalize_l1(&[1.0, v]).is_err());
            assert!(to_u16_weights(&[0], &[v]).is_err());
        }
        let mut w = W;
        w.latency = f64::NAN;
        assert!(round_scores(&[], &w).is_err());
        let zero = ScoreWeights {
            upload: 0.0,
            download: 0.0,
            latency: 0.0,
            capacity: 0.0,
        };
        assert!(zero.check().is_err());
        assert!(
            round_scores(&[miner(1, "a", vec![]), miner(1, "b", vec![])], &W).is_err(),
            "duplicate uid"
        );
    }

    #[test]
    fn ema_steps_and_alpha_bounds() {
        assert!((ema(0.0, 1.0, 0.1).expect("ema") - 0.1).abs() < 1e-12);
        let mut e = 0.0;
        for _ in 0..3 {
            e = ema(e, 1.0, 0.5).expect("ema");
        }
        assert!((e - 0.875).abs() < 1e-12);
        assert_eq!(ema(0.3, 0.9, 1.0).expect("alpha 1"), 0.9);
        assert!(ema(0.3, 0.9, 0.0).is_err());
        assert!(ema(0.3, 0.9, 1.5).is_err());
    }

    #[test]
    fn l1_normalisation() {
        let n = normalize_l1(&[1.0, 3.0]).expect("n");
        assert_eq!(n, vec![0.25, 0.75]);
        assert_eq!(normalize_l1(&[0.0, 0.0]).expect("zeros"), vec![0.0, 0.0]);
        assert!(normalize_l1(&[]).expect("empty").is_empty());
        assert_eq!(normalize_l1(&[5.0]).expect("one"), vec![1.0]);
    }

    #[test]
    fn u16_rounding_and_zero_dropped() {
        let (u, w) = to_u16_weights(&[0, 1, 2], &[0.5, 1.0, 0.0]).expect("ok");
        assert_eq!(u, vec![0, 1]);
        assert_eq!(w, vec![32768, 65535]);
        // Below half a step rounds to 0 and is dropped.
        let (u, w) = to_u16_weights(&[0, 1], &[1.0, 0.4 / 65535.0]).expect("ok");
        assert_eq!((u, w), (vec![0], vec![65535]));
        let (u, w) = to_u16_weights(&[3], &[0.0]).expect("ok");
        assert!(u.is_empty() && w.is_empty());
        assert!(to_u16_weights(&[0, 1], &[1.0]).is_err());
        assert!(to_u16_weights(&[0, 0], &[1.0, 1.0]).is_err());
    }

    #[test]
    fn max_weight_limit_caps_and_redistributes() {
        let c = cap_max_weight(&[0.7, 0.2, 0.1], 0.5).expect("cap");
        assert!((c[0] - 0.5).abs() < 1e-12);
        assert!((c[1] - 0.2 / 0.3 * 0.5).abs() < 1e-12);
        assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Redistribution can push another over: capped too.
        let c = cap_max_weight(&[0.6, 0.35, 0.05], 0.4).expect("cap");
        assert!(
            (c[0] - 0.4).abs() < 1e-12 && (c[1] - 0.4).abs() < 1e-12,
            "{c:?}"
        );
        assert!((c[2] - 0.2).abs() < 1e-12);
        // Impossible: two miners cannot stay under 0.3 each.
        assert!(cap_max_weight(&[0.5, 0.5, 0.0], 0.3).is_err());
        assert_eq!(
            cap_max_weight(&[0.9, 0.1], 1.0).expect("no cap"),
            vec![0.9, 0.1]
        );
    }

    #[test]
    fn chain_weights_respect_the_limits() {
        let limits = ChainLimits {
            max_weight_limit: u16::MAX / 2,
            min_allowed_weights: 0,
        };
        let (u, w, shown) =
            chain_weights(&[(1, 0.8), (2, 0.1), (3, 0.1)], limits, &[]).expect("weights");
        assert_eq!(u, vec![1, 2, 3]);
        // What the chain checks: the largest normalised value within the limit.
        let sum: f64 = w.iter().map(|x| f64::from(*x)).sum();
        let max = f64::from(*w.iter().max().expect("max")) / sum;
        assert!(max <= 0.5, "{w:?} → {max}");
        assert!((shown.iter().map(|(_, f)| f).sum::<f64>() - 1.0).abs() < 1e-9);
        // All zero: nothing to send.
        let (u, w, _) = chain_weights(&[(1, 0.0), (2, 0.0)], limits, &[4]).expect("zero");
        assert!(u.is_empty() && w.is_empty());
        // One miner, no limit: it takes everything.
        let free = ChainLimits {
            max_weight_limit: u16::MAX,
            min_allowed_weights: 1,
        };
        let (u, w, _) = chain_weights(&[(9, 0.2)], free, &[]).expect("one");
        assert_eq!((u, w), (vec![9], vec![u16::MAX]));
        // Min allowed weights: padded with the smallest weight, never twice the same uid.
        let pad = ChainLimits {
            max_weight_limit: u16::MAX,
            min_allowed_weights: 3,
        };
        let (u, w, _) = chain_weights(&[(1, 1.0), (2, 0.0)], pad, &[1, 5, 6, 7]).expect("pad");
        assert_eq!(u, vec![1, 5, 6]);
        assert_eq!(w, vec![u16::MAX, 1, 1]);
    }
}
