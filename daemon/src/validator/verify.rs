//! Live-job verification on the validator (docs/verification.md): the secret sample of each job,
//! the peers' evidence held until every peer's part of a sampled block is in, the recomputation
//! of that block (the relay's own fold, in rank order), and the verdicts, kept in SQLite.
//!
//! A sampled block is judged once: `ok`; `miner` (the miner's signed result differs from the
//! reduction of the inputs it signed for: its score for the window goes to 0); or `peer` (a
//! peer's reported block does not have the checksum the miner signed for: the peer is flagged,
//! the miner is not, so a peer cannot frame a miner).

use super::store::{Store, StoreError};
use crate::core::sample::SampleSpec;
use crate::core::{Collective, Dtype, Op};
use crate::wire::checksum;
use crate::wire::receipt::{self, ReceiptError, ShardReceipt};
use bytes::Bytes;
use mr_proto::v1::ReportSamplesRequest;
use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job_samples (
  job_id INTEGER PRIMARY KEY, seed INTEGER NOT NULL, ppm INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sample_checks (
  job_id INTEGER NOT NULL, seq INTEGER NOT NULL, shard INTEGER NOT NULL, block INTEGER NOT NULL,
  verdict TEXT NOT NULL, culprit TEXT NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, seq, shard, block));
CREATE INDEX IF NOT EXISTS sample_checks_at ON sample_checks(at_ms);
";

/// Samples checked and failed since start, for the metrics.
pub static SAMPLES_CHECKED: AtomicU64 = AtomicU64::new(0);
pub static SAMPLES_FAILED: AtomicU64 = AtomicU64::new(0);

/// How a sampled block was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The miner's result was wrong.
    Miner,
    /// A peer's report contradicted the miner's signed receipt.
    Peer,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Miner => "miner",
            Verdict::Peer => "peer",
        }
    }
}

/// One judged block.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub job: u64,
    pub seq: u32,
    pub shard: u32,
    pub block: u32,
    pub verdict: Verdict,
    /// The miner or peer at fault (hotkey), or the miner for `Ok`.
    pub culprit: String,
    pub reason: String,
}

/// A job's verification so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobVerdict {
    pub checked: u64,
    pub failed: u64,
    /// "" (nothing checked), "ok", "corrupted: ..." or "peer flagged: ...".
    pub verdict: String,
}

impl Store {
    pub fn put_sample_spec(&self, job: u64, s: SampleSpec) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO job_samples VALUES (?1,?2,?3)",
            params![job as i64, s.seed as i64, s.ppm],
        )?;
        Ok(())
    }

    pub fn sample_spec(&self, job: u64) -> Result<Option<SampleSpec>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT seed, ppm FROM job_samples WHERE job_id = ?1",
                params![job as i64],
                |r| {
                    Ok(SampleSpec {
                        seed: r.get::<_, i64>(0)? as u64,
                        ppm: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records a judged block; a block already judged keeps its first verdict.
    pub fn put_check(&self, c: &Check, at_ms: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO sample_checks VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                c.job as i64,
                c.seq,
                c.shard,
                c.block,
                c.verdict.as_str(),
                c.culprit,
                c.reason,
                at_ms as i64
            ],
        )?;
        Ok(n == 1)
    }

    /// Samples checked and failed in `job`, and its verdict (the first failure, miners first).
    pub fn job_verdict(&self, job: u64) -> Result<JobVerdict, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT verdict, reason FROM sample_checks WHERE job_id = ?1
             ORDER BY (verdict = 'miner') DESC, seq, shard, block",
        )?;
        let rows = st.query_map(params![job as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut v = JobVerdict::default();
        for row in rows {
            let (verdict, reason) = row?;
            v.checked += 1;
            if verdict != "ok" {
                v.failed += 1;
                if v.verdict.is_empty() {
                    v.verdict = match verdict.as_str() {
                        "miner" => format!("corrupted: {reason}"),
                        _ => format!("peer flagged: {reason}"),
                    };
                }
            }
        }
        if v.checked > 0 && v.verdict.is_empty() {
            v.verdict = "ok".into();
        }
        Ok(v)
    }

    /// Miners caught returning a wrong result in a live job since `since_ms`: (miner hotkey,
    /// job id, reason), one per job and miner.
    pub fn corruptions_since(
        &self,
        since_ms: u64,
    ) -> Result<Vec<(String, u64, String)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT culprit, job_id, MIN(reason) FROM sample_checks
             WHERE verdict = 'miner' AND at_ms >= ?1 GROUP BY job_id, culprit ORDER BY job_id",
        )?;
        let rows = st.query_map(params![since_ms as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, String>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every judged block of `job` that failed (for tests and the console).
    pub fn failed_checks(&self, job: u64) -> Result<Vec<Check>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT seq, shard, block, verdict, culprit, reason FROM sample_checks
             WHERE job_id = ?1 AND verdict != 'ok' ORDER BY seq, shard, block",
        )?;
        let rows = st.query_map(params![job as i64], |r| {
            let verdict = match r.get::<_, String>(3)?.as_str() {
                "miner" => Verdict::Miner,
                "peer" => Verdict::Peer,
                _ => Verdict::Ok,
            };
            Ok(Check {
                job,
                seq: r.get(0)?,
                shard: r.get(1)?,
                block: r.get(2)?,
                verdict,
                culprit: r.get(4)?,
                reason: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Why a report is refused (nothing of it is kept).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Invalid(String),
    #[error("receipt: {0}")]
    Receipt(#[from] ReceiptError),
    #[error("job {0} is not sampled")]
    NotSampled(u64),
    #[error("too much evidence pending ({0} bytes); try again later")]
    Busy(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the validator knows of the job a report is about.
#[derive(Debug, Clone)]
pub struct JobFacts {
    pub job: u64,
    pub peers: Vec<String>,
    /// Every miner holding a reservation in the job (spares included).
    pub miners: Vec<String>,
    pub dtype: Dtype,
}

type BlockKey = (u64, u32, u32, u32);

/// A block's input or output as its pieces arrive.
#[derive(Debug, Default, Clone)]
struct Assembly {
    data: Vec<u8>,
    /// Pieces in, by offset (a repeated piece is ignored).
    pieces: std::collections::BTreeMap<u32, u32>,
    have: usize,
}

impl Assembly {
    /// Adds a piece; true when the block is complete.
    fn add(&mut self, offset: u32, total: u32, bytes: &[u8]) -> Result<bool, String> {
        if self.data.is_empty() {
            self.data = vec![0u8; total as usize];
        }
        if self.data.len() != total as usize {
            return Err(format!(
                "pieces of one block disagree on its size ({} and {total} bytes)",
                self.data.len()
            ));
        }
        let end = offset as usize + bytes.len();
        if end > self.data.len() {
            return Err(format!(
                "a piece ends at byte {end} of a {total}-byte block"
            ));
        }
        if self.pieces.contains_key(&offset) {
            return Ok(self.done());
        }
        if let Some((&o, &n)) = self.pieces.range(..offset).next_back()
            && o as usize + n as usize > offset as usize
        {
            return Err("overlapping pieces".into());
        }
        if let Some((&o, _)) = self.pieces.range(offset..).next()
            && (o as usize) < end
        {
            return Err("overlapping pieces".into());
        }
        self.data[offset as usize..end].copy_from_slice(bytes);
        self.pieces.insert(offset, bytes.len() as u32);
        self.have += bytes.len();
        Ok(self.done())
    }

    fn done(&self) -> bool {
        !self.data.is_empty() && self.have == self.data.len()
    }
}

#[derive(Debug, Default, Clone)]
struct Part {
    input: Assembly,
    output: Assembly,
}

#[derive(Debug)]
struct Pending {
    since: Instant,
    collective: Collective,
    miner: String,
    parts: Vec<Part>,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.input.data.len() + p.output.data.len())
            .sum()
    }

    fn complete(&self) -> bool {
        let c = self.collective;
        self.parts.iter().enumerate().all(|(r, p)| {
            let r = r as u32;
            (!c.sends(r) || p.input.done()) && (!c.receives(r) || p.output.done())
        })
    }
}

/// Largest sampled block accepted (the relay's largest block).
const MAX_BLOCK: u32 = 64 << 20;

/// Evidence waiting for the other peers, in memory (bounded; lost on restart, which only means
/// those blocks go unchecked).
pub struct Verifier {
    pending: Mutex<HashMap<BlockKey, Pending>>,
    /// Most bytes of evidence held at once.
    pub max_bytes: usize,
    /// Evidence older than this is dropped unjudged (a peer that never reported).
    pub max_age: Duration,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            pending: Mutex::new(HashMap::new()),
            max_bytes: 512 << 20,
            max_age: Duration::from_secs(600),
        }
    }
}

fn invalid(s: String) -> ReportError {
    ReportError::Invalid(s)
}

impl Verifier {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BlockKey, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sampled blocks of `job` reported by some peers and not yet judged.
    pub fn pending(&self, job: u64) -> u64 {
        self.lock().keys().filter(|k| k.0 == job).count() as u64
    }

    /// Takes one peer's report: checks the receipt and each sample against it, holds the
    /// samples, and judges every block whose evidence is complete. Returns the samples accepted
    /// and the blocks judged.
    pub fn report(
        &self,
        store: &Store,
        job: &JobFacts,
        caller: &str,
        r: &ReportSamplesRequest,
        now_ms: u64,
    ) -> Result<(u32, Vec<Check>), ReportError> {
        let spec = store
            .sample_spec(job.job)?
            .filter(SampleSpec::is_on)
            .ok_or(ReportError::NotSampled(job.job))?;
        let signed = r
            .receipt
            .as_ref()
            .ok_or_else(|| invalid("no receipt".into()))?;
        let rc: ShardReceipt = receipt::verify(signed)?;
        if rc.job_id != job.job {
            return Err(invalid(format!(
                "receipt of job {}, not {}",
                rc.job_id, job.job
            )));
        }
        if !job.miners.iter().any(|m| m == &rc.miner) {
            return Err(invalid(format!(
                "{} is not a miner of job {}",
                rc.miner, job.job
            )));
        }
        let rank = rc.rank;
        if job.peers.get(rank as usize).map(String::as_str) != Some(caller) {
            return Err(invalid(format!(
                "{caller} is not rank {rank} of job {}",
                job.job
            )));
        }
        receipt::covers(&rc, &r.input_checksums, &r.output_checksums)?;
        let collective = Collective::decode(&rc.collective)
            .ok_or_else(|| invalid("the receipt names no collective".into()))?;
        let picks = spec.blocks(rc.seq, rc.shard, rc.blocks);
        let p = job.peers.len();
        let mut judged = Vec::new();
        let mut accepted = 0u32;
        {
            let mut pending = self.lock();
            pending.retain(|_, v| v.since.elapsed() < self.max_age);
            let held: usize = pending.values().map(Pending::bytes).sum();
            let incoming: usize = r.samples.iter().map(|s| s.total as usize).sum();
            if held + incoming > self.max_bytes {
                return Err(ReportError::Busy(held));
            }
            for s in &r.samples {
                if picks.binary_search(&s.block).is_err() {
                    return Err(invalid(format!(
                        "block {} of shard {} op {} is not sampled",
                        s.block, rc.shard, rc.seq
                    )));
                }
            }
            for s in &r.samples {
                let key = (job.job, rc.seq, rc.shard, s.block);
                let b = s.block as usize;
                let (is_input, bytes) = match (s.input.is_empty(), s.output.is_empty()) {
                    (false, true) => (true, &s.input),
                    (true, false) => (false, &s.output),
                    _ => {
                        return Err(invalid(format!(
                            "a piece of block {} must carry its input or its output, not both or neither",
                            s.block
                        )));
                    }
                };
                if s.total > MAX_BLOCK {
                    return Err(invalid(format!("block of {} bytes", s.total)));
                }
                let signed = if is_input {
                    r.input_checksums.get(b)
                } else {
                    r.output_checksums.get(b)
                };
                let Some(&signed) = signed else {
                    return Err(invalid(format!(
                        "the receipt covers no {} of block {}",
                        if is_input { "input" } else { "output" },
                        s.block
                    )));
                };
                let e = pending.entry(key).or_insert_with(|| Pending {
                    since: Instant::now(),
                    collective,
                    miner: rc.miner.clone(),
                    parts: vec![Part::default(); p],
                });
                let part = &mut e.parts[rank as usize];
                let asm = if is_input {
                    &mut part.input
                } else {
                    &mut part.output
                };
                let done = asm.add(s.offset, s.total, bytes).map_err(invalid)?;
                accepted += 1;
                // A complete part must be the block the miner signed for.
                if done && checksum(&asm.data) != signed {
                    pending.remove(&key);
                    let what = if is_input { "input" } else { "output" };
                    judged.push(Check {
                        job: job.job,
                        seq: rc.seq,
                        shard: rc.shard,
                        block: s.block,
                        verdict: Verdict::Peer,
                        culprit: caller.to_string(),
                        reason: format!(
                            "peer {caller} (rank {rank}) reported an {what} for job {} op {} shard {} block {} that the miner {} never signed for",
                            job.job, rc.seq, rc.shard, s.block, rc.miner
                        ),
                    });
                    continue;
                }
                if e.complete()
                    && let Some(done) = pending.remove(&key)
                {
                    judged.push(judge(key, done, job.dtype, &job.peers));
                }
            }
        }
        let mut fresh = Vec::new();
        for c in judged {
            if store.put_check(&c, now_ms)? {
                SAMPLES_CHECKED.fetch_add(1, Ordering::Relaxed);
                if c.verdict != Verdict::Ok {
                    SAMPLES_FAILED.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(job = c.job, culprit = %c.culprit, "live-job check failed: {}", c.reason);
                }
                fresh.push(c);
            }
        }
        Ok((accepted, fresh))
    }
}

/// Recomputes a block from every peer's input, as the relay does, and compares it with every
/// result the miner sent.
fn judge(key: BlockKey, b: Pending, dtype: Dtype, peers: &[String]) -> Check {
    let (job, seq, shard, block) = key;
    let want: Option<Bytes> = match b.collective {
        Collective::AllReduce(op) => {
            let inputs: Vec<Bytes> = b
                .parts
                .iter()
                .map(|p| Bytes::from(p.input.data.clone()))
                .collect();
            if inputs.windows(2).any(|w| w[0].len() != w[1].len()) {
                None
            } else {
                Some(crate::relay::machine::reduce_block(&inputs, op, dtype))
            }
        }
        Collective::Broadcast { src } => b
            .parts
            .get(src as usize)
            .map(|p| Bytes::from(p.input.data.clone())),
    };
    let mut check = Check {
        job,
        seq,
        shard,
        block,
        verdict: Verdict::Ok,
        culprit: b.miner.clone(),
        reason: String::new(),
    };
    let Some(want) = want else {
        // The inputs the miner signed for cannot even be added: its acknowledgement is false.
        check.verdict = Verdict::Miner;
        check.reason = format!(
            "miner {} shard {shard} op {seq} block {block} of job {job}: acknowledged inputs of different sizes",
            b.miner
        );
        return check;
    };
    for (r, p) in b.parts.iter().enumerate() {
        if !b.collective.receives(r as u32) {
            continue;
        }
        let got = &p.output.data;
        if got.as_slice() != want.as_ref() {
            let at = got
                .iter()
                .zip(want.iter())
                .position(|(x, y)| x != y)
                .unwrap_or(got.len().min(want.len()));
            check.verdict = Verdict::Miner;
            check.reason = format!(
                "miner {} shard {shard} op {seq} block {block} of job {job}: the result sent to rank {r} ({}) differs from the recomputed {} at byte {at}",
                b.miner,
                peers.get(r).map(String::as_str).unwrap_or("?"),
                match b.collective {
                    Collective::AllReduce(Op::Sum) => "sum",
                    Collective::AllReduce(Op::Avg) => "average",
                    Collective::Broadcast { .. } => "broadcast",
                }
            );
            return check;
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::PPM;
    use crate::wallet::Keypair;
    use crate::wire::dtype::f32_bytes;
    use crate::wire::receipt::{digest, seal};
    use mr_proto::v1::SampleBlock;

    const JOB: u64 = 77;

    struct World {
        _dir: tempfile::TempDir,
        store: Store,
        miner: Keypair,
        peers: Vec<Keypair>,
        facts: JobFacts,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("v.sqlite")).expect("store");
        store
            .put_sample_spec(JOB, SampleSpec { seed: 5, ppm: PPM })
            .expect("spec");
        let miner = Keypair::from_mini_secret(&[1; 32]).expect("key");
        let peers: Vec<Keypair> = (2..4u8)
            .map(|i| Keypair::from_mini_secret(&[i; 32]).expect("key"))
            .collect();
        let facts = JobFacts {
            job: JOB,
            peers: peers.iter().map(|k| k.ss58_address().to_string()).collect(),
            miners: vec![miner.ss58_address().to_string()],
            dtype: Dtype::F32,
        };
        World {
            _dir: dir,
            store,
            miner,
            peers,
            facts,
        }
    }

    /// Rank `rank`'s report of a one-block shard: it sent `input`, received `output`; the miner
    /// signed for `signed_input` (what it really got).
    fn report(
        w: &World,
        rank: u32,
        signed_input: &[f32],
        input: &[f32],
        output: &[f32],
    ) -> ReportSamplesRequest {
        let (i, o) = (
            vec![checksum(f32_bytes(signed_input))],
            vec![checksum(f32_bytes(output))],
        );
        let r = ShardReceipt {
            job_id: JOB,
            seq: 0,
            shard: 0,
            rank,
            blocks: 1,
            input_digest: digest(&i),
            output_digest: digest(&o),
            miner: String::new(),
            inputs: 1,
            outputs: 1,
            collective: Collective::AllReduce(Op::Sum).encode().to_vec(),
        };
        let piece = |input: bool, bytes: &[u8]| SampleBlock {
            block: 0,
            input: if input { bytes.to_vec() } else { Vec::new() },
            output: if input { Vec::new() } else { bytes.to_vec() },
            offset: 0,
            total: bytes.len() as u32,
        };
        ReportSamplesRequest {
            version: None,
            job_id: JOB,
            receipt: Some(seal(r, Some(&w.miner)).expect("seal")),
            input_checksums: i,
            output_checksums: o,
            samples: vec![
                piece(true, f32_bytes(input)),
                piece(false, f32_bytes(output)),
            ],
        }
    }

    fn send(w: &World, v: &Verifier, rank: u32, r: &ReportSamplesRequest) -> Vec<Check> {
        let who = w.peers[rank as usize].ss58_address().to_string();
        v.report(&w.store, &w.facts, &who, r, 1)
            .expect("accepted")
            .1
    }

    #[test]
    fn an_honest_block_passes_and_a_wrong_result_names_the_miner() {
        let w = world();
        let v = Verifier::default();
        let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
        let good = [4.0f32, 6.0];
        assert!(send(&w, &v, 0, &report(&w, 0, &a, &a, &good)).is_empty());
        assert_eq!(v.pending(JOB), 1);
        let done = send(&w, &v, 1, &report(&w, 1, &b, &b, &good));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].verdict, Verdict::Ok, "{done:?}");
        assert_eq!(v.pending(JOB), 0);
        assert_eq!(w.store.job_verdict(JOB).expect("v").verdict, "ok");

        // Another operation's block, summed wrong by the miner.
        let w = world();
        let v = Verifier::default();
        let bad = [4.0f32, 7.0];
        send(&w, &v, 0, &report(&w, 0, &a, &a, &bad));
        let done = send(&w, &v, 1, &report(&w, 1, &b, &b, &bad));
        assert_eq!(done[0].verdict, Verdict::Miner, "{done:?}");
        assert_eq!(done[0].culprit, w.miner.ss58_address());
        assert!(done[0].reason.contains("block 0"), "{}", done[0].reason);
        let jv = w.store.job_verdict(JOB).expect("v");
        assert!(jv.verdict.starts_with("corrupted: miner"), "{jv:?}");
        assert_eq!(w.store.corruptions_since(0).expect("c").len(), 1);
    }

    #[test]
    fn a_fabricated_input_flags_the_peer_not_the_miner() {
        let w = world();
        let v = Verifier::default();
        let (a, b) = ([1.0f32, 2.0], [3.0f32, 4.0]);
        let good = [4.0f32, 6.0];
        // Rank 0 sent `a` but claims it sent something else: the result looks wrong for it.
        let lie = report(&w, 0, &a, &[1.0, 3.0], &good);
        let done = send(&w, &v, 0, &lie);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].verdict, Verdict::Peer);
        assert_eq!(done[0].culprit, w.peers[0].ss58_address());
        send(&w, &v, 1, &report(&w, 1, &b, &b, &good));
        assert!(w.store.corruptions_since(0).expect("c").is_empty());
        assert!(
            w.store
                .job_verdict(JOB)
                .expect("v")
                .verdict
                .starts_with("peer flagged")
        );
    }

    #[test]
    fn bad_reports_are_refused_whole() {
        let w = world();
        let v = Verifier::default();
        let a = [1.0f32, 2.0];
        let who0 = w.peers[0].ss58_address().to_string();
        // Rank 0's report sent by rank 1.
        let r = report(&w, 0, &a, &a, &a);
        let who1 = w.peers[1].ss58_address().to_string();
        assert!(v.report(&w.store, &w.facts, &who1, &r, 1).is_err());
        // Checksum lists that are not the ones signed.
        let mut r = report(&w, 0, &a, &a, &a);
        r.input_checksums[0] ^= 1;
        assert!(matches!(
            v.report(&w.store, &w.facts, &who0, &r, 1),
            Err(ReportError::Receipt(_))
        ));
        // An unsigned receipt.
        let mut r = report(&w, 0, &a, &a, &a);
        let mut body = receipt::open(r.receipt.as_ref().expect("r")).expect("open");
        body.miner.clear();
        r.receipt = Some(seal(body, None).expect("seal"));
        assert!(v.report(&w.store, &w.facts, &who0, &r, 1).is_err());
        // A receipt by someone who is not a miner of the job.
        let mut r = report(&w, 0, &a, &a, &a);
        let body = receipt::open(r.receipt.as_ref().expect("r")).expect("open");
        r.receipt = Some(seal(body, Some(&w.peers[1])).expect("seal"));
        assert!(v.report(&w.store, &w.facts, &who0, &r, 1).is_err());
        assert_eq!(v.pending(JOB), 0);
        assert_eq!(w.store.job_verdict(JOB).expect("v").checked, 0);
    }

    #[test]
    fn pieces_assemble_in_any_order_and_overlaps_are_refused() {
        let mut a = Assembly::default();
        assert_eq!(a.add(4, 8, &[5, 6, 7, 8]), Ok(false));
        assert_eq!(
            a.add(4, 8, &[5, 6, 7, 8]),
            Ok(false),
            "a repeat changes nothing"
        );
        assert!(a.add(2, 8, &[0, 0, 0]).is_err());
        assert!(a.add(6, 8, &[0, 0, 0]).is_err(), "past the end");
        assert_eq!(a.add(0, 8, &[1, 2, 3, 4]), Ok(true));
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(
            Assembly::default()
                .add(0, 4, &[1, 2, 3, 4])
                .expect("one piece")
        );
        let mut b = Assembly::default();
        b.add(0, 4, &[1, 2]).expect("piece");
        assert!(b.add(0, 8, &[1]).is_err(), "sizes disagree");
    }
}
