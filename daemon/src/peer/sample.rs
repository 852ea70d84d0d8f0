//! The peer's part of live-job verification (docs/verification.md): while an operation runs, the
//! checksums of the blocks this peer sent each miner and received from it, and copies of the
//! sampled blocks (the job's secret seed picks them, `core::sample`); at the end of each shard,
//! the miner's signed receipt, checked against those checksums. The result is one
//! [`ShardEvidence`] per shard per operation, which the session sends to the validator off the
//! hot path. Memory is bounded by the sampled blocks (the sample rate times the tensor, twice).

use crate::core::Collective;
use crate::core::sample::SampleSpec;
use crate::wire::receipt::{self, SignedReceipt};
use mr_proto::v1::SampleBlock;

/// What this peer saw of one shard of one operation, with the miner's receipt.
#[derive(Debug, Clone)]
pub struct ShardEvidence {
    pub shard: u32,
    pub seq: u32,
    pub collective: Collective,
    /// The miner that served the shard (hotkey), as the ticket names it.
    pub miner: String,
    pub receipt: SignedReceipt,
    pub inputs: Vec<u64>,
    pub outputs: Vec<u64>,
    pub samples: Vec<SampleBlock>,
}

/// Sampled blocks of one shard in one operation and the checksums seen, from the sending side.
#[derive(Debug, Default)]
pub struct Sent {
    picks: Vec<u32>,
    pub checksums: Vec<u64>,
    pub blocks: Vec<(u32, Vec<u8>)>,
}

impl Sent {
    pub fn new(spec: &SampleSpec, seq: u32, shard: u32, blocks: u32) -> Sent {
        Sent {
            picks: spec.blocks(seq, shard, blocks),
            ..Sent::default()
        }
    }

    /// Block `block` with this payload and checksum went to the miner.
    pub fn on_block(&mut self, block: u32, payload: &[u8], checksum: u64) {
        self.checksums.push(checksum);
        if self.picks.binary_search(&block).is_ok() {
            self.blocks.push((block, payload.to_vec()));
        }
    }
}

/// The same from the receiving side (the reduced blocks).
pub type Received = Sent;

/// Why a receipt is refused by the peer that got it.
pub fn check_receipt(
    r: &SignedReceipt,
    job: u64,
    seq: u32,
    shard: u32,
    rank: u32,
    sent: &[u64],
    received: &[u64],
) -> Result<(), String> {
    let body = receipt::open(r).map_err(|e| e.to_string())?;
    if (body.job_id, body.seq, body.shard, body.rank) != (job, seq, shard, rank) {
        return Err(format!(
            "receipt for job {} op {} shard {} rank {}, expected job {job} op {seq} shard {shard} rank {rank}",
            body.job_id, body.seq, body.shard, body.rank
        ));
    }
    receipt::covers(&body, sent, received).map_err(|e| e.to_string())
}

/// Joins what both sides kept into the samples of a report: every sampled block, with the input
/// sent and the output received (either may be empty for a rank that only sends or receives).
pub fn samples(sent: Sent, received: Received) -> Vec<SampleBlock> {
    let mut out: Vec<SampleBlock> = Vec::new();
    for (block, input) in sent.blocks {
        out.push(SampleBlock {
            block,
            input,
            ..Default::default()
        });
    }
    for (block, output) in received.blocks {
        match out.iter_mut().find(|s| s.block == block) {
            Some(s) => s.output = output,
            None => out.push(SampleBlock {
                block,
                output,
                ..Default::default()
            }),
        }
    }
    out.sort_by_key(|s| s.block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_picked_blocks_are_kept_and_samples_pair_up() {
        let spec = SampleSpec {
            seed: 3,
            ppm: crate::core::sample::PPM,
        };
        let mut s = Sent::new(&spec, 0, 0, 2);
        s.on_block(0, b"in0", 1);
        s.on_block(1, b"in1", 2);
        let mut r = Received::new(&SampleSpec { seed: 0, ppm: 0 }, 0, 0, 2);
        r.on_block(0, b"out0", 3);
        assert_eq!(s.checksums, vec![1, 2]);
        assert!(r.blocks.is_empty(), "sampling off keeps nothing");
        let mut r2 = Received::new(&spec, 0, 0, 2);
        r2.on_block(1, b"out1", 4);
        let v = samples(s, r2);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].input.as_slice(), v[0].output.as_slice()),
            (&b"in0"[..], &b""[..])
        );
        assert_eq!(
            (v[1].input.as_slice(), v[1].output.as_slice()),
            (&b"in1"[..], &b"out1"[..])
        );
    }
}
