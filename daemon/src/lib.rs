//! mapreduce: the library behind `mrd` and `mrctl`.
//!
//! See ARCHITECTURE.md for the map: `core` is pure domain code, `wallet` holds Bittensor keys and
//! request signing, `config` the layered configuration, `logging` the tracing set-up.

pub mod admin;
pub mod bench;
pub mod chain;
pub mod config;
pub mod control;
pub mod core;
pub mod logging;
pub mod peer;
pub mod relay;
pub mod validator;
pub mod wallet;
pub mod wire;
