//! Send pacing across one peer's miner connections: the peer, not TCP, decides which shard's
//! block leaves next.
//!
//! Why: a peer uploads its P shards over P TCP flows that share one link, and TCP does not share
//! a link evenly (measured on a 200 Mbit/s link: 9.8 MB acknowledged on the slowest of 4 flows
//! against 12.4-12.9 MB on the others). A relay reduces block k only once every peer's block k is
//! in, so each relay runs at its slowest incoming flow and the peers' downloads wait for it. Here
//! a shard may send its block b only while b is at most `ahead` blocks past where the laggard
//! shard stands (positions compared as fractions of each shard, so weighted shards finish
//! together). The bytes a fast flow is held back from sending go to the slow ones instead. The
//! sockets keep little unsent data (`TCP_NOTSENT_LOWAT`, see [`super::conn`]), so a block counted
//! as sent here has left the peer, not just entered a socket buffer.
//!
//! The laggard can always send (it is never ahead of itself), and a relay always reads from the
//! peer that is furthest behind on its shard, so the slowest flow of the whole job always moves:
//! pacing cannot deadlock. A shard whose writer stopped (done, failed, moved to a spare) leaves
//! the pacing for the rest of the operation, and a shard that has not moved for `stall` (its miner
//! stopped reading) holds nobody back until it moves again: the other miners keep getting their
//! blocks, so they do not blame this peer for a silence that is another miner's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How many blocks a shard may run ahead of the laggard by default.
pub const AHEAD: u32 = 2;

/// Unsent bytes a peer's socket may hold before a write waits (`TCP_NOTSENT_LOWAT`).
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// [`AHEAD`], or `MAPREDUCE_PACE_AHEAD` for experiments ("off" turns pacing off).
pub fn ahead() -> u32 {
    match std::env::var("MAPREDUCE_PACE_AHEAD").ok().as_deref() {
        Some("off") => u32::MAX,
        Some(v) => v.parse().unwrap_or(AHEAD),
        None => AHEAD,
    }
}

/// [`NOTSENT_LOWAT`], or `MAPREDUCE_NOTSENT_LOWAT` for experiments (0 leaves the kernel's).
pub fn notsent_lowat() -> u32 {
    std::env::var("MAPREDUCE_NOTSENT_LOWAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(NOTSENT_LOWAT)
}

/// How long a shard may go without sending before it stops pacing the others: a quarter of the
/// operation's per-block deadline, at most 1 s (a 256 KiB block takes 0.1-0.3 s per flow at
/// the rates measured), so the other miners hear from this peer well within their deadline.
pub fn stall_time(deadline: Duration) -> Duration {
    (deadline / 4).min(STALL_CAP)
}

/// The longest stall time; also a [`SharedPace`] group's (its peers may run under different
/// deadlines).
const STALL_CAP: Duration = Duration::from_secs(1);

/// One operation's pacing shared by several peers of one process whose flows share one link (the
/// bench bot's virtual peers): blocks leave in turn across all of them, not only across one peer's
/// shards. Without it TCP gave one virtual peer a 5 MB lead on a 200 Mbit/s link, the relay's
/// results waited for the laggard, the download link idled, and the benchmark measured the bot's
/// own flows rather than the miner (downloads read 0.76-0.91 of the link's rate, 0.85-0.94 with).
#[derive(Debug, Clone)]
pub struct SharedPace {
    pacer: Arc<Pacer>,
    /// This peer's first lane: the group's lanes are (rank, shard) pairs, rank-major.
    first_lane: usize,
    shards: usize,
}

impl SharedPace {
    /// One pacer for `peers` peers whose shards have `blocks` blocks each (the same layout for
    /// every peer): element r is rank r's. For an operation in which every peer sends
    /// (all_reduce); a peer that does not send leaves the pacing at once.
    pub fn group(peers: u32, blocks: &[u32]) -> Vec<SharedPace> {
        let lanes = (0..peers).flat_map(|_| blocks.iter().copied());
        let pacer = Arc::new(Pacer::new(lanes, ahead(), STALL_CAP, true));
        (0..peers as usize)
            .map(|r| SharedPace {
                pacer: Arc::clone(&pacer),
                first_lane: r * blocks.len(),
                shards: blocks.len(),
            })
            .collect()
    }

    /// The pacer, and this peer's first lane in it, for a peer with `shards` shards; `None` when
    /// the group was made for another layout. Its lanes count as moving from now: the group was
    /// made before the peers got to their operation.
    pub(super) fn start(&self, shards: usize) -> Option<(&Pacer, usize)> {
        if shards != self.shards {
            return None;
        }
        let mut lanes = self.pacer.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for l in lanes.iter_mut().skip(self.first_lane).take(self.shards) {
            l.moved = now;
        }
        Some((&*self.pacer, self.first_lane))
    }

    /// This peer leaves the group's pacing (it will not send: it failed to join, say).
    pub fn leave(&self) {
        for i in 0..self.shards {
            self.pacer.close(self.first_lane + i);
        }
    }
}

/// How often a waiting writer looks whether it should give up (the operation failed).
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
struct Lane {
    /// Blocks sent so far.
    sent: u32,
    blocks: u32,
    /// Still paced (its writer runs and has blocks left).
    open: bool,
    /// When it last sent a block (or the operation started).
    moved: Instant,
}

impl Lane {
    fn active(&self, now: Instant, stall: Duration) -> bool {
        self.open && self.sent < self.blocks && now.duration_since(self.moved) < stall
    }
}

/// One operation's send positions, shared by its shard writers.
#[derive(Debug)]
pub struct Pacer {
    ahead: u32,
    stall: Duration,
    lanes: Mutex<Vec<Lane>>,
    /// Wakes the writers waiting for their turn (they all run on the peer's one engine thread).
    moved: Notify,
}

impl Pacer {
    /// `blocks[i]` is shard i's block count. `ahead` = 0 is lockstep; `u32::MAX` turns pacing
    /// off (as does `on = false`, for an operation in which this peer sends nothing). A shard
    /// that has not sent a block for `stall` paces nobody until it sends one.
    pub fn new(
        blocks: impl IntoIterator<Item = u32>,
        ahead: u32,
        stall: Duration,
        on: bool,
    ) -> Pacer {
        let now = Instant::now();
        let lanes = blocks
            .into_iter()
            .map(|blocks| Lane {
                sent: 0,
                blocks,
                open: on && ahead != u32::MAX,
                moved: now,
            })
            .collect();
        Pacer {
            ahead,
            stall,
            lanes: Mutex::new(lanes),
            moved: Notify::new(),
        }
    }

    /// Whether `shard` may send its block `b` now.
    fn allowed(&self, lanes: &[Lane], shard: usize, b: u32) -> bool {
        let Some(me) = lanes.get(shard) else {
            return true;
        };
        if !me.open {
            return true;
        }
        // The laggard's position projected onto this shard's blocks.
        let now = Instant::now();
        let floor = lanes
            .iter()
            .filter(|l| l.active(now, self.stall))
            .map(|l| u64::from(l.sent) * u64::from(me.blocks) / u64::from(l.blocks))
            .min();
        match floor {
            None => true,
            Some(f) => u64::from(b) <= f + u64::from(self.ahead),
        }
    }

    fn may(&self, shard: usize, b: u32) -> bool {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        self.allowed(&lanes, shard, b)
    }

    /// Waits until `shard` may send its block `b`. Returns false, without waiting longer, once
    /// `stop()` says the operation is over. Looks again every [`POLL`] even unwoken: a laggard
    /// that stalls stops pacing the others by the clock, not by an event.
    pub async fn wait_turn(&self, shard: usize, b: u32, stop: impl Fn() -> bool) -> bool {
        if self.may(shard, b) {
            return true;
        }
        loop {
            // Registered before the check, so a move between the two is not missed.
            let moved = self.moved.notified();
            let mut moved = std::pin::pin!(moved);
            moved.as_mut().enable();
            if self.may(shard, b) {
                return true;
            }
            if stop() {
                return false;
            }
            let _ = tokio::time::timeout(POLL, moved).await;
        }
    }

    /// `shard` has sent its block `b`.
    pub fn sent(&self, shard: usize, b: u32) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lanes.get_mut(shard) {
            l.sent = l.sent.max(b.saturating_add(1));
            l.moved = Instant::now();
        }
        drop(lanes);
        self.moved.notify_waiters();
    }

    /// `shard` leaves the pacing for the rest of the operation (its writer stopped).
    pub fn close(&self, shard: usize) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lanes.get_mut(shard) {
            l.open = false;
        }
        drop(lanes);
        self.moved.notify_waiters();
    }

    /// Closes `shard`'s lane when dropped (a writer's every way out).
    pub fn lane(&self, shard: usize) -> LaneGuard<'_> {
        LaneGuard { pacer: self, shard }
    }
}

/// See [`Pacer::lane`].
pub struct LaneGuard<'a> {
    pacer: &'a Pacer,
    shard: usize,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        self.pacer.close(self.shard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    fn may(p: &Pacer, shard: usize, b: u32) -> bool {
        let lanes = p.lanes.lock().unwrap();
        p.allowed(&lanes, shard, b)
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn no_shard_runs_more_than_ahead_past_the_laggard() {
        let p = Pacer::new([10, 10, 10], 2, LONG, true);
        assert!(may(&p, 0, 0) && may(&p, 0, 2));
        assert!(!may(&p, 0, 3), "3 blocks ahead of shards still at 0");
        for b in 0..3 {
            p.sent(0, b);
        }
        p.sent(1, 0);
        // Shard 2 is the laggard at 0: the others may go up to block 2.
        assert!(!may(&p, 1, 3) && may(&p, 1, 2));
        assert!(may(&p, 2, 0), "the laggard always may send");
        p.sent(2, 0);
        assert!(may(&p, 0, 3), "laggards now at 1");
        assert!(!may(&p, 0, 4));
    }

    #[test]
    fn lockstep_and_off() {
        let p = Pacer::new([4, 4], 0, LONG, true);
        assert!(may(&p, 0, 0) && !may(&p, 0, 1));
        p.sent(0, 0);
        assert!(!may(&p, 0, 1) && may(&p, 1, 0));
        let off = Pacer::new([4, 4], u32::MAX, LONG, true);
        assert!(may(&off, 0, 3));
        let receiver = Pacer::new([4, 4], 0, LONG, false);
        assert!(may(&receiver, 1, 3));
    }

    #[test]
    fn weighted_shards_compare_fractions() {
        // Shard 0 has twice the blocks of shard 1: halfway is block 4 against block 2.
        let p = Pacer::new([8, 4], 0, LONG, true);
        p.sent(1, 0);
        p.sent(1, 1);
        assert!(may(&p, 0, 0) && !may(&p, 1, 2));
        for b in 0..4 {
            p.sent(0, b);
        }
        assert!(may(&p, 1, 2) && may(&p, 0, 4) && !may(&p, 0, 5));
    }

    #[test]
    fn finished_closed_and_empty_shards_hold_nobody_back() {
        let p = Pacer::new([2, 6, 0], 0, LONG, true);
        p.sent(0, 0);
        p.sent(1, 0);
        p.sent(0, 1);
        // Shard 0 is done and shard 2 has nothing: only shard 1 paces now.
        assert!(may(&p, 1, 1) && !may(&p, 1, 2));
        let q = Pacer::new([6, 6], 0, LONG, true);
        q.sent(0, 0);
        assert!(!may(&q, 0, 1));
        drop(q.lane(1));
        assert!(may(&q, 0, 1), "a closed lane paces nobody");
        assert!(may(&q, 1, 3), "nor is it paced");
    }

    #[test]
    fn a_stalled_shard_holds_nobody_back_until_it_moves() {
        let p = Pacer::new([6, 6], 0, Duration::from_millis(50), true);
        p.sent(0, 0);
        assert!(!may(&p, 0, 1));
        std::thread::sleep(Duration::from_millis(80));
        p.sent(0, 1);
        assert!(may(&p, 0, 2), "shard 1 has not moved for the stall time");
        p.sent(1, 0);
        assert!(!may(&p, 0, 2), "it moved: it paces again");
    }

    #[test]
    fn a_shared_pace_paces_peers_as_one_and_lets_leavers_go() {
        // Three peers of two shards each: lanes (rank, shard), rank-major.
        let g = SharedPace::group(3, &[6, 6]);
        assert_eq!(g.len(), 3);
        assert!(g[0].start(1).is_none(), "made for two shards, not one");
        let (p0, l0) = g[0].start(2).expect("two shards");
        let (p2, l2) = g[2].start(2).expect("two shards");
        assert_eq!((l0, l2), (0, 4));
        assert!(std::ptr::eq(p0, p2), "one pacer for the group");
        for b in 0..3 {
            p0.sent(l0, b);
            p0.sent(l0 + 1, b);
        }
        assert!(!may(p0, l0, 3), "rank 0 is 3 blocks past ranks 1 and 2");
        assert!(may(p2, l2 + 1, 0), "a laggard always may send");
        g[1].leave();
        p2.sent(l2, 0);
        p2.sent(l2 + 1, 0);
        assert!(
            !may(p0, l0, 4) && may(p0, l0, 3),
            "rank 2 paces, rank 1 left"
        );
    }

    #[test]
    fn a_shared_pace_counts_its_lanes_as_moving_from_their_start() {
        let g = SharedPace::group(2, &[8]);
        std::thread::sleep(STALL_CAP + Duration::from_millis(50));
        let (p, l0) = g[0].start(1).expect("one shard");
        for b in 0..5 {
            p.sent(l0, b);
        }
        // Rank 1 has not started since the group was made: stalled, it holds nobody back.
        assert!(may(p, l0, 5));
        let (_, l1) = g[1].start(1).expect("one shard");
        assert!(!may(p, l0, 5), "rank 1 started: rank 0 waits for it");
        for b in 0..3 {
            p.sent(l1, b);
        }
        assert!(may(p, l0, 5));
    }

    #[test]
    fn a_waiter_wakes_when_the_laggard_moves_or_gives_up_on_stop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let p = Pacer::new([4, 4], 0, LONG, true);
        p.sent(0, 0);
        let stop = AtomicBool::new(false);
        let woke = AtomicBool::new(false);
        rt.block_on(async {
            let waiter = async {
                let ok = p.wait_turn(0, 1, || stop.load(Ordering::Relaxed)).await;
                woke.store(true, Ordering::Relaxed);
                ok
            };
            let mover = async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                assert!(!woke.load(Ordering::Relaxed), "shard 1 has not moved yet");
                p.sent(1, 0);
            };
            let (ok, ()) = tokio::join!(waiter, mover);
            assert!(ok);
        });
        let started = Instant::now();
        rt.block_on(async {
            let waiter = p.wait_turn(0, 3, || stop.load(Ordering::Relaxed));
            let stopper = async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                stop.store(true, Ordering::Relaxed);
            };
            let (ok, ()) = tokio::join!(waiter, stopper);
            assert!(!ok);
        });
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
