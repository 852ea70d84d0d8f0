//! Child processes of a test: killed (SIGKILL) and reaped by pid when dropped, also when the
//! test panics, with their stdout lines read on a thread so every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a daemon may take to print an awaited line (chain sync, key derivation on 2 cores).
pub const WAIT: Duration = Duration::from_secs(120);

/// A running child: stdout lines on `lines`, stderr in the file `log`.
pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// `mrd --config CONFIG ARGS...` (ARGS starts with the role) with a clean environment,
    /// HOME set to `home` and `RUST_LOG=info`; stderr to `log`.
    pub fn mrd(home: &Path, config: &Path, args: &[&str], log: &Path) -> Proc {
        Proc::mrd_in(None, home, config, args, log)
    }

    /// `mrd miner` from `cfg` (written to `dir`), cheating with `dishonest` (a `--dishonest` mode;
    /// the test binary needs the `dishonest-relay` feature), its log `dir/NAME.log`; returns once
    /// it logged "miner ready" (printed).
    pub fn miner(
        home: &Path,
        dir: &Path,
        cfg: &crate::NodeConfig,
        dishonest: Option<&str>,
    ) -> Proc {
        let config = cfg.write(dir);
        let mut args = vec!["miner"];
        if let Some(mode) = dishonest {
            args.extend(["--dishonest", mode]);
        }
        let log = dir.join(format!("{}.log", cfg.name));
        let mut p = Proc::mrd(home, &config, &args, &log);
        println!("{}", p.wait_line("miner ready"));
        p
    }

    /// [`Proc::mrd`] with extra environment variables (test hooks; none may start with `MR_`).
    pub fn mrd_env(
        home: &Path,
        config: &Path,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        let mut cmd = Command::new(crate::mrd_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(config)
            .args(args);
        Proc::spawn(cmd, log)
    }

    /// [`Proc::mrd`] inside network namespace `netns` when given (`ip netns exec` execs mrd in
    /// place, so the pid is mrd's).
    pub fn mrd_in(
        netns: Option<&str>,
        home: &Path,
        config: &Path,
        args: &[&str],
        log: &Path,
    ) -> Proc {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(crate::mrd_bin());
                c
            }
            None => Command::new(crate::mrd_bin()),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(config)
            .args(args);
        Proc::spawn(cmd, log)
    }

    /// Spawns `cmd` with stdin closed, stdout read line by line, stderr to the file `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let lines = lines_of(&mut child);
        Proc {
            child,
            lines,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stderr log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to [`WAIT`] for a stdout line starting with `prefix`; panics with the log when
    /// the process exits, closes stdout or the time runs out.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        self.wait_line_for(prefix, WAIT)
    }

    pub fn wait_line_for(&mut self, prefix: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(st)) = self.child.try_wait() {
                        panic!("{prefix}: exited {st}: {}", self.log_text());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    panic!("{prefix}: stdout closed: {}", self.log_text());
                }
            }
        }
        panic!(
            "no {prefix:?} line in {} s: {}",
            timeout.as_secs(),
            self.log_text()
        );
    }

    /// Waits up to `timeout` for the log (stderr) to contain `needle`.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} in the log in {} s: {text}",
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < end,
                "still running after {} s: {}",
                timeout.as_secs(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }
}

/// The lines of a child's piped stdout, read on a thread so every wait can be bounded.
pub fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    lines
}

/// A child without piped lines, killed if the test ends before it is waited for.
pub struct Reap(pub Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// "... axon 127.0.0.5:4321 ..." → "127.0.0.5:4321": the word after `name` in a log line.
pub fn field(line: &str, name: &str) -> String {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == name {
            return it.next().expect("value").to_string();
        }
    }
    panic!("no {name} in {line:?}")
}

/// Waits up to 30 s for `path` to exist.
pub fn wait_file(path: &Path) {
    let end = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < end, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `mrctl ARGS` with a clean environment (HOME = `home`, 160 columns), killed after 300 s.
pub fn mrctl(home: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(crate::mrctl_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COLUMNS", "160")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mrctl");
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "mrctl {args:?} took over 300 s: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
