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

/// What to send instead of an honest result block: `None` drops it.
pub fn tamper(block: u32, payload: Bytes, sum: u64) -> Option<(Bytes, u64)> {
    let Some(mode) = MODE.get() else {
        return Some((payload, sum));
    };
    match mode {
        Dishonesty::Corrupt => {
            let mut v = payload.to_vec();
            if v.is_empty() {
                return Some((payload, sum));
            }
            // A low mantissa bit of the element in the middle: a small, plausible error.
            let i = (v.len() / 8) * 4;
            v[i] ^= 1;
            let c = checksum(&v);
            Some((Bytes::from(v), c))
        }
        Dishonesty::Zeros => {
            let v = vec![0u8; payload.len()];
            let c = checksum(&v);
            Some((Bytes::from(v), c))
        }
        Dishonesty::Drop => (block == 0).then_some((payload, sum)),
    }
}
