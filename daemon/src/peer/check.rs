//! Known-answer tensors for benchmarks and tests: every element is a hash of (seed, rank, index),
//! so anyone can recompute every peer's input, and so the exact expected result, in O(1) memory.

use crate::core::{Collective, Dtype, Op};
use crate::wire::dtype::round_trip;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Element `i` of rank `rank`'s input: uniform in [-1, 1) with 24 random bits, so f32 sums in
/// different orders round differently (a check that cares about order can tell).
pub fn value(seed: u64, rank: u32, i: u64) -> f32 {
    let h = splitmix64(seed ^ (u64::from(rank) << 48) ^ i.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    ((h >> 40) as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
}

/// Fills `data` with rank `rank`'s input.
pub fn fill(seed: u64, rank: u32, data: &mut [f32]) {
    for (i, x) in data.iter_mut().enumerate() {
        *x = value(seed, rank, i as u64);
    }
}

/// What element `i` must be after collective `c` on rank `rank`: inputs rounded to the wire dtype,
/// summed in f32 in rank order, divided by P for avg, rounded to the wire dtype.
pub fn expected(seed: u64, peers: u32, c: Collective, dtype: Dtype, rank: u32, i: u64) -> f32 {
    match c {
        Collective::AllReduce(op) => {
            let mut acc = round_trip(value(seed, 0, i), dtype);
            for r in 1..peers {
                acc += round_trip(value(seed, r, i), dtype);
            }
            if op == Op::Avg {
                acc /= peers as f32;
            }
            round_trip(acc, dtype)
        }
        Collective::Broadcast { src } if src == rank => value(seed, src, i),
        Collective::Broadcast { src } => round_trip(value(seed, src, i), dtype),
    }
}

/// The first element that differs from the expected result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "element {index} is {got:e}, expected {want:e} (bits {got_bits:#010x} vs {want_bits:#010x})"
)]
pub struct Mismatch {
    pub index: u64,
    pub got: f32,
    pub want: f32,
    pub got_bits: u32,
    pub want_bits: u32,
}

/// Checks every element bit for bit.
pub fn verify(
    seed: u64,
    peers: u32,
    c: Collective,
    dtype: Dtype,
    rank: u32,
    data: &[f32],
) -> Result<(), Mismatch> {
    for (i, &got) in data.iter().enumerate() {
        let want = expected(seed, peers, c, dtype, rank, i as u64);
        if got.to_bits() != want.to_bits() {
            return Err(Mismatch {
                index: i as u64,
                got,
                want,
                got_bits: got.to_bits(),
                want_bits: want.to_bits(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_spread_and_order_matters() {
        let v: Vec<f32> = (0..1000).map(|i| value(1, 0, i)).collect();
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(v.iter().any(|&x| x < -0.5) && v.iter().any(|&x| x > 0.5));
        // Somewhere in a few thousand triples, a different order rounds differently.
        let differs = (0..5000u64).any(|i| {
            let (a, b, c) = (value(1, 0, i), value(1, 1, i) * 1e-3, value(1, 2, i));
            (a + b) + c != a + (b + c)
        });
        assert!(differs);
    }

    #[test]
    fn verify_names_the_first_difference() {
        let c = Collective::AllReduce(Op::Sum);
        let mut d: Vec<f32> = (0..10)
            .map(|i| expected(3, 2, c, Dtype::F32, 0, i))
            .collect();
        assert_eq!(verify(3, 2, c, Dtype::F32, 0, &d), Ok(()));
        d[4] += 1.0;
        assert_eq!(
            verify(3, 2, c, Dtype::F32, 0, &d).map_err(|m| m.index),
            Err(4)
        );
    }
}
