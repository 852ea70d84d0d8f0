//! all_reduce and broadcast through real `mrd relay` processes: every peer's result equals the
//! known answer bit for bit (f32 sums in rank order; f16/bf16 rounded exactly as documented).

mod relay_support;

use mapreduce::core::{Collective, Dtype, Op};
use mapreduce::peer::{Job, Peer, check};
use relay_support::{RelayProc, job, key};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// Relays whose window is 2 blocks, so backpressure is exercised on every multi-block shard.
fn relays(validator: &mapreduce::wallet::Keypair) -> Vec<RelayProc> {
    (0..3)
        .map(|_| RelayProc::start(validator, &[("MR_RELAY_WINDOW_BLOCKS", "2")]))
        .collect()
}

/// Runs sum, avg and a broadcast from the last rank on one job; checks every peer's tensor.
fn run_case(relays: &[RelayProc], p: u32, m: usize, dtype: Dtype, elements: u64, block: u32) {
    let validator = key(0);
    let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    let chosen: Vec<&RelayProc> = relays.iter().take(m).collect();
    let tj = job(&validator, id, p, &chosen, dtype, elements, block, 10_000);
    let seed = id * 31;
    let ops = [
        Collective::AllReduce(Op::Sum),
        Collective::AllReduce(Op::Avg),
        Collective::Broadcast { src: p - 1 },
    ];
    let case = format!("P={p} M={m} {dtype} n={elements}");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..p)
            .map(|rank| {
                let tj = &tj;
                let case = &case;
                s.spawn(move || {
                    let j = Job::from_ticket(tj.ticket.clone(), rank).expect("ticket");
                    let mut peer = Peer::connect(j, &tj.keys[rank as usize])
                        .unwrap_or_else(|e| panic!("{case}: rank {rank} connect: {e}"));
                    let mut data = vec![0f32; elements as usize];
                    for c in ops {
                        check::fill(seed, rank, &mut data);
                        let r = match c {
                            Collective::AllReduce(op) => peer.all_reduce(&mut data, op),
                            Collective::Broadcast { src } => peer.broadcast(&mut data, src),
                        };
                        r.unwrap_or_else(|e| panic!("{case}: rank {rank} {c}: {e}"));
                        check::verify(seed, p, c, dtype, rank, &data)
                            .unwrap_or_else(|e| panic!("{case}: rank {rank} {c}: {e}"));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("peer thread");
        }
    });
}

#[test]
fn every_shape_gives_the_exact_answer() {
    let validator = key(0);
    let relays = relays(&validator);
    let started = Instant::now();
    for p in [1, 2, 3, 5] {
        for m in [1, 2, 3] {
            for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                for n in [1, 7] {
                    run_case(&relays, p, m, dtype, n, 4);
                }
            }
        }
    }
    eprintln!("small cases took {:.2?}", started.elapsed());
}

#[test]
fn a_mebibyte_and_three_through_the_window() {
    let validator = key(0);
    let relays = relays(&validator);
    let n = (1 << 20) + 3;
    for (p, m, dtype) in [
        (3, 3, Dtype::F32),
        (5, 2, Dtype::F16),
        (2, 3, Dtype::Bf16),
        (1, 1, Dtype::F32),
    ] {
        let t = Instant::now();
        run_case(&relays, p, m, dtype, n, 64 * 1024);
        eprintln!("P={p} M={m} {dtype}: {:.2?}", t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(60));
    }
}
