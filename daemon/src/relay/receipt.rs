//! What the relay acknowledges at the end of each shard of each operation (see
//! [`crate::wire::receipt`] and docs/verification.md): the checksums of the blocks each rank sent
//! and of the blocks sent to it, kept while the operation runs (8 bytes per block per rank) and
//! turned into one receipt per rank when it ends. Fed under the job's lock, in the order the
//! machine accepts and emits blocks, so a receipt always covers exactly its operation.

use crate::wire::receipt::{ShardReceipt, digest};

/// One operation's checksums, by rank.
#[derive(Debug, Default)]
pub struct Ledger {
    seq: u32,
    /// The operation's collective as begun (`Collective::encode`).
    collective: Vec<u8>,
    inputs: Vec<Vec<u64>>,
    outputs: Vec<Vec<u64>>,
}

impl Ledger {
    fn at(&mut self, seq: u32, p: usize) {
        if self.seq != seq || self.inputs.len() != p {
            self.seq = seq;
            self.collective.clear();
            self.inputs = vec![Vec::new(); p];
            self.outputs = vec![Vec::new(); p];
        }
    }

    /// Operation `seq` was begun as `collective` (encoded).
    pub fn begin(&mut self, p: usize, seq: u32, collective: &[u8]) {
        self.at(seq, p);
        if self.collective.is_empty() {
            self.collective = collective.to_vec();
        }
    }

    /// The relay accepted a data block with this checksum from `rank` in operation `seq`.
    pub fn input(&mut self, p: usize, seq: u32, rank: u32, checksum: u64) {
        self.at(seq, p);
        if let Some(v) = self.inputs.get_mut(rank as usize) {
            v.push(checksum);
        }
    }

    /// The relay handed a result block with this checksum to every rank but `skip`.
    pub fn output(&mut self, p: usize, seq: u32, skip: Option<u32>, checksum: u64) {
        self.at(seq, p);
        for (r, v) in self.outputs.iter_mut().enumerate() {
            if skip != Some(r as u32) {
                v.push(checksum);
            }
        }
    }

    /// Operation `seq` ended: the receipt of every rank (by rank), unsigned; the ledger is
    /// emptied for the next operation.
    pub fn finish(
        &mut self,
        p: usize,
        job: u64,
        seq: u32,
        shard: u32,
        blocks: u32,
    ) -> Vec<ShardReceipt> {
        self.at(seq, p);
        let inputs = std::mem::take(&mut self.inputs);
        let outputs = std::mem::take(&mut self.outputs);
        let collective = std::mem::take(&mut self.collective);
        inputs
            .iter()
            .zip(&outputs)
            .enumerate()
            .map(|(rank, (i, o))| ShardReceipt {
                job_id: job,
                seq,
                shard,
                rank: rank as u32,
                blocks,
                input_digest: digest(i),
                output_digest: digest(o),
                miner: String::new(),
                inputs: i.len() as u32,
                outputs: o.len() as u32,
                collective: collective.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_cover_their_operation_only() {
        let mut l = Ledger::default();
        l.begin(2, 0, &[1]);
        l.input(2, 0, 0, 10);
        l.input(2, 0, 1, 20);
        l.output(2, 0, None, 30);
        l.output(2, 0, Some(1), 40);
        let r = l.finish(2, 9, 0, 1, 1);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].input_digest, digest(&[10]));
        assert_eq!(r[0].output_digest, digest(&[30, 40]));
        assert_eq!(r[1].output_digest, digest(&[30]));
        assert_eq!((r[1].inputs, r[1].outputs, r[1].rank), (1, 1, 1));
        assert_eq!(r[1].collective, vec![1]);
        // The next operation starts empty.
        l.output(2, 1, None, 50);
        let r = l.finish(2, 9, 1, 1, 1);
        assert_eq!(r[0].input_digest, digest(&[]));
        assert_eq!(r[0].output_digest, digest(&[50]));
        assert!(r[0].collective.is_empty());
    }
}
