//! Load on one relay (issue 12): one real `mrd relay` process serves many concurrent jobs of
//! P=3 peers at once; every result is checked element by element, the relay's peak resident
//! memory (VmHWM from /proc) stays within its configured budget plus the process's own base, and
//! the throughput of each job is printed.
//!
//! The default is a bounded run for every CI pass (4 jobs of 4 MiB per peer). The figure
//! (16 jobs of 64 MiB) is `scripts/load` (or `LOAD_JOBS=16 LOAD_MIB=64`, best in release:
//! `cargo test --release -p mapreduce --test load -- --nocapture`).

mod relay_support;

use mapreduce::core::{Collective, Dtype, Op};
use mapreduce::peer::{Job, Peer, check};
use relay_support::{RelayProc, job, key};
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak and current resident memory of a process, in bytes (VmHWM, VmRSS).
fn rss(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn one_relay_serves_concurrent_jobs_within_its_memory_budget() {
    const P: u32 = 3;
    let jobs = env("LOAD_JOBS", 4);
    let mib = env("LOAD_MIB", 4);
    let budget_mib = env("LOAD_BUDGET_MIB", 512);
    let elements = mib << 18; // f32
    let block: u32 = 256 * 1024; // 1 MiB of f32
    let validator = key(0);
    let budget = budget_mib.to_string();
    let relay = RelayProc::start(
        &validator,
        &[
            ("MR_RELAY_WINDOW_BLOCKS", "4"),
            ("MR_RELAY_MAX_MEMORY_MIB", budget.as_str()),
        ],
    );
    let pid = relay.proc.pid();
    let (base, _) = rss(pid);
    let tickets: Vec<_> = (0..jobs)
        .map(|j| {
            job(
                &validator,
                5000 + j,
                P,
                &[&relay],
                Dtype::F32,
                elements,
                block,
                60_000,
            )
        })
        .collect();
    let t0 = Instant::now();
    let per_job: Vec<f64> = std::thread::scope(|s| {
        let hs: Vec<_> = tickets
            .iter()
            .enumerate()
            .map(|(j, tj)| {
                s.spawn(move || {
                    let t = Instant::now();
                    std::thread::scope(|s2| {
                        for rank in 0..P {
                            s2.spawn(move || {
                                let job = Job::from_ticket(tj.ticket.clone(), rank).expect("job");
                                let mut peer = Peer::connect(job, &tj.keys[rank as usize])
                                    .unwrap_or_else(|e| panic!("job {j} rank {rank} connect: {e}"));
                                let mut data = vec![0f32; elements as usize];
                                check::fill(j as u64, rank, &mut data);
                                peer.all_reduce(&mut data, Op::Sum)
                                    .unwrap_or_else(|e| panic!("job {j} rank {rank}: {e}"));
                                check::verify(
                                    j as u64,
                                    P,
                                    Collective::AllReduce(Op::Sum),
                                    Dtype::F32,
                                    rank,
                                    &data,
                                )
                                .unwrap_or_else(|e| panic!("job {j} rank {rank}: {e}"));
                            });
                        }
                    });
                    t.elapsed().as_secs_f64()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("job")).collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    let (peak, now) = rss(pid);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    for (j, secs) in per_job.iter().enumerate() {
        // Each peer sends and receives its tensor: MiB per peer per second.
        println!(
            "load: job {j}: {mib} MiB x {P} peers in {secs:.2} s = {:.1} MiB/s per peer",
            mib as f64 / secs
        );
    }
    println!(
        "load: {jobs} jobs of P={P} x {mib} MiB, all exact, in {wall:.2} s ({:.1} MiB/s through the relay); relay RSS base {:.0} MiB, peak {:.0} MiB, now {:.0} MiB, budget {budget_mib} MiB",
        (jobs * u64::from(P) * mib) as f64 / wall,
        mb(base),
        mb(peak),
        mb(now)
    );
    // Blocks live in the budget; the rest is the process (code, runtime, sockets' buffers).
    let allowed = base + (budget_mib << 20) + (64 << 20);
    assert!(
        peak <= allowed,
        "relay peak RSS {:.0} MiB over its budget {budget_mib} MiB + base {:.0} MiB + 64 MiB",
        mb(peak),
        mb(base)
    );
}
