//! `mrctl` subcommands, one module each.

pub mod config;
pub mod wallet;
