//! The weight loop: every `validator.weights_interval_blocks` a scoring round (window scores, EMA
//! step, normalised and capped u16 weights) is stored, then sent with set_weights, or with
//! commit_weights and later reveal_weights when the subnet has commit-reveal on.
//!
//! The chain's weights rate limit is read before sending: a round that may not be sent yet is a
//! logged warning naming the block at which it will be (once per round and block), never an
//! error or a tight retry. A failed send is recorded with its error and retried no sooner than
//! a few blocks and 30 s later. Rounds and weight sets are in the [`Store`], so a restart resumes
//! where the loop stopped (an unsent round is sent; its EMA is not stepped again).
//!
//! No duplicate and no lost weight set across a kill -9: before set_weights is sent, a
//! [`WeightIntent`] (round, block, account nonce) is stored. A round that has an intent but no
//! recorded outcome is first checked on the chain: our LastUpdate past the intent's block means
//! it landed (recorded, not sent again); our nonce used without that means it failed; otherwise
//! it is sent again with the same nonce, so at most one of the attempts can ever be included.
//! (Commit-reveal rounds are not covered: a kill between commit and its record commits again.)

use super::records::{WeightIntent, WeightSetRow};
use super::score::{ScoringOptions, compute_round, scored_miners};
use super::store::Store;
use crate::chain::{ChainClient, ChainSigner};
use crate::control::benchmark::BenchDesk;
use crate::control::registry::MetagraphRegistry;
use crate::core::scoring::ChainLimits;
use crate::core::testhook;
use crate::wire::handshake::now_ms;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What the loop last saw of the chain, for the admin API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainWeights {
    pub current_block: u64,
    /// Block of our last weight set on chain (0: never).
    pub last_set_block: u64,
    pub next_allowed_block: u64,
    pub rate_limit: u64,
    pub commit_reveal: bool,
}

pub type SharedChainWeights = Arc<RwLock<ChainWeights>>;

/// The loop's inputs. Run [`WeightLoop::run`] beside the daemon's other chain tasks (`select!`):
/// the chain client's futures are not `'static`.
pub struct WeightLoop<'a> {
    pub chain: &'a ChainClient,
    pub signer: ChainSigner,
    pub netuid: u16,
    pub store: Arc<Store>,
    pub desk: Arc<BenchDesk>,
    pub registry: MetagraphRegistry,
    pub options: ScoringOptions,
    pub view: SharedChainWeights,
    /// How often the chain is looked at.
    pub tick: Duration,
}

/// Retry gate after a failed or rate-limited send.
#[derive(Debug, Default)]
struct Gate {
    round: u64,
    block: u64,
    at_ms: u64,
    warned: Option<(u64, u64)>,
    reveal_at_ms: u64,
    /// Block at which the loop first looked (the first round comes an interval after it).
    started: Option<u64>,
}

impl WeightLoop<'_> {
    pub async fn run(self) {
        let mut gate = Gate::default();
        loop {
            if let Err(e) = self.step(&mut gate).await {
                tracing::warn!("weights: {e}");
            }
            tokio::time::sleep(self.tick).await;
        }
    }

    fn set_view(&self, f: impl FnOnce(&mut ChainWeights)) {
        f(&mut self.view.write().unwrap_or_else(|e| e.into_inner()));
    }

    async fn step(&self, gate: &mut Gate) -> Result<(), String> {
        let s = |e: &dyn std::fmt::Display| e.to_string();
        if let Err(e) = self.desk.expire_overdue().await {
            tracing::warn!("expiring benchmarks: {e}");
        }
        let block = self.chain.block_number().await.map_err(|e| s(&e))?;
        self.set_view(|v| v.current_block = block);
        let last = self.store.last_round().map_err(|e| s(&e))?;
        let started = *gate.started.get_or_insert(block);
        let due =
            block >= last.as_ref().map_or(started, |r| r.block) + self.options.interval_blocks;
        let unsent = match &last {
            Some(r) => {
                !r.uids.is_empty() && !self.store.round_sent(r.round_id).map_err(|e| s(&e))?
            }
            None => false,
        };
        let pending = self.store.pending_reveal().map_err(|e| s(&e))?;
        if !due && !unsent && pending.is_none() {
            return Ok(());
        }
        let hyper = self
            .chain
            .hyperparameters(self.netuid)
            .await
            .map_err(|e| s(&e))?;
        self.set_view(|v| {
            v.commit_reveal = hyper.commit_reveal_enabled;
            v.rate_limit = hyper.weights_rate_limit;
        });
        if due {
            let g = self.registry.get();
            let miners =
                scored_miners(&self.store, g.as_deref(), self.signer.ss58()).map_err(|e| s(&e))?;
            let limits = ChainLimits {
                max_weight_limit: hyper.max_weight_limit,
                min_allowed_weights: hyper.min_allowed_weights,
            };
            let now = now_ms();
            let round = compute_round(&self.store, &miners, &self.options, limits, now)
                .map_err(|e| s(&e))?;
            if round.benchmarks == 0 {
                tracing::debug!(block, "no benchmark in the window: no round");
            } else {
                let id = self
                    .store
                    .put_round(
                        block,
                        now,
                        &round.uids,
                        &round.weights,
                        &round.error,
                        &round.scores,
                    )
                    .map_err(|e| s(&e))?;
                tracing::info!(
                    round = id,
                    block,
                    uids = ?round.uids,
                    weights = ?round.weights,
                    "scoring round{}",
                    if round.error.is_empty() { String::new() } else { format!(": {}", round.error) }
                );
            }
        }
        if let Some((round_id, p)) = pending {
            if now_ms() < gate.reveal_at_ms {
                return Ok(());
            }
            let r = self.reveal(block, round_id, p).await;
            if r.is_err() {
                gate.reveal_at_ms = now_ms() + 30_000;
            }
            return r;
        }
        let Some(r) = self.store.last_round().map_err(|e| s(&e))? else {
            return Ok(());
        };
        if r.uids.is_empty() || self.store.round_sent(r.round_id).map_err(|e| s(&e))? {
            return Ok(());
        }
        if gate.round == r.round_id && (block < gate.block || now_ms() < gate.at_ms) {
            return Ok(());
        }
        // An earlier attempt of this round whose outcome was never recorded (a kill -9 between
        // sending and the write below, or a timeout). The nonce is read before LastUpdate, so an
        // inclusion between the two reads is seen as landed, never as failed.
        let intent = if hyper.commit_reveal_enabled {
            None
        } else {
            self.store.weight_intent(r.round_id).map_err(|e| s(&e))?
        };
        let included_nonce = match intent {
            Some(_) => Some(
                self.chain
                    .account_nonce(&self.signer.public_key())
                    .await
                    .map_err(|e| s(&e))?,
            ),
            None => None,
        };
        let st = self
            .chain
            .weights_status(self.netuid, &self.signer.public_key())
            .await
            .map_err(|e| s(&e))?;
        self.set_view(|v| {
            v.last_set_block = st.last_update;
            v.next_allowed_block = st.next_allowed_block;
        });
        let mut resend = None;
        if let (Some(i), Some(included)) = (intent, included_nonce) {
            if st.last_update > i.block {
                // Only our own set_weights moves our LastUpdate, and only this round's attempts
                // were sent after block i.block: it landed.
                tracing::info!(
                    round = r.round_id,
                    block = st.last_update,
                    "weights of round {} were already set on chain at block {} (the outcome was not recorded, e.g. a restart): recorded, not sent again",
                    r.round_id,
                    st.last_update
                );
                self.set_view(|v| v.last_set_block = st.last_update);
                return self
                    .store
                    .put_weight_set(&WeightSetRow {
                        round_id: r.round_id,
                        block: st.last_update,
                        at_ms: now_ms(),
                        ok: true,
                        error: String::new(),
                        kind: "set".into(),
                        uids: r.uids.clone(),
                        weights: r.weights.clone(),
                    })
                    .map_err(|e| s(&e));
            }
            if included > i.nonce {
                // Its nonce was used without moving LastUpdate: that attempt failed on chain.
                tracing::info!(
                    round = r.round_id,
                    "an earlier attempt of round {} (nonce {}) failed on chain: sending anew",
                    r.round_id,
                    i.nonce
                );
                self.store
                    .clear_weight_intent(r.round_id)
                    .map_err(|e| s(&e))?;
            } else {
                // Not included (yet): resending with the same nonce lets at most one land.
                tracing::info!(
                    round = r.round_id,
                    "an earlier attempt of round {} (nonce {}) is not on chain: sending again with the same nonce",
                    r.round_id,
                    i.nonce
                );
                resend = Some(i);
            }
        }
        if block < st.next_allowed_block {
            if gate.warned != Some((r.round_id, st.next_allowed_block)) {
                tracing::warn!(
                    round = r.round_id,
                    block,
                    "weights rate limited (last set at block {}, limit {} blocks): round {} will be sent at block {}",
                    st.last_update,
                    st.rate_limit,
                    r.round_id,
                    st.next_allowed_block
                );
                gate.warned = Some((r.round_id, st.next_allowed_block));
            }
            // Look again in about a block: the limit itself may change meanwhile.
            *gate = Gate {
                round: r.round_id,
                block: 0,
                at_ms: now_ms() + 12_000,
                ..std::mem::take(gate)
            };
            return Ok(());
        }
        let version = hyper.weights_version_key;
        let mut row = WeightSetRow {
            round_id: r.round_id,
            block,
            at_ms: now_ms(),
            ok: true,
            error: String::new(),
            kind: "set".into(),
            uids: r.uids.clone(),
            weights: r.weights.clone(),
        };
        let result = if hyper.commit_reveal_enabled {
            row.kind = "commit".into();
            match self
                .chain
                .commit_weights(&self.signer, self.netuid, &r.uids, &r.weights, version)
                .await
            {
                Ok(p) => {
                    row.block = p.commit_block;
                    self.store.put_commit(&row, &p).map_err(|e| s(&e))?;
                    tracing::info!(round = r.round_id, block = p.commit_block, hash = %p.hash, "weights committed");
                    return Ok(());
                }
                Err(e) => Err(e),
            }
        } else {
            // The intent first, so a kill -9 from here on is reconciled with the chain above.
            let intent = match resend {
                Some(i) => i,
                None => WeightIntent {
                    round_id: r.round_id,
                    block,
                    nonce: self
                        .chain
                        .next_nonce(&self.signer)
                        .await
                        .map_err(|e| s(&e))?,
                    at_ms: now_ms(),
                },
            };
            self.store.put_weight_intent(&intent).map_err(|e| s(&e))?;
            tracing::debug!(round = r.round_id, nonce = intent.nonce, "sending weights");
            testhook::pause("before_submit").await;
            self.chain
                .set_weights_at(
                    &self.signer,
                    self.netuid,
                    &r.uids,
                    &r.weights,
                    version,
                    Some(intent.nonce),
                )
                .await
        };
        match result {
            Ok(rcpt) => {
                tracing::info!(round = r.round_id, block, uids = ?r.uids, weights = ?r.weights, tx = %rcpt.extrinsic_hash, "weights set");
                self.set_view(|v| v.last_set_block = block);
                testhook::pause("after_inclusion").await;
            }
            Err(e) => {
                tracing::warn!(round = r.round_id, block, "{} failed: {e}", row.kind);
                row.ok = false;
                row.error = e.to_string();
                *gate = Gate {
                    round: r.round_id,
                    block: block + self.options.interval_blocks.clamp(1, 10),
                    at_ms: now_ms() + 30_000,
                    ..std::mem::take(gate)
                };
            }
        }
        self.store.put_weight_set(&row).map_err(|e| s(&e))?;
        Ok(())
    }

    /// Reveals a pending commit once its reveal window opens; a missed window drops it.
    async fn reveal(
        &self,
        block: u64,
        round_id: u64,
        p: crate::chain::PendingReveal,
    ) -> Result<(), String> {
        let commits = self
            .chain
            .weight_commits(self.netuid, &self.signer.public_key())
            .await
            .map_err(|e| e.to_string())?;
        let mut row = WeightSetRow {
            round_id,
            block,
            at_ms: now_ms(),
            ok: false,
            error: String::new(),
            kind: "reveal".into(),
            uids: p.uids.clone(),
            weights: p.values.clone(),
        };
        let Some(c) = commits.iter().find(|c| c.hash == p.hash) else {
            row.error = format!(
                "commit {} is no longer on chain (expired or revealed)",
                p.hash
            );
            tracing::warn!(round = round_id, "{}", row.error);
            self.store.put_weight_set(&row).map_err(|e| e.to_string())?;
            return self.store.clear_pending_reveal().map_err(|e| e.to_string());
        };
        if block < c.first_reveal_block {
            tracing::debug!(round = round_id, "reveal at block {}", c.first_reveal_block);
            return Ok(());
        }
        match self.chain.reveal_weights(&self.signer, &p).await {
            Ok(_) => {
                row.ok = true;
                tracing::info!(round = round_id, block, "weights revealed");
                self.set_view(|v| v.last_set_block = block);
            }
            Err(e) => {
                row.error = e.to_string();
                tracing::warn!(round = round_id, block, "reveal failed: {e}");
                self.store.put_weight_set(&row).map_err(|e| e.to_string())?;
                return Err(format!(
                    "reveal of round {round_id} failed, retried in 30 s"
                ));
            }
        }
        self.store.put_weight_set(&row).map_err(|e| e.to_string())
    }
}
