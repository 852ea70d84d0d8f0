//! `mrctl logs [-f]`: the daemon's recent log lines, then live ones with `-f`.

use super::output::{CmdResult, utc};
use crate::client::{self, ConnectArgs};
use clap::Args;
use futures_util::StreamExt;
use mr_proto::v1::{LogLine, WatchLogsRequest};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new lines until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Recent lines to print first.
    #[arg(short = 'n', long, default_value_t = 200)]
    pub tail: u32,
    /// Least severe level shown: error, warn, info, debug, trace.
    #[arg(long, default_value = "info")]
    pub level: String,
}

/// "2026-11-26 00:01:02.345  INFO mapreduce::relay: peer joined job=7".
pub fn format_line(l: &LogLine) -> String {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&l.fields).unwrap_or_default();
    let mut out = format!(
        "{}.{:03} {:>5} {}: {}",
        utc(l.at_ms),
        l.at_ms % 1000,
        l.level,
        l.target,
        l.message
    );
    for (k, v) in fields {
        match v {
            serde_json::Value::String(s) => out.push_str(&format!(" {k}={s}")),
            other => out.push_str(&format!(" {k}={other}")),
        }
    }
    out
}

pub async fn run(c: &ConnectArgs, a: &LogsArgs) -> CmdResult {
    let conn = client::connect(c).await?;
    let mut stream = conn
        .client
        .clone()
        .watch_logs(WatchLogsRequest {
            tail: a.tail.max(1),
            follow: a.follow,
            min_level: a.level.clone(),
        })
        .await?
        .into_inner();
    while let Some(line) = stream.next().await {
        println!("{}", format_line(&line?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_with_fields() {
        let l = LogLine {
            at_ms: 1_764_115_262_345,
            level: "INFO".into(),
            target: "mapreduce::relay".into(),
            message: "peer joined".into(),
            fields: r#"{"job":7,"peer":"5Abc"}"#.into(),
            history: true,
        };
        assert_eq!(
            format_line(&l),
            "2025-11-26 00:01:02.345  INFO mapreduce::relay: peer joined job=7 peer=5Abc"
        );
    }
}
