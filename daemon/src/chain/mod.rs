//! The subtensor client: metagraph, hyperparameters, extrinsics, watchdog (subxt 0.51).
//!
//! - [`ChainClient`] connects to `--subtensor.network` / `--subtensor.chain_endpoint`, reconnects
//!   with backoff, runs a watchdog that reconnects when no block arrives for `watchdog_secs`, and
//!   bounds every call with `call_timeout_secs` (writes wait for inclusion up to
//!   `inclusion_timeout_secs`).
//! - Reads ([`reads`]): block, runtime, [`Metagraph`], [`Hyperparameters`], uid / registration,
//!   [`WeightsStatus`] (next block at which weights may be set), weights, commits, balances.
//! - Writes ([`writes`]): serve_axon, set_weights, commit/reveal (hash-based), burned_register,
//!   and for dev chains register_network, add_stake, transfer, sudo hyperparameters.
//! - Call shapes come from the connected runtime's metadata ([`shape`]): a runtime whose calls
//!   differ gives [`ChainError::Incompatible`] naming the call and runtime version.
//! - Runtime errors are decoded into messages with the fix ([`error::explain`]).
//! - [`dev`] runs the real subtensor runtime under chopsticks for tests and the devnet.

mod client;
pub mod dev;
pub mod error;
mod reads;
pub mod shape;
pub mod signer;
pub mod types;
pub mod weights;
mod writes;

pub use client::{ChainClient, ChainOptions};
pub use error::{ChainError, ErrorContext};
pub use signer::{ChainSigner, dev_keypair};
pub use types::*;
pub use weights::{PendingReveal, commit_hash, normalize, to_u16_weights};
