//! A test network on the real subtensor runtime under chopsticks (mapreduce::chain::dev): a
//! subnet created by Alice, hotkeys in a wallets folder, funded and registered on demand.

use mapreduce::chain::dev::{DevChain, DevChainOptions, DevSubnetParams, create_dev_subnet};
use mapreduce::chain::{ChainClient, ChainOptions, ChainSigner, Rao};
use mapreduce::validator::Store;
use mapreduce::validator::records::WeightSetRow;
use mapreduce::wallet::{Keypair, Wallet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Proc;

pub struct DevNet {
    /// Stops chopsticks when dropped.
    pub chain: DevChain,
    pub client: ChainClient,
    pub alice: ChainSigner,
    /// The subnet's owner hotkey (uid 0).
    pub owner: Keypair,
    pub netuid: u16,
    pub ws: String,
    pub wallets: PathBuf,
}

impl DevNet {
    /// Chopsticks (installed if missing), a client with generous timeouts (2 shared cores), and
    /// a new subnet; hotkeys go to `wallets`.
    pub async fn start(wallets: &Path) -> DevNet {
        let mut o = DevChainOptions::new().expect("chain spec");
        o.install = true;
        DevNet::start_with(o, wallets).await
    }

    pub async fn start_with(opts: DevChainOptions, wallets: &Path) -> DevNet {
        let chain = tokio::task::spawn_blocking(move || DevChain::start(opts).expect("chopsticks"))
            .await
            .expect("join");
        let ws = chain.ws_url();
        let client = DevNet::client(&ws).await;
        let alice = ChainSigner::dev("Alice").expect("alice");
        let owner = Keypair::generate(12).expect("owner");
        let netuid = create_dev_subnet(
            &client,
            &alice,
            &owner.public_key(),
            &DevSubnetParams::default(),
        )
        .await
        .expect("subnet");
        DevNet {
            chain,
            client,
            alice,
            owner,
            netuid,
            ws,
            wallets: wallets.to_path_buf(),
        }
    }

    /// A chain client for `ws` without watchdog, with 60 s call and inclusion timeouts.
    pub async fn client(ws: &str) -> ChainClient {
        let mut o = ChainOptions::new(ws.to_string());
        o.watchdog = None;
        o.call_timeout = Duration::from_secs(60);
        o.inclusion_timeout = Duration::from_secs(60);
        ChainClient::connect(o).await.expect("connect")
    }

    /// A new unencrypted hotkey in wallet `name` (not on chain).
    pub fn hotkey(&self, name: &str) -> Keypair {
        Wallet::new(&self.wallets, name, "default")
            .create_hotkey(12, false)
            .expect("hotkey")
    }

    /// [`DevNet::hotkey`], funded with 10 TAO by Alice and burn-registered on the subnet:
    /// (key, uid).
    pub async fn register(&self, name: &str) -> (Keypair, u16) {
        let k = self.hotkey(name);
        self.client
            .transfer(&self.alice, &k.public_key(), Rao::from_tao(10.0))
            .await
            .expect("fund");
        let uid = self
            .client
            .burned_register(&self.alice, self.netuid, &k.public_key())
            .await
            .expect("register");
        (k, uid)
    }
}

/// Builds the blocks that make a validator's scoring round come due and waits (up to 120 s) for
/// the first successful weight set in its `store`. One block at a time: on a loaded machine a
/// long dev_newBlock outlives the call timeout, and the next one goes on.
pub async fn weight_set_after_blocks(
    client: &ChainClient,
    store: &Store,
    validator: &Proc,
) -> WeightSetRow {
    for _ in 0..8 {
        if let Err(e) = client.dev_new_blocks(1).await {
            println!("   dev_newBlock: {e} (the next one goes on)");
        }
    }
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(w) = store
            .weight_sets(10)
            .expect("weight sets")
            .into_iter()
            .find(|w| w.ok)
        {
            return w;
        }
        assert!(
            Instant::now() < end,
            "no weight set in 120 s: {}",
            validator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
