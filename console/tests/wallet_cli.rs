//! `mrctl wallet` and `mrctl config` as an operator runs them: the real binary, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn shared_wallets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/wallet")
}

/// `mrctl` with a clean environment, so the developer's own MR_*/BT_* variables and config cannot leak in.
fn mrctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mrctl"))
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .args(args)
        .output()
        .expect("run mrctl")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "mrctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn show_json_prints_the_fixture_addresses() {
    let home = tempfile::tempdir().unwrap();
    let wallets = shared_wallets().join("wallets");
    let out = mrctl(
        home.path(),
        &[
            "wallet",
            "show",
            "--wallet.path",
            wallets.to_str().unwrap(),
            "--wallet.name",
            "alice",
            "--json",
        ],
    );
    let shown: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    let vectors: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared_wallets().join("vectors.json")).unwrap(),
    )
    .unwrap();
    let ss58 = |label: &str| {
        vectors["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["label"] == label)
            .map(|k| k["ss58_address"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{label} in vectors.json"))
    };
    assert_eq!(shown["coldkeypub"], ss58("coldkey").as_str());
    let hotkeys = shown["hotkeys"].as_array().unwrap();
    assert_eq!(hotkeys.len(), 2);
    for (name, label) in [("default", "hotkey_default"), ("miner1", "hotkey_miner1")] {
        let h = hotkeys.iter().find(|h| h["name"] == name).expect(name);
        assert_eq!(h["ss58"], ss58(label).as_str());
    }
}

#[test]
fn create_then_show_then_refuse_overwrite() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("w");
    let p = path.to_str().unwrap();
    let base = [
        "--wallet.path",
        p,
        "--wallet.name",
        "op",
        "--wallet.hotkey",
        "hk",
    ];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();

    ok(&mrctl(
        home.path(),
        &with(&["wallet", "new-coldkey", "--no-password"]),
    ));
    ok(&mrctl(home.path(), &with(&["wallet", "new-hotkey"])));
    let shown: serde_json::Value = serde_json::from_str(&ok(&mrctl(
        home.path(),
        &with(&["wallet", "show", "--json"]),
    )))
    .unwrap();
    assert_eq!(shown["name"], "op");
    assert_eq!(shown["hotkeys"][0]["name"], "hk");
    assert!(shown["coldkeypub"].as_str().unwrap().starts_with('5'));

    let again = mrctl(home.path(), &with(&["wallet", "new-hotkey"]));
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("hotkeys/hk") && err.contains("--overwrite"),
        "{err}"
    );
}

#[test]
fn missing_wallet_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = mrctl(
        home.path(),
        &[
            "wallet",
            "show",
            "--wallet.path",
            "/nonexistent/wallets",
            "--wallet.name",
            "ghost",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn print_default_is_the_example() {
    let home = tempfile::tempdir().unwrap();
    let out = ok(&mrctl(home.path(), &["config", "print-default"]));
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml.example"),
    )
    .unwrap();
    assert_eq!(out, example);
}
