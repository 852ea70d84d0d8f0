//! `mrctl status | miners | weights | jobs`: the daemon's state as tables or JSON documents.
//!
//! JSON documents (stable; `schema_version` changes only when a field changes meaning or goes):
//! - `status`: [`StatusDoc`]; `miners`: [`MinersDoc`]; `weights`: [`WeightsDoc`]; `jobs`: [`JobsDoc`].

use super::output::{
    CmdError, CmdResult, SCHEMA_VERSION, Table, ago, bytes, duration, now_ms, print_json, rate,
    term_width,
};
use crate::client::{self, ConnectArgs};
use clap::{Args, ValueEnum};
use mr_proto::v1::{
    GetWeightsRequest, JobList, JobState, ListJobsRequest, ListMinersRequest, MinerInfo, MinerList,
    Role, Status, Weights, status::Summary,
};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct JsonArg {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MinerSort {
    Uid,
    Score,
    Weight,
}

#[derive(Debug, Args)]
pub struct MinersArgs {
    #[arg(long)]
    pub json: bool,
    /// Order of the rows (score and weight: highest first).
    #[arg(long, value_enum, default_value = "uid")]
    pub sort: MinerSort,
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    #[arg(long)]
    pub json: bool,
    /// Weight sets of history to show.
    #[arg(long, default_value_t = 10)]
    pub history: u32,
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[arg(long)]
    pub json: bool,
    /// Finished jobs to include.
    #[arg(long, default_value_t = 20)]
    pub recent: u32,
}

pub fn role_str(r: Role) -> &'static str {
    mapreduce::admin::role_name(r)
}

pub fn job_state(s: i32) -> &'static str {
    match JobState::try_from(s).unwrap_or(JobState::Unspecified) {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Expired => "expired",
        JobState::Unspecified => "unknown",
    }
}

/// `mrctl status --json`.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub schema_version: u32,
    pub role: &'static str,
    pub version: String,
    pub hotkey: String,
    pub uid: Option<u32>,
    pub netuid: u32,
    pub chain_endpoint: String,
    pub last_block: u64,
    pub last_block_at_ms: u64,
    pub uptime_s: u64,
    pub jobs_running: u32,
    pub ready: bool,
    pub pid: u32,
    pub config_path: String,
    pub admin_endpoint: String,
    /// Present for a miner.
    pub miner: Option<MinerSummaryDoc>,
    /// Present for a validator.
    pub validator: Option<ValidatorSummaryDoc>,
    /// Present for a bench daemon.
    pub bench: Option<BenchSummaryDoc>,
}

#[derive(Debug, Serialize)]
pub struct MinerSummaryDoc {
    pub axon_address: String,
    pub relay_address: String,
    pub memory_limit: u64,
    pub memory_reserved: u64,
    pub jobs_running: u32,
    pub jobs_served: u64,
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
    pub draining: bool,
}

#[derive(Debug, Serialize)]
pub struct ValidatorSummaryDoc {
    pub axon_address: String,
    pub miners_total: u32,
    pub miners_reachable: u32,
    pub jobs_running: u32,
    pub benchmarks_total: u64,
    pub bots_known: u32,
    pub last_weights_block: u64,
    pub next_weights_block: u64,
}

#[derive(Debug, Serialize)]
pub struct BenchSummaryDoc {
    pub validator: String,
    pub bot_state: String,
    pub benchmarks_ok: u64,
    pub benchmarks_failed: u64,
}

pub fn bot_state(s: i32) -> &'static str {
    use mr_proto::v1::BotState as B;
    match B::try_from(s).unwrap_or(B::Unspecified) {
        B::Idle => "idle",
        B::Requesting => "requesting",
        B::Running => "running",
        B::Verifying => "verifying",
        B::Reporting => "reporting",
        B::BackingOff => "backing_off",
        B::Unspecified => "unknown",
    }
}

impl StatusDoc {
    pub fn from(s: &Status) -> StatusDoc {
        let (mut miner, mut validator, mut bench) = (None, None, None);
        match &s.summary {
            Some(Summary::Miner(m)) => {
                miner = Some(MinerSummaryDoc {
                    axon_address: m.axon_address.clone(),
                    relay_address: m.relay_address.clone(),
                    memory_limit: m.memory_limit,
                    memory_reserved: m.memory_reserved,
                    jobs_running: m.jobs_running,
                    jobs_served: m.jobs_served,
                    bytes_in_per_s: m.bytes_in_per_s,
                    bytes_out_per_s: m.bytes_out_per_s,
                    draining: m.draining,
                })
            }
            Some(Summary::Validator(v)) => {
                validator = Some(ValidatorSummaryDoc {
                    axon_address: v.axon_address.clone(),
                    miners_total: v.miners_total,
                    miners_reachable: v.miners_reachable,
                    jobs_running: v.jobs_running,
                    benchmarks_total: v.benchmarks_total,
                    bots_known: v.bots_known,
                    last_weights_block: v.last_weights_block,
                    next_weights_block: v.next_weights_block,
                })
            }
            Some(Summary::Bench(b)) => {
                bench = Some(BenchSummaryDoc {
                    validator: b.validator.clone(),
                    bot_state: b
                        .bot
                        .as_ref()
                        .map_or("unknown", |b| bot_state(b.state))
                        .into(),
                    benchmarks_ok: b.benchmarks_ok,
                    benchmarks_failed: b.benchmarks_failed,
                })
            }
            None => {}
        }
        StatusDoc {
            schema_version: SCHEMA_VERSION,
            role: role_str(s.role()),
            version: s.version.clone(),
            hotkey: s.hotkey.clone(),
            uid: s.uid,
            netuid: s.netuid,
            chain_endpoint: s.chain_endpoint.clone(),
            last_block: s.last_block,
            last_block_at_ms: s.last_block_at_ms,
            uptime_s: s.uptime_s,
            jobs_running: s.jobs_running,
            ready: s.ready,
            pid: s.pid,
            config_path: s.config_path.clone(),
            admin_endpoint: s.admin_endpoint.clone(),
            miner,
            validator,
            bench,
        }
    }
}

/// The human status: "key  value" lines.
pub fn status_text(s: &Status, now: u64) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("role", role_str(s.role()).into()),
        ("hotkey", s.hotkey.clone()),
        (
            "uid",
            s.uid.map_or("not registered".into(), |u| u.to_string()),
        ),
        ("netuid", s.netuid.to_string()),
        ("version", s.version.clone()),
        ("state", if s.ready { "ready" } else { "starting" }.into()),
        ("uptime", duration(s.uptime_s)),
        ("pid", s.pid.to_string()),
        ("chain", s.chain_endpoint.clone()),
        (
            "last block",
            if s.last_block == 0 {
                "-".into()
            } else {
                format!("{} ({})", s.last_block, ago(s.last_block_at_ms, now))
            },
        ),
        ("jobs running", s.jobs_running.to_string()),
        (
            "config",
            if s.config_path.is_empty() {
                "(none)".into()
            } else {
                s.config_path.clone()
            },
        ),
        ("admin", s.admin_endpoint.clone()),
    ];
    match &s.summary {
        Some(Summary::Miner(m)) => {
            rows.push(("axon", m.axon_address.clone()));
            rows.push(("relay", m.relay_address.clone()));
            rows.push((
                "memory",
                format!(
                    "{} reserved of {}",
                    bytes(m.memory_reserved),
                    bytes(m.memory_limit)
                ),
            ));
            rows.push((
                "traffic",
                format!(
                    "in {}, out {}",
                    rate(m.bytes_in_per_s),
                    rate(m.bytes_out_per_s)
                ),
            ));
            if m.draining {
                rows.push(("draining", "yes: no new jobs".into()));
            }
        }
        Some(Summary::Validator(v)) => {
            rows.push(("axon", v.axon_address.clone()));
            rows.push((
                "miners",
                format!("{} ({} reachable)", v.miners_total, v.miners_reachable),
            ));
            rows.push(("bots", v.bots_known.to_string()));
            rows.push(("benchmarks", v.benchmarks_total.to_string()));
            rows.push((
                "weights",
                if v.last_weights_block == 0 {
                    format!("never set; next allowed at block {}", v.next_weights_block)
                } else {
                    format!(
                        "last set at block {}, next at {}",
                        v.last_weights_block, v.next_weights_block
                    )
                },
            ));
        }
        Some(Summary::Bench(b)) => {
            rows.push(("validator", b.validator.clone()));
            if let Some(bot) = &b.bot {
                rows.push(("bot", bot_state(bot.state).into()));
            }
            rows.push((
                "benchmarks",
                format!("{} ok, {} failed", b.benchmarks_ok, b.benchmarks_failed),
            ));
        }
        None => {}
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

/// `mrctl miners --json`.
#[derive(Debug, Serialize)]
pub struct MinersDoc {
    pub schema_version: u32,
    pub miners: Vec<MinerDoc>,
}

#[derive(Debug, Serialize)]
pub struct MinerDoc {
    pub uid: u32,
    pub hotkey: String,
    pub ip: String,
    pub axon: String,
    pub relay: String,
    pub reachable: bool,
    pub memory_free: u64,
    pub score: Option<ScoreDoc>,
    pub weight: f64,
    pub last_benchmark_ms: u64,
    pub flags: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ScoreDoc {
    pub upload_bytes_per_s: f64,
    pub download_bytes_per_s: f64,
    pub latency_ms: f64,
    pub success_rate: f64,
    pub capacity_bytes: u64,
    pub benchmarks: u32,
    pub shared_ip: u32,
    pub round: f64,
    pub ema: f64,
}

fn miner_doc(m: &MinerInfo) -> MinerDoc {
    MinerDoc {
        uid: m.uid,
        hotkey: m.hotkey.clone(),
        ip: m.ip.clone(),
        axon: m.axon.clone(),
        relay: m.relay.clone(),
        reachable: m.reachable,
        memory_free: m.memory_free,
        score: m.score.as_ref().map(|s| ScoreDoc {
            upload_bytes_per_s: s.upload_bytes_per_s,
            download_bytes_per_s: s.download_bytes_per_s,
            latency_ms: s.latency_ms,
            success_rate: s.success_rate,
            capacity_bytes: s.capacity_bytes,
            benchmarks: s.benchmarks,
            shared_ip: s.shared_ip,
            round: s.round,
            ema: s.ema,
        }),
        weight: m.weight,
        last_benchmark_ms: m.last_benchmark_ms,
        flags: m.flags.clone(),
    }
}

pub fn sort_miners(list: &mut MinerList, sort: MinerSort) {
    let ema = |m: &MinerInfo| m.score.as_ref().map_or(0.0, |s| s.ema);
    match sort {
        MinerSort::Uid => list.miners.sort_by_key(|m| m.uid),
        MinerSort::Score => list.miners.sort_by(|a, b| ema(b).total_cmp(&ema(a))),
        MinerSort::Weight => list.miners.sort_by(|a, b| b.weight.total_cmp(&a.weight)),
    }
}

pub fn miners_table(list: &MinerList, now: u64, width: usize) -> String {
    let mut t = Table::new(&[
        ("uid", false, true),
        ("hotkey", true, false),
        ("ip", false, false),
        ("up", false, true),
        ("down", false, true),
        ("lat ms", false, true),
        ("ok", false, true),
        ("ema", false, true),
        ("weight", false, true),
        ("benchmarked", false, false),
        ("flags", true, false),
    ]);
    for m in &list.miners {
        let s = m.score.unwrap_or_default();
        t.row(vec![
            m.uid.to_string(),
            m.hotkey.clone(),
            m.ip.clone(),
            rate(s.upload_bytes_per_s),
            rate(s.download_bytes_per_s),
            if s.latency_ms > 0.0 {
                format!("{:.1}", s.latency_ms)
            } else {
                "-".into()
            },
            if s.benchmarks > 0 {
                format!("{:.0}%", s.success_rate * 100.0)
            } else {
                "-".into()
            },
            format!("{:.4}", s.ema),
            format!("{:.4}", m.weight),
            ago(m.last_benchmark_ms, now),
            m.flags.join(", "),
        ]);
    }
    t.render(width)
}

/// `mrctl weights --json`.
#[derive(Debug, Serialize)]
pub struct WeightsDoc {
    pub schema_version: u32,
    pub current_block: u64,
    pub last_set_block: u64,
    pub next_allowed_block: u64,
    pub interval_blocks: u64,
    pub commit_reveal: bool,
    pub entries: Vec<WeightEntryDoc>,
    pub history: Vec<WeightSetDoc>,
}

#[derive(Debug, Serialize)]
pub struct WeightEntryDoc {
    pub uid: u32,
    pub hotkey: String,
    pub ema: f64,
    pub weight: f64,
    pub weight_u16: u32,
}

#[derive(Debug, Serialize)]
pub struct WeightSetDoc {
    pub block: u64,
    pub at_ms: u64,
    pub ok: bool,
    pub error: String,
    pub kind: String,
    pub uids: Vec<u32>,
    pub weights: Vec<u32>,
}

fn weights_doc(w: &Weights) -> WeightsDoc {
    WeightsDoc {
        schema_version: SCHEMA_VERSION,
        current_block: w.current_block,
        last_set_block: w.last_set_block,
        next_allowed_block: w.next_allowed_block,
        interval_blocks: w.interval_blocks,
        commit_reveal: w.commit_reveal,
        entries: w
            .entries
            .iter()
            .map(|e| WeightEntryDoc {
                uid: e.uid,
                hotkey: e.hotkey.clone(),
                ema: e.ema,
                weight: e.weight,
                weight_u16: e.weight_u16,
            })
            .collect(),
        history: w
            .history
            .iter()
            .map(|h| WeightSetDoc {
                block: h.block,
                at_ms: h.at_ms,
                ok: h.ok,
                error: h.error.clone(),
                kind: h.kind.clone(),
                uids: h.uids.clone(),
                weights: h.weights.clone(),
            })
            .collect(),
    }
}

pub fn weights_text(w: &Weights, now: u64, width: usize) -> String {
    let mut out = format!(
        "block {}: last set at {}, next allowed at {}, every {} blocks{}\n\n",
        w.current_block,
        if w.last_set_block == 0 {
            "never".to_string()
        } else {
            w.last_set_block.to_string()
        },
        w.next_allowed_block,
        w.interval_blocks,
        if w.commit_reveal {
            " (commit-reveal)"
        } else {
            ""
        }
    );
    let mut t = Table::new(&[
        ("uid", false, true),
        ("hotkey", true, false),
        ("ema", false, true),
        ("weight", false, true),
        ("u16", false, true),
    ]);
    for e in &w.entries {
        t.row(vec![
            e.uid.to_string(),
            e.hotkey.clone(),
            format!("{:.4}", e.ema),
            format!("{:.4}", e.weight),
            e.weight_u16.to_string(),
        ]);
    }
    out.push_str(&t.render(width));
    if !w.history.is_empty() {
        out.push_str("\nhistory (newest first)\n");
        let mut h = Table::new(&[
            ("block", false, true),
            ("when", false, false),
            ("kind", false, false),
            ("result", true, false),
        ]);
        for s in &w.history {
            h.row(vec![
                s.block.to_string(),
                ago(s.at_ms, now),
                s.kind.clone(),
                if s.ok {
                    format!("ok, {} uids", s.uids.len())
                } else {
                    format!("failed: {}", s.error)
                },
            ]);
        }
        out.push_str(&h.render(width));
    }
    out
}

/// `mrctl jobs --json`.
#[derive(Debug, Serialize)]
pub struct JobsDoc {
    pub schema_version: u32,
    pub jobs: Vec<JobDoc>,
}

#[derive(Debug, Serialize)]
pub struct JobDoc {
    pub job_id: u64,
    pub name: String,
    pub state: &'static str,
    pub reason: String,
    pub world_size: u32,
    pub peers: Vec<String>,
    pub miners: Vec<JobMinerDoc>,
    pub elements: u64,
    pub dtype: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub bytes_per_s: f64,
    pub created_at_ms: u64,
    pub finished_at_ms: u64,
    pub benchmark: bool,
    /// Live-job verification: sampled blocks recomputed by the validator, those that did not
    /// match, and the verdict ("" nothing checked yet, "ok", "corrupted: ...", "peer flagged: ...").
    pub samples_checked: u64,
    pub samples_failed: u64,
    pub verdict: String,
}

pub use mrctl::tui::ui::fmt::verify_cell;

#[derive(Debug, Serialize)]
pub struct JobMinerDoc {
    pub uid: u32,
    pub hotkey: String,
    pub address: String,
    /// A spare reserved for failover, not one of the job's own miners (yet).
    pub spare: bool,
}

fn jobs_doc(l: &JobList) -> JobsDoc {
    JobsDoc {
        schema_version: SCHEMA_VERSION,
        jobs: l
            .jobs
            .iter()
            .map(|j| JobDoc {
                job_id: j.job_id,
                name: j.name.clone(),
                state: job_state(j.state),
                reason: j.reason.clone(),
                world_size: j.world_size,
                peers: j.peers.clone(),
                miners: j
                    .miners
                    .iter()
                    .map(|m| JobMinerDoc {
                        uid: m.uid,
                        hotkey: m.hotkey.clone(),
                        address: m.address.clone(),
                        spare: m.spare,
                    })
                    .collect(),
                elements: j.elements,
                dtype: j.dtype,
                bytes_in: j.bytes_in,
                bytes_out: j.bytes_out,
                bytes_per_s: j.bytes_per_s,
                created_at_ms: j.created_at_ms,
                finished_at_ms: j.finished_at_ms,
                benchmark: j.benchmark,
                samples_checked: j.samples_checked,
                samples_failed: j.samples_failed,
                verdict: j.verdict.clone(),
            })
            .collect(),
    }
}

fn dtype(d: u32) -> &'static str {
    match d {
        1 => "f32",
        2 => "f16",
        3 => "bf16",
        _ => "-",
    }
}

pub fn jobs_table(l: &JobList, now: u64, width: usize) -> String {
    let mut t = Table::new(&[
        ("job", false, true),
        ("name", true, false),
        ("state", false, false),
        ("peers", false, true),
        ("miners", true, false),
        ("size", false, true),
        ("created", false, false),
        ("verified", false, false),
        ("reason", true, false),
    ]);
    for j in &l.jobs {
        let size = j.elements
            * match j.dtype {
                2 | 3 => 2,
                _ => 4,
            };
        t.row(vec![
            j.job_id.to_string(),
            if j.name.is_empty() {
                "-".into()
            } else {
                j.name.clone()
            },
            job_state(j.state).into(),
            j.world_size.to_string(),
            j.miners
                .iter()
                .map(|m| {
                    let spare = if m.spare { " (spare)" } else { "" };
                    format!("uid {}{spare}", m.uid)
                })
                .collect::<Vec<_>>()
                .join(" "),
            format!("{} {}", bytes(size), dtype(j.dtype)),
            ago(j.created_at_ms, now),
            verify_cell(j),
            if j.reason.is_empty() && j.samples_failed > 0 {
                j.verdict.clone()
            } else {
                j.reason.clone()
            },
        ]);
    }
    t.render(width)
}

async fn conn(c: &ConnectArgs) -> Result<client::Connection, CmdError> {
    Ok(client::connect(c).await?)
}

pub async fn status(c: &ConnectArgs, a: &JsonArg) -> CmdResult {
    let conn = conn(c).await?;
    if a.json {
        print_json(&StatusDoc::from(&conn.status))
    } else {
        print!("{}", status_text(&conn.status, now_ms()));
        Ok(())
    }
}

pub async fn miners(c: &ConnectArgs, a: &MinersArgs) -> CmdResult {
    let conn = conn(c).await?;
    let mut list = conn
        .client
        .clone()
        .list_miners(ListMinersRequest {})
        .await?
        .into_inner();
    sort_miners(&mut list, a.sort);
    if a.json {
        print_json(&MinersDoc {
            schema_version: SCHEMA_VERSION,
            miners: list.miners.iter().map(miner_doc).collect(),
        })
    } else {
        print!("{}", miners_table(&list, now_ms(), term_width()));
        Ok(())
    }
}

pub async fn weights(c: &ConnectArgs, a: &WeightsArgs) -> CmdResult {
    let conn = conn(c).await?;
    let w = conn
        .client
        .clone()
        .get_weights(GetWeightsRequest { history: a.history })
        .await?
        .into_inner();
    if a.json {
        print_json(&weights_doc(&w))
    } else {
        print!("{}", weights_text(&w, now_ms(), term_width()));
        Ok(())
    }
}

pub async fn jobs(c: &ConnectArgs, a: &JobsArgs) -> CmdResult {
    let conn = conn(c).await?;
    let l = conn
        .client
        .clone()
        .list_jobs(ListJobsRequest { recent: a.recent })
        .await?
        .into_inner();
    if a.json {
        print_json(&jobs_doc(&l))
    } else if l.jobs.is_empty() {
        println!("no jobs");
        Ok(())
    } else {
        print!("{}", jobs_table(&l, now_ms(), term_width()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mr_proto::v1::{
        JobMiner, JobSummary, ScoreParts, ValidatorSummary, WeightEntry, WeightSet,
    };

    const NOW: u64 = 1_764_115_262_000;
    const HK: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    fn miners() -> MinerList {
        MinerList {
            miners: vec![
                MinerInfo {
                    uid: 2,
                    hotkey: HK.into(),
                    ip: "127.0.0.3".into(),
                    axon: "127.0.0.3:8091".into(),
                    relay: "127.0.0.3:9000".into(),
                    reachable: true,
                    memory_free: 1 << 30,
                    score: Some(ScoreParts {
                        upload_bytes_per_s: 400.0 * 1048576.0,
                        download_bytes_per_s: 380.0 * 1048576.0,
                        latency_ms: 1.25,
                        success_rate: 1.0,
                        capacity_bytes: 1 << 30,
                        benchmarks: 4,
                        shared_ip: 1,
                        round: 0.5,
                        ema: 0.42,
                    }),
                    weight: 0.6,
                    last_benchmark_ms: NOW - 95_000,
                    flags: vec![],
                },
                MinerInfo {
                    uid: 1,
                    hotkey: "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty".into(),
                    ip: "127.0.0.4".into(),
                    reachable: false,
                    flags: vec!["unreachable".into(), "no_benchmark".into()],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn miners_table_snapshot() {
        let mut m = miners();
        sort_miners(&mut m, MinerSort::Score);
        insta::assert_snapshot!("miners_wide", miners_table(&m, NOW, 160));
        insta::assert_snapshot!("miners_narrow", miners_table(&m, NOW, 90));
    }

    #[test]
    fn status_snapshot() {
        let s = Status {
            role: Role::Validator as i32,
            version: "0.1.0".into(),
            hotkey: HK.into(),
            uid: Some(0),
            netuid: 2,
            chain_endpoint: "ws://127.0.0.1:9944".into(),
            last_block: 120,
            last_block_at_ms: NOW - 3000,
            uptime_s: 3725,
            jobs_running: 1,
            ready: true,
            pid: 4242,
            config_path: "/etc/mapreduce/config.toml".into(),
            admin_endpoint: "/run/mapreduce/validator.sock".into(),
            summary: Some(Summary::Validator(ValidatorSummary {
                axon_address: "127.0.0.2:8091".into(),
                miners_total: 3,
                miners_reachable: 2,
                jobs_running: 1,
                benchmarks_total: 12,
                bots_known: 2,
                last_weights_block: 100,
                next_weights_block: 200,
            })),
        };
        insta::assert_snapshot!("status_validator", status_text(&s, NOW));
        let doc = serde_json::to_value(StatusDoc::from(&s)).expect("json");
        assert_eq!(doc["role"], "validator");
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["validator"]["miners_total"], 3);
        assert!(doc["miner"].is_null());
    }

    #[test]
    fn weights_and_jobs_snapshots() {
        let w = Weights {
            entries: vec![WeightEntry {
                uid: 2,
                hotkey: HK.into(),
                ema: 0.42,
                weight: 0.6,
                weight_u16: 65535,
            }],
            current_block: 130,
            last_set_block: 100,
            next_allowed_block: 200,
            interval_blocks: 100,
            commit_reveal: false,
            history: vec![
                WeightSet {
                    block: 100,
                    at_ms: NOW - 60_000,
                    ok: true,
                    kind: "set".into(),
                    uids: vec![1, 2],
                    weights: vec![0, 65535],
                    ..Default::default()
                },
                WeightSet {
                    block: 90,
                    at_ms: NOW - 120_000,
                    ok: false,
                    error: "rate limited until block 100".into(),
                    kind: "set".into(),
                    ..Default::default()
                },
            ],
        };
        insta::assert_snapshot!("weights", weights_text(&w, NOW, 100));
        let j = JobList {
            jobs: vec![JobSummary {
                job_id: 7,
                name: "demo".into(),
                state: JobState::Done as i32,
                world_size: 3,
                peers: vec![HK.into(); 3],
                miners: vec![
                    JobMiner {
                        uid: 1,
                        hotkey: HK.into(),
                        address: "127.0.0.3:9000".into(),
                        spare: false,
                    },
                    JobMiner {
                        uid: 4,
                        hotkey: HK.into(),
                        address: "127.0.0.4:9000".into(),
                        spare: true,
                    },
                ],
                elements: 4 << 20,
                dtype: 1,
                created_at_ms: NOW - 30_000,
                samples_checked: 397,
                ..Default::default()
            }],
        };
        insta::assert_snapshot!("jobs", jobs_table(&j, NOW, 100));
        let mut bad = j.jobs[0].clone();
        bad.samples_failed = 1;
        bad.verdict = "corrupted: miner M shard 2 op 0 block 53".into();
        assert_eq!(verify_cell(&bad), "CORRUPTED (1/397)");
        assert_eq!(verify_cell(&JobSummary::default()), "-");
        let doc = serde_json::to_value(jobs_doc(&j)).expect("json");
        assert_eq!(doc["jobs"][0]["state"], "done");
        assert_eq!(doc["jobs"][0]["miners"][0]["spare"], false);
        assert_eq!(doc["jobs"][0]["miners"][1]["spare"], true);
        assert_eq!(doc["jobs"][0]["samples_checked"], 397);
        assert_eq!(doc["jobs"][0]["verdict"], "");
    }
}
