//! Acceptance of issue 13 (live-job verification), all real processes: the subtensor runtime
//! under chopsticks, `mrd validator`, 2 honest `mrd miner`s and 1 `--dishonest corrupt-clients`
//! miner (a test-only build: honest for bench bots' jobs, one bit flipped in about one result
//! block in 50 of client jobs, with a valid frame checksum so peers accept it). Two client peers
//! with their own hotkeys run jobs through all three miners with the Rust `Session` API.
//!
//! Detection probability. Blocks are 4 KiB (`relay.block_kib = 4`), the tensor is 3 shards of
//! 64 blocks, every job runs 4 all_reduces, and `validator.sample_rate = 0.5`. The cheat's shard
//! moves 256 blocks per job; each is corrupted with probability 1/50 and sampled with
//! probability 1/2, independently (the sample seed is the validator's secret), so a job misses
//! the cheat with probability (1 - 1/100)^256 = 0.076 and 3 jobs with 0.076^3 = 4.4e-4.
//!
//! Cases, on one devnet start:
//! 1. A bench bot (`mrd bench`) benchmarks every miner; the cheat passes (it is honest for bots).
//!    The bot is then stopped, so only client jobs follow.
//! 2. 20 client jobs: the cheat is flagged (`corrupted`, naming miner, shard and block) within
//!    the first 3, and `Session::verify` raises it. Right after the job that flagged it, blocks
//!    are built (chopsticks builds blocks only for transactions) so the validator's scoring
//!    round comes due: the round records the cheat's score as 0 with the reason, and the weights
//!    read back from the chain give the cheat 0 and each honest miner more than 0. The honest
//!    miners are never flagged in any of the 20 jobs.
//! 3. A peer that reports fabricated inputs (crafted with the library, signed by its real key,
//!    under a real miner-signed receipt) is flagged, and no miner is.
//! 4. `validator.sample_rate` is hot-reloadable: `mrctl config set` reports it applied live and
//!    the next job is created with the new rate (`mrctl` must be built: `cargo test
//!    --workspace` builds it, or `cargo build -p mrctl`).
//!
//! Run time: 117 s and 133 s measured at load 4 to 9 on 2 cores (104 s before the bench bot, the
//! weight round and the sample-rate case, at load 6; 53 s quiet then). The bench coverage takes
//! about 5 s and the weight round about 16 s.
#![cfg(feature = "dishonest-relay")]

use mapreduce::control::sign;
use mapreduce::core::{Dtype, Op};
use mapreduce::peer::report::requests;
use mapreduce::peer::{Session, SessionError, SessionOptions, ValidatorAddr, check};
use mapreduce::validator::Store;
use mapreduce::validator::verify::Verdict;
use mapreduce::wallet::Keypair;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_testkit::{DevNet, NodeConfig, Proc, Step, field, mrctl};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 3 shards of 64 blocks of 1024 f32 (4 KiB).
const ELEMENTS: u64 = 3 * 64 * 1024;
const OPS: u32 = 4;

/// What one peer of one job saw.
#[derive(Debug)]
struct PeerRun {
    job: u64,
    verify: Result<mapreduce::peer::session::Verification, String>,
    corrupted: bool,
}

fn opts() -> SessionOptions {
    SessionOptions {
        join_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(10),
        miners: 3,
    }
}

/// Both peers run job `name`: OPS all_reduces, then verify.
fn client_job(addr: &ValidatorAddr, peers: &[Keypair], name: &str, seed: u64) -> Vec<PeerRun> {
    std::thread::scope(|s| {
        let hs: Vec<_> = peers
            .iter()
            .enumerate()
            .map(|(rank, k)| {
                s.spawn(move || {
                    let (rank, p) = (rank as u32, peers.len() as u32);
                    let mut sess =
                        Session::init(addr, k, p, rank, name, ELEMENTS, Dtype::F32, opts())
                            .unwrap_or_else(|e| panic!("rank {rank} init: {e}"));
                    let mut corrupted = false;
                    for op in 0..OPS {
                        let mut data = vec![0f32; ELEMENTS as usize];
                        check::fill(seed + u64::from(op), rank, &mut data);
                        sess.all_reduce(&mut data, Op::Sum)
                            .unwrap_or_else(|e| panic!("rank {rank} op {op}: {e}"));
                        corrupted |= check::verify(
                            seed + u64::from(op),
                            p,
                            mapreduce::core::Collective::AllReduce(Op::Sum),
                            Dtype::F32,
                            rank,
                            &data,
                        )
                        .is_err();
                    }
                    let verify = match sess.verify(Duration::from_secs(20)) {
                        Ok(v) => Ok(v),
                        Err(e @ SessionError::Corrupted { .. }) => Err(e.to_string()),
                        Err(e) => panic!("rank {rank} verify: {e}"),
                    };
                    let job = sess.job_id();
                    sess.close();
                    PeerRun {
                        job,
                        verify,
                        corrupted,
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("peer")).collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_blocks_catch_a_miner_cheating_clients_and_a_peer_cannot_frame_one() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (ws, netuid) = (net.ws.clone(), net.netuid);
    t.done(&format!("chopsticks at {ws}"));
    let mut keys = HashMap::new();
    for name in ["validator", "miner1", "miner2", "cheat"] {
        keys.insert(name, net.register(name).await.0);
    }
    // The bot is not registered: the validator admits it by validator.benchmark_hotkeys.
    keys.insert("bench1", net.hotkey("bench1"));
    let peers: Vec<Keypair> = ["peer0", "peer1"].iter().map(|n| net.hotkey(n)).collect();
    let ss58 = |n: &str| keys[n].ss58_address().to_string();
    t.done("validator and 3 miners registered");

    let mut procs = Vec::new();
    for (name, ip) in [
        ("miner1", "127.0.0.2"),
        ("miner2", "127.0.0.3"),
        ("cheat", "127.0.0.4"),
    ] {
        let cfg = NodeConfig::new(name, netuid, &ws, ip).without_validator_section();
        let cheat = (name == "cheat").then_some("corrupt-clients");
        procs.push(Proc::miner(&home, dir.path(), &cfg, cheat));
    }
    t.done("2 honest miners and 1 corrupt-clients miner ready");

    let db = dir.path().join("validator.sqlite");
    // Rounds every 6 blocks: no block is built (so no round comes) until this test builds them.
    let vextra = format!(
        "[validator]\nclients = [\"*\"]\nsync_interval_blocks = 1\ndb = \"{}\"\nsample_rate = 0.5\nminers_per_job = 3\nspares = 0\nbenchmark_hotkeys = [\"{}\"]\nweights_interval_blocks = 6\n",
        db.display(),
        ss58("bench1")
    );
    let vcfg = NodeConfig::new("validator", netuid, &ws, "127.0.0.5")
        .without_validator_section()
        .relay_lines("block_kib = 4")
        .axon_lines("rate_per_sec = 1000.0\nrate_burst = 2000")
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
    let vuid: u16 = field(&vline, "uid").parse().expect("uid");
    let vsock = field(&vline, "admin");
    let addr = ValidatorAddr {
        endpoint: field(&vline, "axon"),
        hotkey: ss58("validator"),
    };
    let store = Store::open(&db).expect("db");
    let end = Instant::now() + Duration::from_secs(60);
    while store
        .miners()
        .expect("miners")
        .iter()
        .filter(|m| m.reachable)
        .count()
        < 3
    {
        assert!(
            Instant::now() < end,
            "miners not polled: {}",
            validator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.done("validator ready, 3 miners reachable");

    // Case 1: a bench bot covers every miner; the cheat passes its benchmark.
    let bextra = format!(
        "[bench]\nmib = 1\npeers = 3\nvalidator = \"{}\"\nvalidator_hotkey = \"{}\"\ninterval_secs = 1\nbackoff_initial_secs = 1\nbackoff_max_secs = 5\n",
        addr.endpoint,
        ss58("validator")
    );
    let bcfg = NodeConfig::new("bench1", netuid, &ws, "127.0.0.6")
        .without_validator_section()
        .extra(&bextra)
        .write(dir.path());
    let mut bot = Proc::mrd(&home, &bcfg, &["bench"], &dir.path().join("bench1.log"));
    println!("{}", bot.wait_line("bench ready"));
    let miner_keys: Vec<String> = ["miner1", "miner2", "cheat"].map(ss58).to_vec();
    let end = Instant::now() + Duration::from_secs(180);
    let rows = loop {
        let rows = store.benchmarks_since(0).expect("benchmarks");
        let ok = |m: &String| {
            rows.iter()
                .any(|r| &r.miner_hotkey == m && r.reported_at_ms > 0 && r.outcome == 1)
        };
        if miner_keys.iter().all(ok) {
            break rows;
        }
        assert!(
            Instant::now() < end,
            "not every miner benchmarked in 180 s: {rows:#?}\nbot: {}\nvalidator: {}",
            bot.log_text(),
            validator.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    drop(bot);
    for r in rows.iter().filter(|r| r.reported_at_ms > 0) {
        println!(
            "   bench of uid {} ({}): outcome {} {}",
            r.miner_uid,
            if r.miner_hotkey == ss58("cheat") {
                "cheat"
            } else {
                "honest"
            },
            r.outcome,
            r.reason
        );
        assert_ne!(r.outcome, 2, "no wrong result for a bot: {r:?}");
    }
    assert!(
        store.last_round().expect("round").is_none(),
        "no round before the test builds blocks"
    );
    t.done("bench bot: every miner passed a benchmark, the cheat too; bot stopped");

    // Case 2: 20 client jobs.
    let mut flagged_at = None;
    let mut jobs = Vec::new();
    for i in 0..20u64 {
        let runs = tokio::task::spawn_blocking({
            let (addr, peers) = (addr.clone(), peers.clone());
            move || client_job(&addr, &peers, &format!("job-{i}"), 1000 * i)
        })
        .await
        .expect("job");
        let job = runs[0].job;
        jobs.push(job);
        let failed = store.failed_checks(job).expect("checks");
        for c in &failed {
            assert_eq!(c.verdict, Verdict::Miner, "{c:?}");
            assert_eq!(c.culprit, ss58("cheat"), "only the cheat is flagged: {c:?}");
        }
        let v = store.job_verdict(job).expect("verdict");
        println!(
            "   job {i} ({job}): {} checked, {} failed, peers saw corruption: {}, verdict {:?}",
            v.checked,
            v.failed,
            runs.iter().any(|r| r.corrupted),
            v.verdict
        );
        assert!(
            v.checked > 0,
            "job {i}: nothing checked: {}",
            validator.log_text()
        );
        if !failed.is_empty() {
            assert!(v.verdict.starts_with("corrupted: miner "), "{v:?}");
            assert!(
                v.verdict.contains("shard") && v.verdict.contains("block"),
                "{v:?}"
            );
            // Every peer that verified after the check learned it as an error.
            let raised: Vec<&String> = runs
                .iter()
                .filter_map(|r| r.verify.as_ref().err())
                .collect();
            assert!(!raised.is_empty(), "verify() raised nothing: {runs:?}");
            assert!(raised[0].contains("corrupted"), "{}", raised[0]);
            if flagged_at.is_none() {
                flagged_at = Some(i);
                t.done(&format!("cheat flagged at client job {i}"));
                weights_on_chain(&net, &store, &validator, vuid, &ss58).await;
                t.done("round: the cheat's weight is 0 on chain, the honest miners' above 0");
            }
        } else {
            for r in &runs {
                assert!(r.verify.is_ok(), "{r:?}");
            }
        }
    }
    let flagged_at = flagged_at.expect("the cheat was never flagged in 20 jobs");
    assert!(flagged_at < 3, "flagged only at client job {flagged_at}");
    t.done(&format!(
        "flagged first at client job {flagged_at}; honest miners never flagged in 20 jobs"
    ));

    // Case 3: peer0 reports fabricated inputs under its real receipts; peer1 is honest.
    let crafted = tokio::task::spawn_blocking({
        let (addr, peers) = (addr.clone(), peers.clone());
        move || {
            std::thread::scope(|s| {
                let hs: Vec<_> = peers
                    .iter()
                    .enumerate()
                    .map(|(rank, k)| {
                        let addr = &addr;
                        s.spawn(move || {
                            let rank = rank as u32;
                            let mut sess = Session::init(
                                addr,
                                k,
                                2,
                                rank,
                                "framing",
                                ELEMENTS,
                                Dtype::F32,
                                opts(),
                            )
                            .expect("init");
                            let mut data = vec![0f32; ELEMENTS as usize];
                            check::fill(7, rank, &mut data);
                            let job = sess.job_id();
                            if rank == 1 {
                                sess.all_reduce(&mut data, Op::Sum).expect("all_reduce");
                                sess.verify(Duration::from_secs(1)).ok();
                                sess.close();
                                return (job, Vec::new());
                            }
                            // Rank 0 runs the collective on the bare peer, so the session does
                            // not send the evidence: the test sends a doctored copy instead.
                            sess.peer()
                                .all_reduce(&mut data, Op::Sum)
                                .expect("all_reduce");
                            let ev = sess.peer().take_evidence();
                            sess.close();
                            (job, ev)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("peer"))
                    .find(|(_, ev)| !ev.is_empty())
                    .expect("rank 0 kept evidence")
            })
        }
    })
    .await
    .expect("framing job");
    let (job, evidence) = crafted;
    let ch = sign::connect(
        &addr.endpoint,
        Arc::new(peers[0].clone()),
        &addr.hotkey,
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    let mut client = ValidatorClient::new(ch);
    let mut sent = 0;
    for mut ev in evidence {
        for s in &mut ev.samples {
            // A different input than the one sent: as if the miner had summed something else.
            if let Some(b) = s.input.first_mut() {
                *b ^= 0x40;
            }
        }
        for req in requests(job, &ev) {
            client.report_samples(req).await.expect("report accepted");
            sent += 1;
        }
    }
    assert!(sent > 0);
    let failed = store.failed_checks(job).expect("checks");
    println!(
        "   framing job {job}: {} blocks judged failed",
        failed.len()
    );
    assert!(!failed.is_empty(), "the fabricated report was not judged");
    for c in &failed {
        assert_eq!(c.verdict, Verdict::Peer, "{c:?}");
        assert_eq!(c.culprit, peers[0].ss58_address(), "{c:?}");
        assert!(c.reason.contains("never signed for"), "{}", c.reason);
    }
    let v = store.job_verdict(job).expect("verdict");
    assert!(v.verdict.starts_with("peer flagged"), "{v:?}");
    assert!(
        !store
            .corruptions_since(0)
            .expect("corruptions")
            .iter()
            .any(|(_, j, _)| *j == job),
        "no miner is flagged in the framing job"
    );
    t.done("the peer with fabricated inputs is flagged, no miner is");

    // Case 4: validator.sample_rate applied live to the jobs created after the change.
    assert_eq!(
        store
            .sample_spec(jobs[0])
            .expect("spec")
            .expect("seeded")
            .ppm,
        500_000
    );
    let out = mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "config",
            "set",
            "validator.sample_rate",
            "0.25",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mrctl config set: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("applied live: validator.sample_rate"),
        "{said}"
    );
    validator.wait_log(
        "validator.sample_rate applied live",
        Duration::from_secs(10),
    );
    let runs = tokio::task::spawn_blocking({
        let (addr, peers) = (addr.clone(), peers.clone());
        move || client_job(&addr, &peers, "after-reload", 99_000)
    })
    .await
    .expect("job");
    let spec = store
        .sample_spec(runs[0].job)
        .expect("spec")
        .expect("seeded");
    assert_eq!(spec.ppm, 250_000, "the new rate for the next job");
    let v = store.job_verdict(runs[0].job).expect("verdict");
    assert!(v.checked > 0, "{v:?}");
    t.done(&format!(
        "sample_rate 0.5 -> 0.25 applied live: the next job sampled at 250000 ppm, {} blocks checked",
        v.checked
    ));

    for p in procs.iter_mut() {
        assert!(p.alive(), "{}", p.log_text());
    }
    drop(net);
}

/// Builds the blocks that make the validator's scoring round come due and waits for its weight
/// set; then checks the round (the cheat's score 0 with the live-job reason, the honest miners'
/// weight above 0) and the weights read back from the chain.
async fn weights_on_chain(
    net: &DevNet,
    store: &Store,
    validator: &Proc,
    vuid: u16,
    ss58: &dyn Fn(&str) -> String,
) {
    let set = mr_testkit::devnet::weight_set_after_blocks(&net.client, store, validator).await;
    println!(
        "   weights set at block {}: uids {:?} weights {:?}",
        set.block, set.uids, set.weights
    );
    let round = store.last_round().expect("round").expect("a round");
    let scores = store.round_scores(round.round_id).expect("scores");
    for s in &scores {
        println!(
            "   uid {} round {:.3} weight {:.3} ({}) flags {:?}",
            s.uid, s.round, s.weight, s.weight_u16, s.flags
        );
    }
    let by_key = |k: &str| {
        scores
            .iter()
            .find(|s| s.hotkey == k)
            .unwrap_or_else(|| panic!("{k} scored: {scores:#?}"))
    };
    let cheat = by_key(&ss58("cheat"));
    assert_eq!(cheat.round, 0.0, "{cheat:?}");
    assert_eq!(cheat.weight_u16, 0, "{cheat:?}");
    assert!(
        cheat
            .flags
            .iter()
            .any(|f| f.starts_with("wrong_result") && f.contains("corrupted live job")),
        "the reason is recorded: {cheat:?}"
    );
    for name in ["miner1", "miner2"] {
        let s = by_key(&ss58(name));
        assert!(s.weight > 0.0 && s.weight_u16 > 0, "{name}: {s:?}");
        assert!(
            s.flags.iter().all(|f| !f.starts_with("wrong_result")),
            "{s:?}"
        );
    }
    let meta = net.client.metagraph(net.netuid).await.expect("metagraph");
    let uid = |n: &str| meta.by_hotkey(&ss58(n)).expect("registered").uid;
    let on_chain: HashMap<u16, u16> = net
        .client
        .weights(net.netuid, vuid)
        .await
        .expect("weights")
        .into_iter()
        .collect();
    println!("   on chain from uid {vuid}: {on_chain:?}");
    for name in ["miner1", "miner2"] {
        assert!(
            on_chain.get(&uid(name)).copied().unwrap_or(0) > 0,
            "{name} has weight on chain: {on_chain:?}"
        );
    }
    assert_eq!(
        on_chain.get(&uid("cheat")).copied().unwrap_or(0),
        0,
        "the cheat has no weight on chain: {on_chain:?}"
    );
}
