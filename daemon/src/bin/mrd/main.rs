//! `mrd`: the mapreduce daemons (miner, validator, bench) and their offline helpers.

mod config_cmd;

use clap::{Parser, Subcommand};
use mapreduce::config::flags::{CommonArgs, ServeArgs};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "mrd",
    version,
    about = "mapreduce daemons",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, show or convert configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Config(cmd) => config_cmd::run(cmd, &cli.common, &cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
