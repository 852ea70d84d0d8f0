//! `mrd validator`: syncs the metagraph, polls miners, serves jobs to training peers; its state
//! lives in SQLite so a restart (even kill -9) resumes with the same view.

use crate::node;
use anyhow::Context;
use clap::Args;
use mapreduce::admin::roles::ValidatorRole;
use mapreduce::chain::ChainSigner;
use mapreduce::config::flags::{CommonArgs, ServeArgs};
use mapreduce::control::auth::Admission;
use mapreduce::control::benchmark::BenchDesk;
use mapreduce::control::server::serve_validator;
use mapreduce::control::validator::{ValidatorOptions, ValidatorService, ValidatorState};
use mapreduce::validator::Store;
use mapreduce::validator::score::ScoringOptions;
use mapreduce::validator::sync::poll_miners;
use mapreduce::validator::view::ScoringView;
use mapreduce::validator::weights::{SharedChainWeights, WeightLoop};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ValidatorArgs {}

pub fn run(
    _args: ValidatorArgs,
    common: &CommonArgs,
    serve: &ServeArgs,
) -> anyhow::Result<ExitCode> {
    let (config, boot, _log) = node::boot(common, serve, "validator")?;
    node::runtime()?.block_on(main(config, boot))
}

fn db_path(config: &mapreduce::config::Config, ss58: &str) -> anyhow::Result<PathBuf> {
    let path = match &config.validator.db {
        Some(p) => mapreduce::wallet::expand_tilde(p),
        None => dirs::home_dir()
            .context("no home directory: set validator.db")?
            .join(".mapreduce")
            .join(format!("validator-{ss58}.sqlite")),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(path)
}

async fn main(
    config: mapreduce::config::Config,
    boot: node::AdminBoot,
) -> anyhow::Result<ExitCode> {
    let node = node::start(config, "validator").await?;
    let cfg = &node.config;
    let path = db_path(cfg, node.key.ss58_address())?;
    let store = Arc::new(Store::open(&path)?);
    let timeout = Duration::from_secs(cfg.validator.miner_timeout_secs);

    // First view of the miners before answering anyone.
    if let Some(m) = node.registry.get() {
        let n = poll_miners(&node.key, &m, &store, timeout).await?;
        tracing::info!(answered = n, "miners polled");
    }
    let sync_blocks = cfg.validator.sync_interval_blocks;
    let axon = node::bind_axon(cfg).await?;
    let axon_addr = axon.local_addr()?;
    node::serve_axon(&node, axon_addr).await?;
    let state = ValidatorState::new(
        Arc::clone(&node.key),
        Arc::clone(&store),
        ValidatorOptions {
            session_time: Duration::from_secs(cfg.validator.job_ttl_secs),
            max_job_bytes: cfg.validator.max_job_mib.saturating_mul(1024 * 1024),
            block_elems: cfg.relay.block_kib.saturating_mul(1024) / 4,
            miner_timeout: timeout,
            max_world_size: 1024,
            miners_per_job: cfg.validator.miners_per_job,
            spares: cfg.validator.spares,
        },
    );
    state.set_sample_rate(cfg.validator.sample_rate);
    let scoring = ScoringOptions::from_config(&cfg.validator);
    if scoring.benchmark_hotkeys.len() < 3 {
        tracing::warn!(
            bots = scoring.benchmark_hotkeys.len(),
            "fewer than 3 benchmark bots in validator.benchmark_hotkeys: run at least 3, on separate machines, so no single bot's network decides the scores"
        );
    }
    let desk = BenchDesk::new(
        Arc::clone(&state),
        scoring.clone(),
        Some(node.registry.clone()),
    );
    // Bots are admitted with the clients; the benchmark handlers check the bot list.
    let mut allow = cfg.validator.clients.clone();
    allow.extend(scoring.benchmark_hotkeys.iter().cloned());
    let layer = node::auth_layer(&node, Admission::Clients { allow }, "validator");
    let chain_weights = SharedChainWeights::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_validator(
        axon,
        layer,
        ValidatorService {
            state: Arc::clone(&state),
            bench: Some(Arc::clone(&desk)),
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    // What the admin API (ListMiners, GetWeights) reads; see mapreduce::validator::view.
    let scoring_view = ScoringView {
        store: Arc::clone(&store),
        options: scoring.clone(),
        registry: Some(node.registry.clone()),
        own: node.key.ss58_address().to_string(),
        chain: Arc::clone(&chain_weights),
    };
    let admin = node::start_admin(
        &node,
        &boot,
        Arc::new(ValidatorRole {
            store: Arc::clone(&store),
            registry: node.registry.clone(),
            axon_address: axon_addr.to_string(),
            seen: Default::default(),
            scoring: Some(scoring_view),
        }),
        Vec::new(),
    )
    .await?;
    apply_live_config(&admin, Arc::clone(&state));
    admin.set_ready().await;
    println!(
        "validator ready: hotkey {} uid {} axon {axon_addr} db {} admin {}",
        node.key.ss58_address(),
        node.uid,
        path.display(),
        admin.endpoint
    );
    std::io::stdout().flush().context("stdout")?;
    crate::systemd::ready(&format!("serving: axon {axon_addr}"));
    let on_sync = {
        let key = Arc::clone(&node.key);
        let store = Arc::clone(&store);
        move |m: Arc<mapreduce::chain::Metagraph>| {
            let (key, store) = (Arc::clone(&key), Arc::clone(&store));
            tokio::spawn(async move {
                if let Err(e) = poll_miners(&key, &m, &store, timeout).await {
                    tracing::warn!("polling miners: {e}");
                }
            });
        }
    };
    let weights = WeightLoop {
        chain: &node.chain,
        signer: ChainSigner::new((*node.key).clone()).context("hotkey signer")?,
        netuid: cfg.netuid,
        store: Arc::clone(&store),
        desk,
        registry: node.registry.clone(),
        options: scoring,
        view: chain_weights,
        tick: Duration::from_secs(3),
    };
    tokio::select! {
        _ = node::metagraph_sync(&node, sync_blocks, on_sync) => {}
        _ = weights.run() => {}
        _ = node::shutdown_signal() => {}
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    admin.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Applies the live validator keys (`roles::VALIDATOR_LIVE`) from each configuration that
/// UpdateConfig (`mrctl config set`) writes: `validator.sample_rate` counts for jobs created
/// from then on; a job already created keeps the rate stored with its seed.
fn apply_live_config(admin: &mapreduce::admin::Admin, state: Arc<ValidatorState>) {
    let mut watch = admin.config_watch();
    tokio::spawn(async move {
        let mut rate = watch.borrow_and_update().validator.sample_rate;
        while watch.changed().await.is_ok() {
            let now = watch.borrow_and_update().validator.sample_rate;
            if now != rate {
                state.set_sample_rate(now);
                tracing::info!(from = rate, to = now, "validator.sample_rate applied live");
                rate = now;
            }
        }
    });
}
