//! The relay's end-of-shard receipt (frame kind `Receipt`, docs/verification.md).
//!
//! When a relay has delivered every block of one shard of one operation, it sends each peer a
//! small signed receipt: the job, operation, shard and rank, and blake2b-256 digests over the
//! xxh3-64 checksums of the data blocks it received from that rank and of the result blocks it
//! sent to it. The checksums already travel in every frame header, so the relay hashes 8 bytes
//! per block, never the block again: one receipt per shard per operation, no per-block
//! signature. A peer checks the digests against the checksums it saw; the validator checks the
//! signature and that each sampled block has the checksum the miner acknowledged.

use crate::wallet::{KeyError, Keypair};
use blake2::Digest;
use prost::Message;

pub use mr_proto::v1::{ShardReceipt, SignedReceipt};

const RECEIPT_DOMAIN: &[u8] = b"mapreduce/receipt/v1";
/// Largest receipt frame payload a peer accepts.
pub const MAX_RECEIPT: usize = 4096;

type Blake2b256 = blake2::Blake2b<blake2::digest::consts::U32>;

/// blake2b-256 over `checksums` as little-endian u64s, in order.
pub fn digest(checksums: &[u64]) -> Vec<u8> {
    let mut h = Blake2b256::new();
    for c in checksums {
        h.update(c.to_le_bytes());
    }
    h.finalize().to_vec()
}

/// Why a receipt is not evidence.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("malformed receipt: {0}")]
    Malformed(String),
    #[error("the receipt is unsigned (a relay without a hotkey)")]
    Unsigned,
    #[error("bad receipt signature (claimed miner {0})")]
    Signature(String),
    #[error("receipt's {what} digest does not match the {n} checksums given")]
    Digest { what: &'static str, n: usize },
}

fn message(bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECEIPT_DOMAIN.len() + bytes.len());
    m.extend_from_slice(RECEIPT_DOMAIN);
    m.extend_from_slice(bytes);
    m
}

/// Signs `r` with `key` (its `miner` field set to the key's address), or leaves it unsigned.
pub fn seal(mut r: ShardReceipt, key: Option<&Keypair>) -> Result<SignedReceipt, KeyError> {
    r.miner = key
        .map(|k| k.ss58_address().to_string())
        .unwrap_or_default();
    let bytes = r.encode_to_vec();
    let signature = match key {
        Some(k) => k.sign(&message(&bytes))?.to_vec(),
        None => Vec::new(),
    };
    Ok(SignedReceipt {
        receipt: bytes,
        signature,
    })
}

/// Decodes a receipt without checking its signature (what a peer does with an unsigned one).
pub fn open(s: &SignedReceipt) -> Result<ShardReceipt, ReceiptError> {
    ShardReceipt::decode(s.receipt.as_slice()).map_err(|e| ReceiptError::Malformed(e.to_string()))
}

/// Decodes a receipt and checks the miner's signature over it.
pub fn verify(s: &SignedReceipt) -> Result<ShardReceipt, ReceiptError> {
    let r = open(s)?;
    if s.signature.is_empty() || r.miner.is_empty() {
        return Err(ReceiptError::Unsigned);
    }
    let key = Keypair::from_ss58(&r.miner)
        .map_err(|e| ReceiptError::Malformed(format!("miner {:?}: {e}", r.miner)))?;
    if !key.verify(&message(&s.receipt), &s.signature) {
        return Err(ReceiptError::Signature(r.miner));
    }
    Ok(r)
}

/// Checks that the receipt's digests cover exactly `inputs` and `outputs`.
pub fn covers(r: &ShardReceipt, inputs: &[u64], outputs: &[u64]) -> Result<(), ReceiptError> {
    if r.inputs as usize != inputs.len() || r.input_digest != digest(inputs) {
        return Err(ReceiptError::Digest {
            what: "input",
            n: inputs.len(),
        });
    }
    if r.outputs as usize != outputs.len() || r.output_digest != digest(outputs) {
        return Err(ReceiptError::Digest {
            what: "output",
            n: outputs.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(inputs: &[u64], outputs: &[u64]) -> ShardReceipt {
        ShardReceipt {
            job_id: 7,
            seq: 1,
            shard: 2,
            rank: 0,
            blocks: 3,
            input_digest: digest(inputs),
            output_digest: digest(outputs),
            miner: String::new(),
            inputs: inputs.len() as u32,
            outputs: outputs.len() as u32,
            collective: vec![1, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    #[test]
    fn signed_receipts_verify_and_tampering_is_caught() {
        let key = Keypair::from_mini_secret(&[5u8; 32]).expect("key");
        let (i, o) = ([1u64, 2, 3], [4u64, 5, 6]);
        let s = seal(receipt(&i, &o), Some(&key)).expect("seal");
        let r = verify(&s).expect("verifies");
        assert_eq!(r.miner, key.ss58_address());
        covers(&r, &i, &o).expect("covers");
        assert!(matches!(
            covers(&r, &[1, 2, 9], &o),
            Err(ReceiptError::Digest { what: "input", .. })
        ));
        assert!(matches!(
            covers(&r, &i, &[4, 5]),
            Err(ReceiptError::Digest { what: "output", .. })
        ));
        let mut bad = s.clone();
        let n = bad.receipt.len();
        bad.receipt[n - 1] ^= 1;
        assert!(verify(&bad).is_err());
        let unsigned = seal(receipt(&i, &o), None).expect("seal");
        assert_eq!(verify(&unsigned), Err(ReceiptError::Unsigned));
        assert_eq!(open(&unsigned).expect("opens").rank, 0);
        assert!(s.encode_to_vec().len() < MAX_RECEIPT);
    }
}
