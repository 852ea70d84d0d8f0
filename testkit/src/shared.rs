//! Daemons shared by all the tests of one test binary (a chain, a miner): started once, and
//! killed by pid when the binary exits, pass or fail (libtest ends with `exit`, which runs
//! `atexit` handlers). A binary killed with SIGKILL cannot clean up; nothing can.

use std::sync::{Mutex, Once};

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

extern "C" fn kill_all() {
    let pids = match PIDS.lock() {
        Ok(p) => p.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for pid in pids {
        // SAFETY: kill(2) on a pid this process spawned; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Kills `pid` (SIGKILL) when this process exits.
pub fn kill_at_exit(pid: u32) {
    HOOK.call_once(|| {
        // SAFETY: registers a plain extern "C" fn with no captured state.
        unsafe {
            libc::atexit(kill_all);
        }
    });
    PIDS.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// Keeps `p` running until the process exits (then SIGKILL by pid).
pub fn keep(p: crate::Proc) -> u32 {
    let pid = p.pid();
    kill_at_exit(pid);
    // Its stdout reader and log stay alive with it.
    std::mem::forget(p);
    pid
}
