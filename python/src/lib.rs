//! `mapreduce._native`: the Rust peer library for Python. The Python half of the package
//! (mapreduce/__init__.py) picks sessions per tensor size, converts torch tensors to buffers and
//! finds the validator and wallet; this module only moves data.
//!
//! Tensors come in through the buffer protocol (numpy arrays, or torch tensors through
//! `.numpy()`, which shares memory), are reduced in place with the GIL released, and every Rust
//! error comes back as a Python exception carrying the Rust message.

mod buffer;
mod errors;

use buffer::{Elem, TensorBuf};
use errors::{to_py_peer, to_py_session};
use mapreduce::core::{Dtype, Op};
use mapreduce::peer::{Session as RustSession, SessionOptions, ValidatorAddr};
use mapreduce::wallet::{Keypair, Wallet};
use mapreduce::wire::dtype;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::Duration;

/// A hotkey that signs this peer's requests and joins.
#[pyclass(module = "mapreduce._native", frozen)]
struct Key {
    kp: Keypair,
}

#[pymethods]
impl Key {
    /// Loads the hotkey `hotkey` of wallet `name` under `path` (btcli layout; unencrypted hotkey).
    #[staticmethod]
    fn from_wallet(path: &str, name: &str, hotkey: &str) -> PyResult<Key> {
        let path = mapreduce::wallet::expand_tilde(std::path::Path::new(path));
        let w = Wallet::new(path, name, hotkey);
        let kp = w.hotkey().map_err(|e| {
            errors::WalletError::new_err(format!(
                "wallet {name:?} hotkey {hotkey:?} in {}: {e}",
                w.path().display()
            ))
        })?;
        Ok(Key { kp })
    }

    /// A new random hotkey (not saved anywhere).
    #[staticmethod]
    fn generate() -> PyResult<Key> {
        let kp = Keypair::generate(12).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Key { kp })
    }

    /// The hotkey's ss58 address.
    #[getter]
    fn ss58(&self) -> String {
        self.kp.ss58_address().to_string()
    }

    fn __repr__(&self) -> String {
        format!("Key({})", self.kp.ss58_address())
    }
}

/// The ss58 address of a wallet's hotkey, from its public file (no secret is read).
#[pyfunction]
fn hotkey_ss58(path: &str, name: &str, hotkey: &str) -> PyResult<String> {
    let path = mapreduce::wallet::expand_tilde(std::path::Path::new(path));
    let w = Wallet::new(path, name, hotkey);
    w.hotkey_public(hotkey)
        .map(|k| k.ss58_address().to_string())
        .map_err(|e| {
            errors::WalletError::new_err(format!(
                "wallet {name:?} hotkey {hotkey:?} in {}: {e}",
                w.path().display()
            ))
        })
}

fn parse_dtype(s: &str) -> PyResult<Dtype> {
    match s {
        "float32" | "f32" => Ok(Dtype::F32),
        "float16" | "f16" => Ok(Dtype::F16),
        "bfloat16" | "bf16" => Ok(Dtype::Bf16),
        _ => Err(PyValueError::new_err(format!(
            "dtype {s:?}: must be float32, float16 or bfloat16"
        ))),
    }
}

fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "float32",
        Dtype::F16 => "float16",
        Dtype::Bf16 => "bfloat16",
    }
}

fn parse_op(s: &str) -> PyResult<Op> {
    match s {
        "sum" => Ok(Op::Sum),
        "avg" | "mean" | "average" => Ok(Op::Avg),
        _ => Err(PyValueError::new_err(format!(
            "op {s:?}: must be \"sum\" or \"avg\""
        ))),
    }
}

struct Inner {
    session: Option<RustSession>,
    /// f32 staging for 16-bit tensors (the peer library reduces f32 slices; the wire carries the
    /// job's 16-bit dtype, so the conversion is exact both ways).
    scratch: Vec<f32>,
}

/// One job of the validator: `world_size` peers moving tensors of `elements` elements of
/// `dtype`. Made by `Session.init`; used by one thread at a time.
#[pyclass(module = "mapreduce._native", frozen)]
struct Session {
    inner: Mutex<Inner>,
    elements: u64,
    dtype: Dtype,
    job_id: u64,
    rank: u32,
    world_size: u32,
}

enum Collective {
    AllReduce(Op),
    Broadcast(u32),
}

impl Session {
    fn run(&self, py: Python<'_>, tensor: &Bound<'_, PyAny>, c: Collective) -> PyResult<()> {
        let elem = match self.dtype {
            Dtype::F32 => Elem::F32,
            Dtype::F16 | Dtype::Bf16 => Elem::Half,
        };
        let mut buf = TensorBuf::get(tensor, elem)?;
        if buf.len() as u64 != self.elements {
            return Err(PyValueError::new_err(format!(
                "tensor has {} elements, this session moves {}",
                buf.len(),
                self.elements
            )));
        }
        let dtype = self.dtype;
        let inner = &self.inner;
        // SAFETY: see TensorBuf: `buf` keeps the buffer exported (its memory alive and in place)
        // until it drops at the end of this function, after the detached closure returned.
        let mut data = match dtype {
            Dtype::F32 => Data::F32(unsafe { buf.f32_mut() }),
            Dtype::F16 | Dtype::Bf16 => Data::Half(unsafe { buf.u16_mut() }),
        };
        py.detach(move || {
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            let Inner { session, scratch } = &mut *g;
            let Some(s) = session.as_mut() else {
                return Err(errors::Closed::new_err(
                    "this session was closed (destroy_process_group)",
                ));
            };
            let run = |s: &mut RustSession, data: &mut [f32]| match c {
                Collective::AllReduce(op) => s.all_reduce(data, op),
                Collective::Broadcast(src) => s.broadcast(data, src),
            };
            match &mut data {
                Data::F32(d) => run(s, d).map_err(to_py_peer),
                Data::Half(bits) => {
                    scratch.resize(bits.len(), 0.0);
                    dtype::decode_into(bytemuck::cast_slice(bits), dtype, scratch);
                    run(s, scratch).map_err(to_py_peer)?;
                    dtype::encode_half(scratch, dtype, bits);
                    Ok(())
                }
            }
        })
    }
}

/// A tensor's memory as the peer library sees it.
enum Data<'a> {
    F32(&'a mut [f32]),
    /// f16 or bf16 bits.
    Half(&'a mut [u16]),
}

#[pymethods]
impl Session {
    /// torch-like rendezvous: every rank calls this with the same `name`; rank 0 creates the
    /// job, the others join it. Returns once every rank has joined and is connected to the
    /// job's miners.
    #[staticmethod]
    #[pyo3(signature = (validator, validator_hotkey, key, world_size, rank, name, elements, dtype="float32", join_timeout=60.0, call_timeout=10.0, miners=0))]
    #[allow(clippy::too_many_arguments)]
    fn init(
        py: Python<'_>,
        validator: &str,
        validator_hotkey: &str,
        key: &Key,
        world_size: u32,
        rank: u32,
        name: &str,
        elements: u64,
        dtype: &str,
        join_timeout: f64,
        call_timeout: f64,
        miners: u32,
    ) -> PyResult<Session> {
        let dtype = parse_dtype(dtype)?;
        if world_size == 0 || rank >= world_size {
            return Err(PyValueError::new_err(format!(
                "rank {rank} is not in a world of {world_size} peers"
            )));
        }
        if elements == 0 {
            return Err(PyValueError::new_err("a session moves at least 1 element"));
        }
        let secs = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(PyValueError::new_err(format!(
                    "{what} must be above 0 and at most 86400 seconds, got {v}"
                )))
            }
        };
        let opts = SessionOptions {
            join_timeout: secs("join_timeout", join_timeout)?,
            call_timeout: secs("call_timeout", call_timeout)?,
            miners,
        };
        let addr = ValidatorAddr {
            endpoint: validator.to_string(),
            hotkey: validator_hotkey.to_string(),
        };
        let kp = &key.kp;
        let s = py
            .detach(|| RustSession::init(&addr, kp, world_size, rank, name, elements, dtype, opts))
            .map_err(to_py_session)?;
        Ok(Session {
            job_id: s.job_id(),
            inner: Mutex::new(Inner {
                session: Some(s),
                scratch: Vec::new(),
            }),
            elements,
            dtype,
            rank,
            world_size,
        })
    }

    /// Reduces `tensor` (a writable C-contiguous buffer of this session's dtype and size) across
    /// every peer in place. `op` is "sum" or "avg".
    #[pyo3(signature = (tensor, op="avg"))]
    fn all_reduce(&self, py: Python<'_>, tensor: &Bound<'_, PyAny>, op: &str) -> PyResult<()> {
        let op = parse_op(op)?;
        self.run(py, tensor, Collective::AllReduce(op))
    }

    /// Copies rank `src`'s `tensor` into every other peer's `tensor`.
    #[pyo3(signature = (tensor, src=0))]
    fn broadcast(&self, py: Python<'_>, tensor: &Bound<'_, PyAny>, src: u32) -> PyResult<()> {
        if src >= self.world_size {
            return Err(PyValueError::new_err(format!(
                "broadcast source {src} is not a rank of this job of {} peers",
                self.world_size
            )));
        }
        self.run(py, tensor, Collective::Broadcast(src))
    }

    /// Tells the validator the job is done and closes the miner connections. Idempotent.
    fn close(&self, py: Python<'_>) {
        let inner = &self.inner;
        py.detach(|| {
            let s = inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .session
                .take();
            if let Some(s) = s {
                s.close();
            }
        });
    }

    /// Live-job verification: sends this peer's pending evidence and asks the validator what it
    /// found, waiting up to `timeout` seconds for other peers' evidence. Returns a dict
    /// (`checked`, `failed`, `pending`, `verdict`); raises `JobCorrupted` when a miner's result
    /// was found wrong.
    #[pyo3(signature = (timeout=10.0))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        timeout: f64,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        if !(timeout.is_finite() && (0.0..=3600.0).contains(&timeout)) {
            return Err(PyValueError::new_err(format!(
                "timeout must be 0 to 3600 seconds, got {timeout}"
            )));
        }
        let inner = &self.inner;
        let v = py.detach(|| {
            let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
            g.session
                .as_mut()
                .map(|s| s.verify(Duration::from_secs_f64(timeout)))
        });
        let v = match v {
            None => return Err(errors::Closed::new_err("the session is closed")),
            Some(r) => r.map_err(to_py_session)?,
        };
        let d = pyo3::types::PyDict::new(py);
        d.set_item("job_id", v.job)?;
        d.set_item("checked", v.checked)?;
        d.set_item("failed", v.failed)?;
        d.set_item("pending", v.pending)?;
        d.set_item("verdict", v.verdict)?;
        Ok(d)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .session
            .is_none()
    }

    #[getter]
    fn job_id(&self) -> u64 {
        self.job_id
    }

    #[getter]
    fn elements(&self) -> u64 {
        self.elements
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        dtype_name(self.dtype)
    }

    #[getter]
    fn rank(&self) -> u32 {
        self.rank
    }

    #[getter]
    fn world_size(&self) -> u32 {
        self.world_size
    }

    fn __repr__(&self) -> String {
        format!(
            "Session(job_id={}, rank={}/{}, elements={}, dtype={})",
            self.job_id,
            self.rank,
            self.world_size,
            self.elements,
            dtype_name(self.dtype)
        )
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Key>()?;
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(hotkey_ss58, m)?)?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
