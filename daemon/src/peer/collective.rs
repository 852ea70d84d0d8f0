//! `Peer`: runs collectives over every miner of a job at once, pipelined.
//!
//! Per miner, a writer thread sends block k+1 while a reader thread receives reduced block k.
//! The writer hands each block's slice of the tensor to the reader once it is sent, so the result
//! is written in place with no copy of the tensor and no unsafe code. If any miner fails, every
//! connection is shut down so no thread waits for its deadline, and the most telling error wins.

use super::conn::{Conn, JoinTimes};
use super::deadline::Deadline;
use super::failover::{self, Aborts, Backup, LossKind};
use super::pace::{self, Pacer};
use super::progress::PeerProgress;
use super::sample::{self, Received, Sent, ShardEvidence};
use super::{Job, PeerError};
use crate::core::traffic::FlowCounter;
use crate::core::{Collective, Dtype, Op};
use crate::wallet::Keypair;
use crate::wire::dtype;
use crate::wire::receipt::{self, SignedReceipt};
use crate::wire::{HEADER_LEN, Header, Kind, checksum};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a peer that saw a miner fail waits before dropping its other connections.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// A member of a job, connected to all its miners.
#[derive(Debug)]
pub struct Peer {
    job: Job,
    conns: Vec<Conn>,
    seq: u32,
    failed: Option<String>,
    deadline: Deadline,
    setup: Duration,
    progress: Option<Arc<PeerProgress>>,
    /// Joins spares on failover.
    key: Keypair,
    /// Failovers so far, by shard (they pick the next spare).
    failovers: Vec<u32>,
    /// Miners seen failing in this job.
    lost_miners: Vec<String>,
    /// The last operation moved a shard (its time says nothing of the links).
    failed_over: bool,
    /// Evidence for live-job verification, until the session takes it.
    evidence: Vec<ShardEvidence>,
}

/// What went wrong in an operation. A reader's error is the cause (the relay's own report, or
/// the miner gone); the first one wins, and what other threads see after it (our own abort) is
/// noise. A writer's error is only a symptom, kept in case no reader saw anything.
#[derive(Default)]
struct Failure {
    reader: Mutex<Option<PeerError>>,
    writer: Mutex<Option<PeerError>>,
}

impl Failure {
    fn record(slot: &Mutex<Option<PeerError>>, e: PeerError) {
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }

    fn into_error(self) -> Option<PeerError> {
        let r = self.reader.into_inner().unwrap_or_else(|p| p.into_inner());
        r.or_else(|| self.writer.into_inner().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Peer {
    /// Joins the job on every miner at once; returns when all peers have joined everywhere.
    pub fn connect(job: Job, key: &Keypair) -> Result<Peer, PeerError> {
        let want = &job.peer_hotkeys[job.rank as usize];
        if key.ss58_address() != want {
            return Err(PeerError::WrongKey {
                rank: job.rank,
                got: key.ss58_address().into(),
                want: want.clone(),
            });
        }
        // Other peers may start a little later: waiting for them gets the floor and its margin.
        let wait = Deadline::new(job.deadline_floor).current();
        let results: Vec<Result<(Conn, JoinTimes), PeerError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..job.miners.len())
                .map(|i| {
                    let job = &job;
                    s.spawn(move || Conn::open(job, i, key, wait))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut conns = Vec::with_capacity(results.len());
        let mut first: Option<PeerError> = None;
        let (mut start, mut end) = (None::<Instant>, None::<Instant>);
        for r in results {
            match r {
                Ok((c, t)) => {
                    start = Some(start.map_or(t.hello_sent, |s| s.min(t.hello_sent)));
                    end = Some(end.map_or(t.welcomed, |e| e.max(t.welcomed)));
                    conns.push(c);
                }
                Err(e) => {
                    if first.as_ref().is_none_or(|f| e.rank() > f.rank()) {
                        first = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first {
            for c in &conns {
                c.abort();
            }
            return Err(e);
        }
        let setup = match (start, end) {
            (Some(s), Some(e)) => e.duration_since(s),
            _ => Duration::ZERO,
        };
        Ok(Peer {
            deadline: Deadline::new(job.deadline_floor),
            job,
            conns,
            seq: 0,
            failed: None,
            setup,
            progress: None,
            key: key.clone(),
            failovers: Vec::new(),
            lost_miners: Vec::new(),
            failed_over: false,
            evidence: Vec::new(),
        })
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    /// Live-job verification sampling for the next operations (see `core::sample`).
    pub fn set_sample(&mut self, spec: crate::core::sample::SampleSpec) {
        self.job.sample = spec;
    }

    /// The peer's hotkey pair.
    pub fn key(&self) -> &Keypair {
        &self.key
    }

    /// Counts this peer's bytes and block times into `p` from now on.
    pub fn set_progress(&mut self, p: Arc<PeerProgress>) {
        self.progress = Some(p);
    }

    /// Handles of this peer's sockets (one per miner, in shard order), for reading the kernel's
    /// counters of them while an operation runs (the bench bot's `linkwatch`).
    pub fn socket_handles(&self) -> std::io::Result<Vec<std::net::TcpStream>> {
        self.conns.iter().map(|c| c.reader.try_clone()).collect()
    }

    /// From the first handshake sent to the last miner's word that every peer had joined.
    pub fn setup_time(&self) -> Duration {
        self.setup
    }

    /// Reduces `data` across all peers in place: afterwards every peer holds the same result.
    /// On error the contents of `data` are unspecified and this peer cannot be used again.
    pub fn all_reduce(&mut self, data: &mut [f32], op: Op) -> Result<(), PeerError> {
        self.run(data, Collective::AllReduce(op))
    }

    /// Copies `data` of rank `src` into `data` of every other peer.
    pub fn broadcast(&mut self, data: &mut [f32], src: u32) -> Result<(), PeerError> {
        if src >= self.job.peers {
            return Err(PeerError::Source {
                src,
                peers: self.job.peers,
            });
        }
        self.run(data, Collective::Broadcast { src })
    }

    fn run(&mut self, data: &mut [f32], c: Collective) -> Result<(), PeerError> {
        if let Some(f) = &self.failed {
            return Err(PeerError::Failed(f.clone()));
        }
        if data.len() as u64 != self.job.elements {
            return Err(PeerError::Length {
                got: data.len(),
                want: self.job.elements,
            });
        }
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let deadline = self.deadline.current();
        let started = Instant::now();
        self.failed_over = false;
        let result = self.run_all(data, c, seq, deadline);
        match result {
            Ok(()) if self.failed_over => Ok(()),
            Ok(()) => {
                let blocks = self
                    .conns
                    .iter()
                    .map(|c| c.plan.blocks())
                    .max()
                    .unwrap_or(0);
                self.deadline.observe(blocks, started.elapsed());
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                for c in &self.conns {
                    c.abort();
                }
                Err(e)
            }
        }
    }

    fn run_all(
        &mut self,
        data: &mut [f32],
        c: Collective,
        seq: u32,
        deadline: Duration,
    ) -> Result<(), PeerError> {
        for conn in &self.conns {
            conn.set_deadline(deadline)?;
        }
        // Cut the tensor into the shards' slices, in shard order.
        let mut shards: Vec<&mut [f32]> = Vec::with_capacity(self.conns.len());
        let mut rest = data;
        for i in 0..self.conns.len() {
            let n = self.job.layout.shard_plan(i).elements as usize;
            let (head, tail) = rest.split_at_mut(n);
            shards.push(head);
            rest = tail;
        }
        if self.failovers.len() != self.conns.len() {
            self.failovers = vec![0; self.conns.len()];
        }
        let failure = Failure::default();
        let aborts = Aborts::new(&self.conns);
        let lost = Mutex::new(Vec::new());
        let evidence = Mutex::new(Vec::new());
        let pacer = Pacer::new(
            self.conns.iter().map(|c| c.plan.blocks()),
            pace::ahead(),
            pace::stall_time(deadline),
            c.sends(self.job.rank),
        );
        let op = Operation {
            job: &self.job,
            key: &self.key,
            c,
            seq,
            deadline,
            progress: self.progress.as_deref(),
            aborts: &aborts,
            lost: &lost,
            evidence: &evidence,
            pacer: &pacer,
        };
        std::thread::scope(|s| {
            for ((conn, shard), failovers) in self
                .conns
                .iter_mut()
                .zip(shards)
                .zip(self.failovers.iter_mut())
            {
                let (op, failure) = (&op, &failure);
                s.spawn(move || {
                    if let Err(e) = op.drive_shard(conn, shard, failovers) {
                        // A dead miner's silence is seen by every peer within about a block
                        // time of each other: wait longer for them before our abort reaches
                        // them as "rank r disconnected".
                        let grace = match LossKind::of(&e) {
                            Some(LossKind::Stalled) => TIMEOUT_GRACE,
                            _ => ABORT_GRACE,
                        };
                        Failure::record(&failure.reader, e);
                        // Unblock everyone else now rather than at their deadlines; but first give
                        // the other miners a moment to see the same cause themselves, or they
                        // would report our abort instead of it to the other peers.
                        std::thread::sleep(grace);
                        op.aborts.abort_all();
                    }
                });
            }
        });
        let lost = lost.into_inner().unwrap_or_else(|p| p.into_inner());
        self.evidence
            .extend(evidence.into_inner().unwrap_or_else(|p| p.into_inner()));
        self.failed_over |= !lost.is_empty();
        for m in lost {
            if !self.lost_miners.contains(&m) {
                self.lost_miners.push(m);
            }
        }
        match failure.into_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hotkeys of the miners this peer saw fail in this job (whether a spare took over or not),
    /// for the validator's scoring.
    pub fn lost_miners(&self) -> &[String] {
        &self.lost_miners
    }

    /// The evidence of the operations since the last call (one per shard per operation), for
    /// the validator's live-job verification.
    pub fn take_evidence(&mut self) -> Vec<ShardEvidence> {
        std::mem::take(&mut self.evidence)
    }
}

/// How long a peer that saw its miner go silent waits before dropping its other connections.
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// One operation's shared facts, for the threads that drive its shards.
struct Operation<'a> {
    job: &'a Job,
    key: &'a Keypair,
    c: Collective,
    seq: u32,
    deadline: Duration,
    progress: Option<&'a PeerProgress>,
    aborts: &'a Aborts,
    lost: &'a Mutex<Vec<String>>,
    evidence: &'a Mutex<Vec<ShardEvidence>>,
    /// The order in which this peer's blocks leave, across its shards.
    pacer: &'a Pacer,
}

impl Operation<'_> {
    /// Runs one shard to the end; when its miner fails and the ticket has a spare left, moves
    /// the shard to the spare and runs it again there from its first block (see
    /// [`super::failover`]).
    fn drive_shard(
        &self,
        conn: &mut Conn,
        shard: &mut [f32],
        failovers: &mut u32,
    ) -> Result<(), PeerError> {
        let job = self.job;
        let backup = Backup::of(job, shard, self.c.sends(job.rank));
        loop {
            let e = match self.run_shard(conn, shard) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if self.aborts.aborted() || !failover::is_miner_failure(&e) {
                return Err(e);
            }
            let hotkey = self.miner_hotkey(conn.shard, *failovers);
            self.lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(hotkey);
            conn.abort();
            let kind = LossKind::of(&e).unwrap_or(LossKind::Dropped);
            tracing::warn!(job = job.id, shard = conn.shard, "{e}");
            let Some((i, slot)) = failover::spare_for(job, conn.shard, *failovers) else {
                let why = match job.spares.len() {
                    0 => "the job has no spare miner".to_string(),
                    n => format!("all {n} spares of the job were used for its shard"),
                };
                return Err(PeerError::MinerLost {
                    miner: conn.name.clone(),
                    kind,
                    why,
                    detail: e.to_string(),
                });
            };
            *failovers += 1;
            let name = failover::spare_name(job, i);
            tracing::warn!(
                job = job.id,
                shard = conn.shard,
                "moving the shard to {name}"
            );
            if !backup.restore(shard) {
                return Err(e);
            }
            let wait = Deadline::new(job.deadline_floor).current();
            let opened = Conn::open_slot(
                job,
                conn.shard,
                slot,
                name.clone(),
                self.seq,
                self.key,
                wait,
            )
            .and_then(|(c, _)| c.set_deadline(self.deadline).map(|()| c));
            let new = match opened {
                Ok(c) => c,
                Err(e2) => {
                    return Err(PeerError::MinerLost {
                        miner: conn.name.clone(),
                        kind,
                        why: format!("its spare could not take over: {e2}"),
                        detail: e.to_string(),
                    });
                }
            };
            self.aborts.replace(conn.shard, &new);
            *conn = new;
        }
    }

    /// The hotkey of the miner that serves `shard` after `failovers` failovers.
    fn miner_hotkey(&self, shard: usize, failovers: u32) -> String {
        let slot = match failovers {
            0 => self.job.miners.get(shard),
            k => failover::spare_for(self.job, shard, k - 1).map(|(_, s)| s),
        };
        slot.map(|s| s.hotkey.clone()).unwrap_or_default()
    }

    /// One attempt at one shard over one connection: a writer and a reader thread.
    fn run_shard(&self, conn: &Conn, shard: &mut [f32]) -> Result<(), PeerError> {
        let (job, c, seq) = (self.job, self.c, self.seq);
        let failure = Failure::default();
        let flow = super::traffic::flow(job, conn.shard);
        let flow_rx = flow.clone();
        let progress = self.progress;
        let blocks = conn.plan.blocks();
        let mut sent = Sent::new(&job.sample, seq, conn.shard as u32, blocks);
        let mut received = Received::new(&job.sample, seq, conn.shard as u32, blocks);
        let mut receipt = None;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel::<&mut [f32]>();
            let failure = &failure;
            let (sent, received, receipt) = (&mut sent, &mut received, &mut receipt);
            let pacer = self.pacer;
            // A writer waiting for its turn gives up once the operation failed.
            let stop = move || {
                self.aborts.aborted() || failure.reader.lock().map_or(true, |g| g.is_some())
            };
            s.spawn(move || {
                let count = Count(progress, flow.as_deref());
                let paced = Paced { pacer, stop: &stop };
                if let Err(e) = send_shard(job, conn, shard, c, seq, tx, count, sent, paced) {
                    Failure::record(&failure.writer, e);
                }
            });
            s.spawn(move || {
                let count = Count(progress, flow_rx.as_deref());
                match recv_shard(job, conn, c, seq, rx, count, received) {
                    Ok(r) => *receipt = r,
                    Err(e) => {
                        // A dead connection also blocks our writer: unblock it. A relay's report
                        // is followed by the relay closing, which unblocks it anyway.
                        if failover::is_miner_failure(&e) {
                            conn.abort();
                        }
                        Failure::record(&failure.reader, e);
                    }
                }
            });
        });
        if let Some(e) = failure.into_error() {
            return Err(e);
        }
        if let Some(r) = receipt {
            self.keep_evidence(conn, r, sent, received);
        }
        Ok(())
    }

    /// Checks a shard's receipt against what this peer saw and keeps it with the samples. A
    /// receipt that does not cover what was sent and received is the miner's fault: the miner
    /// is reported as failed in this job and its evidence is not used.
    fn keep_evidence(&self, conn: &Conn, r: SignedReceipt, sent: Sent, received: Received) {
        let (job, seq, shard) = (self.job, self.seq, conn.shard as u32);
        let miner = self.miner_hotkey(conn.shard, 0);
        if let Err(why) = sample::check_receipt(
            &r,
            job.id,
            seq,
            shard,
            job.rank,
            &sent.checksums,
            &received.checksums,
        ) {
            tracing::warn!(
                job = job.id,
                shard,
                seq,
                "{}: bad receipt: {why}",
                conn.name
            );
            self.lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(miner);
            return;
        }
        if !job.sample.is_on() {
            return;
        }
        let (inputs, outputs) = (sent.checksums.clone(), received.checksums.clone());
        let ev = ShardEvidence {
            shard,
            seq,
            collective: self.c,
            miner,
            receipt: r,
            inputs,
            outputs,
            samples: sample::samples(sent, received),
        };
        self.evidence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ev);
    }
}

fn during(c: Collective, seq: u32, block: u32, blocks: u32) -> String {
    format!("during operation {seq} ({c}), block {block} of {blocks}")
}

/// A writer's place in its operation's [`Pacer`], and when to stop waiting for its turn.
struct Paced<'a> {
    pacer: &'a Pacer,
    stop: &'a (dyn Fn() -> bool + Sync),
}

/// Sends `Begin` and this peer's blocks of one shard, handing each block to the reader after.
/// Each block waits for its turn in the operation's [`Pacer`] first.
#[allow(clippy::too_many_arguments)]
fn send_shard<'a>(
    job: &Job,
    conn: &Conn,
    shard: &'a mut [f32],
    c: Collective,
    seq: u32,
    to_reader: mpsc::Sender<&'a mut [f32]>,
    count: Count<'_>,
    sent: &mut Sent,
    paced: Paced<'_>,
) -> Result<(), PeerError> {
    // Every way out of this writer (done, failed, stopped) releases the others from its pace.
    let _lane = paced.pacer.lane(conn.shard);
    let plan = conn.plan;
    let blocks = plan.blocks();
    let begin = c.encode();
    let mut h = Header::for_payload(Kind::Begin, job.id, &begin);
    h.shard = conn.shard as u32;
    h.seq = seq;
    conn.send(&h, &begin, &during(c, seq, 0, blocks))?;
    let rank = job.rank;
    let mut wire = Vec::new();
    let mut rest = shard;
    for b in 0..blocks {
        let (block, tail) = rest.split_at_mut(plan.block_len(b));
        rest = tail;
        if c.sends(rank) {
            if !paced.pacer.wait_turn(conn.shard, b, paced.stop) {
                // The operation failed elsewhere: that error says why.
                return Ok(());
            }
            let payload: &[u8] = match job.dtype {
                Dtype::F32 => dtype::f32_bytes(block),
                d => {
                    // Grown once, then overwritten block by block (no clear-and-zero each time).
                    let n = block.len() * d.size();
                    if wire.len() < n {
                        wire.resize(n, 0);
                    }
                    dtype::encode_into(block, d, &mut wire[..n]);
                    &wire[..n]
                }
            };
            let sum = checksum(payload);
            let h = Header {
                kind: Kind::Data,
                dtype: Some(job.dtype),
                job: job.id,
                shard: conn.shard as u32,
                block: b,
                seq,
                len: payload.len() as u32,
                checksum: sum,
            };
            conn.send(&h, payload, &during(c, seq, b, blocks))?;
            paced.pacer.sent(conn.shard, b);
            sent.on_block(b, payload, sum);
            count.sent(block.len(), HEADER_LEN + payload.len());
        }
        if c.receives(rank) && to_reader.send(block).is_err() {
            // The reader stopped: its error says why.
            return Ok(());
        }
    }
    Ok(())
}

/// Tensors from this size on (16 MiB of f32) get their 16-bit results decoded with streaming
/// stores: such a tensor is out of cache by the time it is read again, and a plain store first
/// reads every line it overwrites from memory (the decode was ~20% of a peer's CPU).
const STREAM_DECODE_ELEMENTS: u64 = 4 << 20;

/// Receives the reduced blocks of one shard into the tensor, then the relay's receipt (`None`
/// when the writer stopped first: its error says why).
fn recv_shard(
    job: &Job,
    conn: &Conn,
    c: Collective,
    seq: u32,
    from_writer: mpsc::Receiver<&mut [f32]>,
    count: Count<'_>,
    received: &mut Received,
) -> Result<Option<SignedReceipt>, PeerError> {
    let plan = conn.plan;
    let blocks = if c.receives(job.rank) {
        plan.blocks()
    } else {
        0
    };
    let mut buf = Vec::new();
    for b in 0..blocks {
        let what = during(c, seq, b, blocks);
        let h = conn.recv_header(&what)?;
        let want_len = plan.block_len(b) * job.dtype.size();
        if h.kind != Kind::Result
            || h.job != job.id
            || h.shard != conn.shard as u32
            || h.seq != seq
            || h.block != b
            || h.dtype != Some(job.dtype)
            || h.len as usize != want_len
        {
            return Err(conn.protocol(format!(
                "sent {:?} job {} shard {} op {} block {} ({} bytes, {:?}) {what}",
                h.kind, h.job, h.shard, h.seq, h.block, h.len, h.dtype
            )));
        }
        let Ok(block) = from_writer.recv() else {
            // The writer failed before sending this block: its error says why.
            return Ok(None);
        };
        match job.dtype {
            Dtype::F32 => {
                conn.recv_payload(&h, dtype::f32_bytes_mut(block), &what)?;
                received.on_block(b, dtype::f32_bytes(block), h.checksum);
            }
            d => {
                buf.resize(want_len, 0);
                conn.recv_payload(&h, &mut buf, &what)?;
                received.on_block(b, &buf, h.checksum);
                if job.elements >= STREAM_DECODE_ELEMENTS {
                    dtype::decode_into_streaming(&buf, d, block);
                } else {
                    dtype::decode_into(&buf, d, block);
                }
            }
        }
        count.received(block.len(), HEADER_LEN + want_len);
    }
    recv_receipt(job, conn, c, seq, plan.blocks()).map(Some)
}

/// The relay's receipt that ends a shard's operation.
fn recv_receipt(
    job: &Job,
    conn: &Conn,
    c: Collective,
    seq: u32,
    blocks: u32,
) -> Result<SignedReceipt, PeerError> {
    use prost::Message;
    let what = format!("waiting for the receipt of operation {seq} ({c}), {blocks} blocks");
    let h = conn.recv_header(&what)?;
    if h.kind != Kind::Receipt
        || h.job != job.id
        || h.shard != conn.shard as u32
        || h.seq != seq
        || h.len as usize > receipt::MAX_RECEIPT
    {
        return Err(conn.protocol(format!(
            "sent {:?} job {} shard {} op {} ({} bytes) {what}",
            h.kind, h.job, h.shard, h.seq, h.len
        )));
    }
    let mut buf = vec![0u8; h.len as usize];
    conn.recv_payload(&h, &mut buf, &what)?;
    SignedReceipt::decode(buf.as_slice())
        .map_err(|e| conn.protocol(format!("sent a malformed receipt ({e}) {what}")))
}

/// Where a shard's traffic is counted: the peer's progress (elements) and, when a daemon turned
/// it on, the per-miner byte counters (wire bytes, headers included).
#[derive(Clone, Copy)]
struct Count<'a>(Option<&'a PeerProgress>, Option<&'a FlowCounter>);

impl Count<'_> {
    fn sent(&self, elements: usize, wire: usize) {
        if let Some(p) = self.0 {
            p.on_sent(elements);
        }
        if let Some(f) = self.1 {
            f.add_out(wire as u64);
        }
    }

    fn received(&self, elements: usize, wire: usize) {
        if let Some(p) = self.0 {
            p.on_received(elements);
        }
        if let Some(f) = self.1 {
            f.add_in(wire as u64);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.failed.is_none() {
            for c in &mut self.conns {
                c.end(self.job.id);
            }
        }
    }
}
