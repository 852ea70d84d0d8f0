//! Rust errors as Python exceptions, all under `mapreduce.MapReduceError`, each carrying the
//! Rust message.

use mapreduce::peer::{PeerError, SessionError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    mapreduce,
    MapReduceError,
    PyRuntimeError,
    "Base of every error mapreduce raises from the network."
);
pyo3::create_exception!(
    mapreduce,
    ConnectError,
    MapReduceError,
    "The validator or a miner could not be reached."
);
pyo3::create_exception!(
    mapreduce,
    JobRefused,
    MapReduceError,
    "The validator refused a request (not an allowed client, rate limit, bad size, no miners)."
);
pyo3::create_exception!(
    mapreduce,
    JobFailed,
    MapReduceError,
    "The job ended (failed, expired) or a collective failed: a miner reported an error, \
     closed the connection or broke the protocol. The session cannot be used again."
);
pyo3::create_exception!(
    mapreduce,
    MapReduceTimeout,
    MapReduceError,
    "Not every rank joined in time, or a miner sent nothing before its deadline."
);
pyo3::create_exception!(
    mapreduce,
    WalletError,
    MapReduceError,
    "A wallet or hotkey could not be read."
);
pyo3::create_exception!(
    mapreduce,
    JobCorrupted,
    MapReduceError,
    "The validator's live-job verification found a miner's result wrong in this job (the \
     message names the miner, shard, operation and block): do not trust its results."
);
pyo3::create_exception!(
    mapreduce,
    Closed,
    MapReduceError,
    "The process group or session was already destroyed."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MapReduceError", py.get_type::<MapReduceError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("JobRefused", py.get_type::<JobRefused>())?;
    m.add("JobFailed", py.get_type::<JobFailed>())?;
    m.add("MapReduceTimeout", py.get_type::<MapReduceTimeout>())?;
    m.add("WalletError", py.get_type::<WalletError>())?;
    m.add("JobCorrupted", py.get_type::<JobCorrupted>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    Ok(())
}

pub fn to_py_peer(e: PeerError) -> PyErr {
    let msg = e.to_string();
    match e {
        PeerError::Length { .. } | PeerError::Source { .. } | PeerError::Rank { .. } => {
            PyValueError::new_err(msg)
        }
        PeerError::Timeout { .. }
        | PeerError::MinerLost {
            kind: mapreduce::peer::failover::LossKind::Stalled,
            ..
        } => MapReduceTimeout::new_err(msg),
        PeerError::Connect { .. } => ConnectError::new_err(msg),
        PeerError::Key(_) | PeerError::WrongKey { .. } => WalletError::new_err(msg),
        _ => JobFailed::new_err(msg),
    }
}

pub fn to_py_session(e: SessionError) -> PyErr {
    let msg = e.to_string();
    match e {
        SessionError::Connect { .. } => ConnectError::new_err(msg),
        SessionError::Refused { .. } => JobRefused::new_err(msg),
        SessionError::JobEnded { .. } => JobFailed::new_err(msg),
        SessionError::Timeout { .. } | SessionError::NoSuchName(_) => {
            MapReduceTimeout::new_err(msg)
        }
        SessionError::Peer(p) => to_py_peer(p),
        SessionError::Runtime(_) => MapReduceError::new_err(msg),
        SessionError::Corrupted { .. } => JobCorrupted::new_err(msg),
    }
}
