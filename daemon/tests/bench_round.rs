//! Acceptance of issue 7, all real processes: the subtensor runtime under chopsticks, `mrd
//! validator`, 3 honest `mrd miner`s and 1 dishonest one (`--dishonest corrupt`, a test-only
//! build), and 2 bench bots (`mrd bench`). Once every miner has a reported benchmark, blocks are
//! built so the validator's scoring round comes due; then: the dishonest miner's weight is 0
//! with the wrong result recorded, every honest miner's weight is above 0, and the weights are
//! on the chain (read back). Every child is killed by pid when the test ends.
#![cfg(feature = "dishonest-relay")]

use mapreduce::validator::Store;
use mapreduce::wallet::Keypair;
use mr_testkit::{DevNet, NodeConfig, Proc, Step, field};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_zeroes_the_cheat_and_pays_the_honest_miners_on_chain() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (ws, netuid, client) = (net.ws.clone(), net.netuid, &net.client);
    t.done(&format!("chopsticks at {ws}"));
    let mut keys: HashMap<&str, Keypair> = HashMap::new();
    for name in ["validator", "miner1", "miner2", "miner3", "cheat"] {
        keys.insert(name, net.register(name).await.0);
    }
    // Bots are not registered: the validator admits them by validator.benchmark_hotkeys.
    for name in ["bench1", "bench2"] {
        keys.insert(name, net.hotkey(name));
    }
    let ss58 = |n: &str| keys[n].ss58_address().to_string();
    t.done(&format!(
        "subnet {netuid}: validator and 4 miners registered"
    ));

    let mut procs = Vec::new();
    let miners = [
        ("miner1", "127.0.0.2"),
        ("miner2", "127.0.0.3"),
        ("miner3", "127.0.0.4"),
        ("cheat", "127.0.0.6"),
    ];
    for (name, ip) in miners {
        let cfg = NodeConfig::new(name, netuid, &ws, ip)
            .window_blocks(None)
            .without_validator_section()
            .extra("");
        let cheat = (name == "cheat").then_some("corrupt");
        procs.push(Proc::miner(&home, dir.path(), &cfg, cheat));
    }
    t.done("3 honest miners and 1 dishonest miner ready");

    let db = dir.path().join("validator.sqlite");
    // Rounds every 6 blocks: chopsticks builds blocks only for transactions, so no round comes
    // before this test builds the blocks, once every miner has been benchmarked.
    let vextra = format!(
        "[validator]\nsync_interval_blocks = 1\ndb = \"{}\"\nbenchmark_hotkeys = [\"{}\", \"{}\"]\nweights_interval_blocks = 6\n",
        db.display(),
        ss58("bench1"),
        ss58("bench2")
    );
    let vcfg = NodeConfig::new("validator", netuid, &ws, "127.0.0.5")
        .window_blocks(None)
        .without_validator_section()
        .extra(&vextra)
        .write(dir.path());
    let mut validator = Proc::mrd(
        &home,
        &vcfg,
        &["validator"],
        &dir.path().join("validator.log"),
    );
    let vline = validator.wait_line("validator ready");
    println!("{vline}");
    let vaxon = field(&vline, "axon");
    let vuid: u16 = field(&vline, "uid").parse().expect("uid");
    t.done("validator ready");

    for (name, ip) in [("bench1", "127.0.0.7"), ("bench2", "127.0.0.8")] {
        let extra = format!(
            "[bench]\nmib = 4\npeers = 3\nvalidator = \"{vaxon}\"\nvalidator_hotkey = \"{}\"\ninterval_secs = 1\nbackoff_initial_secs = 1\nbackoff_max_secs = 5\n",
            ss58("validator")
        );
        let cfg = NodeConfig::new(name, netuid, &ws, ip)
            .window_blocks(None)
            .without_validator_section()
            .extra(&extra)
            .write(dir.path());
        let mut p = Proc::mrd(
            &home,
            &cfg,
            &["bench"],
            &dir.path().join(format!("{name}.log")),
        );
        println!("{}", p.wait_line("bench ready"));
        procs.push(p);
    }
    t.done("2 bench bots ready");

    // Every miner benchmarked and reported at least once (by either bot).
    let store = Store::open(&db).expect("db");
    let miner_keys: Vec<String> = miners.iter().map(|(n, _)| ss58(n)).collect();
    let end = Instant::now() + Duration::from_secs(240);
    let rows = loop {
        let rows = store.benchmarks_since(0).expect("benchmarks");
        let covered = miner_keys.iter().all(|m| {
            rows.iter()
                .any(|r| &r.miner_hotkey == m && r.reported_at_ms > 0)
        });
        if covered {
            break rows;
        }
        assert!(
            Instant::now() < end,
            "not every miner benchmarked in 240 s: {rows:#?}\nbench1: {}\nvalidator: {}",
            procs[4].log_text(),
            validator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let bots: std::collections::HashSet<&str> = rows.iter().map(|r| r.bot.as_str()).collect();
    t.done(&format!(
        "{} benchmarks reported, by {} bots; every miner covered",
        rows.len(),
        bots.len()
    ));
    for r in rows.iter().filter(|r| r.reported_at_ms > 0) {
        let cheat = r.miner_hotkey == ss58("cheat");
        println!(
            "   uid {} {}: outcome {} {} ({:.0} MB/s down, all_reduce {:.2} s, {} elements checked)",
            r.miner_uid,
            if cheat { "cheat " } else { "honest" },
            r.outcome,
            r.reason,
            r.download / 1e6,
            r.all_reduce_s,
            r.checked_elements
        );
        if cheat {
            assert_eq!(r.outcome, 2, "the cheat's result is wrong: {r:?}");
            assert!(r.reason.contains("block"), "{}", r.reason);
        } else {
            assert_eq!(r.outcome, 1, "an honest miner passes: {r:?}");
            assert_eq!(r.checked_elements, 2 * 3 * (4 << 20) / 4);
        }
    }

    // Build the blocks that make the round due; the weight set follows within a few ticks.
    let set = mr_testkit::devnet::weight_set_after_blocks(client, &store, &validator).await;
    t.done(&format!(
        "weights set at block {}: uids {:?} weights {:?}",
        set.block, set.uids, set.weights
    ));

    let round = store.last_round().expect("round").expect("a round");
    let scores = store.round_scores(round.round_id).expect("scores");
    for s in &scores {
        println!(
            "   uid {} weight {:.3} ({}) flags {:?}",
            s.uid, s.weight, s.weight_u16, s.flags
        );
    }
    let by_key = |k: &str| {
        scores
            .iter()
            .find(|s| s.hotkey == k)
            .unwrap_or_else(|| panic!("{k} scored: {scores:#?}"))
    };
    let cheat = by_key(&ss58("cheat"));
    assert_eq!(cheat.weight, 0.0, "{cheat:?}");
    assert_eq!(cheat.weight_u16, 0, "{cheat:?}");
    assert!(
        cheat.flags.iter().any(|f| f.starts_with("wrong_result")),
        "the reason is recorded: {cheat:?}"
    );
    for name in ["miner1", "miner2", "miner3"] {
        let s = by_key(&ss58(name));
        assert!(s.weight > 0.0 && s.weight_u16 > 0, "{name}: {s:?}");
    }

    // On chain, read back: the honest miners have weight, the cheat none.
    let meta = client.metagraph(netuid).await.expect("metagraph");
    let uid = |n: &str| meta.by_hotkey(&ss58(n)).expect("registered").uid;
    let on_chain: HashMap<u16, u16> = client
        .weights(netuid, vuid)
        .await
        .expect("weights")
        .into_iter()
        .collect();
    println!("   on chain from uid {vuid}: {on_chain:?}");
    for name in ["miner1", "miner2", "miner3"] {
        assert!(
            on_chain.get(&uid(name)).copied().unwrap_or(0) > 0,
            "{name} has weight on chain: {on_chain:?}"
        );
    }
    assert_eq!(on_chain.get(&uid("cheat")).copied().unwrap_or(0), 0);
    t.done("weights on chain: honest > 0, cheat 0");

    // The bots keep going and are still alive.
    for p in procs.iter_mut() {
        assert!(
            p.child.try_wait().expect("wait").is_none(),
            "{}",
            p.log_text()
        );
    }
    drop(net);
}
