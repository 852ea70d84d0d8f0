//! The bench bot's runner against real `mrd relay` processes: P virtual peers with one hotkey,
//! every element checked. An honest relay passes with measured throughput; with the
//! `dishonest-relay` feature each way of cheating is caught with the right outcome.

mod relay_support;

use mapreduce::bench::runner::{self, Progress};
use mapreduce::bench::{Outcome, Phase};
use mapreduce::wallet::Keypair;
use mapreduce::wire::SignedTicket;
use mapreduce::wire::handshake::{JobTicket, MinerSlot, issue, now_ms};
use relay_support::{RelayProc, key};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A benchmark ticket as the validator issues it: P ranks all with the bot's hotkey, one miner.
fn bench_ticket(
    validator: &Keypair,
    bot: &Keypair,
    relay_addr: &str,
    peers: u32,
    elements: u64,
    deadline_ms: u32,
) -> SignedTicket {
    let t = JobTicket {
        job_id: NEXT_JOB.fetch_add(1, Ordering::Relaxed),
        peers: vec![bot.ss58_address().to_string(); peers as usize],
        miners: vec![MinerSlot {
            hotkey: key(900).ss58_address().to_string(),
            address: relay_addr.to_string(),
            weight: 1,
        }],
        dtype: 1,
        block_elems: 64 * 1024,
        elements,
        expires_at_ms: now_ms() + 600_000,
        deadline_ms,
        ..Default::default()
    };
    issue(t, validator).expect("sign")
}

fn run(
    ticket: &SignedTicket,
    bot: &Keypair,
    seed: u64,
) -> (mapreduce::bench::BenchResult, Vec<Progress>) {
    let mut seen = Vec::new();
    let r = runner::run(ticket, bot, seed, &mut |p| seen.push(p));
    (r, seen)
}

#[test]
fn honest_relay_passes_with_every_element_checked() {
    let validator = key(0);
    let bot = key(77);
    let relay = RelayProc::start(&validator, &[]);
    // 4 MiB and 3 elements: 17 blocks, the last one short.
    let n = (1 << 20) + 3;
    let ticket = bench_ticket(&validator, &bot, &relay.addr, 3, n, 5_000);
    let (r, seen) = run(&ticket, &bot, 12345);
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.verdict());
    assert_eq!(r.reason, "");
    assert_eq!(r.peers, 3);
    assert_eq!(r.bytes, n * 4);
    assert_eq!(r.seed, 12345);
    assert_eq!(
        r.checked_elements,
        2 * 3 * n,
        "all_reduce and broadcast on every rank"
    );
    for (what, v) in [
        ("upload", r.upload_bytes_per_s),
        ("download", r.download_bytes_per_s),
        ("broadcast", r.broadcast_bytes_per_s),
        ("latency", r.latency_ms),
        ("all_reduce_s", r.all_reduce_s),
        ("broadcast_s", r.broadcast_s),
    ] {
        assert!(v.is_finite() && v > 0.0, "{what} = {v}");
    }
    assert!(r.finished_at_ms >= r.started_at_ms);
    let last = seen.last().expect("progress reported");
    assert_eq!(last.phase, Phase::Verifying);
    assert_eq!(last.bytes_done, last.bytes_total);
    // all_reduce: 3 peers send and receive D; broadcast: rank 0 sends D, 2 peers receive it.
    assert_eq!(last.bytes_total, 2 * 3 * n * 4 + 3 * n * 4);
    eprintln!(
        "honest: up {:.0} MB/s down {:.0} MB/s broadcast {:.0} MB/s latency {:.1} ms",
        r.upload_bytes_per_s / 1e6,
        r.download_bytes_per_s / 1e6,
        r.broadcast_bytes_per_s / 1e6,
        r.latency_ms
    );
}

#[test]
fn a_single_virtual_peer_works_too() {
    let validator = key(0);
    let bot = key(78);
    let relay = RelayProc::start(&validator, &[]);
    let ticket = bench_ticket(&validator, &bot, &relay.addr, 1, 1000, 5_000);
    let (r, _) = run(&ticket, &bot, 9);
    assert_eq!(r.outcome, Outcome::Ok, "{}", r.verdict());
    assert_eq!(r.checked_elements, 2000);
}

#[test]
fn unreachable_and_refusing_relays_are_named() {
    let validator = key(0);
    let bot = key(79);
    // A port nobody listens on: bind, learn it, close it.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let ticket = bench_ticket(&validator, &bot, &addr, 3, 1000, 2_000);
    let (r, _) = run(&ticket, &bot, 1);
    assert_eq!(r.outcome, Outcome::Unreachable, "{}", r.verdict());
    assert!(r.reason.contains(&addr), "{}", r.reason);

    // A relay that trusts another validator refuses the ticket.
    let relay = RelayProc::start(&key(1), &[]);
    let ticket = bench_ticket(&validator, &bot, &relay.addr, 3, 1000, 2_000);
    let (r, _) = run(&ticket, &bot, 1);
    assert_eq!(r.outcome, Outcome::Refused, "{}", r.verdict());
    assert_eq!(r.checked_elements, 0);
}

#[test]
fn a_ticket_for_another_hotkey_is_an_error_not_a_miner_fault() {
    let validator = key(0);
    let relay = RelayProc::start(&validator, &[]);
    let ticket = bench_ticket(&validator, &key(80), &relay.addr, 2, 1000, 2_000);
    let (r, _) = run(&ticket, &key(81), 1);
    assert_eq!(r.outcome, Outcome::Error, "{}", r.verdict());
    assert!(r.reason.contains("not this bot"), "{}", r.reason);
}

#[cfg(feature = "dishonest-relay")]
mod dishonest {
    use super::*;

    fn cheat(mode: &str, deadline_ms: u32) -> mapreduce::bench::BenchResult {
        let validator = key(0);
        let bot = key(90);
        let relay = RelayProc::start_args(&validator, &[], &["--dishonest", mode]);
        let ticket = bench_ticket(&validator, &bot, &relay.addr, 3, 300_000, deadline_ms);
        run(&ticket, &bot, 4242).0
    }

    #[test]
    fn corrupted_sums_are_a_wrong_result_naming_block_and_element() {
        let r = cheat("corrupt", 5_000);
        assert_eq!(r.outcome, Outcome::WrongResult, "{}", r.verdict());
        // The relay flips a bit of element 32768 of every 65536-element block: block 0 first.
        assert!(
            r.reason.contains("all_reduce") && r.reason.contains("block 0 element 32768"),
            "{}",
            r.reason
        );
        assert_eq!(
            r.checked_elements,
            3 * 32768,
            "each rank stopped at its first difference"
        );
    }

    #[test]
    fn zeros_are_a_wrong_result() {
        let r = cheat("zeros", 5_000);
        assert_eq!(r.outcome, Outcome::WrongResult, "{}", r.verdict());
        assert!(r.reason.contains("block 0 element 0"), "{}", r.reason);
        assert!(r.reason.contains("is 0e0"), "{}", r.reason);
    }

    #[test]
    fn dropped_blocks_are_a_timeout() {
        let t = std::time::Instant::now();
        let r = cheat("drop", 1_000);
        assert_eq!(r.outcome, Outcome::Timeout, "{}", r.verdict());
        assert!(r.reason.contains("block 1"), "{}", r.reason);
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
    }
}
