//! Fixed keys and a valid signed handshake, for the tests that mutate valid input (fuzz and
//! property tests): one definition, so every such test starts from the same known-good bytes.

use mapreduce::wallet::Keypair;
use mapreduce::wire::handshake::{Handshake, JobTicket, MinerSlot, SignedTicket, hello, issue};

/// A deterministic sr25519 key: the mini secret is `n` repeated.
pub fn key(n: u8) -> Keypair {
    Keypair::from_mini_secret(&[n; 32]).expect("fixture key")
}

/// Job 42, signed by `key(1)`: peers `key(3)` (rank 0) and `key(2)` (rank 1), one miner
/// `key(4)` at 127.0.0.1:9000 and one spare `key(5)`, f32, 1024-element blocks, never expiring.
pub struct SignedHello {
    pub validator: Keypair,
    pub peer: Keypair,
    pub ticket: SignedTicket,
    /// Rank 1's handshake for shard 0, signed by `peer`.
    pub hello: Handshake,
}

pub fn signed_hello() -> SignedHello {
    let validator = key(1);
    let peer = key(2);
    let slot = |n: u8, port: u16| MinerSlot {
        hotkey: key(n).ss58_address().into(),
        address: format!("127.0.0.1:{port}"),
        weight: 1,
    };
    let ticket = JobTicket {
        job_id: 42,
        validator: validator.ss58_address().to_string(),
        peers: vec![key(3).ss58_address().into(), peer.ss58_address().into()],
        miners: vec![slot(4, 9000)],
        dtype: 1,
        block_elems: 1024,
        elements: 1_000_000,
        expires_at_ms: u64::MAX,
        deadline_ms: 0,
        spares: vec![slot(5, 9001)],
    };
    let ticket = issue(ticket, &validator).expect("issue the fixture ticket");
    let hello = hello(&ticket, 42, 1, 0, &peer).expect("sign the fixture handshake");
    SignedHello {
        validator,
        peer,
        ticket,
        hello,
    }
}
