//! `mrctl` subcommands, one module each.

pub mod chain;
pub mod config;
pub mod wallet;
