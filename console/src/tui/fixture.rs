//! A deterministic console state built from the admin API's own messages, for the snapshot tests and
//! the frame benchmark: a validator with `miners` miners, bots, jobs, config and logs, `seconds` of
//! per-second metrics with one flow per miner, and a miner daemon that is disconnected.

use super::action::{Action, DaemonEvent};
use super::app::update;
use super::state::App;
use mr_proto::v1::{
    BenchEvent, BenchPhase, BenchResult, BotState, BotStatus, ConfigDocument, ConfigEntry, Flow,
    JobEvent, JobMiner, JobState, JobSummary, LogLine, MetricsSample, MinerInfo, MinerList, Role,
    ScoreParts, Status, ValidatorSummary, WeightEntry, WeightSet, Weights, status::Summary,
};

/// The fixture's wall clock (unix ms).
pub const NOW_MS: u64 = 1_764_000_000_000;

/// Deterministic pseudo-random numbers (xorshift), so fixtures never change between runs.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A fake but well-formed ss58-looking hotkey for uid `n`.
pub fn hotkey(n: u32) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((u64::from(n) + 1) * 0x1000_0001));
    let mut s = String::from("5");
    for _ in 0..47 {
        s.push(ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char);
    }
    s
}

pub fn validator_status() -> Status {
    Status {
        role: Role::Validator as i32,
        version: "0.1.0".to_string(),
        hotkey: hotkey(1000),
        uid: Some(0),
        netuid: 10,
        chain_endpoint: "ws://127.0.0.1:9944".to_string(),
        last_block: 1234,
        last_block_at_ms: NOW_MS - 4_000,
        uptime_s: 3 * 3600 + 25 * 60 + 7,
        jobs_running: 1,
        ready: true,
        pid: 4242,
        config_path: "/etc/mapreduce/validator.toml".to_string(),
        admin_endpoint: "/run/user/1000/mapreduce/validator.sock".to_string(),
        summary: Some(Summary::Validator(ValidatorSummary {
            axon_address: "127.0.0.2:8091".to_string(),
            miners_total: 3,
            miners_reachable: 2,
            jobs_running: 1,
            benchmarks_total: 57,
            bots_known: 2,
            last_weights_block: 1200,
            next_weights_block: 1300,
        })),
    }
}

fn miners(n: u32) -> MinerList {
    let mut rng = Rng(7);
    let mut weights: Vec<f64> = (0..n).map(|i| (n - i) as f64).collect();
    let total: f64 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    MinerList {
        miners: (0..n)
            .map(|uid| {
                let up = 50e6 + rng.below(400) as f64 * 1e6;
                let mut flags = Vec::new();
                if uid == 2 {
                    flags.push("wrong_result: block 3 differs".to_string());
                }
                MinerInfo {
                    uid: uid + 1,
                    hotkey: hotkey(uid + 1),
                    ip: format!("127.0.0.{}", uid + 3),
                    axon: format!("127.0.0.{}:8091", uid + 3),
                    relay: format!("127.0.0.{}:9000", uid + 3),
                    reachable: uid != 1,
                    memory_free: 8 << 30,
                    score: Some(ScoreParts {
                        upload_bytes_per_s: up,
                        download_bytes_per_s: up * 0.9,
                        latency_ms: 1.0 + rng.below(40) as f64 / 10.0,
                        success_rate: if uid == 2 { 0.5 } else { 1.0 },
                        capacity_bytes: 8 << 30,
                        benchmarks: 12,
                        shared_ip: 1,
                        round: if uid == 2 { 0.0 } else { weights[uid as usize] },
                        ema: weights[uid as usize],
                    }),
                    weight: weights[uid as usize],
                    last_benchmark_ms: NOW_MS - 60_000 - u64::from(uid) * 7_000,
                    flags,
                }
            })
            .collect(),
    }
}

fn weights(list: &MinerList) -> Weights {
    let uids: Vec<u32> = list.miners.iter().map(|m| m.uid).collect();
    let history = (0..12u64)
        .map(|k| WeightSet {
            block: 1200 - k * 100,
            at_ms: NOW_MS - 120_000 - k * 1_200_000,
            ok: k != 3,
            error: if k == 3 {
                "rate limited: allowed at block 900".to_string()
            } else {
                String::new()
            },
            kind: "set".to_string(),
            uids: uids.clone(),
            weights: list
                .miners
                .iter()
                .map(|m| ((m.weight * (1.0 + k as f64 / 20.0)).min(1.0) * 65535.0) as u32)
                .collect(),
        })
        .collect();
    Weights {
        entries: list
            .miners
            .iter()
            .map(|m| WeightEntry {
                uid: m.uid,
                hotkey: m.hotkey.clone(),
                ema: m.weight,
                weight: m.weight,
                weight_u16: (m.weight * 65535.0) as u32,
            })
            .collect(),
        current_block: 1234,
        last_set_block: 1200,
        next_allowed_block: 1300,
        interval_blocks: 100,
        commit_reveal: false,
        history,
    }
}

fn bots() -> Vec<BotStatus> {
    vec![
        BotStatus {
            hotkey: hotkey(2000),
            state: BotState::Running as i32,
            miner_uid: Some(1),
            miner_hotkey: hotkey(1),
            progress: 0.62,
            since_ms: NOW_MS - 3_000,
            last_bytes_per_s: 310e6,
            last_verdict: "ok".to_string(),
            last_error: String::new(),
            benchmarks_ok: 30,
            benchmarks_failed: 1,
            next_attempt_ms: 0,
        },
        BotStatus {
            hotkey: hotkey(2001),
            state: BotState::BackingOff as i32,
            miner_uid: None,
            miner_hotkey: String::new(),
            progress: 0.0,
            since_ms: NOW_MS - 20_000,
            last_bytes_per_s: 0.0,
            last_verdict: "wrong_result: block 3 differs".to_string(),
            last_error: "validator refused: rate limited".to_string(),
            benchmarks_ok: 25,
            benchmarks_failed: 4,
            next_attempt_ms: NOW_MS + 10_000,
        },
    ]
}

fn bench_events() -> Vec<BenchEvent> {
    let mut events = Vec::new();
    for (uid, phase, done) in [
        (1u32, BenchPhase::AllReduce, 40u64),
        (2, BenchPhase::Done, 64),
        (3, BenchPhase::Failed, 12),
    ] {
        let result = match phase {
            BenchPhase::Done => Some(BenchResult {
                outcome: 1,
                reason: String::new(),
                upload_bytes_per_s: 250e6,
                download_bytes_per_s: 240e6,
                broadcast_bytes_per_s: 260e6,
                latency_ms: 2.5,
                bytes: 64 << 20,
                score: 0.4,
            }),
            BenchPhase::Failed => Some(BenchResult {
                outcome: 2,
                reason: "wrong_result: block 3 differs".to_string(),
                ..Default::default()
            }),
            _ => None,
        };
        events.push(BenchEvent {
            run_id: 7,
            miner_uid: uid,
            miner_hotkey: hotkey(uid),
            bot_hotkey: hotkey(2000),
            phase: phase as i32,
            bytes_done: done << 20,
            bytes_total: 64 << 20,
            bytes_per_s: if phase == BenchPhase::AllReduce {
                280e6
            } else {
                0.0
            },
            result,
            run_finished: false,
        });
    }
    events
}

fn jobs() -> Vec<JobSummary> {
    (0..6u64)
        .map(|i| JobSummary {
            job_id: 100 + i,
            name: if i % 3 == 0 {
                "bench".to_string()
            } else {
                format!("train-{i}")
            },
            state: match i {
                0 => JobState::Running,
                1 => JobState::Pending,
                4 => JobState::Failed,
                _ => JobState::Done,
            } as i32,
            reason: if i == 4 {
                "miner uid 3 closed the connection".to_string()
            } else {
                String::new()
            },
            world_size: 3,
            peers: (0..3).map(|r| hotkey(3000 + r)).collect(),
            miners: (1..=3)
                .map(|uid| JobMiner {
                    uid,
                    hotkey: hotkey(uid),
                    address: format!("127.0.0.{}:9000", uid + 2),
                    spare: false,
                })
                .collect(),
            elements: 16 << 20,
            dtype: 1,
            bytes_in: (64 << 20) * (i + 1),
            bytes_out: (64 << 20) * (i + 1),
            bytes_per_s: if i == 0 { 420e6 } else { 0.0 },
            created_at_ms: NOW_MS - 30_000 - i * 90_000,
            finished_at_ms: if i < 2 {
                0
            } else {
                NOW_MS - 20_000 - i * 90_000
            },
            benchmark: i % 3 == 0,
            // Live-job verification of the training jobs: one clean, one caught.
            samples_checked: match i {
                2 => 397,
                5 => 384,
                _ => 0,
            },
            samples_failed: if i == 5 { 1 } else { 0 },
            verdict: match i {
                2 => "ok".to_string(),
                5 => "corrupted: miner uid 2 shard 1 op 0 block 53".to_string(),
                _ => String::new(),
            },
        })
        .collect()
}

fn config() -> ConfigDocument {
    let entry = |key: &str, value: &str, origin: &str, live: bool, doc: &str| ConfigEntry {
        key: key.to_string(),
        value: value.to_string(),
        origin: origin.to_string(),
        live,
        doc: doc.to_string(),
    };
    ConfigDocument {
        toml: String::new(),
        path: "/etc/mapreduce/validator.toml".to_string(),
        entries: vec![
            entry(
                "admin.socket",
                "\"\"",
                "default",
                false,
                "Unix socket of the admin API.",
            ),
            entry(
                "axon.port",
                "8091",
                "file /etc/mapreduce/validator.toml",
                false,
                "Control-plane port.",
            ),
            entry("logging.debug", "false", "default", true, "Debug logging."),
            entry("netuid", "10", "flag --netuid", false, "Subnet."),
            entry(
                "subtensor.network",
                "\"local\"",
                "env MR_SUBTENSOR_NETWORK",
                false,
                "Chain to use.",
            ),
            entry(
                "validator.ema_alpha",
                "0.1",
                "default",
                true,
                "Weight of the newest round in the score EMA.",
            ),
            entry(
                "validator.miners_per_job",
                "3",
                "default",
                true,
                "Miners a job gets.",
            ),
            entry(
                "validator.weights_interval_blocks",
                "100",
                "default",
                true,
                "Blocks between weight sets.",
            ),
        ],
        ..Default::default()
    }
}

fn logs() -> Vec<LogLine> {
    let messages = [
        (
            "info",
            "mapreduce::validator",
            "metagraph synced",
            "{\"miners\":3}",
        ),
        (
            "debug",
            "mapreduce::control",
            "RequestJob from peer",
            "{\"peers\":3}",
        ),
        (
            "warn",
            "mapreduce::validator",
            "miner unreachable",
            "{\"uid\":2}",
        ),
        (
            "info",
            "mapreduce::bench",
            "benchmark done",
            "{\"uid\":1,\"mib_s\":310}",
        ),
        (
            "error",
            "mapreduce::chain",
            "set_weights failed: rate limited",
            "{}",
        ),
        ("trace", "mapreduce::relay", "frame", "{}"),
    ];
    (0..40u64)
        .map(|i| {
            let (level, target, message, fields) = messages[i as usize % messages.len()];
            LogLine {
                at_ms: NOW_MS - (40 - i) * 1_500,
                level: level.to_string(),
                target: target.to_string(),
                message: format!("{message} #{i}"),
                fields: fields.to_string(),
                history: true,
            }
        })
        .collect()
}

/// Per-second samples ending at `NOW_MS`, one flow per miner, shaped like benchmarks coming and going.
pub fn metrics(miners: u32, seconds: u64) -> Vec<MetricsSample> {
    let mut rng = Rng(99);
    (0..seconds)
        .map(|s| {
            let at_ms = NOW_MS - (seconds - 1 - s) * 1000;
            let phase = (s / 30) % 4;
            let flows: Vec<Flow> = (0..miners)
                .map(|m| {
                    let busy = phase != 3 && (s / 10 + u64::from(m)) % 3 != 0;
                    let base = if busy {
                        (m as u64 % 8 + 1) * 20_000_000
                    } else {
                        0
                    };
                    let jitter = rng.below(5_000_000);
                    Flow {
                        kind: "miner".to_string(),
                        id: hotkey(m + 1),
                        label: format!("uid {}", m + 1),
                        bytes_in: base + jitter,
                        bytes_out: base / 2 + jitter,
                    }
                })
                .collect();
            MetricsSample {
                at_ms,
                bytes_in: flows.iter().map(|f| f.bytes_in).sum(),
                bytes_out: flows.iter().map(|f| f.bytes_out).sum(),
                flows,
                jobs_running: 1,
                memory_reserved: 512 << 20,
                rss_bytes: 300 << 20,
                history: true,
            }
        })
        .collect()
}

/// The fixture console: daemon 0 a connected validator with `miners` miners and `seconds` seconds of
/// metrics, daemon 1 a miner that went away. Built through `update`, like the live console.
pub fn app(miners: u32, seconds: u64, color: bool) -> App {
    let mut app = App::new(
        vec![
            "/run/user/1000/mapreduce/validator.sock".to_string(),
            "/run/user/1000/mapreduce/miner1.sock".to_string(),
        ],
        color,
        NOW_MS,
    );
    let v = |event| Action::Daemon(0, event);
    update(
        &mut app,
        v(DaemonEvent::Connected(Box::new(validator_status()))),
    );
    let list = miners_list(miners);
    update(&mut app, v(DaemonEvent::Weights(weights(&list))));
    update(&mut app, v(DaemonEvent::Miners(list)));
    for bot in bots() {
        update(&mut app, v(DaemonEvent::Bot(bot)));
    }
    for event in bench_events() {
        update(&mut app, v(DaemonEvent::Bench(event)));
    }
    for job in jobs() {
        update(
            &mut app,
            v(DaemonEvent::Job(JobEvent {
                job: Some(job),
                initial: true,
            })),
        );
    }
    update(&mut app, v(DaemonEvent::Config(config())));
    for line in logs() {
        update(&mut app, v(DaemonEvent::Log(line)));
    }
    for sample in metrics(miners, seconds) {
        update(&mut app, v(DaemonEvent::Metrics(sample)));
    }
    update(
        &mut app,
        Action::Daemon(
            1,
            DaemonEvent::Disconnected {
                error: "connection refused".to_string(),
                retry_at_ms: NOW_MS + 4_000,
            },
        ),
    );
    app
}

fn miners_list(n: u32) -> MinerList {
    miners(n)
}
