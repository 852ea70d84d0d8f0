//! `mrctl config print-default | check`.

use clap::Subcommand;
use mapreduce::config::{EXAMPLE, Loader};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the commented example configuration: every key with its default.
    PrintDefault,
    /// Validate the configuration mrctl would use (file, environment, flags).
    Check,
}

pub fn run(cmd: ConfigCmd, loader: Loader) -> ExitCode {
    match cmd {
        ConfigCmd::PrintDefault => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        ConfigCmd::Check => match loader.load() {
            Ok(_) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
    }
}
