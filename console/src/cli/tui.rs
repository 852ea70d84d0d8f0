//! `mrctl tui`: which daemons to watch and how to reach them; the console itself is
//! `mrctl::tui` (the library), fed through this connector built on `client.rs`.

use crate::client::{self, ConnectArgs, Target};
use mrctl::tui::live::ConnectFuture;
use mrctl::tui::{Connection, Connector};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct TuiArgs {
    /// Draw without colours (also when the NO_COLOR environment variable is set).
    #[arg(long)]
    pub no_color: bool,
}

/// Opens channels with `client.rs`'s transport and token rules. The channel itself reconnects; the
/// TUI's task asks again after every loss, so a daemon that restarted (new token) is picked up.
struct ClientConnector {
    token_file: Option<PathBuf>,
}

impl Connector for ClientConnector {
    fn connect<'a>(&'a self, target: &'a str) -> ConnectFuture<'a> {
        Box::pin(async move {
            let target = Target::parse(target);
            let token_file = self
                .token_file
                .clone()
                .unwrap_or_else(|| target.default_token_file());
            let channel = client::channel(&target).await?;
            let token = client::read_token(&token_file)?;
            Ok(Connection { channel, token })
        })
    }
}

/// Watches every `--connect` target (repeatable), or every admin socket found in the runtime
/// folders; `--role` keeps the discovered sockets whose file name starts with the role.
pub fn run(args: TuiArgs, connect: &ConnectArgs) -> ExitCode {
    let targets: Vec<String> = if connect.connect.is_empty() {
        let dirs = mapreduce::admin::paths::search_dirs();
        let role = connect
            .role
            .map(|r| mapreduce::admin::role_name(r.role()).to_string());
        let found: Vec<String> = mapreduce::admin::paths::find_sockets(&dirs)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                role.as_ref().is_none_or(|r| name.starts_with(r.as_str()))
            })
            .map(|p| p.display().to_string())
            .collect();
        if found.is_empty() {
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            eprintln!(
                "error: no daemon found: no admin socket in {} (start one, or give --connect SOCKET|HOST:PORT)",
                dirs.join(", ")
            );
            return ExitCode::from(3);
        }
        found
    } else {
        connect.connect.clone()
    };
    if connect.token_file.is_some() && targets.len() > 1 {
        eprintln!(
            "error: --token-file names one daemon's token; with several daemons each token is read beside its socket"
        );
        return ExitCode::from(2);
    }
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let connector = Arc::new(ClientConnector {
        token_file: connect.token_file.clone(),
    });
    match runtime.block_on(mrctl::tui::run(targets, connector, color)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
