//! The chain client against the real subtensor runtime (spec 218) under chopsticks.
//!
//! One chopsticks instance for the whole scenario (subnet → registrations → axons → metagraph →
//! weights → rate limit → commit-reveal), killed by pid when the test ends, pass or fail.
//! Needs node and chopsticks in $CHOPSTICKS_DIR (`.ci/run` installs it; installed on first use
//! otherwise).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use mapreduce::chain::dev::{DevChain, DevChainOptions, DevSubnetParams, create_dev_subnet};
use mapreduce::chain::{
    ChainClient, ChainError, ChainOptions, ChainSigner, Rao, normalize, to_u16_weights,
};
use mapreduce::wallet::Keypair;

fn start_chain() -> DevChain {
    let mut opts = DevChainOptions::new().expect("shared/chain spec");
    opts.install = true;
    DevChain::start(opts).expect("chopsticks starts")
}

fn options(url: String) -> ChainOptions {
    let mut o = ChainOptions::new(url);
    o.call_timeout = Duration::from_secs(60);
    o.inclusion_timeout = Duration::from_secs(60);
    o.watchdog = None;
    o
}

struct Step(Instant);
impl Step {
    fn done(&mut self, what: &str) {
        println!("[{:6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_lifecycle_against_the_real_runtime() {
    let mut t = Step(Instant::now());
    let chain = tokio::task::spawn_blocking(start_chain)
        .await
        .expect("join");
    t.done(&format!(
        "chopsticks up at {} (pid {:?})",
        chain.ws_url(),
        chain.pid()
    ));

    let client = ChainClient::connect(options(chain.ws_url()))
        .await
        .expect("connect");
    let info = client.info().await.expect("info");
    assert_eq!(info.spec_name, "node-subtensor");
    assert_eq!(info.spec_version, 218);
    assert_eq!(info.token_symbol.as_deref(), Some("TAO"));
    t.done(&format!(
        "connected: {} {} block {}",
        info.chain, info.spec_version, info.block
    ));

    // //Alice is sudo and rich: she creates the subnet and pays the registrations.
    let alice = ChainSigner::dev("Alice").expect("alice");
    let owner_hk = Keypair::generate(12).expect("owner hotkey");
    let hotkeys: Vec<ChainSigner> = (0..3)
        .map(|_| ChainSigner::new(Keypair::generate(12).expect("hotkey")).expect("signer"))
        .collect();

    let netuid = create_dev_subnet(
        &client,
        &alice,
        &owner_hk.public_key(),
        &DevSubnetParams::default(),
    )
    .await
    .expect("subnet created");
    assert!(
        netuid >= 2,
        "netuids 0 and 1 exist at genesis, got {netuid}"
    );
    assert!(client.subnet_exists(netuid).await.expect("exists"));
    assert_eq!(
        client
            .uid_of(netuid, &owner_hk.public_key())
            .await
            .expect("uid"),
        Some(0),
        "the owner hotkey gets uid 0"
    );
    t.done(&format!("subnet {netuid} created"));

    // Hotkeys pay their own fees for serve_axon and set_weights: fund them.
    for hk in &hotkeys {
        client
            .transfer(&alice, &hk.public_key(), Rao::from_tao(10.0))
            .await
            .expect("fund hotkey");
    }
    let bal = client
        .balance(&hotkeys[0].public_key())
        .await
        .expect("balance");
    assert_eq!(bal, Rao::from_tao(10.0));
    t.done("hotkeys funded");

    // A hotkey that is not registered is told how to register.
    let err = client
        .serve_axon(&hotkeys[0], netuid, "127.0.0.2".parse().unwrap(), 8091, 1)
        .await
        .expect_err("not registered yet");
    println!("unregistered serve_axon: {err}");
    assert!(
        err.to_string()
            .contains(&format!("mrctl register --netuid {netuid}")),
        "{err}"
    );

    let burn = client.burn(netuid).await.expect("burn");
    let mut uids = Vec::new();
    for hk in &hotkeys {
        let uid = client
            .burned_register(&alice, netuid, &hk.public_key())
            .await
            .expect("burned_register");
        uids.push(uid);
    }
    assert_eq!(uids, vec![1, 2, 3]);
    t.done(&format!("3 hotkeys registered (burn {burn} TAO each)"));

    // serve_axon refuses exactly 127.0.0.1: the decoded message says what to do.
    let err = client
        .serve_axon(&hotkeys[0], netuid, "127.0.0.1".parse().unwrap(), 8091, 1)
        .await
        .expect_err("127.0.0.1 is refused");
    println!("serve_axon 127.0.0.1: {err}");
    assert_eq!(err.runtime_error(), Some("InvalidIpAddress"));
    assert!(err.to_string().contains("--axon.external_ip"), "{err}");

    for (i, hk) in hotkeys.iter().enumerate() {
        let ip: IpAddr = format!("127.0.0.{}", i + 2).parse().unwrap();
        client
            .serve_axon(hk, netuid, ip, 8091 + i as u16, 100 + i as u32)
            .await
            .expect("serve_axon");
    }
    t.done("axons served on 127.0.0.2-4");

    let mg = client.metagraph(netuid).await.expect("metagraph");
    assert_eq!(mg.neurons.len(), 4, "{mg:?}");
    assert_eq!(mg.neurons[0].hotkey, owner_hk.ss58_address());
    assert!(mg.neurons[0].axon.is_none());
    for (i, hk) in hotkeys.iter().enumerate() {
        let n = mg.by_hotkey(hk.ss58()).expect("neuron");
        assert_eq!(n.uid, uids[i]);
        assert_eq!(n.coldkey, alice.ss58(), "alice's coldkey owns the hotkey");
        let axon = n.axon.as_ref().expect("axon");
        assert_eq!(axon.ip.to_string(), format!("127.0.0.{}", i + 2));
        assert_eq!(axon.port, 8091 + i as u16);
        assert_eq!(axon.version, 100 + i as u32);
        assert_eq!(axon.ip_type, 4);
        assert!(n.registration_block > 0);
    }
    t.done(&format!("metagraph read back at block {}", mg.block));

    // set_weights from uid 1, read back normalised.
    let hyper = client
        .hyperparameters(netuid)
        .await
        .expect("hyperparameters");
    assert_eq!(hyper.weights_rate_limit, 0);
    assert!(!hyper.commit_reveal_enabled);
    let version_key = hyper.weights_version_key;
    let (wu, ww) = to_u16_weights(&[1, 2, 3], &[4.0, 2.0, 1.0]).expect("weights");
    client
        .set_weights(&hotkeys[0], netuid, &wu, &ww, version_key)
        .await
        .expect("set_weights");
    let stored = client.weights(netuid, uids[0]).await.expect("weights");
    let normalized = client
        .weights_normalized(netuid, uids[0])
        .await
        .expect("weights");
    println!("weights of uid {}: {stored:?} → {normalized:?}", uids[0]);
    let expect = [(1u16, 4.0 / 7.0), (2, 2.0 / 7.0), (3, 1.0 / 7.0)];
    assert_eq!(normalized.len(), 3);
    for ((u, w), (eu, ew)) in normalized.iter().zip(expect) {
        assert_eq!(*u, eu);
        assert!((w - ew).abs() < 1e-3, "uid {u}: {w} vs {ew}");
    }
    assert_eq!(normalize(&stored), normalized);
    t.done("weights set and read back normalised");

    // Rate limit: the second set within the limit fails with the next allowed block.
    client
        .sudo_set_weights_rate_limit(&alice, netuid, 50)
        .await
        .expect("sudo rate limit");
    let status = client
        .weights_status(netuid, &hotkeys[0].public_key())
        .await
        .expect("status");
    assert!(status.last_update > 0);
    assert_eq!(status.next_allowed_block, status.last_update + 50);
    assert!(!status.can_set_now());
    let err = client
        .set_weights(&hotkeys[0], netuid, &wu, &ww, version_key)
        .await
        .expect_err("rate limited");
    println!("rate limited: {err}");
    assert_eq!(err.runtime_error(), Some("SettingWeightsTooFast"));
    assert!(
        err.to_string().contains(&format!(
            "rate limited: next allowed at block {}",
            status.next_allowed_block
        )),
        "{err}"
    );
    t.done("rate limit hit and decoded");

    // Commit-reveal: on, reveal one epoch after the commit, short tempo.
    client
        .sudo_set_weights_rate_limit(&alice, netuid, 0)
        .await
        .expect("sudo");
    client
        .sudo_set_tempo(&alice, netuid, 10)
        .await
        .expect("tempo");
    client
        .sudo_set_commit_reveal(&alice, netuid, true)
        .await
        .expect("commit reveal on");
    client
        .sudo_set_commit_reveal_period(&alice, netuid, 1)
        .await
        .expect("reveal period");
    let hyper = client
        .hyperparameters(netuid)
        .await
        .expect("hyperparameters");
    assert!(hyper.commit_reveal_enabled);
    assert_eq!(hyper.commit_reveal_period, 1);
    assert_eq!(hyper.tempo, 10);

    let err = client
        .set_weights(&hotkeys[1], netuid, &wu, &ww, version_key)
        .await
        .expect_err("set_weights refused under commit-reveal");
    assert_eq!(err.runtime_error(), Some("CommitRevealEnabled"), "{err}");

    // Commit at the start of an epoch (epoch(b) = (b + netuid + 1) / (tempo + 1)), so the reveal
    // epoch is a whole tempo away and an early reveal can be seen to fail.
    let period = u64::from(hyper.tempo) + 1;
    let best = client.block_number().await.expect("block");
    let next_included = best + 1;
    let to_epoch_start = (period - (next_included + u64::from(netuid) + 1) % period) % period;
    client
        .dev_advance_to(best + to_epoch_start)
        .await
        .expect("blocks");
    let (cu, cw) = to_u16_weights(&[1, 3], &[1.0, 3.0]).expect("weights");
    let pending = client
        .commit_weights(&hotkeys[1], netuid, &cu, &cw, version_key)
        .await
        .expect("commit");
    let commits = client
        .weight_commits(netuid, &hotkeys[1].public_key())
        .await
        .expect("commits");
    println!("commit {pending:?}\non chain {commits:?}");
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].hash, pending.hash);
    let first_reveal = commits[0].first_reveal_block;
    assert_eq!(first_reveal, pending.commit_block + period, "{commits:?}");

    let err = client
        .reveal_weights(&hotkeys[1], &pending)
        .await
        .expect_err("too early");
    println!("early reveal: {err}");
    assert!(matches!(err, ChainError::Failed { .. }), "{err}");

    let now = client.dev_advance_to(first_reveal).await.expect("blocks");
    t.done(&format!(
        "committed at {}, advanced to {now}",
        pending.commit_block
    ));
    client
        .reveal_weights(&hotkeys[1], &pending)
        .await
        .expect("reveal");
    let revealed = client
        .weights_normalized(netuid, uids[1])
        .await
        .expect("weights");
    assert_eq!(revealed.len(), 2);
    assert_eq!(revealed[0].0, 1);
    assert!((revealed[0].1 - 0.25).abs() < 1e-3, "{revealed:?}");
    assert!((revealed[1].1 - 0.75).abs() < 1e-3, "{revealed:?}");
    assert!(
        client
            .weight_commits(netuid, &hotkeys[1].public_key())
            .await
            .expect("commits")
            .is_empty()
    );
    t.done("commit then reveal completed");

    drop(client);
    drop(chain);
    t.done("chopsticks stopped");
}
