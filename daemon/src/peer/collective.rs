//! `Peer`: runs collectives over every miner of a job at once, pipelined.
//!
//! Per miner, a writer sends block k+1 while a reader receives reduced block k; all of them run
//! on the calling thread ([`super::engine`]), so the API stays synchronous for training code and
//! the bench bot's plain threads.

use super::conn::{Conn, JoinTimes};
use super::deadline::Deadline;
use super::engine::{self, Operation};
use super::failover::Aborts;
use super::pace::{self, Pacer, SharedPace};
use super::progress::PeerProgress;
use super::sample::ShardEvidence;
use super::{Job, PeerError};
use crate::core::{Collective, Op};
use crate::wallet::Keypair;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The next operation's pacing, shared with other peers of this process.
    shared_pace: Option<SharedPace>,
    /// Drives every operation's traffic from the calling thread.
    rt: tokio::runtime::Runtime,
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
        let rt = engine::runtime()?;
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
            shared_pace: None,
            rt,
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

    /// Paces the next operation's blocks with the other peers of `group` (see [`SharedPace`])
    /// instead of across this peer's shards only.
    pub fn pace_next_with(&mut self, group: SharedPace) {
        self.shared_pace = Some(group);
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
        let aborts = Aborts::new(&self.conns);
        let lost = Mutex::new(Vec::new());
        let evidence = Mutex::new(Vec::new());
        let own = Pacer::new(
            self.conns.iter().map(|c| c.plan.blocks()),
            pace::ahead(),
            pace::stall_time(deadline),
            c.sends(self.job.rank),
        );
        let shared = self.shared_pace.take();
        if let Some(g) = shared.as_ref().filter(|_| !c.sends(self.job.rank)) {
            // Nothing of ours to pace: the group's senders must not wait for us.
            g.leave();
        }
        let (pacer, first_lane) = shared
            .as_ref()
            .and_then(|g| g.start(self.conns.len()))
            .unwrap_or((&own, 0));
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
            pacer,
            first_lane,
        };
        let result = op.run(&self.rt, &mut self.conns, shards, &mut self.failovers);
        let lost = lost.into_inner().unwrap_or_else(|p| p.into_inner());
        self.evidence
            .extend(evidence.into_inner().unwrap_or_else(|p| p.into_inner()));
        self.failed_over |= !lost.is_empty();
        for m in lost {
            if !self.lost_miners.contains(&m) {
                self.lost_miners.push(m);
            }
        }
        result
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

impl Drop for Peer {
    fn drop(&mut self) {
        if self.failed.is_none() {
            for c in &mut self.conns {
                c.end(self.job.id);
            }
        }
    }
}
