//! The shared harness of the mapreduce integration tests (daemon/tests, console/tests): real
//! `mrd`/`mrctl` processes killed by pid when dropped, their configs, waiting for their log lines
//! with a timeout, free ports, the subtensor runtime under chopsticks with a subnet and
//! registered hotkeys, and the peer-side jobs the tests run through real miners.
//!
//! Everything here panics with the context a failing test needs (the daemon's log, what was
//! awaited): it is test code, and a panic is how a test fails.

pub mod bins;
pub mod config;
pub mod devnet;
pub mod fixtures;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod netns;
pub mod proc;
pub mod shared;

pub use bins::{bin, mrctl_bin, mrd_bin};
pub use config::{NodeConfig, write_config};
pub use devnet::DevNet;
pub use jobs::{Throughput, all_reduce_job, run_benchmark};
pub use metrics::{metrics_addr, sample, scrape};
pub use net::{free_port, free_port_on};
pub use proc::{Proc, Reap, field, mrctl, wait_file};

use std::time::Instant;

/// Prints the time since the test started with each step, so a slow CI log shows where.
pub struct Step(pub Instant);

impl Step {
    pub fn start() -> Step {
        Step(Instant::now())
    }

    pub fn done(&mut self, what: &str) {
        println!("[{:6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}
