//! The systemd notify protocol as a `Type=notify` unit sees it: a real `mrd relay` started with
//! `$NOTIFY_SOCKET` (a datagram socket this test binds) and a watchdog sends READY=1 once it
//! serves, WATCHDOG=1 pings while it runs, and STOPPING=1 on SIGTERM before it exits.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod relay_support;
use relay_support::{Killer, empty_config, key, mrd};

/// Datagrams received until `want` appears in one, or the deadline passes.
fn wait_for(sock: &UnixDatagram, want: &str, within: Duration, seen: &mut Vec<String>) -> bool {
    let end = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == want);
                seen.push(msg);
                if hit {
                    return true;
                }
            }
            Err(_) => break,
        }
    }
    false
}

#[test]
fn relay_reports_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    let validator = key(1);
    let child = Command::new(mrd())
        .args(["--config", &empty_config(), "relay", "--relay.port", "0"])
        .args(["--trust", validator.ss58_address()])
        .env("NOTIFY_SOCKET", &path)
        // A 400 ms watchdog: pings every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mrd relay");
    let relay = Killer(child);
    let mut seen = Vec::new();

    assert!(
        wait_for(&sock, "READY=1", Duration::from_secs(30), &mut seen),
        "no READY=1 from the relay; got {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|m| m.lines().any(|l| l.starts_with("STATUS=serving: relay "))),
        "READY came without the serving status: {seen:?}"
    );
    for n in 0..2 {
        assert!(
            wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5), &mut seen),
            "watchdog ping {n} missing; got {seen:?}"
        );
    }

    let pid = i32::try_from(relay.pid()).expect("pid");
    let rc = sigterm(pid);
    assert!(rc, "sending SIGTERM to {pid}");
    assert!(
        wait_for(&sock, "STOPPING=1", Duration::from_secs(10), &mut seen),
        "no STOPPING=1 after SIGTERM; got {seen:?}"
    );
}

/// SIGTERM through kill(1), so the test needs no libc binding.
fn sigterm(pid: i32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
