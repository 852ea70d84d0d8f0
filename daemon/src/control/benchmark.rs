//! RequestBenchmark / ReportBenchmark: the validator's side of the bench bots.
//!
//! Only hotkeys in `validator.benchmark_hotkeys` may call them (the auth layer admits them with
//! the clients; the check is here). A request picks a miner (the one asked for, or the least
//! recently benchmarked, ties broken at random), reserves it with AcceptJob (up to
//! `benchmark_retries` miners; each refusal is stored as a failed benchmark of that miner) and
//! issues a ticket whose peers are the bot's hotkey once per virtual peer. A report must match
//! an outstanding assignment of the same bot; unknown, late or duplicate reports are refused
//! and change nothing. Assignments without a report by `report_by_ms` count as failures.

use super::auth::Caller;
use super::sign;
use super::validator::ValidatorState;
use crate::control::registry::MetagraphRegistry;
use crate::core::{Dtype, Version};
use crate::validator::records::{BenchRow, BenchState};
use crate::validator::score::{ScoringOptions, scored_miners, window_parts};
use crate::validator::{MinerRow, StoreError};
use crate::wire::handshake::{JobTicket, MinerSlot, issue, now_ms};
use mr_proto::v1::miner_client::MinerClient;
use mr_proto::v1::{
    AcceptJobRequest, BenchmarkAssignment, BenchmarkOutcome, ReleaseJobRequest,
    ReportBenchmarkRequest, ReportBenchmarkResponse, RequestBenchmarkRequest,
};
use rand::seq::SliceRandom;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex as AsyncMutex;
use tonic::Status;

/// The benchmark desk of a validator.
pub struct BenchDesk {
    pub state: Arc<ValidatorState>,
    pub options: ScoringOptions,
    /// The synced metagraph (None in tests without a chain: every stored miner counts).
    pub registry: Option<MetagraphRegistry>,
    /// Serialises picking and reporting so two bots never get the same miner at once.
    lock: AsyncMutex<()>,
}

fn db(e: StoreError) -> Status {
    Status::internal(e.to_string())
}

impl BenchDesk {
    pub fn new(
        state: Arc<ValidatorState>,
        options: ScoringOptions,
        registry: Option<MetagraphRegistry>,
    ) -> Arc<BenchDesk> {
        Arc::new(BenchDesk {
            state,
            options,
            registry,
            lock: AsyncMutex::new(()),
        })
    }

    fn check_bot(&self, caller: &Caller) -> Result<(), Status> {
        if self.options.benchmark_hotkeys.contains(&caller.hotkey) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "hotkey {} is not a benchmark bot of this validator: its operator adds bots to \
                 validator.benchmark_hotkeys",
                caller.hotkey
            )))
        }
    }

    fn miners(&self) -> Result<Vec<MinerRow>, Status> {
        let g = self.registry.as_ref().and_then(|r| r.get());
        scored_miners(
            &self.state.store,
            g.as_deref(),
            self.state.key.ss58_address(),
        )
        .map_err(db)
    }

    /// Marks assignments past their report time as failures and releases their miners.
    /// Returns the released (miner hotkey, benchmark id) pairs.
    pub async fn expire_overdue(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut expired = Vec::new();
        {
            let _g = self.lock.lock().await;
            for mut b in self.state.store.outstanding_benchmarks()? {
                if now > b.report_by_ms {
                    b.state = BenchState::Expired;
                    b.reason = format!("bot {} sent no report by {}", b.bot, b.report_by_ms);
                    self.state.store.put_benchmark(&b)?;
                    tracing::info!(benchmark = b.benchmark_id, miner = %b.miner_hotkey, "benchmark expired without a report");
                    expired.push(b);
                }
            }
        }
        for b in &expired {
            self.release(&b.miner_hotkey, b.benchmark_id, "expired")
                .await;
        }
        Ok(expired.len())
    }

    async fn client(&self, m: &MinerRow) -> Result<MinerClient<sign::SignedChannel>, String> {
        let ch = sign::connect(
            &m.axon,
            Arc::clone(&self.state.key),
            &m.hotkey,
            self.state.options.miner_timeout,
        )
        .await
        .map_err(|e| format!("unreachable at {}: {e}", m.axon))?;
        Ok(MinerClient::new(ch))
    }

    async fn release(&self, hotkey: &str, id: u64, reason: &str) {
        let Ok(all) = self.state.store.miners() else {
            return;
        };
        let Some(m) = all.iter().find(|m| m.hotkey == hotkey) else {
            return;
        };
        if let Ok(mut c) = self.client(m).await {
            let r = c
                .release_job(ReleaseJobRequest {
                    version: Some(Version::CURRENT.into()),
                    job_id: id,
                    reason: reason.to_string(),
                })
                .await;
            if let Err(e) = r {
                tracing::debug!(benchmark = id, miner = %hotkey, "release: {}", e.message());
            }
        }
    }

    pub async fn request(
        &self,
        caller: &Caller,
        r: RequestBenchmarkRequest,
    ) -> Result<BenchmarkAssignment, Status> {
        self.check_bot(caller)?;
        let dtype_code = if r.dtype == 0 { 1 } else { r.dtype };
        let dtype = u8::try_from(dtype_code)
            .ok()
            .and_then(Dtype::from_code)
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "unknown dtype code {} (0 or 1 f32, 2 f16, 3 bf16)",
                    r.dtype
                ))
            })?;
        if r.peers == 0 || r.peers > 64 {
            return Err(Status::invalid_argument(format!(
                "peers {}: a benchmark has 1 to 64 virtual peers",
                r.peers
            )));
        }
        if r.bytes < 4 || r.bytes > self.options.max_bytes {
            return Err(Status::invalid_argument(format!(
                "benchmark of {} bytes: must be 4 to {} bytes (validator.max_benchmark_mib)",
                r.bytes, self.options.max_bytes
            )));
        }
        // Bytes are f32 bytes: elements are what the ticket carries in any dtype.
        let elements = r.bytes / 4;
        let _ = dtype;
        self.expire_overdue().await.map_err(db)?;
        let _g = self.lock.lock().await;
        let store = &self.state.store;
        let busy: Vec<String> = store
            .outstanding_benchmarks()
            .map_err(db)?
            .into_iter()
            .map(|b| b.miner_hotkey)
            .collect();
        let all = self.miners()?;
        let candidates: Vec<MinerRow> = if let Some(uid) = r.miner_uid {
            let m = all
                .into_iter()
                .find(|m| u32::from(m.uid) == uid)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "no miner with uid {uid} on this validator's subnet"
                    ))
                })?;
            if busy.contains(&m.hotkey) {
                return Err(Status::unavailable(format!(
                    "miner uid {uid} is being benchmarked now; ask again when that report is in"
                )));
            }
            vec![m]
        } else {
            let last: HashMap<String, u64> =
                store.last_benchmarks().map_err(db)?.into_iter().collect();
            let mut c: Vec<MinerRow> = all
                .into_iter()
                .filter(|m| m.reachable && !m.relay_address.is_empty() && !busy.contains(&m.hotkey))
                .collect();
            c.shuffle(&mut rand::thread_rng());
            c.sort_by_key(|m| last.get(&m.hotkey).copied().unwrap_or(0));
            c
        };
        if candidates.is_empty() {
            return Err(Status::unavailable(
                "no miner to benchmark: none reachable, or all are being benchmarked",
            ));
        }
        let now = now_ms();
        let report_by = now.saturating_add(self.options.report_time.as_millis() as u64);
        let mut refusals = Vec::new();
        for m in candidates.iter().take(self.options.retries as usize) {
            let id = rand::random::<u64>().max(1);
            let mut row = BenchRow {
                benchmark_id: id,
                bot: caller.hotkey.clone(),
                miner_uid: m.uid,
                miner_hotkey: m.hotkey.clone(),
                state: BenchState::Assigned,
                outcome: 0,
                reason: String::new(),
                bytes: r.bytes,
                peers: r.peers,
                seed: 0,
                checked_elements: 0,
                upload: 0.0,
                download: 0.0,
                broadcast: 0.0,
                latency_ms: 0.0,
                all_reduce_s: 0.0,
                broadcast_s: 0.0,
                assigned_at_ms: now,
                report_by_ms: report_by,
                reported_at_ms: 0,
                score: 0.0,
            };
            let accepted = async {
                let mut c = self.client(m).await?;
                let a = c
                    .accept_job(AcceptJobRequest {
                        version: Some(Version::CURRENT.into()),
                        job_id: id,
                        peers: r.peers,
                        dtype: dtype_code,
                        block_elems: self.state.options.block_elems,
                        shard_elements: elements,
                        expires_at_ms: report_by,
                    })
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                    .into_inner();
                Ok::<_, String>(if a.relay_address.is_empty() {
                    m.relay_address.clone()
                } else {
                    a.relay_address
                })
            }
            .await;
            let address = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(miner = %m.hotkey, uid = m.uid, "benchmark refused: {e}");
                    row.state = BenchState::Refused;
                    row.outcome = BenchmarkOutcome::Refused as i32;
                    row.reason = e.clone();
                    store.put_benchmark(&row).map_err(db)?;
                    refusals.push(format!("uid {}: {e}", m.uid));
                    continue;
                }
            };
            let ticket = JobTicket {
                job_id: id,
                validator: String::new(),
                peers: vec![caller.hotkey.clone(); r.peers as usize],
                miners: vec![MinerSlot {
                    hotkey: m.hotkey.clone(),
                    address,
                    weight: 1,
                }],
                dtype: dtype_code,
                block_elems: self.state.options.block_elems,
                elements,
                expires_at_ms: report_by,
                deadline_ms: 0,
                // A benchmark measures this one miner: a spare would hide its failure.
                spares: Vec::new(),
            };
            let signed =
                issue(ticket, &self.state.key).map_err(|e| Status::internal(e.to_string()))?;
            store.put_benchmark(&row).map_err(db)?;
            tracing::info!(benchmark = id, miner = %m.hotkey, uid = m.uid, bot = %caller.hotkey, "benchmark assigned");
            return Ok(BenchmarkAssignment {
                benchmark_id: id,
                miner_uid: u32::from(m.uid),
                miner_hotkey: m.hotkey.clone(),
                ticket: Some(signed),
                report_by_ms: report_by,
            });
        }
        Err(Status::unavailable(format!(
            "no miner accepted the benchmark ({} tried): {}",
            refusals.len(),
            refusals.join("; ")
        )))
    }

    pub async fn report(
        &self,
        caller: &Caller,
        r: ReportBenchmarkRequest,
    ) -> Result<ReportBenchmarkResponse, Status> {
        self.check_bot(caller)?;
        let (row, score) = {
            let _g = self.lock.lock().await;
            let store = &self.state.store;
            let mut b = store
                .benchmark(r.benchmark_id)
                .map_err(db)?
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "no benchmark {} on this validator: report only what RequestBenchmark assigned",
                        r.benchmark_id
                    ))
                })?;
            if b.bot != caller.hotkey {
                return Err(Status::permission_denied(format!(
                    "benchmark {} was assigned to bot {}, not {}",
                    r.benchmark_id, b.bot, caller.hotkey
                )));
            }
            match b.state {
                BenchState::Assigned => {}
                BenchState::Reported => {
                    return Err(Status::already_exists(format!(
                        "benchmark {} was already reported at {}",
                        r.benchmark_id, b.reported_at_ms
                    )));
                }
                BenchState::Expired | BenchState::Refused => {
                    return Err(Status::deadline_exceeded(format!(
                        "benchmark {} is closed: report was due by {} (it counted as a failure)",
                        r.benchmark_id, b.report_by_ms
                    )));
                }
            }
            let now = now_ms();
            if now > b.report_by_ms {
                return Err(Status::deadline_exceeded(format!(
                    "benchmark {} report is late: due by {}, now {now}",
                    r.benchmark_id, b.report_by_ms
                )));
            }
            if u32::from(b.miner_uid) != r.miner_uid || b.miner_hotkey != r.miner_hotkey {
                return Err(Status::invalid_argument(format!(
                    "benchmark {} is of miner uid {} ({}), not uid {} ({})",
                    r.benchmark_id, b.miner_uid, b.miner_hotkey, r.miner_uid, r.miner_hotkey
                )));
            }
            let outcome = BenchmarkOutcome::try_from(r.outcome)
                .ok()
                .filter(|o| *o != BenchmarkOutcome::Unspecified)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "outcome {} is not a benchmark outcome",
                        r.outcome
                    ))
                })?;
            for (what, v) in [
                ("upload_bytes_per_s", r.upload_bytes_per_s),
                ("download_bytes_per_s", r.download_bytes_per_s),
                ("broadcast_bytes_per_s", r.broadcast_bytes_per_s),
                ("latency_ms", r.latency_ms),
                ("all_reduce_s", r.all_reduce_s),
                ("broadcast_s", r.broadcast_s),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Status::invalid_argument(format!(
                        "{what} is {v}: measurements are finite and non-negative"
                    )));
                }
            }
            if outcome == BenchmarkOutcome::Ok {
                if r.bytes != b.bytes || r.peers != b.peers {
                    return Err(Status::invalid_argument(format!(
                        "report of {} bytes x {} peers, but the assignment was {} bytes x {} peers",
                        r.bytes, r.peers, b.bytes, b.peers
                    )));
                }
                if r.checked_elements < b.bytes / 4 {
                    return Err(Status::invalid_argument(format!(
                        "an OK benchmark checks every element: {} checked of {}",
                        r.checked_elements,
                        b.bytes / 4
                    )));
                }
            }
            b.state = BenchState::Reported;
            b.outcome = outcome as i32;
            b.reason = r.reason.clone();
            b.seed = r.seed;
            b.checked_elements = r.checked_elements;
            b.upload = r.upload_bytes_per_s;
            b.download = r.download_bytes_per_s;
            b.broadcast = r.broadcast_bytes_per_s;
            b.latency_ms = r.latency_ms;
            b.all_reduce_s = r.all_reduce_s;
            b.broadcast_s = r.broadcast_s;
            b.reported_at_ms = now;
            store.put_benchmark(&b).map_err(db)?;
            // The miner's score over the window with this report in it.
            let miners = self.miners()?;
            let score = if outcome == BenchmarkOutcome::Ok {
                window_parts(store, &miners, &self.options, now)
                    .map_err(|e| Status::internal(e.to_string()))?
                    .into_iter()
                    .zip(&miners)
                    .find(|(_, m)| m.hotkey == b.miner_hotkey)
                    .map_or(0.0, |(p, _)| p.round)
            } else {
                0.0
            };
            b.score = score;
            store.put_benchmark(&b).map_err(db)?;
            (b, score)
        };
        tracing::info!(
            benchmark = row.benchmark_id,
            miner = %row.miner_hotkey,
            outcome = ?BenchmarkOutcome::try_from(row.outcome).unwrap_or(BenchmarkOutcome::Unspecified),
            up = row.upload,
            down = row.download,
            score,
            "benchmark reported"
        );
        self.release(&row.miner_hotkey, row.benchmark_id, "benchmark reported")
            .await;
        Ok(ReportBenchmarkResponse {
            accepted: true,
            score,
        })
    }
}
