//! `mrctl`: the mapreduce operator console.

mod cli;
pub mod client;

use clap::{Parser, Subcommand};
use mapreduce::config::Loader;
use mapreduce::config::flags::{CommonArgs, Overrides};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "mrctl",
    version,
    about = "mapreduce operator console",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks: `bench local` runs relays and peers on this machine.
    #[command(subcommand)]
    Bench(cli::bench::BenchCmd),
    /// Configuration: print the documented defaults, check a file.
    #[command(subcommand)]
    Config(cli::config::ConfigCmd),
    /// Chain: endpoint, runtime, block, and this wallet's hotkey uid and stake.
    #[command(subcommand)]
    Chain(cli::chain::ChainCmd),
    /// The metagraph of --netuid: uids, keys, stake, axons (sortable table, or --json).
    Metagraph(cli::chain::MetagraphArgs),
    /// Register the wallet's hotkey on --netuid by burning TAO (asks to confirm; --yes for scripts).
    Register(cli::chain::RegisterArgs),
    /// Jobs through a validator: `job demo` runs a checked all_reduce.
    #[command(subcommand)]
    Job(cli::job::JobCmd),
    /// Wallets: create, regenerate, list and show btcli-compatible keys.
    #[command(subcommand)]
    Wallet(cli::wallet::WalletCmd),
}

fn loader(common: &CommonArgs) -> Loader {
    Loader::from_process()
        .file(common.config.clone())
        .flags(common.overrides())
}

/// Print an error with its causes and turn it into a failing exit code.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Config(cmd) => cli::config::run(cmd, loader(&cli.common)),
        Command::Chain(cmd) => cli::chain::run_chain(cmd, loader(&cli.common)),
        Command::Metagraph(args) => cli::chain::run_metagraph(args, loader(&cli.common)),
        Command::Register(args) => cli::chain::run_register(args, loader(&cli.common)),
        Command::Job(cmd) => report(cli::job::run(cmd)),
        Command::Wallet(cmd) => report(
            loader(&cli.common)
                .load()
                .map_err(anyhow::Error::from)
                .and_then(|loaded| cli::wallet::run(cmd, &loaded.config.wallet)),
        ),
    }
}
