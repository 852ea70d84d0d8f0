//! SQLite persistence (WAL, synchronous=FULL): every job state change is committed before the
//! RPC answers, so a kill -9 loses nothing an operator or peer has seen.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database row for job {job}: {reason}")]
    Corrupt { job: u64, reason: String },
}

/// A job as stored. `state` is the proto `JobState` number.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub job_id: u64,
    pub state: i32,
    pub reason: String,
    pub name: String,
    pub world_size: u32,
    /// Hotkeys by rank; "" for ranks not yet joined.
    pub peers: Vec<String>,
    pub elements: u64,
    pub dtype: u32,
    pub miners_wanted: u32,
    /// Encoded `SignedTicket` once issued.
    pub ticket: Option<Vec<u8>>,
    /// Miner hotkeys holding a reservation.
    pub miners: Vec<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A miner as last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerRow {
    pub hotkey: String,
    pub uid: u16,
    /// Control-plane (axon) address host:port.
    pub axon: String,
    pub relay_address: String,
    pub reachable: bool,
    pub memory_free: u64,
    pub version: String,
    pub last_seen_ms: u64,
}

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
  job_id INTEGER PRIMARY KEY, state INTEGER NOT NULL, reason TEXT NOT NULL, name TEXT NOT NULL,
  world_size INTEGER NOT NULL, peers TEXT NOT NULL, elements INTEGER NOT NULL, dtype INTEGER NOT NULL,
  miners_wanted INTEGER NOT NULL, ticket BLOB, miners TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name);
CREATE TABLE IF NOT EXISTS miners (
  hotkey TEXT PRIMARY KEY, uid INTEGER NOT NULL, axon TEXT NOT NULL, relay_address TEXT NOT NULL,
  reachable INTEGER NOT NULL, memory_free INTEGER NOT NULL, version TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL);
";

fn split(s: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = if s.is_empty() && n == 0 {
        Vec::new()
    } else {
        s.split('\n').map(str::to_string).collect()
    };
    v.resize(n.max(v.len()), String::new());
    v
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open = |e| StoreError::Open {
            path: path.display().to_string(),
            source: e,
        };
        let conn = Connection::open(path).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open)?;
        conn.execute_batch(SCHEMA).map_err(open)?;
        conn.execute_batch(super::records::SCHEMA).map_err(open)?;
        conn.execute_batch(super::verify::SCHEMA).map_err(open)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put_job(&self, j: &JobRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO jobs VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
            params![
                j.job_id as i64,
                j.state,
                j.reason,
                j.name,
                j.world_size,
                j.peers.join("\n"),
                j.elements as i64,
                j.dtype,
                j.miners_wanted,
                j.ticket,
                j.miners.join("\n"),
                j.created_at_ms as i64,
                j.expires_at_ms as i64,
            ],
        )?;
        Ok(())
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
        let world_size: u32 = r.get(4)?;
        let peers: String = r.get(5)?;
        let miners: String = r.get(10)?;
        Ok(JobRow {
            job_id: r.get::<_, i64>(0)? as u64,
            state: r.get(1)?,
            reason: r.get(2)?,
            name: r.get(3)?,
            world_size,
            peers: split(&peers, world_size as usize),
            elements: r.get::<_, i64>(6)? as u64,
            dtype: r.get(7)?,
            miners_wanted: r.get(8)?,
            ticket: r.get(9)?,
            miners: if miners.is_empty() {
                Vec::new()
            } else {
                split(&miners, 0)
            },
            created_at_ms: r.get::<_, i64>(11)? as u64,
            expires_at_ms: r.get::<_, i64>(12)? as u64,
        })
    }

    pub fn job(&self, job_id: u64) -> Result<Option<JobRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM jobs WHERE job_id = ?1",
                params![job_id as i64],
                Self::row,
            )
            .optional()?)
    }

    /// The newest job with this rendezvous name.
    pub fn job_by_name(&self, name: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM jobs WHERE name = ?1 ORDER BY created_at_ms DESC LIMIT 1",
                params![name],
                Self::row,
            )
            .optional()?)
    }

    /// Live jobs (pending, running) and the `finished` newest others, newest first.
    pub fn recent_jobs(&self, finished: u32) -> Result<Vec<JobRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(
            "SELECT * FROM (SELECT * FROM jobs WHERE state IN (1, 2)
             UNION ALL SELECT * FROM (SELECT * FROM jobs WHERE state NOT IN (1, 2)
               ORDER BY created_at_ms DESC LIMIT ?1))
             ORDER BY created_at_ms DESC, job_id DESC",
        )?;
        let rows = st.query_map(params![finished], Self::row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn put_miner(&self, m: &MinerRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO miners VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                m.hotkey,
                m.uid,
                m.axon,
                m.relay_address,
                m.reachable,
                m.memory_free as i64,
                m.version,
                m.last_seen_ms as i64
            ],
        )?;
        Ok(())
    }

    pub fn miners(&self) -> Result<Vec<MinerRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT * FROM miners ORDER BY uid")?;
        let rows = st.query_map([], |r| {
            Ok(MinerRow {
                hotkey: r.get(0)?,
                uid: r.get(1)?,
                axon: r.get(2)?,
                relay_address: r.get(3)?,
                reachable: r.get(4)?,
                memory_free: r.get::<_, i64>(5)? as u64,
                version: r.get(6)?,
                last_seen_ms: r.get::<_, i64>(7)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_miners_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.sqlite");
        let job = JobRow {
            job_id: u64::MAX - 3,
            state: 1,
            reason: String::new(),
            name: "run".into(),
            world_size: 3,
            peers: vec!["a".into(), String::new(), String::new()],
            elements: 10,
            dtype: 1,
            miners_wanted: 3,
            ticket: None,
            miners: vec![],
            created_at_ms: 1,
            expires_at_ms: 2,
        };
        {
            let s = Store::open(&path).expect("open");
            s.put_job(&job).expect("put");
            s.put_miner(&MinerRow {
                hotkey: "m".into(),
                uid: 4,
                axon: "127.0.0.2:8091".into(),
                relay_address: "127.0.0.2:9000".into(),
                reachable: true,
                memory_free: 5,
                version: "0.1.0".into(),
                last_seen_ms: 7,
            })
            .expect("miner");
        }
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.job(job.job_id).expect("get"), Some(job.clone()));
        assert_eq!(s.job_by_name("run").expect("name"), Some(job.clone()));
        assert_eq!(s.miners().expect("miners").len(), 1);
        let done = JobRow {
            job_id: 9,
            state: 3,
            created_at_ms: 5,
            ..job.clone()
        };
        s.put_job(&done).expect("put");
        let ids = |n| -> Vec<u64> {
            s.recent_jobs(n)
                .expect("recent")
                .iter()
                .map(|j| j.job_id)
                .collect()
        };
        assert_eq!(ids(0), vec![job.job_id], "live jobs always");
        assert_eq!(ids(5), vec![9, job.job_id], "newest first");
    }
}
