//! `mrctl config print-default | check` (local) and `config get | set | edit` (a daemon's
//! configuration, through its admin API: validated whole, written atomically, applied live where
//! it can be).

use super::output::{CmdError, CmdResult, print_json};
use crate::client::{self, ConnectArgs};
use clap::Subcommand;
use mapreduce::config::{EXAMPLE, Loader, nearest};
use mr_proto::v1::{ConfigSet, GetConfigRequest, UpdateConfigRequest, UpdateConfigResponse};
use serde::Serialize;
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the commented example configuration: every key with its default.
    PrintDefault,
    /// Validate the configuration mrctl would use (file, environment, flags).
    Check,
    /// A running daemon's effective configuration (TOML), or one key's value.
    Get {
        /// Dotted key, e.g. validator.sample_rate.
        key: Option<String>,
        /// With KEY: value, origin, whether it applies live, documentation, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set one key in a running daemon's config file: validated, written atomically, applied
    /// live when the key allows (else the daemon says a restart is needed).
    Set {
        key: String,
        /// A TOML value (0.5, true, "text", [1, 2]); bare words are strings.
        value: String,
        /// Validate and show the diff, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Edit a running daemon's config file in $EDITOR: validated, diff shown, applied on yes.
    Edit {
        /// Apply without asking (after showing the diff).
        #[arg(long)]
        yes: bool,
    },
}

pub fn is_remote(cmd: &ConfigCmd) -> bool {
    matches!(
        cmd,
        ConfigCmd::Get { .. } | ConfigCmd::Set { .. } | ConfigCmd::Edit { .. }
    )
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
        // Handled by run_remote.
        _ => ExitCode::from(2),
    }
}

/// `mrctl config get KEY --json`.
#[derive(Debug, Serialize)]
pub struct ConfigKeyDoc {
    pub schema_version: u32,
    pub key: String,
    /// As TOML; empty when unset.
    pub value: String,
    pub origin: String,
    pub live: bool,
    pub doc: String,
}

/// `mrctl config set --json`-like summary printed by set and edit.
fn report(resp: &UpdateConfigResponse, dry_run: bool) -> CmdResult {
    if !resp.problems.is_empty() {
        let lines: Vec<String> = resp
            .problems
            .iter()
            .map(|p| {
                if p.key.is_empty() || p.message.contains(&p.key) {
                    p.message.clone()
                } else {
                    format!("{}: {}", p.key, p.message)
                }
            })
            .collect();
        return Err(CmdError::failed(format!(
            "{} unchanged: {}",
            resp.path,
            lines.join("; ")
        )));
    }
    if !resp.diff.is_empty() {
        print!("{}", resp.diff);
    }
    for w in &resp.warnings {
        eprintln!("warning: {w}");
    }
    if dry_run {
        println!("dry run: valid, nothing written");
    } else if resp.changed_keys.is_empty() {
        println!("written to {}; no effective value changed", resp.path);
    } else {
        let live: Vec<&String> = resp
            .changed_keys
            .iter()
            .filter(|k| !resp.restart_required.contains(k))
            .collect();
        if !live.is_empty() {
            println!(
                "applied live: {}",
                live.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !resp.restart_required.is_empty() {
            println!(
                "written to {}; takes effect after a restart: {}",
                resp.path,
                resp.restart_required.join(", ")
            );
        }
    }
    Ok(())
}

pub async fn run_remote(cmd: ConfigCmd, c: &ConnectArgs) -> CmdResult {
    let conn = client::connect(c).await?;
    let mut cl = conn.client.clone();
    match cmd {
        ConfigCmd::Get { key, json } => {
            let doc = cl.get_config(GetConfigRequest {}).await?.into_inner();
            let Some(key) = key else {
                print!("{}", doc.toml);
                return Ok(());
            };
            let Some(e) = doc.entries.iter().find(|e| e.key == key) else {
                let hint = nearest(&key, doc.entries.iter().map(|e| e.key.as_str()))
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                return Err(CmdError::failed(format!("unknown key `{key}`{hint}")));
            };
            if json {
                print_json(&ConfigKeyDoc {
                    schema_version: super::output::SCHEMA_VERSION,
                    key: e.key.clone(),
                    value: e.value.clone(),
                    origin: e.origin.clone(),
                    live: e.live,
                    doc: e.doc.clone(),
                })
            } else {
                println!("{}", e.value);
                Ok(())
            }
        }
        ConfigCmd::Set {
            key,
            value,
            dry_run,
        } => {
            let resp = cl
                .update_config(UpdateConfigRequest {
                    set: vec![ConfigSet { key, value }],
                    dry_run,
                    ..Default::default()
                })
                .await?
                .into_inner();
            report(&resp, dry_run)
        }
        ConfigCmd::Edit { yes } => edit(&mut cl, yes).await,
        ConfigCmd::PrintDefault | ConfigCmd::Check => Err(CmdError::usage("not a daemon command")),
    }
}

fn ask(question: &str) -> bool {
    use std::io::Write;
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).is_ok() && matches!(s.trim(), "y" | "Y" | "yes")
}

async fn edit(cl: &mut client::Client, yes: bool) -> CmdResult {
    let doc = cl.get_config(GetConfigRequest {}).await?.into_inner();
    if doc.path.is_empty() {
        return Err(CmdError::failed(
            "the daemon runs without a config file; start it with --config FILE to edit one",
        ));
    }
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let dir = tempfile_dir()?;
    let copy = dir.join("config.toml");
    std::fs::write(&copy, &doc.file_text)
        .map_err(|e| CmdError::failed(format!("writing {}: {e}", copy.display())))?;
    let result = loop {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&copy)
            .status()
            .map_err(|e| CmdError::failed(format!("running {editor}: {e}")))?;
        if !status.success() {
            break Err(CmdError::failed(format!(
                "{editor} exited with {status}; nothing changed"
            )));
        }
        let text = std::fs::read_to_string(&copy)
            .map_err(|e| CmdError::failed(format!("reading {}: {e}", copy.display())))?;
        if text == doc.file_text {
            println!("no changes");
            break Ok(());
        }
        let check = cl
            .update_config(UpdateConfigRequest {
                replace: text.clone(),
                dry_run: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        if !check.problems.is_empty() {
            for p in &check.problems {
                eprintln!("problem: {}", p.message);
            }
            if std::io::stdin().is_terminal() && ask("edit again?") {
                continue;
            }
            break Err(CmdError::failed(format!("{} unchanged", doc.path)));
        }
        print!("{}", check.diff);
        let approved = yes || (std::io::stdin().is_terminal() && ask("apply?"));
        if !approved {
            println!("not applied; {} unchanged", doc.path);
            break Ok(());
        }
        let resp = cl
            .update_config(UpdateConfigRequest {
                replace: text,
                ..Default::default()
            })
            .await?
            .into_inner();
        // The diff was shown already.
        let quiet = UpdateConfigResponse {
            diff: String::new(),
            ..resp
        };
        break report(&quiet, false);
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A private temp folder for the copy being edited.
fn tempfile_dir() -> Result<std::path::PathBuf, CmdError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("mrctl-edit-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| CmdError::failed(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}
