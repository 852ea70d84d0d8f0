//! The validator daemon's state: its view of the miners, its jobs, benchmarks, scores and
//! weights, persisted in SQLite.
//!
//! - [`store`] and [`records`]: the tables (jobs, miners; benchmarks, rounds, EMAs, weight sets).
//! - [`score`]: benchmarks of the window into `core::scoring` inputs, and a round from the store.
//! - [`weights`]: the loop that stores a round every `weights_interval_blocks` and sends it.
//! - [`verify`]: live-job verification (sample seeds, peers' evidence, recomputation, verdicts).
//! - [`view`]: the read API the admin service uses (`ScoringView::miners`, `ScoringView::weights`).

pub mod records;
pub mod score;
pub mod store;
pub mod sync;
pub mod verify;
pub mod view;
pub mod weights;

pub use store::{JobRow, MinerRow, Store, StoreError};
