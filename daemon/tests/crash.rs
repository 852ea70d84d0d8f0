//! Crash safety under kill -9 (issue 12), with real processes: this test binary re-runs itself as
//! a child that writes without pause, and the parent kills it with SIGKILL at 20 random moments.
//!
//! - The validator's database: the child does what the validator's weight loop does, through the
//!   same `Store` calls (a scoring round with its scores and EMAs in one transaction, then the
//!   weight set recorded for it; on start, the last round's set if it is missing, as the
//!   validator's recovery does). After each kill the database opens, SQLite's integrity check
//!   passes, every earlier weight set is still there unchanged, no round has two weight sets, and
//!   only the last round may lack one (the kill landed between the two writes).
//! - Config writes (the admin API's UpdateConfig path: temp file, fsync, rename, fsync of the
//!   folder): after each kill the file is one of the two complete versions the child alternates,
//!   and it loads.
//!
//! The kill points are random (seeded from the clock and printed, so a failure can be re-run with
//! MR_CRASH_SEED).

use mapreduce::admin::config_edit::{replace, temp_path, write_synced};
use mapreduce::config::Loader;
use mapreduce::validator::Store;
use mapreduce::validator::records::{ScoreRow, WeightSetRow};
use mr_testkit::Reap;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const KILLS: usize = 20;
const CHILD: &str = "MR_CRASH_CHILD";

fn seed() -> u64 {
    std::env::var("MR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Re-runs this binary's test `name` as a child with `CHILD=arg`.
fn spawn_child(name: &str, arg: &Path) -> Reap {
    Reap(Some(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer"),
    ))
}

fn kill9(mut r: Reap) {
    let mut c = r.0.take().expect("child");
    if let Ok(Some(st)) = c.try_wait() {
        panic!("the writer exited by itself: {st}");
    }
    c.kill().expect("kill -9");
    let _ = c.wait();
}

fn score(uid: u16, round: u64) -> ScoreRow {
    ScoreRow {
        hotkey: format!("miner{uid}"),
        uid,
        ip: format!("10.0.0.{uid}"),
        upload: 1e8 + round as f64,
        download: 1e8,
        latency_ms: 5.0,
        success_rate: 1.0,
        capacity: 1 << 30,
        benchmarks: 3,
        shared_ip: 1,
        round: 0.5,
        ema: 0.5,
        weight: 1.0 / 3.0,
        weight_u16: 21845,
        flags: vec![],
    }
}

/// What the validator's weight loop writes for round `n`: the weights it sends.
fn weights_of(n: u64) -> (Vec<u16>, Vec<u16>) {
    let w = (n % 1000) as u16;
    (vec![1, 2, 3], vec![w, w + 1, w + 2])
}

fn set_row(round_id: u64, block: u64) -> WeightSetRow {
    let (uids, weights) = weights_of(round_id);
    WeightSetRow {
        round_id,
        block,
        at_ms: block * 12_000,
        ok: true,
        error: String::new(),
        kind: "set".into(),
        uids,
        weights,
    }
}

/// The child: rounds and their weight sets, as fast as SQLite commits them, until killed.
fn db_writer(db: &Path) -> ! {
    let store = Store::open(db).expect("open in the writer");
    // Recovery, as the validator does it: a round whose weights were not recorded is sent now.
    if let Some(r) = store.last_round().expect("last round")
        && !store.round_sent(r.round_id).expect("round sent")
    {
        store
            .put_weight_set(&set_row(r.round_id, r.block))
            .expect("resume");
    }
    let mut block = store
        .last_round()
        .expect("last")
        .map_or(100, |r| r.block + 1);
    loop {
        let scores: Vec<ScoreRow> = (1..=3).map(|u| score(u, block)).collect();
        let (uids, weights) = weights_of(block);
        let id = store
            .put_round(block, block * 12_000, &uids, &weights, "", &scores)
            .expect("round");
        // weights_of(round id) is what the set carries; the round's own vector is informative.
        store
            .put_weight_set(&set_row(id, block))
            .expect("weight set");
        block += 1;
    }
}

#[test]
fn kill_9_during_db_writes_keeps_history_and_no_duplicate_weight_sets() {
    if let Some(db) = std::env::var_os(CHILD) {
        db_writer(Path::new(&db));
    }
    let seed = seed();
    println!("seed {seed} (MR_CRASH_SEED re-runs these kill points)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("validator.sqlite");
    let name = "kill_9_during_db_writes_keeps_history_and_no_duplicate_weight_sets";
    let mut seen: Vec<WeightSetRow> = Vec::new();
    let mut torn = 0;
    for i in 0..KILLS {
        let child = spawn_child(name, &db);
        let ms = rng.gen_range(150..700);
        std::thread::sleep(Duration::from_millis(ms));
        kill9(child);

        let store =
            Store::open(&db).unwrap_or_else(|e| panic!("kill {i}: the DB does not open: {e}"));
        let check: String = rusqlite::Connection::open(&db)
            .expect("sqlite")
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok", "kill {i}");
        let mut sets = store.weight_sets(u32::MAX).expect("history");
        sets.reverse(); // oldest first
        // History intact: every set seen before is still there, unchanged, in order.
        assert!(
            sets.len() >= seen.len() && sets[..seen.len()] == seen[..],
            "kill {i}: weight-set history changed"
        );
        // No duplicate: one set per round.
        let mut rounds: Vec<u64> = sets.iter().map(|s| s.round_id).collect();
        let n = rounds.len();
        rounds.dedup();
        assert_eq!(rounds.len(), n, "kill {i}: a round has two weight sets");
        // Nothing lost: every round has its set, but the last may not yet (killed between the
        // two writes; the next start sends it).
        let last = store.last_round().expect("last").map_or(0, |r| r.round_id);
        let missing: Vec<u64> = (1..=last).filter(|r| !rounds.contains(r)).collect();
        assert!(
            missing.is_empty() || missing == [last],
            "kill {i}: rounds without weights: {missing:?}"
        );
        if missing == [last] {
            torn += 1;
        }
        for s in &sets {
            assert_eq!(
                (s.uids.clone(), s.weights.clone()),
                weights_of(s.round_id),
                "kill {i}: round {} has another round's weights",
                s.round_id
            );
        }
        println!(
            "kill {i} after {ms} ms: {} rounds, {} weight sets{}",
            last,
            sets.len(),
            if missing.is_empty() {
                ""
            } else {
                " (killed between a round and its set)"
            }
        );
        seen = sets;
    }
    assert!(
        seen.len() > KILLS,
        "the writer barely ran: {} sets",
        seen.len()
    );
    println!(
        "{KILLS} kills: {} weight sets intact, {torn} kills between a round and its set, all resumed",
        seen.len()
    );
}

fn config_text(variant: u32) -> String {
    // Long enough that a torn write would be likely if the write were not atomic.
    let mut t = format!(
        "netuid = {}\n[relay]\nwindow_blocks = {}\n",
        10 + variant,
        4 + variant
    );
    t += "[validator]\nclients = [";
    for i in 0..200 {
        t += &format!("\"5Client{variant}x{i:04}\", ");
    }
    t += "]\n";
    t
}

/// The child: the admin API's atomic write, alternating two configs, until killed.
fn config_writer(path: &Path) -> ! {
    let tmp = temp_path(path);
    for n in 0u32.. {
        write_synced(&tmp, &config_text(n % 2)).expect("write temp");
        replace(&tmp, path).expect("rename");
    }
    unreachable!()
}

#[test]
fn kill_9_during_config_writes_leaves_a_whole_file() {
    if let Some(p) = std::env::var_os(CHILD) {
        config_writer(Path::new(&p));
    }
    let seed = seed();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config_text(0)).expect("first version");
    let name = "kill_9_during_config_writes_leaves_a_whole_file";
    let (a, b) = (config_text(0), config_text(1));
    for i in 0..KILLS {
        let child = spawn_child(name, &path);
        let ms = rng.gen_range(100..500);
        std::thread::sleep(Duration::from_millis(ms));
        kill9(child);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text == a || text == b,
            "kill {i} after {ms} ms: a torn config ({} bytes)",
            text.len()
        );
        Loader::new()
            .file(Some(path.clone()))
            .load()
            .unwrap_or_else(|e| panic!("kill {i}: the config does not load: {e}"));
    }
    println!("{KILLS} kills during config writes: the file was whole every time");
}
