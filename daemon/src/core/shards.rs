//! How a tensor is cut: into one shard per miner (sized by the miners' weights), and each shard
//! into blocks. Peers and miners compute the same layout from the same ticket.
//!
//! No padding reaches the wire: the last block of a shard is simply shorter.

use std::ops::Range;

/// Why a layout cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("a job needs at least one miner")]
    NoMiners,
    #[error("miner weights must not all be zero")]
    ZeroWeights,
    #[error("block size must be at least one element")]
    ZeroBlock,
    #[error(
        "the tensor has {elements} elements: {blocks} blocks of {block_elems} is more than a frame can number"
    )]
    TooManyBlocks {
        elements: u64,
        block_elems: u64,
        blocks: u64,
    },
}

/// The element ranges of every shard, and the block size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    shards: Vec<Range<u64>>,
    block_elems: u64,
}

impl Layout {
    /// Shard sizes proportional to `weights` (largest remainder, ties to the lower index),
    /// so a miner with twice the bandwidth gets twice the data.
    pub fn new(elements: u64, weights: &[u32], block_elems: u64) -> Result<Layout, LayoutError> {
        if weights.is_empty() {
            return Err(LayoutError::NoMiners);
        }
        if block_elems == 0 {
            return Err(LayoutError::ZeroBlock);
        }
        let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        if total == 0 {
            return Err(LayoutError::ZeroWeights);
        }
        let mut sizes: Vec<u64> = Vec::with_capacity(weights.len());
        let mut rems: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
        for (i, &w) in weights.iter().enumerate() {
            let exact = u128::from(elements) * u128::from(w);
            // Fits: exact / total <= elements.
            sizes.push((exact / total) as u64);
            rems.push((exact % total, i));
        }
        let mut left = elements - sizes.iter().sum::<u64>();
        rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in rems {
            if left == 0 {
                break;
            }
            sizes[i] += 1;
            left -= 1;
        }
        let mut shards = Vec::with_capacity(sizes.len());
        let mut start = 0;
        for s in sizes {
            shards.push(start..start + s);
            start += s;
        }
        let layout = Layout {
            shards,
            block_elems,
        };
        for i in 0..layout.shards.len() {
            let blocks = layout.shards[i].end.saturating_sub(layout.shards[i].start);
            let blocks = blocks.div_ceil(block_elems);
            if blocks > u64::from(u32::MAX) {
                return Err(LayoutError::TooManyBlocks {
                    elements,
                    block_elems,
                    blocks,
                });
            }
        }
        Ok(layout)
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn block_elems(&self) -> u64 {
        self.block_elems
    }

    /// Element range of shard `i` within the tensor.
    pub fn shard(&self, i: usize) -> Range<u64> {
        self.shards[i].clone()
    }

    /// The plan of one shard: its length and blocks.
    pub fn shard_plan(&self, i: usize) -> ShardPlan {
        let r = &self.shards[i];
        ShardPlan {
            elements: r.end - r.start,
            block_elems: self.block_elems,
        }
    }
}

/// One shard cut into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardPlan {
    pub elements: u64,
    pub block_elems: u64,
}

impl ShardPlan {
    pub fn blocks(&self) -> u32 {
        // Layout::new checked that this fits.
        u32::try_from(self.elements.div_ceil(self.block_elems)).unwrap_or(u32::MAX)
    }

    /// Element range of block `b` within the shard.
    pub fn block(&self, b: u32) -> Range<u64> {
        let start = u64::from(b) * self.block_elems;
        start.min(self.elements)..(start + self.block_elems).min(self.elements)
    }

    /// Elements in block `b` (0 past the end).
    pub fn block_len(&self, b: u32) -> usize {
        let r = self.block(b);
        (r.end - r.start) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_split_evenly_and_cover_everything() {
        let l = Layout::new(10, &[1, 1, 1], 2).expect("layout");
        assert_eq!(l.shard(0), 0..4);
        assert_eq!(l.shard(1), 4..7);
        assert_eq!(l.shard(2), 7..10);
        let p = l.shard_plan(0);
        assert_eq!(p.blocks(), 2);
        assert_eq!(p.block(1), 2..4);
        let p = l.shard_plan(1);
        assert_eq!(p.blocks(), 2);
        assert_eq!(p.block_len(1), 1);
    }

    #[test]
    fn weights_are_proportional() {
        let l = Layout::new(1000, &[1, 3], 64).expect("layout");
        assert_eq!(l.shard(0), 0..250);
        assert_eq!(l.shard(1), 250..1000);
    }

    #[test]
    fn tiny_tensors_leave_empty_shards() {
        let l = Layout::new(1, &[1, 1, 1], 4).expect("layout");
        let total: u64 = (0..3).map(|i| l.shard_plan(i).elements).sum();
        assert_eq!(total, 1);
        assert_eq!(l.shard_plan(2).blocks(), 0);
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert_eq!(Layout::new(1, &[], 4), Err(LayoutError::NoMiners));
        assert_eq!(Layout::new(1, &[0, 0], 4), Err(LayoutError::ZeroWeights));
        assert_eq!(Layout::new(1, &[1], 0), Err(LayoutError::ZeroBlock));
        assert!(matches!(
            Layout::new(u64::MAX, &[1], 1),
            Err(LayoutError::TooManyBlocks { .. })
        ));
    }
}
