//! The validator daemon's state: its view of the miners and its jobs, persisted in SQLite.

pub mod store;
pub mod sync;

pub use store::{JobRow, MinerRow, Store, StoreError};
