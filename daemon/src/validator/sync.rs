//! The validator's view of its miners: the metagraph's served axons, each asked for its Status
//! concurrently with a timeout, written to the store.

use super::store::{MinerRow, Store, StoreError};
use crate::chain::Metagraph;
use crate::control::sign;
use crate::core::Version;
use crate::wallet::Keypair;
use crate::wire::handshake::now_ms;
use mr_proto::v1::StatusRequest;
use mr_proto::v1::miner_client::MinerClient;
use std::sync::Arc;
use std::time::Duration;

/// Polls every served neuron but ourselves; returns how many answered.
pub async fn poll_miners(
    key: &Arc<Keypair>,
    metagraph: &Metagraph,
    store: &Store,
    timeout: Duration,
) -> Result<usize, StoreError> {
    let own = key.ss58_address().to_string();
    let polls = metagraph
        .neurons
        .iter()
        .filter(|n| n.hotkey != own)
        .filter_map(|n| {
            let axon = n.axon.as_ref().filter(|a| a.is_served())?.addr();
            let key = Arc::clone(key);
            let (hotkey, uid) = (n.hotkey.clone(), n.uid);
            Some(async move {
                let status = tokio::time::timeout(timeout, async {
                    let ch = sign::connect(&axon, key, &hotkey, timeout)
                        .await
                        .map_err(|e| e.to_string())?;
                    MinerClient::new(ch)
                        .status(StatusRequest {
                            version: Some(Version::CURRENT.into()),
                        })
                        .await
                        .map(|r| r.into_inner())
                        .map_err(|s| s.message().to_string())
                })
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r);
                (hotkey, uid, axon, status)
            })
        });
    let results = futures::future::join_all(polls).await;
    let known = store.miners()?;
    let mut answered = 0;
    for (hotkey, uid, axon, status) in results {
        let prev = known.iter().find(|m| m.hotkey == hotkey);
        let row = match status {
            Ok(s) if !s.draining => {
                answered += 1;
                MinerRow {
                    hotkey,
                    uid,
                    axon,
                    relay_address: s.relay_address,
                    reachable: true,
                    memory_free: s.memory_free,
                    version: s
                        .version
                        .map(Version::from)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    last_seen_ms: now_ms(),
                }
            }
            other => {
                if let Err(e) = &other {
                    tracing::debug!(%hotkey, %axon, "status poll failed: {e}");
                }
                // Keep what we knew; only reachability changes.
                MinerRow {
                    reachable: false,
                    ..prev.cloned().unwrap_or(MinerRow {
                        hotkey,
                        uid,
                        axon,
                        relay_address: String::new(),
                        reachable: false,
                        memory_free: 0,
                        version: String::new(),
                        last_seen_ms: 0,
                    })
                }
            }
        };
        store.put_miner(&row)?;
    }
    Ok(answered)
}
