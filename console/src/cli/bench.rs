//! `mrctl bench local`: a whole job on this machine — real `mrd relay` processes and real peer
//! processes (`mrd bench-peer`) on 127.0.0.1 — timed over repetitions, every result checked bit
//! for bit against the known answer.

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mapreduce::core::{Dtype, Op};
use mapreduce::peer::bench::{Command as PeerCmd, Reply, Setup, cpu_secs};
use mapreduce::wallet::Keypair;
use mapreduce::wire::handshake::{JobTicket, MinerSlot, issue, now_ms};
use prost::Message;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Run relays and peers on 127.0.0.1 and time all_reduce and broadcast.
    Local(LocalArgs),
    /// Benchmark a miner (or all) now, through a validator or bench daemon; progress bars per miner.
    Start(super::bench_remote::StartArgs),
    /// The bench bots' states (bench daemon), as a table or JSON.
    Status(super::bench_remote::StatusArgs),
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Peers (training processes).
    #[arg(long, default_value_t = 3)]
    pub peers: u32,
    /// Miners (relay processes).
    #[arg(long, default_value_t = 3)]
    pub miners: u32,
    /// Tensor size in MiB of f32.
    #[arg(long, default_value_t = 100.0)]
    pub mib: f64,
    /// Wire dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: Dtype,
    /// Reduce op of the all_reduce: sum or avg.
    #[arg(long, default_value = "sum")]
    pub op: Op,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// Untimed repetitions first.
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Block size in KiB of f32 (relay.block_kib's default: the size validators' tickets use).
    #[arg(long, default_value_t = 256)]
    pub block_kib: u32,
    /// Relay window in blocks [default: relay.window_blocks].
    #[arg(long)]
    pub window: Option<u32>,
    /// Worker threads per relay [default: the relay's own].
    #[arg(long)]
    pub relay_threads: Option<usize>,
    /// Skip the broadcast measurements.
    #[arg(long)]
    pub no_broadcast: bool,
    /// Also run the all_reduce with live-job verification sampling at this rate (0 to 1; the
    /// validator's default is 0.01), alternating with it off in every repetition, to measure
    /// the overhead side by side. 0: off.
    #[arg(long, default_value_t = 0.0)]
    pub sample_rate: f64,
    /// Run relay i inside network namespace i of this comma-separated list (`ip netns exec`;
    /// root). Used by scripts/bench/wan.sh to put each relay behind its own shaped link.
    #[arg(long, value_delimiter = ',', value_name = "NETNS")]
    pub relay_netns: Vec<String>,
    /// Address relay i binds and is reached at, one per relay [default: 127.0.0.1].
    #[arg(long, value_delimiter = ',', value_name = "IP")]
    pub relay_ip: Vec<std::net::IpAddr>,
    /// Run peer j inside network namespace j of this comma-separated list (`ip netns exec`; root).
    #[arg(long, value_delimiter = ',', value_name = "NETNS")]
    pub peer_netns: Vec<String>,
    /// The mrd binary [default: beside mrctl, else on PATH].
    #[arg(long, value_name = "PATH")]
    pub mrd: Option<PathBuf>,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCmd) -> ExitCode {
    let BenchCmd::Local(args) = cmd else {
        // Start and Status talk to a daemon: main dispatches them to bench_remote.
        return ExitCode::from(2);
    };
    match local(&args) {
        Ok(report) => {
            let ok = report.ops.iter().all(|o| o.check == "exact");
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            } else {
                print_table(&report);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A child killed by pid and reaped when dropped, whatever happened.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_of(child: &mut Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

fn find_mrd(explicit: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("mrd")));
    match beside {
        Some(p) if p.exists() => Ok(p),
        _ => Ok(PathBuf::from("mrd")),
    }
}

struct RelayProc {
    guard: Guard,
    addr: String,
}

/// `mrd`, or `ip netns exec NETNS mrd` when a namespace is given (ip execs mrd in place, so the
/// child's pid, /proc figures and kill all reach mrd itself).
fn mrd_command(mrd: &PathBuf, netns: Option<&String>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(mrd);
            c
        }
        None => Command::new(mrd),
    }
}

fn start_relay(
    mrd: &PathBuf,
    validator: &str,
    a: &LocalArgs,
    i: usize,
) -> anyhow::Result<RelayProc> {
    let ip = a
        .relay_ip
        .get(i)
        .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string());
    let mut cmd = mrd_command(mrd, a.relay_netns.get(i));
    cmd.args(["relay", "--relay.port", "0", "--relay.ip", &ip])
        .args(["--trust", validator])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(w) = a.window {
        cmd.env("MR_RELAY_WINDOW_BLOCKS", w.to_string());
    }
    if let Some(t) = a.relay_threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} relay {i}", mrd.display()))?;
    let lines = lines_of(&mut child)?;
    let guard = Guard(child);
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| anyhow!("the relay did not report its address within 20 s"))?;
    let addr = line
        .strip_prefix("relay listening on ")
        .ok_or_else(|| anyhow!("unexpected relay output {line:?}"))?
        .to_string();
    Ok(RelayProc { guard, addr })
}

struct PeerProc {
    guard: Guard,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    rank: u32,
}

impl PeerProc {
    fn send(&mut self, c: &PeerCmd) -> anyhow::Result<()> {
        let line = serde_json::to_string(c)?;
        writeln!(self.stdin, "{line}").with_context(|| format!("writing to peer {}", self.rank))?;
        self.stdin.flush()?;
        Ok(())
    }

    fn recv(&self, within: Duration) -> anyhow::Result<Reply> {
        let line = self
            .lines
            .recv_timeout(within)
            .map_err(|_| anyhow!("peer {} did not answer within {within:?}", self.rank))?;
        let r: Reply = serde_json::from_str(&line)
            .with_context(|| format!("peer {} said {line:?}", self.rank))?;
        if let Reply::Failed { error } = &r {
            bail!("peer {} failed: {error}", self.rank);
        }
        Ok(r)
    }
}

/// Peak resident memory of a process we started, from /proc (Linux), in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Debug, Serialize)]
pub struct OpReport {
    pub op: String,
    pub times_s: Vec<f64>,
    pub median_s: f64,
    pub min_s: f64,
    /// Tensor megabytes (10^6 bytes of f32) per second per peer, at the median.
    pub mb_per_s_per_peer: f64,
    /// CPU seconds all relays used per operation (median): a figure less sensitive than time to
    /// what else the machine runs.
    pub relay_cpu_s: f64,
    /// CPU seconds all peer processes used during the operation (median; each peer measures
    /// itself from `Go` to the end of the operation, before checking its result).
    pub peer_cpu_s: f64,
    /// "exact", or the first mismatch.
    pub check: String,
    pub results_checked: u32,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub peers: u32,
    pub miners: u32,
    pub mib: f64,
    pub dtype: String,
    pub block_kib: u32,
    pub reps: u32,
    pub warmup: u32,
    /// From the first handshake sent to the last accepted, max over peers (milliseconds).
    pub setup_ms: f64,
    pub ops: Vec<OpReport>,
    pub relay_peak_rss_mib: f64,
    pub peer_peak_rss_mib: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn new_key() -> anyhow::Result<Keypair> {
    Keypair::generate(12).context("generating a key")
}

pub fn local(a: &LocalArgs) -> anyhow::Result<Report> {
    if a.peers == 0 || a.miners == 0 || a.reps == 0 {
        bail!("--peers, --miners and --reps must be at least 1");
    }
    if a.mib.is_nan() || a.mib <= 0.0 {
        bail!("--mib must be above 0");
    }
    if !(0.0..=1.0).contains(&a.sample_rate) {
        bail!("--sample-rate must be 0 to 1 (a fraction of the blocks)");
    }
    for (flag, n, want) in [
        ("--relay-netns", a.relay_netns.len(), a.miners),
        ("--relay-ip", a.relay_ip.len(), a.miners),
        ("--peer-netns", a.peer_netns.len(), a.peers),
    ] {
        if n != 0 && n != want as usize {
            bail!("{flag} lists {n} entries, one per process is needed ({want})");
        }
    }
    let mrd = find_mrd(&a.mrd)?;
    let elements = (a.mib * 1024.0 * 1024.0 / 4.0).round().max(1.0) as u64;
    let validator = new_key()?;
    let relays: Vec<RelayProc> = (0..a.miners)
        .map(|i| start_relay(&mrd, validator.ss58_address(), a, i as usize))
        .collect::<anyhow::Result<_>>()?;
    let peer_keys: Vec<Keypair> = (0..a.peers)
        .map(|_| new_key())
        .collect::<anyhow::Result<_>>()?;
    let mut miners = Vec::new();
    for r in &relays {
        miners.push(MinerSlot {
            hotkey: new_key()?.ss58_address().to_string(),
            address: r.addr.clone(),
            weight: 1,
        });
    }
    let job_id = now_ms() ^ (u64::from(std::process::id()) << 40);
    let ticket = JobTicket {
        job_id,
        peers: peer_keys
            .iter()
            .map(|k| k.ss58_address().to_string())
            .collect(),
        miners,
        dtype: u32::from(a.dtype.code()),
        block_elems: a.block_kib * 256,
        elements,
        expires_at_ms: now_ms() + 3_600_000,
        deadline_ms: 10_000,
        ..Default::default()
    };
    let signed = issue(ticket, &validator).context("signing the ticket")?;
    let ticket_hex = hex::encode(signed.encode_to_vec());
    let data_seed = job_id.rotate_left(17);

    let mut peers = Vec::new();
    for (rank, k) in peer_keys.iter().enumerate() {
        let mut child = mrd_command(&mrd, a.peer_netns.get(rank))
            .arg("bench-peer")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} bench-peer", mrd.display()))?;
        let lines = lines_of(&mut child)?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let mut p = PeerProc {
            guard: Guard(child),
            stdin,
            lines,
            rank: rank as u32,
        };
        let setup = Setup {
            ticket_hex: ticket_hex.clone(),
            rank: rank as u32,
            secret_hex: hex::encode(k.mini_secret().ok_or_else(|| anyhow!("key without seed"))?),
            data_seed,
        };
        writeln!(p.stdin, "{}", serde_json::to_string(&setup)?)?;
        peers.push(p);
    }

    // A generous bound for one step: 10 MB/s per peer plus start-up.
    let step = Duration::from_secs(60) + Duration::from_secs_f64(a.mib * 1.05 / 10.0);
    for p in &mut peers {
        p.send(&PeerCmd::Connect)?;
    }
    let mut setup_ms: f64 = 0.0;
    for p in &peers {
        if let Reply::Connected { setup_ms: ms } = p.recv(step)? {
            setup_ms = setup_ms.max(ms);
        }
    }

    // (op, label, broadcast, sampling ppm)
    let mut ops: Vec<(String, String, bool, u32)> =
        vec![(a.op.to_string(), format!("all_reduce({})", a.op), false, 0)];
    let ppm = mapreduce::core::sample::rate_to_ppm(a.sample_rate);
    if ppm > 0 {
        ops.push((
            a.op.to_string(),
            format!("  sampled {}", a.sample_rate),
            false,
            ppm,
        ));
    }
    if !a.no_broadcast {
        ops.push(("broadcast".into(), "broadcast".into(), true, 0));
    }
    let total = u64::from((a.warmup + a.reps) * ops.len() as u32);
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let relay_cpu = || -> f64 { relays.iter().filter_map(|r| cpu_secs(r.guard.0.id())).sum() };
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    let mut peer_cpu: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    let mut reports: Vec<OpReport> = ops
        .iter()
        .map(|(_, label, _, _)| OpReport {
            op: label.clone(),
            times_s: Vec::new(),
            median_s: 0.0,
            min_s: 0.0,
            mb_per_s_per_peer: 0.0,
            relay_cpu_s: 0.0,
            peer_cpu_s: 0.0,
            check: "exact".into(),
            results_checked: 0,
        })
        .collect();
    for rep in 0..a.warmup + a.reps {
        for (i, (op, label, bcast, ppm)) in ops.iter().enumerate() {
            bar.set_message(format!(
                "{} {label}",
                if rep < a.warmup { "warm-up" } else { "rep" }
            ));
            if a.sample_rate > 0.0 {
                for p in &mut peers {
                    p.send(&PeerCmd::Sample {
                        seed: 0x5eed,
                        ppm: *ppm,
                    })?;
                }
                for p in &peers {
                    p.recv(step)?;
                }
            }
            let src = if *bcast { rep % a.peers } else { 0 };
            for p in &mut peers {
                p.send(&PeerCmd::Prepare {
                    op: op.clone(),
                    src,
                })?;
            }
            for p in &peers {
                p.recv(step)?;
            }
            let cpu_before = relay_cpu();
            for p in &mut peers {
                p.send(&PeerCmd::Go)?;
            }
            let mut secs: f64 = 0.0;
            let mut peers_cpu = 0.0;
            for p in &peers {
                if let Reply::Done {
                    secs: s,
                    cpu_s,
                    mismatch,
                } = p.recv(step)?
                {
                    secs = secs.max(s);
                    peers_cpu += cpu_s;
                    reports[i].results_checked += 1;
                    if let Some(m) = mismatch
                        && reports[i].check == "exact"
                    {
                        reports[i].check = format!("rank {}: {m}", p.rank);
                    }
                }
            }
            if rep >= a.warmup {
                reports[i].times_s.push(secs);
                cpu[i].push(relay_cpu() - cpu_before);
                peer_cpu[i].push(peers_cpu);
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let relay_peak_rss_mib = relays
        .iter()
        .filter_map(|r| peak_rss_mib(r.guard.0.id()))
        .fold(0.0, f64::max);
    let peer_peak_rss_mib = peers
        .iter()
        .filter_map(|p| peak_rss_mib(p.guard.0.id()))
        .fold(0.0, f64::max);
    for p in &mut peers {
        let _ = p.send(&PeerCmd::Quit);
    }
    let bytes = elements as f64 * 4.0;
    for ((r, c), pc) in reports.iter_mut().zip(&cpu).zip(&peer_cpu) {
        r.relay_cpu_s = median(c);
        r.peer_cpu_s = median(pc);
        r.median_s = median(&r.times_s);
        r.min_s = r.times_s.iter().copied().fold(f64::INFINITY, f64::min);
        r.mb_per_s_per_peer = bytes / r.median_s / 1e6;
    }
    Ok(Report {
        peers: a.peers,
        miners: a.miners,
        mib: a.mib,
        dtype: a.dtype.to_string(),
        block_kib: a.block_kib,
        reps: a.reps,
        warmup: a.warmup,
        setup_ms,
        ops: reports,
        relay_peak_rss_mib,
        peer_peak_rss_mib,
    })
}

fn print_table(r: &Report) {
    println!(
        "bench local: {} peers, {} relays, {} MiB {} (block {} KiB), {} reps after {} warm-up",
        r.peers, r.miners, r.mib, r.dtype, r.block_kib, r.reps, r.warmup
    );
    println!(
        "job set-up (first handshake sent to last accepted): {:.1} ms",
        r.setup_ms
    );
    println!(
        "{:<18} {:>10} {:>10} {:>14} {:>14} {:>14}  check",
        "operation", "median s", "min s", "MB/s per peer", "relay CPU s", "peer CPU s"
    );
    for o in &r.ops {
        println!(
            "{:<18} {:>10.3} {:>10.3} {:>14.1} {:>14.3} {:>14.3}  {} ({} results)",
            o.op,
            o.median_s,
            o.min_s,
            o.mb_per_s_per_peer,
            o.relay_cpu_s,
            o.peer_cpu_s,
            o.check,
            o.results_checked
        );
    }
    println!(
        "peak RSS: relay {:.1} MiB (largest of {}), peer {:.1} MiB (tensor {:.1} MiB)",
        r.relay_peak_rss_mib, r.miners, r.peer_peak_rss_mib, r.mib
    );
}
