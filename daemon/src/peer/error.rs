//! What can go wrong for a peer; every variant names the miner (or the relay's report names the
//! peer) that went away.

use crate::wallet::KeyError;
use crate::wire::HandshakeError;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("invalid ticket: {0}")]
    Ticket(#[from] HandshakeError),
    #[error("signing the join: {0}")]
    Key(#[from] KeyError),
    #[error("rank {rank} is not in this job of {peers} peers")]
    Rank { rank: u32, peers: u32 },
    #[error("the key is {got}, but rank {rank} of the ticket is {want}")]
    WrongKey {
        rank: u32,
        got: String,
        want: String,
    },
    #[error("tensor has {got} elements, the job was made for {want}")]
    Length { got: usize, want: u64 },
    #[error("broadcast source {src} is not a rank of this job of {peers} peers")]
    Source { src: u32, peers: u32 },
    #[error("{miner}: cannot connect: {source}")]
    Connect {
        miner: String,
        source: std::io::Error,
    },
    #[error("{miner} reports: {reason}")]
    Relay { miner: String, reason: String },
    #[error("{miner} closed the connection {during}")]
    Closed { miner: String, during: String },
    #[error("{miner}: nothing for {secs:.1} s {during} (deadline)")]
    Timeout {
        miner: String,
        secs: f64,
        during: String,
    },
    #[error("{miner}: {source} {during}")]
    Io {
        miner: String,
        during: String,
        source: std::io::Error,
    },
    #[error("{miner} broke the protocol: {reason}")]
    Protocol { miner: String, reason: String },
    /// The miner of a shard failed and no spare could take over. Everything up to "(seen here"
    /// is worded the same on every peer, so all of them report one error; `detail` is what this
    /// peer saw (operation, block).
    #[error("{miner} {} mid-operation and {why}; the operation is abandoned, no result is returned (seen here: {detail})", .kind.what())]
    MinerLost {
        miner: String,
        kind: crate::peer::failover::LossKind,
        /// "the job has no spare miner", "its spare ... could not take over: ...".
        why: String,
        detail: String,
    },
    #[error("cannot start the peer's I/O engine: {0}")]
    Engine(std::io::Error),
    #[error("this job failed earlier and cannot be used again: {0}")]
    Failed(String),
    #[error("the validator no longer renews job {job}: {reason}")]
    Expired { job: u64, reason: String },
}

impl PeerError {
    /// How telling an error is, when several threads fail at once: the relay's own report first,
    /// then what a reader saw, then what a writer saw.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            PeerError::Relay { .. } | PeerError::MinerLost { .. } => 3,
            PeerError::Protocol { .. } => 2,
            PeerError::Closed { .. } | PeerError::Timeout { .. } => 1,
            _ => 0,
        }
    }
}
