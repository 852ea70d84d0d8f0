//! `mrd bench`: a benchmark bot. Asks its validator for benchmarks, runs them as P virtual peers
//! through the assigned miner, checks every element, reports, and goes on until SIGTERM.
//!
//! The validator is `bench.validator` + `bench.validator_hotkey`; whichever is missing is found
//! in the metagraph (the hotkey by the axon address, the address by the hotkey, or both: the
//! validator-permit neuron with the most stake that serves an axon). The metagraph also says
//! which miners "benchmark all" covers.

use anyhow::{Context, bail};
use clap::Args;
use figment::value::Value;
use mapreduce::bench::{Bot, BotHandle, BotOptions, MinerLister};
use mapreduce::chain::{ChainClient, ChainOptions, Metagraph};
use mapreduce::config::flags::{CommonArgs, Overrides, ServeArgs};
use mapreduce::config::{Config, Loader};
use mapreduce::peer::ValidatorAddr;
use mapreduce::wallet::Wallet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The validator's control-plane address, host:port (sets bench.validator).
    #[arg(
        long = "bench.validator",
        visible_alias = "bench-validator",
        value_name = "HOST:PORT"
    )]
    pub validator: Option<String>,
    /// The validator's hotkey, ss58 (sets bench.validator_hotkey).
    #[arg(
        long = "bench.validator_hotkey",
        visible_alias = "bench-validator-hotkey",
        value_name = "SS58"
    )]
    pub validator_hotkey: Option<String>,
}

pub fn run(args: BenchArgs, common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut flags = common.overrides();
    flags.extend(serve.overrides());
    if let Some(v) = args.validator {
        flags.push(("bench.validator".into(), Value::from(v)));
    }
    if let Some(v) = args.validator_hotkey {
        flags.push(("bench.validator_hotkey".into(), Value::from(v)));
    }
    let loader = Loader::from_process()
        .file(common.config.clone())
        .flags(flags);
    let (config, boot, _log) = crate::node::boot_with(loader, "bench")?;
    crate::node::runtime()?.block_on(main(config, boot))
}

/// Miners "all" means: every neuron serving an axon, except the validator and this bot.
fn miners_of(m: &Metagraph, validator: &str, me: &str) -> Vec<u32> {
    m.neurons
        .iter()
        .filter(|n| n.hotkey != validator && n.hotkey != me)
        .filter(|n| n.axon.as_ref().is_some_and(|a| a.is_served()))
        .map(|n| u32::from(n.uid))
        .collect()
}

fn find_validator(cfg: &Config, m: Option<&Metagraph>) -> anyhow::Result<ValidatorAddr> {
    let b = &cfg.bench;
    if let (Some(endpoint), Some(hotkey)) = (&b.validator, &b.validator_hotkey) {
        return Ok(ValidatorAddr {
            endpoint: endpoint.clone(),
            hotkey: hotkey.clone(),
        });
    }
    let Some(m) = m else {
        bail!(
            "no chain to find the validator in: set bench.validator (host:port) and bench.validator_hotkey (ss58)"
        );
    };
    let served = |n: &&mapreduce::chain::Neuron| n.axon.as_ref().is_some_and(|a| a.is_served());
    let found = match (&b.validator, &b.validator_hotkey) {
        (None, Some(hk)) => m.by_hotkey(hk).filter(served).with_context(|| {
            format!("validator {hk} serves no axon on netuid {}: set bench.validator", m.netuid)
        })?,
        (Some(addr), None) => m
            .neurons
            .iter()
            .filter(served)
            .find(|n| n.axon.as_ref().is_some_and(|a| &a.addr() == addr))
            .with_context(|| {
                format!(
                    "no neuron of netuid {} serves its axon at {addr}: set bench.validator_hotkey",
                    m.netuid
                )
            })?,
        _ => m
            .neurons
            .iter()
            .filter(served)
            .filter(|n| n.validator_permit)
            .max_by(|a, b| {
                let s = |n: &mapreduce::chain::Neuron| n.alpha_stake.as_tao() + n.tao_stake.as_tao();
                s(a).total_cmp(&s(b))
            })
            .with_context(|| {
                format!(
                    "no validator with a permit serves an axon on netuid {}: set bench.validator and bench.validator_hotkey",
                    m.netuid
                )
            })?,
    };
    let addr = found.axon.as_ref().map(|a| a.addr()).unwrap_or_default();
    Ok(ValidatorAddr {
        endpoint: b.validator.clone().unwrap_or(addr),
        hotkey: found.hotkey.clone(),
    })
}

async fn main(config: Config, boot: crate::node::AdminBoot) -> anyhow::Result<ExitCode> {
    let wallet = Wallet::from_config(&config.wallet);
    let key = wallet.hotkey().with_context(|| {
        format!(
            "reading hotkey {:?} of wallet {:?} under {}",
            wallet.hotkey_name(),
            wallet.name(),
            wallet.path().display()
        )
    })?;
    let key = Arc::new(key);
    let me = key.ss58_address().to_string();

    // The chain is needed only to find the validator and to list miners for "benchmark all".
    let opts = ChainOptions::from_config(&config.subtensor);
    let endpoint = opts.endpoint.clone();
    let chain =
        match tokio::time::timeout(Duration::from_secs(30), ChainClient::connect(opts)).await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                tracing::warn!("subtensor at {endpoint}: {e}; going on without the chain");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "subtensor at {endpoint}: no answer in 30 s; going on without the chain"
                );
                None
            }
        };
    let metagraph = match &chain {
        Some(c) => match c.metagraph(config.netuid).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("reading the metagraph of netuid {}: {e}", config.netuid);
                None
            }
        },
        None => None,
    };
    let validator = find_validator(&config, metagraph.as_ref())?;
    mapreduce::wallet::ss58::decode(&validator.hotkey)
        .with_context(|| format!("validator hotkey {:?}", validator.hotkey))?;

    let miners: Arc<RwLock<Option<Vec<u32>>>> = Arc::new(RwLock::new(
        metagraph
            .as_ref()
            .map(|m| miners_of(m, &validator.hotkey, &me)),
    ));
    let lister: MinerLister = {
        let miners = Arc::clone(&miners);
        Arc::new(move || miners.read().unwrap_or_else(|e| e.into_inner()).clone())
    };
    let b = &config.bench;
    let opts = BotOptions {
        validator: validator.clone(),
        bytes: b.mib << 20,
        peers: b.peers,
        interval: Duration::from_secs(b.interval_secs),
        backoff_initial: Duration::from_secs(b.backoff_initial_secs),
        backoff_max: Duration::from_secs(b.backoff_max_secs),
        call_timeout: Duration::from_secs(30),
    };
    let (bot, handle) = Bot::new(opts, Arc::clone(&key), lister);
    log_changes(&handle);
    let admin = crate::node::start_admin_with(
        &config,
        &me,
        &boot,
        Arc::new(
            mapreduce::admin::roles::BenchRole::new(handle.clone(), validator.endpoint.clone())
                .with_chain(chain.clone()),
        ),
        // Bytes to and from each miner, counted by the bot's virtual peers.
        vec![mapreduce::peer::traffic::enable()],
    )
    .await?;
    admin.set_ready().await;
    // The line scripts and tests wait for.
    println!(
        "bench ready: hotkey {me} validator {} ({}) mib {} peers {} admin {}",
        validator.endpoint, validator.hotkey, b.mib, b.peers, admin.endpoint
    );
    std::io::stdout().flush().context("stdout")?;
    crate::systemd::ready(&format!(
        "benchmarking for validator {}",
        validator.endpoint
    ));

    let refresh = async {
        let Some(chain) = &chain else {
            return std::future::pending::<()>().await;
        };
        let every = Duration::from_secs(12 * config.validator.sync_interval_blocks.max(1));
        loop {
            tokio::time::sleep(every).await;
            match chain.metagraph(config.netuid).await {
                Ok(m) => {
                    *miners.write().unwrap_or_else(|e| e.into_inner()) =
                        Some(miners_of(&m, &validator.hotkey, &me));
                }
                Err(e) => tracing::warn!("metagraph sync: {e}"),
            }
        }
    };
    tokio::select! {
        _ = bot.run(crate::node::shutdown_signal()) => {}
        _ = refresh => {}
    }
    admin.stop().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Logs each state change of the bot (the admin API serves the same through the handle).
fn log_changes(handle: &BotHandle) {
    let mut rx = handle.watch_status();
    tokio::spawn(async move {
        let mut last = rx.borrow().state;
        while rx.changed().await.is_ok() {
            let s = rx.borrow().clone();
            if s.state != last {
                tracing::debug!(state = s.state.name(), miner_uid = ?s.miner_uid, "bot state");
                last = s.state;
            }
        }
    });
}
