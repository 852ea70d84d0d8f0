//! Acceptance of issue 7, all real processes: the subtensor runtime under chopsticks, `mrd
//! validator`, 3 honest `mrd miner`s and 1 dishonest one (`--dishonest corrupt`, a test-only
//! build), and 2 bench bots (`mrd bench`). Once every miner has a reported benchmark, blocks are
//! built so the validator's scoring round comes due; then: the dishonest miner's weight is 0
//! with the wrong result recorded, every honest miner's weight is above 0, and the weights are
//! on the chain (read back). Every child is killed by pid when the test ends.
#![cfg(feature = "dishonest-relay")]

use mapreduce::chain::dev::{DevChain, DevChainOptions, DevSubnetParams, create_dev_subnet};
use mapreduce::chain::{ChainClient, ChainOptions, ChainSigner, Rao};
use mapreduce::validator::Store;
use mapreduce::wallet::{Keypair, Wallet};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child killed (SIGKILL) and reaped when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(home: &Path, config: &Path, args: &[&str], log: PathBuf) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mrd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn mrd");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a stdout line starting with `prefix`; panics with the log on failure.
    fn wait_line(&mut self, prefix: &str) -> String {
        let end = Instant::now() + Duration::from_secs(120);
        while Instant::now() < end {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(st)) = self.child.try_wait() {
                        panic!("{prefix}: exited {st}: {}", self.log());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    panic!("{prefix}: stdout closed: {}", self.log());
                }
            }
        }
        panic!("no {prefix:?} line in 120 s: {}", self.log());
    }
}

/// "... axon 127.0.0.5:4321 ..." → "127.0.0.5:4321".
fn field(line: &str, name: &str) -> String {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == name {
            return it.next().expect("value").to_string();
        }
    }
    panic!("no {name} in {line:?}")
}

fn write_config(dir: &Path, name: &str, netuid: u16, ws: &str, ip: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"netuid = {netuid}
[wallet]
name = "{name}"
hotkey = "default"
path = "{wallets}"
[subtensor]
network = "local"
chain_endpoint = "{ws}"
[axon]
ip = "{ip}"
port = 0
[relay]
ip = "{ip}"
port = 0
[miner]
min_validator_stake = 0.0
[admin]
socket = "{socket}"
{extra}
"#,
        wallets = dir.join("wallets").display(),
        socket = dir.join(format!("{name}.sock")).display(),
    );
    std::fs::write(&path, text).expect("config");
    path
}

struct Step(Instant);
impl Step {
    fn done(&mut self, what: &str) {
        println!("[{:6.1} s] {what}", self.0.elapsed().as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_zeroes_the_cheat_and_pays_the_honest_miners_on_chain() {
    let mut t = Step(Instant::now());
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let chain = tokio::task::spawn_blocking(|| {
        let mut o = DevChainOptions::new().expect("spec");
        o.install = true;
        DevChain::start(o).expect("chopsticks")
    })
    .await
    .expect("join");
    let ws = chain.ws_url();
    let mut o = ChainOptions::new(ws.clone());
    o.watchdog = None;
    o.call_timeout = Duration::from_secs(60);
    o.inclusion_timeout = Duration::from_secs(60);
    let client = ChainClient::connect(o).await.expect("connect");
    t.done(&format!("chopsticks at {ws}"));

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
    let wallets = dir.path().join("wallets");
    let mut keys: HashMap<&str, Keypair> = HashMap::new();
    for name in ["validator", "miner1", "miner2", "miner3", "cheat"] {
        let k = Wallet::new(&wallets, name, "default")
            .create_hotkey(12, false)
            .expect("hotkey");
        client
            .transfer(&alice, &k.public_key(), Rao::from_tao(10.0))
            .await
            .expect("fund");
        client
            .burned_register(&alice, netuid, &k.public_key())
            .await
            .expect("register");
        keys.insert(name, k);
    }
    // Bots are not registered: the validator admits them by validator.benchmark_hotkeys.
    for name in ["bench1", "bench2"] {
        let k = Wallet::new(&wallets, name, "default")
            .create_hotkey(12, false)
            .expect("hotkey");
        keys.insert(name, k);
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
        let cfg = write_config(dir.path(), name, netuid, &ws, ip, "");
        let mut args = vec!["miner"];
        if name == "cheat" {
            args.extend(["--dishonest", "corrupt"]);
        }
        let mut p = Proc::spawn(&home, &cfg, &args, dir.path().join(format!("{name}.log")));
        println!("{}", p.wait_line("miner ready"));
        procs.push(p);
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
    let vcfg = write_config(dir.path(), "validator", netuid, &ws, "127.0.0.5", &vextra);
    let mut validator = Proc::spawn(
        &home,
        &vcfg,
        &["validator"],
        dir.path().join("validator.log"),
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
        let cfg = write_config(dir.path(), name, netuid, &ws, ip, &extra);
        let mut p = Proc::spawn(
            &home,
            &cfg,
            &["bench"],
            dir.path().join(format!("{name}.log")),
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
            procs[4].log(),
            validator.log()
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
    // One at a time: on a loaded machine a long dev_newBlock outlives the call timeout.
    for _ in 0..8 {
        if let Err(e) = client.dev_new_blocks(1).await {
            println!("   dev_newBlock: {e} (the next one goes on)");
        }
    }
    let end = Instant::now() + Duration::from_secs(120);
    let set = loop {
        if let Some(w) = store
            .weight_sets(10)
            .expect("weight sets")
            .into_iter()
            .find(|w| w.ok)
        {
            break w;
        }
        assert!(
            Instant::now() < end,
            "no weight set in 120 s: {}",
            validator.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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
        assert!(p.child.try_wait().expect("wait").is_none(), "{}", p.log());
    }
    drop(chain);
}
