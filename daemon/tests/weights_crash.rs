//! Issue 12: a kill -9 of a real `mrd validator` around an on-chain weight set neither duplicates
//! nor loses it. The subtensor runtime under chopsticks, a real `mrd validator`, and a test-only
//! crash point (`MAPREDUCE_TEST_PAUSE_AT`, see mapreduce::core::testhook): the daemon stops at
//! the point and is killed there with SIGKILL, then restarted without the hook.
//!
//! Each round is put into the validator's database while it is down (the weight loop sends an
//! unsent round at start), one per crash point:
//! - `before_submit`: the intent is stored, nothing sent;
//! - `after_submit`: the extrinsic is with the node (chopsticks includes it at once), the daemon
//!   has not seen it included;
//! - `after_inclusion`: included, the weight set not yet written to the database.
//!
//! After each restart: exactly one successful weight set row for the round in the database,
//! exactly one extrinsic from the validator's account on chain (its nonce moved by one: no
//! duplicate, none lost), and the chain holds the round's weights.

use mapreduce::core::testhook::PAUSE_AT;
use mapreduce::validator::Store;
use mr_testkit::{DevNet, NodeConfig, Proc, Step, free_port};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(120);

fn ok_sets(db: &std::path::Path, round: u64) -> usize {
    Store::open(db)
        .expect("db")
        .weight_sets(1000)
        .expect("weight sets")
        .iter()
        .filter(|w| w.round_id == round && w.ok && w.kind == "set")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_around_a_weight_set_neither_duplicates_nor_loses_it() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let dir = dir.path();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let net = DevNet::start(&dir.join("wallets")).await;
    let (vkey, vuid) = net.register("validator").await;
    let (_, m1) = net.register("miner1").await;
    let (_, m2) = net.register("miner2").await;
    let client = &net.client;
    t.done(&format!(
        "chopsticks at {}, subnet {}: validator uid {vuid}, miners {m1} and {m2}",
        net.ws, net.netuid
    ));

    // A fixed axon port, so a restart finds its axon served and sends no serve_axon: the only
    // extrinsics of the validator's account after the first start are weight sets.
    let cfg = NodeConfig::new("validator", net.netuid, &net.ws, "127.0.0.5")
        .axon_port(free_port())
        .window_blocks(None)
        .extra("weights_interval_blocks = 100000\n")
        .write(dir);
    let db = dir.join("validator.sqlite");
    let log = |n: &str| dir.join(format!("validator-{n}.log"));
    let mut v = Proc::mrd(&home, &cfg, &["validator"], &log("first"));
    v.wait_line("validator ready");
    v.kill9();
    t.done("validator started once (axon served), killed");

    let account = vkey.public_key();
    for (k, point) in [
        (1u16, "before_submit"),
        (2, "after_submit"),
        (3, "after_inclusion"),
    ] {
        let weights = [65535u16, 10_000 * k];
        let block = client.block_number().await.expect("block");
        let round = Store::open(&db)
            .expect("db")
            .put_round(block, 0, &[m1, m2], &weights, "", &[])
            .expect("round");
        let before = client.account_nonce(&account).await.expect("nonce");

        let mut v = Proc::mrd_env(
            &home,
            &cfg,
            &["validator"],
            &log(point),
            &[(PAUSE_AT, point)],
        );
        v.wait_log(&format!("test pause at {point}"), WAIT);
        v.kill9();
        // The kill is inside the window: the outcome is not in the database.
        assert_eq!(
            ok_sets(&db, round),
            0,
            "round {round} recorded before the kill"
        );
        let sent = point != "before_submit";
        if sent {
            // chopsticks includes at once; wait for it so the restart sees the chain as it is.
            let end = Instant::now() + WAIT;
            while client.account_nonce(&account).await.expect("nonce") == before {
                assert!(
                    Instant::now() < end,
                    "the extrinsic sent at {point} never landed"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        t.done(&format!(
            "round {round}: killed at {point} (extrinsic {})",
            if sent { "included" } else { "not sent" }
        ));

        let mut v = Proc::mrd(
            &home,
            &cfg,
            &["validator"],
            &log(&format!("{point}-restart")),
        );
        let end = Instant::now() + WAIT;
        while ok_sets(&db, round) == 0 {
            assert!(
                Instant::now() < end,
                "round {round} never recorded after the restart: {}",
                v.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Two more weight-loop ticks (3 s each): a duplicate would be sent within them.
        tokio::time::sleep(Duration::from_secs(7)).await;
        v.kill9();
        let text = v.log_text();
        let after = client.account_nonce(&account).await.expect("nonce");
        assert_eq!(
            after,
            before + 1,
            "round {round} ({point}): {} extrinsics from the validator, expected exactly 1: {text}",
            after - before
        );
        assert_eq!(ok_sets(&db, round), 1, "round {round}: {text}");
        let on_chain = client.weights(net.netuid, vuid).await.expect("weights");
        assert_eq!(on_chain, vec![(m1, weights[0]), (m2, weights[1])]);
        let how = if text.contains("were already set on chain") {
            "found on chain, recorded without sending"
        } else {
            assert!(text.contains("sending again with the same nonce"), "{text}");
            "resent with the same nonce"
        };
        t.done(&format!(
            "round {round} after the restart: one extrinsic, one row, weights {on_chain:?} on chain ({how})"
        ));
    }
}
