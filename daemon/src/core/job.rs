//! What a job is made of: the wire dtype, the reduce op, and the collective a peer asks for.

use std::fmt;

/// How tensor elements travel on the wire. Accumulation is always f32 whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    /// Bytes one element takes on the wire.
    pub const fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// Elements per block on the wire for a ticket's `block_elems`, which counts 4-byte units: a
    /// block is `4 * block_elems` bytes whatever the dtype, so 16-bit dtypes carry twice the
    /// elements per frame (the same bytes, half the frames and half the per-frame costs of f32).
    pub const fn block_elems(self, ticket_block_elems: u64) -> u64 {
        ticket_block_elems * 4 / self.size() as u64
    }

    /// The code carried in frames and tickets.
    pub const fn code(self) -> u8 {
        match self {
            Dtype::F32 => 1,
            Dtype::F16 => 2,
            Dtype::Bf16 => 3,
        }
    }

    pub const fn from_code(code: u8) -> Option<Dtype> {
        match code {
            1 => Some(Dtype::F32),
            2 => Some(Dtype::F16),
            3 => Some(Dtype::Bf16),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Dtype::F32),
            "f16" | "float16" | "half" => Ok(Dtype::F16),
            "bf16" | "bfloat16" => Ok(Dtype::Bf16),
            other => Err(format!(
                "unknown dtype {other:?}: expected f32, f16 or bf16"
            )),
        }
    }
}

/// Reduce operation of an all-reduce (torch.distributed's `ReduceOp` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Sum,
    /// Sum divided by the number of peers, done by the miner in f32.
    Avg,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Sum => "sum",
            Op::Avg => "avg",
        })
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sum" => Ok(Op::Sum),
            "avg" | "mean" => Ok(Op::Avg),
            other => Err(format!("unknown op {other:?}: expected sum or avg")),
        }
    }
}

/// One collective operation of a job. A job runs many of them, one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collective {
    AllReduce(Op),
    Broadcast { src: u32 },
}

impl fmt::Display for Collective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Collective::AllReduce(op) => write!(f, "all_reduce({op})"),
            Collective::Broadcast { src } => write!(f, "broadcast(src={src})"),
        }
    }
}

impl Collective {
    /// Whether `rank` uploads data in this collective.
    pub fn sends(&self, rank: u32) -> bool {
        match self {
            Collective::AllReduce(_) => true,
            Collective::Broadcast { src } => *src == rank,
        }
    }

    /// Whether `rank` downloads results (a broadcast's source already has the data).
    pub fn receives(&self, rank: u32) -> bool {
        match self {
            Collective::AllReduce(_) => true,
            Collective::Broadcast { src } => *src != rank,
        }
    }

    /// The 9-byte encoding carried by a `Begin` frame: kind, then a little-endian argument.
    pub fn encode(&self) -> [u8; 9] {
        let (kind, arg) = match self {
            Collective::AllReduce(Op::Sum) => (1u8, 0u64),
            Collective::AllReduce(Op::Avg) => (2, 0),
            Collective::Broadcast { src } => (3, u64::from(*src)),
        };
        let mut out = [0u8; 9];
        out[0] = kind;
        out[1..].copy_from_slice(&arg.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Collective> {
        if b.len() != 9 {
            return None;
        }
        let arg = u64::from_le_bytes(b[1..9].try_into().ok()?);
        match (b[0], arg) {
            (1, 0) => Some(Collective::AllReduce(Op::Sum)),
            (2, 0) => Some(Collective::AllReduce(Op::Avg)),
            (3, src) => u32::try_from(src)
                .ok()
                .map(|src| Collective::Broadcast { src }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collective_roundtrip() {
        for c in [
            Collective::AllReduce(Op::Sum),
            Collective::AllReduce(Op::Avg),
            Collective::Broadcast { src: 7 },
        ] {
            assert_eq!(Collective::decode(&c.encode()), Some(c));
        }
        assert_eq!(Collective::decode(&[1, 1, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(Collective::decode(&[9; 9]), None);
        assert_eq!(Collective::decode(&[1]), None);
    }

    #[test]
    fn dtype_codes() {
        for d in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
            assert_eq!(Dtype::from_code(d.code()), Some(d));
            assert_eq!(d.name().parse::<Dtype>(), Ok(d));
        }
        assert_eq!(Dtype::from_code(0), None);
    }
}
