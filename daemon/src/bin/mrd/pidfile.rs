//! The running miner's pid file, so `mrd miner --drain` (same config, same hotkey) can find it.

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `~/.mapreduce/miner-<hotkey ss58>.pid`.
pub fn path(ss58: &str) -> anyhow::Result<PathBuf> {
    Ok(dirs::home_dir()
        .context("no home directory for the pid file")?
        .join(".mapreduce")
        .join(format!("miner-{ss58}.pid")))
}

/// Written once the miner is ready; removed when it stops.
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(ss58: &str) -> anyhow::Result<PidFile> {
        let p = path(ss58)?;
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&p, std::process::id().to_string())
            .with_context(|| format!("writing {}", p.display()))?;
        Ok(PidFile(p))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends SIGTERM to the miner of `ss58` and waits (up to `timeout`) for it to finish its jobs.
pub fn drain(ss58: &str, timeout: Duration) -> anyhow::Result<()> {
    let p = path(ss58)?;
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("no running miner for hotkey {ss58} (no {})", p.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds {text:?}, not a pid", p.display()))?;
    if !alive(pid) {
        let _ = std::fs::remove_file(&p);
        bail!("the miner of hotkey {ss58} (pid {pid}) is not running");
    }
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .context("running kill")?
        .success();
    if !ok {
        bail!("could not signal pid {pid}");
    }
    println!("draining miner {ss58} (pid {pid}): running jobs finish, no new ones are accepted");
    let end = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > end {
            bail!("pid {pid} still running after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("miner stopped");
    Ok(())
}
