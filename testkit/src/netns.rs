//! Network-namespace labs for tests that need real, shaped links (root, iproute2): a thin guard
//! over `scripts/netns/lab.sh`, the same set-up `scripts/bench/wan.sh` sources. Every node is its
//! own namespace `<lab>-<node>` with one veth on a bridge in `<lab>-hub`, both directions shaped
//! with tbf; addresses exist only inside the lab's namespaces. [`Lab`] removes every namespace
//! of the lab (and kills what still runs in them) when dropped, also when the test panics.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// One node of a lab: its name (namespace `<lab>-<name>`), address, and tc rates of its own
/// upload and download ("400mbit", "2gbit"; "0" leaves a direction unshaped).
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub ip: String,
    pub up: String,
    pub down: String,
}

impl Node {
    pub fn new(name: &str, ip: &str, up: &str, down: &str) -> Node {
        Node {
            name: name.into(),
            ip: ip.into(),
            up: up.into(),
            down: down.into(),
        }
    }
}

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts/netns/lab.sh")
}

/// Must this machine run namespace tests (CI sets `CI`; `.ci/run` sets `MR_REQUIRE_SYSTEM_TOOLS`)?
pub fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("MR_REQUIRE_SYSTEM_TOOLS").is_some()
}

/// Why this machine cannot run a lab (not root, no `ip`/`tc`, namespaces refused), or `None`.
pub fn unavailable() -> Option<String> {
    match Command::new("bash").arg(lab_script()).arg("check").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Err(e) => Some(format!("cannot run bash: {e}")),
    }
}

/// `true` when `test` can run here. Otherwise prints that it is skipped and why (stdout and
/// stderr, so it shows with and without --nocapture) and returns `false`, or panics when the
/// machine is required to run it ([`required`]): never a silent pass.
pub fn can_run_or_skip(test: &str) -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    assert!(!required(), "CI must run {test}, but: {why}");
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// A running lab; dropping it removes its namespaces and whatever runs in them.
pub struct Lab {
    pub name: String,
    pub nodes: Vec<String>,
}

impl Lab {
    /// A lab named `<prefix><pid>` (unique per run) with `nodes`; panics with lab.sh's output
    /// when the set-up fails (lab.sh removes a half-built lab itself).
    pub fn up(prefix: &str, nodes: &[Node]) -> Lab {
        let name = format!("{prefix}{}", std::process::id());
        let mut cmd = Command::new("bash");
        cmd.arg(lab_script()).args(["up", &name]);
        for n in nodes {
            cmd.args([&n.name, &n.ip, &n.up, &n.down]);
        }
        // The guard first: a failure below still removes whatever was created.
        let lab = Lab {
            name,
            nodes: nodes.iter().map(|n| n.name.clone()).collect(),
        };
        let out = cmd.output().expect("run lab.sh up");
        assert!(
            out.status.success(),
            "lab.sh up {} failed: {}\n{}",
            lab.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    /// The namespace of node `node`.
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    /// `tc -s qdisc` of every shaped device (the node side and the hub side), for a failure
    /// message or a report: rates, drops, backlog.
    pub fn qdisc_stats(&self) -> String {
        let mut out = String::new();
        let every = std::iter::once("hub").chain(self.nodes.iter().map(String::as_str));
        for ns in every.map(|n| self.ns(n)) {
            if let Ok(o) = Command::new("ip")
                .args(["netns", "exec", &ns, "tc", "-s", "qdisc"])
                .output()
            {
                out.push_str(&format!("{ns}:\n{}", String::from_utf8_lossy(&o.stdout)));
            }
        }
        out
    }

    /// Runs the current test binary again inside node `node`'s namespace, with `env_key` set to
    /// the lab's name (the test checks it to run its inner part), and waits up to `limit` for it.
    /// Everything the inner run starts lives in that namespace (or in the ones it enters).
    pub fn rerun_test_inside(&self, node: &str, test: &str, env_key: &str, limit: Duration) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .arg(std::env::current_exe().expect("test binary"))
            .args([
                test,
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "--include-ignored",
            ])
            .env(env_key, &self.name)
            .spawn()
            .expect("re-run the test inside the lab");
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{test} inside the lab ran over {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(status.success(), "{test} inside the lab failed: {status}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", &self.name])
            .status();
    }
}

/// Forwards TCP from `listen` (an address of the current namespace) to `127.0.0.1:to`, so nodes
/// in other namespaces reach a service that binds loopback only (chopsticks). Returns the
/// forwarder's address; it runs until the runtime stops.
pub async fn forward(listen: &str, to: u16) -> String {
    let l = tokio::net::TcpListener::bind((listen, 0))
        .await
        .expect("bind forwarder");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut a, _)) = l.accept().await {
            tokio::spawn(async move {
                if let Ok(mut b) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    });
    addr.to_string()
}
