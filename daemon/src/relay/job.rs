//! One job's shard, shared by its connections: the machine behind a lock, each rank's writer
//! queue, and the signals readers wait on.
//!
//! Reduced blocks go to writers as `Arc<OutBlock>`; when the last writer drops its copy the block
//! is released in the machine, which moves the window. The lock is never held while an
//! `OutBlock` may drop (its `Drop` takes the lock).

use super::budget::Reservation;
use super::machine::{Event, Fault, Machine};
use bytes::Bytes;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A message for one connection's writer.
#[derive(Debug)]
pub enum Out {
    Welcome,
    Block(Arc<OutBlock>),
    /// The end of this shard's operation: the writer signs and sends it (`relay::receipt`).
    Receipt(crate::wire::receipt::ShardReceipt),
}

/// A block on its way to its recipients.
#[derive(Debug)]
pub struct OutBlock {
    pub seq: u32,
    pub block: u32,
    pub payload: Bytes,
    pub checksum: u64,
    job: Weak<JobCell>,
}

impl Drop for OutBlock {
    fn drop(&mut self) {
        if let Some(job) = self.job.upgrade() {
            let events = job.lock().machine.released(self.seq, self.block);
            job.after(events);
        }
    }
}

pub struct Inner {
    pub machine: Machine,
    writers: Vec<Option<mpsc::UnboundedSender<Out>>>,
    pub last_progress: Instant,
    /// Checksums of the running operation, for its receipts.
    ledger: super::receipt::Ledger,
}

/// A job's shard on this relay.
pub struct JobCell {
    pub key: (u64, u32),
    /// The ticket's signature: the same job id with another ticket is refused.
    pub ticket_sig: Vec<u8>,
    pub deadline: std::time::Duration,
    inner: Mutex<Inner>,
    progress: watch::Sender<u64>,
    pub cancel: CancellationToken,
    /// Live connections; the last one out removes the job from the registry.
    pub conns: AtomicUsize,
    _reservation: Reservation,
}

impl JobCell {
    pub fn new(
        key: (u64, u32),
        ticket_sig: Vec<u8>,
        machine: Machine,
        deadline: std::time::Duration,
        reservation: Reservation,
    ) -> Arc<JobCell> {
        let p = machine.params().p() as usize;
        Arc::new(JobCell {
            key,
            ticket_sig,
            deadline,
            inner: Mutex::new(Inner {
                machine,
                writers: vec![None; p],
                last_progress: Instant::now(),
                ledger: Default::default(),
            }),
            progress: watch::channel(0).0,
            cancel: CancellationToken::new(),
            conns: AtomicUsize::new(0),
            _reservation: reservation,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere already failed this job; its state is still
        // coherent enough to report and drop.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes whenever readers may have become unblocked.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    fn poke(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Drops the writer queue of `rank`: its writer ends once the queue is drained.
    pub fn close_writer(&self, rank: u32) {
        let tx = self
            .lock()
            .writers
            .get_mut(rank as usize)
            .and_then(Option::take);
        drop(tx);
    }

    /// Joins `rank` and registers its writer queue in one step, so a duplicate rank can never
    /// take over the queue of the rank it duplicates.
    pub fn join(self: &Arc<Self>, rank: u32, tx: mpsc::UnboundedSender<Out>) -> Result<(), Fault> {
        self.apply_inner(|g| {
            let events = g.machine.join(rank)?;
            if let Some(w) = g.writers.get_mut(rank as usize) {
                *w = Some(tx);
            }
            Ok(events)
        })
    }

    /// Feeds one frame of `rank` to the machine; an accepted data block goes into the ledger of
    /// the operation's receipts (under the same lock, so before the operation can end).
    pub fn on_frame(self: &Arc<Self>, rank: u32, frame: crate::wire::Frame) -> Result<(), Fault> {
        let h = frame.header;
        let begin = (h.kind == crate::wire::Kind::Begin).then(|| frame.payload.clone());
        self.apply_inner(|g| {
            let events = g.machine.on_frame(rank, frame)?;
            let p = g.machine.params().p() as usize;
            match (h.kind, begin) {
                (crate::wire::Kind::Data, _) => g.ledger.input(p, h.seq, rank, h.checksum),
                (_, Some(c)) => g.ledger.begin(p, h.seq, &c),
                _ => {}
            }
            Ok(events)
        })
    }

    /// Runs `f` on the machine and acts on what it says. A fault fails the job for everyone.
    pub fn apply(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Machine) -> Result<Vec<Event>, Fault>,
    ) -> Result<(), Fault> {
        self.apply_inner(|g| f(&mut g.machine))
    }

    fn apply_inner(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Inner) -> Result<Vec<Event>, Fault>,
    ) -> Result<(), Fault> {
        let mut dropped = Vec::new();
        let result = {
            let mut g = self.lock();
            match f(&mut g) {
                Ok(events) => {
                    g.last_progress = Instant::now();
                    self.dispatch(&mut g, events, &mut dropped);
                    Ok(())
                }
                Err(fault) => Err(fault),
            }
        };
        // Outside the lock: these may be the last copies, whose Drop takes it.
        drop(dropped);
        match result {
            Ok(()) => {
                self.poke();
                Ok(())
            }
            Err(fault) => {
                self.cancel.cancel();
                self.poke();
                Err(fault)
            }
        }
    }

    fn dispatch(
        self: &Arc<Self>,
        g: &mut Inner,
        events: Vec<Event>,
        dropped: &mut Vec<Arc<OutBlock>>,
    ) {
        for e in events {
            match e {
                Event::Ready => {
                    for w in g.writers.iter().flatten() {
                        let _ = w.send(Out::Welcome);
                    }
                }
                Event::Send {
                    seq,
                    block,
                    skip,
                    payload,
                    checksum,
                } => {
                    #[cfg(feature = "dishonest-relay")]
                    let (payload, checksum, honest) = match super::dishonest::tamper_in(
                        g.machine.params(),
                        seq,
                        block,
                        payload.clone(),
                        checksum,
                    ) {
                        Some((p, c)) => (p, c, true),
                        None => (payload, checksum, false),
                    };
                    let out = Arc::new(OutBlock {
                        seq,
                        block,
                        payload,
                        checksum,
                        job: Arc::downgrade(self),
                    });
                    #[cfg(feature = "dishonest-relay")]
                    if !honest {
                        // Dropped: released outside the lock, so the window still moves on.
                        dropped.push(out);
                        continue;
                    }
                    let p = g.machine.params().p() as usize;
                    g.ledger.output(p, seq, skip, checksum);
                    for (rank, w) in g.writers.iter().enumerate() {
                        if skip == Some(rank as u32) {
                            continue;
                        }
                        if let Some(w) = w
                            && let Err(mpsc::error::SendError(Out::Block(b))) =
                                w.send(Out::Block(Arc::clone(&out)))
                        {
                            dropped.push(b);
                        }
                    }
                    dropped.push(out);
                }
                Event::OpDone { seq } => {
                    // A relay that drops blocks goes silent: no receipt after the first block.
                    #[cfg(feature = "dishonest-relay")]
                    if super::dishonest::drops_blocks() {
                        continue;
                    }
                    let params = g.machine.params();
                    let (p, blocks) = (params.p() as usize, params.plan.blocks());
                    let receipts = g.ledger.finish(p, self.key.0, seq, self.key.1, blocks);
                    for (w, r) in g.writers.iter().zip(receipts) {
                        if let Some(w) = w {
                            let _ = w.send(Out::Receipt(r));
                        }
                    }
                }
                Event::Finished => {}
            }
        }
    }

    /// Events from a release (outside `apply`, the lock already dropped by the caller).
    fn after(self: &Arc<Self>, events: Vec<Event>) {
        let mut g = self.lock();
        g.last_progress = Instant::now();
        let mut dropped = Vec::new();
        self.dispatch(&mut g, events, &mut dropped);
        drop(g);
        drop(dropped);
        self.poke();
    }

    /// Fails the job (first reason wins) and wakes everyone so they close.
    pub fn fail(&self, fault: Fault) -> Fault {
        let f = self.lock().machine.fail(fault);
        self.cancel.cancel();
        self.poke();
        f
    }

    /// The reason the job failed, if it did.
    pub fn failure(&self) -> Option<Fault> {
        self.lock().machine.failed().cloned()
    }
}
