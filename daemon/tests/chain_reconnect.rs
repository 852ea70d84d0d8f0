//! The chain client survives its node: chopsticks killed mid-session and restarted on the same
//! port, and a frozen node (SIGSTOP) that answers nothing until it is resumed. Its own
//! chopsticks instance, killed by pid when the test ends.

use std::time::{Duration, Instant};

use mapreduce::chain::dev::{DevChain, DevChainOptions};
use mapreduce::chain::{ChainClient, ChainError, ChainOptions};

async fn until_ok<T>(
    what: &str,
    within: Duration,
    mut f: impl AsyncFnMut() -> Result<T, ChainError>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() < deadline => {
                println!("{what}: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{what}: still failing after {within:?}: {e}"),
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_to_a_restarted_or_resumed_node() {
    let t0 = Instant::now();
    let mut opts = DevChainOptions::new().expect("shared/chain spec");
    opts.install = true;
    let mut chain = tokio::task::spawn_blocking(move || DevChain::start(opts))
        .await
        .expect("join")
        .expect("chopsticks starts");

    let mut o = ChainOptions::new(chain.ws_url());
    o.call_timeout = Duration::from_secs(5);
    o.watchdog = Some(Duration::from_secs(3));
    o.max_backoff = Duration::from_secs(1);
    let client = ChainClient::connect(o).await.expect("connect");
    let b0 = client.dev_new_blocks(2).await.expect("blocks");
    assert!(b0 >= 3, "{b0}");
    println!(
        "[{:5.1} s] connected, block {b0}",
        t0.elapsed().as_secs_f64()
    );

    // The watchdog follows new blocks.
    let seen = until_ok("watchdog sees block", Duration::from_secs(10), async || {
        let (n, _) = client.last_block_seen();
        if n >= b0 {
            Ok(n)
        } else {
            Err(ChainError::Invalid(format!("watchdog at {n}")))
        }
    })
    .await;
    assert!(seen >= b0);

    // Kill the node: calls fail with a connection error, bounded by the call timeout.
    chain.stop();
    let started = Instant::now();
    let err = client.block_number().await.expect_err("node is gone");
    println!("after kill: {err}");
    assert!(err.is_connection(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // A new node on the same port: the same client carries on.
    let before = client.reconnects();
    tokio::task::block_in_place(|| chain.restart()).expect("restart");
    println!(
        "[{:5.1} s] restarted on {}",
        t0.elapsed().as_secs_f64(),
        chain.ws_url()
    );
    let b1 = until_ok("block after restart", Duration::from_secs(30), async || {
        client.block_number().await
    })
    .await;
    assert!(client.reconnects() > before, "reconnected");
    let info = client.info().await.expect("info");
    assert_eq!(info.spec_version, 218);
    println!(
        "[{:5.1} s] reconnected (block {b1}, {} reconnects)",
        t0.elapsed().as_secs_f64(),
        client.reconnects()
    );

    // No block for the watchdog period (chopsticks idles between transactions): it reconnects.
    let before = client.reconnects();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        client.reconnects() > before,
        "the watchdog reconnects when no block arrives"
    );

    // A frozen node: the connection stays open but nothing answers. Calls time out instead of
    // hanging; once the node resumes, the client recovers on its own.
    let pid = chain.pid().expect("pid");
    signal(pid, "-STOP");
    let started = Instant::now();
    let err = client.block_number().await.expect_err("frozen");
    println!("frozen: {err}");
    assert!(err.is_connection(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    signal(pid, "-CONT");
    let b2 = until_ok("block after resume", Duration::from_secs(30), async || {
        client.block_number().await
    })
    .await;
    let b3 = client
        .dev_new_blocks(1)
        .await
        .expect("a block after resume");
    assert!(b3 > b2);
    println!(
        "[{:5.1} s] recovered from a frozen node (block {b3})",
        t0.elapsed().as_secs_f64()
    );

    drop(client);
    drop(chain);
}
