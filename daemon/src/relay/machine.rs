//! One job's shard on a relay, as a pure state machine: frames in, blocks out. No I/O, no clocks,
//! so property tests can feed it anything.
//!
//! Reduction is in f32 and in rank order: rank 0's block starts the sum, then ranks 1, 2, ... are
//! added in turn. A block's contributions wait until all P are in, then are reduced in one pass
//! (`dtype::reduce_into`: no f32 sum of the whole block in memory). The f32 result is therefore
//! bit-exact and reproducible by anyone holding the inputs. Blocks live in a window:
//! the reader of a rank is only allowed to read (`may_read`) while its next block is within
//! `window` of the oldest block not yet delivered to every peer, so memory is bounded by the
//! window whatever the tensor size, and a peer that runs ahead is held back by TCP.

use crate::core::{Collective, Dtype, Op, ShardPlan};
use crate::wire::dtype;
use crate::wire::{BufPool, Frame, Kind, checksum};
use bytes::Bytes;
use std::collections::VecDeque;

/// The fixed facts of a job's shard.
#[derive(Debug, Clone)]
pub struct Params {
    pub job: u64,
    pub shard: u32,
    pub plan: ShardPlan,
    pub dtype: Dtype,
    pub window: u32,
    /// Peer hotkeys by rank, for messages.
    pub peers: Vec<String>,
}

impl Params {
    pub fn p(&self) -> u32 {
        self.peers.len() as u32
    }

    /// Wire bytes of the largest block.
    pub fn block_bytes(&self) -> usize {
        self.plan.block_elems as usize * self.dtype.size()
    }

    /// Worst-case bytes the window can hold: per block, the contributions of P ranks and the
    /// result (counted as P-1 contributions, an f32 sum and the result, which is at least that:
    /// the sum kept by earlier versions is gone, the bound is unchanged).
    pub fn reservation_bytes(&self) -> u64 {
        let elems = self.plan.block_elems;
        let wire = elems * self.dtype.size() as u64;
        let per_block = u64::from(self.p().saturating_sub(1)) * wire + 4 * elems + wire;
        u64::from(self.window) * per_block + 64 * 1024
    }

    /// "rank r (hotkey)", for messages; formatted only when a message is (every frame names
    /// its sender in case it is refused).
    pub fn who(&self, rank: u32) -> Who<'_> {
        Who {
            rank,
            hotkey: self.peers.get(rank as usize).map(String::as_str),
        }
    }
}

/// A peer of a job as messages name it: see [`Params::who`].
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    rank: u32,
    hotkey: Option<&'a str>,
}

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hotkey {
            Some(h) => write!(f, "rank {} ({h})", self.rank),
            None => write!(f, "rank {}", self.rank),
        }
    }
}

/// The words after [`Params::who`] in the reason a relay sends when a peer's connection closed
/// without `End` ([`Machine::disconnected`]).
const PEER_LEFT: &str = " disconnected";

/// Whether a relay's reason says that one of the job's peers left (its connection closed without
/// `End`), as [`Machine::disconnected`] words it: the failure is that peer's, seen second-hand.
pub fn reports_a_peer_left(reason: &str) -> bool {
    reason.starts_with("rank ") && reason.contains(PEER_LEFT)
}

/// The job cannot go on. `culprit` is the rank whose input was wrong, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub reason: String,
    pub culprit: Option<u32>,
}

fn fault(culprit: u32, reason: String) -> Fault {
    Fault {
        reason,
        culprit: Some(culprit),
    }
}

/// What the relay must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Every peer has joined: send them `Welcome`.
    Ready,
    /// Send this block to every rank except `skip`.
    Send {
        seq: u32,
        block: u32,
        skip: Option<u32>,
        payload: Bytes,
        checksum: u64,
    },
    /// An operation finished: readers waiting on it may go on.
    OpDone { seq: u32 },
    /// Every peer left cleanly: the job is over.
    Finished,
}

#[derive(Debug, Default)]
struct Slot {
    /// Contributions so far, by rank; reduced in one pass when the last is in.
    inputs: Vec<Option<Bytes>>,
    /// How many of `inputs` are in.
    arrived: u32,
    /// Handed to the writers.
    sent: bool,
    /// Delivered to every recipient.
    released: bool,
}

#[derive(Debug)]
struct Running {
    seq: u32,
    collective: Collective,
    begun: Vec<bool>,
    begun_count: u32,
    next_block: Vec<u32>,
    /// Oldest block not yet released; `slots[0]` is this block.
    base: u32,
    slots: VecDeque<Slot>,
}

/// A job's shard, between frames.
#[derive(Debug)]
pub struct Machine {
    params: Params,
    joined: Vec<bool>,
    joined_count: u32,
    left: Vec<bool>,
    left_count: u32,
    next_seq: u32,
    op: Option<Running>,
    failed: Option<Fault>,
    /// Block buffers of this job, reused from block to block (see [`BufPool`]).
    pool: BufPool,
}

impl Machine {
    pub fn new(params: Params) -> Machine {
        let p = params.p() as usize;
        // Live at once, at most: per window block, P wire contributions and one result; the
        // pool keeps no more than that (its f32 buffers are no longer used by the reduction).
        let pool = BufPool::new(
            params.block_bytes(),
            params.plan.block_elems as usize,
            params.window as usize * (p + 1),
        );
        Machine {
            pool,
            params,
            joined: vec![false; p],
            joined_count: 0,
            left: vec![false; p],
            left_count: 0,
            next_seq: 0,
            op: None,
            failed: None,
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// This job's block buffers, for the readers of its connections.
    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// A spare taking over this shard mid-job: its first operation is `seq` (see
    /// `peer::failover`). Only before any operation began here.
    pub fn resume_at(&mut self, seq: u32) {
        if self.op.is_none() && self.next_seq == 0 {
            self.next_seq = seq;
        }
    }

    pub fn failed(&self) -> Option<&Fault> {
        self.failed.as_ref()
    }

    /// Marks the job failed (the first fault wins) and drops every buffered block.
    pub fn fail(&mut self, f: Fault) -> Fault {
        if self.failed.is_none() {
            self.failed = Some(f);
            self.op = None;
        }
        self.failed.clone().unwrap_or_else(|| Fault {
            reason: String::new(),
            culprit: None,
        })
    }

    fn check(&mut self, r: Result<Vec<Event>, Fault>) -> Result<Vec<Event>, Fault> {
        r.map_err(|f| self.fail(f))
    }

    fn guard(&self) -> Result<(), Fault> {
        match &self.failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    pub fn all_joined(&self) -> bool {
        self.joined_count == self.params.p()
    }

    /// A peer's handshake was accepted.
    pub fn join(&mut self, rank: u32) -> Result<Vec<Event>, Fault> {
        let r = self.join_inner(rank);
        self.check(r)
    }

    fn join_inner(&mut self, rank: u32) -> Result<Vec<Event>, Fault> {
        self.guard()?;
        let who = self.params.who(rank);
        match self.joined.get_mut(rank as usize) {
            None => return Err(fault(rank, format!("{who} is not in the ticket"))),
            Some(true) => return Err(fault(rank, format!("{who} joined twice (duplicate rank)"))),
            Some(j) => *j = true,
        }
        self.joined_count += 1;
        Ok(if self.all_joined() {
            vec![Event::Ready]
        } else {
            vec![]
        })
    }

    /// Whether the reader of `rank` may take its next frame off the socket now.
    pub fn may_read(&self, rank: u32) -> bool {
        if self.failed.is_some() {
            return true; // the reader will see the failure and stop
        }
        if !self.all_joined() {
            return false;
        }
        let Some(op) = &self.op else { return true };
        let r = rank as usize;
        if !op.begun.get(r).copied().unwrap_or(true) {
            return true;
        }
        let blocks = self.params.plan.blocks();
        if op.collective.sends(rank) && op.next_block[r] < blocks {
            return op.next_block[r] < op.base.saturating_add(self.params.window);
        }
        // Its part of this operation is done: its next frame belongs to the next one.
        false
    }

    /// Feeds one frame from `rank`.
    pub fn on_frame(&mut self, rank: u32, frame: Frame) -> Result<Vec<Event>, Fault> {
        let r = self.on_frame_inner(rank, frame);
        self.check(r)
    }

    fn on_frame_inner(&mut self, rank: u32, frame: Frame) -> Result<Vec<Event>, Fault> {
        self.guard()?;
        let who = self.params.who(rank);
        if rank >= self.params.p() || !self.joined[rank as usize] {
            return Err(fault(rank, format!("{who} sent data before its handshake")));
        }
        let h = frame.header;
        if h.job != self.params.job {
            return Err(fault(
                rank,
                format!(
                    "{who} sent a frame for job {} in job {}",
                    h.job, self.params.job
                ),
            ));
        }
        if h.shard != self.params.shard {
            return Err(fault(
                rank,
                format!(
                    "{who} sent shard {} to the miner of shard {}",
                    h.shard, self.params.shard
                ),
            ));
        }
        if self.left[rank as usize] {
            return Err(fault(rank, format!("{who} sent a frame after leaving")));
        }
        match h.kind {
            Kind::Begin => {
                let c = Collective::decode(&frame.payload)
                    .ok_or_else(|| fault(rank, format!("{who} sent a malformed Begin frame")))?;
                self.begin(rank, h.seq, c)
            }
            Kind::Data => {
                if h.dtype != Some(self.params.dtype) {
                    return Err(fault(
                        rank,
                        format!(
                            "{who} sent {} data, the job's dtype is {}",
                            h.dtype.map_or("untyped", Dtype::name),
                            self.params.dtype
                        ),
                    ));
                }
                self.data(rank, h.seq, h.block, frame.payload, h.checksum)
            }
            Kind::End => self.leave(rank),
            Kind::Error => Err(fault(
                rank,
                format!(
                    "{who} gave up: {}",
                    String::from_utf8_lossy(&frame.payload[..frame.payload.len().min(1024)])
                ),
            )),
            k => Err(fault(
                rank,
                format!("{who} sent a {k:?} frame, which peers never send"),
            )),
        }
    }

    fn begin(&mut self, rank: u32, seq: u32, c: Collective) -> Result<Vec<Event>, Fault> {
        let p = self.params.p();
        let who = self.params.who(rank);
        if let Collective::Broadcast { src } = c
            && src >= p
        {
            return Err(fault(
                rank,
                format!("{who} asked for a broadcast from rank {src} of {p}"),
            ));
        }
        if let Some(l) = self.left.iter().position(|&l| l) {
            return Err(fault(
                l as u32,
                format!(
                    "{} has left the job; operation {seq} cannot run",
                    self.params.who(l as u32)
                ),
            ));
        }
        let op = match &mut self.op {
            None => {
                if seq != self.next_seq {
                    return Err(fault(
                        rank,
                        format!(
                            "{who} began operation {seq}, expected operation {}",
                            self.next_seq
                        ),
                    ));
                }
                self.op.insert(Running {
                    seq,
                    collective: c,
                    begun: vec![false; p as usize],
                    begun_count: 0,
                    next_block: vec![0; p as usize],
                    base: 0,
                    slots: VecDeque::new(),
                })
            }
            Some(op) => {
                if op.seq != seq {
                    return Err(fault(
                        rank,
                        format!(
                            "{who} began operation {seq} while operation {} runs",
                            op.seq
                        ),
                    ));
                }
                if op.collective != c {
                    return Err(fault(
                        rank,
                        format!(
                            "peers disagree on operation {seq}: {who} asked for {c}, others for {}",
                            op.collective
                        ),
                    ));
                }
                op
            }
        };
        if op.begun[rank as usize] {
            return Err(fault(rank, format!("{who} began operation {seq} twice")));
        }
        op.begun[rank as usize] = true;
        op.begun_count += 1;
        Ok(self.maybe_done())
    }

    fn data(
        &mut self,
        rank: u32,
        seq: u32,
        block: u32,
        payload: Bytes,
        payload_checksum: u64,
    ) -> Result<Vec<Event>, Fault> {
        let p = self.params.p();
        let window = self.params.window;
        let plan = self.params.plan;
        let dt = self.params.dtype;
        let who = self.params.who(rank);
        let pool = &self.pool;
        let Some(op) = self
            .op
            .as_mut()
            .filter(|op| op.seq == seq && op.begun[rank as usize])
        else {
            return Err(fault(
                rank,
                format!("{who} sent data for operation {seq} before beginning it"),
            ));
        };
        if !op.collective.sends(rank) {
            return Err(fault(rank, format!("{who} sent data in {}", op.collective)));
        }
        let r = rank as usize;
        let blocks = plan.blocks();
        if block != op.next_block[r] || block >= blocks {
            return Err(fault(
                rank,
                format!(
                    "{who} sent block {block}, expected block {} of {blocks}",
                    op.next_block[r]
                ),
            ));
        }
        if block >= op.base.saturating_add(window) {
            return Err(fault(
                rank,
                format!("{who} ran past the window at block {block}"),
            ));
        }
        let want = plan.block_len(block) * dt.size();
        if payload.len() != want {
            return Err(fault(
                rank,
                format!(
                    "{who} sent {} bytes for block {block}, expected {want}",
                    payload.len()
                ),
            ));
        }
        op.next_block[r] += 1;
        let idx = (block - op.base) as usize;
        while op.slots.len() <= idx {
            op.slots.push_back(Slot::default());
        }
        let slot = &mut op.slots[idx];
        let mut events = Vec::new();
        match op.collective {
            Collective::Broadcast { src } => {
                // Forwarded as received: no conversion, no copy, and the checksum the frame
                // carried (the reader verified it) instead of hashing the block again.
                slot.sent = true;
                events.push(Event::Send {
                    seq,
                    block,
                    skip: Some(src),
                    checksum: payload_checksum,
                    payload,
                });
            }
            Collective::AllReduce(op_kind) => {
                if slot.inputs.is_empty() {
                    slot.inputs = vec![None; p as usize];
                }
                slot.inputs[r] = Some(payload);
                slot.arrived += 1;
                if slot.arrived == p {
                    // Every rank sends each block once (checked above), so all are in.
                    let inputs: Vec<Bytes> = std::mem::take(&mut slot.inputs)
                        .into_iter()
                        .flatten()
                        .collect();
                    let payload = reduce(inputs, op_kind, dt, pool);
                    slot.sent = true;
                    events.push(Event::Send {
                        seq,
                        block,
                        skip: None,
                        checksum: checksum(&payload),
                        payload,
                    });
                }
            }
        }
        Ok(events)
    }

    /// Every recipient has been handed block `block` of operation `seq` (or gave up on it).
    pub fn released(&mut self, seq: u32, block: u32) -> Vec<Event> {
        if self.failed.is_some() {
            return vec![];
        }
        let Some(op) = self.op.as_mut().filter(|op| op.seq == seq) else {
            return vec![];
        };
        if block < op.base {
            return vec![];
        }
        if let Some(slot) = op.slots.get_mut((block - op.base) as usize)
            && slot.sent
        {
            slot.released = true;
        }
        while op.slots.front().is_some_and(|s| s.released) {
            op.slots.pop_front();
            op.base += 1;
        }
        self.maybe_done()
    }

    fn maybe_done(&mut self) -> Vec<Event> {
        let blocks = self.params.plan.blocks();
        match &self.op {
            Some(op) if op.begun_count == self.params.p() && op.base >= blocks => {
                let seq = op.seq;
                self.op = None;
                self.next_seq = seq.wrapping_add(1);
                vec![Event::OpDone { seq }]
            }
            _ => vec![],
        }
    }

    /// `rank` sent `End`.
    fn leave(&mut self, rank: u32) -> Result<Vec<Event>, Fault> {
        if let Some(op) = &self.op {
            return Err(fault(
                rank,
                format!("{} left during operation {}", self.params.who(rank), op.seq),
            ));
        }
        self.left[rank as usize] = true;
        self.left_count += 1;
        Ok(if self.left_count == self.params.p() {
            vec![Event::Finished]
        } else {
            vec![]
        })
    }

    /// The connection of `rank` closed without `End` (the process died, or the network did).
    /// [`reports_a_peer_left`] recognises the reason.
    pub fn disconnected(&mut self, rank: u32) -> Fault {
        let who = self.params.who(rank);
        let reason = match &self.op {
            Some(op) => format!(
                "{who}{PEER_LEFT} during operation {} ({}), at block {} of {}",
                op.seq,
                op.collective,
                op.next_block.get(rank as usize).copied().unwrap_or(0),
                self.params.plan.blocks()
            ),
            None => format!("{who}{PEER_LEFT}"),
        };
        self.fail(fault(rank, reason))
    }

    /// Whether the job has work in progress (a stall then is a failure; idling between
    /// operations is not).
    pub fn busy(&self) -> bool {
        self.failed.is_none() && (!self.all_joined() || self.op.is_some())
    }

    /// Who the job is waiting for, for the stall message.
    pub fn stall_reason(&self, waited: std::time::Duration) -> String {
        let secs = waited.as_secs_f64();
        let names = |ranks: Vec<u32>| {
            ranks
                .into_iter()
                .map(|r| self.params.who(r).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.all_joined() {
            let missing = (0..self.params.p())
                .filter(|&r| !self.joined[r as usize])
                .collect();
            return format!("{} did not join within {secs:.1} s", names(missing));
        }
        let Some(op) = &self.op else {
            return format!("no progress for {secs:.1} s");
        };
        let p = self.params.p();
        let not_begun: Vec<u32> = (0..p).filter(|&r| !op.begun[r as usize]).collect();
        if !not_begun.is_empty() {
            return format!(
                "{} did not begin operation {} within {secs:.1} s",
                names(not_begun),
                op.seq
            );
        }
        let base = op.base;
        let front_sent = op.slots.front().is_some_and(|s| s.sent);
        if front_sent {
            return format!(
                "block {base} of operation {} was not taken by every peer within {secs:.1} s (a peer is not reading)",
                op.seq
            );
        }
        let late: Vec<u32> = (0..p)
            .filter(|&r| op.collective.sends(r) && op.next_block[r as usize] <= base)
            .collect();
        format!(
            "{} sent no block {base} of operation {} within {secs:.1} s",
            names(late),
            op.seq
        )
    }
}

/// The result block of all P contributions (in rank order): summed in f32 in rank order in one
/// pass (see [`dtype::reduce_into`]), divided by P for an average, in the job's dtype. One peer's
/// block is its own sum and average (x / 1 is x), sent as received.
fn reduce(mut inputs: Vec<Bytes>, op: Op, dt: Dtype, pool: &BufPool) -> Bytes {
    if inputs.len() == 1 {
        return inputs.swap_remove(0);
    }
    let len = inputs.first().map_or(0, Bytes::len);
    let mut out = pool.bytes_filled(len);
    let divide = (op == Op::Avg).then_some(inputs.len() as f32);
    dtype::reduce_into(&inputs, dt, divide, &mut out);
    // The inputs' buffers go back to the pool before the result's is handed out.
    drop(inputs);
    pool.freeze(out)
}

/// The result block the relay sends for these contributions (in rank order): the same reduction
/// as a running job, for the validator's recomputation of sampled blocks.
pub fn reduce_block(inputs: &[Bytes], op: Op, dt: Dtype) -> Bytes {
    // A pool that keeps nothing: plain allocations, the same arithmetic.
    reduce(inputs.to_vec(), op, dt, &BufPool::new(0, 0, 0))
}

#[cfg(test)]
mod tests;
