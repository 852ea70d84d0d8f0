//! `mrctl` subcommands, one module each.

pub mod config;
