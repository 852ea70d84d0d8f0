//! Acceptance of the daemons, all real processes: the subtensor runtime under chopsticks,
//! `mrd validator` on 127.0.0.5 and three `mrd miner`s on 127.0.0.2-4 (registered, axons served
//! on chain), three peers that rendezvous through the validator and all_reduce, the job `done`
//! in the validator's SQLite; then kill -9 the validator, restart it, and the first job still
//! answers `done` while a second job runs; `mrd miner --drain` drains a miner. Every child is killed by pid when the test ends.

use mapreduce::control::connect;
use mapreduce::core::Version;
use mapreduce::peer::ValidatorAddr;
use mapreduce::validator::Store;
use mapreduce::wallet::Keypair;
use mr_proto::v1::miner_client::MinerClient;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{AcceptJobRequest, JobState, JobStatusRequest, ReleaseJobRequest};
use mr_testkit::{
    DevNet, Proc, Reap, Step, all_reduce_job, field, metrics_addr, mrd_bin, sample, scrape,
    write_config,
};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tensor per peer: 64 MiB of f32.
const ELEMENTS: u64 = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_and_three_miners_serve_a_job_and_survive_kill_9() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (ws, netuid) = (net.ws.clone(), net.netuid);
    t.done(&format!("chopsticks at {ws}"));
    let names = ["validator", "miner1", "miner2", "miner3"];
    let mut keys = Vec::new();
    for name in names {
        keys.push(net.register(name).await.0);
    }
    t.done(&format!("subnet {netuid}: 4 hotkeys funded and registered"));

    // An unregistered hotkey is refused at start with the command that fixes it.
    net.hotkey("stranger");
    let cfg = write_config(dir.path(), "stranger", netuid, &ws, "127.0.0.9", "");
    let out = Command::new(mrd_bin())
        .env_clear()
        .env("HOME", &home)
        .arg("--config")
        .arg(&cfg)
        .arg("miner")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "mrctl register --netuid {netuid} --wallet.name stranger"
        )),
        "{err}"
    );
    t.done("unregistered miner refused to start");

    let mut miners = Vec::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        let ip = format!("127.0.0.{}", i + 1);
        // miner1 also serves Prometheus metrics (checked after the first job).
        let extra = if i == 1 {
            format!("[metrics]\nenabled = true\naddr = \"{ip}:0\"")
        } else {
            String::new()
        };
        let cfg = write_config(dir.path(), name, netuid, &ws, &ip, &extra);
        let log = dir.path().join(format!("{name}.log"));
        let mut p = Proc::mrd(&home, &cfg, &["miner"], &log);
        let line = p.wait_line("miner ready");
        println!("{line}");
        miners.push((p, line));
    }
    t.done("3 miners ready");

    let vcfg = write_config(dir.path(), "validator", netuid, &ws, "127.0.0.5", "");
    let vlog = dir.path().join("validator.log");
    let mut validator = Proc::mrd(&home, &vcfg, &["validator"], &vlog);
    let line = validator.wait_line("validator ready");
    println!("{line}");
    let addr = ValidatorAddr {
        endpoint: field(&line, "axon"),
        hotkey: keys[0].ss58_address().to_string(),
    };
    t.done("validator ready (miners polled)");

    let peers: Vec<Keypair> = (0..3)
        .map(|_| Keypair::generate(12).expect("peer"))
        .collect();
    let job1 = tokio::task::spawn_blocking({
        let (addr, peers) = (addr.clone(), peers.clone());
        move || all_reduce_job(&addr, &peers, "acceptance-1", ELEMENTS, 5)
    })
    .await
    .expect("job 1");
    t.done(&format!(
        "job {job1}: 3 peers all_reduced {} MiB each, results exact",
        (ELEMENTS * 4) >> 20
    ));
    {
        let store = Store::open(&dir.path().join("validator.sqlite")).expect("db");
        let row = store.job(job1).expect("read").expect("row");
        assert_eq!(row.state, JobState::Done as i32, "{row:?}");
        assert_eq!(row.miners.len(), 3);
    }

    // miner1's Prometheus exporter: the job's bytes (summed from per-second samples, so allow
    // a couple of seconds), its identity, memory, and the chain block.
    let maddr = metrics_addr(&dir.path().join("miner1.log"));
    // Each of 3 peers sends this miner its shard, about a third of the tensor (blocks are split
    // as evenly as whole blocks allow), and receives the reduced shard back.
    let shard_bytes = (ELEMENTS * 4) as f64 * 0.9;
    let end = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = scrape(&maddr);
        assert!(status.contains("200"), "{status}");
        let got = sample(&body, "mapreduce_received_bytes_total").unwrap_or(0.0);
        if got >= shard_bytes || Instant::now() > end {
            break body;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for (series, at_least) in [
        ("mapreduce_received_bytes_total", shard_bytes),
        ("mapreduce_sent_bytes_total", shard_bytes),
        ("mapreduce_info{", 1.0),
        ("mapreduce_ready", 1.0),
        ("mapreduce_chain_block ", 1.0),
        ("mapreduce_process_resident_memory_bytes", 1.0),
        ("mapreduce_relay_memory_limit_bytes", 1.0),
    ] {
        let v = sample(&body, series).unwrap_or_else(|| panic!("{series} missing:\n{body}"));
        assert!(
            v >= at_least,
            "{series} = {v}, expected >= {at_least}:\n{body}"
        );
    }
    assert!(body.contains("role=\"miner\""), "{body}");
    t.done("miner1 /metrics: bytes, identity, memory, chain block");

    // kill -9 between two jobs, restart on the same database.
    // The restart keeps the port, as an operator's config would.
    let port = field(&line, "axon")
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let vcfg = write_config(dir.path(), "validator", netuid, &ws, "127.0.0.5", "");
    let text = std::fs::read_to_string(&vcfg).expect("config");
    std::fs::write(
        &vcfg,
        text.replacen("port = 0", &format!("port = {port}"), 1),
    )
    .expect("config");
    validator.child.kill().expect("kill -9");
    let _ = validator.child.wait();
    drop(validator);
    let mut validator = Proc::mrd(&home, &vcfg, &["validator"], &vlog);
    let line = validator.wait_line("validator ready");
    let addr = ValidatorAddr {
        endpoint: field(&line, "axon"),
        hotkey: keys[0].ss58_address().to_string(),
    };
    t.done("validator killed with SIGKILL and restarted");
    let ch = connect(
        &addr.endpoint,
        Arc::new(peers[0].clone()),
        &addr.hotkey,
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    let info = ValidatorClient::new(ch)
        .job_status(JobStatusRequest {
            version: Some(Version::CURRENT.into()),
            job_id: job1,
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(info.state, JobState::Done as i32, "{info:?}");
    let job2 = tokio::task::spawn_blocking({
        let (addr, peers) = (addr.clone(), peers.clone());
        move || all_reduce_job(&addr, &peers, "acceptance-2", 1 << 18, 6)
    })
    .await
    .expect("job 2");
    assert_ne!(job1, job2);
    t.done(&format!(
        "job {job1} still done after the restart; job {job2} ran"
    ));

    // SIGTERM drains: with a reservation held the miner keeps running and refuses new jobs;
    // once the job is released it exits 0.
    let (miner1, line) = &mut miners[0];
    let axon = field(line, "axon");
    let ch = connect(
        &axon,
        Arc::new(keys[0].clone()),
        keys[1].ss58_address(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect miner");
    let mut mc = MinerClient::new(ch);
    let accept = |job_id| AcceptJobRequest {
        version: Some(Version::CURRENT.into()),
        job_id,
        peers: 2,
        dtype: 1,
        block_elems: 1024,
        shard_elements: 1 << 20,
        expires_at_ms: mapreduce::wire::handshake::now_ms() + 60_000,
    };
    mc.accept_job(accept(77)).await.expect("accept");
    // `mrd miner --drain` with the miner's config finds it by its pid file and SIGTERMs it.
    let mut drainer = Reap(Some(
        Command::new(mrd_bin())
            .env_clear()
            .env("HOME", &home)
            .arg("--config")
            .arg(dir.path().join("miner1.toml"))
            .args(["miner", "--drain"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("mrd miner --drain"),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        miner1.child.try_wait().expect("wait").is_none(),
        "exited with a job running"
    );
    let e = mc.accept_job(accept(78)).await.expect_err("draining");
    assert!(e.message().contains("draining"), "{}", e.message());
    mc.release_job(ReleaseJobRequest {
        version: Some(Version::CURRENT.into()),
        job_id: 77,
        reason: "done".into(),
    })
    .await
    .expect("release");
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = miner1.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < end,
            "miner did not exit after its last job"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
    let out = drainer
        .0
        .take()
        .expect("child")
        .wait_with_output()
        .expect("drainer");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("miner stopped"));
    t.done("mrd miner --drain: the miner kept its job, refused new ones, exited 0");
    drop(validator);
    drop(miners);
    drop(net);
}
