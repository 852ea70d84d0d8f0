//! Bandwidth really ranks miners (issue 7), with real traffic shaping: three `mrd miner`s, each in
//! its own network namespace whose link tc limits to 400, 200 and 50 Mbit/s both ways
//! (scripts/netns/lab.sh); the subtensor runtime under chopsticks, `mrd validator` and a bench bot
//! in a namespace of the test's own (this test re-runs itself there with `ip netns exec`). The bot
//! asks the validator for one benchmark per miner, runs a real all_reduce through each assigned
//! miner as 3 virtual peers (every element checked) and reports the measured throughput; after
//! the round the weights read back from the chain come out in the order of the limits, and each
//! measured throughput is within 20% of its limit.
//!
//! Ignored in the default (debug) run: unoptimised relay and peer code is CPU-bound near 30 Mbit/s
//! on a 2-core machine, below every limit, so the ranking is noise there. Run it optimised:
//! `cargo test --release -p mapreduce --test bandwidth_rank -- --ignored --nocapture`.
//!
//! Needs root, `ip` and `tc`: elsewhere it prints why it is skipped; under CI (`CI` or
//! `MR_REQUIRE_SYSTEM_TOOLS` set) a machine that cannot run it is a failure. Every process is
//! killed by pid when the test ends, and the lab's namespaces are removed (with whatever still
//! runs in them) by a guard.

use mapreduce::chain::dev::{DevChainOptions, chopsticks_dir, install_chopsticks};
use mapreduce::control::connect;
use mapreduce::core::Version;
use mapreduce::wallet::Keypair;
use mr_proto::v1::RequestBenchmarkRequest;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_testkit::{DevNet, NodeConfig, Proc, Step, Throughput, field, run_benchmark};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Benchmark tensor per virtual peer: 16 MiB of f32. Through one miner, 3 virtual peers move
/// 3 x 16 MiB each way over the miner's link: about 1 s at 400 Mbit/s, 8 s at 50 Mbit/s.
const BYTES: u64 = 16 << 20;
const PEERS: u32 = 3;
/// The three miners' links, Mbit/s (both ways), and their addresses in the lab.
const LIMITS: [u64; 3] = [400, 200, 50];
const CTL_IP: &str = "10.78.0.1";
const INNER: &str = "MR_BANDWIDTH_RANK_LAB";
const TEST: &str = "bandwidth_ranks_miners_in_the_order_of_their_links";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn lab_script() -> PathBuf {
    repo().join("scripts/netns/lab.sh")
}

fn miner_ip(i: usize) -> String {
    format!("10.78.0.{}", 11 + i)
}

/// Removes the lab's namespaces (and what runs in them) when dropped.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", &self.0])
            .status();
    }
}

/// Forwards TCP from `listen` (the control namespace's lab address) to chopsticks on 127.0.0.1,
/// so miners in their own namespaces reach the chain: chopsticks binds loopback only.
async fn forward(listen: &str, to: u16) -> String {
    let l = tokio::net::TcpListener::bind((listen, 0))
        .await
        .expect("bind forwarder");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut a, _)) = l.accept().await {
            tokio::spawn(async move {
                if let Ok(mut b) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[test]
#[ignore = "needs optimised relays: in a debug build on 2 shared cores every miner measured ~30 Mbit/s \
            whatever its link (CPU-bound); run `cargo test --release -p mapreduce --test bandwidth_rank -- --ignored`"]
fn bandwidth_ranks_miners_in_the_order_of_their_links() {
    if let Ok(lab) = std::env::var(INNER) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(inner(&lab));
        return;
    }
    let why = match Command::new("bash").arg(lab_script()).arg("check").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Err(e) => Some(format!("cannot run bash: {e}")),
    };
    if let Some(why) = why {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var_os("MR_REQUIRE_SYSTEM_TOOLS").is_none(),
            "CI must run the bandwidth-ranking test, but: {why}"
        );
        println!("SKIPPED {TEST}: {why}");
        eprintln!("SKIPPED {TEST}: {why}");
        return;
    }
    // Installed from the host's namespace: the lab's namespaces have no way out.
    install_chopsticks(&chopsticks_dir()).expect("chopsticks install");
    let name = format!("mrrank{}", std::process::id());
    let mut args = vec!["up".to_string(), name.clone()];
    args.extend(["ctl", CTL_IP, "0", "0"].map(String::from));
    for (i, l) in LIMITS.iter().enumerate() {
        args.extend([
            format!("m{i}"),
            miner_ip(i),
            format!("{l}mbit"),
            format!("{l}mbit"),
        ]);
    }
    let lab = Lab(name.clone());
    let st = Command::new("bash")
        .arg(lab_script())
        .args(&args)
        .status()
        .expect("lab up");
    assert!(st.success(), "lab.sh up failed: {st}");
    // The test again, inside the control namespace; everything it starts lives there (or, for
    // the miners, in their own namespaces).
    let mut child = Command::new("ip")
        .args(["netns", "exec", &format!("{name}-ctl")])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(INNER, &name)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .spawn()
        .expect("re-run inside the lab");
    let end = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the test inside the lab ran over 900 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(lab);
    assert!(status.success(), "the test inside the lab failed: {status}");
}

async fn inner(lab: &str) {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start_with(DevChainOptions::new().expect("spec"), &wallets).await;
    let (ws, netuid, client) = (net.ws.clone(), net.netuid, &net.client);
    let lab_ws = forward(CTL_IP, net.chain.port()).await;
    t.done(&format!(
        "chopsticks at {ws}, reached from the lab at {lab_ws}"
    ));
    let names = ["validator", "miner400", "miner200", "miner50"];
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

    let mut miners = Vec::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        let ip = miner_ip(i - 1);
        let cfg = NodeConfig::new(name, netuid, &lab_ws, &ip)
            .window_blocks(None)
            .extra("")
            .write(dir.path());
        let log = dir.path().join(format!("{name}.log"));
        let ns = format!("{lab}-m{}", i - 1);
        let mut p = Proc::mrd_in(Some(&ns), &home, &cfg, &["miner"], &log);
        p.wait_line("miner ready");
        miners.push(p);
    }
    t.done(&format!(
        "3 miners ready, in namespaces {lab}-m0..2 at {LIMITS:?} Mbit/s"
    ));

    let bot = Keypair::generate(12).expect("bot");
    let interval = 5u64;
    let extra = format!(
        "benchmark_hotkeys = [\"{}\"]\nweights_interval_blocks = {interval}\nema_alpha = 1.0\n",
        bot.ss58_address()
    );
    let vcfg = NodeConfig::new("validator", netuid, &ws, CTL_IP)
        .window_blocks(None)
        .extra(&extra)
        .write(dir.path());
    let vlog = dir.path().join("validator.log");
    let mut validator = Proc::mrd_in(None, &home, &vcfg, &["validator"], &vlog);
    let line = validator.wait_line("validator ready");
    let endpoint = field(&line, "axon");
    let vhotkey = keys[0].ss58_address().to_string();
    t.done(&format!("validator ready at {endpoint}"));

    let mut vc = ValidatorClient::new(
        connect(
            &endpoint,
            Arc::new(bot.clone()),
            &vhotkey,
            Duration::from_secs(10),
        )
        .await
        .expect("connect"),
    );
    // One benchmark per miner (the validator picks the least recently benchmarked), one at a
    // time so they do not share the machine's CPU.
    let mut measured: Vec<(u16, f64)> = Vec::new();
    for i in 0..3u64 {
        let a = vc
            .request_benchmark(RequestBenchmarkRequest {
                version: Some(Version::CURRENT.into()),
                bytes: BYTES,
                peers: PEERS,
                miner_uid: None,
                dtype: 0,
            })
            .await
            .expect("assignment")
            .into_inner();
        let r = {
            let (a, bot) = (a.clone(), bot.clone());
            tokio::task::spawn_blocking(move || {
                run_benchmark(
                    &a,
                    &bot,
                    70 + i,
                    BYTES,
                    PEERS,
                    // what crossed the miner's link each way: PEERS x BYTES per all_reduce
                    Throughput::ThroughMiner,
                )
            })
            .await
            .expect("bench")
        };
        let mbit = r.upload_bytes_per_s * 8.0 / 1e6;
        let resp = vc
            .report_benchmark(r.clone())
            .await
            .expect("report")
            .into_inner();
        assert!(resp.accepted, "{resp:?}");
        println!(
            "miner uid {}: all_reduce {:.2} s, {mbit:.0} Mbit/s through its link, score {:.3}",
            a.miner_uid, r.all_reduce_s, resp.score
        );
        measured.push((a.miner_uid as u16, mbit));
    }
    t.done("3 benchmarks reported, every element checked");

    // Each measured throughput within 20% of its miner's limit.
    for (i, l) in LIMITS.iter().enumerate() {
        let uid = uids[i + 1];
        let (_, mbit) = measured
            .iter()
            .find(|(u, _)| *u == uid)
            .unwrap_or_else(|| panic!("miner uid {uid} was not benchmarked: {measured:?}"));
        let ratio = mbit / *l as f64;
        println!("miner uid {uid}: limit {l} Mbit/s, measured {mbit:.0} Mbit/s ({ratio:.2} of it)");
        assert!(
            (0.8..=1.2).contains(&ratio),
            "miner uid {uid}: measured {mbit:.0} Mbit/s, limit {l} Mbit/s: {measured:?}"
        );
    }

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
    let weight = |uid: u16| {
        on_chain
            .iter()
            .find(|(u, _)| *u == uid)
            .map_or(0, |(_, w)| *w)
    };
    let w: Vec<u16> = uids[1..].iter().map(|u| weight(*u)).collect();
    assert!(
        w[0] > w[1] && w[1] > w[2] && w[2] > 0,
        "weights of the 400, 200 and 50 Mbit/s miners: {w:?} (chain: {on_chain:?})"
    );
    t.done(&format!(
        "weights on chain in the order of the links: 400 Mbit/s {}, 200 Mbit/s {}, 50 Mbit/s {}",
        w[0], w[1], w[2]
    ));
    drop(validator);
    drop(miners);
    drop(net);
}
