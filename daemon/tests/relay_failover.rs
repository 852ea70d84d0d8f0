//! Failover on the data plane, with real processes on 127.0.0.1: `mrd relay` miners (and spares)
//! and `mrd bench-peer` peers. A miner killed (-9) or stopped (SIGSTOP) mid-transfer: its shard
//! moves to the spare named in the ticket and every peer still gets the exact result; with no
//! spare, every peer gets the same error naming the miner within the deadline. A peer killed:
//! the others fail naming its rank, and the relays' memory comes back.

mod relay_support;

use mapreduce::core::{Dtype, Op};
use mapreduce::peer::bench::{Command, Reply};
use mapreduce::peer::{Job, Peer, PeerError};
use mapreduce::wallet::Keypair;
use mapreduce::wire::handshake::{JobTicket, MinerSlot, issue, now_ms};
use relay_support::{PeerProc, RelayProc, TestJob, key, signal};
use std::time::{Duration, Instant};

/// Deadline floor of these tickets; the peers add a 1 s margin.
const FLOOR_MS: u32 = 3_000;
const PEERS: u32 = 3;
/// 32 MiB of f32 per peer in blocks of 256 KiB: the kill lands mid-transfer.
const ELEMENTS: u64 = 8 << 20;
const BLOCK: u32 = 64 * 1024;

fn slot(n: u64, r: &RelayProc) -> MinerSlot {
    MinerSlot {
        hotkey: key(900 + n).ss58_address().to_string(),
        address: r.addr.clone(),
        weight: 1,
    }
}

/// A validator-signed ticket naming `miners` by shard and `spares`.
fn ticket(
    validator: &Keypair,
    id: u64,
    miners: &[&RelayProc],
    spares: &[&RelayProc],
    elements: u64,
) -> TestJob {
    let keys: Vec<Keypair> = (0..PEERS).map(|r| key(id * 1000 + u64::from(r))).collect();
    let t = JobTicket {
        job_id: id,
        peers: keys.iter().map(|k| k.ss58_address().to_string()).collect(),
        miners: miners
            .iter()
            .enumerate()
            .map(|(i, r)| slot(i as u64, r))
            .collect(),
        spares: spares
            .iter()
            .enumerate()
            .map(|(i, r)| slot(50 + i as u64, r))
            .collect(),
        dtype: u32::from(Dtype::F32.code()),
        block_elems: BLOCK,
        elements,
        expires_at_ms: now_ms() + 600_000,
        deadline_ms: FLOOR_MS,
        ..Default::default()
    };
    TestJob {
        ticket: issue(t, validator).expect("sign"),
        keys,
    }
}

fn relays(validator: &Keypair, n: usize) -> Vec<RelayProc> {
    (0..n)
        .map(|_| RelayProc::start(validator, &[("MR_RELAY_WINDOW_BLOCKS", "2")]))
        .collect()
}

/// Starts the next all_reduce (sum) on every peer; returns with blocks in flight.
fn go(peers: &mut [PeerProc]) {
    go_op(peers, "sum")
}

fn connect(tj: &TestJob, seed: u64) -> Vec<PeerProc> {
    let mut peers: Vec<PeerProc> = (0..PEERS).map(|r| PeerProc::start(tj, r, seed)).collect();
    for p in &mut peers {
        p.send(&Command::Connect);
    }
    for p in &peers {
        match p.recv(Duration::from_secs(20)) {
            Reply::Connected { .. } => {}
            other => panic!("expected connected, got {other:?}"),
        }
    }
    peers
}

/// Prepares `op` on every peer, tells them all to go, and runs `then` at once.
fn go_op_then(peers: &mut [PeerProc], op: &str, then: impl FnOnce()) {
    for p in peers.iter_mut() {
        p.send(&Command::Prepare {
            op: op.into(),
            src: 0,
        });
    }
    for p in peers.iter() {
        assert!(matches!(p.recv(Duration::from_secs(60)), Reply::Ready));
    }
    for p in peers.iter_mut() {
        p.send(&Command::Go);
    }
    std::thread::sleep(Duration::from_millis(50));
    then();
}

/// Starts the next `op` (sum, avg, broadcast from rank 0) on every peer; returns with blocks
/// in flight.
fn go_op(peers: &mut [PeerProc], op: &str) {
    for p in peers.iter_mut() {
        p.send(&Command::Prepare {
            op: op.into(),
            src: 0,
        });
    }
    for p in peers.iter() {
        assert!(matches!(p.recv(Duration::from_secs(60)), Reply::Ready));
    }
    for p in peers.iter_mut() {
        p.send(&Command::Go);
    }
    // Some blocks in: results have overwritten part of every peer's input by now.
    std::thread::sleep(Duration::from_millis(400));
    assert!(peers[0].try_recv().is_none(), "still transferring");
}

/// Every peer's all_reduce completes with the exact result (the peer checks every element
/// against the f32 rank-order sum, bit for bit).
fn expect_exact(peers: &[PeerProc], within: Duration) -> Vec<f64> {
    peers
        .iter()
        .enumerate()
        .map(|(r, p)| match p.recv(within) {
            Reply::Done {
                secs,
                mismatch: None,
                ..
            } => secs,
            other => panic!("rank {r}: expected an exact result, got {other:?}"),
        })
        .collect()
}

/// Every peer fails with the same error (up to what it saw itself), naming `miner`.
fn expect_same_error(peers: &[PeerProc], since: Instant, within: Duration, miner: &str) -> String {
    let errors: Vec<String> = peers
        .iter()
        .map(|p| match p.recv(within + Duration::from_secs(5)) {
            Reply::Failed { error } => {
                let t = since.elapsed();
                assert!(t < within, "error after {t:?}: {error}");
                eprintln!("after {t:?}: {error}");
                error
            }
            other => panic!("expected a failure naming {miner}, got {other:?}"),
        })
        .collect();
    let common = |e: &str| e.split(" (seen here").next().unwrap_or(e).to_string();
    for e in &errors {
        assert!(e.contains(miner), "{e:?} should name {miner:?}");
        assert!(e.contains("no result is returned"), "{e}");
        assert_eq!(common(e), common(&errors[0]), "every peer says the same");
    }
    common(&errors[0])
}

#[test]
fn a_miner_killed_mid_transfer_moves_its_shard_to_the_spare_and_results_stay_exact() {
    let validator = key(0);
    let rs = relays(&validator, 4);
    let (miners, spare) = ([&rs[0], &rs[1], &rs[2]], &rs[3]);
    let tj = ticket(&validator, 301, &miners, &[spare], ELEMENTS);
    let mut peers = connect(&tj, 11);
    // Operation 0 runs on the three miners; operation 1 loses miner 1 midway, so the spare
    // joins a job already at operation 1.
    go(&mut peers);
    let before = expect_exact(&peers, Duration::from_secs(60));
    go_op_then(&mut peers, "sum", || signal(rs[1].proc.pid(), "-KILL"));
    let killed = Instant::now();
    let secs = expect_exact(&peers, Duration::from_secs(60));
    eprintln!(
        "exact on every peer {:?} after the kill (all_reduce took {secs:?} s, {before:?} s without failure)",
        killed.elapsed()
    );
    // And the job goes on through the spare.
    go(&mut peers);
    expect_exact(&peers, Duration::from_secs(60));
}

#[test]
fn a_miner_killed_mid_broadcast_moves_its_shard_to_the_spare_and_results_stay_exact() {
    let validator = key(0);
    let rs = relays(&validator, 3);
    // A broadcast moves faster than a reduction: a bigger tensor keeps the source sending when
    // the kill lands (a source that already sent everything does not come to the spare, see
    // peer::failover).
    let tj = ticket(&validator, 308, &[&rs[0], &rs[1]], &[&rs[2]], 3 * ELEMENTS);
    let mut peers = connect(&tj, 16);
    go_op_then(&mut peers, "broadcast", || {
        signal(rs[0].proc.pid(), "-KILL")
    });
    expect_exact(&peers, Duration::from_secs(60));
}

#[test]
fn a_miner_killed_with_no_spare_fails_every_peer_with_the_same_error_naming_it() {
    let validator = key(0);
    let rs = relays(&validator, 3);
    let tj = ticket(&validator, 302, &[&rs[0], &rs[1], &rs[2]], &[], ELEMENTS);
    let mut peers = connect(&tj, 12);
    go_op_then(&mut peers, "sum", || signal(rs[2].proc.pid(), "-KILL"));
    let killed = Instant::now();
    let deadline = Duration::from_millis(u64::from(FLOOR_MS) + 1_000);
    let e = expect_same_error(&peers, killed, deadline, &format!("at {}", rs[2].addr));
    assert!(e.contains("miner 2 (") && e.contains("no spare"), "{e}");
}

#[test]
fn a_stalled_miner_is_detected_within_the_deadline_and_replaced_by_the_spare() {
    let validator = key(0);
    let rs = relays(&validator, 3);
    let tj = ticket(&validator, 303, &[&rs[0], &rs[1]], &[&rs[2]], ELEMENTS);
    let mut peers = connect(&tj, 13);
    go_op_then(&mut peers, "sum", || signal(rs[0].proc.pid(), "-STOP"));
    let stopped = Instant::now();
    expect_exact(&peers, Duration::from_secs(60));
    let t = stopped.elapsed();
    eprintln!("exact on every peer {t:?} after SIGSTOP");
    // Detection takes the deadline (floor + 1 s margin); the shard is then sent again.
    assert!(t > Duration::from_millis(u64::from(FLOOR_MS)), "{t:?}");
    signal(rs[0].proc.pid(), "-CONT");
}

#[test]
fn a_stalled_miner_with_no_spare_fails_every_peer_within_the_deadline() {
    let validator = key(0);
    let rs = relays(&validator, 2);
    let tj = ticket(&validator, 304, &[&rs[0], &rs[1]], &[], ELEMENTS);
    let mut peers = connect(&tj, 14);
    // Stopped as soon as the operation starts: a 32 MiB all_reduce can finish in under the
    // 400 ms `go` waits before returning, and then nothing is left to stall.
    go_op_then(&mut peers, "sum", || signal(rs[1].proc.pid(), "-STOP"));
    let stopped = Instant::now();
    // Floor + margin, plus the grace a peer gives the others before dropping its connections.
    let within = Duration::from_millis(u64::from(FLOOR_MS) + 1_000 + 1_500);
    let e = expect_same_error(&peers, stopped, within, &format!("at {}", rs[1].addr));
    assert!(e.contains("stalled past the deadline"), "{e}");
    signal(rs[1].proc.pid(), "-CONT");
}

#[test]
fn a_peer_killed_fails_the_others_naming_its_rank_and_the_relays_free_its_memory() {
    let validator = key(0);
    // One job of 3 peers reserves about 2.1 MiB per relay (2 blocks of 256 KiB, P = 3): in
    // 3 MiB a second job fits only once the first one's memory is back.
    let rs: Vec<RelayProc> = (0..2)
        .map(|_| {
            RelayProc::start(
                &validator,
                &[
                    ("MR_RELAY_WINDOW_BLOCKS", "2"),
                    ("MR_RELAY_MAX_MEMORY_MIB", "3"),
                ],
            )
        })
        .collect();
    let tj = ticket(&validator, 305, &[&rs[0], &rs[1]], &[], ELEMENTS);
    // Rank 1 is stopped as soon as the operation starts, so the operation cannot finish before
    // the kill (with a fast relay a 32 MiB sum can end within the time `go` waits).
    let mut peers = connect(&tj, 15);
    let victim = peers[1].proc.pid();
    go_op_then(&mut peers, "sum", || signal(victim, "-STOP"));

    // While it runs, a second job is refused for memory: the accounting is live.
    let small = 1 << 20;
    let tb = ticket(&validator, 306, &[&rs[0], &rs[1]], &[], small);
    let busy = run_in_process(&tb, Duration::ZERO);
    assert!(
        busy.iter()
            .any(|r| r.as_ref().is_err_and(|e| e.contains("memory budget"))),
        "{busy:?}"
    );

    signal(peers[1].proc.pid(), "-KILL");
    let killed = Instant::now();
    let rank = format!("rank 1 ({})", tj.keys[1].ss58_address());
    for p in [&peers[0], &peers[2]] {
        match p.recv(Duration::from_secs(10)) {
            Reply::Failed { error } => {
                assert!(error.contains(&rank), "{error:?} should name {rank}");
                assert!(killed.elapsed() < Duration::from_secs(3), "{error}");
                eprintln!("after {:?}: {error}", killed.elapsed());
            }
            other => panic!("expected a failure naming {rank}, got {other:?}"),
        }
    }
    // Its memory comes back on every relay: the same second job now runs, exact.
    let tc = ticket(&validator, 307, &[&rs[0], &rs[1]], &[], small);
    let done = run_in_process(&tc, Duration::from_secs(10));
    for r in &done {
        assert!(r.is_ok(), "{done:?}");
    }
}

/// Runs one all_reduce of job `tj` with every rank in this process (threads), retrying a join
/// refused for memory for up to `retry`; each rank's error, or its check.
fn run_in_process(tj: &TestJob, retry: Duration) -> Vec<Result<(), String>> {
    let until = Instant::now() + retry;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..PEERS)
            .map(|r| {
                s.spawn(move || -> Result<(), String> {
                    let job = Job::from_ticket(tj.ticket.clone(), r).map_err(|e| e.to_string())?;
                    let n = job.elements as usize;
                    let mut p = loop {
                        match Peer::connect(job.clone(), &tj.keys[r as usize]) {
                            Ok(p) => break p,
                            Err(e)
                                if Instant::now() < until
                                    && e.to_string().contains("memory budget") =>
                            {
                                std::thread::sleep(Duration::from_millis(50))
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    };
                    let mut d = vec![r as f32 + 0.5; n];
                    p.all_reduce(&mut d, Op::Sum)
                        .map_err(|e: PeerError| e.to_string())?;
                    // 0.5 + 1.5 + 2.5, exact in f32.
                    match d.iter().position(|&x| x != 4.5) {
                        None => Ok(()),
                        Some(i) => Err(format!("element {i} is {}", d[i])),
                    }
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    })
}
