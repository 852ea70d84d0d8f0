//! What `mrd miner` and `mrd validator` share: config, hotkey, chain, registration check, the
//! axon listener and serve_axon, the metagraph registry, and the shutdown signal.

use anyhow::{Context, bail};
use mapreduce::admin::{Admin, AdminSetup, ContextParts, RoleData};
use mapreduce::chain::{ChainClient, ChainOptions, ChainSigner, Metagraph};
use mapreduce::config::flags::{CommonArgs, Overrides, ServeArgs};
use mapreduce::config::{Config, Loader};
use mapreduce::control::auth::{Admission, AuthLayer, AuthOptions};
use mapreduce::control::registry::MetagraphRegistry;
use mapreduce::core::Version;
use mapreduce::wallet::btauth::Verifier;
use mapreduce::wallet::{Keypair, Wallet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Node {
    pub config: Config,
    pub key: Arc<Keypair>,
    pub chain: ChainClient,
    pub registry: MetagraphRegistry,
    pub uid: u16,
}

pub fn load(common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<Config> {
    Ok(loader(common, serve).load()?.config)
}

/// The layers a daemon's configuration comes from (the admin API validates edits with them).
pub fn loader(common: &CommonArgs, serve: &ServeArgs) -> Loader {
    let mut flags = common.overrides();
    flags.extend(serve.overrides());
    Loader::from_process()
        .file(common.config.clone())
        .flags(flags)
}

/// Starts the admin API of a daemon (refusing to start on a bad socket, address or token file).
pub async fn start_admin(
    node: &Node,
    setup: &AdminBoot,
    role: Arc<dyn RoleData>,
    traffic: Vec<mapreduce::core::traffic::Traffic>,
) -> anyhow::Result<Admin> {
    start_admin_with(&node.config, node.key.ss58_address(), setup, role, traffic).await
}

/// [`start_admin`] for a daemon without a [`Node`] (the bench bot).
pub async fn start_admin_with(
    cfg: &Config,
    hotkey: &str,
    setup: &AdminBoot,
    role: Arc<dyn RoleData>,
    traffic: Vec<mapreduce::core::traffic::Traffic>,
) -> anyhow::Result<Admin> {
    let admin = Admin::start(AdminSetup {
        parts: ContextParts {
            role,
            hotkey: hotkey.to_string(),
            netuid: u32::from(cfg.netuid),
            chain_endpoint: cfg.subtensor.endpoint(),
            config: cfg.clone(),
            config_path: setup.file.clone(),
            loader: setup.loader.clone(),
            logs: Some(setup.capture.clone()),
            log_level: Some(setup.level.clone()),
            endpoint: String::new(),
        },
        admin: cfg.admin.clone(),
        socket_name: setup.role.to_string(),
        traffic,
    })
    .await
    .context("starting the admin API")?;
    Ok(admin)
}

/// What the admin API needs from before the runtime starts: layers, file, logging handles.
pub struct AdminBoot {
    pub role: &'static str,
    pub loader: Loader,
    pub file: Option<std::path::PathBuf>,
    pub capture: mapreduce::logging::LogCapture,
    pub level: mapreduce::logging::LevelHandle,
}

/// Loads the configuration and starts logging; what every daemon does first.
pub fn boot(
    common: &CommonArgs,
    serve: &ServeArgs,
    role: &'static str,
) -> anyhow::Result<(Config, AdminBoot, mapreduce::logging::LogGuard)> {
    boot_with(loader(common, serve), role)
}

/// [`boot`] with the daemon's own layers (e.g. extra flags).
pub fn boot_with(
    loader: Loader,
    role: &'static str,
) -> anyhow::Result<(Config, AdminBoot, mapreduce::logging::LogGuard)> {
    let loaded = loader.load()?;
    let log = mapreduce::logging::init(&loaded.config.logging, role)?;
    let boot = AdminBoot {
        role,
        loader,
        file: loaded.file.clone(),
        capture: log.capture.clone(),
        level: log.level_handle(),
    };
    Ok((loaded.config, boot, log))
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Hotkey, chain, and a metagraph in which the hotkey is registered.
pub async fn start(config: Config, role: &str) -> anyhow::Result<Node> {
    let wallet = Wallet::from_config(&config.wallet);
    let key = wallet.hotkey().with_context(|| {
        format!(
            "reading hotkey {:?} of wallet {:?} under {}",
            wallet.hotkey_name(),
            wallet.name(),
            wallet.path().display()
        )
    })?;
    let opts = ChainOptions::from_config(&config.subtensor);
    let endpoint = opts.endpoint.clone();
    let chain = ChainClient::connect(opts)
        .await
        .with_context(|| format!("connecting to subtensor at {endpoint}"))?;
    let netuid = config.netuid;
    let metagraph = chain
        .metagraph(netuid)
        .await
        .with_context(|| format!("reading the metagraph of netuid {netuid}"))?;
    let Some(uid) = metagraph.by_hotkey(key.ss58_address()).map(|n| n.uid) else {
        bail!(
            "hotkey {} ({}/{}) is not registered on netuid {netuid}; a {role} must be registered first:\n  \
             mrctl register --netuid {netuid} --wallet.name {} --wallet.hotkey {} --wallet.path {} --subtensor.chain_endpoint {endpoint}",
            key.ss58_address(),
            wallet.name(),
            wallet.hotkey_name(),
            wallet.name(),
            wallet.hotkey_name(),
            wallet.path().display(),
        );
    };
    let registry = MetagraphRegistry::new(netuid);
    registry.set(metagraph);
    Ok(Node {
        config,
        key: Arc::new(key),
        chain,
        registry,
        uid,
    })
}

/// The address to advertise: configured, the bind address when specific, or the interface the
/// default route uses (no packet is sent). None when nothing works.
pub fn external_ip(config: &Config) -> Option<IpAddr> {
    if let Some(ip) = config.axon.external_ip {
        return Some(ip);
    }
    if !config.axon.ip.is_unspecified() {
        return Some(config.axon.ip);
    }
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("1.1.1.1:80").ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

pub async fn bind_axon(config: &Config) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(config.axon.ip, config.axon.port);
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the axon (control-plane) port {addr}"))
}

/// serve_axon with the advertised address; a failure to find the address is only a warning.
pub async fn serve_axon(node: &Node, bound: SocketAddr) -> anyhow::Result<()> {
    let Some(ip) = external_ip(&node.config) else {
        tracing::warn!(
            "could not detect this machine's address; set --axon.external_ip so validators can find it (axon not served)"
        );
        return Ok(());
    };
    let port = node.config.axon.external_port.unwrap_or(bound.port());
    let v = Version::CURRENT;
    let version = v.major * 1_000_000 + v.minor * 1_000 + v.patch;
    let on_chain = node
        .registry
        .get()
        .and_then(|m| m.by_hotkey(node.key.ss58_address())?.axon.clone());
    if on_chain
        .as_ref()
        .is_some_and(|a| a.ip == ip && a.port == port)
    {
        tracing::info!(%ip, port, "axon already served on chain");
        return Ok(());
    }
    let signer = ChainSigner::new((*node.key).clone()).context("hotkey signer")?;
    match node
        .chain
        .serve_axon(&signer, node.config.netuid, ip, port, version)
        .await
    {
        Ok(_) => tracing::info!(%ip, port, "axon served on chain"),
        // A quick restart: the chain keeps the previous address for a few blocks.
        Err(e) if e.runtime_error() == Some("ServingRateLimitExceeded") => tracing::warn!(
            %ip, port, "serve_axon rate limited, the chain still shows {:?}: {e}",
            on_chain.map(|a| a.addr())
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("serve_axon {ip}:{port}"))),
    }
    Ok(())
}

pub fn auth_layer(node: &Node, admission: Admission, role: &'static str) -> AuthLayer {
    let a = &node.config.axon;
    AuthLayer::new(
        Verifier::new(node.key.ss58_address()),
        Arc::new(node.registry.clone()),
        AuthOptions {
            admission,
            max_body: a.max_request_kib as usize * 1024,
            rate_per_sec: a.rate_per_sec,
            rate_burst: a.rate_burst,
            role,
        },
    )
}

/// Re-reads the metagraph every `blocks` blocks forever; `on_sync` sees each new one. The block
/// number is checked every few seconds; a chain that builds no blocks (chopsticks builds them per
/// transaction) is still re-read every `blocks` x 12 s. Run it beside the shutdown signal
/// (`select!`), not spawned: the chain client's futures are not `'static`-spawnable.
pub async fn metagraph_sync(node: &Node, blocks: u64, on_sync: impl Fn(Arc<Metagraph>)) {
    let netuid = node.config.netuid;
    let blocks = blocks.max(1);
    let fallback = Duration::from_secs(12 * blocks);
    let tick = Duration::from_secs(3).min(fallback);
    let mut last_block = node.registry.get().map_or(0, |m| m.block);
    let mut last_time = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let due_by_block = match node.chain.block_number().await {
            Ok(b) => b >= last_block + blocks,
            Err(e) => {
                tracing::warn!("reading the block number: {e}");
                false
            }
        };
        if !due_by_block && last_time.elapsed() < fallback {
            continue;
        }
        last_time = tokio::time::Instant::now();
        match node.chain.metagraph(netuid).await {
            Ok(m) => {
                last_block = m.block;
                node.registry.set(m);
                if let Some(m) = node.registry.get() {
                    on_sync(m);
                }
            }
            Err(e) => tracing::warn!("metagraph sync: {e}"),
        }
    }
}

/// Waits for SIGTERM or Ctrl-C, then tells systemd the daemon is stopping.
pub async fn shutdown_signal() {
    wait_for_signal().await;
    crate::systemd::stopping();
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
