//! `mrctl` subcommands, one module each.

pub mod config;
// main.rs dispatches `mrctl wallet` to `wallet::run`; until that is wired only the tests use it.
#[allow(dead_code)]
pub mod wallet;
