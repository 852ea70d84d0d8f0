//! The configuration structs, one per TOML section, with their defaults.
//!
//! Every key here is documented, with its default, in `config.toml.example` at the repository root;
//! a test keeps the two in step.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The whole configuration of a daemon or of `mrctl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Subnet id on the chain (the original Map Reduce subnet is 10).
    pub netuid: u16,
    pub wallet: WalletConfig,
    pub subtensor: SubtensorConfig,
    pub axon: AxonConfig,
    pub relay: RelayConfig,
    pub miner: MinerConfig,
    pub validator: ValidatorConfig,
    pub bench: BenchConfig,
    pub admin: AdminConfig,
    pub logging: LoggingConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            netuid: 10,
            wallet: WalletConfig::default(),
            subtensor: SubtensorConfig::default(),
            axon: AxonConfig::default(),
            relay: RelayConfig::default(),
            miner: MinerConfig::default(),
            validator: ValidatorConfig::default(),
            bench: BenchConfig::default(),
            admin: AdminConfig::default(),
            logging: LoggingConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Names of the TOML sections, used to map `MR_SECTION_KEY` variables onto `section.key`.
pub const SECTIONS: &[&str] = &[
    "wallet",
    "subtensor",
    "axon",
    "relay",
    "miner",
    "validator",
    "bench",
    "admin",
    "logging",
    "metrics",
];

/// `[wallet]`: which Bittensor wallet and hotkey this process uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Wallet (coldkey) name: the folder under `path`.
    pub name: String,
    /// Hotkey name: the file under `<path>/<name>/hotkeys/`.
    pub hotkey: String,
    /// Folder holding wallets; a leading `~` is expanded when the config is loaded.
    pub path: PathBuf,
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            name: "default".into(),
            hotkey: "default".into(),
            path: PathBuf::from("~/.bittensor/wallets"),
        }
    }
}

/// `[subtensor]`: which chain to talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubtensorConfig {
    /// `finney`, `test`, `local`, `archive`, or a ws:// / wss:// URL.
    pub network: String,
    /// Explicit endpoint; wins over `network` when set.
    pub chain_endpoint: Option<String>,
    /// Bound, in seconds, on every chain read and on submitting an extrinsic.
    pub call_timeout_secs: u64,
    /// Bound, in seconds, on waiting for a submitted extrinsic to be included in a block.
    pub inclusion_timeout_secs: u64,
    /// Reconnect when no new block arrives for this many seconds (0 disables the watchdog).
    pub watchdog_secs: u64,
}

impl Default for SubtensorConfig {
    fn default() -> Self {
        SubtensorConfig {
            network: "finney".into(),
            chain_endpoint: None,
            call_timeout_secs: 30,
            inclusion_timeout_secs: 120,
            watchdog_secs: 120,
        }
    }
}

/// The well-known networks and their endpoints, as the Bittensor SDK names them.
pub const NETWORKS: &[(&str, &str)] = &[
    ("finney", "wss://entrypoint-finney.opentensor.ai:443"),
    ("test", "wss://test.finney.opentensor.ai:443"),
    ("archive", "wss://archive.chain.opentensor.ai:443"),
    ("local", "ws://127.0.0.1:9944"),
];

impl SubtensorConfig {
    /// The websocket URL to connect to: `chain_endpoint` if set, else the network's endpoint,
    /// else `network` itself (a URL; validated at load time).
    pub fn endpoint(&self) -> String {
        if let Some(ep) = &self.chain_endpoint {
            return ep.clone();
        }
        NETWORKS
            .iter()
            .find(|(name, _)| *name == self.network)
            .map(|(_, url)| (*url).to_string())
            .unwrap_or_else(|| self.network.clone())
    }
}

/// `[axon]`: the control-plane (gRPC) listener and what is advertised on chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AxonConfig {
    pub port: u16,
    pub ip: IpAddr,
    /// Address advertised with serve_axon; detected when unset.
    pub external_ip: Option<IpAddr>,
    /// Port advertised with serve_axon; `port` when unset.
    pub external_port: Option<u16>,
    /// Largest signed request body accepted, in KiB.
    pub max_request_kib: u32,
    /// Calls per second allowed per caller hotkey.
    pub rate_per_sec: f64,
    /// Calls a hotkey may make at once before the rate applies.
    pub rate_burst: u32,
}

impl Default for AxonConfig {
    fn default() -> Self {
        AxonConfig {
            port: 8091,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            external_ip: None,
            external_port: None,
            max_request_kib: 1024,
            rate_per_sec: 20.0,
            rate_burst: 40,
        }
    }
}

/// `[relay]`: the miner's data-plane listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub port: u16,
    pub ip: IpAddr,
    /// Address peers are told to connect to; `axon.external_ip` when unset.
    pub external_ip: Option<IpAddr>,
    /// Blocks of each job held in memory at once (bounds memory per job whatever the tensor size).
    pub window_blocks: u32,
    /// Block size in KiB that jobs default to. 256 KiB: a relay can reduce block k only once every
    /// peer has sent it, so each end of an operation costs about P x block / per-peer rate
    /// (1 MiB blocks cost 0.3 s of 4.2 s at P = 8 over 200 Mbit/s peer links, docs/performance.md).
    pub block_kib: u32,
    /// Memory budget for all jobs; a job that would exceed it is refused.
    pub max_memory_mib: u64,
    /// Validator hotkeys (ss58) whose job tickets this relay accepts, besides the chain's validators.
    pub trust: Vec<String>,
    /// Seconds a new connection has to send its whole handshake; idle and trickling
    /// (slowloris) connections are closed after it.
    pub handshake_timeout_secs: u64,
    /// Connections one remote address may hold open at once.
    pub max_conns_per_ip: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            port: 9000,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            external_ip: None,
            window_blocks: 8,
            block_kib: 256,
            max_memory_mib: 1024,
            trust: Vec::new(),
            handshake_timeout_secs: 10,
            max_conns_per_ip: 256,
        }
    }
}

/// `[miner]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Stake (in TAO) a validator needs before this miner takes its requests (the original used 3000).
    pub min_validator_stake: f64,
    /// Seconds an accepted job's reservation lives unless released before (the original's session_time).
    pub session_time_secs: u64,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            min_validator_stake: 3000.0,
            session_time_secs: 300,
        }
    }
}

/// `[validator]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidatorConfig {
    /// Hotkeys (ss58) of training peers allowed to request jobs; `"*"` allows anyone.
    pub clients: Vec<String>,
    /// Hotkeys (ss58) of this validator's benchmark bots.
    pub benchmark_hotkeys: Vec<String>,
    /// Fraction of blocks per shard that peers of real jobs report for checking.
    pub sample_rate: f64,
    /// Largest tensor a job may carry, in MiB (the original's `max_bandwidth`, 10 GiB).
    pub max_job_mib: u64,
    /// Blocks between metagraph syncs (and miner status polls).
    pub sync_interval_blocks: u64,
    /// Seconds a miner has to answer a status poll or a job request.
    pub miner_timeout_secs: u64,
    /// Miners per job; 0 means one per peer, as the original did.
    pub miners_per_job: u32,
    /// Spare miners reserved per job when capacity allows (0 to 8): a spare takes over the shard
    /// of a miner that dies or stalls mid-job. The validator's decision, so it lives here.
    pub spares: u32,
    /// Seconds a job lives after its last renewal by its peers (its ticket: after the start).
    pub job_ttl_secs: u64,
    /// SQLite database of miners and jobs; `~/.mapreduce/validator-<hotkey ss58>.sqlite` when unset.
    pub db: Option<PathBuf>,
    /// Weight of a new round in the score's moving average (0 < alpha <= 1).
    pub ema_alpha: f64,
    /// Blocks between two scoring rounds and weight sets (within the chain's weights rate limit).
    pub weights_interval_blocks: u64,
    /// Seconds of benchmarks a round scores (success rate, throughput, latency, wrong results).
    pub score_window_secs: u64,
    /// Weight of verified upload throughput in the round score.
    pub score_upload: f64,
    /// Weight of verified download throughput in the round score.
    pub score_download: f64,
    /// Weight of latency (lower is better) in the round score.
    pub score_latency: f64,
    /// Weight of the miner's reported free relay memory in the round score.
    pub score_capacity: f64,
    /// Miners tried (AcceptJob) for one benchmark request before the request fails.
    pub benchmark_retries: u32,
    /// Seconds a bot has to report a benchmark; later it counts as the miner's failure.
    pub benchmark_report_secs: u64,
    /// Largest benchmark tensor a bot may ask for, in MiB.
    pub max_benchmark_mib: u64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            clients: Vec::new(),
            benchmark_hotkeys: Vec::new(),
            sample_rate: 0.01,
            max_job_mib: 10 * 1024,
            sync_interval_blocks: 10,
            miner_timeout_secs: 5,
            miners_per_job: 0,
            spares: 1,
            job_ttl_secs: 300,
            db: None,
            ema_alpha: 0.1,
            weights_interval_blocks: 100,
            score_window_secs: 3600,
            score_upload: 0.4,
            score_download: 0.4,
            score_latency: 0.1,
            score_capacity: 0.1,
            benchmark_retries: 3,
            benchmark_report_secs: 300,
            max_benchmark_mib: 1024,
        }
    }
}

/// `[bench]`: the benchmark bot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchConfig {
    /// Tensor size of a benchmark, in MiB (the original used 50).
    pub mib: u64,
    /// Virtual peers a bot plays in one benchmark.
    pub peers: u32,
    /// The validator's control-plane address (`host:port`); discovered from the chain when unset.
    pub validator: Option<String>,
    /// The validator's hotkey (ss58); found in the metagraph by its axon address when unset.
    pub validator_hotkey: Option<String>,
    /// Seconds between the end of one scheduled benchmark and the next request.
    pub interval_secs: u64,
    /// First wait after a failure to get or report a benchmark, in seconds (doubles up to the max).
    pub backoff_initial_secs: u64,
    /// Longest wait between retries, in seconds.
    pub backoff_max_secs: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            mib: 50,
            peers: 3,
            validator: None,
            validator_hotkey: None,
            interval_secs: 60,
            backoff_initial_secs: 1,
            backoff_max_secs: 120,
        }
    }
}

/// `[admin]`: the operator API that `mrctl` talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Unix socket; `$XDG_RUNTIME_DIR/mapreduce/<role>.sock` (or `/run/mapreduce/` as root) when unset.
    pub socket: Option<PathBuf>,
    /// TCP address instead of the socket, e.g. `127.0.0.1:7070`.
    pub addr: Option<SocketAddr>,
    /// Allow `addr` to be a non-loopback address.
    pub allow_remote: bool,
    /// Bearer token file (created 0600); beside the socket when unset.
    pub token_file: Option<PathBuf>,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub debug: bool,
    pub trace: bool,
    /// One JSON object per line instead of human-readable lines.
    pub json: bool,
    /// Also write daily-rotated log files here.
    pub logging_dir: Option<PathBuf>,
    /// Rotated files kept in `logging_dir`.
    pub max_files: Option<usize>,
}

/// `[metrics]`: the Prometheus exporter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub addr: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: false,
            addr: SocketAddr::from(([127, 0, 0, 1], 9616)),
        }
    }
}
