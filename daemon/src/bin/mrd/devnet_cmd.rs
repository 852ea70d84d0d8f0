//! `mrd devnet setup`: prepares a dev chain (chopsticks) for `scripts/devnet`: creates the subnet
//! (owned by the first wallet's hotkey, paid by //Alice), funds every wallet's hotkey and
//! coldkey, and registers every hotkey. Idempotent: what exists is left alone.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use mapreduce::chain::dev::{DevSubnetParams, create_dev_subnet};
use mapreduce::chain::{ChainClient, ChainOptions, ChainSigner, Rao};
use mapreduce::config::flags::{CommonArgs, ServeArgs};
use mapreduce::wallet::{Wallet, expand_tilde};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DevnetCmd {
    /// Create the subnet, fund and register the given wallets (their "default"-or-configured hotkey).
    Setup(SetupArgs),
    /// Build empty blocks on the dev chain (chopsticks builds blocks only for transactions), so
    /// block-driven work such as the validator's scoring rounds comes due. Prints the best block.
    Blocks(BlocksArgs),
}

#[derive(Debug, Args)]
pub struct BlocksArgs {
    /// Blocks to build.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Then keep building until the best block is at least this one.
    #[arg(long)]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Wallet names; the first one's hotkey owns the subnet (uid 0).
    #[arg(long, value_delimiter = ',', required = true)]
    pub wallets: Vec<String>,
    /// TAO sent to each hotkey (fees of serve_axon, set_weights) and coldkey.
    #[arg(long, default_value_t = 100.0)]
    pub fund_tao: f64,
}

pub fn run(cmd: DevnetCmd, common: &CommonArgs, serve: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::node::load(common, serve)?;
    match cmd {
        DevnetCmd::Setup(args) => crate::node::runtime()?.block_on(setup(args, config)),
        DevnetCmd::Blocks(args) => crate::node::runtime()?.block_on(blocks(args, config)),
    }
}

async fn blocks(args: BlocksArgs, config: mapreduce::config::Config) -> anyhow::Result<ExitCode> {
    let mut opts = ChainOptions::from_config(&config.subtensor);
    opts.watchdog = None;
    let endpoint = opts.endpoint.clone();
    let client = ChainClient::connect(opts)
        .await
        .with_context(|| format!("connecting to the dev chain at {endpoint}"))?;
    // One block per call: a long dev_newBlock can outlive the call timeout on a busy machine.
    let mut best = client.block_number().await?;
    let mut built = 0;
    while built < args.count || args.to.is_some_and(|t| best < t) {
        best = client
            .dev_new_blocks(1)
            .await
            .with_context(|| format!("dev_newBlock on {endpoint} (is it chopsticks?)"))?;
        built += 1;
    }
    println!("{best}");
    Ok(ExitCode::SUCCESS)
}

async fn setup(args: SetupArgs, config: mapreduce::config::Config) -> anyhow::Result<ExitCode> {
    let mut opts = ChainOptions::from_config(&config.subtensor);
    opts.watchdog = None;
    let endpoint = opts.endpoint.clone();
    let client = ChainClient::connect(opts)
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;
    let alice = ChainSigner::dev("Alice").context("//Alice")?;
    let path = expand_tilde(&config.wallet.path);
    let hotkey_name = config.wallet.hotkey.clone();
    let mut keys = Vec::new();
    for name in &args.wallets {
        let w = Wallet::new(&path, name.as_str(), hotkey_name.as_str());
        let hk = w
            .hotkey_public(&hotkey_name)
            .with_context(|| format!("hotkey of wallet {name:?} under {}", path.display()))?;
        let ck = w
            .coldkeypub()
            .with_context(|| format!("coldkey of wallet {name:?}"))?;
        keys.push((name.clone(), hk, ck));
    }
    let Some((_, owner, _)) = keys.first() else {
        bail!("--wallets names no wallet");
    };
    let netuid = config.netuid;
    if !client.subnet_exists(netuid).await? {
        let created = create_dev_subnet(
            &client,
            &alice,
            &owner.public_key(),
            &DevSubnetParams::default(),
        )
        .await
        .context("creating the subnet")?;
        if created != netuid {
            bail!(
                "the chain gave netuid {created}, the config says {netuid}: set netuid = {created}"
            );
        }
        println!("subnet {netuid} created");
    }
    let amount = Rao::from_tao(args.fund_tao);
    for (name, hk, ck) in &keys {
        for (what, key) in [("hotkey", hk), ("coldkey", ck)] {
            if client.balance(&key.public_key()).await? < amount {
                client
                    .transfer(&alice, &key.public_key(), amount)
                    .await
                    .with_context(|| format!("funding the {what} of {name}"))?;
            }
        }
        let uid = match client.uid_of(netuid, &hk.public_key()).await? {
            Some(uid) => uid,
            None => client
                .burned_register(&alice, netuid, &hk.public_key())
                .await
                .with_context(|| format!("registering {name}"))?,
        };
        println!("{name}: hotkey {} uid {uid}", hk.ss58_address());
    }
    println!("devnet chain ready: netuid {netuid} at {endpoint}");
    Ok(ExitCode::SUCCESS)
}
