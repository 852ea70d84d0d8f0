//! One benchmark: the bot plays the ticket's P virtual peers (threads, each a real
//! [`Peer`](crate::peer::Peer) with its own connection), runs all_reduce (sum) then a broadcast
//! from rank 0 through the miner, checks every element of every peer's result against the
//! known answer, and measures throughput and latency.
//!
//! The data comes from a seed drawn after the assignment arrived (see
//! [`check`](crate::peer::check)): rank r's all_reduce input is `value(seed, r, i)`; the
//! broadcast's data is rank 0's input under [`broadcast_seed`]`(seed)`, so it cannot be replayed
//! from the all_reduce. f32 sums in rank order are exact, so the check is bit for bit.

use super::linkwatch::{self, LinkTimes};
use super::state::{BenchResult, Outcome, Phase};
use crate::core::{Collective, Dtype, Op};
use crate::peer::check::{self, Mismatch};
use crate::peer::failover::LossKind;
use crate::peer::pace::SharedPace;
use crate::peer::{Job, Peer, PeerError, PeerProgress};
use crate::relay;
use crate::wallet::Keypair;
use crate::wire::SignedTicket;
use crate::wire::handshake::now_ms;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How often progress is sampled while the peers run.
const TICK: Duration = Duration::from_millis(250);

/// Seed of the broadcast data, derived from the benchmark's seed.
pub fn broadcast_seed(seed: u64) -> u64 {
    seed.rotate_left(17) ^ 0xB0AD_CA57_5EED_0001
}

/// A progress sample: phase, bytes moved by all virtual peers together, of the total, and the
/// throughput over the last sample interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub bytes_per_s: f64,
}

/// What one virtual peer did.
struct RankRun {
    allreduce: Vec<f32>,
    broadcast: Vec<f32>,
    connect_started: Instant,
    first_result: Option<Instant>,
    /// The all_reduce's bytes on the miner's link, seen by this peer (see [`Flow`]).
    flow: Flow,
    all_reduce_s: f64,
    broadcast_s: f64,
    broadcast_recv_s: f64,
}

/// When one peer's all_reduce bytes crossed the miner's link: its upload from the operation's
/// start until the miner had acknowledged the last byte, its download from the first result
/// byte's arrival to the last's. From the kernel's counters when it has them
/// ([`linkwatch`]); otherwise from the application's instants (last write returned, first and
/// last result read), which overstate a fast upload by the socket buffers.
#[derive(Debug, Clone, Copy)]
struct Flow {
    start: Instant,
    up_end: Instant,
    down_start: Instant,
    down_end: Instant,
    kernel: bool,
}

impl Flow {
    fn of(
        start: Instant,
        end: Instant,
        app: crate::peer::progress::Times,
        link: Option<LinkTimes>,
    ) -> Flow {
        let app_flow = Flow {
            start,
            up_end: app.last_sent.unwrap_or(end),
            down_start: app.first_received.unwrap_or(start),
            down_end: app.last_received.unwrap_or(end),
            kernel: false,
        };
        match link {
            Some(LinkTimes {
                last_acked: Some(up_end),
                first_received: Some(down_start),
                last_received: Some(down_end),
                ..
            }) => Flow {
                start,
                up_end,
                down_start,
                down_end,
                kernel: true,
            },
            _ => app_flow,
        }
    }
}

/// The link's rates over all peers' flows: (upload, download) in bytes per second per peer, i.e.
/// `d` over the span from the first peer's start to the last peer's end (the P peers share the
/// miner's link, so P·d crossed it in that span each way).
fn link_rates(d: u64, flows: &[Flow]) -> (f64, f64) {
    let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
        (Some(a), Some(b)) if b > a => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = |secs: f64| if secs > 0.0 { d as f64 / secs } else { 0.0 };
    let up = span(
        flows.iter().map(|f| f.start).min(),
        flows.iter().map(|f| f.up_end).max(),
    );
    let down = span(
        flows.iter().map(|f| f.down_start).min(),
        flows.iter().map(|f| f.down_end).max(),
    );
    (rate(up), rate(down))
}

/// The longest a virtual peer waits at the start line for the others.
const START_WAIT: Duration = Duration::from_secs(10);

/// Where the virtual peers wait for each other before the all_reduce, so they start it together:
/// a peer that started late (its data filled after the others', on a busy machine) held back
/// every result and left the miner's download link idle at the start (90 ms of a 1.1 s run).
struct StartLine {
    arrived: Mutex<u32>,
    all_here: Condvar,
    peers: u32,
}

impl StartLine {
    fn new(peers: u32) -> StartLine {
        StartLine {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            peers,
        }
    }

    /// Returns when every peer has arrived, or after `max`.
    fn wait(&self, max: Duration) {
        let mut n = self.arrived.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        if *n >= self.peers {
            self.all_here.notify_all();
            return;
        }
        let peers = self.peers;
        let _ = self
            .all_here
            .wait_timeout_while(n, max, |n| *n < peers)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Why a virtual peer stopped, and whether it had joined the job.
struct RankFailure {
    error: PeerError,
    joined: bool,
}

impl RankFailure {
    /// How much this failure says about the miner, when several ranks fail. Every rank is one of
    /// the bot's own virtual peers, so a relay's report that a rank disconnected only echoes that
    /// rank's own failure (its deadline passed first, say): the rank's own error tells, the echo
    /// does not outrank it.
    fn telling(&self) -> u8 {
        match &self.error {
            PeerError::Relay { reason, .. } if relay::machine::reports_a_peer_left(reason) => 0,
            e => e.rank(),
        }
    }
}

/// Runs the benchmark of `ticket` with `key` (every rank of the ticket must be `key`'s hotkey)
/// on data from `seed`. Never panics on what the miner does; every failure becomes an
/// [`Outcome`] with a reason. `on_progress` is called from this thread a few times a second.
pub fn run(
    ticket: &SignedTicket,
    key: &Keypair,
    seed: u64,
    on_progress: &mut dyn FnMut(Progress),
) -> BenchResult {
    let started_at_ms = now_ms();
    let mut result = BenchResult {
        outcome: Outcome::Error,
        reason: String::new(),
        seed,
        bytes: 0,
        peers: 0,
        checked_elements: 0,
        upload_bytes_per_s: 0.0,
        download_bytes_per_s: 0.0,
        broadcast_bytes_per_s: 0.0,
        latency_ms: 0.0,
        all_reduce_s: 0.0,
        broadcast_s: 0.0,
        started_at_ms,
        finished_at_ms: started_at_ms,
    };
    let jobs: Result<Vec<Job>, PeerError> = match Job::from_ticket(ticket.clone(), 0) {
        Ok(j) => (0..j.peers)
            .map(|r| Job::from_ticket(ticket.clone(), r))
            .collect(),
        Err(e) => Err(e),
    };
    let jobs = match jobs {
        Ok(j) => j,
        Err(e) => {
            result.reason = format!("the assignment's ticket is unusable: {e}");
            result.finished_at_ms = now_ms();
            return result;
        }
    };
    let first = &jobs[0];
    let p = first.peers;
    let n = first.elements;
    result.peers = p;
    result.bytes = n * 4;
    if let Some(h) = first.peer_hotkeys.iter().find(|h| *h != key.ss58_address()) {
        result.reason = format!(
            "the ticket names peer {h}, not this bot ({})",
            key.ss58_address()
        );
        result.finished_at_ms = now_ms();
        return result;
    }
    let dtype = first.dtype;
    let layout = first.layout.clone();
    let bseed = broadcast_seed(seed);
    let d = n * 4;
    // all_reduce: every peer sends and receives D; broadcast: rank 0 sends D, the others get it.
    let ar_total = 2 * d * u64::from(p);
    let total = ar_total + d * u64::from(p);
    let progress: Vec<Arc<PeerProgress>> = (0..p).map(|_| Arc::new(PeerProgress::new())).collect();
    let connected = AtomicU32::new(0);
    let start_line = StartLine::new(p);
    // The virtual peers share this machine's link to the miner: their all_reduce blocks leave in
    // turn across all of them, so the benchmark measures the miner's link, not TCP's uneven
    // split between the bot's own flows (see `SharedPace`).
    let blocks: Vec<u32> = (0..layout.shard_count())
        .map(|i| layout.shard_plan(i).blocks())
        .collect();
    let paces = SharedPace::group(p, &blocks);

    let runs: Vec<Result<RankRun, RankFailure>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .zip(&progress)
            .zip(paces)
            .map(|((job, prog), pace)| {
                let (connected, start_line) = (&connected, &start_line);
                let prog = Arc::clone(prog);
                s.spawn(move || {
                    virtual_peer(job, key, (seed, bseed), prog, pace, connected, start_line)
                })
            })
            .collect();
        let mut last = (Instant::now(), 0u64);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(TICK);
            let done: u64 = progress.iter().map(|x| x.sent() + x.received()).sum();
            let now = Instant::now();
            let rate = (done.saturating_sub(last.1)) as f64
                / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            let phase = if connected.load(Ordering::Relaxed) < p {
                Phase::Connecting
            } else if done < ar_total {
                Phase::AllReduce
            } else {
                Phase::Broadcast
            };
            on_progress(Progress {
                phase,
                bytes_done: done.min(total),
                bytes_total: total,
                bytes_per_s: rate,
            });
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(RankFailure {
                        error: PeerError::Failed("a virtual peer panicked".into()),
                        joined: false,
                    })
                })
            })
            .collect()
    });

    // The most telling failure wins (the relay's own report, then what readers saw).
    let mut failures: Vec<RankFailure> = Vec::new();
    let mut oks: Vec<RankRun> = Vec::new();
    for r in runs {
        match r {
            Ok(x) => oks.push(x),
            Err(f) => failures.push(f),
        }
    }
    if let Some(f) = failures.into_iter().max_by_key(|f| f.telling()) {
        let (outcome, reason) = classify(&f.error, f.joined);
        result.outcome = outcome;
        result.reason = reason;
        result.finished_at_ms = now_ms();
        return result;
    }

    on_progress(Progress {
        phase: Phase::Verifying,
        bytes_done: total,
        bytes_total: total,
        bytes_per_s: 0.0,
    });
    let rate = |secs: f64| if secs > 0.0 { d as f64 / secs } else { 0.0 };
    let flows: Vec<Flow> = oks.iter().map(|r| r.flow).collect();
    (result.upload_bytes_per_s, result.download_bytes_per_s) = link_rates(d, &flows);
    log_flows(&flows, d, p);
    result.all_reduce_s = oks.iter().map(|r| r.all_reduce_s).fold(0.0, f64::max);
    result.broadcast_s = oks.iter().map(|r| r.broadcast_s).fold(0.0, f64::max);
    let receivers: Vec<&RankRun> = oks.iter().skip(1).collect();
    result.broadcast_bytes_per_s = if receivers.is_empty() {
        rate(result.broadcast_s)
    } else {
        receivers
            .iter()
            .map(|r| rate(r.broadcast_recv_s))
            .sum::<f64>()
            / receivers.len() as f64
    };
    let start = oks.iter().map(|r| r.connect_started).min();
    let first_result = oks.iter().filter_map(|r| r.first_result).min();
    if let (Some(s), Some(f)) = (start, first_result) {
        result.latency_ms = f.duration_since(s).as_secs_f64() * 1e3;
    }

    // Every element of every peer's results, ranks checked in parallel.
    let checks: Vec<(u64, Result<(), String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = oks
            .iter()
            .enumerate()
            .map(|(rank, r)| {
                let layout = &layout;
                s.spawn(move || verify_rank(seed, bseed, p, dtype, rank as u32, r, layout))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (0, Err("the check of a rank panicked".into())))
            })
            .collect()
    });
    result.checked_elements = checks.iter().map(|c| c.0).sum();
    match checks.into_iter().find_map(|c| c.1.err()) {
        Some(reason) => {
            result.outcome = Outcome::WrongResult;
            result.reason = reason;
        }
        None => result.outcome = Outcome::Ok,
    }
    result.finished_at_ms = now_ms();
    result
}

/// One virtual peer: join, all_reduce, broadcast from rank 0; results kept for the check.
fn virtual_peer(
    job: Job,
    key: &Keypair,
    (seed, bseed): (u64, u64),
    progress: Arc<PeerProgress>,
    pace: SharedPace,
    connected: &AtomicU32,
    start_line: &StartLine,
) -> Result<RankRun, RankFailure> {
    let rank = job.rank;
    let n = job.elements as usize;
    let connect_started = Instant::now();
    let joined = Peer::connect(job, key);
    let mut allreduce = vec![0f32; n];
    check::fill(seed, rank, &mut allreduce);
    // Every rank comes here, joined or not, so none waits for a failed one longer than the cap.
    start_line.wait(START_WAIT);
    let mut peer = joined.map_err(|error| {
        pace.leave();
        RankFailure {
            error,
            joined: false,
        }
    })?;
    connected.fetch_add(1, Ordering::Relaxed);
    peer.set_progress(Arc::clone(&progress));
    peer.pace_next_with(pace);
    let failed = |error| RankFailure {
        error,
        joined: true,
    };

    // Without handles the kernel's counters are not read and the application's instants serve.
    let socks = peer.socket_handles().unwrap_or_default();
    let t = Instant::now();
    let (done, link) = linkwatch::during(&socks, || peer.all_reduce(&mut allreduce, Op::Sum));
    let end = Instant::now();
    done.map_err(failed)?;
    drop(socks);
    let all_reduce_s = end.duration_since(t).as_secs_f64();
    let times = progress.times();
    let flow = Flow::of(t, end, times, link);
    let first_result = times.first_received;

    progress.reset_last();
    let mut broadcast = vec![0f32; n];
    if rank == 0 {
        check::fill(bseed, 0, &mut broadcast);
    } else {
        // Anything but the answer, so a relay that sends nothing cannot pass.
        broadcast.fill(f32::NAN);
    }
    let t = Instant::now();
    peer.broadcast(&mut broadcast, 0).map_err(failed)?;
    let broadcast_s = t.elapsed().as_secs_f64();
    let broadcast_recv_s = progress
        .times()
        .last_received
        .map_or(broadcast_s, |i| i.duration_since(t).as_secs_f64());
    drop(peer);
    Ok(RankRun {
        allreduce,
        broadcast,
        connect_started,
        first_result,
        flow,
        all_reduce_s,
        broadcast_s,
        broadcast_recv_s,
    })
}

/// One line per benchmark on where the all_reduce's time went (the figures' inputs).
fn log_flows(flows: &[Flow], d: u64, p: u32) {
    let Some(t0) = flows.iter().map(|f| f.start).min() else {
        return;
    };
    let at = |i: Instant| i.saturating_duration_since(t0).as_secs_f64();
    let spans: Vec<String> = flows
        .iter()
        .map(|f| {
            format!(
                "up {:.3}-{:.3} s, down {:.3}-{:.3} s",
                at(f.start),
                at(f.up_end),
                at(f.down_start),
                at(f.down_end)
            )
        })
        .collect();
    let source = if flows.iter().all(|f| f.kernel) {
        "the kernel's TCP counters"
    } else {
        "the application's instants"
    };
    tracing::info!(
        bytes = d,
        peers = p,
        "all_reduce on the link, from {source}: {}",
        spans.join("; ")
    );
}

/// Checks one rank's two results; returns the elements compared and the first difference.
fn verify_rank(
    seed: u64,
    bseed: u64,
    p: u32,
    dtype: Dtype,
    rank: u32,
    r: &RankRun,
    layout: &crate::core::Layout,
) -> (u64, Result<(), String>) {
    let n = r.allreduce.len() as u64;
    let c = Collective::AllReduce(Op::Sum);
    if let Err(m) = check::verify(seed, p, c, dtype, rank, &r.allreduce) {
        return (m.index, Err(describe("all_reduce", rank, &m, layout)));
    }
    let c = Collective::Broadcast { src: 0 };
    if let Err(m) = check::verify(bseed, p, c, dtype, rank, &r.broadcast) {
        return (n + m.index, Err(describe("broadcast", rank, &m, layout)));
    }
    (2 * n, Ok(()))
}

/// "all_reduce on rank 1: shard 0 block 3 element 12 (tensor element 3145740) is ..., expected ...".
fn describe(op: &str, rank: u32, m: &Mismatch, layout: &crate::core::Layout) -> String {
    let shard = (0..layout.shard_count()).find(|&s| layout.shard(s).contains(&m.index));
    let place = match shard {
        Some(s) => {
            let off = m.index - layout.shard(s).start;
            let be = layout.block_elems().max(1);
            format!(
                "shard {s} block {} element {} (tensor element {})",
                off / be,
                off % be,
                m.index
            )
        }
        None => format!("tensor element {}", m.index),
    };
    format!(
        "{op} on rank {rank}: {place} is {:e}, expected {:e} (bits {:#010x} vs {:#010x})",
        m.got, m.want, m.got_bits, m.want_bits
    )
}

/// The outcome a peer's error means for the miner under test.
pub fn classify(e: &PeerError, joined: bool) -> (Outcome, String) {
    let reason = e.to_string();
    let outcome = match e {
        PeerError::Connect { .. } => Outcome::Unreachable,
        PeerError::Closed { .. } | PeerError::Io { .. } => Outcome::Unreachable,
        PeerError::Timeout { .. } => Outcome::Timeout,
        PeerError::MinerLost { kind, .. } => match kind {
            LossKind::Dropped => Outcome::Unreachable,
            LossKind::Stalled => Outcome::Timeout,
            LossKind::Protocol => Outcome::WrongResult,
        },
        // Before the job started the relay's word is a refusal (trust, memory, limits).
        PeerError::Relay { .. } if !joined => Outcome::Refused,
        PeerError::Relay { .. } => Outcome::Error,
        // Frames out of order, wrong lengths, bad checksums: the results are not what was asked.
        PeerError::Protocol { .. } => Outcome::WrongResult,
        PeerError::Ticket(_)
        | PeerError::Key(_)
        | PeerError::Rank { .. }
        | PeerError::WrongKey { .. }
        | PeerError::Length { .. }
        | PeerError::Source { .. }
        | PeerError::Failed(_)
        | PeerError::Engine(_)
        | PeerError::Expired { .. } => Outcome::Error,
    };
    (outcome, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relays_echo_of_a_rank_leaving_does_not_outrank_that_ranks_own_timeout() {
        let fail = |error| RankFailure {
            error,
            joined: true,
        };
        let timeout = fail(PeerError::Timeout {
            miner: "miner 0".into(),
            secs: 1.0,
            during: "waiting for block 1".into(),
        });
        let echo = fail(PeerError::Relay {
            miner: "miner 0".into(),
            reason: "rank 1 (5Gds) disconnected during operation 0 (all_reduce), at block 2 of 4"
                .into(),
        });
        let refusal = fail(PeerError::Relay {
            miner: "miner 0".into(),
            reason: "memory budget exceeded".into(),
        });
        assert!(timeout.telling() > echo.telling());
        assert!(refusal.telling() > timeout.telling());
        let chosen = [echo, timeout]
            .into_iter()
            .max_by_key(|f| f.telling())
            .expect("one");
        assert_eq!(classify(&chosen.error, true).0, Outcome::Timeout);
    }

    #[test]
    fn link_rates_span_every_peer_and_leave_out_the_download_head() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let flow = |start, up_end, down_start, down_end| Flow {
            start: at(start),
            up_end: at(up_end),
            down_start: at(down_start),
            down_end: at(down_end),
            kernel: true,
        };
        // One peer got ahead; the link's upload ran from the first start to the last ack, its
        // download from the first result byte to the last.
        let flows = [
            flow(0, 600, 100, 1100),
            flow(5, 1000, 100, 1100),
            flow(2, 900, 101, 1050),
        ];
        let (up, down) = link_rates(1_000_000, &flows);
        assert!((up - 1_000_000.0).abs() < 1e-6, "{up}");
        assert!((down - 1_000_000.0).abs() < 1e-6, "{down}");
        assert_eq!(link_rates(1_000_000, &[]), (0.0, 0.0));
        // An empty span measures nothing rather than infinity.
        assert_eq!(link_rates(1, &[flow(0, 0, 0, 0)]), (0.0, 0.0));
    }

    #[test]
    fn without_kernel_counters_the_application_instants_serve() {
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(2);
        let app = crate::peer::progress::Times {
            first_received: Some(t0 + Duration::from_millis(50)),
            last_sent: Some(t0 + Duration::from_secs(1)),
            last_received: Some(end),
        };
        let f = Flow::of(t0, end, app, None);
        assert!(!f.kernel);
        assert_eq!(
            (f.up_end, f.down_start),
            (app.last_sent.unwrap(), app.first_received.unwrap())
        );
    }
}
