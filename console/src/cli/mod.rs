//! `mrctl` subcommands, one module each.

pub mod bench;
pub mod chain;
pub mod config;
pub mod job;
pub mod wallet;
