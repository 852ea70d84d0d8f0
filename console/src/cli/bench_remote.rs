//! `mrctl bench start | status`: benchmarks run by a validator's or bench daemon's bots, with a
//! progress bar per miner (throughput, ETA) fed by WatchBench; plain lines when stdout is not a
//! terminal; a result table (or `--json`: [`BenchRunDoc`]) at the end.

use super::output::{
    CmdError, CmdResult, SCHEMA_VERSION, Table, now_ms, print_json, rate, term_width,
};
use super::views::bot_state;
use crate::client::{self, ConnectArgs};
use clap::Args;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mr_proto::v1::{
    BenchEvent, BenchPhase, BenchmarkOutcome, BotStatus, StartBenchRequest, WatchBenchRequest,
    WatchBotsRequest,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The miner to benchmark.
    #[arg(long, conflicts_with = "all", required_unless_present = "all")]
    pub miner: Option<u32>,
    /// Every miner.
    #[arg(long)]
    pub all: bool,
    /// Tensor size in MiB [default: the daemon's bench.mib].
    #[arg(long)]
    pub mib: Option<u64>,
    /// The results as one JSON document (no progress bars).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn phase(p: i32) -> &'static str {
    match BenchPhase::try_from(p).unwrap_or(BenchPhase::Unspecified) {
        BenchPhase::Queued => "queued",
        BenchPhase::Connecting => "connecting",
        BenchPhase::AllReduce => "all_reduce",
        BenchPhase::Broadcast => "broadcast",
        BenchPhase::Verifying => "verifying",
        BenchPhase::Reporting => "reporting",
        BenchPhase::Done => "done",
        BenchPhase::Failed => "failed",
        BenchPhase::Unspecified => "unknown",
    }
}

fn outcome(o: i32) -> String {
    BenchmarkOutcome::try_from(o)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("BENCHMARK_OUTCOME_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// `mrctl bench start --json`.
#[derive(Debug, Serialize)]
pub struct BenchRunDoc {
    pub schema_version: u32,
    pub run_id: u64,
    /// One per miner of the run, in the order the daemon gave.
    pub results: Vec<BenchResultDoc>,
}

#[derive(Debug, Serialize, Clone)]
pub struct BenchResultDoc {
    pub miner_uid: u32,
    pub miner_hotkey: String,
    pub bot_hotkey: String,
    /// "done" or "failed".
    pub phase: &'static str,
    pub outcome: String,
    pub reason: String,
    pub upload_bytes_per_s: f64,
    pub download_bytes_per_s: f64,
    pub broadcast_bytes_per_s: f64,
    pub latency_ms: f64,
    pub bytes: u64,
    pub score: f64,
}

fn result_doc(e: &BenchEvent) -> BenchResultDoc {
    let r = e.result.clone().unwrap_or_default();
    BenchResultDoc {
        miner_uid: e.miner_uid,
        miner_hotkey: e.miner_hotkey.clone(),
        bot_hotkey: e.bot_hotkey.clone(),
        phase: phase(e.phase),
        outcome: outcome(r.outcome),
        reason: r.reason,
        upload_bytes_per_s: r.upload_bytes_per_s,
        download_bytes_per_s: r.download_bytes_per_s,
        broadcast_bytes_per_s: r.broadcast_bytes_per_s,
        latency_ms: r.latency_ms,
        bytes: r.bytes,
        score: r.score,
    }
}

pub fn results_table(results: &[BenchResultDoc], width: usize) -> String {
    let mut t = Table::new(&[
        ("uid", false, true),
        ("result", false, false),
        ("up", false, true),
        ("down", false, true),
        ("bcast", false, true),
        ("lat ms", false, true),
        ("score", false, true),
        ("reason", true, false),
    ]);
    for r in results {
        t.row(vec![
            r.miner_uid.to_string(),
            if r.outcome == "unspecified" || r.outcome == "unknown" {
                r.phase.to_string()
            } else {
                r.outcome.clone()
            },
            rate(r.upload_bytes_per_s),
            rate(r.download_bytes_per_s),
            rate(r.broadcast_bytes_per_s),
            format!("{:.1}", r.latency_ms),
            format!("{:.4}", r.score),
            r.reason.clone(),
        ]);
    }
    t.render(width)
}

fn finished(e: &BenchEvent) -> bool {
    matches!(
        BenchPhase::try_from(e.phase),
        Ok(BenchPhase::Done | BenchPhase::Failed)
    )
}

pub async fn start(c: &ConnectArgs, a: &StartArgs) -> CmdResult {
    let conn = client::connect(c).await?;
    let mut cl = conn.client.clone();
    let run = cl
        .start_bench(StartBenchRequest {
            miner_uid: a.miner,
            all: a.all,
            mib: a.mib.unwrap_or(0),
        })
        .await?
        .into_inner();
    let mut stream = cl
        .watch_bench(WatchBenchRequest { run_id: run.run_id })
        .await?
        .into_inner();
    let tty = !a.json && std::io::stdout().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "uid {prefix:>4} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} eta {eta:>4} {msg}",
    )
    .map_err(|e| CmdError::failed(e.to_string()))?
    .progress_chars("=> ");
    let mut bars: BTreeMap<u32, ProgressBar> = BTreeMap::new();
    if tty {
        for uid in &run.miner_uids {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(style.clone());
            b.set_prefix(uid.to_string());
            b.set_message("queued");
            bars.insert(*uid, b);
        }
    } else if !a.json {
        println!(
            "run {}: benchmarking {} miner(s): {}",
            run.run_id,
            run.miner_uids.len(),
            run.miner_uids
                .iter()
                .map(|u| format!("uid {u}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut results: BTreeMap<u32, BenchResultDoc> = BTreeMap::new();
    let mut last_phase: BTreeMap<u32, i32> = BTreeMap::new();
    let mut run_finished = false;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if let Some(b) = bars.get(&ev.miner_uid) {
            if ev.bytes_total > 0 {
                b.set_length(ev.bytes_total);
            }
            b.set_position(ev.bytes_done);
            b.set_message(phase(ev.phase));
            if finished(&ev) {
                let r = result_doc(&ev);
                b.finish_with_message(if r.phase == "done" {
                    format!("{} {}", r.outcome, rate(r.download_bytes_per_s))
                } else {
                    format!("failed: {}", r.reason)
                });
            }
        } else if !a.json && last_phase.get(&ev.miner_uid) != Some(&ev.phase) {
            // Plain lines: one per phase change, never a carriage return.
            let pct = if ev.bytes_total > 0 {
                format!(
                    " {:.0}%",
                    100.0 * ev.bytes_done as f64 / ev.bytes_total as f64
                )
            } else {
                String::new()
            };
            println!(
                "uid {}: {}{pct} {}",
                ev.miner_uid,
                phase(ev.phase),
                rate(ev.bytes_per_s)
            );
        }
        last_phase.insert(ev.miner_uid, ev.phase);
        if finished(&ev) {
            results.insert(ev.miner_uid, result_doc(&ev));
        }
        if ev.run_finished {
            run_finished = true;
            break;
        }
    }
    for b in bars.values() {
        if !b.is_finished() {
            b.abandon();
        }
    }
    let ordered: Vec<BenchResultDoc> = run
        .miner_uids
        .iter()
        .filter_map(|u| results.get(u).cloned())
        .collect();
    if a.json {
        print_json(&BenchRunDoc {
            schema_version: SCHEMA_VERSION,
            run_id: run.run_id,
            results: ordered.clone(),
        })?;
    } else {
        print!("{}", results_table(&ordered, term_width()));
    }
    if !run_finished {
        return Err(CmdError::failed(format!(
            "the progress stream ended before run {} finished ({} of {} results)",
            run.run_id,
            ordered.len(),
            run.miner_uids.len()
        )));
    }
    Ok(())
}

/// `mrctl bench status --json`.
#[derive(Debug, Serialize)]
pub struct BotsDoc {
    pub schema_version: u32,
    pub bots: Vec<BotDoc>,
}

#[derive(Debug, Serialize)]
pub struct BotDoc {
    pub hotkey: String,
    pub state: &'static str,
    pub miner_uid: Option<u32>,
    pub miner_hotkey: String,
    pub progress: f64,
    pub since_ms: u64,
    pub last_bytes_per_s: f64,
    pub last_verdict: String,
    pub last_error: String,
    pub benchmarks_ok: u64,
    pub benchmarks_failed: u64,
    pub next_attempt_ms: u64,
}

fn bot_doc(b: &BotStatus) -> BotDoc {
    BotDoc {
        hotkey: b.hotkey.clone(),
        state: bot_state(b.state),
        miner_uid: b.miner_uid,
        miner_hotkey: b.miner_hotkey.clone(),
        progress: b.progress,
        since_ms: b.since_ms,
        last_bytes_per_s: b.last_bytes_per_s,
        last_verdict: b.last_verdict.clone(),
        last_error: b.last_error.clone(),
        benchmarks_ok: b.benchmarks_ok,
        benchmarks_failed: b.benchmarks_failed,
        next_attempt_ms: b.next_attempt_ms,
    }
}

pub fn bots_table(bots: &[BotStatus], now: u64, width: usize) -> String {
    let mut t = Table::new(&[
        ("bot", true, false),
        ("state", false, false),
        ("miner", false, true),
        ("progress", false, true),
        ("since", false, false),
        ("last", false, true),
        ("ok", false, true),
        ("failed", false, true),
        ("verdict", true, false),
    ]);
    for b in bots {
        t.row(vec![
            b.hotkey.clone(),
            bot_state(b.state).into(),
            b.miner_uid.map_or("-".into(), |u| u.to_string()),
            format!("{:.0}%", b.progress * 100.0),
            super::output::ago(b.since_ms, now),
            rate(b.last_bytes_per_s),
            b.benchmarks_ok.to_string(),
            b.benchmarks_failed.to_string(),
            if b.last_error.is_empty() {
                b.last_verdict.clone()
            } else {
                format!("{} ({})", b.last_verdict, b.last_error)
            },
        ]);
    }
    t.render(width)
}

pub async fn status(c: &ConnectArgs, a: &StatusArgs) -> CmdResult {
    let conn = client::connect(c).await?;
    let mut stream = conn
        .client
        .clone()
        .watch_bots(WatchBotsRequest {})
        .await?
        .into_inner();
    // The stream sends every known bot first, then changes: keep what arrives in a short window.
    let mut bots: BTreeMap<String, BotStatus> = BTreeMap::new();
    let window = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => break,
            next = stream.next() => match next {
                Some(b) => { let b = b?; bots.insert(b.hotkey.clone(), b); }
                None => break,
            }
        }
    }
    let list: Vec<BotStatus> = bots.into_values().collect();
    if a.json {
        print_json(&BotsDoc {
            schema_version: SCHEMA_VERSION,
            bots: list.iter().map(bot_doc).collect(),
        })
    } else if list.is_empty() {
        println!("no bots");
        Ok(())
    } else {
        print!("{}", bots_table(&list, now_ms(), term_width()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr_proto::v1::{BenchResult, BotState};

    #[test]
    fn results_and_bots_snapshots() {
        let ev = |uid, ok: bool| BenchEvent {
            run_id: 1,
            miner_uid: uid,
            miner_hotkey: format!("miner{uid}"),
            bot_hotkey: "bot".into(),
            phase: if ok {
                BenchPhase::Done as i32
            } else {
                BenchPhase::Failed as i32
            },
            result: Some(BenchResult {
                outcome: if ok {
                    BenchmarkOutcome::Ok as i32
                } else {
                    BenchmarkOutcome::WrongResult as i32
                },
                reason: if ok {
                    String::new()
                } else {
                    "block 3 differs".into()
                },
                upload_bytes_per_s: 200.0 * 1048576.0,
                download_bytes_per_s: 190.0 * 1048576.0,
                broadcast_bytes_per_s: 180.0 * 1048576.0,
                latency_ms: 2.5,
                bytes: 50 << 20,
                score: if ok { 0.33 } else { 0.0 },
            }),
            ..Default::default()
        };
        let r = vec![result_doc(&ev(1, true)), result_doc(&ev(2, false))];
        insta::assert_snapshot!("bench_results", results_table(&r, 100));
        let bots = vec![BotStatus {
            hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
            state: BotState::Running as i32,
            miner_uid: Some(3),
            progress: 0.5,
            since_ms: 1_764_115_262_000 - 4000,
            last_bytes_per_s: 100.0 * 1048576.0,
            last_verdict: "ok".into(),
            benchmarks_ok: 7,
            benchmarks_failed: 1,
            ..Default::default()
        }];
        insta::assert_snapshot!("bots", bots_table(&bots, 1_764_115_262_000, 100));
    }
}
