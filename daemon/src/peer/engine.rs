//! The peer's engine: one operation over all of a job's miners, driven from the calling thread.
//!
//! Each shard has a writer (`Begin`, then this peer's blocks, paced across shards by the
//! [`Pacer`]) and a reader (the reduced blocks, into the tensor in place, then the relay's
//! receipt). They are futures on the `Peer`'s own `current_thread` tokio runtime, over
//! non-blocking clones of the connections' sockets: one thread moves all of an operation's
//! traffic, with no thread per miner and no wake-ups across threads (the lead's measurement,
//! daemon/examples/bare_traffic.rs: a quarter less CPU per byte). The writer hands each block's
//! slice of the tensor to the reader once it is sent, so results land with no copy and no unsafe
//! code. If a miner fails and no spare takes over, every connection is shut down after a grace,
//! so nothing waits for its deadline, and the most telling error wins.

use super::conn::Conn;
use super::deadline::Deadline;
use super::failover::{self, Aborts, Backup, LossKind};
use super::pace::Pacer;
use super::progress::PeerProgress;
use super::sample::{self, Received, Sent, ShardEvidence};
use super::{Job, PeerError};
use crate::core::traffic::FlowCounter;
use crate::core::{Collective, Dtype};
use crate::wallet::Keypair;
use crate::wire::receipt::{self, SignedReceipt};
use crate::wire::{HEADER_LEN, Header, Kind, aio, checksum, dtype};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::fmt::Display;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;

/// How long a peer that saw a miner fail waits before dropping its other connections.
const ABORT_GRACE: Duration = Duration::from_millis(200);

/// How long a peer that saw its miner go silent waits before dropping its other connections.
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// The runtime a `Peer` drives its operations on (the calling thread; spare joins on failover
/// go to its blocking pool so they hold up no other shard).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, PeerError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PeerError::Engine)
}

/// What went wrong in an operation. A reader's error is the cause (the relay's own report, or
/// the miner gone); the first one wins, and what the others see after it (our own abort) is
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

    fn seen(&self) -> bool {
        self.reader.lock().map_or(true, |g| g.is_some())
    }

    fn into_error(self) -> Option<PeerError> {
        let r = self.reader.into_inner().unwrap_or_else(|p| p.into_inner());
        r.or_else(|| self.writer.into_inner().unwrap_or_else(|p| p.into_inner()))
    }
}

/// One operation's shared facts, for the futures that drive its shards.
pub(super) struct Operation<'a> {
    pub job: &'a Job,
    pub key: &'a Keypair,
    pub c: Collective,
    pub seq: u32,
    pub deadline: Duration,
    pub progress: Option<&'a PeerProgress>,
    pub aborts: &'a Aborts,
    pub lost: &'a Mutex<Vec<String>>,
    pub evidence: &'a Mutex<Vec<ShardEvidence>>,
    /// The order in which this peer's blocks leave, across its shards (and across the peers of a
    /// shared pace).
    pub pacer: &'a Pacer,
    /// Shard i's lane in `pacer` is `first_lane + i`.
    pub first_lane: usize,
}

impl Operation<'_> {
    /// Runs every shard (`conns[i]` over `shards[i]`) to the end on `rt`, from this thread.
    pub(super) fn run(
        &self,
        rt: &tokio::runtime::Runtime,
        conns: &mut [Conn],
        shards: Vec<&mut [f32]>,
        failovers: &mut [u32],
    ) -> Result<(), PeerError> {
        let failure = Failure::default();
        rt.block_on(async {
            // Each shard is polled only when its own sockets or timers woke it.
            let mut all: FuturesUnordered<_> = conns
                .iter_mut()
                .zip(shards)
                .zip(failovers.iter_mut())
                .map(|((conn, shard), failovers)| self.shard(conn, shard, failovers, &failure))
                .collect();
            while all.next().await.is_some() {}
        });
        failure.into_error().map_or(Ok(()), Err)
    }

    /// One shard to the end; on failure, unblocks every other shard after a grace.
    async fn shard(
        &self,
        conn: &mut Conn,
        shard: &mut [f32],
        failovers: &mut u32,
        failure: &Failure,
    ) {
        if let Err(e) = self.drive_shard(conn, shard, failovers).await {
            // A dead miner's silence is seen by every peer within about a block time of each
            // other: wait longer for them before our abort reaches them as "rank r
            // disconnected".
            let grace = match LossKind::of(&e) {
                Some(LossKind::Stalled) => TIMEOUT_GRACE,
                _ => ABORT_GRACE,
            };
            Failure::record(&failure.reader, e);
            // Unblock everyone else now rather than at their deadlines; but first give the
            // other miners a moment to see the same cause themselves, or they would report our
            // abort instead of it to the other peers.
            tokio::time::sleep(grace).await;
            self.aborts.abort_all();
        }
    }

    /// Runs one shard to the end; when its miner fails and the ticket has a spare left, moves
    /// the shard to the spare and runs it again there from its first block (see
    /// [`super::failover`]).
    async fn drive_shard(
        &self,
        conn: &mut Conn,
        shard: &mut [f32],
        failovers: &mut u32,
    ) -> Result<(), PeerError> {
        let job = self.job;
        let backup = Backup::of(job, shard, self.c.sends(job.rank));
        loop {
            let e = match self.run_shard(conn, shard).await {
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
            let new = match self.open_spare(conn.shard, slot.clone(), name).await {
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

    /// Joins the spare in `slot` for `shard` on the runtime's blocking pool: the join waits for
    /// every peer to come, and the other shards keep moving meanwhile.
    async fn open_spare(
        &self,
        shard: usize,
        slot: crate::wire::MinerSlot,
        name: String,
    ) -> Result<Conn, PeerError> {
        let (job, key, seq, deadline) =
            (self.job.clone(), self.key.clone(), self.seq, self.deadline);
        let wait = Deadline::new(job.deadline_floor).current();
        let opened = tokio::task::spawn_blocking(move || {
            Conn::open_slot(&job, shard, &slot, name, seq, &key, wait)
                .and_then(|(c, _)| c.set_deadline(deadline).map(|()| c))
        })
        .await;
        match opened {
            Ok(r) => r,
            Err(j) => match j.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(j) => Err(PeerError::Engine(std::io::Error::other(j.to_string()))),
            },
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

    /// One attempt at one shard over one connection: its writer and its reader, side by side.
    async fn run_shard(&self, conn: &Conn, shard: &mut [f32]) -> Result<(), PeerError> {
        let (job, c, seq) = (self.job, self.c, self.seq);
        let mut sock = Nonblocking::of(conn)?;
        let (r, w) = sock.stream.split();
        let mut rx = Rx {
            conn,
            r,
            limit: self.deadline,
        };
        let mut tx = Tx {
            conn,
            w,
            limit: self.deadline,
        };
        let failure = Failure::default();
        let flow = super::traffic::flow(job, conn.shard);
        let count = Count(self.progress, flow.as_deref());
        let blocks = conn.plan.blocks();
        let mut sent = Sent::new(&job.sample, seq, conn.shard as u32, blocks);
        let mut received = Received::new(&job.sample, seq, conn.shard as u32, blocks);
        let mut receipt = None;
        let (to_reader, from_writer) = mpsc::unbounded_channel::<&mut [f32]>();
        // A writer waiting for its turn gives up once the operation failed.
        let stop = || self.aborts.aborted() || failure.seen();
        let writer = async {
            let paced = Paced {
                pacer: self.pacer,
                lane: self.first_lane + conn.shard,
                stop: &stop,
            };
            let r = send_shard(
                job, &mut tx, shard, c, seq, to_reader, count, &mut sent, paced,
            );
            if let Err(e) = r.await {
                Failure::record(&failure.writer, e);
            }
        };
        let reader = async {
            match recv_shard(job, &mut rx, c, seq, from_writer, count, &mut received).await {
                Ok(r) => receipt = r,
                Err(e) => {
                    // A dead connection also holds up our writer: unblock it. A relay's report
                    // is followed by the relay closing, which unblocks it anyway.
                    if failover::is_miner_failure(&e) {
                        conn.abort();
                    }
                    Failure::record(&failure.reader, e);
                }
            }
        };
        tokio::join!(writer, reader);
        drop(sock);
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

/// A connection's socket, non-blocking and registered with the runtime for one attempt at a
/// shard. The flag is the socket's, shared with the `Conn`'s handles: dropping this puts it back
/// to blocking for the joins and goodbyes that follow.
struct Nonblocking<'c> {
    conn: &'c Conn,
    stream: tokio::net::TcpStream,
}

impl<'c> Nonblocking<'c> {
    fn of(conn: &'c Conn) -> Result<Nonblocking<'c>, PeerError> {
        let err = |source| PeerError::Io {
            miner: conn.name.clone(),
            during: "handing the connection to the engine".into(),
            source,
        };
        let s = conn.reader.try_clone().map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        match tokio::net::TcpStream::from_std(s) {
            Ok(stream) => Ok(Nonblocking { conn, stream }),
            Err(e) => {
                let _ = conn.reader.set_nonblocking(false);
                Err(err(e))
            }
        }
    }
}

impl Drop for Nonblocking<'_> {
    fn drop(&mut self) {
        let _ = self.conn.reader.set_nonblocking(false);
    }
}

/// The sending side of one shard's connection during an attempt.
struct Tx<'c, 's> {
    conn: &'c Conn,
    w: WriteHalf<'s>,
    /// How long a write may make no progress (the operation's per-block deadline).
    limit: Duration,
}

impl Tx<'_, '_> {
    async fn send(
        &mut self,
        h: &Header,
        payload: &[u8],
        during: &dyn Display,
    ) -> Result<(), PeerError> {
        aio::write_frame(&mut self.w, h, payload, self.limit)
            .await
            .map_err(|e| self.conn.io(e, &during.to_string()))
    }
}

/// The receiving side of one shard's connection during an attempt.
struct Rx<'c, 's> {
    conn: &'c Conn,
    r: ReadHalf<'s>,
    /// How long a read may make no progress (the operation's per-block deadline).
    limit: Duration,
}

impl Rx<'_, '_> {
    /// The next header; an `Error` frame becomes `PeerError::Relay` with the relay's reason.
    async fn header(&mut self, during: &dyn Display) -> Result<Header, PeerError> {
        let max = self.conn.max_payload();
        match aio::read_header(&mut self.r, max, self.limit).await {
            Ok(Some(h)) if h.kind == Kind::Error => {
                let mut buf = vec![0u8; h.len as usize];
                self.payload(&h, &mut buf, during).await?;
                Err(PeerError::Relay {
                    miner: self.conn.name.clone(),
                    reason: String::from_utf8_lossy(&buf).into_owned(),
                })
            }
            Ok(Some(h)) => Ok(h),
            Ok(None) => Err(PeerError::Closed {
                miner: self.conn.name.clone(),
                during: during.to_string(),
            }),
            Err(e) => Err(self.conn.wire(e, &during.to_string())),
        }
    }

    /// Reads a payload into `dst` and checks it.
    async fn payload(
        &mut self,
        h: &Header,
        dst: &mut [u8],
        during: &dyn Display,
    ) -> Result<(), PeerError> {
        aio::read_payload(&mut self.r, h, dst, self.limit)
            .await
            .map_err(|e| self.conn.wire(e, &during.to_string()))
    }
}

/// Where in an operation a frame belongs, for error messages: formatted only when one is made
/// (every block of every shard carries one, both ways).
fn during(c: Collective, seq: u32, block: u32, blocks: u32) -> During {
    During {
        c,
        seq,
        block,
        blocks,
    }
}

struct During {
    c: Collective,
    seq: u32,
    block: u32,
    blocks: u32,
}

impl Display for During {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let During {
            c,
            seq,
            block,
            blocks,
        } = self;
        write!(f, "during operation {seq} ({c}), block {block} of {blocks}")
    }
}

/// A writer's place in its operation's [`Pacer`], and when to stop waiting for its turn.
struct Paced<'a> {
    pacer: &'a Pacer,
    lane: usize,
    stop: &'a dyn Fn() -> bool,
}

/// Sends `Begin` and this peer's blocks of one shard, handing each block to the reader after.
/// Each block waits for its turn in the operation's [`Pacer`] first.
#[allow(clippy::too_many_arguments)]
async fn send_shard<'a>(
    job: &Job,
    tx: &mut Tx<'_, '_>,
    shard: &'a mut [f32],
    c: Collective,
    seq: u32,
    to_reader: mpsc::UnboundedSender<&'a mut [f32]>,
    count: Count<'_>,
    sent: &mut Sent,
    paced: Paced<'_>,
) -> Result<(), PeerError> {
    let conn = tx.conn;
    // Every way out of this writer (done, failed, stopped) releases the others from its pace.
    let _lane = paced.pacer.lane(paced.lane);
    let plan = conn.plan;
    let blocks = plan.blocks();
    let begin = c.encode();
    let mut h = Header::for_payload(Kind::Begin, job.id, &begin);
    h.shard = conn.shard as u32;
    h.seq = seq;
    tx.send(&h, &begin, &during(c, seq, 0, blocks)).await?;
    let rank = job.rank;
    let mut wire = Vec::new();
    let mut rest = shard;
    for b in 0..blocks {
        let (block, tail) = rest.split_at_mut(plan.block_len(b));
        rest = tail;
        if c.sends(rank) {
            if !paced.pacer.wait_turn(paced.lane, b, paced.stop).await {
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
            tx.send(&h, payload, &during(c, seq, b, blocks)).await?;
            paced.pacer.sent(paced.lane, b);
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
async fn recv_shard(
    job: &Job,
    rx: &mut Rx<'_, '_>,
    c: Collective,
    seq: u32,
    mut from_writer: mpsc::UnboundedReceiver<&mut [f32]>,
    count: Count<'_>,
    received: &mut Received,
) -> Result<Option<SignedReceipt>, PeerError> {
    let conn = rx.conn;
    let plan = conn.plan;
    let blocks = if c.receives(job.rank) {
        plan.blocks()
    } else {
        0
    };
    let mut buf = Vec::new();
    for b in 0..blocks {
        let what = during(c, seq, b, blocks);
        let h = rx.header(&what).await?;
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
        let Some(block) = from_writer.recv().await else {
            // The writer failed before sending this block: its error says why.
            return Ok(None);
        };
        match job.dtype {
            Dtype::F32 => {
                rx.payload(&h, dtype::f32_bytes_mut(block), &what).await?;
                received.on_block(b, dtype::f32_bytes(block), h.checksum);
            }
            d => {
                buf.resize(want_len, 0);
                rx.payload(&h, &mut buf, &what).await?;
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
    recv_receipt(job, rx, c, seq, plan.blocks()).await.map(Some)
}

/// The relay's receipt that ends a shard's operation.
async fn recv_receipt(
    job: &Job,
    rx: &mut Rx<'_, '_>,
    c: Collective,
    seq: u32,
    blocks: u32,
) -> Result<SignedReceipt, PeerError> {
    use prost::Message;
    let conn = rx.conn;
    let what = format!("waiting for the receipt of operation {seq} ({c}), {blocks} blocks");
    let h = rx.header(&what).await?;
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
    rx.payload(&h, &mut buf, &what).await?;
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
