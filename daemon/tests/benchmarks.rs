//! The validator's benchmark desk in process, over the real signed control plane on 127.0.0.1
//! with real miner services and relays: AcceptJob retries over miners (each refusal stored as a
//! failure of that miner), a miner asked for by uid, reports refused without changing anything
//! (bad numbers, wrong miner), and an assignment without a report expiring into a failure that
//! releases the miner's reservation and shows in the window's scores.

use mapreduce::control::auth::{Admission, AuthLayer, AuthOptions};
use mapreduce::control::benchmark::BenchDesk;
use mapreduce::control::miner::{MinerService, MinerState};
use mapreduce::control::registry::StaticRegistry;
use mapreduce::control::server::{serve_miner, serve_validator};
use mapreduce::control::validator::{ValidatorOptions, ValidatorService, ValidatorState};
use mapreduce::control::{SignedChannel, connect};
use mapreduce::core::Version;
use mapreduce::core::scoring::ScoreWeights;
use mapreduce::relay::{Relay, RelayOptions, Trust};
use mapreduce::validator::records::BenchState;
use mapreduce::validator::score::{ScoringOptions, window_parts};
use mapreduce::validator::{MinerRow, Store};
use mapreduce::wallet::Keypair;
use mapreduce::wallet::btauth::Verifier;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{BenchmarkOutcome, ReportBenchmarkRequest, RequestBenchmarkRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::Code;

const T: Duration = Duration::from_secs(10);

fn key() -> Keypair {
    Keypair::generate(12).expect("keygen")
}

fn v() -> Option<mr_proto::v1::Version> {
    Some(Version::CURRENT.into())
}

fn now_ms() -> u64 {
    mapreduce::wire::handshake::now_ms()
}

fn layer(own: &Keypair, admission: Admission) -> AuthLayer {
    AuthLayer::new(
        Verifier::new(own.ss58_address()),
        Arc::new(StaticRegistry::new(7)),
        AuthOptions {
            admission,
            max_body: 1 << 20,
            rate_per_sec: 100.0,
            rate_burst: 100,
            role: "test",
        },
    )
}

struct MinerNode {
    key: Keypair,
    axon: SocketAddr,
    state: Arc<MinerState>,
}

async fn start_miner(validator: &Keypair, max_memory: u64) -> MinerNode {
    let key = key();
    let relay = Relay::new(RelayOptions {
        window_blocks: 4,
        max_memory,
        trust: Trust::new([validator.ss58_address().to_string()]),
        handshake_timeout: T,
        max_block_bytes: 64 << 20,
        max_conns_per_ip: 256,
        own_hotkey: None,
    });
    let rl = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let relay_addr = rl.local_addr().expect("addr");
    tokio::spawn(Arc::clone(&relay).serve(rl));
    let state = MinerState::new(
        key.ss58_address().to_string(),
        relay,
        relay_addr.to_string(),
        Duration::from_secs(300),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind axon");
    let axon = l.local_addr().expect("addr");
    let reg = StaticRegistry::new(7).with(validator.ss58_address(), 0, 1e6);
    let ml = AuthLayer::new(
        Verifier::new(key.ss58_address()),
        Arc::new(reg),
        AuthOptions {
            admission: Admission::Registered { min_stake_tao: 0.0 },
            max_body: 1 << 20,
            rate_per_sec: 100.0,
            rate_burst: 100,
            role: "miner",
        },
    );
    tokio::spawn(serve_miner(
        l,
        ml,
        MinerService {
            state: Arc::clone(&state),
        },
        std::future::pending(),
    ));
    MinerNode { key, axon, state }
}

struct Validator {
    axon: SocketAddr,
    key: Keypair,
    store: Arc<Store>,
    options: ScoringOptions,
}

impl Validator {
    async fn start(
        key: Keypair,
        db: &std::path::Path,
        miners: &[&MinerNode],
        bots: &[&Keypair],
        retries: u32,
        report_time: Duration,
    ) -> Validator {
        let store = Arc::new(Store::open(db).expect("db"));
        for (i, m) in miners.iter().enumerate() {
            store
                .put_miner(&MinerRow {
                    hotkey: m.key.ss58_address().to_string(),
                    uid: i as u16 + 1,
                    axon: m.axon.to_string(),
                    relay_address: m.state.relay_address.clone(),
                    reachable: true,
                    memory_free: m.state.relay.budget.limit(),
                    version: Version::CURRENT.to_string(),
                    last_seen_ms: now_ms(),
                })
                .expect("miner row");
        }
        let state = ValidatorState::new(
            Arc::new(key.clone()),
            Arc::clone(&store),
            ValidatorOptions {
                session_time: Duration::from_secs(300),
                max_job_bytes: 1 << 30,
                block_elems: 64 * 1024,
                miner_timeout: T,
                max_world_size: 64,
                miners_per_job: 0,
                spares: 0,
            },
        );
        let options = ScoringOptions {
            benchmark_hotkeys: bots.iter().map(|b| b.ss58_address().to_string()).collect(),
            retries,
            report_time,
            max_bytes: 64 << 20,
            window: Duration::from_secs(3600),
            weights: ScoreWeights::default(),
            ema_alpha: 0.5,
            interval_blocks: 10,
        };
        let desk = BenchDesk::new(Arc::clone(&state), options.clone(), None);
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let axon = l.local_addr().expect("addr");
        tokio::spawn(serve_validator(
            l,
            layer(
                &key,
                Admission::Clients {
                    allow: vec!["*".into()],
                },
            ),
            ValidatorService {
                state,
                bench: Some(desk),
            },
            std::future::pending(),
        ));
        Validator {
            axon,
            key,
            store,
            options,
        }
    }

    async fn client(&self, as_key: &Keypair) -> ValidatorClient<SignedChannel> {
        ValidatorClient::new(
            connect(
                &self.axon.to_string(),
                Arc::new(as_key.clone()),
                self.key.ss58_address(),
                T,
            )
            .await
            .expect("connect"),
        )
    }
}

fn request(uid: Option<u32>) -> RequestBenchmarkRequest {
    RequestBenchmarkRequest {
        version: v(),
        bytes: 1 << 20,
        peers: 3,
        miner_uid: uid,
        dtype: 0,
    }
}

fn report(id: u64, uid: u32, hotkey: &str) -> ReportBenchmarkRequest {
    ReportBenchmarkRequest {
        version: v(),
        benchmark_id: id,
        miner_uid: uid,
        miner_hotkey: hotkey.into(),
        outcome: BenchmarkOutcome::Ok as i32,
        reason: String::new(),
        bytes: 1 << 20,
        peers: 3,
        seed: 9,
        checked_elements: 3 << 18,
        upload_bytes_per_s: 100e6,
        download_bytes_per_s: 90e6,
        broadcast_bytes_per_s: 80e6,
        latency_ms: 2.0,
        all_reduce_s: 0.01,
        broadcast_s: 0.01,
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_retried_over_miners_and_recorded_as_failures() {
    let dir = tempfile::tempdir().expect("tmp");
    let vkey = key();
    // Two miners too small for any reservation, one that fits.
    let small1 = start_miner(&vkey, 1024).await;
    let small2 = start_miner(&vkey, 1024).await;
    let good = start_miner(&vkey, 256 << 20).await;
    let bot = key();
    let v = Validator::start(
        vkey,
        &dir.path().join("v.sqlite"),
        &[&small1, &small2, &good],
        &[&bot],
        3,
        Duration::from_secs(60),
    )
    .await;
    let mut c = v.client(&bot).await;
    let a = c
        .request_benchmark(request(None))
        .await
        .expect("assignment")
        .into_inner();
    assert_eq!(a.miner_uid, 3, "only the big miner fits: {a:?}");
    assert_eq!(a.miner_hotkey, good.key.ss58_address());
    assert!(good.state.memory().1 > 0, "reserved on the miner");
    // Whichever small ones were tried first are failures of theirs, with the miner's reason.
    let rows = v.store.benchmarks_since(0).expect("rows");
    let refused: Vec<_> = rows
        .iter()
        .filter(|b| b.state == BenchState::Refused)
        .collect();
    assert!(refused.len() <= 2);
    for b in &refused {
        assert!(b.miner_uid == 1 || b.miner_uid == 2);
        assert_eq!(b.outcome, BenchmarkOutcome::Refused as i32);
        assert!(!b.reason.is_empty());
    }
    // Asked by uid, the small miner refuses and the request fails with its reason.
    let e = c
        .request_benchmark(request(Some(1)))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("uid 1"), "{}", e.message());
    let e = c
        .request_benchmark(request(Some(99)))
        .await
        .expect_err("no such uid");
    assert_eq!(e.code(), Code::NotFound);
    // Asked by uid while it is under test: refused, not double-booked.
    let e = c
        .request_benchmark(request(Some(3)))
        .await
        .expect_err("busy");
    assert_eq!(e.code(), Code::Unavailable);
    // Out-of-range requests.
    let mut big = request(None);
    big.bytes = 1 << 40;
    assert_eq!(
        c.request_benchmark(big).await.expect_err("too big").code(),
        Code::InvalidArgument
    );
    let mut none = request(None);
    none.peers = 0;
    assert_eq!(
        c.request_benchmark(none)
            .await
            .expect_err("no peers")
            .code(),
        Code::InvalidArgument
    );

    // Bad reports are refused and change nothing.
    let hk = good.key.ss58_address().to_string();
    let mut r = report(a.benchmark_id, 3, &hk);
    r.upload_bytes_per_s = f64::NAN;
    assert_eq!(
        c.report_benchmark(r).await.expect_err("nan").code(),
        Code::InvalidArgument
    );
    let r = report(a.benchmark_id, 2, small2.key.ss58_address());
    assert_eq!(
        c.report_benchmark(r).await.expect_err("wrong miner").code(),
        Code::InvalidArgument
    );
    let mut r = report(a.benchmark_id, 3, &hk);
    r.checked_elements = 5;
    assert_eq!(
        c.report_benchmark(r).await.expect_err("unchecked").code(),
        Code::InvalidArgument
    );
    let row = v
        .store
        .benchmark(a.benchmark_id)
        .expect("row")
        .expect("row");
    assert_eq!(row.state, BenchState::Assigned, "{row:?}");
    assert!(good.state.memory().1 > 0, "still reserved");

    let resp = c
        .report_benchmark(report(a.benchmark_id, 3, &hk))
        .await
        .expect("report")
        .into_inner();
    assert!(resp.accepted && resp.score > 0.0, "{resp:?}");
    // The reservation is given back once the report is in.
    let end = std::time::Instant::now() + T;
    while good.state.memory().1 > 0 {
        assert!(std::time::Instant::now() < end, "reservation not released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreported_benchmark_expires_into_a_failure_and_frees_the_miner() {
    let dir = tempfile::tempdir().expect("tmp");
    let vkey = key();
    let m = start_miner(&vkey, 256 << 20).await;
    let bot = key();
    let other_bot = key();
    let v = Validator::start(
        vkey,
        &dir.path().join("v.sqlite"),
        &[&m],
        &[&bot, &other_bot],
        3,
        Duration::from_millis(1500),
    )
    .await;
    let mut c = v.client(&bot).await;
    let a = c
        .request_benchmark(request(None))
        .await
        .expect("assignment")
        .into_inner();
    assert!(a.report_by_ms > now_ms());
    // Another bot may not report this one.
    let mut oc = v.client(&other_bot).await;
    let e = oc
        .report_benchmark(report(a.benchmark_id, 1, m.key.ss58_address()))
        .await
        .expect_err("not its benchmark");
    assert_eq!(e.code(), Code::PermissionDenied);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let e = c
        .report_benchmark(report(a.benchmark_id, 1, m.key.ss58_address()))
        .await
        .expect_err("late");
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The next request sweeps it: a failure of the miner, its reservation released.
    let b = c
        .request_benchmark(request(None))
        .await
        .expect("assignment")
        .into_inner();
    assert_ne!(a.benchmark_id, b.benchmark_id);
    let row = v
        .store
        .benchmark(a.benchmark_id)
        .expect("row")
        .expect("row");
    assert_eq!(row.state, BenchState::Expired, "{row:?}");
    let e = c
        .report_benchmark(report(a.benchmark_id, 1, m.key.ss58_address()))
        .await
        .expect_err("closed");
    assert_eq!(e.code(), Code::DeadlineExceeded);
    c.report_benchmark(report(b.benchmark_id, 1, m.key.ss58_address()))
        .await
        .expect("second report");
    let miners = v.store.miners().expect("miners");
    let parts = window_parts(&v.store, &miners, &v.options, now_ms()).expect("parts");
    assert_eq!(parts[0].benchmarks, 2);
    assert_eq!(parts[0].success_rate, 0.5);
    assert!((parts[0].round - 0.5).abs() < 1e-9, "{:?}", parts[0]);
}
