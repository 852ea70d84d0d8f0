//! The line protocol between `mrctl bench local` and its peer processes (`mrd bench-peer`):
//! one JSON object per line on stdin (commands) and stdout (replies). Secrets travel on stdin,
//! never in arguments other users can see.

use serde::{Deserialize, Serialize};

/// The first line a bench peer reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    /// The signed ticket, protobuf-encoded, hex.
    pub ticket_hex: String,
    pub rank: u32,
    /// The peer's hotkey mini secret, hex.
    pub secret_hex: String,
    /// Seed of the known-answer tensors (see `peer::check`).
    pub data_seed: u64,
}

/// A command after the setup line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Join the job on every miner.
    Connect,
    /// Fill the tensor for an operation and answer `Ready`; run it on `Go`.
    Prepare {
        /// "sum", "avg", or "broadcast".
        op: String,
        #[serde(default)]
        src: u32,
    },
    Go,
    Quit,
}

/// A reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Connected {
        setup_ms: f64,
    },
    Ready,
    Done {
        secs: f64,
        /// `None` when every element matched the expected value exactly.
        mismatch: Option<String>,
    },
    Failed {
        error: String,
    },
}
