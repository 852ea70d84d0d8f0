//! Configuration: fixtures, layering order, and the example file kept in step with the defaults.

use mapreduce::config::{Config, EXAMPLE, Loader};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn expectations(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("fixture");
    let expects: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect();
    assert!(
        !expects.is_empty(),
        "{} has no `# expect:` line",
        path.display()
    );
    expects
}

/// `mrd` with a clean environment, so the developer's own MR_*/BT_* variables and config cannot leak in.
fn mrd(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mrd"));
    cmd.env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
    cmd
}

#[test]
fn valid_fixtures_load_and_pass_check() {
    let home = tempfile::tempdir().unwrap();
    for f in fixtures("valid") {
        if let Err(e) = Loader::new().file(Some(f.clone())).load() {
            panic!("{} should load: {e}", f.display());
        }
        let out = mrd(home.path())
            .args(["config", "check", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn invalid_fixtures_fail_with_their_message() {
    let home = tempfile::tempdir().unwrap();
    for f in fixtures("invalid") {
        let expects = expectations(&f);
        let err = match Loader::new().file(Some(f.clone())).load() {
            Ok(_) => panic!("{} should be refused", f.display()),
            Err(e) => e.to_string(),
        };
        for want in &expects {
            assert!(
                err.contains(want.as_str()),
                "{}:\n  message: {err}\n  missing: {want}",
                f.display()
            );
        }
        let out = mrd(home.path())
            .args(["config", "check", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expects[0].as_str()),
            "{}: {stderr}",
            f.display()
        );
    }
}

#[test]
fn example_equals_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let loaded = Loader::new()
        .file(Some(path))
        .load()
        .expect("example loads")
        .config;
    let mut want = Config::default();
    want.wallet.path = mapreduce::wallet::expand_tilde(&want.wallet.path);
    assert_eq!(loaded, want);
}

#[test]
fn every_key_is_documented_in_the_example() {
    // Uncomment the example's `# key = value` lines: each optional key must be shown that way.
    let uncommented: String = EXAMPLE
        .lines()
        .map(
            |l| match l.strip_prefix("# ").and_then(|rest| rest.split_once(" = ")) {
                Some((key, _))
                    if !key.is_empty()
                        && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
                {
                    &l[2..]
                }
                _ => l,
            },
        )
        .collect::<Vec<_>>()
        .join("\n");
    let table: toml::Table = uncommented.parse().expect("uncommented example is TOML");
    let mut documented = Vec::new();
    for (k, v) in &table {
        match v {
            toml::Value::Table(t) => documented.extend(t.keys().map(|f| format!("{k}.{f}"))),
            _ => documented.push(k.clone()),
        }
    }
    documented.sort();
    // Every documented key is a real key: loading the uncommented example succeeds.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.toml");
    std::fs::write(&path, &uncommented).unwrap();
    Loader::new()
        .file(Some(path))
        .load()
        .expect("every documented key exists");
    // And every real key is documented: the defaults, serialized, name no key the example lacks.
    let defaults: toml::Table = toml::to_string(&Config::default())
        .unwrap()
        .parse()
        .unwrap();
    for (k, v) in &defaults {
        match v {
            toml::Value::Table(t) => {
                for f in t.keys() {
                    let key = format!("{k}.{f}");
                    assert!(
                        documented.contains(&key),
                        "{key} is not in config.toml.example"
                    );
                }
            }
            _ => assert!(documented.contains(k), "{k} is not in config.toml.example"),
        }
    }
}

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "netuid = 1\n[wallet]\nname = \"file\"\nhotkey = \"file\"\npath = \"/w\"\n",
    )
    .unwrap();
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };

    let only_file = Loader::new().file(Some(path.clone())).load().unwrap();
    assert_eq!(only_file.config.wallet.name, "file");
    assert_eq!(
        only_file.origin_of("wallet.name"),
        path.display().to_string()
    );
    assert_eq!(only_file.origin_of("axon.port"), "default");

    let with_env = Loader::new()
        .file(Some(path.clone()))
        .env(env(&[
            ("BT_WALLET_NAME", "bt"),
            ("BT_WALLET_HOTKEY", "bt"),
            ("MR_WALLET_HOTKEY", "mr"),
            ("MR_NETUID", "7"),
            ("MR_SUBTENSOR_CHAIN_ENDPOINT", "ws://127.0.0.2:9944"),
            ("UNRELATED", "x"),
            ("MR_DEVNET_DIR", "/tmp/devnet"),
            // Not config keys: what CI, tests and the Python package set.
            ("MR_REQUIRE_SYSTEM_TOOLS", "1"),
            ("MR_VALIDATOR", "127.0.0.2:8091"),
            ("MR_VALIDATOR_HOTKEY", "5F"),
            ("MR_JOB", "train"),
            ("MR_VALIDATOR_EMA_ALPHA", "0.5"),
            ("BT_COLD_PW_ALICE", "not a config key"),
        ]))
        .load()
        .unwrap();
    let c = &with_env.config;
    assert_eq!(c.wallet.name, "bt", "BT_* beats the file");
    assert_eq!(c.wallet.hotkey, "mr", "MR_* beats BT_*");
    assert_eq!(c.netuid, 7);
    assert_eq!(
        c.validator.ema_alpha, 0.5,
        "a reserved name does not hide its section's keys"
    );
    assert_eq!(c.subtensor.endpoint(), "ws://127.0.0.2:9944");
    assert_eq!(c.wallet.path, PathBuf::from("/w"));
    assert_eq!(
        with_env.origin_of("wallet.hotkey"),
        "environment variable MR_WALLET_HOTKEY"
    );

    let typo = Loader::new()
        .env(env(&[("MR_WALET_NAME", "x")]))
        .load()
        .unwrap_err()
        .to_string();
    assert!(typo.contains("MR_WALET_NAME"), "{typo}");

    let with_flags = Loader::new()
        .file(Some(path))
        .env(env(&[("MR_WALLET_HOTKEY", "mr")]))
        .flags(vec![
            ("wallet.hotkey".into(), "flag".into()),
            ("netuid".into(), 3u16.into()),
        ])
        .load()
        .unwrap();
    assert_eq!(with_flags.config.wallet.hotkey, "flag", "flags beat MR_*");
    assert_eq!(with_flags.config.netuid, 3);
    assert_eq!(
        with_flags.origin_of("wallet.hotkey"),
        "flag --wallet.hotkey"
    );
}

#[test]
fn file_search_and_mr_config() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("etc.toml");
    let second = dir.path().join("user.toml");
    std::fs::write(&second, "netuid = 22\n").unwrap();
    let search = vec![first.clone(), second.clone()];
    let loaded = Loader::new().search(search.clone()).load().unwrap();
    assert_eq!(
        (loaded.config.netuid, loaded.file),
        (22, Some(second.clone()))
    );

    std::fs::write(&first, "netuid = 11\n").unwrap();
    assert_eq!(
        Loader::new()
            .search(search.clone())
            .load()
            .unwrap()
            .config
            .netuid,
        11
    );

    let named = dir.path().join("named.toml");
    std::fs::write(&named, "netuid = 33\n").unwrap();
    let via_env = Loader::new()
        .search(search.clone())
        .env([("MR_CONFIG".to_string(), named.display().to_string())])
        .load()
        .unwrap();
    assert_eq!(via_env.config.netuid, 33);

    let missing = Loader::new()
        .file(Some(dir.path().join("nope.toml")))
        .load()
        .unwrap_err();
    assert!(
        missing.to_string().contains("nope.toml not found"),
        "{missing}"
    );
}

#[test]
fn tilde_is_expanded() {
    let loaded = Loader::new().load().unwrap();
    let home = dirs::home_dir().unwrap();
    assert_eq!(loaded.config.wallet.path, home.join(".bittensor/wallets"));
}

#[test]
fn flags_reach_the_config_through_mrd() {
    let home = tempfile::tempdir().unwrap();
    let out = mrd(home.path())
        .args([
            "config",
            "show",
            "--wallet.name",
            "w1",
            "--wallet-hotkey",
            "h1",
            "--netuid",
            "5",
        ])
        .args([
            "--subtensor.network",
            "local",
            "--axon.port",
            "9101",
            "--relay.port",
            "9201",
            "--logging.debug",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Config = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(shown.wallet.name, "w1");
    assert_eq!(shown.wallet.hotkey, "h1");
    assert_eq!(shown.netuid, 5);
    assert_eq!(shown.subtensor.endpoint(), "ws://127.0.0.1:9944");
    assert_eq!((shown.axon.port, shown.relay.port), (9101, 9201));
    assert!(shown.logging.debug);
    assert_eq!(shown.wallet.path, home.path().join(".bittensor/wallets"));

    let bad = mrd(home.path())
        .args(["config", "check", "--subtensor.network", "mainnet"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("flag --subtensor.network"));
}

#[test]
fn import_legacy_through_mrd() {
    let home = tempfile::tempdir().unwrap();
    let json = home.path().join("validator.config.json");
    std::fs::write(
        &json,
        r#"{"subtensor.network": "local", "netuid": 10, "wallet.name": "v", "wallet.hotkey": "h",
            "max_bandwidth": 10737418240, "auto_update": "yes", "benchmark_hotkeys": ["", ""]}"#,
    )
    .unwrap();
    let out = mrd(home.path())
        .args(["config", "import-legacy"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml_out = String::from_utf8_lossy(&out.stdout);
    let c: Config = toml::from_str(&toml_out).unwrap();
    assert_eq!(
        (c.wallet.name.as_str(), c.validator.max_job_mib),
        ("v", 10240)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("auto_update"));

    let missing = mrd(home.path())
        .args(["config", "import-legacy", "/nonexistent.json"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.json"));
}
