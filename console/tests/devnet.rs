//! Acceptance of the one-command local network (issue 10): `scripts/devnet up` in a temporary data
//! folder, on free ports, with its admin sockets in a temporary runtime folder (so it never meets
//! a devnet the user runs), using the `mrd` and `mrctl` cargo built for this test. Then:
//! `mrctl status --json` of each daemon (validator, 3 miners, 2 bench bots: identity, ready, chain
//! block); each daemon's Prometheus `/metrics` (a few series present and non-zero); every metric the
//! Grafana dashboard (scripts/grafana/mapreduce.json) queries is one the daemons really serve;
//! `scripts/devnet down`, after which no process it started is left (by pid, and no process whose
//! command line names the test's data folder).
//!
//! `mrd` must be built beside `mrctl` (`cargo test --workspace` builds both; for this test alone:
//! `cargo build -p mapreduce --bin mrd` first). The chain is chopsticks (`scripts/chain-up`; CI
//! installs it). Bounded: `up` gets 900 s, then everything it started is stopped.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ROLES: [&str; 6] = [
    "validator",
    "miner1",
    "miner2",
    "miner3",
    "bench1",
    "bench2",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The folder with `mrd` and `mrctl` (the test's own build; the harness names the build command
/// when `mrd` is missing).
fn bin_dir() -> PathBuf {
    mr_testkit::mrctl_bin();
    mr_testkit::mrd_bin()
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// A port free on 127.0.0.1 now (the devnet re-checks it on every address it binds).
fn free_port() -> u16 {
    mr_testkit::free_port()
}

/// The devnet of this test: its folders, and `down` plus a kill of every pid it recorded on drop,
/// so a failed assertion leaves nothing running.
struct Devnet {
    dir: tempfile::TempDir,
    runtime: PathBuf,
    env: Vec<(String, String)>,
}

impl Devnet {
    fn new() -> Devnet {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = dir.path().join("run");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        let env = vec![
            (
                "MR_DEVNET_DIR".into(),
                dir.path().join("devnet").display().to_string(),
            ),
            ("MR_DEVNET_BIN_DIR".into(), bin_dir().display().to_string()),
            (
                "MAPREDUCE_RUNTIME_DIR".into(),
                runtime.display().to_string(),
            ),
            ("MR_DEVNET_CHAIN_PORT".into(), free_port().to_string()),
            ("MR_DEVNET_AXON_PORT".into(), free_port().to_string()),
            ("MR_DEVNET_RELAY_PORT".into(), free_port().to_string()),
            ("MR_DEVNET_METRICS_PORT".into(), free_port().to_string()),
            // Faster rounds than an operator's devnet: weights every 5 blocks.
            ("MR_VALIDATOR_WEIGHTS_INTERVAL_BLOCKS".into(), "5".into()),
        ];
        Devnet { dir, runtime, env }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("devnet")
    }

    fn script(&self, arg: &str) -> Command {
        let mut c = Command::new(root().join("scripts/devnet"));
        c.arg(arg).current_dir(root());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        // The user's devnet and config must not leak in.
        c.env_remove("MR_CONFIG");
        c
    }

    /// `scripts/devnet up`, killed (and its processes stopped by drop) after `limit`.
    fn up(&self, limit: Duration) -> (bool, String) {
        let log = self.dir.path().join("up.log");
        let out = std::fs::File::create(&log).expect("up log");
        let err = out.try_clone().expect("up log");
        let mut child = self
            .script("up")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn scripts/devnet up");
        let end = Instant::now() + limit;
        let ok = loop {
            match child.try_wait().expect("wait up") {
                Some(st) => break st.success(),
                None if Instant::now() > end => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break false;
                }
                None => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        (ok, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// pid of each role's pid file (chain included).
    fn pids(&self) -> Vec<(String, u32)> {
        let mut v = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.data().join("pids")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(role) = name.strip_suffix(".pid") else {
                    continue;
                };
                if let Some(pid) = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    v.push((role.to_string(), pid));
                }
            }
        }
        v.sort();
        v
    }

    fn log(&self, role: &str) -> String {
        std::fs::read_to_string(self.data().join("logs").join(format!("{role}.log")))
            .unwrap_or_default()
    }

    fn mrctl(&self, role: &str, args: &[&str]) -> Output {
        let sock = self.runtime.join(format!("{role}.sock"));
        Command::new(env!("CARGO_BIN_EXE_mrctl"))
            .arg("--connect")
            .arg(&sock)
            .args(args)
            .env("MAPREDUCE_RUNTIME_DIR", &self.runtime)
            .stdin(Stdio::null())
            .output()
            .expect("run mrctl")
    }

    fn metrics_port(&self, role: &str) -> u16 {
        let ports = std::fs::read_to_string(self.data().join("ports.env")).expect("ports.env");
        let base: u16 = ports
            .lines()
            .find_map(|l| l.strip_prefix("METRICS_PORT="))
            .and_then(|v| v.trim().parse().ok())
            .expect("METRICS_PORT in ports.env");
        base + ROLES.iter().position(|r| *r == role).expect("role") as u16
    }
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
                if cmd.contains(needle) {
                    v.push((pid, cmd));
                }
            }
        }
    }
    v
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose (it holds no port, socket or memory).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let pids = self.pids();
        let _ = self
            .script("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for (_, pid) in pids {
            if alive(pid) {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
        for (pid, _) in processes_naming(&self.dir.path().display().to_string()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// GET http://127.0.0.1:port/metrics, the body.
fn scrape(port: u16) -> String {
    let (status, body) = mr_testkit::scrape(&format!("127.0.0.1:{port}"));
    assert!(status.contains(" 200 "), "metrics port {port}: {status}");
    body
}

/// Samples of the text exposition: (name, labels, value).
fn samples(body: &str) -> Vec<(String, String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_string(), labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of `name` (summed over its label sets), None when absent.
fn value(s: &[(String, String, f64)], name: &str) -> Option<f64> {
    let v: Vec<f64> = s
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|x| x.2)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

/// Every metric name a scrape declares or samples (`# TYPE x counter` serves `x_total`).
fn served_names(body: &str, into: &mut BTreeSet<String>) {
    for l in body.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                into.insert(name.to_string());
                if kind == "counter" {
                    into.insert(format!("{name}_total"));
                }
            }
        }
    }
    for (n, _, _) in samples(body) {
        into.insert(n);
    }
}

/// Metric names (`mapreduce_...`) in the dashboard's queries, from its JSON.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = root().join("scripts/grafana/mapreduce.json");
    let text = std::fs::read_to_string(&path).expect("scripts/grafana/mapreduce.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(x, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash, &mut exprs);
    assert!(exprs.len() >= 10, "too few queries in {}", path.display());
    let mut names = BTreeSet::new();
    for e in &exprs {
        let b = e.as_bytes();
        let mut i = 0;
        while let Some(p) = e[i..].find("mapreduce_") {
            let start = i + p;
            let boundary =
                start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            if boundary {
                names.insert(e[start..end].to_string());
            }
            i = end;
        }
    }
    names
}

/// The dashboard is well-formed: JSON, panels with queries, and only series named in the
/// exporter's source (the devnet test below checks them against real scrapes too).
#[test]
fn grafana_dashboard_queries_exporter_series() {
    let names = dashboard_metrics();
    assert!(names.len() >= 15, "{names:?}");
    let src = std::fs::read_to_string(root().join("daemon/src/admin/prometheus.rs"))
        .expect("prometheus.rs");
    // Every string literal of the exporter, as a series name with its prefix (and a counter's
    // `_total`): what it registers is among them.
    let mut known = BTreeSet::new();
    for lit in src.split('"').skip(1).step_by(2) {
        if !lit.is_empty() && lit.bytes().all(|c| c.is_ascii_lowercase() || c == b'_') {
            known.insert(format!("mapreduce_{lit}"));
            known.insert(format!("mapreduce_{lit}_total"));
        }
    }
    let unknown: Vec<_> = names.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "dashboard queries unknown series {unknown:?}"
    );
    for must in [
        "mapreduce_received_bytes_total",
        "mapreduce_sent_bytes_total",
        "mapreduce_jobs",
        "mapreduce_bot_benchmarks_total",
        "mapreduce_miner_score_ema",
        "mapreduce_miner_weight",
        "mapreduce_chain_block",
        "mapreduce_chain_block_age_seconds",
        "mapreduce_refusals_total",
        "mapreduce_process_resident_memory_bytes",
    ] {
        assert!(names.contains(must), "the dashboard has no panel on {must}");
    }
}

fn json_of(o: &Output, what: &str) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

fn hotkey_of(wallets: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(wallets.join(name).join("hotkeys/default"))
        .unwrap_or_else(|e| panic!("{name}'s hotkey: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("hotkey file is JSON");
    v["ss58Address"]
        .as_str()
        .expect("ss58Address in the hotkey file")
        .to_string()
}

#[test]
fn devnet_up_status_metrics_down() {
    let started = Instant::now();
    let net = Devnet::new();
    let (ok, out) = net.up(Duration::from_secs(900));
    assert!(
        ok,
        "scripts/devnet up failed after {:.0} s:\n{out}\nvalidator log tail:\n{}",
        started.elapsed().as_secs_f64(),
        net.log("validator")
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let up_secs = started.elapsed().as_secs_f64();
    assert!(
        out.contains("demo job") && out.contains("weights set at block"),
        "up ended without the demo job and weights:\n{out}"
    );
    let pids = net.pids();
    let roles: Vec<&str> = pids.iter().map(|(r, _)| r.as_str()).collect();
    for r in ROLES.iter().chain(["chain"].iter()) {
        assert!(roles.contains(r), "no pid file for {r}: {roles:?}\n{out}");
    }
    for (r, pid) in &pids {
        assert!(alive(*pid), "{r} (pid {pid}) is not running after up");
    }

    // mrctl status --json of each daemon, through its own admin socket.
    let wallets = net.data().join("wallets");
    for role in ROLES {
        let st = json_of(
            &net.mrctl(role, &["status", "--json"]),
            &format!("mrctl status --json ({role})"),
        );
        let want_role = role.trim_end_matches(char::is_numeric);
        assert_eq!(st["role"], want_role, "{role}: {st}");
        assert_eq!(st["hotkey"], hotkey_of(&wallets, role), "{role}: {st}");
        assert_eq!(st["ready"], true, "{role}: {st}");
        assert!(
            st["last_block"].as_u64().unwrap_or(0) > 0,
            "{role} has seen no block: {st}"
        );
        let pid = pids.iter().find(|(r, _)| r == role).map(|x| x.1);
        assert_eq!(st["pid"].as_u64(), pid.map(u64::from), "{role}: {st}");
        if want_role == "miner" {
            assert!(!st["uid"].is_null(), "{role} is not registered: {st}");
        }
    }

    // A bad handshake on miner1's relay: refused, and counted in its refusals.
    let st = json_of(&net.mrctl("miner1", &["status", "--json"]), "miner1 status");
    let relay = st["miner"]["relay_address"]
        .as_str()
        .expect("miner1 relay address")
        .to_string();
    {
        let mut c = TcpStream::connect(&relay).unwrap_or_else(|e| panic!("relay {relay}: {e}"));
        c.set_read_timeout(Some(Duration::from_secs(10))).ok();
        c.write_all(&[0x5a; 64]).expect("send junk");
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }

    // /metrics of each daemon.
    let mut served = BTreeSet::new();
    let mut bot_ok = 0.0;
    for role in ROLES {
        let body = scrape(net.metrics_port(role));
        served_names(&body, &mut served);
        let s = samples(&body);
        let need =
            |name: &str| value(&s, name).unwrap_or_else(|| panic!("{role}: no {name} in\n{body}"));
        assert_eq!(need("mapreduce_ready"), 1.0, "{role}");
        assert!(need("mapreduce_chain_block") > 0.0, "{role}");
        assert!(
            need("mapreduce_process_resident_memory_bytes") > 1e6,
            "{role}"
        );
        assert!(
            s.iter().any(|(n, l, v)| n == "mapreduce_info"
                && l.contains(&hotkey_of(&wallets, role))
                && *v == 1.0),
            "{role}: info without its hotkey:\n{body}"
        );
        match role.trim_end_matches(char::is_numeric) {
            "miner" => {
                // Every miner relayed a benchmark, and most the demo job.
                assert!(need("mapreduce_received_bytes_total") > 0.0, "{role}");
                assert!(need("mapreduce_sent_bytes_total") > 0.0, "{role}");
                if role == "miner1" {
                    assert!(
                        s.iter().any(|(n, l, v)| n == "mapreduce_refusals_total"
                            && l.contains("place=\"relay\"")
                            && *v >= 1.0),
                        "miner1: the bad handshake is not counted:\n{body}"
                    );
                }
                let served = need("mapreduce_jobs_served_total");
                assert!(served >= 1.0, "{role}: jobs served {served}\n{body}");
                assert!(need("mapreduce_relay_memory_limit_bytes") > 0.0, "{role}");
            }
            "validator" => {
                assert!(need("mapreduce_benchmarks_total") >= 3.0, "{role}");
                assert_eq!(need("mapreduce_miners_reachable"), 3.0, "{role}");
                assert!(need("mapreduce_weights_last_set_block") > 0.0, "{role}");
                let weights: Vec<f64> = s
                    .iter()
                    .filter(|(n, _, _)| n == "mapreduce_miner_weight")
                    .map(|x| x.2)
                    .collect();
                assert!(
                    weights.iter().filter(|w| **w > 0.0).count() >= 3,
                    "validator: not 3 miners with weight: {weights:?}"
                );
            }
            _ => {
                bot_ok += s
                    .iter()
                    .filter(|(n, l, _)| {
                        n == "mapreduce_bot_benchmarks_total" && l.contains("outcome=\"ok\"")
                    })
                    .map(|x| x.2)
                    .sum::<f64>();
            }
        }
    }
    assert!(bot_ok >= 3.0, "the bots ran {bot_ok} good benchmarks");

    // The dashboard queries only series the daemons serve.
    let unknown: Vec<_> = dashboard_metrics()
        .into_iter()
        .filter(|n| !served.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard series no daemon serves: {unknown:?}\nserved: {served:?}"
    );

    // down: nothing it started is left.
    let o = net.script("down").output().expect("scripts/devnet down");
    assert!(o.status.success(), "down: {o:?}");
    let left: Vec<_> = pids.iter().filter(|(_, p)| alive(*p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    let strays: Vec<_> = processes_naming(&net.dir.path().display().to_string())
        .into_iter()
        .filter(|(p, _)| alive(*p))
        .collect();
    assert!(
        strays.is_empty(),
        "processes naming the devnet folder: {strays:?}"
    );
    let status = net
        .script("status")
        .output()
        .expect("scripts/devnet status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        !status.contains(": running (pid"),
        "status after down: {status}"
    );
    eprintln!(
        "devnet acceptance: up {up_secs:.0} s, whole test {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
