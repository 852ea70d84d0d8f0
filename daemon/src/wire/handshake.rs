//! The job ticket (signed by a validator) and the peer's signed join, checked by a relay before
//! any data flows.

use crate::core::{Dtype, Layout, LayoutError};
use crate::wallet::{KeyError, Keypair};
use prost::Message;

pub use mr_proto::v1::{Handshake, JobTicket, MinerSlot, SignedTicket};

const TICKET_DOMAIN: &[u8] = b"mapreduce/ticket/v1";
const JOIN_DOMAIN: &[u8] = b"mapreduce/join/v1";
/// Per-block deadline floor when a ticket leaves it at 0.
pub const DEFAULT_DEADLINE_MS: u32 = 10_000;
/// Most peers or miners one ticket may name.
pub const MAX_PARTIES: usize = 1024;

/// Why a ticket or handshake is refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("ticket signed by {0}, which this relay does not trust")]
    Untrusted(String),
    #[error("bad ticket signature (claimed validator {0})")]
    TicketSignature(String),
    #[error("ticket of job {job} expired {ago_ms} ms ago")]
    Expired { job: u64, ago_ms: u64 },
    #[error("rank {rank} is not in the ticket ({peers} peers)")]
    Rank { rank: u32, peers: usize },
    #[error("shard {shard} is not in the ticket ({miners} miners)")]
    Shard { shard: u32, miners: usize },
    #[error("bad join signature for rank {rank} (hotkey {hotkey})")]
    PeerSignature { rank: u32, hotkey: String },
    #[error("invalid key {address:?}: {source}")]
    Key { address: String, source: KeyError },
    #[error("ticket layout: {0}")]
    Layout(#[from] LayoutError),
}

fn malformed(what: &'static str, reason: impl ToString) -> HandshakeError {
    HandshakeError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

fn key(address: &str) -> Result<Keypair, HandshakeError> {
    Keypair::from_ss58(address).map_err(|source| HandshakeError::Key {
        address: address.to_string(),
        source,
    })
}

/// Signs `ticket` as `validator` (its `validator` field is set to the signer's address).
pub fn issue(mut ticket: JobTicket, validator: &Keypair) -> Result<SignedTicket, KeyError> {
    ticket.validator = validator.ss58_address().to_string();
    let bytes = ticket.encode_to_vec();
    let mut msg = Vec::with_capacity(TICKET_DOMAIN.len() + bytes.len());
    msg.extend_from_slice(TICKET_DOMAIN);
    msg.extend_from_slice(&bytes);
    let signature = validator.sign(&msg)?.to_vec();
    Ok(SignedTicket {
        ticket: bytes,
        signature,
    })
}

fn join_message(
    job: u64,
    ticket_sig: &[u8],
    rank: u32,
    shard: u32,
    nonce: u64,
    resume_seq: u32,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(JOIN_DOMAIN.len() + 8 + ticket_sig.len() + 20);
    m.extend_from_slice(JOIN_DOMAIN);
    m.extend_from_slice(&job.to_le_bytes());
    m.extend_from_slice(ticket_sig);
    m.extend_from_slice(&rank.to_le_bytes());
    m.extend_from_slice(&shard.to_le_bytes());
    m.extend_from_slice(&nonce.to_le_bytes());
    // Only failover joins carry it, so ordinary joins sign exactly what they always did.
    if resume_seq != 0 {
        m.extend_from_slice(&resume_seq.to_le_bytes());
    }
    m
}

/// A ticket whose signature, expiry and shape were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub ticket: JobTicket,
    pub signed: SignedTicket,
    pub dtype: Dtype,
    pub layout: Layout,
}

impl Verified {
    /// The per-block deadline floor, in milliseconds.
    pub fn deadline_ms(&self) -> u32 {
        match self.ticket.deadline_ms {
            0 => DEFAULT_DEADLINE_MS,
            d => d,
        }
    }

    pub fn peers(&self) -> u32 {
        self.ticket.peers.len() as u32
    }
}

/// Decodes and checks a signed ticket: shape, trust, signature, expiry.
pub fn verify_ticket(
    signed: &SignedTicket,
    trusted: &dyn Fn(&str) -> bool,
    now_ms: u64,
) -> Result<Verified, HandshakeError> {
    let ticket = JobTicket::decode(signed.ticket.as_slice()).map_err(|e| malformed("ticket", e))?;
    if !trusted(&ticket.validator) {
        return Err(HandshakeError::Untrusted(ticket.validator.clone()));
    }
    let mut msg = Vec::with_capacity(TICKET_DOMAIN.len() + signed.ticket.len());
    msg.extend_from_slice(TICKET_DOMAIN);
    msg.extend_from_slice(&signed.ticket);
    if !key(&ticket.validator)?.verify(&msg, &signed.signature) {
        return Err(HandshakeError::TicketSignature(ticket.validator.clone()));
    }
    if now_ms > ticket.expires_at_ms {
        return Err(HandshakeError::Expired {
            job: ticket.job_id,
            ago_ms: now_ms - ticket.expires_at_ms,
        });
    }
    let dtype = u8::try_from(ticket.dtype)
        .ok()
        .and_then(Dtype::from_code)
        .ok_or_else(|| malformed("ticket", format!("unknown dtype code {}", ticket.dtype)))?;
    if ticket.peers.is_empty() || ticket.peers.len() > MAX_PARTIES {
        return Err(malformed(
            "ticket",
            format!("{} peers (1 to {MAX_PARTIES})", ticket.peers.len()),
        ));
    }
    if ticket.miners.len() > MAX_PARTIES || ticket.spares.len() > MAX_PARTIES {
        return Err(malformed(
            "ticket",
            format!(
                "{} miners and {} spares",
                ticket.miners.len(),
                ticket.spares.len()
            ),
        ));
    }
    let weights: Vec<u32> = ticket.miners.iter().map(|m| m.weight).collect();
    // The ticket sizes blocks in bytes (4-byte units), not elements: see `Dtype::block_elems`.
    let block_elems = dtype.block_elems(u64::from(ticket.block_elems));
    let layout = Layout::new(ticket.elements, &weights, block_elems)?;
    Ok(Verified {
        ticket,
        signed: signed.clone(),
        dtype,
        layout,
    })
}

/// The handshake a peer of `rank` sends to the miner of `shard`.
pub fn hello(
    signed: &SignedTicket,
    job: u64,
    rank: u32,
    shard: u32,
    peer: &Keypair,
) -> Result<Handshake, KeyError> {
    hello_resume(signed, job, rank, shard, 0, peer)
}

/// The handshake of a failover join: a spare taking over `shard` at operation `resume_seq`.
pub fn hello_resume(
    signed: &SignedTicket,
    job: u64,
    rank: u32,
    shard: u32,
    resume_seq: u32,
    peer: &Keypair,
) -> Result<Handshake, KeyError> {
    let nonce = rand::random::<u64>();
    let msg = join_message(job, &signed.signature, rank, shard, nonce, resume_seq);
    Ok(Handshake {
        ticket: Some(signed.clone()),
        rank,
        shard,
        nonce,
        peer_signature: peer.sign(&msg)?.to_vec(),
        resume_seq,
    })
}

/// A checked join: the ticket, who joins, which shard, and the operation it starts at.
#[derive(Debug, Clone)]
pub struct Join {
    pub verified: Verified,
    pub rank: u32,
    pub shard: u32,
    /// 0 for an ordinary join; the job's current operation for a failover join.
    pub resume_seq: u32,
}

/// Checks a handshake's bytes: the ticket, then that `rank`'s hotkey signed this join.
pub fn verify_hello(
    bytes: &[u8],
    trusted: &dyn Fn(&str) -> bool,
    now_ms: u64,
) -> Result<(Verified, u32, u32), HandshakeError> {
    verify_join(bytes, trusted, now_ms).map(|j| (j.verified, j.rank, j.shard))
}

/// [`verify_hello`], also returning the failover's resume operation.
pub fn verify_join(
    bytes: &[u8],
    trusted: &dyn Fn(&str) -> bool,
    now_ms: u64,
) -> Result<Join, HandshakeError> {
    let hs = Handshake::decode(bytes).map_err(|e| malformed("handshake", e))?;
    let signed = hs
        .ticket
        .as_ref()
        .ok_or_else(|| malformed("handshake", "no ticket"))?;
    let v = verify_ticket(signed, trusted, now_ms)?;
    let Some(hotkey) = v.ticket.peers.get(hs.rank as usize) else {
        return Err(HandshakeError::Rank {
            rank: hs.rank,
            peers: v.ticket.peers.len(),
        });
    };
    if hs.shard as usize >= v.ticket.miners.len() {
        return Err(HandshakeError::Shard {
            shard: hs.shard,
            miners: v.ticket.miners.len(),
        });
    }
    let msg = join_message(
        v.ticket.job_id,
        &signed.signature,
        hs.rank,
        hs.shard,
        hs.nonce,
        hs.resume_seq,
    );
    if !key(hotkey)?.verify(&msg, &hs.peer_signature) {
        return Err(HandshakeError::PeerSignature {
            rank: hs.rank,
            hotkey: hotkey.clone(),
        });
    }
    Ok(Join {
        verified: v,
        rank: hs.rank,
        shard: hs.shard,
        resume_seq: hs.resume_seq,
    })
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (Keypair, Keypair, Keypair) {
        let k = |b: u8| Keypair::from_mini_secret(&[b; 32]).expect("key");
        (k(1), k(2), k(3))
    }

    fn ticket(v: &Keypair, p: &Keypair, expires_at_ms: u64) -> SignedTicket {
        let t = JobTicket {
            job_id: 7,
            peers: vec![p.ss58_address().into()],
            miners: vec![MinerSlot {
                hotkey: "m".into(),
                address: "127.0.0.1:1".into(),
                weight: 1,
            }],
            dtype: 1,
            block_elems: 16,
            elements: 100,
            expires_at_ms,
            ..Default::default()
        };
        issue(t, v).expect("sign")
    }

    #[test]
    fn a_good_handshake_verifies() {
        let (v, p, _) = keys();
        let st = ticket(&v, &p, u64::MAX);
        let hs = hello(&st, 7, 0, 0, &p).expect("hello").encode_to_vec();
        let vaddr = v.ss58_address().to_string();
        let (ver, rank, shard) = verify_hello(&hs, &|a| a == vaddr, now_ms()).expect("valid");
        assert_eq!((ver.ticket.job_id, rank, shard), (7, 0, 0));
        assert_eq!(ver.deadline_ms(), DEFAULT_DEADLINE_MS);
    }

    #[test]
    fn each_forgery_is_refused() {
        let (v, p, other) = keys();
        let vaddr = v.ss58_address().to_string();
        let trust = |a: &str| a == vaddr;
        let st = ticket(&v, &p, u64::MAX);

        let hs = hello(&st, 7, 0, 0, &p).expect("hello").encode_to_vec();
        assert!(matches!(
            verify_hello(&hs, &|_| false, 0),
            Err(HandshakeError::Untrusted(_))
        ));
        // Someone else's key signing the join.
        let hs = hello(&st, 7, 0, 0, &other).expect("hello").encode_to_vec();
        assert!(matches!(
            verify_hello(&hs, &trust, 0),
            Err(HandshakeError::PeerSignature { .. })
        ));
        // Ticket bytes altered after signing.
        let mut bad = st.clone();
        let n = bad.ticket.len();
        bad.ticket[n - 1] ^= 1;
        assert!(verify_ticket(&bad, &trust, 0).is_err());
        // Expired.
        let old = ticket(&v, &p, 5);
        assert!(matches!(
            verify_ticket(&old, &trust, 10),
            Err(HandshakeError::Expired { ago_ms: 5, .. })
        ));
        // Rank and shard out of range.
        let hs = hello(&st, 7, 3, 0, &p).expect("hello").encode_to_vec();
        assert!(matches!(
            verify_hello(&hs, &trust, 0),
            Err(HandshakeError::Rank { rank: 3, .. })
        ));
        let hs = hello(&st, 7, 0, 2, &p).expect("hello").encode_to_vec();
        assert!(matches!(
            verify_hello(&hs, &trust, 0),
            Err(HandshakeError::Shard { shard: 2, .. })
        ));
        assert!(verify_hello(b"\xff\xff\xff", &trust, 0).is_err());
    }

    #[test]
    fn a_failover_join_signs_its_resume_operation() {
        let (v, p, _) = keys();
        let vaddr = v.ss58_address().to_string();
        let trust = |a: &str| a == vaddr;
        let st = ticket(&v, &p, u64::MAX);
        let hs = hello_resume(&st, 7, 0, 0, 5, &p).expect("hello");
        let j = verify_join(&hs.encode_to_vec(), &trust, 0).expect("valid");
        assert_eq!((j.rank, j.shard, j.resume_seq), (0, 0, 5));
        // Someone on the path moving the spare to another operation is caught.
        let mut moved = hs.clone();
        moved.resume_seq = 6;
        assert!(matches!(
            verify_join(&moved.encode_to_vec(), &trust, 0),
            Err(HandshakeError::PeerSignature { .. })
        ));
        let mut dropped = hs;
        dropped.resume_seq = 0;
        assert!(verify_join(&dropped.encode_to_vec(), &trust, 0).is_err());
    }
}
