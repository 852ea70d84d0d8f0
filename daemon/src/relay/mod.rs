//! The miner's data-plane server: accepts peers' connections, checks their tickets, and reduces
//! (or forwards) their blocks through a bounded window, many jobs at once.
//!
//! [`machine`] is the per-job logic without I/O; [`job`] shares one machine between the job's
//! connections; [`conn`] runs one connection; [`server`] accepts connections and keeps the
//! registry of jobs; [`budget`] bounds memory over all jobs.

pub mod budget;
pub mod conn;
#[cfg(feature = "dishonest-relay")]
pub mod dishonest;
pub mod job;
pub mod limits;
pub mod machine;
pub mod receipt;
pub mod server;

pub use budget::{Budget, BudgetError, Reservation};
pub use server::{Relay, RelayJob, RelayOptions, Trust};
