//! Job leases. A job lives `session_time` (validator.job_ttl_secs) from its last renewal: its
//! peers renew it while they use it (RenewJob), so a long training run keeps its job, while an
//! abandoned one still expires. The miners' reservations follow each renewal (ExtendJob).

use super::{ValidatorState, db, live};
use crate::core::Version;
use crate::validator::JobRow;
use crate::wire::handshake::now_ms;
use mr_proto::v1::{ExtendJobRequest, JobState};
use std::sync::Arc;
use tonic::Status;

impl ValidatorState {
    /// Moves a live job's expiry to `session_time` from now, for one of its peers. Returns the job
    /// and whether its miners' reservations need to follow (false when another rank renewed it
    /// moments ago).
    pub(super) async fn renew(&self, job_id: u64, caller: &str) -> Result<(JobRow, bool), Status> {
        let _g = self.jobs_lock.lock().await;
        let mut j = self.load(job_id)?;
        if !j.peers.iter().any(|p| p == caller) {
            return Err(Status::permission_denied(format!(
                "{caller} is not a peer of job {job_id}"
            )));
        }
        if !live(j.state) {
            let state = JobState::try_from(j.state)
                .map(|s| {
                    s.as_str_name()
                        .trim_start_matches("JOB_STATE_")
                        .to_lowercase()
                })
                .unwrap_or_else(|_| "over".into());
            return Err(Status::failed_precondition(format!(
                "job {job_id} is {state}{}: it cannot be renewed; request a new job",
                if j.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", j.reason)
                }
            )));
        }
        let ttl = self.options.session_time.as_millis() as u64;
        let now = now_ms();
        // Ranks renew independently: one renewal per quarter of the lease is enough.
        if j.expires_at_ms >= now.saturating_add(ttl - ttl / 4) {
            return Ok((j, false));
        }
        j.expires_at_ms = now.saturating_add(ttl);
        self.store.put_job(&j).map_err(db)?;
        tracing::debug!(job = job_id, by = %caller, expires_at_ms = j.expires_at_ms, "job renewed");
        Ok((j, true))
    }

    /// Best effort, in the background: a miner that misses it releases the reservation at the
    /// old expiry (its relay keeps serving the connected peers).
    pub(super) fn extend_reservations(self: &Arc<Self>, j: &JobRow) {
        let (s, miners, job_id, until) = (
            Arc::clone(self),
            j.miners.clone(),
            j.job_id,
            j.expires_at_ms,
        );
        tokio::spawn(async move {
            let Ok(all) = s.store.miners() else { return };
            for h in &miners {
                let Some(m) = all.iter().find(|m| &m.hotkey == h) else {
                    continue;
                };
                let r = match s.client(m).await {
                    Ok(mut c) => c
                        .extend_job(ExtendJobRequest {
                            version: Some(Version::CURRENT.into()),
                            job_id,
                            expires_at_ms: until,
                        })
                        .await
                        .map(|_| ())
                        .map_err(|e| e.message().to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    tracing::info!(job = job_id, miner = %h, "extending the reservation: {e}");
                }
            }
        });
    }
}
