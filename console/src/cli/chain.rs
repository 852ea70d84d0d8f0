//! `mrctl chain info`, `mrctl metagraph`, `mrctl register`: talk to subtensor directly (no daemon).

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use mapreduce::chain::{ChainClient, ChainOptions, ChainSigner, Metagraph, Neuron, Rao};
use mapreduce::config::{Config, Loader};
use mapreduce::wallet::{Wallet, password_env_var, password_from_env};
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum ChainCmd {
    /// Endpoint, chain name, runtime version, block, and this wallet's hotkey uid and stake.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `mrctl metagraph` sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    Uid,
    Stake,
    Tao,
    Incentive,
    Dividends,
    Emission,
    Updated,
    Hotkey,
}

#[derive(Debug, Args)]
pub struct MetagraphArgs {
    /// Print JSON: {"netuid", "block", "neurons": [{"uid", "hotkey", "coldkey", "axon": {"ip", "port", ...}, ...}]}.
    #[arg(long)]
    json: bool,
    /// Sort the table by this column.
    #[arg(long, value_enum, default_value_t = SortKey::Uid)]
    sort: SortKey,
    /// Reverse the order (largest first for numbers).
    #[arg(long)]
    reverse: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Do not ask for confirmation (for scripts).
    #[arg(long, short = 'y')]
    yes: bool,
}

fn load(loader: Loader) -> Result<Config> {
    Ok(loader.load().map_err(|e| anyhow::anyhow!("{e}"))?.config)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn connect(cfg: &Config) -> Result<ChainClient> {
    let mut opts = ChainOptions::from_config(&cfg.subtensor);
    // One-shot commands need no watchdog.
    opts.watchdog = None;
    let endpoint = opts.endpoint.clone();
    ChainClient::connect(opts)
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

fn finish(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run_chain(cmd: ChainCmd, loader: Loader) -> ExitCode {
    match cmd {
        ChainCmd::Info { json } => finish(info(json, loader)),
    }
}

pub fn run_metagraph(args: MetagraphArgs, loader: Loader) -> ExitCode {
    finish(metagraph(args, loader))
}

pub fn run_register(args: RegisterArgs, loader: Loader) -> ExitCode {
    finish(register(args, loader))
}

#[derive(Debug, Serialize)]
struct HotkeyStanding {
    ss58: String,
    netuid: u16,
    uid: Option<u16>,
    alpha_stake: Rao,
    tao_stake: Rao,
}

#[derive(Debug, Serialize)]
struct InfoOut {
    #[serde(flatten)]
    chain: mapreduce::chain::ChainInfo,
    /// None when the configured wallet has no hotkey file.
    hotkey: Option<HotkeyStanding>,
    /// Why `hotkey` is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    hotkey_error: Option<String>,
}

fn info(json: bool, loader: Loader) -> Result<()> {
    let cfg = load(loader)?;
    let wallet = Wallet::from_config(&cfg.wallet);
    let hotkey = wallet.hotkey_public(wallet.hotkey_name());
    let netuid = cfg.netuid;
    let out = runtime()?.block_on(async {
        let client = connect(&cfg).await?;
        let chain = client.info().await?;
        let (hotkey, hotkey_error) = match hotkey {
            Ok(kp) => {
                let pk = kp.public_key();
                let uid = if client.subnet_exists(netuid).await? {
                    client.uid_of(netuid, &pk).await?
                } else {
                    None
                };
                let alpha_stake = client.stake(&pk, netuid).await?;
                let tao_stake = client.stake(&pk, 0).await?;
                (
                    Some(HotkeyStanding {
                        ss58: kp.ss58_address().to_string(),
                        netuid,
                        uid,
                        alpha_stake,
                        tao_stake,
                    }),
                    None,
                )
            }
            Err(e) => (None, Some(e.to_string())),
        };
        anyhow::Ok(InfoOut {
            chain,
            hotkey,
            hotkey_error,
        })
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let c = &out.chain;
    println!("endpoint   {}", c.endpoint);
    println!("chain      {}", c.chain);
    println!(
        "runtime    {} spec {} (transaction version {})",
        c.spec_name, c.spec_version, c.transaction_version
    );
    println!("block      {}", c.block);
    println!("genesis    {}", c.genesis_hash);
    match (&out.hotkey, &out.hotkey_error) {
        (Some(h), _) => {
            let uid = h.uid.map(|u| u.to_string()).unwrap_or_else(|| {
                format!("not registered (mrctl register --netuid {})", h.netuid)
            });
            println!("hotkey     {}", h.ss58);
            println!("netuid     {}", h.netuid);
            println!("uid        {uid}");
            println!(
                "stake      {} α on subnet {}, {} τ on root",
                h.alpha_stake, h.netuid, h.tao_stake
            );
        }
        (None, Some(e)) => println!("hotkey     none: {e}"),
        (None, None) => {}
    }
    Ok(())
}

fn sort_neurons(neurons: &mut [Neuron], key: SortKey, reverse: bool) {
    neurons.sort_by(|a, b| {
        let o = match key {
            SortKey::Uid => a.uid.cmp(&b.uid),
            SortKey::Stake => a.alpha_stake.cmp(&b.alpha_stake),
            SortKey::Tao => a.tao_stake.cmp(&b.tao_stake),
            SortKey::Incentive => a.incentive.total_cmp(&b.incentive),
            SortKey::Dividends => a.dividends.total_cmp(&b.dividends),
            SortKey::Emission => a.emission.cmp(&b.emission),
            SortKey::Updated => a.last_update.cmp(&b.last_update),
            SortKey::Hotkey => a.hotkey.cmp(&b.hotkey),
        };
        o.then(a.uid.cmp(&b.uid))
    });
    if reverse {
        neurons.reverse();
    }
}

fn short(ss58: &str) -> String {
    if ss58.len() > 12 {
        format!("{}…{}", &ss58[..6], &ss58[ss58.len() - 4..])
    } else {
        ss58.to_string()
    }
}

/// The metagraph as a table, one row per uid.
pub fn render_table(mg: &Metagraph) -> String {
    let header = [
        "UID",
        "HOTKEY",
        "COLDKEY",
        "STAKE(α)",
        "ROOT(τ)",
        "VPERMIT",
        "ACTIVE",
        "INCENTIVE",
        "DIVIDENDS",
        "EMISSION(ρ)",
        "UPDATED",
        "AXON",
    ];
    let rows: Vec<Vec<String>> = mg
        .neurons
        .iter()
        .map(|n| {
            vec![
                n.uid.to_string(),
                short(&n.hotkey),
                short(&n.coldkey),
                format!("{:.4}", n.alpha_stake.as_tao()),
                format!("{:.4}", n.tao_stake.as_tao()),
                if n.validator_permit { "*" } else { "" }.to_string(),
                if n.active { "*" } else { "" }.to_string(),
                format!("{:.5}", n.incentive),
                format!("{:.5}", n.dividends),
                n.emission.0.to_string(),
                mg.block.saturating_sub(n.last_update).to_string(),
                n.axon
                    .as_ref()
                    .map(|a| a.addr())
                    .unwrap_or_else(|| "none".into()),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = format!(
        "subnet {}  block {}  {} neurons\n",
        mg.netuid,
        mg.block,
        mg.neurons.len()
    );
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

fn metagraph(args: MetagraphArgs, loader: Loader) -> Result<()> {
    let cfg = load(loader)?;
    let netuid = cfg.netuid;
    let mut mg = runtime()?.block_on(async {
        let client = connect(&cfg).await?;
        client
            .metagraph(netuid)
            .await
            .with_context(|| format!("reading the metagraph of subnet {netuid}"))
    })?;
    sort_neurons(&mut mg.neurons, args.sort, args.reverse);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&mg)?);
    } else {
        print!("{}", render_table(&mg));
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    if !io::stdin().is_terminal() {
        bail!("{question}: no terminal to ask on; pass --yes to confirm");
    }
    print!("{question} [y/N] ");
    io::stdout().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn register(args: RegisterArgs, loader: Loader) -> Result<()> {
    let cfg = load(loader)?;
    let netuid = cfg.netuid;
    let wallet = Wallet::from_config(&cfg.wallet);
    let hotkey = wallet
        .hotkey_public(wallet.hotkey_name())
        .with_context(|| {
            format!(
                "reading hotkey {:?} of wallet {:?}",
                wallet.hotkey_name(),
                wallet.name()
            )
        })?;
    let coldkeypub = wallet
        .coldkeypub()
        .with_context(|| format!("reading the coldkey of wallet {:?}", wallet.name()))?;
    let rt = runtime()?;
    let client = rt.block_on(connect(&cfg))?;
    let hk = hotkey.public_key();

    if let Some(uid) = rt.block_on(client.uid_of(netuid, &hk))? {
        println!(
            "hotkey {} is already registered on subnet {netuid} at uid {uid}",
            hotkey.ss58_address()
        );
        return Ok(());
    }
    let burn = rt.block_on(client.burn(netuid))?;
    let balance = rt.block_on(client.balance(&coldkeypub.public_key()))?;
    println!(
        "subnet {netuid}: registration burns τ{burn}; coldkey {} holds τ{balance}",
        coldkeypub.ss58_address()
    );
    if balance < burn {
        bail!(
            "the coldkey holds τ{balance}, less than the burn τ{burn}: transfer TAO to {} first",
            coldkeypub.ss58_address()
        );
    }
    if !args.yes
        && !confirm(&format!(
            "Register hotkey {} on subnet {netuid} for τ{burn}?",
            hotkey.ss58_address()
        ))?
    {
        bail!("not registered: cancelled");
    }

    let encrypted = wallet
        .coldkey_file()
        .encryption()
        .map(|e| e.is_encrypted())
        .unwrap_or(false);
    let password = if encrypted {
        match password_from_env(wallet.name()) {
            Some(p) => Some(p),
            None => {
                if !io::stdin().is_terminal() {
                    bail!(
                        "the coldkey is encrypted: set {} or run in a terminal",
                        password_env_var(wallet.name())
                    );
                }
                Some(mapreduce::wallet::Zeroizing::new(
                    rpassword::prompt_password("Coldkey password: ")
                        .context("reading the password")?,
                ))
            }
        }
    } else {
        None
    };
    let coldkey = wallet
        .coldkey(password.as_deref().map(|s| s.as_str()))
        .context("decrypting the coldkey")?;
    let signer = ChainSigner::new(coldkey)?;
    let uid = rt.block_on(client.burned_register(&signer, netuid, &hk))?;
    println!(
        "registered hotkey {} on subnet {netuid}: uid {uid}",
        hotkey.ss58_address()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapreduce::chain::AxonInfo;

    fn neuron(uid: u16, stake: u64) -> Neuron {
        Neuron {
            uid,
            hotkey: format!("5Hotkey{uid}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            coldkey: "5Coldxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into(),
            axon: (uid == 1).then(|| AxonInfo {
                block: 5,
                version: 1,
                ip: "127.0.0.2".parse().expect("ip"),
                port: 8091,
                ip_type: 4,
                protocol: 4,
            }),
            alpha_stake: Rao(stake),
            tao_stake: Rao(0),
            validator_permit: uid == 0,
            active: true,
            last_update: 10,
            incentive: 0.5,
            emission: Rao(0),
            dividends: 0.0,
            registration_block: 3,
        }
    }

    #[test]
    fn sorts_and_renders() {
        let mut mg = Metagraph {
            netuid: 3,
            block: 12,
            neurons: vec![neuron(0, 5), neuron(1, 9), neuron(2, 1)],
        };
        sort_neurons(&mut mg.neurons, SortKey::Stake, true);
        let order: Vec<u16> = mg.neurons.iter().map(|n| n.uid).collect();
        assert_eq!(order, vec![1, 0, 2]);
        let t = render_table(&mg);
        assert!(t.starts_with("subnet 3  block 12  3 neurons\nUID"), "{t}");
        assert!(t.contains("127.0.0.2:8091"), "{t}");
        assert!(t.contains("none"), "{t}");
        assert_eq!(t.lines().count(), 5);
    }
}
