//! Failover through the real daemons: the subtensor runtime under chopsticks, `mrd validator`
//! (validator.spares = 1) and three `mrd miner`s. Two peers ask for a job on two miners: the
//! validator reserves the third as the spare and names it in the signed ticket. One of the job's
//! miners is killed (-9) in the middle of the all_reduce: both peers still get the exact result
//! (through the spare), the job ends `done`, and the validator records the failure against the
//! killed miner's hotkey, which its next scoring round counts as a failed sample.

use mapreduce::core::{Collective, Dtype, Op};
use mapreduce::peer::{Session, SessionOptions, ValidatorAddr, check};
use mapreduce::validator::Store;
use mapreduce::wallet::Keypair;
use mr_proto::v1::JobState;
use mr_testkit::{DevNet, Proc, Step, field, write_config};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

/// 64 MiB of f32 per peer: long enough that the kill lands mid-transfer.
const ELEMENTS: u64 = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_killed_mid_job_is_replaced_by_the_validators_spare_and_scored() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let net = DevNet::start(&dir.path().join("wallets")).await;
    let (vkey, _) = net.register("validator").await;
    let mut miner_keys = Vec::new();
    for i in 1..=3 {
        miner_keys.push(net.register(&format!("miner{i}")).await.0);
    }
    t.done(&format!(
        "subnet {}: validator and 3 miners registered",
        net.netuid
    ));

    let mut miners: Vec<Option<Proc>> = Vec::new();
    for i in 1..=3 {
        let name = format!("miner{i}");
        let ip = format!("127.0.0.{}", i + 1);
        let cfg = write_config(dir.path(), &name, net.netuid, &net.ws, &ip, "");
        let log = dir.path().join(format!("{name}.log"));
        let mut p = Proc::mrd(&home, &cfg, &["miner"], &log);
        p.wait_line("miner ready");
        miners.push(Some(p));
    }
    let vcfg = write_config(
        dir.path(),
        "validator",
        net.netuid,
        &net.ws,
        "127.0.0.5",
        "spares = 1",
    );
    let mut validator = Proc::mrd(
        &home,
        &vcfg,
        &["validator"],
        &dir.path().join("validator.log"),
    );
    let line = validator.wait_line("validator ready");
    let addr = ValidatorAddr {
        endpoint: field(&line, "axon"),
        hotkey: vkey.ss58_address().to_string(),
    };
    t.done("3 miners and the validator ready");

    let peers: Vec<Keypair> = (0..2)
        .map(|_| Keypair::generate(12).expect("peer"))
        .collect();
    // Every peer is connected (ticket in hand) before anyone starts; then the test kills the
    // miner of shard 0 while the all_reduce runs.
    let connected = Arc::new(Barrier::new(3));
    let started = Arc::new(Barrier::new(3));
    let ticket_miners = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let runs = {
        let (addr, peers) = (addr.clone(), peers.clone());
        let (connected, started, ticket_miners) = (
            Arc::clone(&connected),
            Arc::clone(&started),
            Arc::clone(&ticket_miners),
        );
        std::thread::spawn(move || {
            std::thread::scope(|s| {
                let hs: Vec<_> = peers
                    .iter()
                    .enumerate()
                    .map(|(rank, k)| {
                        let (addr, connected, started, ticket_miners) =
                            (&addr, &connected, &started, &ticket_miners);
                        s.spawn(move || {
                            let rank = rank as u32;
                            let opts = SessionOptions {
                                miners: 2,
                                ..SessionOptions::default()
                            };
                            let mut sess = Session::init(
                                addr,
                                k,
                                2,
                                rank,
                                "failover",
                                ELEMENTS,
                                Dtype::F32,
                                opts,
                            )
                            .unwrap_or_else(|e| panic!("rank {rank} init: {e}"));
                            if rank == 0 {
                                let job = sess.peer().job();
                                let names = |v: &[mapreduce::wire::MinerSlot]| {
                                    v.iter().map(|m| m.hotkey.clone()).collect::<Vec<_>>()
                                };
                                *ticket_miners.lock().expect("lock") =
                                    (names(&job.miners), names(&job.spares));
                            }
                            let mut data = vec![0f32; ELEMENTS as usize];
                            check::fill(9, rank, &mut data);
                            connected.wait();
                            started.wait();
                            let r = sess.all_reduce(&mut data, Op::Sum).map(|()| {
                                check::verify(
                                    9,
                                    2,
                                    Collective::AllReduce(Op::Sum),
                                    Dtype::F32,
                                    rank,
                                    &data,
                                )
                                .map_err(|m| m.to_string())
                            });
                            let lost = sess.peer().lost_miners().to_vec();
                            let id = sess.job_id();
                            sess.close();
                            (id, r.map_err(|e| e.to_string()), lost)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("peer thread"))
                    .collect::<Vec<_>>()
            })
        })
    };
    tokio::task::spawn_blocking({
        let connected = Arc::clone(&connected);
        move || connected.wait()
    })
    .await
    .expect("connected");
    let (job_miners, spares) = ticket_miners.lock().expect("lock").clone();
    assert_eq!(job_miners.len(), 2, "{job_miners:?}");
    assert_eq!(
        spares.len(),
        1,
        "the validator reserved a spare: {spares:?}"
    );
    assert!(!job_miners.contains(&spares[0]));
    let victim = job_miners[0].clone();
    let idx = miner_keys
        .iter()
        .position(|k| k.ss58_address() == victim)
        .expect("a miner of ours");
    t.done(&format!(
        "ticket: miners {job_miners:?}, spare {spares:?}; killing miner{} mid-transfer",
        idx + 1
    ));
    tokio::task::spawn_blocking({
        let started = Arc::clone(&started);
        move || started.wait()
    })
    .await
    .expect("started");
    // Stopped at once, killed a moment later: a fast data path can finish the whole
    // all_reduce within a few hundred milliseconds, and then there is nothing left to fail over.
    let mut killed = miners[idx].take().expect("victim");
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &killed.pid().to_string()])
        .status()
        .expect("kill -STOP");
    assert!(stopped.success(), "kill -STOP {}", killed.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    killed.child.kill().expect("kill -9");
    let _ = killed.child.wait();
    let results = tokio::task::spawn_blocking(move || runs.join().expect("peers"))
        .await
        .expect("join");
    let job = results[0].0;
    for (rank, (id, r, lost)) in results.iter().enumerate() {
        assert_eq!(*id, job);
        match r {
            Ok(Ok(())) => {}
            other => panic!("rank {rank}: expected an exact result, got {other:?}"),
        }
        assert_eq!(
            lost,
            &vec![victim.clone()],
            "rank {rank} names the dead miner"
        );
    }
    t.done(&format!("job {job}: both peers exact through the spare"));

    let store = Store::open(&dir.path().join("validator.sqlite")).expect("db");
    let row = store.job(job).expect("read").expect("row");
    assert_eq!(row.state, JobState::Done as i32, "{row:?}");
    let failures = store.job_failures_since(0).expect("failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].0.as_str(), failures[0].1),
        (victim.as_str(), job)
    );
    t.done("validator: job done, the failure recorded against the killed miner");
}
