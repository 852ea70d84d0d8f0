//! Acceptance of the admin API and the scriptable `mrctl` commands (issue 8), all real: the
//! subtensor runtime under chopsticks, `mrd validator`, `mrd miner` and `mrd bench` processes
//! on 127.0.0.x with their admin sockets in a temp folder, and `mrctl` run as a process.
//!
//! `mrd` is the binary cargo built beside `mrctl` (`cargo test --workspace` builds both; for
//! this test alone: `cargo build -p mapreduce --bin mrd` first). Every child is killed by pid
//! when the test ends, even on failure.

use mr_testkit::{DevNet, NodeConfig, Proc, Step, field, mrctl};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(o: &Output) -> String {
    let (out, err) = text(o);
    assert!(
        o.status.success(),
        "mrctl failed ({}): {err}\n{out}",
        o.status
    );
    out
}

fn json(o: &Output) -> serde_json::Value {
    let out = ok(o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The network's config of `name`: admin socket in DIR/run, a comment line that
/// `mrctl config set` must keep.
fn write_config(dir: &Path, name: &str, netuid: u16, ws: &str, ip: &str, extra: &str) -> PathBuf {
    NodeConfig::new(name, netuid, ws, ip)
        .header(&format!(
            "{name}'s configuration (comments are kept by mrctl config set)"
        ))
        .socket_in(&dir.join("run"))
        .extra(extra)
        .write(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mrctl_against_real_daemons() {
    let mut t = Step::start();
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let run = dir.path().join("run");
    let wallets = dir.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (ws, netuid) = (net.ws.clone(), net.netuid);
    let mut keys = Vec::new();
    let mut uids = Vec::new();
    for name in ["validator", "miner1"] {
        let (k, uid) = net.register(name).await;
        keys.push(k);
        uids.push(uid);
    }
    let bot = net.hotkey("bench1");
    t.done(&format!(
        "chain {ws}, subnet {netuid}, validator and miner registered"
    ));

    let mcfg = write_config(dir.path(), "miner1", netuid, &ws, "127.0.0.3", "");
    let mut miner = Proc::mrd(&home, &mcfg, &["miner"], &dir.path().join("miner1.log"));
    let mline = miner.wait_line("miner ready");
    let vextra = format!(
        "benchmark_hotkeys = [\"{}\"]\nweights_interval_blocks = 5\n",
        bot.ss58_address()
    );
    let vcfg = write_config(dir.path(), "validator", netuid, &ws, "127.0.0.2", &vextra);
    let mut validator = Proc::mrd(
        &home,
        &vcfg,
        &["validator"],
        &dir.path().join("validator.log"),
    );
    let vline = validator.wait_line("validator ready");
    let vsock = field(&vline, "admin");
    let msock = field(&mline, "admin");
    assert_eq!(PathBuf::from(&vsock), run.join("validator.sock"));
    t.done("miner and validator ready");

    // The token file beside the socket, private.
    let token = run.join("validator.token");
    let mode = std::fs::metadata(&token)
        .expect("token")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "token file mode");

    // status --json: role and hotkey.
    let st = json(&mrctl(&home, &["--connect", &vsock, "status", "--json"]));
    assert_eq!(st["schema_version"], 1);
    assert_eq!(st["role"], "validator");
    assert_eq!(st["hotkey"], keys[0].ss58_address());
    assert_eq!(st["uid"], u64::from(uids[0]));
    assert_eq!(st["ready"], true);
    assert_eq!(st["validator"]["bots_known"], 1);
    let st = json(&mrctl(&home, &["--connect", &msock, "status", "--json"]));
    assert_eq!(st["role"], "miner");
    assert_eq!(st["hotkey"], keys[1].ss58_address());
    assert!(
        st["miner"]["relay_address"]
            .as_str()
            .expect("relay")
            .starts_with("127.0.0.3:")
    );
    let human = ok(&mrctl(&home, &["--connect", &vsock, "status"]));
    assert!(
        human.contains("validator") && human.contains(keys[0].ss58_address()),
        "{human}"
    );
    t.done("status --json: right role and hotkey for the validator and the miner");

    // Discovery without --connect: every socket of the runtime folder; --role picks.
    let found = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mrctl"));
        c.env_clear()
            .env("HOME", &home)
            .env("MAPREDUCE_RUNTIME_DIR", &run)
            .args(args)
            .stdin(Stdio::null());
        c.output().expect("mrctl")
    };
    let st = json(&found(&["--role", "validator", "status", "--json"]));
    assert_eq!(st["hotkey"], keys[0].ss58_address());
    let st = json(&found(&["--role", "miner", "status", "--json"]));
    assert_eq!(st["hotkey"], keys[1].ss58_address());
    let o = found(&["status"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "several daemons, no --role: {:?}",
        text(&o)
    );
    assert!(text(&o).1.contains("--role"), "{:?}", text(&o));
    t.done("discovery in the runtime folder: --role picks, none given is exit 2");

    // A wrong --role with --connect is refused and says what runs there.
    let o = mrctl(
        &home,
        &["--connect", &msock, "--role", "validator", "status"],
    );
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(text(&o).1.contains("miner"), "{:?}", text(&o));

    // miners: the validator's view, with the miner's uid.
    let m = json(&mrctl(&home, &["--connect", &vsock, "miners", "--json"]));
    let list = m["miners"].as_array().expect("miners");
    assert!(
        list.iter()
            .any(|x| x["uid"] == u64::from(uids[1]) && x["hotkey"] == keys[1].ss58_address()),
        "{m}"
    );
    let w = json(&mrctl(&home, &["--connect", &vsock, "weights", "--json"]));
    assert_eq!(w["interval_blocks"], 5, "{w}");
    let j = json(&mrctl(&home, &["--connect", &vsock, "jobs", "--json"]));
    assert!(j["jobs"].is_array());
    t.done("miners, weights, jobs");

    // A wrong token: unauthenticated, exit 1.
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef\n").expect("write");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "--token-file",
            wrong.to_str().expect("utf8"),
            "status",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).1.contains("unauthenticated"), "{:?}", text(&o));
    t.done("wrong token: unauthenticated");

    // An invalid value: fails, names the key, the file is byte-identical.
    let before = std::fs::read(&vcfg).expect("read");
    let o = mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "config",
            "set",
            "validator.sample_rate",
            "7",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("validator.sample_rate"),
        "{:?}",
        text(&o)
    );
    let o = mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "config",
            "set",
            "validator.sampel_rate",
            "0.5",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).1.contains("sample_rate"), "{:?}", text(&o));
    assert_eq!(
        std::fs::read(&vcfg).expect("read"),
        before,
        "file unchanged"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    t.done("invalid set refused naming the key; file byte-identical");

    // A valid set, applied live: debug lines appear in the daemon's log stream only after it.
    let debug_lines = |home: &Path| -> usize {
        let o = mrctl(
            home,
            &[
                "--connect",
                &vsock,
                "logs",
                "--level",
                "debug",
                "-n",
                "2000",
            ],
        );
        ok(&o).lines().filter(|l| l.contains("DEBUG")).count()
    };
    assert_eq!(debug_lines(&home), 0, "info level before the change");
    let out = ok(&mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "config",
            "set",
            "logging.debug",
            "true",
        ],
    ));
    assert!(out.contains("applied live: logging.debug"), "{out}");
    assert!(out.contains("+debug = true"), "{out}");
    let after = std::fs::read_to_string(&vcfg).expect("read");
    assert!(after.contains("[logging]\ndebug = true"), "{after}");
    assert!(
        after.starts_with("# validator's configuration"),
        "comments kept: {after}"
    );
    let got = ok(&mrctl(
        &home,
        &["--connect", &vsock, "config", "get", "logging.debug"],
    ));
    assert_eq!(got.trim(), "true");
    // The admin server logs each call at debug level: the calls above are now in the stream.
    assert!(debug_lines(&home) > 0, "debug level applied live");
    // A key that needs a restart is persisted and said so.
    let out = ok(&mrctl(
        &home,
        &[
            "--connect",
            &vsock,
            "config",
            "set",
            "validator.miner_timeout_secs",
            "7",
        ],
    ));
    assert!(
        out.contains("after a restart: validator.miner_timeout_secs"),
        "{out}"
    );
    t.done("valid sets persisted; logging.debug applied live; restart-only key reported");

    // bench start --all through a bench daemon: a result per miner.
    let bextra = format!(
        "[bench]\nvalidator = \"{}\"\nvalidator_hotkey = \"{}\"\nmib = 4\npeers = 2\ninterval_secs = 3600\n",
        field(&vline, "axon"),
        keys[0].ss58_address()
    );
    let bcfg = write_config(dir.path(), "bench1", netuid, &ws, "127.0.0.6", "");
    let text_cfg = std::fs::read_to_string(&bcfg).expect("read") + &bextra;
    std::fs::write(&bcfg, text_cfg).expect("write");
    let mut bench = Proc::mrd(&home, &bcfg, &["bench"], &dir.path().join("bench1.log"));
    let bline = bench.wait_line("bench ready");
    let bsock = field(&bline, "admin");
    let r = json(&mrctl(
        &home,
        &[
            "--connect",
            &bsock,
            "bench",
            "start",
            "--all",
            "--mib",
            "4",
            "--json",
        ],
    ));
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{r}");
    assert_eq!(results[0]["miner_uid"], u64::from(uids[1]), "{r}");
    assert_eq!(results[0]["outcome"], "ok", "{r}");
    assert!(
        results[0]["download_bytes_per_s"].as_f64().expect("rate") > 0.0,
        "{r}"
    );
    let plain = ok(&mrctl(
        &home,
        &[
            "--connect",
            &bsock,
            "bench",
            "start",
            "--miner",
            &uids[1].to_string(),
            "--mib",
            "4",
        ],
    ));
    assert!(plain.contains(&format!("uid {}: done", uids[1])), "{plain}");
    let bs = json(&mrctl(
        &home,
        &["--connect", &bsock, "bench", "status", "--json"],
    ));
    assert_eq!(bs["bots"][0]["hotkey"], bot.ss58_address(), "{bs}");
    assert!(
        bs["bots"][0]["benchmarks_ok"].as_u64().expect("ok") >= 2,
        "{bs}"
    );
    t.done("bench start --all: a result per miner; plain lines off a tty; bench status");

    // A stopped daemon: exit 3 naming the socket.
    drop(validator);
    let o = mrctl(&home, &["--connect", &vsock, "status"]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(text(&o).1.contains(&vsock), "{:?}", text(&o));
    t.done("stopped validator: exit 3 naming the socket");
    drop(bench);
    drop(miner);
    drop(net);
}
