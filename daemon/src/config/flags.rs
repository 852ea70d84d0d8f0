//! Bittensor-style command-line flags (`--wallet.name`, with `--wallet-name` aliases), turned into
//! the top configuration layer. Shared by `mrd` and `mrctl` through `#[command(flatten)]`.

use clap::{ArgAction, Args};
use figment::value::Value;
use std::net::IpAddr;
use std::path::PathBuf;

/// Flags every binary takes: config file, wallet, chain, netuid, logging.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Config file (else $MR_CONFIG, else /etc/mapreduce/config.toml, else ~/.config/mapreduce/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Wallet name (folder under --wallet.path).
    #[arg(
        long = "wallet.name",
        visible_alias = "wallet-name",
        global = true,
        value_name = "NAME"
    )]
    pub wallet_name: Option<String>,
    /// Hotkey name within the wallet.
    #[arg(
        long = "wallet.hotkey",
        visible_alias = "wallet-hotkey",
        global = true,
        value_name = "NAME"
    )]
    pub wallet_hotkey: Option<String>,
    /// Folder of wallets [default: ~/.bittensor/wallets].
    #[arg(
        long = "wallet.path",
        visible_alias = "wallet-path",
        global = true,
        value_name = "DIR"
    )]
    pub wallet_path: Option<PathBuf>,

    /// finney | test | archive | local | ws(s):// URL.
    #[arg(
        long = "subtensor.network",
        visible_alias = "subtensor-network",
        global = true,
        value_name = "NET"
    )]
    pub subtensor_network: Option<String>,
    /// Chain endpoint URL; wins over --subtensor.network.
    #[arg(
        long = "subtensor.chain_endpoint",
        visible_aliases = ["subtensor-chain-endpoint", "subtensor.chain-endpoint"],
        global = true,
        value_name = "URL"
    )]
    pub subtensor_chain_endpoint: Option<String>,

    /// Subnet id [default: 10].
    #[arg(long, global = true)]
    pub netuid: Option<u16>,

    /// Debug logging.
    #[arg(long = "logging.debug", visible_alias = "logging-debug", global = true, action = ArgAction::SetTrue)]
    pub logging_debug: bool,
    /// Trace logging (everything).
    #[arg(long = "logging.trace", visible_alias = "logging-trace", global = true, action = ArgAction::SetTrue)]
    pub logging_trace: bool,
    /// Log one JSON object per line.
    #[arg(long = "logging.json", visible_alias = "logging-json", global = true, action = ArgAction::SetTrue)]
    pub logging_json: bool,
    /// Also write rotated log files to this folder.
    #[arg(
        long = "logging.logging_dir",
        visible_aliases = ["logging-logging-dir", "logging.logging-dir"],
        global = true,
        value_name = "DIR"
    )]
    pub logging_dir: Option<PathBuf>,
}

/// Flags of the serving daemons: where to listen and what to advertise.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Control-plane (gRPC) port [default: 8091].
    #[arg(long = "axon.port", visible_alias = "axon-port", global = true)]
    pub axon_port: Option<u16>,
    /// Address the control plane binds [default: 0.0.0.0].
    #[arg(long = "axon.ip", visible_alias = "axon-ip", global = true)]
    pub axon_ip: Option<IpAddr>,
    /// Address advertised on chain.
    #[arg(long = "axon.external_ip", visible_aliases = ["axon-external-ip", "axon.external-ip"], global = true)]
    pub axon_external_ip: Option<IpAddr>,
    /// Port advertised on chain.
    #[arg(long = "axon.external_port", visible_aliases = ["axon-external-port", "axon.external-port"], global = true)]
    pub axon_external_port: Option<u16>,
    /// Data-plane (relay) port [default: 9000].
    #[arg(long = "relay.port", visible_alias = "relay-port", global = true)]
    pub relay_port: Option<u16>,
    /// Admin API unix socket [default: $XDG_RUNTIME_DIR/mapreduce/<role>.sock, /run/mapreduce as root].
    #[arg(
        long = "admin.socket",
        visible_alias = "admin-socket",
        global = true,
        value_name = "PATH"
    )]
    pub admin_socket: Option<PathBuf>,
    /// Admin API on TCP instead of the socket, e.g. 127.0.0.1:7070 (loopback unless --admin.allow_remote).
    #[arg(
        long = "admin.addr",
        visible_alias = "admin-addr",
        global = true,
        value_name = "ADDR"
    )]
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Allow --admin.addr to be a non-loopback address.
    #[arg(long = "admin.allow_remote", visible_aliases = ["admin-allow-remote", "admin.allow-remote"], global = true, action = ArgAction::SetTrue)]
    pub admin_allow_remote: bool,
    /// Admin bearer token file (created 0600) [default: beside the socket].
    #[arg(long = "admin.token_file", visible_aliases = ["admin-token-file", "admin.token-file"], global = true, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve Prometheus /metrics at this address (turns metrics.enabled on), e.g. 127.0.0.1:9616.
    #[arg(
        long = "metrics.addr",
        visible_alias = "metrics-addr",
        global = true,
        value_name = "ADDR"
    )]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Turns flags into dotted-key overrides.
pub trait Overrides {
    fn overrides(&self) -> Vec<(String, Value)>;
}

fn push<T: ToString>(out: &mut Vec<(String, Value)>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        out.push((key.into(), Value::from(v.to_string())));
    }
}

fn push_path(out: &mut Vec<(String, Value)>, key: &str, v: &Option<PathBuf>) {
    if let Some(v) = v {
        out.push((key.into(), Value::from(v.to_string_lossy().into_owned())));
    }
}

fn push_flag(out: &mut Vec<(String, Value)>, key: &str, on: bool) {
    // An absent switch must not override a `true` from the file, so only `true` is pushed.
    if on {
        out.push((key.into(), Value::from(true)));
    }
}

impl Overrides for CommonArgs {
    fn overrides(&self) -> Vec<(String, Value)> {
        let mut o = Vec::new();
        push(&mut o, "wallet.name", &self.wallet_name);
        push(&mut o, "wallet.hotkey", &self.wallet_hotkey);
        push_path(&mut o, "wallet.path", &self.wallet_path);
        push(&mut o, "subtensor.network", &self.subtensor_network);
        push(
            &mut o,
            "subtensor.chain_endpoint",
            &self.subtensor_chain_endpoint,
        );
        if let Some(n) = self.netuid {
            o.push(("netuid".into(), Value::from(n)));
        }
        push_flag(&mut o, "logging.debug", self.logging_debug);
        push_flag(&mut o, "logging.trace", self.logging_trace);
        push_flag(&mut o, "logging.json", self.logging_json);
        push_path(&mut o, "logging.logging_dir", &self.logging_dir);
        o
    }
}

impl Overrides for ServeArgs {
    fn overrides(&self) -> Vec<(String, Value)> {
        let mut o = Vec::new();
        if let Some(p) = self.axon_port {
            o.push(("axon.port".into(), Value::from(p)));
        }
        push(&mut o, "axon.ip", &self.axon_ip);
        push(&mut o, "axon.external_ip", &self.axon_external_ip);
        if let Some(p) = self.axon_external_port {
            o.push(("axon.external_port".into(), Value::from(p)));
        }
        if let Some(p) = self.relay_port {
            o.push(("relay.port".into(), Value::from(p)));
        }
        push_path(&mut o, "admin.socket", &self.admin_socket);
        push(&mut o, "admin.addr", &self.admin_addr);
        push_flag(&mut o, "admin.allow_remote", self.admin_allow_remote);
        push_path(&mut o, "admin.token_file", &self.admin_token_file);
        if self.metrics_addr.is_some() {
            o.push(("metrics.enabled".into(), Value::from(true)));
            push(&mut o, "metrics.addr", &self.metrics_addr);
        }
        o
    }
}
