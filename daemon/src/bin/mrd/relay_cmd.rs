//! `mrd relay`: a standalone data-plane relay (the miner daemon will wrap the same server).

use anyhow::{Context, bail};
use clap::Args;
use figment::value::Value;
use mapreduce::config::Loader;
use mapreduce::config::flags::{CommonArgs, Overrides, ServeArgs};
use mapreduce::relay::{Relay, RelayOptions};
use mapreduce::wallet::Keypair;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Validator hotkey (ss58) whose job tickets to serve; repeat for several (adds to relay.trust).
    #[arg(long, value_name = "SS58")]
    pub trust: Vec<String>,
    /// Address to bind [default: relay.ip, 0.0.0.0].
    #[arg(long = "relay.ip", visible_alias = "relay-ip", value_name = "IP")]
    pub ip: Option<IpAddr>,
    /// Worker threads [default: the number of cores, at most 4].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Test builds only (feature `dishonest-relay`): cheat on every result block.
    #[cfg(feature = "dishonest-relay")]
    #[arg(long, hide = true, value_name = "MODE")]
    pub dishonest: Option<mapreduce::relay::dishonest::Dishonesty>,
}

pub fn run(args: RelayArgs, common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<ExitCode> {
    let mut flags = common.overrides();
    flags.extend(serve.overrides());
    if let Some(ip) = args.ip {
        flags.push(("relay.ip".into(), Value::from(ip.to_string())));
    }
    let loaded = Loader::from_process()
        .file(common.config.clone())
        .flags(flags)
        .load()?;
    let mut cfg = loaded.config.relay.clone();
    cfg.trust.extend(args.trust.iter().cloned());
    for t in &cfg.trust {
        Keypair::from_ss58(t).with_context(|| format!("--trust / relay.trust entry {t:?}"))?;
    }
    if cfg.trust.is_empty() {
        bail!("no trusted validator: pass --trust <validator ss58> or set relay.trust");
    }
    let _log = mapreduce::logging::init(&loaded.config.logging, "relay")?;
    #[cfg(feature = "dishonest-relay")]
    if let Some(mode) = args.dishonest {
        mapreduce::relay::dishonest::set(mode);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let addr = SocketAddr::new(cfg.ip, cfg.port);
    let options = RelayOptions::from_config(&cfg);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the relay port {addr}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        // The one line scripts and `mrctl bench local` read to find the port (with --relay.port 0).
        println!("relay listening on {local}");
        std::io::stdout().flush().context("writing to stdout")?;
        crate::systemd::ready(&format!("serving: relay {local}"));
        tracing::info!(%local, trusted = options.trust.len(), window = options.window_blocks, "relay started");
        let relay = Relay::new(options);
        tokio::select! {
            r = Arc::clone(&relay).serve(listener) => r.context("serving"),
            _ = crate::node::shutdown_signal() => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
