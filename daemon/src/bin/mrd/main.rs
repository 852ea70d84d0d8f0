//! `mrd`: the mapreduce daemons (miner, validator, bench) and their offline helpers.

mod bench_cmd;
mod bench_peer;
mod config_cmd;
mod devnet_cmd;
mod miner_cmd;
mod node;
mod pidfile;
mod relay_cmd;
mod systemd;
mod validator_cmd;

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
    /// Run a standalone data-plane relay (the miner's data plane, trusting validators from config).
    Relay(relay_cmd::RelayArgs),
    /// Run a miner: relay (data plane) and miner service on the axon port; SIGTERM drains.
    Miner(miner_cmd::MinerArgs),
    /// Run a validator: metagraph sync, miner polls, jobs for training peers (SQLite state).
    Validator(validator_cmd::ValidatorArgs),
    /// Run a benchmark bot: benchmarks miners for its validator, every byte checked.
    Bench(bench_cmd::BenchArgs),
    /// Dev-chain helpers for scripts/devnet.
    #[command(subcommand)]
    Devnet(devnet_cmd::DevnetCmd),
    /// One peer process of `mrctl bench local`, driven over stdin/stdout.
    #[command(hide = true)]
    BenchPeer,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Config(cmd) => config_cmd::run(cmd, &cli.common, &cli.serve),
        Command::Relay(args) => relay_cmd::run(args, &cli.common, &cli.serve),
        Command::Devnet(cmd) => devnet_cmd::run(cmd, &cli.common, &cli.serve),
        Command::Miner(args) => miner_cmd::run(args, &cli.common, &cli.serve),
        Command::Validator(args) => validator_cmd::run(args, &cli.common, &cli.serve),
        Command::Bench(args) => bench_cmd::run(args, &cli.common, &cli.serve),
        Command::BenchPeer => bench_peer::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
