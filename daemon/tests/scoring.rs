//! Benchmarks, scores and weights end to end, all real processes: the subtensor runtime under
//! chopsticks, `mrd validator` on 127.0.0.5 and three `mrd miner`s on 127.0.0.2-4. A bench bot
//! hotkey asks for benchmarks through the signed control plane, runs a real all_reduce through
//! each assigned miner as 3 virtual peers (every element checked) and reports; one miner is
//! reported with a wrong result. After the round the weights are read back from the chain: the
//! wrong miner has none and the reason is in the validator's database, the others have some.
//! Refusals: a hotkey that is not a bot, an unknown and a duplicate benchmark id. Then kill -9
//! with a benchmark outstanding, restart: scores, EMAs and weight history are identical, and the
//! outstanding benchmark is still accepted. Every child is killed by pid when the test ends.

use mapreduce::control::connect;
use mapreduce::core::Version;
use mapreduce::validator::Store;
use mapreduce::wallet::Keypair;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{BenchmarkOutcome, ReportBenchmarkRequest, RequestBenchmarkRequest};
use mr_testkit::{DevNet, Proc, Step, Throughput, field, run_benchmark, write_config};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Code;

/// Benchmark tensor per virtual peer: 4 MiB of f32.
const BYTES: u64 = 4 << 20;
const PEERS: u32 = 3;

fn v() -> Option<mr_proto::v1::Version> {
    Some(Version::CURRENT.into())
}

fn request() -> RequestBenchmarkRequest {
    RequestBenchmarkRequest {
        version: v(),
        bytes: BYTES,
        peers: PEERS,
        miner_uid: None,
        dtype: 0,
    }
}

/// Everything a restart must keep: EMAs, the last round's scores, the weight history.
#[derive(Debug, PartialEq)]
struct Snapshot {
    emas: Vec<(String, u16, f64)>,
    round: Option<mapreduce::validator::records::RoundRow>,
    scores: Vec<mapreduce::validator::records::ScoreRow>,
    history: Vec<mapreduce::validator::records::WeightSetRow>,
}

fn snapshot(db: &Path) -> Snapshot {
    let s = Store::open(db).expect("db");
    let round = s.last_round().expect("round");
    Snapshot {
        emas: s.emas().expect("emas"),
        scores: round
            .as_ref()
            .map(|r| s.round_scores(r.round_id).expect("scores"))
            .unwrap_or_default(),
        round,
        history: s.weight_sets(1000).expect("history"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_benchmarks_score_miners_and_weights_reach_the_chain_and_survive_kill_9() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (ws, netuid, client, alice) = (net.ws.clone(), net.netuid, &net.client, &net.alice);
    t.done(&format!("chopsticks at {ws}"));
    let names = ["validator", "miner1", "miner2", "miner3"];
    let mut keys = Vec::new();
    let mut uids = Vec::new();
    for name in names {
        let (k, uid) = net.register(name).await;
        keys.push(k);
        uids.push(uid);
    }
    t.done(&format!(
        "subnet {netuid}: validator and 3 miners registered, uids {uids:?}"
    ));

    let bot = Keypair::generate(12).expect("bot");
    let stranger = Keypair::generate(12).expect("stranger");
    let interval = 5u64;
    let extra = format!(
        "benchmark_hotkeys = [\"{}\"]\nweights_interval_blocks = {interval}\nema_alpha = 0.5\n",
        bot.ss58_address()
    );
    let mut miners = Vec::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        let ip = format!("127.0.0.{}", i + 1);
        let cfg = write_config(dir.path(), name, netuid, &ws, &ip, "");
        let log = dir.path().join(format!("{name}.log"));
        let mut p = Proc::mrd(&home, &cfg, &["miner"], &log);
        p.wait_line("miner ready");
        miners.push(p);
    }
    t.done("3 miners ready");

    let vcfg = write_config(dir.path(), "validator", netuid, &ws, "127.0.0.5", &extra);
    let vlog = dir.path().join("validator.log");
    let mut validator = Proc::mrd(&home, &vcfg, &["validator"], &vlog);
    let line = validator.wait_line("validator ready");
    let endpoint = field(&line, "axon");
    let vhotkey = keys[0].ss58_address().to_string();
    let db = dir.path().join("validator.sqlite");
    t.done(&format!("validator ready at {endpoint}"));

    let as_bot = |key: &Keypair| {
        let (endpoint, vhotkey, key) = (endpoint.clone(), vhotkey.clone(), Arc::new(key.clone()));
        async move {
            ValidatorClient::new(
                connect(&endpoint, key, &vhotkey, Duration::from_secs(10))
                    .await
                    .expect("connect"),
            )
        }
    };
    let mut vc = as_bot(&bot).await;
    let mut sc = as_bot(&stranger).await;

    // Refusals change nothing.
    let e = sc
        .request_benchmark(request())
        .await
        .expect_err("not a bot");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("validator.benchmark_hotkeys"),
        "{}",
        e.message()
    );
    let mut unknown = run_benchmark_stub(12345);
    let e = vc
        .report_benchmark(unknown.clone())
        .await
        .expect_err("unknown id");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    unknown.benchmark_id = 0;
    assert!(vc.report_benchmark(unknown).await.is_err());
    t.done("refused: a hotkey that is no bot, an unknown benchmark id");

    // One benchmark per miner: least recently benchmarked first, so three different miners.
    let mut assigned = Vec::new();
    for _ in 0..3 {
        let a = vc
            .request_benchmark(request())
            .await
            .expect("assignment")
            .into_inner();
        assert_eq!(a.ticket.as_ref().expect("ticket").signature.len(), 64);
        assigned.push(a);
    }
    let mut hit: Vec<u32> = assigned.iter().map(|a| a.miner_uid).collect();
    hit.sort();
    assert_eq!(
        hit,
        uids[1..].iter().map(|u| u32::from(*u)).collect::<Vec<_>>()
    );
    // Every miner is busy now: a fourth request is refused, not double-booked.
    let e = vc.request_benchmark(request()).await.expect_err("all busy");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    t.done(&format!(
        "3 assignments, miners {hit:?}; a 4th refused while all are busy"
    ));

    let wrong = assigned[2].clone();
    for (i, a) in assigned.iter().enumerate() {
        let mut r = if a.benchmark_id == wrong.benchmark_id {
            // The miner under test returned a wrong sum (what a dishonest relay does).
            let mut r = run_benchmark_stub(a.benchmark_id);
            r.miner_uid = a.miner_uid;
            r.miner_hotkey = a.miner_hotkey.clone();
            r.outcome = BenchmarkOutcome::WrongResult as i32;
            r.reason = "element 17 of rank 1 is 3.5, expected 4.25".into();
            r
        } else {
            let (a, bot) = (a.clone(), bot.clone());
            tokio::task::spawn_blocking(move || {
                run_benchmark(&a, &bot, 40 + i as u64, BYTES, PEERS, Throughput::PerPeer)
            })
            .await
            .expect("bench")
        };
        let resp = vc
            .report_benchmark(r.clone())
            .await
            .expect("report")
            .into_inner();
        assert!(resp.accepted);
        if a.benchmark_id == wrong.benchmark_id {
            assert_eq!(resp.score, 0.0);
        } else {
            assert!(resp.score > 0.0, "{resp:?}");
            println!(
                "miner uid {}: {:.1} MiB/s per virtual peer, score {:.3}",
                a.miner_uid,
                r.upload_bytes_per_s / (1 << 20) as f64,
                resp.score
            );
        }
        // Duplicates are refused.
        r.reason = "again".into();
        let e = vc.report_benchmark(r).await.expect_err("duplicate");
        assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    }
    // Another bot's benchmark cannot be reported by a stranger either.
    let e = sc
        .report_benchmark(run_benchmark_stub(assigned[0].benchmark_id))
        .await
        .expect_err("stranger");
    assert_eq!(e.code(), Code::PermissionDenied);
    t.done("3 reports accepted (1 wrong result); duplicates refused");

    // The round comes `interval` blocks after the validator started; the weights follow.
    let start = client.block_number().await.expect("block");
    client
        .dev_new_blocks(interval as u32 + 1)
        .await
        .expect("blocks");
    let end = Instant::now() + Duration::from_secs(90);
    let on_chain = loop {
        let w = client.weights(netuid, uids[0]).await.expect("weights");
        if !w.is_empty() {
            break w;
        }
        assert!(
            Instant::now() < end,
            "no weights on chain 90 s after block {start}: {}",
            std::fs::read_to_string(&vlog).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("weights on chain from uid {}: {on_chain:?}", uids[0]);
    let wrong_uid = wrong.miner_uid as u16;
    assert!(
        on_chain.iter().all(|(u, _)| *u != wrong_uid),
        "the wrong miner has weight: {on_chain:?}"
    );
    for a in assigned
        .iter()
        .filter(|a| a.benchmark_id != wrong.benchmark_id)
    {
        let u = a.miner_uid as u16;
        assert!(
            on_chain.iter().any(|(x, w)| *x == u && *w > 0),
            "honest uid {u} has no weight: {on_chain:?}"
        );
    }
    // The database says why, and recorded the weight set.
    let end = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let s = snapshot(&db);
        if s.history.iter().any(|w| w.ok) {
            break s;
        }
        assert!(Instant::now() < end, "no weight set recorded: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let w = before
        .scores
        .iter()
        .find(|s| s.uid == wrong_uid)
        .expect("wrong miner scored");
    assert_eq!(w.weight, 0.0);
    assert_eq!(w.ema, 0.0);
    assert!(
        w.flags
            .iter()
            .any(|f| f == "wrong_result: element 17 of rank 1 is 3.5, expected 4.25"),
        "{w:?}"
    );
    assert!(
        before.history[0].ok && before.history[0].kind == "set",
        "{:?}",
        before.history
    );
    for s in before.scores.iter().filter(|s| s.uid != wrong_uid) {
        assert!(s.weight > 0.0 && s.ema > 0.0 && s.flags.is_empty(), "{s:?}");
    }
    t.done("weights on chain: the wrong miner has none (reason recorded), the honest ones some");

    // kill -9 with a benchmark outstanding, restart on the same port and database.
    let outstanding = vc
        .request_benchmark(request())
        .await
        .expect("assignment")
        .into_inner();
    let port = endpoint.rsplit(':').next().expect("port").to_string();
    let text = std::fs::read_to_string(&vcfg).expect("config");
    std::fs::write(
        &vcfg,
        text.replacen("port = 0", &format!("port = {port}"), 1),
    )
    .expect("config");
    let before = snapshot(&db);
    validator.child.kill().expect("kill -9");
    let _ = validator.child.wait();
    drop(validator);
    let mut validator = Proc::mrd(&home, &vcfg, &["validator"], &vlog);
    validator.wait_line("validator ready");
    // Let the restarted loop look at the chain a few times.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = snapshot(&db);
    assert_eq!(before, after, "state changed across kill -9");
    let mut vc = as_bot(&bot).await;
    let r = {
        let (a, bot) = (outstanding.clone(), bot.clone());
        tokio::task::spawn_blocking(move || {
            run_benchmark(&a, &bot, 99, BYTES, PEERS, Throughput::PerPeer)
        })
        .await
        .expect("bench")
    };
    let resp = vc
        .report_benchmark(r)
        .await
        .expect("report after restart")
        .into_inner();
    assert!(resp.accepted);
    t.done(&format!(
        "kill -9 and restart: {} EMAs, {} scores, {} weight sets identical; the outstanding benchmark was reported after",
        after.emas.len(),
        after.scores.len(),
        after.history.len()
    ));

    // Rate limit: the next round waits, with one warning naming the block, and no failed send.
    client
        .sudo_set_weights_rate_limit(alice, netuid, 1000)
        .await
        .expect("rate limit");
    let status = client
        .weights_status(netuid, &keys[0].public_key())
        .await
        .expect("status");
    let sets_before = snapshot(&db).history.len();
    client
        .dev_new_blocks(interval as u32 + 1)
        .await
        .expect("blocks");
    let end = Instant::now() + Duration::from_secs(60);
    let round2 = loop {
        let s = snapshot(&db);
        if let Some(r) = s
            .round
            .filter(|r| Some(r.round_id) != after.round.as_ref().map(|r| r.round_id))
        {
            break r;
        }
        assert!(Instant::now() < end, "no second round");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let want = format!(
        "round {} will be sent at block {}",
        round2.round_id, status.next_allowed_block
    );
    let end = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&vlog)
        .unwrap_or_default()
        .contains(&want)
    {
        assert!(Instant::now() < end, "no rate-limit warning {want:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let log = std::fs::read_to_string(&vlog).unwrap_or_default();
    assert_eq!(log.matches(&want).count(), 1, "warned more than once");
    assert_eq!(
        snapshot(&db).history.len(),
        sets_before,
        "a rate-limited round was sent"
    );
    assert!(
        validator.child.try_wait().expect("wait").is_none(),
        "validator exited"
    );
    t.done(&format!("rate limited: warned once ({want}), nothing sent"));

    // Commit-reveal: the waiting round is committed, then revealed in its reveal epoch.
    // Four blocks: the next round is not due yet (interval 5), so round 2 is what goes out.
    client
        .sudo_set_commit_reveal(alice, netuid, true)
        .await
        .expect("commit reveal on");
    client
        .sudo_set_commit_reveal_period(alice, netuid, 1)
        .await
        .expect("period");
    client
        .sudo_set_tempo(alice, netuid, 10)
        .await
        .expect("tempo");
    client
        .sudo_set_weights_rate_limit(alice, netuid, 0)
        .await
        .expect("rate limit off");
    let end = Instant::now() + Duration::from_secs(60);
    while !snapshot(&db)
        .history
        .iter()
        .any(|w| w.kind == "commit" && w.ok)
    {
        assert!(
            Instant::now() < end,
            "no commit: {}",
            std::fs::read_to_string(&vlog).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let commits = client
        .weight_commits(netuid, &keys[0].public_key())
        .await
        .expect("commits");
    assert_eq!(commits.len(), 1, "{commits:?}");
    client
        .dev_advance_to(commits[0].first_reveal_block)
        .await
        .expect("blocks");
    let end = Instant::now() + Duration::from_secs(60);
    let revealed = loop {
        let h = snapshot(&db).history;
        if let Some(w) = h.iter().find(|w| w.kind == "reveal") {
            break w.clone();
        }
        assert!(
            Instant::now() < end,
            "no reveal: {}",
            std::fs::read_to_string(&vlog).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(revealed.ok, "{revealed:?}");
    // Round 2, or a newer round if one came due before the commit: the newest goes out.
    assert!(revealed.round_id >= round2.round_id, "{revealed:?}");
    let on_chain = client.weights(netuid, uids[0]).await.expect("weights");
    let sent: Vec<(u16, u16)> = revealed
        .uids
        .iter()
        .copied()
        .zip(revealed.weights.iter().copied())
        .collect();
    let (a, b) = (
        mapreduce::chain::normalize(&on_chain),
        mapreduce::chain::normalize(&sent),
    );
    assert_eq!(a.len(), b.len(), "{on_chain:?} vs {sent:?}");
    for ((u, x), (v, y)) in a.iter().zip(&b) {
        assert_eq!(u, v);
        assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
    }
    t.done(&format!(
        "commit-reveal: round {} committed, revealed at block {}, on chain {on_chain:?}",
        revealed.round_id, revealed.block
    ));
    drop(validator);
    drop(miners);
    drop(net);
}

/// A report with nothing measured, for refusals and the wrong-result case.
fn run_benchmark_stub(id: u64) -> ReportBenchmarkRequest {
    ReportBenchmarkRequest {
        version: v(),
        benchmark_id: id,
        miner_uid: 0,
        miner_hotkey: String::new(),
        outcome: BenchmarkOutcome::Ok as i32,
        reason: String::new(),
        bytes: BYTES,
        peers: PEERS,
        seed: 1,
        checked_elements: 0,
        upload_bytes_per_s: 0.0,
        download_bytes_per_s: 0.0,
        broadcast_bytes_per_s: 0.0,
        latency_ms: 0.0,
        all_reduce_s: 0.0,
        broadcast_s: 0.0,
        started_at_ms: 0,
        finished_at_ms: 0,
    }
}
