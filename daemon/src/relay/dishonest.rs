//! A dishonest relay, for tests of the benchmark bots only: compiled with the cargo feature
//! `dishonest-relay`, never otherwise. `mrd miner --dishonest MODE` / `mrd relay --dishonest MODE`
//! set the mode for the whole process; the relay then tampers with the result blocks it sends
//! (recomputing their checksums, as a cheating miner would, so only the bot's check can tell).

use crate::wire::checksum;
use bytes::Bytes;
use std::sync::OnceLock;

/// How the relay cheats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dishonesty {
    /// Flips one bit of one element in the middle of every result block.
    Corrupt,
    /// Sends every result block as zeros.
    Zeros,
    /// Sends the first result block of an operation, drops every later one.
    Drop,
    /// Honest for bench bots' jobs (a ticket whose peers all share one hotkey: a bot's virtual
    /// peers), and flips one bit of about one result block in 50 of client jobs (a checksum
    /// recomputed to match, so peers accept it): only live-job verification can tell.
    CorruptClients,
}

static MODE: OnceLock<Dishonesty> = OnceLock::new();

/// Sets the mode for this process (the first call wins).
pub fn set(mode: Dishonesty) {
    let _ = MODE.set(mode);
    tracing::warn!(
        ?mode,
        "DISHONEST RELAY: result blocks will be tampered with (test build)"
    );
}

/// Whether a job is a bench bot's: its ticket's peers are all the bot's one hotkey.
fn is_bench_job(peers: &[String]) -> bool {
    peers.windows(2).all(|w| w[0] == w[1])
}

/// Which blocks `CorruptClients` corrupts: about one in 50, by a hash of where the block is.
fn one_in_50(job: u64, shard: u32, seq: u32, block: u32) -> bool {
    let x = job ^ (u64::from(shard) << 48) ^ (u64::from(seq) << 24) ^ u64::from(block);
    checksum(&x.to_le_bytes()).is_multiple_of(50)
}

/// [`tamper`] for a block of the job with these parameters.
pub fn tamper_in(
    params: &super::machine::Params,
    seq: u32,
    block: u32,
    payload: Bytes,
    sum: u64,
) -> Option<(Bytes, u64)> {
    if MODE.get() == Some(&Dishonesty::CorruptClients) {
        if is_bench_job(&params.peers) || !one_in_50(params.job, params.shard, seq, block) {
            return Some((payload, sum));
        }
        return Some(flip(payload, sum));
    }
    tamper(block, payload, sum)
}

fn flip(payload: Bytes, sum: u64) -> (Bytes, u64) {
    let mut v = payload.to_vec();
    if v.is_empty() {
        return (payload, sum);
    }
    // A low mantissa bit of the element in the middle: a small, plausible error.
    let i = (v.len() / 8) * 4;
    v[i] ^= 1;
    let c = checksum(&v);
    (Bytes::from(v), c)
}

/// Whether the mode drops result blocks (such a relay also sends no end-of-shard receipt: it
/// goes silent, which is what the bots' timeout catches).
pub fn drops_blocks() -> bool {
    MODE.get() == Some(&Dishonesty::Drop)
}

/// What to send instead of an honest result block: `None` drops it.
pub fn tamper(block: u32, payload: Bytes, sum: u64) -> Option<(Bytes, u64)> {
    let Some(mode) = MODE.get() else {
        return Some((payload, sum));
    };
    match mode {
        Dishonesty::Corrupt => Some(flip(payload, sum)),
        Dishonesty::CorruptClients => Some((payload, sum)),
        Dishonesty::Zeros => {
            let v = vec![0u8; payload.len()];
            let c = checksum(&v);
            Some((Bytes::from(v), c))
        }
        Dishonesty::Drop => (block == 0).then_some((payload, sum)),
    }
}
