//! Reads: metagraph, hyperparameters, registration, weights, balances.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt, stream};
use scale_decode::DecodeAsType;
use subxt::error::StorageError;
use subxt::ext::frame_decode::storage::{IntoDecodableValues, IntoEncodableValues};
use subxt::utils::{AccountId32, H256};

use super::client::{AtBlock, ChainClient};
use super::error::ChainError;
use super::shape::SUBTENSOR;
use super::types::{
    AxonInfo, Hyperparameters, Metagraph, Neuron, Rao, RuntimeVersion, WeightCommit, WeightsStatus,
    ip_from_chain,
};
use super::weights::normalize;
use crate::wallet::ss58;

/// Concurrent storage reads per metagraph (per-hotkey entries).
const READ_CONCURRENCY: usize = 16;

#[derive(Debug, DecodeAsType)]
struct RawAxon {
    block: u64,
    version: u32,
    ip: u128,
    port: u16,
    ip_type: u8,
    protocol: u8,
}

#[derive(Debug, DecodeAsType)]
struct RawAccountData {
    free: u128,
}

#[derive(Debug, DecodeAsType)]
struct RawAccountInfo {
    nonce: u32,
    data: RawAccountData,
}

fn storage_item(pallet: &str, entry: &str) -> String {
    format!("storage {pallet}.{entry}")
}

impl ChainClient {
    fn storage_err(
        &self,
        rt: &RuntimeVersion,
        pallet: &str,
        entry: &str,
        e: StorageError,
    ) -> ChainError {
        match e {
            StorageError::CannotFetchValue(b)
            | StorageError::CannotIterateValues(b)
            | StorageError::StreamFailure(b) => {
                self.rpc_err(&format!("reading {pallet}.{entry}"), b)
            }
            other => ChainError::Incompatible {
                item: storage_item(pallet, entry),
                runtime: rt.to_string(),
                reason: other.to_string(),
            },
        }
    }

    fn decode_err(
        rt: &RuntimeVersion,
        pallet: &str,
        entry: &str,
        e: impl std::fmt::Display,
    ) -> ChainError {
        ChainError::Incompatible {
            item: storage_item(pallet, entry),
            runtime: rt.to_string(),
            reason: format!("does not decode as this client expects: {e}"),
        }
    }

    /// One storage value (the entry's default when unset).
    pub(crate) async fn fetch<K, V>(
        &self,
        at: &AtBlock,
        rt: &RuntimeVersion,
        pallet: &str,
        entry: &str,
        keys: K,
    ) -> Result<V, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues,
        V: DecodeAsType,
    {
        let addr = subxt::dynamic::storage::<K, V>(pallet, entry);
        let value = at
            .storage()
            .fetch(addr, keys)
            .await
            .map_err(|e| self.storage_err(rt, pallet, entry, e))?;
        value
            .decode()
            .map_err(|e| Self::decode_err(rt, pallet, entry, e))
    }

    /// One storage value, None when unset and the entry has no default (`OptionQuery`).
    pub(crate) async fn fetch_opt<K, V>(
        &self,
        at: &AtBlock,
        rt: &RuntimeVersion,
        pallet: &str,
        entry: &str,
        keys: K,
    ) -> Result<Option<V>, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues,
        V: DecodeAsType,
    {
        let addr = subxt::dynamic::storage::<K, V>(pallet, entry);
        let value = at
            .storage()
            .try_fetch(addr, keys)
            .await
            .map_err(|e| self.storage_err(rt, pallet, entry, e))?;
        value
            .map(|v| v.decode())
            .transpose()
            .map_err(|e| Self::decode_err(rt, pallet, entry, e))
    }

    /// Every (keys, value) under `prefix` of a map.
    pub(crate) async fn iter_map<K, P, V>(
        &self,
        at: &AtBlock,
        rt: &RuntimeVersion,
        pallet: &str,
        entry: &str,
        prefix: P,
    ) -> Result<Vec<(K, V)>, ChainError>
    where
        K: IntoEncodableValues + IntoDecodableValues,
        P: subxt::storage::PrefixOf<K>,
        V: DecodeAsType,
    {
        let addr = subxt::dynamic::storage::<K, V>(pallet, entry);
        let mut entries = at
            .storage()
            .iter(addr, prefix)
            .await
            .map_err(|e| self.storage_err(rt, pallet, entry, e))?;
        let mut out = Vec::new();
        while let Some(kv) = entries.next().await {
            let kv = kv.map_err(|e| self.storage_err(rt, pallet, entry, e))?;
            let key = kv
                .key()
                .and_then(|k| k.decode())
                .map_err(|e| Self::decode_err(rt, pallet, entry, e))?;
            let value = kv
                .value()
                .decode()
                .map_err(|e| Self::decode_err(rt, pallet, entry, e))?;
            out.push((key, value));
        }
        Ok(out)
    }

    async fn ensure_subnet(
        &self,
        at: &AtBlock,
        rt: &RuntimeVersion,
        netuid: u16,
    ) -> Result<(), ChainError> {
        let exists: bool = self
            .fetch(at, rt, SUBTENSOR, "NetworksAdded", (netuid,))
            .await?;
        if exists {
            Ok(())
        } else {
            Err(ChainError::NoSuchSubnet { netuid })
        }
    }

    /// True when subnet `netuid` exists.
    pub async fn subnet_exists(&self, netuid: u16) -> Result<bool, ChainError> {
        self.read("reading NetworksAdded", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.fetch(&at, &rt, SUBTENSOR, "NetworksAdded", (netuid,))
                .await
        })
        .await
    }

    /// The subnet's hyperparameters.
    pub async fn hyperparameters(&self, netuid: u16) -> Result<Hyperparameters, ChainError> {
        self.read("reading hyperparameters", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.ensure_subnet(&at, &rt, netuid).await?;
            let k = (netuid,);
            let (tempo, rate, cr, period, min_w, max_w) = futures::try_join!(
                self.fetch::<_, u16>(&at, &rt, SUBTENSOR, "Tempo", k),
                self.fetch::<_, u64>(&at, &rt, SUBTENSOR, "WeightsSetRateLimit", k),
                self.fetch::<_, bool>(&at, &rt, SUBTENSOR, "CommitRevealWeightsEnabled", k),
                self.fetch::<_, u64>(&at, &rt, SUBTENSOR, "RevealPeriodEpochs", k),
                self.fetch::<_, u16>(&at, &rt, SUBTENSOR, "MinAllowedWeights", k),
                self.fetch::<_, u16>(&at, &rt, SUBTENSOR, "MaxWeightsLimit", k),
            )?;
            let (immunity, version, burn, max_uids) = futures::try_join!(
                self.fetch::<_, u16>(&at, &rt, SUBTENSOR, "ImmunityPeriod", k),
                self.fetch::<_, u64>(&at, &rt, SUBTENSOR, "WeightsVersionKey", k),
                self.fetch::<_, u64>(&at, &rt, SUBTENSOR, "Burn", k),
                self.fetch::<_, u16>(&at, &rt, SUBTENSOR, "MaxAllowedUids", k),
            )?;
            Ok(Hyperparameters {
                netuid,
                tempo,
                weights_rate_limit: rate,
                commit_reveal_enabled: cr,
                commit_reveal_period: period,
                min_allowed_weights: min_w,
                max_weight_limit: max_w,
                immunity_period: immunity,
                weights_version_key: version,
                burn: Rao(burn),
                max_allowed_uids: max_uids,
            })
        })
        .await
    }

    /// The burn (in rao) to register on `netuid` now.
    pub async fn burn(&self, netuid: u16) -> Result<Rao, ChainError> {
        self.read("reading the burn", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.ensure_subnet(&at, &rt, netuid).await?;
            let b: u64 = self.fetch(&at, &rt, SUBTENSOR, "Burn", (netuid,)).await?;
            Ok(Rao(b))
        })
        .await
    }

    /// The uid of `hotkey` on `netuid`, if registered.
    pub async fn uid_of(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<Option<u16>, ChainError> {
        self.read("reading Uids", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.uid_at(&at, &rt, netuid, hotkey).await
        })
        .await
    }

    async fn uid_at(
        &self,
        at: &AtBlock,
        rt: &RuntimeVersion,
        netuid: u16,
        hotkey: &[u8; 32],
    ) -> Result<Option<u16>, ChainError> {
        let addr = subxt::dynamic::storage::<(u16, AccountId32), u16>(SUBTENSOR, "Uids");
        let v = at
            .storage()
            .entry(addr)
            .map_err(|e| self.storage_err(rt, SUBTENSOR, "Uids", e))?;
        let key = v
            .fetch_key((netuid, AccountId32(*hotkey)))
            .map_err(|e| self.storage_err(rt, SUBTENSOR, "Uids", e))?;
        // Uids has no default worth trusting (0 is a real uid): ask for the raw value.
        match at.storage().fetch_raw(key).await {
            Ok(bytes) => {
                let uid = <u16 as codec::Decode>::decode(&mut &bytes[..])
                    .map_err(|e| Self::decode_err(rt, SUBTENSOR, "Uids", e))?;
                Ok(Some(uid))
            }
            Err(StorageError::NoValueFound) => Ok(None),
            Err(e) => Err(self.storage_err(rt, SUBTENSOR, "Uids", e)),
        }
    }

    /// True when `hotkey` holds a uid on `netuid`.
    pub async fn is_registered(&self, netuid: u16, hotkey: &[u8; 32]) -> Result<bool, ChainError> {
        Ok(self.uid_of(netuid, hotkey).await?.is_some())
    }

    /// The hotkey's uid, last weight-set block and the next block at which it may set weights.
    pub async fn weights_status(
        &self,
        netuid: u16,
        hotkey: &[u8; 32],
    ) -> Result<WeightsStatus, ChainError> {
        self.read("reading the weights status", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.ensure_subnet(&at, &rt, netuid).await?;
            let uid = self
                .uid_at(&at, &rt, netuid, hotkey)
                .await?
                .ok_or_else(|| ChainError::NotRegistered {
                    hotkey: ss58::encode(hotkey),
                    netuid,
                })?;
            let last: Vec<u64> = self
                .fetch(&at, &rt, SUBTENSOR, "LastUpdate", (netuid,))
                .await?;
            let rate: u64 = self
                .fetch(&at, &rt, SUBTENSOR, "WeightsSetRateLimit", (netuid,))
                .await?;
            let last_update = last.get(usize::from(uid)).copied().unwrap_or(0);
            let header = c
                .legacy
                .chain_get_header(None)
                .await
                .map_err(|e| self.rpc_err("chain_getHeader", e))?;
            let current_block = header.map(|h| h.number).unwrap_or(at.block_number());
            // The runtime accepts when current - last >= limit, or when it never set weights.
            let next_allowed_block = if last_update == 0 {
                0
            } else {
                last_update.saturating_add(rate)
            };
            Ok(WeightsStatus {
                netuid,
                uid,
                current_block,
                last_update,
                rate_limit: rate,
                next_allowed_block,
            })
        })
        .await
    }

    /// The weights set by `uid` on `netuid`, as stored: (uid, u16 weight).
    pub async fn weights(&self, netuid: u16, uid: u16) -> Result<Vec<(u16, u16)>, ChainError> {
        self.read("reading Weights", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.fetch(&at, &rt, SUBTENSOR, "Weights", (netuid, uid))
                .await
        })
        .await
    }

    /// The weights set by `uid`, as fractions summing to 1.
    pub async fn weights_normalized(
        &self,
        netuid: u16,
        uid: u16,
    ) -> Result<Vec<(u16, f64)>, ChainError> {
        Ok(normalize(&self.weights(netuid, uid).await?))
    }

    /// Pending hash commits of `hotkey` on `netuid`.
    pub async fn weight_commits(
        &self,
        netuid: u16,
        hotkey: &[u8; 32],
    ) -> Result<Vec<WeightCommit>, ChainError> {
        self.read("reading WeightCommits", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            let v: Option<Vec<(H256, u64, u64, u64)>> = self
                .fetch_opt(
                    &at,
                    &rt,
                    SUBTENSOR,
                    "WeightCommits",
                    (netuid, AccountId32(*hotkey)),
                )
                .await?;
            Ok(v.unwrap_or_default()
                .into_iter()
                .map(|(h, c, f, l)| WeightCommit {
                    hash: format!("0x{}", hex::encode(h.as_bytes())),
                    commit_block: c,
                    first_reveal_block: f,
                    last_reveal_block: l,
                })
                .collect())
        })
        .await
    }

    /// Free balance of an account.
    pub async fn balance(&self, account: &[u8; 32]) -> Result<Rao, ChainError> {
        self.read("reading System.Account", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            let info: RawAccountInfo = self
                .fetch(&at, &rt, "System", "Account", (AccountId32(*account),))
                .await?;
            Ok(Rao(u64::try_from(info.data.free).unwrap_or(u64::MAX)))
        })
        .await
    }

    /// The account's nonce in the latest block: how many of its extrinsics are included (the
    /// transaction pool not counted, unlike `system_accountNextIndex`).
    pub async fn account_nonce(&self, account: &[u8; 32]) -> Result<u64, ChainError> {
        self.read("reading System.Account", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            let info: RawAccountInfo = self
                .fetch(&at, &rt, "System", "Account", (AccountId32(*account),))
                .await?;
            Ok(u64::from(info.nonce))
        })
        .await
    }

    /// Stake of `hotkey` on `netuid` (alpha on subnets, TAO on the root subnet 0), in rao.
    pub async fn stake(&self, hotkey: &[u8; 32], netuid: u16) -> Result<Rao, ChainError> {
        self.read("reading TotalHotkeyAlpha", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            let a: u64 = self
                .fetch(
                    &at,
                    &rt,
                    SUBTENSOR,
                    "TotalHotkeyAlpha",
                    (AccountId32(*hotkey), netuid),
                )
                .await?;
            Ok(Rao(a))
        })
        .await
    }

    /// The metagraph of `netuid`: every uid with its keys, axon, stake and scores.
    pub async fn metagraph(&self, netuid: u16) -> Result<Metagraph, ChainError> {
        self.read("reading the metagraph", |c| async move {
            let (at, rt) = self.at_latest(&c).await?;
            self.ensure_subnet(&at, &rt, netuid).await?;
            let block = at.block_number();
            let k = (netuid,);
            let keys: Vec<((u16, u16), AccountId32)> =
                self.iter_map(&at, &rt, SUBTENSOR, "Keys", k).await?;
            let (active, last_update, incentive, emission, dividends, permit) = futures::try_join!(
                self.fetch::<_, Vec<bool>>(&at, &rt, SUBTENSOR, "Active", k),
                self.fetch::<_, Vec<u64>>(&at, &rt, SUBTENSOR, "LastUpdate", k),
                self.fetch::<_, Vec<u16>>(&at, &rt, SUBTENSOR, "Incentive", k),
                self.fetch::<_, Vec<u64>>(&at, &rt, SUBTENSOR, "Emission", k),
                self.fetch::<_, Vec<u16>>(&at, &rt, SUBTENSOR, "Dividends", k),
                self.fetch::<_, Vec<bool>>(&at, &rt, SUBTENSOR, "ValidatorPermit", k),
            )?;
            let reg: Vec<((u16, u16), u64)> = self
                .iter_map(&at, &rt, SUBTENSOR, "BlockAtRegistration", k)
                .await?;
            let reg: HashMap<u16, u64> = reg.into_iter().map(|((_, uid), b)| (uid, b)).collect();
            let axons: Vec<((u16, AccountId32), RawAxon)> =
                self.iter_map(&at, &rt, SUBTENSOR, "Axons", k).await?;
            let axons: HashMap<[u8; 32], RawAxon> =
                axons.into_iter().map(|((_, hk), a)| (hk.0, a)).collect();

            // Per-hotkey entries: coldkey, subnet alpha and root stake, a few at a time.
            let per_hotkey = stream::iter(keys.iter().map(|(_, hk)| {
                let at = &at;
                let rt = &rt;
                async move {
                    let owner: AccountId32 = self.fetch(at, rt, SUBTENSOR, "Owner", (*hk,)).await?;
                    let alpha: u64 = self
                        .fetch(at, rt, SUBTENSOR, "TotalHotkeyAlpha", (*hk, netuid))
                        .await?;
                    let root: u64 = if netuid == 0 {
                        alpha
                    } else {
                        self.fetch(at, rt, SUBTENSOR, "TotalHotkeyAlpha", (*hk, 0u16))
                            .await?
                    };
                    Ok::<_, ChainError>((owner, alpha, root))
                }
            }))
            .buffered(READ_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;

            let frac = |v: Option<&u16>| f64::from(v.copied().unwrap_or(0)) / f64::from(u16::MAX);
            let mut neurons: Vec<Neuron> = keys
                .iter()
                .zip(per_hotkey)
                .map(|(((_, uid), hk), (owner, alpha, root))| {
                    let i = usize::from(*uid);
                    let axon = axons.get(&hk.0).map(|a| AxonInfo {
                        block: a.block,
                        version: a.version,
                        ip: ip_from_chain(a.ip, a.ip_type),
                        port: a.port,
                        ip_type: a.ip_type,
                        protocol: a.protocol,
                    });
                    Neuron {
                        uid: *uid,
                        hotkey: ss58::encode(&hk.0),
                        coldkey: ss58::encode(&owner.0),
                        axon: axon.filter(AxonInfo::is_served),
                        alpha_stake: Rao(alpha),
                        tao_stake: Rao(root),
                        validator_permit: permit.get(i).copied().unwrap_or(false),
                        active: active.get(i).copied().unwrap_or(false),
                        last_update: last_update.get(i).copied().unwrap_or(0),
                        incentive: frac(incentive.get(i)),
                        emission: Rao(emission.get(i).copied().unwrap_or(0)),
                        dividends: frac(dividends.get(i)),
                        registration_block: reg.get(uid).copied().unwrap_or(0),
                    }
                })
                .collect();
            neurons.sort_by_key(|n| n.uid);
            Ok(Metagraph {
                netuid,
                block,
                neurons,
            })
        })
        .await
    }
}
