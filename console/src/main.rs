//! `mrctl`: the mapreduce operator console.

mod cli;
pub use mrctl::client;

use clap::{CommandFactory, Parser, Subcommand};
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
    #[command(flatten)]
    connect: client::ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A daemon's role, identity, chain, uptime and summary (--json: one document).
    Status(cli::views::JsonArg),
    /// Validator: every miner with its score parts, weight and flags.
    Miners(cli::views::MinersArgs),
    /// Validator: scores, weights, last and next weight set, history.
    Weights(cli::views::WeightsArgs),
    /// Running and recent jobs of a daemon.
    Jobs(cli::views::JobsArgs),
    /// A daemon's recent log lines; -f follows.
    Logs(cli::logs::LogsArgs),
    /// Shell completions: `mrctl completions bash > /etc/bash_completion.d/mrctl`.
    Completions { shell: clap_complete::Shell },
    /// Benchmarks: `bench local` runs relays and peers on this machine; `bench start|status`
    /// talk to a validator or bench daemon.
    #[command(subcommand)]
    Bench(cli::bench::BenchCmd),
    /// Configuration: print the documented defaults, check a file; get, set or edit a daemon's.
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
    /// The live console: every daemon's status, bandwidth, bots, weights, jobs, config and logs.
    Tui(cli::tui::TuiArgs),
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

/// Runs a daemon-facing command on a small runtime; errors carry their exit code.
fn remote<F: std::future::Future<Output = cli::output::CmdResult>>(f: F) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    cli::output::exit(rt.block_on(f))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap exits 2 on bad usage and 0 for --help / --version.
            e.exit()
        }
    };
    let c = &cli.connect;
    match cli.command {
        Command::Status(a) => remote(cli::views::status(c, &a)),
        Command::Miners(a) => remote(cli::views::miners(c, &a)),
        Command::Weights(a) => remote(cli::views::weights(c, &a)),
        Command::Jobs(a) => remote(cli::views::jobs(c, &a)),
        Command::Logs(a) => remote(cli::logs::run(c, &a)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mrctl", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Bench(cli::bench::BenchCmd::Start(a)) => remote(cli::bench_remote::start(c, &a)),
        Command::Bench(cli::bench::BenchCmd::Status(a)) => remote(cli::bench_remote::status(c, &a)),
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Config(cmd) if cli::config::is_remote(&cmd) => {
            remote(cli::config::run_remote(cmd, c))
        }
        Command::Config(cmd) => cli::config::run(cmd, loader(&cli.common)),
        Command::Chain(cmd) => cli::chain::run_chain(cmd, loader(&cli.common)),
        Command::Metagraph(args) => cli::chain::run_metagraph(args, loader(&cli.common)),
        Command::Register(args) => cli::chain::run_register(args, loader(&cli.common)),
        Command::Job(cmd) => report(cli::job::run(cmd)),
        Command::Tui(args) => cli::tui::run(args, c),
        Command::Wallet(cmd) => report(
            loader(&cli.common)
                .load()
                .map_err(anyhow::Error::from)
                .and_then(|loaded| cli::wallet::run(cmd, &loaded.config.wallet)),
        ),
    }
}
