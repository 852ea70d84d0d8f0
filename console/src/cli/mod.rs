//! `mrctl` subcommands, one module each.

pub mod bench;
pub mod bench_remote;
pub mod chain;
pub mod config;
pub mod job;
pub mod logs;
pub mod output;
pub mod tui;
pub mod views;
pub mod wallet;
