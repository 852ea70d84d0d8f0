//! Chain errors, and the decoding of runtime errors into messages an operator can act on.

/// Everything that can go wrong talking to subtensor.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(
        "cannot connect to {endpoint}: {reason} (check --subtensor.network / --subtensor.chain_endpoint and that the node is up)"
    )]
    Connect { endpoint: String, reason: String },

    #[error("{what}: no answer from {endpoint} within {secs} s")]
    Timeout {
        what: String,
        endpoint: String,
        secs: u64,
    },

    #[error("{what}: connection to {endpoint} lost ({reason}); reconnecting")]
    Disconnected {
        what: String,
        endpoint: String,
        reason: String,
    },

    /// The connected runtime does not have the call or storage entry in the shape this client knows.
    #[error("{item} is not supported by the connected runtime ({runtime}): {reason}")]
    Incompatible {
        item: String,
        runtime: String,
        reason: String,
    },

    /// The extrinsic was included and failed: the runtime's error, decoded, with the fix.
    #[error("{call} failed: {message} [{pallet}::{error}]")]
    Failed {
        call: String,
        pallet: String,
        error: String,
        message: String,
    },

    /// The transaction pool refused the extrinsic (fees, nonce, subtensor's own filters).
    #[error("{call} rejected by the node: {message}")]
    Rejected { call: String, message: String },

    #[error("{call}: not included within {secs} s; it may still land, check before retrying")]
    NotIncluded { call: String, secs: u64 },

    #[error("{what}: {reason}")]
    Rpc { what: String, reason: String },

    #[error("{0}")]
    Invalid(String),

    #[error(
        "hotkey {hotkey} is not registered on subnet {netuid}: register first: mrctl register --netuid {netuid}"
    )]
    NotRegistered { hotkey: String, netuid: u16 },

    #[error("subnet {netuid} does not exist on this chain: check --netuid")]
    NoSuchSubnet { netuid: u16 },

    #[error(
        "key {0} has no private part and cannot sign: use the wallet's key file, not its public file"
    )]
    CannotSign(String),

    #[error("dev chain: {0}")]
    DevChain(String),
}

impl ChainError {
    /// True when the error came from the connection, not from the chain: worth a reconnect.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            ChainError::Connect { .. }
                | ChainError::Timeout { .. }
                | ChainError::Disconnected { .. }
        )
    }

    /// The runtime error name when the extrinsic failed in the runtime (`SettingWeightsTooFast`, ...).
    pub fn runtime_error(&self) -> Option<&str> {
        match self {
            ChainError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What is known about the failing call, to make the message precise.
#[derive(Debug, Clone, Default)]
pub struct ErrorContext {
    pub netuid: Option<u16>,
    /// ss58 of the signing key.
    pub signer: Option<String>,
    /// For rate limits: the first block at which the call is accepted again.
    pub next_allowed_block: Option<u64>,
}

/// The operator message for a runtime error: what it means and the fix. Unknown errors fall back
/// to the runtime's own documentation of the error (from the metadata).
pub fn explain(pallet: &str, error: &str, docs: &[String], ctx: &ErrorContext) -> String {
    let netuid = ctx
        .netuid
        .map(|n| n.to_string())
        .unwrap_or_else(|| "N".into());
    let signer = ctx.signer.as_deref().unwrap_or("the signing key");
    let known: Option<String> = match error {
        "SettingWeightsTooFast" | "CommittingWeightsTooFast" => Some(match ctx.next_allowed_block {
            Some(b) => format!("rate limited: next allowed at block {b}"),
            None => "rate limited: wait for the subnet's weights rate limit to pass".into(),
        }),
        "HotKeyNotRegisteredInSubNet" | "HotKeyNotRegisteredInNetwork" | "NotRegistered" => Some(
            format!("hotkey not registered on subnet {netuid}: register first: mrctl register --netuid {netuid}"),
        ),
        "HotKeyAccountNotExists" => Some(format!(
            "the hotkey is unknown to the chain: register first: mrctl register --netuid {netuid}"
        )),
        "NotEnoughBalanceToStake" | "NotEnoughBalanceToPayRecycleFee" | "BalanceWithdrawalError"
        | "InsufficientBalance" | "FundsUnavailable" => Some(
            "not enough free balance on the coldkey: fund it (transfer TAO to the coldkey), then retry".into(),
        ),
        "InvalidIpAddress" => Some(
            "the axon IP is refused (unspecified, 127.0.0.1, or not a valid address): set --axon.external_ip to the public address (local devnets use 127.0.0.2, 127.0.0.3, ...)".into(),
        ),
        "InvalidIpType" => Some("the axon IP type must be 4 or 6".into()),
        "InvalidPort" => Some("the axon port 0 is refused: set --axon.external_port".into()),
        "ServingRateLimitExceeded" => {
            Some("serve_axon rate limited: the axon was served recently; wait a few blocks and retry".into())
        }
        "CommitRevealEnabled" => Some(format!(
            "subnet {netuid} has commit-reveal on: weights go through commit_weights then reveal_weights"
        )),
        "CommitRevealDisabled" => Some(format!(
            "subnet {netuid} has commit-reveal off: use set_weights"
        )),
        "NoWeightsCommitFound" => Some("no pending weights commit for this hotkey: commit first".into()),
        "InvalidRevealCommitHashNotMatch" | "InvalidRevealCommitHashNotMatchTempo" => Some(
            "the reveal does not match the commit: uids, weights, salt and version key must be exactly those committed".into(),
        ),
        "RevealTooEarly" | "InvalidRevealTempo" => Some(
            "too early to reveal: the reveal is accepted only in the reveal epoch (commit epoch + reveal period)".into(),
        ),
        "ExpiredWeightCommit" => Some("the commit expired before it was revealed: commit again".into()),
        "TooManyUnrevealedCommits" => {
            Some("too many unrevealed commits: reveal (or wait for them to expire) before committing again".into())
        }
        "IncorrectWeightVersionKey" => Some(
            "the weights version key is below the subnet's: upgrade mapreduce (or ask the subnet owner for the expected version)".into(),
        ),
        "WeightVecNotEqualSize" => Some("uids and weights differ in length".into()),
        "DuplicateUids" => Some("the same uid appears twice in the weights".into()),
        "UidVecContainInvalidOne" | "UidsLengthExceedUidsInSubNet" => {
            Some(format!("a uid in the weights is not on subnet {netuid}: refresh the metagraph"))
        }
        "WeightVecLengthIsLow" => {
            Some("fewer weights than the subnet's min_allowed_weights: weight more uids".into())
        }
        "MaxWeightExceeded" => Some("a weight exceeds the subnet's max_weight_limit".into()),
        "NotEnoughStakeToSetWeights" => {
            Some("the hotkey has less stake than the subnet requires to set weights: add stake".into())
        }
        "NeuronNoValidatorPermit" => {
            Some("the hotkey has no validator permit on this subnet: it needs more stake than other validators".into())
        }
        "SubNetworkDoesNotExist" | "SubnetNotExists" | "NetworkDoesNotExist" => {
            Some(format!("subnet {netuid} does not exist on this chain: check --netuid"))
        }
        "HotKeyAlreadyRegisteredInSubNet" => Some(format!(
            "the hotkey is already registered on subnet {netuid}: nothing to do"
        )),
        "TooManyRegistrationsThisBlock" | "TooManyRegistrationsThisInterval" => {
            Some("the subnet's registration limit for this interval is reached: retry in a later block".into())
        }
        "SubNetRegistrationDisabled" | "RegistrationNotPermittedOnRootSubnet" => {
            Some(format!("registration is closed on subnet {netuid}"))
        }
        "NonAssociatedColdKey" => Some(format!(
            "{signer} does not own this hotkey: use the coldkey that registered it"
        )),
        "NetworkTxRateLimitExceeded" | "TxRateLimitExceeded" => {
            Some("rate limited by the chain: wait some blocks and retry".into())
        }
        "BadOrigin" | "RequireSudo" => Some(format!("{signer} is not allowed to do this (sudo/owner only)")),
        "Unavailable" | "Frozen" => Some("the funds are locked or frozen".into()),
        _ => None,
    };
    match known {
        Some(m) => m,
        None => {
            let doc = docs
                .iter()
                .map(|d| d.trim())
                .filter(|d| !d.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if doc.is_empty() {
                format!("{pallet}::{error}")
            } else {
                doc
            }
        }
    }
}

/// Substrate's `InvalidTransaction` messages, turned into the fix.
pub fn explain_rejection(message: &str, ctx: &ErrorContext) -> String {
    let signer = ctx.signer.as_deref().unwrap_or("the signing key");
    let m = message.to_ascii_lowercase();
    if m.contains("inability to pay") || m.contains("payment") {
        format!(
            "{message}: {signer} cannot pay the fee; fund it (hotkeys pay their own fees for set_weights and serve_axon)"
        )
    } else if m.contains("outdated") || m.contains("stale") {
        format!("{message}: another transaction from {signer} was included first; retry")
    } else if m.contains("bad signature") || m.contains("badproof") || m.contains("bad proof") {
        format!(
            "{message}: the signature does not verify; the key or the chain's genesis/runtime is not what this client expected"
        )
    } else if m.contains("custom error") {
        format!(
            "{message}: refused by subtensor's transaction filter (usually: not registered, not enough stake, or rate limited)"
        )
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_names_the_block() {
        let ctx = ErrorContext {
            netuid: Some(3),
            next_allowed_block: Some(120),
            ..Default::default()
        };
        assert_eq!(
            explain("SubtensorModule", "SettingWeightsTooFast", &[], &ctx),
            "rate limited: next allowed at block 120"
        );
    }

    #[test]
    fn not_registered_names_the_command() {
        let ctx = ErrorContext {
            netuid: Some(7),
            ..Default::default()
        };
        let m = explain("SubtensorModule", "HotKeyNotRegisteredInSubNet", &[], &ctx);
        assert!(m.contains("mrctl register --netuid 7"), "{m}");
    }

    #[test]
    fn unknown_errors_use_the_docs() {
        let docs = vec!["  Something odd ".to_string(), "happened.".to_string()];
        assert_eq!(
            explain("X", "Odd", &docs, &ErrorContext::default()),
            "Something odd happened."
        );
        assert_eq!(explain("X", "Odd", &[], &ErrorContext::default()), "X::Odd");
    }

    #[test]
    fn fee_rejection_says_fund() {
        let ctx = ErrorContext {
            signer: Some("5Abc".into()),
            ..Default::default()
        };
        let m = explain_rejection(
            "Invalid Transaction: Inability to pay some fees (e.g. account balance too low)",
            &ctx,
        );
        assert!(m.contains("fund it"), "{m}");
        assert!(m.contains("5Abc"), "{m}");
    }
}
