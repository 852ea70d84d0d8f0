//! Which blocks of a live job the validator checks (docs/verification.md). A pure function of the
//! job's secret sample seed, so the validator and every peer pick the same blocks without talking,
//! and a miner (who never sees the seed) cannot tell a checked block from an unchecked one.

/// Parts per million: the unit of `validator.sample_rate` on the wire.
pub const PPM: u32 = 1_000_000;

/// A job's sampling: the secret seed and the rate. A seed of 0 means no sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleSpec {
    pub seed: u64,
    /// Fraction of blocks, in parts per million (at most [`PPM`]).
    pub ppm: u32,
}

/// The rate as parts per million, clamped to 0..=1.
pub fn rate_to_ppm(rate: f64) -> u32 {
    if rate.is_nan() || rate <= 0.0 {
        return 0;
    }
    (rate.min(1.0) * f64::from(PPM)).round() as u32
}

/// splitmix64's finaliser: a bijective, well-mixing 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SampleSpec {
    pub fn is_on(&self) -> bool {
        self.seed != 0 && self.ppm > 0
    }

    fn draw(&self, seq: u32, shard: u32, block: u32) -> u64 {
        let a = mix(self.seed ^ 0x6d72_7361_6d70_6c65); // "mrsample"
        let b = mix(a ^ ((u64::from(seq) << 32) | u64::from(shard)));
        mix(b ^ u64::from(block))
    }

    /// Whether block `block` of shard `shard` in operation `seq` is sampled (before the
    /// at-least-one rule of [`SampleSpec::blocks`]).
    fn picks(&self, seq: u32, shard: u32, block: u32) -> bool {
        if self.ppm >= PPM {
            return true;
        }
        // Uniform in [0, PPM): the top bits of the draw times PPM.
        let x = ((u128::from(self.draw(seq, shard, block)) * u128::from(PPM)) >> 64) as u32;
        x < self.ppm
    }

    /// The sampled blocks of shard `shard` (of `blocks` blocks) in operation `seq`, ascending.
    /// Each block is picked independently at the rate; operation 0 always has at least one per
    /// shard, so every shard of every job that ran an operation is checked at least once.
    pub fn blocks(&self, seq: u32, shard: u32, blocks: u32) -> Vec<u32> {
        if !self.is_on() || blocks == 0 {
            return Vec::new();
        }
        let mut out: Vec<u32> = (0..blocks).filter(|&b| self.picks(seq, shard, b)).collect();
        if out.is_empty() && seq == 0 {
            let forced = mix(self.seed ^ mix(u64::from(shard) ^ 0xf0_4ced)) % u64::from(blocks);
            out.push(forced as u32);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_blocks_and_off_means_none() {
        let s = SampleSpec {
            seed: 42,
            ppm: 100_000,
        };
        assert_eq!(s.blocks(3, 1, 500), s.blocks(3, 1, 500));
        assert_ne!(s.blocks(3, 1, 500), s.blocks(4, 1, 500), "ops differ");
        assert_ne!(s.blocks(3, 1, 500), s.blocks(3, 2, 500), "shards differ");
        let other = SampleSpec { seed: 43, ..s };
        assert_ne!(s.blocks(3, 1, 500), other.blocks(3, 1, 500), "seeds differ");
        assert!(SampleSpec { seed: 0, ppm: PPM }.blocks(0, 0, 10).is_empty());
        assert!(SampleSpec { seed: 1, ppm: 0 }.blocks(0, 0, 10).is_empty());
        assert_eq!(
            SampleSpec { seed: 1, ppm: PPM }.blocks(5, 0, 4),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn rate_is_close_to_asked() {
        let s = SampleSpec {
            seed: 7,
            ppm: rate_to_ppm(0.01),
        };
        let n: usize = (0..200).map(|seq| s.blocks(seq, 0, 1000).len()).sum();
        // 200 000 blocks at 1 %: 2000 expected, sd ~44.
        assert!((1800..2200).contains(&n), "{n}");
    }

    #[test]
    fn at_least_one_block_per_shard_in_the_first_operation() {
        let s = SampleSpec { seed: 9, ppm: 1 };
        for shard in 0..50 {
            let b = s.blocks(0, shard, 3);
            assert_eq!(b.len(), 1, "shard {shard}: {b:?}");
            assert!(b[0] < 3);
        }
        // Later operations follow the rate only.
        let later: usize = (1..50).map(|seq| s.blocks(seq, 0, 3).len()).sum();
        assert_eq!(later, 0);
    }

    #[test]
    fn rates_convert() {
        assert_eq!(rate_to_ppm(0.01), 10_000);
        assert_eq!(rate_to_ppm(2.0), PPM);
        assert_eq!(rate_to_ppm(-1.0), 0);
        assert_eq!(rate_to_ppm(f64::NAN), 0);
    }
}
