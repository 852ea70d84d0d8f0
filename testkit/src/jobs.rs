//! Work the tests put through real miners: a job of P peers that rendezvous through the
//! validator and all_reduce, and a bench bot's benchmark of one miner; every element checked.

use mapreduce::core::{Collective, Dtype, Op, Version};
use mapreduce::peer::collective::Peer;
use mapreduce::peer::job::Job;
use mapreduce::peer::{Session, SessionOptions, ValidatorAddr, check};
use mapreduce::wallet::Keypair;
use mr_proto::v1::{BenchmarkAssignment, BenchmarkOutcome, ReportBenchmarkRequest};
use std::time::Instant;

/// One peer per key (rank = index) joins job `name` through the validator at `addr` and
/// all_reduces (sum) `elements` f32 filled from `seed`; every element is verified. Returns the
/// job id (the same for every peer).
pub fn all_reduce_job(
    addr: &ValidatorAddr,
    peers: &[Keypair],
    name: &str,
    elements: u64,
    seed: u64,
) -> u64 {
    std::thread::scope(|s| {
        let hs: Vec<_> = peers
            .iter()
            .enumerate()
            .map(|(rank, k)| {
                s.spawn(move || {
                    let (rank, p) = (rank as u32, peers.len() as u32);
                    let mut sess = Session::init(
                        addr,
                        k,
                        p,
                        rank,
                        name,
                        elements,
                        Dtype::F32,
                        SessionOptions::default(),
                    )
                    .unwrap_or_else(|e| panic!("rank {rank} init: {e}"));
                    let mut data = vec![0f32; elements as usize];
                    check::fill(seed, rank, &mut data);
                    sess.all_reduce(&mut data, Op::Sum)
                        .unwrap_or_else(|e| panic!("rank {rank}: {e}"));
                    check::verify(
                        seed,
                        p,
                        Collective::AllReduce(Op::Sum),
                        Dtype::F32,
                        rank,
                        &data,
                    )
                    .unwrap_or_else(|e| panic!("rank {rank}: {e}"));
                    let id = sess.job_id();
                    sess.close();
                    id
                })
            })
            .collect();
        let ids: Vec<u64> = hs.into_iter().map(|h| h.join().expect("peer")).collect();
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        ids[0]
    })
}

/// What a benchmark report calls the miner's throughput.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throughput {
    /// One peer's bytes over the all_reduce time.
    PerPeer,
    /// All peers' bytes over the all_reduce time (what crossed the miner's link).
    ThroughMiner,
}

/// A bench bot's benchmark of assignment `a`: `peers` virtual peers all_reduce `bytes` each of
/// f32 through the assigned miner, every element checked; the report to send.
pub fn run_benchmark(
    a: &BenchmarkAssignment,
    bot: &Keypair,
    seed: u64,
    bytes: u64,
    peers: u32,
    throughput: Throughput,
) -> ReportBenchmarkRequest {
    let ticket = a.ticket.clone().expect("ticket");
    let elements = (bytes / 4) as usize;
    let started = mapreduce::wire::handshake::now_ms();
    let t0 = Instant::now();
    let times: Vec<(f64, f64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..peers)
            .map(|rank| {
                let ticket = ticket.clone();
                s.spawn(move || {
                    let job = Job::from_ticket(ticket, rank).expect("job");
                    let mut peer = Peer::connect(job, bot).expect("connect");
                    let joined = t0.elapsed().as_secs_f64() * 1000.0;
                    let mut data = vec![0f32; elements];
                    check::fill(seed, rank, &mut data);
                    let t = Instant::now();
                    peer.all_reduce(&mut data, Op::Sum).expect("all_reduce");
                    let took = t.elapsed().as_secs_f64();
                    check::verify(
                        seed,
                        peers,
                        Collective::AllReduce(Op::Sum),
                        Dtype::F32,
                        rank,
                        &data,
                    )
                    .expect("every element checked");
                    (joined, took)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("peer")).collect()
    });
    let took = times.iter().map(|t| t.1).fold(0.0, f64::max).max(1e-6);
    let latency = times.iter().map(|t| t.0).fold(0.0, f64::max);
    let rate = match throughput {
        Throughput::PerPeer => bytes as f64 / took,
        Throughput::ThroughMiner => (bytes * u64::from(peers)) as f64 / took,
    };
    ReportBenchmarkRequest {
        version: Some(Version::CURRENT.into()),
        benchmark_id: a.benchmark_id,
        miner_uid: a.miner_uid,
        miner_hotkey: a.miner_hotkey.clone(),
        outcome: BenchmarkOutcome::Ok as i32,
        reason: String::new(),
        bytes,
        peers,
        seed,
        checked_elements: bytes / 4 * u64::from(peers),
        upload_bytes_per_s: rate,
        download_bytes_per_s: rate,
        broadcast_bytes_per_s: 0.0,
        latency_ms: latency,
        all_reduce_s: took,
        broadcast_s: 0.0,
        started_at_ms: started,
        finished_at_ms: mapreduce::wire::handshake::now_ms(),
    }
}
