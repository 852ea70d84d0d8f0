//! The data-plane frame: a fixed 40-byte little-endian header, then the payload.
//!
//! ```text
//!  0  magic    "MRDP"
//!  4  version  u8   (3)
//!  5  kind     u8   (Kind)
//!  6  dtype    u8   (Dtype code; 0 when the payload is not tensor data)
//!  7  flags    u8   (0; reserved)
//!  8  job      u64  job id from the ticket
//! 16  shard    u32  shard index (= the miner's position in the ticket)
//! 20  block    u32  block index within the shard
//! 24  seq      u32  operation number within the job
//! 28  len      u32  payload bytes
//! 32  checksum u64  xxh3-64 of the payload
//! 40  payload
//! ```

use crate::core::Dtype;

pub const MAGIC: [u8; 4] = *b"MRDP";
/// 2: a ticket's `block_elems` counts 4-byte units, so a 16-bit block carries twice the elements
/// of an f32 block (version 1 counted elements). 3: relays end every shard of every operation
/// with a `Receipt` frame to each peer. Mixed versions are refused at the first frame.
pub const VERSION: u8 = 3;
pub const HEADER_LEN: usize = 40;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Peer → relay, first frame: the signed ticket and the peer's signature (protobuf `Handshake`).
    Hello = 1,
    /// Relay → peer: every peer of the job has joined; the payload is empty.
    Welcome = 2,
    /// Peer → relay: starts operation `seq` (payload: `Collective::encode`).
    Begin = 3,
    /// Peer → relay: one block of this peer's shard, in the job's dtype.
    Data = 4,
    /// Relay → peer: one reduced (or broadcast) block.
    Result = 5,
    /// Either way: the job failed; the payload is the reason in UTF-8. The sender closes next.
    Error = 6,
    /// Peer → relay: this peer leaves the job cleanly.
    End = 7,
    /// Relay → peer, after the last block of a shard of an operation has gone to every peer:
    /// the relay's signed receipt for this peer (protobuf `SignedReceipt`, see
    /// [`super::receipt`]); `seq` and `shard` name what it covers. Also tells the source of a
    /// broadcast that its shard was delivered.
    Receipt = 8,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::Welcome,
            3 => Kind::Begin,
            4 => Kind::Data,
            5 => Kind::Result,
            6 => Kind::Error,
            7 => Kind::End,
            8 => Kind::Receipt,
            _ => return None,
        })
    }
}

/// A decoded header. `dtype` is `None` for frames that carry no tensor data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub dtype: Option<Dtype>,
    pub job: u64,
    pub shard: u32,
    pub block: u32,
    pub seq: u32,
    pub len: u32,
    pub checksum: u64,
}

/// A header that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("bad magic {0:02x?}: not a mapreduce data-plane frame")]
    Magic([u8; 4]),
    #[error("frame version {0}, this relay speaks version {VERSION}")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("unknown dtype code {0}")]
    Dtype(u8),
    #[error("reserved flags {0:#04x} set")]
    Flags(u8),
}

/// The xxh3-64 of a payload (seed 0: the same value as `XXH3_64bits`).
///
/// The `xxh3` crate picks AVX2 at run time; `xxhash-rust` picks its SIMD width at compile time,
/// which in a portable x86-64 build is SSE2, and its checksums were ~10% of a relay's profile.
/// Every payload is hashed twice (sender, receiver), so this is on the per-byte path of both.
pub fn checksum(payload: &[u8]) -> u64 {
    xxh3::hash64_with_seed(payload, 0)
}

impl Header {
    /// A header for `payload`, with its length and checksum filled in.
    pub fn for_payload(kind: Kind, job: u64, payload: &[u8]) -> Header {
        Header {
            kind,
            dtype: None,
            job,
            shard: 0,
            block: 0,
            seq: 0,
            len: payload.len() as u32,
            checksum: checksum(payload),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.kind as u8;
        b[6] = self.dtype.map_or(0, Dtype::code);
        b[7] = 0;
        b[8..16].copy_from_slice(&self.job.to_le_bytes());
        b[16..20].copy_from_slice(&self.shard.to_le_bytes());
        b[20..24].copy_from_slice(&self.block.to_le_bytes());
        b[24..28].copy_from_slice(&self.seq.to_le_bytes());
        b[28..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..40].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != MAGIC {
            return Err(HeaderError::Magic(magic));
        }
        if b[4] != VERSION {
            return Err(HeaderError::Version(b[4]));
        }
        let kind = Kind::from_u8(b[5]).ok_or(HeaderError::Kind(b[5]))?;
        let dtype = match b[6] {
            0 => None,
            c => Some(Dtype::from_code(c).ok_or(HeaderError::Dtype(c))?),
        };
        if b[7] != 0 {
            return Err(HeaderError::Flags(b[7]));
        }
        Ok(Header {
            kind,
            dtype,
            job: u64_at(8),
            shard: u32_at(16),
            block: u32_at(20),
            seq: u32_at(24),
            len: u32_at(28),
            checksum: u64_at(32),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            kind: Kind::Data,
            dtype: Some(Dtype::Bf16),
            job: 0xdead_beef_0102_0304,
            shard: 2,
            block: 77,
            seq: 5,
            len: 1 << 20,
            checksum: 42,
        };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn checksum_is_standard_xxh3_64() {
        // Sizes around the xxh3 code paths (short, mid, stripes, blocks) and a full block.
        let data: Vec<u8> = (0..(1u32 << 20) + 77)
            .map(|i| i.wrapping_mul(2_654_435_761) as u8)
            .collect();
        for n in [
            0,
            1,
            3,
            4,
            8,
            16,
            17,
            128,
            129,
            240,
            241,
            1023,
            1024,
            1025,
            4096,
            65_537,
            data.len(),
        ] {
            assert_eq!(
                checksum(&data[..n]),
                xxhash_rust::xxh3::xxh3_64(&data[..n]),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn bad_headers_are_named() {
        let h = Header::for_payload(Kind::End, 1, &[]);
        let mut b = h.encode();
        b[0] = b'X';
        assert!(matches!(Header::decode(&b), Err(HeaderError::Magic(_))));
        let mut b = h.encode();
        b[4] = 9;
        assert_eq!(Header::decode(&b), Err(HeaderError::Version(9)));
        let mut b = h.encode();
        b[5] = 99;
        assert_eq!(Header::decode(&b), Err(HeaderError::Kind(99)));
        let mut b = h.encode();
        b[6] = 9;
        assert_eq!(Header::decode(&b), Err(HeaderError::Dtype(9)));
    }
}
