//! `mrd miner`: relay (data plane) + miner service (control plane) on the axon port.
//! SIGTERM / Ctrl-C drain: running jobs finish, no new ones are accepted, then exit 0.

use crate::node;
use anyhow::Context;
use clap::Args;
use mapreduce::admin::roles::MinerRole;
use mapreduce::config::flags::{CommonArgs, ServeArgs};
use mapreduce::control::auth::Admission;
use mapreduce::control::miner::{MinerService, MinerState};
use mapreduce::control::server::serve_miner;
use mapreduce::relay::{Relay, RelayOptions, Trust};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct MinerArgs {
    /// Drain the miner already running with this config's hotkey (SIGTERM through its pid file)
    /// and wait until it has finished its jobs and exited.
    #[arg(long)]
    pub drain: bool,
    /// Longest wait for running jobs when draining, in seconds.
    #[arg(long, default_value_t = 600)]
    pub drain_timeout_secs: u64,
    /// Test builds only (feature `dishonest-relay`): cheat on every result block.
    #[cfg(feature = "dishonest-relay")]
    #[arg(long, hide = true, value_name = "MODE")]
    pub dishonest: Option<mapreduce::relay::dishonest::Dishonesty>,
}

/// Validators whose tickets the relay serves: configured ones, and every registered hotkey with
/// the stake floor (a validator permit too when the floor is above 0).
fn trusted(
    cfg: &mapreduce::config::Config,
    m: Option<&mapreduce::chain::Metagraph>,
) -> Vec<String> {
    let min_stake = cfg.miner.min_validator_stake;
    let mut out = cfg.relay.trust.clone();
    if let Some(m) = m {
        out.extend(
            m.neurons
                .iter()
                .filter(|n| {
                    let stake = n.alpha_stake.as_tao() + n.tao_stake.as_tao();
                    stake >= min_stake && (min_stake <= 0.0 || n.validator_permit)
                })
                .map(|n| n.hotkey.clone()),
        );
    }
    out
}

pub fn run(args: MinerArgs, common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<ExitCode> {
    if args.drain {
        let config = node::load(common, serve)?;
        let wallet = mapreduce::wallet::Wallet::from_config(&config.wallet);
        let hk = wallet
            .hotkey_public(wallet.hotkey_name())
            .with_context(|| {
                format!(
                    "reading hotkey {:?} of wallet {:?}",
                    wallet.hotkey_name(),
                    wallet.name()
                )
            })?;
        crate::pidfile::drain(
            hk.ss58_address(),
            Duration::from_secs(args.drain_timeout_secs + 10),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (config, boot, _log) = node::boot(common, serve, "miner")?;
    #[cfg(feature = "dishonest-relay")]
    if let Some(mode) = args.dishonest {
        mapreduce::relay::dishonest::set(mode);
    }
    node::runtime()?.block_on(main(args, config, boot))
}

async fn main(
    args: MinerArgs,
    config: mapreduce::config::Config,
    boot: node::AdminBoot,
) -> anyhow::Result<ExitCode> {
    let node = node::start(config, "miner").await?;
    let cfg = &node.config;
    let min_stake = cfg.miner.min_validator_stake;
    let mut options = RelayOptions::from_config(&cfg.relay);
    options.own_hotkey = Some(node.key.ss58_address().to_string());
    options.trust = Trust::new(trusted(cfg, node.registry.get().as_deref()));
    let trust = options.trust.clone();
    let relay_bind = SocketAddr::new(cfg.relay.ip, cfg.relay.port);
    let relay_listener = tokio::net::TcpListener::bind(relay_bind)
        .await
        .with_context(|| format!("binding the relay port {relay_bind}"))?;
    let relay_port = relay_listener.local_addr()?.port();
    let relay_ip: IpAddr = cfg
        .relay
        .external_ip
        .or_else(|| node::external_ip(cfg))
        .unwrap_or(cfg.relay.ip);
    let relay_address = SocketAddr::new(relay_ip, relay_port).to_string();
    let relay = Relay::new(options);
    relay.set_receipt_key(Arc::clone(&node.key));
    tokio::spawn(Arc::clone(&relay).serve(relay_listener));

    let axon = node::bind_axon(cfg).await?;
    let axon_addr = axon.local_addr()?;
    node::serve_axon(&node, axon_addr).await?;

    let state = MinerState::new(
        node.key.ss58_address().to_string(),
        relay,
        relay_address.clone(),
        Duration::from_secs(cfg.miner.session_time_secs),
    );
    state.spawn_sweeper();
    let layer = node::auth_layer(
        &node,
        Admission::Registered {
            min_stake_tao: min_stake,
        },
        "miner",
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_miner(
        axon,
        layer,
        MinerService {
            state: Arc::clone(&state),
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let admin = node::start_admin(
        &node,
        &boot,
        Arc::new(MinerRole {
            state: Arc::clone(&state),
            registry: node.registry.clone(),
            axon_address: axon_addr.to_string(),
            seen: Default::default(),
        }),
        vec![state.relay.traffic.clone()],
    )
    .await?;
    let _pid = crate::pidfile::PidFile::create(node.key.ss58_address())?;
    admin.set_ready().await;
    // The line scripts and tests wait for.
    println!(
        "miner ready: hotkey {} uid {} axon {axon_addr} relay {relay_address} admin {}",
        node.key.ss58_address(),
        node.uid,
        admin.endpoint
    );
    std::io::stdout().flush().context("stdout")?;
    crate::systemd::ready(&format!("serving: axon {axon_addr}, relay {relay_address}"));

    let sync_blocks = cfg.validator.sync_interval_blocks;
    tokio::select! {
        _ = node::metagraph_sync(&node, sync_blocks, |m| trust.replace(trusted(cfg, Some(&m)))) => {}
        _ = node::shutdown_signal() => {}
    }
    state.drain();
    tracing::info!(jobs = state.jobs_running(), "draining");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    while state.jobs_running() > 0 && tokio::time::Instant::now() < deadline {
        state.sweep();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    admin.stop().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
