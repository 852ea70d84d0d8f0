//! What a peer knows of its job: all of it comes from the validator's signed ticket.

use super::PeerError;
use crate::core::{Dtype, Layout};
use crate::wire::handshake::{MinerSlot, SignedTicket, now_ms, verify_ticket};
use std::time::Duration;

/// A job as one peer sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub rank: u32,
    pub peers: u32,
    /// Hotkeys of all peers, by rank.
    pub peer_hotkeys: Vec<String>,
    /// Miners by shard.
    pub miners: Vec<MinerSlot>,
    /// Spare miners that take over a failed miner's shard (see [`super::failover`]).
    pub spares: Vec<MinerSlot>,
    pub dtype: Dtype,
    pub elements: u64,
    pub layout: Layout,
    /// Floor of the per-block deadline.
    pub deadline_floor: Duration,
    pub ticket: SignedTicket,
    /// Live-job verification: which blocks to keep for the validator (off unless the
    /// validator's job response gave a seed; never in the ticket).
    pub sample: crate::core::sample::SampleSpec,
}

impl Job {
    /// Reads a ticket for `rank`. The peer got it from its validator, so only its shape and
    /// expiry are checked here; the miners check the signature.
    pub fn from_ticket(ticket: SignedTicket, rank: u32) -> Result<Job, PeerError> {
        let v = verify_ticket(&ticket, &|_| true, now_ms())?;
        let peers = v.peers();
        if rank >= peers {
            return Err(PeerError::Rank { rank, peers });
        }
        Ok(Job {
            id: v.ticket.job_id,
            rank,
            peers,
            deadline_floor: Duration::from_millis(u64::from(v.deadline_ms())),
            peer_hotkeys: v.ticket.peers,
            miners: v.ticket.miners,
            spares: v.ticket.spares,
            dtype: v.dtype,
            elements: v.ticket.elements,
            layout: v.layout,
            ticket,
            sample: Default::default(),
        })
    }

    /// "miner i (hotkey at address)", for errors.
    pub fn miner_name(&self, shard: usize) -> String {
        match self.miners.get(shard) {
            Some(m) => format!("miner {shard} ({} at {})", m.hotkey, m.address),
            None => format!("miner {shard}"),
        }
    }
}
