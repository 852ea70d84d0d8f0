//! Attacks on the admin API (issue 12), one test per case, against a real `mrd bench` process
//! (the one daemon that serves its admin API without a chain: its chain endpoint here is a closed
//! port) with its Unix socket and token file in a temp folder. Each test checks the refusal and
//! that nothing changed: the config file is byte-identical with no temp file left, and the daemon
//! still answers the genuine token.
//!
//! Every refusal case shares one daemon (started once, killed by pid when the binary exits), one
//! case at a time so each "nothing changed" check sees only its own call; the loose-token-file
//! case starts its own, since the daemon must refuse to start.
//!
//! Needs `mrd` built beside `mrctl` (`cargo test --workspace` builds it; alone: `cargo build -p
//! mapreduce --bin mrd`).

use mapreduce::wallet::Wallet;
use mr_proto::v1::admin_client::AdminClient;
use mr_proto::v1::{ConfigSet, GetStatusRequest, UpdateConfigRequest, UpdateConfigResponse};
use mr_testkit::{NodeConfig, Proc, field, mrctl, shared};
use mrctl::client::{Bearer, Target, channel};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use tonic::Code;

/// A running `mrd bench` and where its files are.
struct Daemon {
    home: PathBuf,
    socket: String,
    token_file: PathBuf,
    config: PathBuf,
}

/// The folder, wallet and config of a bench bot (not started).
fn prepare() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let run = dir.path().join("run");
    let wallets = dir.path().join("wallets");
    Wallet::new(&wallets, "bench1", "default")
        .create_hotkey(12, false)
        .expect("hotkey");
    let validator = Wallet::new(&wallets, "validator", "default")
        .create_hotkey(12, false)
        .expect("hotkey");
    // No chain (a closed port) and a validator that never answers: the bot starts, its admin
    // API serves, its benchmarks back off.
    let cfg = NodeConfig::new("bench1", 1, "ws://127.0.0.1:1", "127.0.0.1")
        .socket_in(&run)
        .header("bench1's configuration")
        .extra(&format!(
            "[bench]\nvalidator = \"127.0.0.1:9\"\nvalidator_hotkey = \"{}\"\nbackoff_initial_secs = 5\n",
            validator.ss58_address()
        ))
        .write(dir.path());
    (dir, home, cfg)
}

static DAEMON: OnceLock<Daemon> = OnceLock::new();
/// One case at a time against the shared daemon.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The shared daemon (started by the first case) and the turn of the calling case.
async fn start() -> (&'static Daemon, tokio::sync::MutexGuard<'static, ()>) {
    let turn = ONE_AT_A_TIME.lock().await;
    let d = DAEMON.get_or_init(|| {
        let (dir, home, config) = prepare();
        // The folder lives as long as the daemon (until the binary exits).
        let dir = dir.keep();
        let mut p = Proc::mrd(&home, &config, &["bench"], &dir.join("bench1.log"));
        let line = p.wait_line("bench ready");
        let socket = field(&line, "admin");
        let token_file = dir.join("run").join("bench1.token");
        assert!(token_file.is_file(), "{line}");
        shared::keep(p);
        Daemon {
            home,
            socket,
            token_file,
            config,
        }
    });
    (d, turn)
}

fn token(d: &Daemon) -> String {
    std::fs::read_to_string(&d.token_file)
        .expect("token")
        .trim()
        .to_string()
}

async fn raw_channel(d: &Daemon) -> tonic::transport::Channel {
    channel(&Target::parse(&d.socket)).await.expect("channel")
}

/// Nothing changed: the genuine token still works.
async fn still_serves(d: &Daemon) {
    let ch = raw_channel(d).await;
    let mut c = AdminClient::with_interceptor(ch, Bearer::new(&token(d)).expect("bearer"));
    let s = c
        .get_status(GetStatusRequest {})
        .await
        .expect("the genuine token is served")
        .into_inner();
    assert!(s.ready, "{s:?}");
}

/// Nothing changed on disk: the config is byte-identical, no temp file beside it.
fn file_unchanged(d: &Daemon, before: &[u8]) {
    assert_eq!(
        std::fs::read(&d.config).expect("read"),
        before,
        "config file changed"
    );
    let dir = d.config.parent().expect("dir");
    let temps: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with(".bench1"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_refused() {
    let (d, _turn) = start().await;
    let mut c = AdminClient::new(raw_channel(d).await);
    let e = c
        .get_status(GetStatusRequest {})
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("admin token"), "{}", e.message());
    still_serves(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused() {
    let (d, _turn) = start().await;
    let mut c = AdminClient::with_interceptor(
        raw_channel(d).await,
        Bearer::new("0123456789abcdef0123456789abcdef").expect("bearer"),
    );
    let e = c
        .get_status(GetStatusRequest {})
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    still_serves(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_token_in_the_wrong_scheme_is_refused() {
    let (d, _turn) = start().await;
    let basic: tonic::metadata::MetadataValue<_> =
        format!("Basic {}", token(d)).parse().expect("ascii");
    let mut c =
        AdminClient::with_interceptor(raw_channel(d).await, move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", basic.clone());
            Ok(r)
        });
    let e = c
        .get_status(GetStatusRequest {})
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    still_serves(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_prefix_is_refused() {
    let (d, _turn) = start().await;
    let t = token(d);
    let mut c = AdminClient::with_interceptor(
        raw_channel(d).await,
        Bearer::new(&t[..t.len() - 1]).expect("bearer"),
    );
    let e = c
        .get_status(GetStatusRequest {})
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    still_serves(d).await;
}

#[test]
fn daemon_refuses_to_start_with_a_loose_token_file_and_says_why() {
    let (dir, home, config) = prepare();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("run");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let token_file = run.join("bench1.token");
    std::fs::write(&token_file, "0123456789abcdef0123456789abcdef\n").expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = dir.path().join("bench1.log");
    let mut p = Proc::mrd(&home, &config, &["bench"], &log);
    let st = p.wait_exit(Duration::from_secs(60));
    assert!(!st.success(), "started with a world-readable token file");
    let err = p.log_text();
    assert!(err.contains("has mode 0644"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    assert!(
        !run.join("bench1.sock").exists(),
        "a socket was left behind"
    );
    // The token file itself is untouched.
    assert_eq!(
        std::fs::read_to_string(&token_file).expect("token"),
        "0123456789abcdef0123456789abcdef\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrctl_refuses_a_loose_token_file_and_says_why() {
    let (d, _turn) = start().await;
    let loose = d.home.join("loose.token");
    std::fs::write(&loose, format!("{}\n", token(d))).expect("token");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = mrctl(
        &d.home,
        &[
            "--connect",
            &d.socket,
            "--token-file",
            loose.to_str().expect("utf8"),
            "status",
        ],
    );
    assert!(!o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("chmod 600"), "{err}");
}

/// An UpdateConfig that must be refused: returns the problems' text.
async fn refused_update(d: &Daemon, req: UpdateConfigRequest) -> String {
    let before = std::fs::read(&d.config).expect("read");
    let mut c = AdminClient::with_interceptor(
        raw_channel(d).await,
        Bearer::new(&token(d)).expect("bearer"),
    );
    let text = match c.update_config(req).await {
        Ok(r) => {
            let r: UpdateConfigResponse = r.into_inner();
            assert!(!r.applied, "applied: {r:?}");
            assert!(!r.problems.is_empty(), "no problem named: {r:?}");
            r.problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        }
        Err(e) => {
            assert!(
                matches!(e.code(), Code::InvalidArgument | Code::FailedPrecondition),
                "{e:?}"
            );
            e.message().to_string()
        }
    };
    file_unchanged(d, &before);
    still_serves(d).await;
    text
}

fn set(key: &str, value: &str) -> UpdateConfigRequest {
    UpdateConfigRequest {
        set: vec![ConfigSet {
            key: key.into(),
            value: value.into(),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_with_a_value_out_of_range_changes_nothing() {
    let (d, _turn) = start().await;
    let why = refused_update(d, set("bench.peers", "0")).await;
    assert!(why.contains("bench.peers"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_with_an_unknown_key_changes_nothing() {
    let (d, _turn) = start().await;
    let why = refused_update(d, set("bench.pears", "3")).await;
    assert!(why.contains("pears"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_with_a_wrong_type_changes_nothing() {
    let (d, _turn) = start().await;
    let why = refused_update(d, set("bench.mib", "\"lots\"")).await;
    assert!(why.contains("mib"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_with_malformed_toml_changes_nothing() {
    let (d, _turn) = start().await;
    let why = refused_update(
        d,
        UpdateConfigRequest {
            toml: "[bench\nmib = ".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(!why.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_replacing_the_file_with_garbage_changes_nothing() {
    let (d, _turn) = start().await;
    let why = refused_update(
        d,
        UpdateConfigRequest {
            replace: "this is ]] not toml".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(!why.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_without_a_token_changes_nothing() {
    let (d, _turn) = start().await;
    let before = std::fs::read(&d.config).expect("read");
    let mut c = AdminClient::new(raw_channel(d).await);
    let e = c
        .update_config(set("bench.mib", "8"))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    file_unchanged(d, &before);
    still_serves(d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_dry_run_changes_nothing() {
    let (d, _turn) = start().await;
    let before = std::fs::read(&d.config).expect("read");
    let mut c = AdminClient::with_interceptor(
        raw_channel(d).await,
        Bearer::new(&token(d)).expect("bearer"),
    );
    let mut req = set("bench.mib", "8");
    req.dry_run = true;
    let r = c.update_config(req).await.expect("dry run").into_inner();
    assert!(!r.applied, "{r:?}");
    assert!(r.diff.contains("mib"), "{r:?}");
    file_unchanged(d, &before);
}
