//! The line protocol between `mrctl bench local` and its peer processes (`mrd bench-peer`):
//! one JSON object per line on stdin (commands) and stdout (replies). Secrets travel on stdin,
//! never in arguments other users can see.

use serde::{Deserialize, Serialize};

/// The first line a bench peer reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setup {
    /// The signed ticket, protobuf-encoded, hex.
    pub ticket_hex: String,
    pub rank: u32,
    /// The peer's hotkey mini secret, hex.
    pub secret_hex: String,
    /// Seed of the known-answer tensors (see `peer::check`).
    pub data_seed: u64,
}

/// A command after the setup line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Join the job on every miner.
    Connect,
    /// Fill the tensor for an operation and answer `Ready`; run it on `Go`.
    Prepare {
        /// "sum", "avg", or "broadcast".
        op: String,
        #[serde(default)]
        src: u32,
    },
    Go,
    /// Live-job verification sampling for the next operations (ppm 0: off); answered `Ready`.
    /// The peer keeps the sampled blocks and builds the validator's reports (then drops them:
    /// there is no validator), so `mrctl bench local --sample-rate` measures the overhead.
    Sample {
        seed: u64,
        ppm: u32,
    },
    Quit,
}

/// A reply line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Connected {
        setup_ms: f64,
    },
    Ready,
    Done {
        secs: f64,
        /// CPU seconds (user + system, all threads) this peer process used during the operation.
        #[serde(default)]
        cpu_s: f64,
        /// `None` when every element matched the expected value exactly.
        mismatch: Option<String>,
    },
    Failed {
        error: String,
    },
}

/// CPU seconds (user + system, all threads, those that ended included) process `pid` has used:
/// from its CPU clock (nanoseconds) on Linux, else from /proc in clock ticks (10 ms, too coarse
/// for one operation's figure on a fast machine); `None` when the process is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    #[cfg(target_os = "linux")]
    if let Some(s) = cpu_clock_secs(pid) {
        return Some(s);
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux ABI.
    Some(ticks / 100.0)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn cpu_clock_secs(pid: u32) -> Option<f64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: plain libc calls writing into locals that outlive them.
    let ts = unsafe {
        if libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) != 0 {
            return None;
        }
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(clock, &mut ts) != 0 {
            return None;
        }
        ts
    };
    Some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_seconds_of_this_process_grow() {
        let me = std::process::id();
        let a = super::cpu_secs(me).expect("this process");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let b = super::cpu_secs(me).expect("this process");
        assert!(b > a, "{a} then {b}");
    }
}
