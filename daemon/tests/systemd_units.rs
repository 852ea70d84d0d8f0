//! scripts/install.sh stages the binaries, units and configuration where they belong (never
//! overwriting an operator's config), and `systemd-analyze verify` accepts every unit it installs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `systemd-analyze`, or None with a printed reason (a failure when MR_REQUIRE_SYSTEM_TOOLS is set,
/// as .ci/run sets it).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var_os("MR_REQUIRE_SYSTEM_TOOLS").is_none(),
        "systemd-analyze not found and MR_REQUIRE_SYSTEM_TOOLS is set (install systemd)"
    );
    eprintln!("SKIPPED: systemd-analyze not found (install the systemd package to run this test)");
    None
}

#[test]
fn install_stages_everything_and_units_verify() {
    let dest = tempfile::tempdir().expect("tempdir");
    let d = dest.path();
    // Binaries to install: mrd as built for this test (mrctl's content does not matter here).
    let bins = tempfile::tempdir().expect("tempdir");
    for b in ["mrd", "mrctl"] {
        std::fs::copy(env!("CARGO_BIN_EXE_mrd"), bins.path().join(b)).expect("copy mrd");
    }
    // An operator's existing config must survive a reinstall.
    std::fs::create_dir_all(d.join("etc/mapreduce")).expect("mkdir");
    std::fs::write(d.join("etc/mapreduce/config.toml"), "netuid = 7\n").expect("write");

    let out = Command::new(root().join("scripts/install.sh"))
        .args(["--destdir", d.to_str().expect("utf-8 path")])
        .args(["--prefix", "/opt/mr"])
        .args(["--bin-dir", bins.path().to_str().expect("utf-8 path")])
        .output()
        .expect("run install.sh");
    assert!(
        out.status.success(),
        "install.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing was started"));

    use std::os::unix::fs::PermissionsExt;
    for b in ["mrd", "mrctl"] {
        let meta = std::fs::metadata(d.join("opt/mr/bin").join(b)).expect("installed binary");
        assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{b} mode");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("etc/mapreduce/config.toml")).expect("config"),
        "netuid = 7\n",
        "the existing config was overwritten"
    );
    let env = std::fs::metadata(d.join("etc/mapreduce/mapreduce.env")).expect("env file");
    assert_eq!(env.permissions().mode() & 0o777, 0o600, "env file mode");

    let units = d.join("etc/systemd/system");
    let mut installed: Vec<String> = std::fs::read_dir(&units)
        .expect("units dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    for want in [
        "mapreduce-bench.service",
        "mapreduce-miner.service",
        "mapreduce-update.service",
        "mapreduce-update.timer",
        "mapreduce-validator.service",
    ] {
        assert!(
            installed.iter().any(|u| u == want),
            "{want} not installed: {installed:?}"
        );
    }
    for role in ["miner", "validator", "bench"] {
        let text =
            std::fs::read_to_string(units.join(format!("mapreduce-{role}.service"))).expect("unit");
        assert!(
            text.contains(&format!(
                "ExecStart=/opt/mr/bin/mrd --config /etc/mapreduce/config.toml {role}"
            )),
            "ExecStart of {role} not rewritten to the prefix:\n{text}"
        );
        for needed in [
            "Type=notify",
            "WatchdogSec=",
            "Restart=on-failure",
            "User=mapreduce",
            "StateDirectory=mapreduce",
            "RuntimeDirectory=mapreduce",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
            "PrivateTmp=yes",
        ] {
            assert!(text.contains(needed), "{role} unit lacks {needed}");
        }
    }

    let Some(analyze) = systemd_analyze() else {
        return;
    };
    // Verify as installed, with ExecStart pointing at the staged binaries so they exist.
    let check = tempfile::tempdir().expect("tempdir");
    let staged = d.join("opt/mr/bin");
    let mut paths = Vec::new();
    for u in &installed {
        let text = std::fs::read_to_string(units.join(u)).expect("unit");
        let p = check.path().join(u);
        std::fs::write(
            &p,
            text.replace("/opt/mr/bin/", &format!("{}/", staged.display())),
        )
        .expect("write unit");
        paths.push(p);
    }
    let out = Command::new(analyze)
        .arg("verify")
        .args(&paths)
        .output()
        .expect("run systemd-analyze");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    // verify exits 0 on some warnings; none are acceptable in our units.
    let complaints: Vec<&str> = said.lines().filter(|l| l.contains("mapreduce-")).collect();
    assert!(complaints.is_empty(), "systemd-analyze complained:\n{said}");
}
