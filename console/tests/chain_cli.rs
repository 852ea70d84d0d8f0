//! `mrctl chain info`, `mrctl metagraph`, `mrctl register` against the real subtensor runtime
//! under chopsticks (its own instance, killed by pid when the test ends).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mapreduce::chain::{ChainSigner, Rao};
use mapreduce::wallet::{Keypair, Wallet};
use mr_testkit::DevNet;

/// `mrctl` with a clean environment, pointed at the dev chain, the temp wallets and the subnet.
fn mrctl(home: &Path, url: &str, netuid: u16, hotkey: &str, args: &[&str]) -> Output {
    let wallets = home.join("wallets");
    Command::new(env!("CARGO_BIN_EXE_mrctl"))
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::null())
        .args(args)
        .args([
            "--subtensor.chain_endpoint",
            url,
            "--netuid",
            &netuid.to_string(),
            "--wallet.path",
            wallets.to_str().expect("utf-8 path"),
            "--wallet.name",
            "op",
            "--wallet.hotkey",
            hotkey,
        ])
        .output()
        .expect("run mrctl")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "mrctl failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metagraph_register_and_info_against_the_real_runtime() {
    // A wallet on disk: plaintext coldkey (a throwaway), two hotkeys; a subnet made through the
    // library.
    let home = tempfile::tempdir().expect("tempdir");
    let wallets = home.path().join("wallets");
    let net = DevNet::start(&wallets).await;
    let (url, client, alice, netuid) = (net.ws.clone(), &net.client, &net.alice, net.netuid);
    let owner = &net.owner;
    let cold = Wallet::new(&wallets, "op", "default")
        .create_coldkey(12, None, false)
        .expect("coldkey");
    let hk_default = Wallet::new(&wallets, "op", "default")
        .create_hotkey(12, false)
        .expect("hotkey");
    Wallet::new(&wallets, "op", "spare")
        .create_hotkey(12, false)
        .expect("hotkey");

    // Two served neurons.
    let mut served = Vec::new();
    for i in 0..2u16 {
        let hk = ChainSigner::new(Keypair::generate(12).expect("hk")).expect("signer");
        client
            .transfer(alice, &hk.public_key(), Rao::from_tao(5.0))
            .await
            .expect("fund");
        client
            .burned_register(alice, netuid, &hk.public_key())
            .await
            .expect("register");
        let ip: IpAddr = format!("127.0.0.{}", i + 2).parse().expect("ip");
        client
            .serve_axon(&hk, netuid, ip, 8091 + i, 1)
            .await
            .expect("serve");
        served.push((hk.ss58().to_string(), format!("{ip}"), 8091 + i));
    }
    client
        .transfer(alice, &cold.public_key(), Rao::from_tao(100.0))
        .await
        .expect("fund the wallet's coldkey");

    // Without a terminal and without --yes, register refuses and says how to confirm.
    let out = mrctl(home.path(), &url, netuid, "default", &["register"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--yes"), "{err}");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("registration burns τ1.000000000"), "{shown}");

    let out = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "default",
        &["register", "--yes"],
    ));
    println!("{out}");
    assert!(out.contains("registration burns τ1.000000000"), "{out}");
    assert!(out.contains("uid 3"), "{out}");
    // Registering again is a no-op that says so.
    let out = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "default",
        &["register", "--yes"],
    ));
    assert!(out.contains("already registered"), "{out}");

    let out = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "default",
        &["metagraph", "--json"],
    ));
    println!("{out}");
    let mg: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(mg["netuid"], netuid);
    let neurons = mg["neurons"].as_array().expect("neurons");
    assert_eq!(neurons.len(), 4);
    let by_hotkey = |ss58: &str| {
        neurons
            .iter()
            .find(|n| n["hotkey"] == ss58)
            .unwrap_or_else(|| panic!("{ss58} in the metagraph"))
    };
    assert_eq!(by_hotkey(owner.ss58_address())["uid"], 0);
    for (ss58, ip, port) in &served {
        let n = by_hotkey(ss58);
        assert_eq!(n["coldkey"], alice.ss58());
        assert_eq!(n["axon"]["ip"], ip.as_str());
        assert_eq!(n["axon"]["port"], *port);
    }
    let mine = by_hotkey(hk_default.ss58_address());
    assert_eq!(mine["uid"], 3);
    assert_eq!(mine["coldkey"], cold.ss58_address());
    assert!(mine["axon"].is_null());

    let table = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "default",
        &["metagraph", "--sort", "uid", "--reverse"],
    ));
    println!("{table}");
    assert!(table.contains("127.0.0.2:8091"), "{table}");
    assert!(table.contains("127.0.0.3:8092"), "{table}");
    let first_row = table.lines().nth(2).expect("a row");
    assert!(
        first_row.starts_with('3'),
        "sorted by uid, reversed: {table}"
    );

    let out = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "default",
        &["chain", "info", "--json"],
    ));
    println!("{out}");
    let info: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["spec_version"], 218);
    assert_eq!(info["endpoint"], url.as_str());
    assert_eq!(info["hotkey"]["ss58"], hk_default.ss58_address());
    assert_eq!(info["hotkey"]["uid"], 3);
    let out = ok(&mrctl(
        home.path(),
        &url,
        netuid,
        "spare",
        &["chain", "info"],
    ));
    assert!(
        out.contains("not registered (mrctl register --netuid"),
        "{out}"
    );

    drop(net);
}
