//! A real subtensor runtime on this machine: chopsticks running the pinned raw chain spec
//! (node-subtensor spec 218) offline, for tests and the devnet.
//!
//! chopsticks is the npm package `@acala-network/chopsticks@1.5.1`, installed into
//! `$CHOPSTICKS_DIR` (default `~/.cache/subtensor-chopsticks`; `.ci/run` installs it). The
//! `node` process is started directly (not through `npx`, which leaves an orphan) and is
//! killed by pid when the [`DevChain`] is dropped. Blocks are built per transaction (Instant
//! mode); `dev_newBlock` builds empty blocks on demand ([`super::ChainClient::dev_new_blocks`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::ChainError;

/// The npm package and version the project pins.
pub const CHOPSTICKS_PACKAGE: &str = "@acala-network/chopsticks@1.5.1";
/// The raw chain spec and config in `shared/chain/`.
pub const SPEC_FILE: &str = "subtensor_spec218_chopsticks.json";
pub const CONFIG_FILE: &str = "subtensor-chopsticks.yml";

/// Where chopsticks is npm-installed: `$CHOPSTICKS_DIR`, else `~/.cache/subtensor-chopsticks`.
pub fn chopsticks_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHOPSTICKS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    dirs::home_dir()
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache/subtensor-chopsticks")
}

/// chopsticks' entry script inside an install dir.
pub fn chopsticks_script(dir: &Path) -> PathBuf {
    dir.join("node_modules/@acala-network/chopsticks/chopsticks.cjs")
}

/// The folder holding the chain spec: `$MR_SUBTENSOR_SPEC_DIR`, else the first
/// `shared/chain/` (or `../shared/chain/`) found walking up from the current directory and from
/// this executable.
pub fn spec_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("MR_SUBTENSOR_SPEC_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    for start in starts {
        for dir in start.ancestors() {
            for cand in [dir.join("shared/chain"), dir.join("../shared/chain")] {
                if cand.join(SPEC_FILE).is_file() {
                    return Some(cand);
                }
            }
        }
    }
    None
}

/// Installs chopsticks into `dir` with npm when it is not there yet (minutes; once per machine).
/// Concurrent callers (parallel test binaries) wait for the one holding `dir/.install.lock`.
pub fn install_chopsticks(dir: &Path) -> Result<(), ChainError> {
    if chopsticks_script(dir).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ChainError::DevChain(format!("cannot create {}: {e}", dir.display())))?;
    let lock = dir.join(".install.lock");
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(_) if chopsticks_script(dir).is_file() => return Ok(()),
            Err(_) if Instant::now() > deadline => {
                return Err(ChainError::DevChain(format!(
                    "{} is held by another install for 15 min: remove it if no npm is running",
                    lock.display()
                )));
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
    let result = npm_install(dir);
    let _ = std::fs::remove_file(&lock);
    result
}

fn npm_install(dir: &Path) -> Result<(), ChainError> {
    if chopsticks_script(dir).is_file() {
        return Ok(());
    }
    let pkg = dir.join("package.json");
    if !pkg.exists() {
        std::fs::write(&pkg, "{\"private\":true}\n")
            .map_err(|e| ChainError::DevChain(format!("cannot write {}: {e}", pkg.display())))?;
    }
    let status = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            CHOPSTICKS_PACKAGE,
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| {
            ChainError::DevChain(format!("cannot run npm (is node/npm installed?): {e}"))
        })?;
    if !status.success() || !chopsticks_script(dir).is_file() {
        return Err(ChainError::DevChain(format!(
            "npm install {CHOPSTICKS_PACKAGE} in {} failed ({status})",
            dir.display()
        )));
    }
    Ok(())
}

/// How to start a dev chain.
#[derive(Debug, Clone)]
pub struct DevChainOptions {
    /// 0 picks a free port.
    pub port: u16,
    pub chopsticks_dir: PathBuf,
    pub spec_dir: PathBuf,
    /// Install chopsticks with npm when missing (else fail with the command to run).
    pub install: bool,
    /// How long to wait for the RPC to answer.
    pub ready_timeout: Duration,
}

impl DevChainOptions {
    /// A free port, the default install dir, the spec dir found by [`spec_dir`].
    pub fn new() -> Result<Self, ChainError> {
        let spec_dir = spec_dir().ok_or_else(|| {
            ChainError::DevChain(format!(
                "cannot find shared/chain/{SPEC_FILE}: set MR_SUBTENSOR_SPEC_DIR to the folder holding it"
            ))
        })?;
        Ok(DevChainOptions {
            port: 0,
            chopsticks_dir: chopsticks_dir(),
            spec_dir,
            install: false,
            ready_timeout: Duration::from_secs(90),
        })
    }
}

/// A running chopsticks process; killed (by pid) on drop.
#[derive(Debug)]
pub struct DevChain {
    child: Option<Child>,
    port: u16,
    opts: DevChainOptions,
    log: PathBuf,
}

impl DevChain {
    /// Starts chopsticks and waits until its RPC answers. Blocking (a few seconds): async code
    /// calls it through `tokio::task::spawn_blocking`.
    pub fn start(opts: DevChainOptions) -> Result<DevChain, ChainError> {
        let mut chain = DevChain {
            child: None,
            port: opts.port,
            log: PathBuf::new(),
            opts,
        };
        chain.launch()?;
        Ok(chain)
    }

    fn launch(&mut self) -> Result<(), ChainError> {
        let opts = &self.opts;
        if opts.install {
            install_chopsticks(&opts.chopsticks_dir)?;
        }
        let script = chopsticks_script(&opts.chopsticks_dir);
        if !script.is_file() {
            return Err(ChainError::DevChain(format!(
                "chopsticks is not installed in {}: run `npm install --prefix {} {CHOPSTICKS_PACKAGE}` (or set CHOPSTICKS_DIR)",
                opts.chopsticks_dir.display(),
                opts.chopsticks_dir.display()
            )));
        }
        for f in [SPEC_FILE, CONFIG_FILE] {
            if !opts.spec_dir.join(f).is_file() {
                return Err(ChainError::DevChain(format!(
                    "{} is missing",
                    opts.spec_dir.join(f).display()
                )));
            }
        }
        let log = std::env::temp_dir().join(format!(
            "mr-chopsticks-{}-{}.log",
            std::process::id(),
            unique()
        ));
        let out = std::fs::File::create(&log)
            .map_err(|e| ChainError::DevChain(format!("cannot create {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| ChainError::DevChain(format!("log file: {e}")))?;
        let child = Command::new("node")
            .arg(&script)
            .arg(format!(
                "--config={}",
                opts.spec_dir.join(CONFIG_FILE).display()
            ))
            .arg(format!(
                "--genesis={}",
                opts.spec_dir.join(SPEC_FILE).display()
            ))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| ChainError::DevChain(format!("cannot start node: {e}")))?;
        self.child = Some(child);
        self.log = log;
        match self.wait_ready() {
            Ok(port) => {
                self.port = port;
                Ok(())
            }
            Err(e) => {
                self.stop();
                Err(e)
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<u16, ChainError> {
        let deadline = Instant::now() + self.opts.ready_timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ChainError::DevChain(format!(
                    "chopsticks exited ({status}); log {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                )));
            }
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(port) = listening_port(&text)
                && rpc_answers(port)
            {
                return Ok(port);
            }
            if Instant::now() > deadline {
                return Err(ChainError::DevChain(format!(
                    "chopsticks did not answer within {} s; log {}:\n{}",
                    self.opts.ready_timeout.as_secs(),
                    self.log.display(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node process id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The chopsticks log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the process (by pid) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port, from genesis (chopsticks keeps no state).
    pub fn restart(&mut self) -> Result<(), ChainError> {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
        self.launch()
    }

    /// Keeps the process running after this value is dropped (for `scripts/chain-up`).
    pub fn detach(mut self) -> (u32, u16) {
        let pid = self.pid().unwrap_or(0);
        self.child = None;
        (pid, self.port)
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Dev-chain settings for a new subnet: rate limits off, registration open.
#[derive(Debug, Clone, Default)]
pub struct DevSubnetParams {
    /// Blocks between weight sets of one hotkey (0 = no limit).
    pub weights_rate_limit: u64,
    /// Tempo (blocks per epoch); None keeps the runtime's default (100 here).
    pub tempo: Option<u16>,
}

/// Creates a subnet on a dev chain: `sudo` (//Alice on chopsticks) pays and owns it, `owner_hotkey`
/// gets uid 0, and the rate limits that would slow a test or devnet down are lifted by sudo.
/// Returns the netuid.
pub async fn create_dev_subnet(
    client: &super::ChainClient,
    sudo: &super::ChainSigner,
    owner_hotkey: &[u8; 32],
    params: &DevSubnetParams,
) -> Result<u16, ChainError> {
    use super::shape::u;
    client.sudo_set_network_rate_limit(sudo, 0).await?;
    let netuid = client.register_network(sudo, owner_hotkey).await?;
    client
        .sudo_set_weights_rate_limit(sudo, netuid, params.weights_rate_limit)
        .await?;
    client
        .sudo_admin(
            sudo,
            "sudo_set_target_registrations_per_interval",
            vec![
                ("netuid", u(netuid)),
                ("target_registrations_per_interval", u(256u16)),
            ],
        )
        .await?;
    client
        .sudo_admin(
            sudo,
            "sudo_set_max_registrations_per_block",
            vec![
                ("netuid", u(netuid)),
                ("max_registrations_per_block", u(256u16)),
            ],
        )
        .await?;
    if let Some(tempo) = params.tempo {
        client.sudo_set_tempo(sudo, netuid, tempo).await?;
    }
    Ok(netuid)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The port in chopsticks' "RPC listening on http://127.0.0.1:PORT" line.
fn listening_port(log: &str) -> Option<u16> {
    let marker = "RPC listening on http://127.0.0.1:";
    let rest = &log[log.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// True when `system_chain` answers over HTTP on 127.0.0.1:port.
fn rpc_answers(port: u16) -> bool {
    let body = r#"{"id":1,"jsonrpc":"2.0","method":"system_chain","params":[]}"#;
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.1 200") && resp.contains("\"result\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let log = "[20:55:38.820] INFO: bittensor RPC listening on http://127.0.0.1:41955 and ws://127.0.0.1:41955\n";
        assert_eq!(listening_port(log), Some(41955));
        assert_eq!(listening_port("nothing yet"), None);
    }
}
