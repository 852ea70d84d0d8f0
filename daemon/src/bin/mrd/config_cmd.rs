//! `mrd config check | show | import-legacy`.

use anyhow::Context;
use clap::Subcommand;
use mapreduce::config::flags::{CommonArgs, Overrides, ServeArgs};
use mapreduce::config::{Loader, legacy};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration (file, environment and flags); exit 1 naming every bad key.
    Check,
    /// Print the effective configuration as TOML.
    Show,
    /// Convert the original subnet's validator.config.json to TOML on stdout.
    ImportLegacy {
        /// The legacy JSON file.
        file: PathBuf,
    },
}

pub fn loader(common: &CommonArgs, serve: &ServeArgs) -> Loader {
    let mut flags = common.overrides();
    flags.extend(serve.overrides());
    Loader::from_process()
        .file(common.config.clone())
        .flags(flags)
}

pub fn run(cmd: ConfigCmd, common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Check => match loader(common, serve).load() {
            Ok(loaded) => {
                match &loaded.file {
                    Some(f) => println!("ok: {} is valid", f.display()),
                    None => {
                        println!("ok: no config file; defaults, environment and flags are valid")
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        ConfigCmd::Show => {
            let loaded = loader(common, serve).load()?;
            let text = toml::to_string_pretty(&loaded.config).context("rendering the config")?;
            if let Some(f) = &loaded.file {
                println!("# from {}", f.display());
            }
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        ConfigCmd::ImportLegacy { file } => {
            let json = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let out =
                legacy::import(&json).with_context(|| format!("converting {}", file.display()))?;
            print!("{}", out.toml);
            for n in &out.notes {
                eprintln!("not carried over: {n}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
