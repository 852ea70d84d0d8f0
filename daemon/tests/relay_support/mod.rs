//! Shared by the relay integration tests: real `mrd relay` and `mrd bench-peer` processes on
//! 127.0.0.1 with port 0, killed by pid when dropped (even when a test fails), and tickets.
#![allow(dead_code)]

use mapreduce::core::Dtype;
use mapreduce::peer::bench::{Command, Reply, Setup};
use mapreduce::wallet::Keypair;
use mapreduce::wire::handshake::{JobTicket, MinerSlot, SignedTicket, issue, now_ms};
use prost::Message;
use std::io::Write;
use std::process::{Child, ChildStdin, Command as Proc, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn mrd() -> &'static str {
    env!("CARGO_BIN_EXE_mrd")
}

/// An empty config file, so a developer's own config never leaks into a test.
pub fn empty_config() -> String {
    format!(
        "{}/tests/fixtures/config/valid/empty.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn key(n: u64) -> Keypair {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    Keypair::from_mini_secret(&seed).expect("key")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killer(pub Child);

impl Killer {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real relay process.
pub struct RelayProc {
    pub proc: Killer,
    pub addr: String,
}

impl RelayProc {
    pub fn start(trust: &Keypair, env: &[(&str, &str)]) -> RelayProc {
        RelayProc::start_args(trust, env, &[])
    }

    /// With extra arguments after `relay` (e.g. `--dishonest corrupt` in test builds).
    pub fn start_args(trust: &Keypair, env: &[(&str, &str)], extra: &[&str]) -> RelayProc {
        let mut cmd = Proc::new(mrd());
        cmd.args(["--config", &empty_config(), "relay", "--relay.port", "0"])
            .args(extra)
            .args(["--relay.ip", "127.0.0.1", "--trust", trust.ss58_address()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn mrd relay");
        let lines = mr_testkit::proc::lines_of(&mut child);
        let proc = Killer(child);
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("relay printed its address");
        let addr = line
            .strip_prefix("relay listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        RelayProc { proc, addr }
    }
}

/// A job: its validator-signed ticket and the peers' keys.
pub struct TestJob {
    pub ticket: SignedTicket,
    pub keys: Vec<Keypair>,
}

// Every field of a ticket a test varies, spelled out at each call site.
#[allow(clippy::too_many_arguments)]
pub fn job(
    validator: &Keypair,
    id: u64,
    peers: u32,
    relays: &[&RelayProc],
    dtype: Dtype,
    elements: u64,
    block_elems: u32,
    deadline_ms: u32,
) -> TestJob {
    let keys: Vec<Keypair> = (0..peers).map(|r| key(id * 1000 + u64::from(r))).collect();
    let t = JobTicket {
        job_id: id,
        peers: keys.iter().map(|k| k.ss58_address().to_string()).collect(),
        miners: relays
            .iter()
            .enumerate()
            .map(|(i, r)| MinerSlot {
                hotkey: key(900 + i as u64).ss58_address().to_string(),
                address: r.addr.clone(),
                weight: 1 + i as u32 % 2,
            })
            .collect(),
        dtype: u32::from(dtype.code()),
        block_elems,
        elements,
        expires_at_ms: now_ms() + 600_000,
        deadline_ms,
        ..Default::default()
    };
    TestJob {
        ticket: issue(t, validator).expect("sign"),
        keys,
    }
}

/// A real peer process (`mrd bench-peer`), driven line by line.
pub struct PeerProc {
    pub proc: Killer,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl PeerProc {
    pub fn start(job: &TestJob, rank: u32, data_seed: u64) -> PeerProc {
        let mut child = Proc::new(mrd())
            .args(["--config", &empty_config(), "bench-peer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mrd bench-peer");
        let lines = mr_testkit::proc::lines_of(&mut child);
        let stdin = child.stdin.take().expect("piped stdin");
        let mut p = PeerProc {
            proc: Killer(child),
            stdin,
            lines,
        };
        let setup = Setup {
            ticket_hex: hex::encode(job.ticket.encode_to_vec()),
            rank,
            secret_hex: hex::encode(job.keys[rank as usize].mini_secret().expect("secret")),
            data_seed,
        };
        p.send_line(&serde_json::to_string(&setup).expect("json"));
        p
    }

    fn send_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to peer");
        self.stdin.flush().expect("flush");
    }

    pub fn send(&mut self, c: &Command) {
        self.send_line(&serde_json::to_string(c).expect("json"));
    }

    pub fn recv(&self, within: Duration) -> Reply {
        let line = self
            .lines
            .recv_timeout(within)
            .expect("a reply from the peer in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    pub fn try_recv(&self) -> Option<Reply> {
        self.lines
            .try_recv()
            .ok()
            .and_then(|l| serde_json::from_str(&l).ok())
    }
}

/// Sends a signal to a process we started (by its pid).
pub fn signal(pid: u32, sig: &str) {
    let ok = Proc::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Reads frames until an Error frame; returns its reason.
pub fn next_error(s: &mut std::net::TcpStream) -> String {
    loop {
        let h = mapreduce::wire::io::read_header(s, 1 << 20)
            .expect("a frame")
            .expect("an error before close");
        let mut buf = vec![0u8; h.len as usize];
        mapreduce::wire::io::read_payload(s, &h, &mut buf).expect("payload");
        if h.kind == mapreduce::wire::Kind::Error {
            return String::from_utf8(buf).expect("utf-8");
        }
    }
}
