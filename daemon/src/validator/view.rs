//! Read API of the validator's scoring, for the admin service (ListMiners, GetWeights): answers
//! in the admin proto's own types, from the store and the weight loop's view of the chain.
//!
//! ```ignore
//! let view = ScoringView { store, options, registry: Some(registry), own: hotkey, chain };
//! let miners: Vec<mr_proto::v1::MinerInfo> = view.miners()?;   // ListMiners
//! let weights: mr_proto::v1::Weights = view.weights(20)?;      // GetWeights (history 20)
//! ```
//!
//! - `miners()`: every scored miner (on the subnet, not ourselves) by uid: hotkey, ip, axon,
//!   relay, reachable, free memory, the score parts over the current window (throughput, latency,
//!   success rate, capacity, benchmarks, shared IP, round score), its EMA and normalised weight
//!   as of the last round, its last benchmark time and flags (wrong_result: ..., failing: ...,
//!   shared_ip: ..., no_benchmark).
//! - `weights(n)`: the last round's entries (uid, hotkey, EMA, weight, u16 sent), current block,
//!   last set block, next allowed block, interval, commit-reveal, and the last n weight sets
//!   (ok or failed with the error), newest first.

use super::score::{ScoreError, ScoringOptions, ip_of, scored_miners, window_parts};
use super::store::Store;
use super::weights::SharedChainWeights;
use crate::control::registry::MetagraphRegistry;
use crate::wire::handshake::now_ms;
use mr_proto::v1::{MinerInfo, ScoreParts, WeightEntry, WeightSet, Weights};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct ScoringView {
    pub store: Arc<Store>,
    pub options: ScoringOptions,
    pub registry: Option<MetagraphRegistry>,
    /// Our hotkey (ss58), left out of the miners.
    pub own: String,
    pub chain: SharedChainWeights,
}

impl ScoringView {
    /// Every scored miner, by uid.
    pub fn miners(&self) -> Result<Vec<MinerInfo>, ScoreError> {
        let g = self.registry.as_ref().and_then(|r| r.get());
        let miners = scored_miners(&self.store, g.as_deref(), &self.own)?;
        let parts = window_parts(&self.store, &miners, &self.options, now_ms())?;
        let last: HashMap<String, u64> = self.store.last_benchmarks()?.into_iter().collect();
        let emas: HashMap<String, (u16, f64)> = self
            .store
            .emas()?
            .into_iter()
            .map(|(h, u, e)| (h, (u, e)))
            .collect();
        let weights: HashMap<String, f64> = match self.store.last_round()? {
            Some(r) => self
                .store
                .round_scores(r.round_id)?
                .into_iter()
                .map(|s| (s.hotkey, s.weight))
                .collect(),
            None => HashMap::new(),
        };
        Ok(miners
            .iter()
            .zip(parts)
            .map(|(m, p)| {
                let ema = match emas.get(&m.hotkey) {
                    Some((uid, e)) if *uid == m.uid => *e,
                    _ => 0.0,
                };
                MinerInfo {
                    uid: u32::from(m.uid),
                    hotkey: m.hotkey.clone(),
                    ip: ip_of(&m.axon),
                    axon: m.axon.clone(),
                    relay: m.relay_address.clone(),
                    reachable: m.reachable,
                    memory_free: m.memory_free,
                    score: Some(ScoreParts {
                        upload_bytes_per_s: p.upload_bytes_per_s,
                        download_bytes_per_s: p.download_bytes_per_s,
                        latency_ms: p.latency_ms,
                        success_rate: p.success_rate,
                        capacity_bytes: p.capacity_bytes,
                        benchmarks: p.benchmarks,
                        shared_ip: p.shared_ip,
                        round: p.round,
                        ema,
                    }),
                    weight: weights.get(&m.hotkey).copied().unwrap_or(0.0),
                    last_benchmark_ms: last.get(&m.hotkey).copied().unwrap_or(0),
                    flags: p.flags,
                }
            })
            .collect())
    }

    /// The weights as last computed and sent, with `history` weight sets (0: 20), newest first.
    pub fn weights(&self, history: u32) -> Result<Weights, ScoreError> {
        let history = if history == 0 { 20 } else { history };
        let chain = self.chain.read().unwrap_or_else(|e| e.into_inner()).clone();
        let entries = match self.store.last_round()? {
            Some(r) => self
                .store
                .round_scores(r.round_id)?
                .into_iter()
                .map(|s| WeightEntry {
                    uid: u32::from(s.uid),
                    hotkey: s.hotkey,
                    ema: s.ema,
                    weight: s.weight,
                    weight_u16: u32::from(s.weight_u16),
                })
                .collect(),
            None => Vec::new(),
        };
        let history = self
            .store
            .weight_sets(history)?
            .into_iter()
            .map(|w| WeightSet {
                block: w.block,
                at_ms: w.at_ms,
                ok: w.ok,
                error: w.error,
                kind: w.kind,
                uids: w.uids.into_iter().map(u32::from).collect(),
                weights: w.weights.into_iter().map(u32::from).collect(),
            })
            .collect();
        Ok(Weights {
            entries,
            current_block: chain.current_block,
            last_set_block: chain.last_set_block,
            next_allowed_block: chain.next_allowed_block,
            interval_blocks: self.options.interval_blocks,
            commit_reveal: chain.commit_reveal,
            history,
        })
    }
}
