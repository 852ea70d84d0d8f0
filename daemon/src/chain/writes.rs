//! Writes: signed extrinsics, waited for until included (with a timeout), failures decoded.

use std::net::IpAddr;

use subxt::Metadata;
use subxt::config::{DefaultExtrinsicParamsBuilder, SubstrateConfig};
use subxt::dynamic::Value;
use subxt::error::{DispatchError, ExtrinsicError, TransactionEventsError};
use subxt::ext::scale_value::Composite;
use subxt::tx::{Signer, TransactionStatus};

use super::client::ChainClient;
use super::error::{ChainError, ErrorContext, explain, explain_rejection};
use super::shape::{self, ADMIN_UTILS, Arg, Call, SUBTENSOR, account, u, u16_vec};
use super::signer::ChainSigner;
use super::types::{AXON_PROTOCOL_TCP, Rao, RuntimeVersion, TxReceipt, ip_to_chain};
use super::weights::{PendingReveal, commit_hash, random_salt};
use crate::wallet::ss58;

/// An included extrinsic: its receipt, block number, and the events it emitted.
pub(crate) struct Included {
    pub receipt: TxReceipt,
    pub block_number: u64,
    /// (pallet, event, fields) of each event of the extrinsic.
    pub events: Vec<(String, String, Composite<()>, Vec<u8>)>,
    pub metadata: subxt::ArcMetadata,
}

impl Included {
    fn event(&self, pallet: &str, name: &str) -> Option<&(String, String, Composite<()>, Vec<u8>)> {
        self.events
            .iter()
            .find(|(p, n, _, _)| p == pallet && n == name)
    }
}

fn first_u128(c: &Composite<()>) -> Option<u128> {
    c.values().next().and_then(|v| v.as_u128())
}

fn dispatch_failure(call: &str, e: &DispatchError, ctx: &ErrorContext) -> ChainError {
    let (pallet, error, docs): (String, String, Vec<String>) = match e {
        DispatchError::Module(m) => match m.details() {
            Ok(d) => (
                d.pallet.name().to_string(),
                d.variant.name.clone(),
                d.variant.docs.clone(),
            ),
            Err(_) => ("Unknown".into(), m.to_string(), Vec::new()),
        },
        DispatchError::Token(t) => ("Token".into(), format!("{t:?}"), vec![e.to_string()]),
        DispatchError::Arithmetic(a) => {
            ("Arithmetic".into(), format!("{a:?}"), vec![e.to_string()])
        }
        other => {
            let name = format!("{other:?}");
            let name = name.split('(').next().unwrap_or("Other").to_string();
            ("System".into(), name, vec![other.to_string()])
        }
    };
    let message = explain(&pallet, &error, &docs, ctx);
    ChainError::Failed {
        call: call.to_string(),
        pallet,
        error,
        message,
    }
}

impl ChainClient {
    /// Signs `build`'s call with `signer`, submits it, waits until it is in a block (bounded by
    /// the inclusion timeout) and turns a runtime failure into an operator message.
    pub(crate) async fn submit<F>(
        &self,
        signer: &ChainSigner,
        ctx: &ErrorContext,
        build: F,
    ) -> Result<Included, ChainError>
    where
        F: FnOnce(&Metadata, &RuntimeVersion) -> Result<Call, ChainError>,
    {
        self.submit_at(signer, ctx, None, build).await
    }

    /// [`Self::submit`] with the account nonce given (`None`: the node's next index, pool
    /// included). Resending with the nonce of an earlier attempt means at most one of them is
    /// ever included: the weight loop uses it after a restart that lost the outcome.
    pub(crate) async fn submit_at<F>(
        &self,
        signer: &ChainSigner,
        ctx: &ErrorContext,
        nonce: Option<u64>,
        build: F,
    ) -> Result<Included, ChainError>
    where
        F: FnOnce(&Metadata, &RuntimeVersion) -> Result<Call, ChainError>,
    {
        let _serial = self.submit_lock().await;
        let opts = self.options().clone();
        let conn = self.conn().await?;
        let call_t = opts.call_timeout;
        let (at, rt) = tokio::time::timeout(call_t, self.at_latest(&conn))
            .await
            .map_err(|_| self.timeout_err("reading the latest block", call_t))??;
        let call = build(at.metadata_ref(), &rt)?;
        let name = format!("{}.{}", call.pallet_name(), call.call_name());
        let fail = |e: ChainError| {
            if e.is_connection() {
                self.disconnect();
            }
            e
        };

        let nonce = match nonce {
            Some(n) => n,
            None => tokio::time::timeout(
                call_t,
                conn.legacy
                    .system_account_next_index(&Signer::<SubstrateConfig>::account_id(signer)),
            )
            .await
            .map_err(|_| fail(self.timeout_err("system_accountNextIndex", call_t)))?
            .map_err(|e| fail(self.rpc_err("system_accountNextIndex", e)))?,
        };
        let params = DefaultExtrinsicParamsBuilder::<SubstrateConfig>::new()
            .nonce(nonce)
            .build();
        let mut txc = at.tx();
        let signed = tokio::time::timeout(call_t, txc.create_signed(&call, signer, params))
            .await
            .map_err(|_| fail(self.timeout_err(&format!("signing {name}"), call_t)))?
            .map_err(|e| match e {
                ExtrinsicError::EncodeError(_)
                | ExtrinsicError::PalletNameNotFound(_)
                | ExtrinsicError::CallNameNotFound { .. }
                | ExtrinsicError::UnsupportedVersion
                | ExtrinsicError::Params(_) => ChainError::Incompatible {
                    item: name.clone(),
                    runtime: rt.to_string(),
                    reason: e.to_string(),
                },
                other => fail(self.rpc_err(&format!("signing {name}"), other)),
            })?;
        let mut progress = tokio::time::timeout(call_t, signed.submit_and_watch())
            .await
            .map_err(|_| fail(self.timeout_err(&format!("submitting {name}"), call_t)))?
            .map_err(|e| {
                let c = self.rpc_err(&format!("submitting {name}"), &e);
                if c.is_connection() {
                    fail(c)
                } else {
                    ChainError::Rejected {
                        call: name.clone(),
                        message: explain_rejection(&e.to_string(), ctx),
                    }
                }
            })?;

        crate::core::testhook::pause("after_submit").await;
        let deadline = tokio::time::Instant::now() + opts.inclusion_timeout;
        loop {
            let status = tokio::time::timeout_at(deadline, progress.next())
                .await
                .map_err(|_| ChainError::NotIncluded {
                    call: name.clone(),
                    secs: opts.inclusion_timeout.as_secs(),
                })?;
            let status = match status {
                None => {
                    return Err(ChainError::Rpc {
                        what: format!("watching {name}"),
                        reason: "the node ended the status stream before inclusion".into(),
                    });
                }
                Some(Err(e)) => return Err(fail(self.rpc_err(&format!("watching {name}"), e))),
                Some(Ok(s)) => s,
            };
            let in_block = match status {
                TransactionStatus::InBestBlock(b) | TransactionStatus::InFinalizedBlock(b) => b,
                TransactionStatus::Invalid { message }
                | TransactionStatus::Dropped { message }
                | TransactionStatus::Error { message } => {
                    return Err(ChainError::Rejected {
                        call: name,
                        message: explain_rejection(&message, ctx),
                    });
                }
                _ => continue,
            };
            let block_hash = in_block.block_hash();
            let events = tokio::time::timeout(call_t, in_block.wait_for_success())
                .await
                .map_err(|_| fail(self.timeout_err(&format!("reading events of {name}"), call_t)))?
                .map_err(|e| match e {
                    TransactionEventsError::ExtrinsicFailed(d) => dispatch_failure(&name, &d, ctx),
                    other => fail(self.rpc_err(&format!("reading events of {name}"), other)),
                })?;
            let mut evs = Vec::new();
            for ev in events.iter() {
                let ev = ev.map_err(|e| self.rpc_err(&format!("decoding events of {name}"), e))?;
                let fields = ev
                    .decode_fields_unchecked_as::<Composite<()>>()
                    .unwrap_or_else(|_| Composite::unnamed(Vec::<Value>::new()));
                evs.push((
                    ev.pallet_name().to_string(),
                    ev.event_name().to_string(),
                    fields,
                    ev.field_bytes().to_vec(),
                ));
            }
            let block_number =
                tokio::time::timeout(call_t, conn.legacy.chain_get_header(Some(block_hash)))
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten()
                    .map(|h| h.number)
                    .unwrap_or_default();
            return Ok(Included {
                receipt: TxReceipt {
                    call: name,
                    block_hash: format!("0x{}", hex::encode(block_hash.as_ref())),
                    extrinsic_hash: format!("0x{}", hex::encode(events.extrinsic_hash().as_ref())),
                },
                block_number,
                events: evs,
                metadata: at.metadata(),
            });
        }
    }

    /// The nonce the next extrinsic of `signer` takes (`system_accountNextIndex`: the chain's
    /// nonce plus its transactions waiting in the pool).
    pub async fn next_nonce(&self, signer: &ChainSigner) -> Result<u64, ChainError> {
        let call_t = self.options().call_timeout;
        let conn = self.conn().await?;
        tokio::time::timeout(
            call_t,
            conn.legacy
                .system_account_next_index(&Signer::<SubstrateConfig>::account_id(signer)),
        )
        .await
        .map_err(|_| self.timeout_err("system_accountNextIndex", call_t))?
        .map_err(|e| self.rpc_err("system_accountNextIndex", e))
    }

    /// Advertises the axon (`serve_axon`), signed by the hotkey. IPv4 and IPv6; protocol 4 (TCP).
    pub async fn serve_axon(
        &self,
        hotkey: &ChainSigner,
        netuid: u16,
        ip: IpAddr,
        port: u16,
        version: u32,
    ) -> Result<TxReceipt, ChainError> {
        let (ip_n, ip_type) = ip_to_chain(ip);
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(hotkey.ss58().to_string()),
            ..Default::default()
        };
        let inc = self
            .submit(hotkey, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "serve_axon",
                    vec![
                        ("netuid", u(netuid)),
                        ("version", u(version)),
                        ("ip", u(ip_n)),
                        ("port", u(port)),
                        ("ip_type", u(ip_type)),
                        ("protocol", u(AXON_PROTOCOL_TCP)),
                    ],
                    vec![("placeholder1", u(0u8)), ("placeholder2", u(0u8))],
                )
            })
            .await?;
        Ok(inc.receipt)
    }

    /// Sets weights (`set_weights`), u16 values as the chain stores them, signed by the hotkey.
    /// A rate-limited call fails with "rate limited: next allowed at block N".
    pub async fn set_weights(
        &self,
        hotkey: &ChainSigner,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
    ) -> Result<TxReceipt, ChainError> {
        self.set_weights_at(hotkey, netuid, uids, weights, version_key, None)
            .await
    }

    /// [`Self::set_weights`] with the account nonce given (see [`Self::submit_at`]).
    pub async fn set_weights_at(
        &self,
        hotkey: &ChainSigner,
        netuid: u16,
        uids: &[u16],
        weights: &[u16],
        version_key: u64,
        nonce: Option<u64>,
    ) -> Result<TxReceipt, ChainError> {
        if uids.len() != weights.len() {
            return Err(ChainError::Invalid(format!(
                "{} uids but {} weights",
                uids.len(),
                weights.len()
            )));
        }
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(hotkey.ss58().to_string()),
            ..Default::default()
        };
        let res = self
            .submit_at(hotkey, &ctx, nonce, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "set_weights",
                    vec![
                        ("netuid", u(netuid)),
                        ("dests", u16_vec(uids)),
                        ("weights", u16_vec(weights)),
                        ("version_key", u(version_key)),
                    ],
                    vec![],
                )
            })
            .await;
        match res {
            Ok(inc) => Ok(inc.receipt),
            Err(e) => Err(self.with_next_allowed(e, netuid, hotkey, ctx).await),
        }
    }

    /// For rate-limit failures, look up the next allowed block and say it.
    async fn with_next_allowed(
        &self,
        e: ChainError,
        netuid: u16,
        hotkey: &ChainSigner,
        mut ctx: ErrorContext,
    ) -> ChainError {
        let ChainError::Failed {
            call,
            pallet,
            error,
            ..
        } = &e
        else {
            return e;
        };
        if error != "SettingWeightsTooFast" && error != "CommittingWeightsTooFast" {
            return e;
        }
        match self.weights_status(netuid, &hotkey.public_key()).await {
            Ok(st) => {
                ctx.next_allowed_block = Some(st.next_allowed_block);
                ChainError::Failed {
                    call: call.clone(),
                    pallet: pallet.clone(),
                    error: error.clone(),
                    message: explain(pallet, error, &[], &ctx),
                }
            }
            Err(_) => e,
        }
    }

    /// Commits weights (hash-based commit-reveal): returns what [`Self::reveal_weights`] needs.
    pub async fn commit_weights(
        &self,
        hotkey: &ChainSigner,
        netuid: u16,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
    ) -> Result<PendingReveal, ChainError> {
        if uids.len() != values.len() {
            return Err(ChainError::Invalid(format!(
                "{} uids but {} weights",
                uids.len(),
                values.len()
            )));
        }
        let salt = random_salt();
        let pk = hotkey.public_key();
        let hash = commit_hash(&pk, netuid, uids, values, &salt, version_key);
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(hotkey.ss58().to_string()),
            ..Default::default()
        };
        let res = self
            .submit(hotkey, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "commit_weights",
                    vec![
                        ("netuid", u(netuid)),
                        ("commit_hash", Value::from_bytes(hash)),
                    ],
                    vec![],
                )
            })
            .await;
        let inc = match res {
            Ok(inc) => inc,
            Err(e) => return Err(self.with_next_allowed(e, netuid, hotkey, ctx).await),
        };
        Ok(PendingReveal {
            netuid,
            hotkey: hotkey.ss58().to_string(),
            uids: uids.to_vec(),
            values: values.to_vec(),
            salt,
            version_key,
            hash: format!("0x{}", hex::encode(hash)),
            commit_block: inc.block_number,
        })
    }

    /// Reveals a commit made by [`Self::commit_weights`] (in the subnet's reveal epoch).
    pub async fn reveal_weights(
        &self,
        hotkey: &ChainSigner,
        pending: &PendingReveal,
    ) -> Result<TxReceipt, ChainError> {
        if pending.hotkey != hotkey.ss58() {
            return Err(ChainError::Invalid(format!(
                "the commit was made by {}, not {}",
                pending.hotkey,
                hotkey.ss58()
            )));
        }
        let netuid = pending.netuid;
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(hotkey.ss58().to_string()),
            ..Default::default()
        };
        let inc = self
            .submit(hotkey, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "reveal_weights",
                    vec![
                        ("netuid", u(netuid)),
                        ("uids", u16_vec(&pending.uids)),
                        ("values", u16_vec(&pending.values)),
                        ("salt", u16_vec(&pending.salt)),
                        ("version_key", u(pending.version_key)),
                    ],
                    vec![],
                )
            })
            .await?;
        Ok(inc.receipt)
    }

    /// Registers `hotkey` on `netuid` by burning TAO (`burned_register`), signed by the coldkey
    /// that pays. Returns the new uid.
    pub async fn burned_register(
        &self,
        coldkey: &ChainSigner,
        netuid: u16,
        hotkey: &[u8; 32],
    ) -> Result<u16, ChainError> {
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(coldkey.ss58().to_string()),
            ..Default::default()
        };
        let hk = *hotkey;
        self.submit(coldkey, &ctx, |m, rt| {
            shape::build_call(
                m,
                rt,
                SUBTENSOR,
                "burned_register",
                vec![("netuid", u(netuid)), ("hotkey", account(hk))],
                vec![],
            )
        })
        .await?;
        self.uid_of(netuid, hotkey)
            .await?
            .ok_or_else(|| ChainError::NotRegistered {
                hotkey: ss58::encode(hotkey),
                netuid,
            })
    }

    /// Creates a subnet owned by the signing coldkey, with `hotkey` registered at uid 0.
    /// Returns the new netuid.
    pub async fn register_network(
        &self,
        coldkey: &ChainSigner,
        hotkey: &[u8; 32],
    ) -> Result<u16, ChainError> {
        let ctx = ErrorContext {
            signer: Some(coldkey.ss58().to_string()),
            ..Default::default()
        };
        let hk = *hotkey;
        let inc = self
            .submit(coldkey, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "register_network",
                    vec![("hotkey", account(hk))],
                    // Runtimes of early 2025 take a mechanism id; 1 is dynamic TAO.
                    vec![("mechid", u(1u16))],
                )
            })
            .await?;
        inc.event(SUBTENSOR, "NetworkAdded")
            .and_then(|(_, _, f, _)| first_u128(f))
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| ChainError::Rpc {
                what: "register_network".into(),
                reason: "included, but no NetworkAdded event names the new netuid".into(),
            })
    }

    /// Stakes `amount` (TAO, in rao) from the signing coldkey to `hotkey` on `netuid`.
    pub async fn add_stake(
        &self,
        coldkey: &ChainSigner,
        hotkey: &[u8; 32],
        netuid: u16,
        amount: Rao,
    ) -> Result<TxReceipt, ChainError> {
        let ctx = ErrorContext {
            netuid: Some(netuid),
            signer: Some(coldkey.ss58().to_string()),
            ..Default::default()
        };
        let hk = *hotkey;
        let inc = self
            .submit(coldkey, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    SUBTENSOR,
                    "add_stake",
                    vec![
                        ("hotkey", account(hk)),
                        ("netuid", u(netuid)),
                        ("amount_staked", u(amount.0)),
                    ],
                    vec![],
                )
            })
            .await?;
        Ok(inc.receipt)
    }

    /// Transfers `amount` (rao) from the signer to `dest`, keeping the sender alive.
    pub async fn transfer(
        &self,
        from: &ChainSigner,
        dest: &[u8; 32],
        amount: Rao,
    ) -> Result<TxReceipt, ChainError> {
        let ctx = ErrorContext {
            signer: Some(from.ss58().to_string()),
            ..Default::default()
        };
        let d = *dest;
        let inc = self
            .submit(from, &ctx, |m, rt| {
                shape::build_call(
                    m,
                    rt,
                    "Balances",
                    "transfer_keep_alive",
                    vec![
                        ("dest", Value::unnamed_variant("Id", [account(d)])),
                        ("value", u(amount.0)),
                    ],
                    vec![],
                )
            })
            .await?;
        Ok(inc.receipt)
    }

    /// `Sudo.sudo(pallet.call(args))`, signed by the sudo key (dev chains). The inner call's
    /// failure (reported in the `Sudid` event) is decoded like any other.
    pub async fn sudo(
        &self,
        sudo_key: &ChainSigner,
        pallet: &'static str,
        call: &'static str,
        args: Vec<Arg>,
    ) -> Result<TxReceipt, ChainError> {
        let ctx = ErrorContext {
            signer: Some(sudo_key.ss58().to_string()),
            netuid: args
                .iter()
                .find(|(n, _)| *n == "netuid")
                .and_then(|(_, v)| v.as_u128())
                .and_then(|n| u16::try_from(n).ok()),
            ..Default::default()
        };
        let inner_name = format!("{pallet}.{call}");
        let inc = self
            .submit(sudo_key, &ctx, |m, rt| {
                let inner = shape::runtime_call_value(m, rt, pallet, call, args, vec![])?;
                shape::build_call(m, rt, "Sudo", "sudo", vec![("call", inner)], vec![])
            })
            .await?;
        if let Some((_, _, _, bytes)) = inc.event("Sudo", "Sudid") {
            // Result<(), DispatchError>: 0x00 = Ok, 0x01 then the error.
            if bytes.first() == Some(&1) {
                let de =
                    DispatchError::decode_from(&bytes[1..], inc.metadata.clone()).map_err(|e| {
                        ChainError::Rpc {
                            what: format!("sudo {inner_name}"),
                            reason: format!("failed, and its error does not decode: {e}"),
                        }
                    })?;
                return Err(dispatch_failure(&inner_name, &de, &ctx));
            }
        }
        Ok(inc.receipt)
    }

    /// `Sudo.sudo(AdminUtils.call(args))`.
    pub async fn sudo_admin(
        &self,
        sudo_key: &ChainSigner,
        call: &'static str,
        args: Vec<Arg>,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo(sudo_key, ADMIN_UTILS, call, args).await
    }

    pub async fn sudo_set_weights_rate_limit(
        &self,
        sudo_key: &ChainSigner,
        netuid: u16,
        blocks: u64,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo_admin(
            sudo_key,
            "sudo_set_weights_set_rate_limit",
            vec![("netuid", u(netuid)), ("weights_set_rate_limit", u(blocks))],
        )
        .await
    }

    pub async fn sudo_set_tempo(
        &self,
        sudo_key: &ChainSigner,
        netuid: u16,
        tempo: u16,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo_admin(
            sudo_key,
            "sudo_set_tempo",
            vec![("netuid", u(netuid)), ("tempo", u(tempo))],
        )
        .await
    }

    pub async fn sudo_set_commit_reveal(
        &self,
        sudo_key: &ChainSigner,
        netuid: u16,
        enabled: bool,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo_admin(
            sudo_key,
            "sudo_set_commit_reveal_weights_enabled",
            vec![("netuid", u(netuid)), ("enabled", Value::bool(enabled))],
        )
        .await
    }

    /// Reveal period in epochs (`RevealPeriodEpochs`).
    pub async fn sudo_set_commit_reveal_period(
        &self,
        sudo_key: &ChainSigner,
        netuid: u16,
        epochs: u64,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo_admin(
            sudo_key,
            "sudo_set_commit_reveal_weights_interval",
            vec![("netuid", u(netuid)), ("interval", u(epochs))],
        )
        .await
    }

    pub async fn sudo_set_network_rate_limit(
        &self,
        sudo_key: &ChainSigner,
        blocks: u64,
    ) -> Result<TxReceipt, ChainError> {
        self.sudo_admin(
            sudo_key,
            "sudo_set_network_rate_limit",
            vec![("rate_limit", u(blocks))],
        )
        .await
    }

    /// chopsticks: build `count` empty blocks now; returns the new best block number.
    pub async fn dev_new_blocks(&self, count: u32) -> Result<u64, ChainError> {
        // chopsticks builds ~1 block a second: ask in chunks that fit in the call timeout.
        let mut left = count;
        while left > 0 {
            let n = left.min(16);
            let _: serde_json::Value = self
                .rpc_request("dev_newBlock", vec![serde_json::json!({ "count": n })])
                .await?;
            left -= n;
        }
        self.block_number().await
    }

    /// chopsticks: build blocks until the best block is at least `target`.
    pub async fn dev_advance_to(&self, target: u64) -> Result<u64, ChainError> {
        let now = self.block_number().await?;
        if now >= target {
            return Ok(now);
        }
        let n = u32::try_from(target - now).unwrap_or(u32::MAX);
        self.dev_new_blocks(n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_field() {
        let c = Composite::unnamed(vec![Value::u128(7), Value::u128(1)]);
        assert_eq!(first_u128(&c), Some(7));
        assert_eq!(first_u128(&Composite::unnamed(Vec::<Value>::new())), None);
    }
}
