//! Config files of a test network: one per daemon (validator, miners, bench bots), each with its
//! own wallet name, addresses and `[admin]` socket, all pointing at one chain endpoint.

use std::path::{Path, PathBuf};

/// One daemon's config. [`NodeConfig::new`] gives the common shape (axon and relay on `ip`
/// with port 0, relay windows of 4 blocks, the admin socket `DIR/NAME.sock`, miners accepting
/// any validator, a `[validator]` section with a SQLite database `DIR/validator.sqlite`);
/// the setters change one part. `extra` is appended last, so bare keys land in `[validator]`
/// (or in `[admin]` when the validator section is left out).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub netuid: u16,
    pub ws: String,
    pub ip: String,
    pub axon_port: u16,
    pub window_blocks: Option<u32>,
    pub socket: Option<PathBuf>,
    pub validator_section: bool,
    pub header: Option<String>,
    /// Extra `key = value` lines of `[axon]`, `[relay]` and `[miner]`.
    pub axon_lines: String,
    pub relay_lines: String,
    pub min_validator_stake: f64,
    pub extra: String,
}

impl NodeConfig {
    pub fn new(name: &str, netuid: u16, ws: &str, ip: &str) -> NodeConfig {
        NodeConfig {
            name: name.to_string(),
            netuid,
            ws: ws.to_string(),
            ip: ip.to_string(),
            axon_port: 0,
            window_blocks: Some(4),
            socket: None,
            validator_section: true,
            header: None,
            axon_lines: String::new(),
            relay_lines: String::new(),
            min_validator_stake: 0.0,
            extra: String::new(),
        }
    }

    pub fn extra(mut self, extra: &str) -> Self {
        self.extra = extra.to_string();
        self
    }

    pub fn axon_port(mut self, port: u16) -> Self {
        self.axon_port = port;
        self
    }

    /// `None`: no `window_blocks` key (the daemon's default).
    pub fn window_blocks(mut self, blocks: Option<u32>) -> Self {
        self.window_blocks = blocks;
        self
    }

    /// The admin socket in `dir` (created by the daemon) instead of the config's folder.
    pub fn socket_in(mut self, dir: &Path) -> Self {
        self.socket = Some(dir.join(format!("{}.sock", self.name)));
        self
    }

    /// Leave out `[validator]` (the caller's `extra` brings its own).
    pub fn without_validator_section(mut self) -> Self {
        self.validator_section = false;
        self
    }

    /// Lines added to `[axon]` (e.g. `rate_per_sec = 5.0`).
    pub fn axon_lines(mut self, lines: &str) -> Self {
        self.axon_lines = lines.to_string();
        self
    }

    /// Lines added to `[relay]`.
    pub fn relay_lines(mut self, lines: &str) -> Self {
        self.relay_lines = lines.to_string();
        self
    }

    /// `miner.min_validator_stake` (0 by default: any registered validator is served).
    pub fn min_validator_stake(mut self, tao: f64) -> Self {
        self.min_validator_stake = tao;
        self
    }

    /// A comment line at the top of the file.
    pub fn header(mut self, comment: &str) -> Self {
        self.header = Some(comment.to_string());
        self
    }

    /// The TOML text; `dir` holds the wallets, the database and (by default) the socket.
    pub fn text(&self, dir: &Path) -> String {
        let mut t = String::new();
        if let Some(h) = &self.header {
            t += &format!("# {h}\n");
        }
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| dir.join(format!("{}.sock", self.name)));
        t += &format!(
            r#"netuid = {netuid}
[wallet]
name = "{name}"
hotkey = "default"
path = "{wallets}"
[subtensor]
network = "local"
chain_endpoint = "{ws}"
[axon]
ip = "{ip}"
port = {axon_port}
{axon_lines}[relay]
ip = "{ip}"
port = 0
{relay_lines}"#,
            netuid = self.netuid,
            name = self.name,
            wallets = dir.join("wallets").display(),
            ws = self.ws,
            ip = self.ip,
            axon_port = self.axon_port,
            axon_lines = lines(&self.axon_lines),
            relay_lines = lines(&self.relay_lines),
        );
        if let Some(w) = self.window_blocks {
            t += &format!("window_blocks = {w}\n");
        }
        t += &format!(
            "[miner]\nmin_validator_stake = {:?}\n[admin]\nsocket = \"{}\"\n",
            self.min_validator_stake,
            socket.display()
        );
        if self.validator_section {
            t += &format!(
                "[validator]\nclients = [\"*\"]\nsync_interval_blocks = 1\ndb = \"{}\"\n",
                dir.join("validator.sqlite").display()
            );
        }
        t += &self.extra;
        t += "\n";
        t
    }

    /// Writes `DIR/NAME.toml` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.toml", self.name));
        std::fs::write(&path, self.text(dir)).expect("config");
        path
    }
}

/// `text` ending with a newline (empty stays empty).
fn lines(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// The common config of `name` (see [`NodeConfig::new`]) with `extra` appended, written to
/// `DIR/NAME.toml`.
pub fn write_config(
    dir: &Path,
    name: &str,
    netuid: u16,
    ws: &str,
    ip: &str,
    extra: &str,
) -> PathBuf {
    NodeConfig::new(name, netuid, ws, ip)
        .extra(extra)
        .write(dir)
}
