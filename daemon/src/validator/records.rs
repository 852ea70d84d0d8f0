//! The scoring tables of the validator's SQLite store: benchmarks (assigned, reported, expired,
//! refused), scoring rounds with every miner's parts and EMA, the current EMA per hotkey, weight
//! sets (ok or failed, with the error) and a pending commit-reveal.
//!
//! A round (its scores and the new EMAs) is one transaction; its weight set is another, written
//! once the chain answered. A kill -9 between the two leaves a round without a weight set, which
//! the weight loop sets on restart without touching the EMA again: the state after a restart is
//! the state before the kill.

use super::store::{Store, StoreError};
use crate::chain::PendingReveal;
use rusqlite::{OptionalExtension, params};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS benchmarks (
  benchmark_id INTEGER PRIMARY KEY, bot TEXT NOT NULL, miner_uid INTEGER NOT NULL,
  miner_hotkey TEXT NOT NULL, state INTEGER NOT NULL, outcome INTEGER NOT NULL, reason TEXT NOT NULL,
  bytes INTEGER NOT NULL, peers INTEGER NOT NULL, seed INTEGER NOT NULL, checked_elements INTEGER NOT NULL,
  upload REAL NOT NULL, download REAL NOT NULL, broadcast REAL NOT NULL, latency_ms REAL NOT NULL,
  all_reduce_s REAL NOT NULL, broadcast_s REAL NOT NULL, assigned_at_ms INTEGER NOT NULL,
  report_by_ms INTEGER NOT NULL, reported_at_ms INTEGER NOT NULL, score REAL NOT NULL);
CREATE INDEX IF NOT EXISTS benchmarks_at ON benchmarks(assigned_at_ms);
CREATE INDEX IF NOT EXISTS benchmarks_state ON benchmarks(state);
CREATE TABLE IF NOT EXISTS rounds (
  round_id INTEGER PRIMARY KEY, block INTEGER NOT NULL, at_ms INTEGER NOT NULL,
  uids TEXT NOT NULL, weights TEXT NOT NULL, error TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
  round_id INTEGER NOT NULL, hotkey TEXT NOT NULL, uid INTEGER NOT NULL, ip TEXT NOT NULL,
  upload REAL NOT NULL, download REAL NOT NULL, latency_ms REAL NOT NULL, success_rate REAL NOT NULL,
  capacity INTEGER NOT NULL, benchmarks INTEGER NOT NULL, shared_ip INTEGER NOT NULL,
  round REAL NOT NULL, ema REAL NOT NULL, weight REAL NOT NULL, weight_u16 INTEGER NOT NULL,
  flags TEXT NOT NULL, PRIMARY KEY (round_id, hotkey));
CREATE TABLE IF NOT EXISTS ema (
  hotkey TEXT PRIMARY KEY, uid INTEGER NOT NULL, ema REAL NOT NULL, round_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS weight_sets (
  id INTEGER PRIMARY KEY AUTOINCREMENT, round_id INTEGER NOT NULL, block INTEGER NOT NULL,
  at_ms INTEGER NOT NULL, ok INTEGER NOT NULL, error TEXT NOT NULL, kind TEXT NOT NULL,
  uids TEXT NOT NULL, weights TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS job_failures (
  job_id INTEGER NOT NULL, miner TEXT NOT NULL, reporter TEXT NOT NULL, reason TEXT NOT NULL,
  at_ms INTEGER NOT NULL, PRIMARY KEY (job_id, miner, reporter));
CREATE INDEX IF NOT EXISTS job_failures_at ON job_failures(at_ms);
CREATE TABLE IF NOT EXISTS weight_intents (
  round_id INTEGER PRIMARY KEY, block INTEGER NOT NULL, nonce INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending_reveal (
  id INTEGER PRIMARY KEY CHECK (id = 1), round_id INTEGER NOT NULL, json TEXT NOT NULL);
";

/// Where a benchmark is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchState {
    /// Ticket issued, report outstanding.
    Assigned = 0,
    Reported = 1,
    /// No report before `report_by_ms`: a failure of the miner.
    Expired = 2,
    /// The miner refused the reservation (AcceptJob): a failure of the miner.
    Refused = 3,
}

impl BenchState {
    fn from_i32(v: i32) -> BenchState {
        match v {
            0 => BenchState::Assigned,
            1 => BenchState::Reported,
            2 => BenchState::Expired,
            _ => BenchState::Refused,
        }
    }
}

/// One benchmark as stored. `outcome` is the proto `BenchmarkOutcome` number (0 until reported).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    pub benchmark_id: u64,
    pub bot: String,
    pub miner_uid: u16,
    pub miner_hotkey: String,
    pub state: BenchState,
    pub outcome: i32,
    pub reason: String,
    pub bytes: u64,
    pub peers: u32,
    pub seed: u64,
    pub checked_elements: u64,
    pub upload: f64,
    pub download: f64,
    pub broadcast: f64,
    pub latency_ms: f64,
    pub all_reduce_s: f64,
    pub broadcast_s: f64,
    pub assigned_at_ms: u64,
    pub report_by_ms: u64,
    pub reported_at_ms: u64,
    pub score: f64,
}

/// A miner's line of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub hotkey: String,
    pub uid: u16,
    pub ip: String,
    pub upload: f64,
    pub download: f64,
    pub latency_ms: f64,
    pub success_rate: f64,
    pub capacity: u64,
    pub benchmarks: u32,
    pub shared_ip: u32,
    pub round: f64,
    pub ema: f64,
    /// Normalised weight (after the max weight cap).
    pub weight: f64,
    pub weight_u16: u16,
    pub flags: Vec<String>,
}

/// A scoring round: its block, the vector it sends, and why it sends none ("" when it does).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundRow {
    pub round_id: u64,
    pub block: u64,
    pub at_ms: u64,
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
    pub error: String,
}

/// One attempt to put weights on the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightSetRow {
    pub round_id: u64,
    pub block: u64,
    pub at_ms: u64,
    pub ok: bool,
    pub error: String,
    /// "set", "commit" or "reveal".
    pub kind: String,
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
}

/// A set_weights about to be sent, stored before it is: after a kill -9 the weight loop finds it
/// and asks the chain whether it landed before sending the round again (no duplicate, none lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightIntent {
    pub round_id: u64,
    /// The chain's block when it was first sent: an inclusion is in a later block.
    pub block: u64,
    /// The account nonce it is signed with; every resend of the round reuses it.
    pub nonce: u64,
    pub at_ms: u64,
}

fn join_u16(v: &[u16]) -> String {
    v.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

fn split_u16(s: &str) -> Vec<u16> {
    s.split(',').filter_map(|x| x.parse().ok()).collect()
}

fn split_flags(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('\n').map(str::to_string).collect()
    }
}

fn bench_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BenchRow> {
    Ok(BenchRow {
        benchmark_id: r.get::<_, i64>(0)? as u64,
        bot: r.get(1)?,
        miner_uid: r.get(2)?,
        miner_hotkey: r.get(3)?,
        state: BenchState::from_i32(r.get(4)?),
        outcome: r.get(5)?,
        reason: r.get(6)?,
        bytes: r.get::<_, i64>(7)? as u64,
        peers: r.get(8)?,
        seed: r.get::<_, i64>(9)? as u64,
        checked_elements: r.get::<_, i64>(10)? as u64,
        upload: r.get(11)?,
        download: r.get(12)?,
        broadcast: r.get(13)?,
        latency_ms: r.get(14)?,
        all_reduce_s: r.get(15)?,
        broadcast_s: r.get(16)?,
        assigned_at_ms: r.get::<_, i64>(17)? as u64,
        report_by_ms: r.get::<_, i64>(18)? as u64,
        reported_at_ms: r.get::<_, i64>(19)? as u64,
        score: r.get(20)?,
    })
}

fn score_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScoreRow> {
    let flags: String = r.get(15)?;
    Ok(ScoreRow {
        hotkey: r.get(1)?,
        uid: r.get(2)?,
        ip: r.get(3)?,
        upload: r.get(4)?,
        download: r.get(5)?,
        latency_ms: r.get(6)?,
        success_rate: r.get(7)?,
        capacity: r.get::<_, i64>(8)? as u64,
        benchmarks: r.get(9)?,
        shared_ip: r.get(10)?,
        round: r.get(11)?,
        ema: r.get(12)?,
        weight: r.get(13)?,
        weight_u16: r.get(14)?,
        flags: split_flags(&flags),
    })
}

fn round_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoundRow> {
    let (u, w): (String, String) = (r.get(3)?, r.get(4)?);
    Ok(RoundRow {
        round_id: r.get::<_, i64>(0)? as u64,
        block: r.get::<_, i64>(1)? as u64,
        at_ms: r.get::<_, i64>(2)? as u64,
        uids: split_u16(&u),
        weights: split_u16(&w),
        error: r.get(5)?,
    })
}

impl Store {
    /// Inserts or replaces a benchmark.
    /// A peer of job `job_id` says `miner` failed in it (one row per reporter: a report repeated
    /// changes nothing).
    pub fn put_job_failure(
        &self,
        job_id: u64,
        miner: &str,
        reporter: &str,
        reason: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO job_failures VALUES (?1,?2,?3,?4,?5)",
            params![job_id as i64, miner, reporter, reason, at_ms as i64],
        )?;
        Ok(())
    }

    /// Miner failures in real jobs since `since_ms` that a majority of the job's peers reported
    /// (so a single peer cannot frame a miner): (miner hotkey, job id, a reporter's reason).
    pub fn job_failures_since(
        &self,
        since_ms: u64,
    ) -> Result<Vec<(String, u64, String)>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT f.miner, f.job_id, MIN(f.reason), COUNT(DISTINCT f.reporter), j.world_size
             FROM job_failures f JOIN jobs j ON j.job_id = f.job_id
             WHERE f.at_ms >= ?1 GROUP BY f.job_id, f.miner ORDER BY f.job_id, f.miner",
        )?;
        let rows = st.query_map(params![since_ms as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, String>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, u32>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (miner, job, reason, reporters, world) = row?;
            if reporters * 2 > world {
                out.push((miner, job, reason));
            }
        }
        Ok(out)
    }

    pub fn put_benchmark(&self, b: &BenchRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO benchmarks VALUES
             (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)",
            params![
                b.benchmark_id as i64,
                b.bot,
                b.miner_uid,
                b.miner_hotkey,
                b.state as i32,
                b.outcome,
                b.reason,
                b.bytes as i64,
                b.peers,
                b.seed as i64,
                b.checked_elements as i64,
                b.upload,
                b.download,
                b.broadcast,
                b.latency_ms,
                b.all_reduce_s,
                b.broadcast_s,
                b.assigned_at_ms as i64,
                b.report_by_ms as i64,
                b.reported_at_ms as i64,
                b.score,
            ],
        )?;
        Ok(())
    }

    pub fn benchmark(&self, id: u64) -> Result<Option<BenchRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM benchmarks WHERE benchmark_id = ?1",
                params![id as i64],
                bench_row,
            )
            .optional()?)
    }

    /// Benchmarks assigned at or after `since_ms`, oldest first.
    pub fn benchmarks_since(&self, since_ms: u64) -> Result<Vec<BenchRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT * FROM benchmarks WHERE assigned_at_ms >= ?1 ORDER BY assigned_at_ms, benchmark_id",
        )?;
        let rows = st.query_map(params![since_ms as i64], bench_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Benchmarks still waiting for their report.
    pub fn outstanding_benchmarks(&self) -> Result<Vec<BenchRow>, StoreError> {
        let c = self.conn();
        let mut st =
            c.prepare("SELECT * FROM benchmarks WHERE state = 0 ORDER BY assigned_at_ms")?;
        let rows = st.query_map([], bench_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Unix ms of each miner's latest benchmark (any state), by hotkey.
    pub fn last_benchmarks(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT miner_hotkey, MAX(assigned_at_ms) FROM benchmarks GROUP BY miner_hotkey",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a round: its scores and the new EMAs, in one transaction. EMAs of hotkeys not in
    /// the round (gone from the subnet) are dropped. Returns the round id.
    pub fn put_round(
        &self,
        block: u64,
        at_ms: u64,
        uids: &[u16],
        weights: &[u16],
        error: &str,
        scores: &[ScoreRow],
    ) -> Result<u64, StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO rounds (block, at_ms, uids, weights, error) VALUES (?1,?2,?3,?4,?5)",
            params![
                block as i64,
                at_ms as i64,
                join_u16(uids),
                join_u16(weights),
                error
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute("DELETE FROM ema", [])?;
        for s in scores {
            tx.execute(
                "INSERT INTO scores VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
                params![
                    id,
                    s.hotkey,
                    s.uid,
                    s.ip,
                    s.upload,
                    s.download,
                    s.latency_ms,
                    s.success_rate,
                    s.capacity as i64,
                    s.benchmarks,
                    s.shared_ip,
                    s.round,
                    s.ema,
                    s.weight,
                    s.weight_u16,
                    s.flags.join("\n"),
                ],
            )?;
            tx.execute(
                "INSERT INTO ema VALUES (?1,?2,?3,?4)",
                params![s.hotkey, s.uid, s.ema, id],
            )?;
        }
        tx.commit()?;
        Ok(id as u64)
    }

    /// Current EMA by hotkey: (hotkey, uid, ema).
    pub fn emas(&self) -> Result<Vec<(String, u16, f64)>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT hotkey, uid, ema FROM ema ORDER BY uid")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn last_round(&self) -> Result<Option<RoundRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM rounds ORDER BY round_id DESC LIMIT 1",
                [],
                round_row,
            )
            .optional()?)
    }

    /// The scores of a round, by uid.
    pub fn round_scores(&self, round_id: u64) -> Result<Vec<ScoreRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT * FROM scores WHERE round_id = ?1 ORDER BY uid")?;
        let rows = st.query_map(params![round_id as i64], score_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a weight set (and clears the pending reveal when it is a reveal or a plain set).
    pub fn put_weight_set(&self, w: &WeightSetRow) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO weight_sets (round_id, block, at_ms, ok, error, kind, uids, weights)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                w.round_id as i64,
                w.block as i64,
                w.at_ms as i64,
                w.ok,
                w.error,
                w.kind,
                join_u16(&w.uids),
                join_u16(&w.weights),
            ],
        )?;
        if w.ok && w.kind == "reveal" {
            tx.execute("DELETE FROM pending_reveal", [])?;
        }
        // A failed attempt keeps the intent: it may still land (a timeout), and the next attempt
        // asks the chain first.
        if w.ok && w.kind == "set" {
            tx.execute(
                "DELETE FROM weight_intents WHERE round_id = ?1",
                params![w.round_id as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores (or replaces) the intent to send a round's weights.
    pub fn put_weight_intent(&self, i: &WeightIntent) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO weight_intents (round_id, block, nonce, at_ms) VALUES (?1,?2,?3,?4)",
            params![
                i.round_id as i64,
                i.block as i64,
                i.nonce as i64,
                i.at_ms as i64
            ],
        )?;
        Ok(())
    }

    /// The intent of a round whose outcome is not recorded yet.
    pub fn weight_intent(&self, round_id: u64) -> Result<Option<WeightIntent>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT block, nonce, at_ms FROM weight_intents WHERE round_id = ?1",
                params![round_id as i64],
                |r| {
                    Ok(WeightIntent {
                        round_id,
                        block: r.get::<_, i64>(0)? as u64,
                        nonce: r.get::<_, i64>(1)? as u64,
                        at_ms: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()?)
    }

    pub fn clear_weight_intent(&self, round_id: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM weight_intents WHERE round_id = ?1",
            params![round_id as i64],
        )?;
        Ok(())
    }

    /// Records a commit and what its reveal needs, in one transaction.
    pub fn put_commit(&self, w: &WeightSetRow, pending: &PendingReveal) -> Result<(), StoreError> {
        let json = serde_json::to_string(pending).map_err(|e| StoreError::Corrupt {
            job: w.round_id,
            reason: e.to_string(),
        })?;
        let mut c = self.conn();
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO weight_sets (round_id, block, at_ms, ok, error, kind, uids, weights)
             VALUES (?1,?2,?3,1,'','commit',?4,?5)",
            params![
                w.round_id as i64,
                w.block as i64,
                w.at_ms as i64,
                join_u16(&w.uids),
                join_u16(&w.weights),
            ],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO pending_reveal VALUES (1, ?1, ?2)",
            params![w.round_id as i64, json],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The commit waiting for its reveal: (round id, what to reveal).
    pub fn pending_reveal(&self) -> Result<Option<(u64, PendingReveal)>, StoreError> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT round_id, json FROM pending_reveal WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(id, json)| {
            serde_json::from_str(&json)
                .map(|p| (id as u64, p))
                .map_err(|e| StoreError::Corrupt {
                    job: id as u64,
                    reason: format!("pending reveal: {e}"),
                })
        })
        .transpose()
    }

    pub fn clear_pending_reveal(&self) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM pending_reveal", [])?;
        Ok(())
    }

    /// Weight sets, newest first.
    pub fn weight_sets(&self, limit: u32) -> Result<Vec<WeightSetRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT round_id, block, at_ms, ok, error, kind, uids, weights FROM weight_sets
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st.query_map(params![limit], |r| {
            let (u, w): (String, String) = (r.get(6)?, r.get(7)?);
            Ok(WeightSetRow {
                round_id: r.get::<_, i64>(0)? as u64,
                block: r.get::<_, i64>(1)? as u64,
                at_ms: r.get::<_, i64>(2)? as u64,
                ok: r.get(3)?,
                error: r.get(4)?,
                kind: r.get(5)?,
                uids: split_u16(&u),
                weights: split_u16(&w),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// True when the round's weights reached the chain (a set, or a commit).
    pub fn round_sent(&self, round_id: u64) -> Result<bool, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM weight_sets WHERE round_id = ?1 AND ok = 1 AND kind IN ('set','commit')",
            params![round_id as i64],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(hotkey: &str, uid: u16, ema: f64) -> ScoreRow {
        ScoreRow {
            hotkey: hotkey.into(),
            uid,
            ip: "10.0.0.1".into(),
            upload: 1.0,
            download: 2.0,
            latency_ms: 3.0,
            success_rate: 1.0,
            capacity: 4,
            benchmarks: 1,
            shared_ip: 1,
            round: ema,
            ema,
            weight: 0.5,
            weight_u16: 65535,
            flags: vec!["a".into(), "b: c".into()],
        }
    }

    #[test]
    fn rounds_emas_and_weight_sets_survive_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("v.sqlite");
        let b = BenchRow {
            benchmark_id: u64::MAX - 1,
            bot: "bot".into(),
            miner_uid: 3,
            miner_hotkey: "m".into(),
            state: BenchState::Assigned,
            outcome: 0,
            reason: String::new(),
            bytes: 1 << 20,
            peers: 3,
            seed: u64::MAX,
            checked_elements: 0,
            upload: 0.0,
            download: 0.0,
            broadcast: 0.0,
            latency_ms: 0.0,
            all_reduce_s: 0.0,
            broadcast_s: 0.0,
            assigned_at_ms: 10,
            report_by_ms: 20,
            reported_at_ms: 0,
            score: 0.0,
        };
        let round;
        {
            let s = Store::open(&path).expect("open");
            s.put_benchmark(&b).expect("bench");
            round = s
                .put_round(5, 6, &[3], &[65535], "", &[score("m", 3, 0.25)])
                .expect("round");
            assert!(!s.round_sent(round).expect("sent"));
            let w = WeightSetRow {
                round_id: round,
                block: 7,
                at_ms: 8,
                ok: true,
                error: String::new(),
                kind: "set".into(),
                uids: vec![3],
                weights: vec![65535],
            };
            s.put_weight_set(&w).expect("set");
            s.put_weight_set(&WeightSetRow {
                ok: false,
                error: "rate limited".into(),
                ..w
            })
            .expect("failed set");
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.benchmark(b.benchmark_id).expect("get"), Some(b.clone()));
        assert_eq!(s.outstanding_benchmarks().expect("out"), vec![b]);
        assert_eq!(s.emas().expect("emas"), vec![("m".to_string(), 3, 0.25)]);
        assert_eq!(
            s.round_scores(round).expect("scores"),
            vec![score("m", 3, 0.25)]
        );
        assert!(s.round_sent(round).expect("sent"));
        let h = s.weight_sets(10).expect("history");
        assert_eq!(h.len(), 2);
        assert!(!h[0].ok && h[1].ok, "newest first: {h:?}");
        let r = s.last_round().expect("last").expect("round");
        assert_eq!((r.block, r.uids, r.weights), (5, vec![3], vec![65535]));
    }
}
