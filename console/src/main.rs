//! `mrctl`: the mapreduce operator console.

mod cli;

use clap::{Parser, Subcommand};
use mapreduce::config::Loader;
use mapreduce::config::flags::{CommonArgs, Overrides};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "mrctl", version, about = "mapreduce operator console", propagate_version = true)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration: print the documented defaults, check a file.
    #[command(subcommand)]
    Config(cli::config::ConfigCmd),
}

fn loader(common: &CommonArgs) -> Loader {
    Loader::from_process()
        .file(common.config.clone())
        .flags(common.overrides())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config(cmd) => cli::config::run(cmd, loader(&cli.common)),
    }
}
