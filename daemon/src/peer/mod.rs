//! The client library training code calls: join a job, then `all_reduce` and `broadcast` through
//! the job's miners.
//!
//! ```no_run
//! # use mapreduce::peer::{Job, Peer};
//! # use mapreduce::core::Op;
//! # fn f(ticket: mapreduce::wire::SignedTicket, key: &mapreduce::wallet::Keypair) -> Result<(), mapreduce::peer::PeerError> {
//! let job = Job::from_ticket(ticket, 0)?;
//! let mut peer = Peer::connect(job, key)?;
//! let mut grads = vec![1.0f32; 1000];
//! peer.all_reduce(&mut grads, Op::Avg)?;
//! # Ok(()) }
//! ```
//!
//! [`job`] is what a peer knows of its job; [`conn`] one miner connection; [`collective`] runs
//! one operation over all miners at once; [`deadline`] adapts per-block deadlines.

pub mod bench;
pub mod check;
pub mod collective;
pub mod conn;
pub mod deadline;
mod engine;
pub mod error;
pub mod failover;
pub mod job;
pub mod lease;
pub mod pace;
pub mod progress;
pub mod report;
pub mod sample;
pub mod session;
pub mod tcpinfo;
pub mod traffic;

pub use collective::Peer;
pub use error::PeerError;
pub use job::Job;
pub use progress::PeerProgress;
pub use session::{Session, SessionError, SessionOptions, ValidatorAddr};
