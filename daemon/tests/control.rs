//! The signed control plane in process, over real TCP on 127.0.0.1: refusals (each with its
//! status code and message) and a whole job: 3 miners (relay + miner service), a validator with
//! its SQLite store, 3 peers that rendezvous through the validator and all_reduce.

use mapreduce::control::auth::{Admission, AuthLayer, AuthOptions};
use mapreduce::control::miner::{MinerService, MinerState};
use mapreduce::control::registry::StaticRegistry;
use mapreduce::control::server::{serve_miner, serve_validator};
use mapreduce::control::validator::{ValidatorOptions, ValidatorService, ValidatorState};
use mapreduce::control::{SignedChannel, connect};
use mapreduce::core::Version;
use mapreduce::peer::ValidatorAddr;
use mapreduce::relay::{Relay, RelayOptions, Trust};
use mapreduce::validator::{MinerRow, Store};
use mapreduce::wallet::Keypair;
use mapreduce::wallet::btauth::{NonceSource, SystemClock, Verifier, sign_request};
use mr_proto::v1::miner_client::MinerClient;
use mr_proto::v1::validator_client::ValidatorClient;
use mr_proto::v1::{
    AcceptJobRequest, JobState, JobStatusRequest, ProbeRequest, ReportJobRequest,
    RequestJobRequest, StatusRequest,
};
use mr_testkit::all_reduce_job;
use prost::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::Code;

const NETUID: u16 = 7;
const T: Duration = Duration::from_secs(10);

fn key() -> Keypair {
    Keypair::generate(12).expect("keygen")
}

fn v() -> Option<mr_proto::v1::Version> {
    Some(Version::CURRENT.into())
}

fn auth(
    own: &Keypair,
    registry: StaticRegistry,
    admission: Admission,
    max_body: usize,
) -> AuthLayer {
    auth_rate(own, registry, admission, max_body, 50.0, 50)
}

fn auth_rate(
    own: &Keypair,
    registry: StaticRegistry,
    admission: Admission,
    max_body: usize,
    rate_per_sec: f64,
    rate_burst: u32,
) -> AuthLayer {
    AuthLayer::new(
        Verifier::new(own.ss58_address()),
        Arc::new(registry),
        AuthOptions {
            admission,
            max_body,
            rate_per_sec,
            rate_burst,
            role: "test",
        },
    )
}

struct MinerNode {
    key: Keypair,
    axon: SocketAddr,
    state: Arc<MinerState>,
}

/// A miner in this process: relay on one port, miner service on another.
async fn start_miner(validators: &[(&Keypair, f64)], max_memory: u64, min_stake: f64) -> MinerNode {
    let key = key();
    let relay = Relay::new(RelayOptions {
        window_blocks: 4,
        max_memory,
        trust: Trust::new(validators.iter().map(|(k, _)| k.ss58_address().to_string())),
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
    state.spawn_sweeper();
    let mut reg = StaticRegistry::new(NETUID);
    for (i, (k, stake)) in validators.iter().enumerate() {
        reg = reg.with(k.ss58_address(), i as u16, *stake);
    }
    let layer = auth(
        &key,
        reg,
        Admission::Registered {
            min_stake_tao: min_stake,
        },
        64 << 10,
    );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind axon");
    let axon = l.local_addr().expect("addr");
    let svc = MinerService {
        state: Arc::clone(&state),
    };
    tokio::spawn(serve_miner(l, layer, svc, std::future::pending()));
    MinerNode { key, axon, state }
}

async fn miner_client(m: &MinerNode, as_key: &Keypair) -> MinerClient<SignedChannel> {
    let ch = connect(
        &m.axon.to_string(),
        Arc::new(as_key.clone()),
        m.key.ss58_address(),
        T,
    )
    .await
    .expect("connect");
    MinerClient::new(ch)
}

fn accept(job_id: u64, block_elems: u32, expires_at_ms: u64) -> AcceptJobRequest {
    AcceptJobRequest {
        version: v(),
        job_id,
        peers: 3,
        dtype: 1,
        block_elems,
        shard_elements: 1 << 30,
        expires_at_ms,
    }
}

fn now_ms() -> u64 {
    mapreduce::wire::handshake::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miner_refusals_name_the_problem() {
    let validator = key();
    let poor = key();
    let m = start_miner(&[(&validator, 5000.0), (&poor, 10.0)], 64 << 20, 3000.0).await;

    // Registered, staked: served.
    let mut c = miner_client(&m, &validator).await;
    let s = c
        .status(StatusRequest { version: v() })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(s.hotkey, m.key.ss58_address());
    assert_eq!(s.memory_free, 64 << 20);
    let echo = c
        .probe(ProbeRequest {
            version: v(),
            payload: b"ping".to_vec(),
        })
        .await
        .expect("probe");
    assert_eq!(echo.into_inner().payload, b"ping");

    // Unregistered caller.
    let stranger = key();
    let e = miner_client(&m, &stranger)
        .await
        .status(StatusRequest { version: v() })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("not registered on netuid 7"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("mrctl register --netuid 7"),
        "{}",
        e.message()
    );

    // Registered but under the stake floor.
    let e = miner_client(&m, &poor)
        .await
        .status(StatusRequest { version: v() })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        e.message().contains("miner.min_validator_stake"),
        "{}",
        e.message()
    );

    // Wrong major version.
    let mut other = Version::CURRENT;
    other.major += 1;
    let e = c
        .status(StatusRequest {
            version: Some(other.into()),
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message()
            .contains(&format!("run mapreduce {}.x", Version::CURRENT.major)),
        "{}",
        e.message()
    );

    // Body over the limit (64 KiB).
    let e = c
        .probe(ProbeRequest {
            version: v(),
            payload: vec![0; 100 << 10],
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("request body over 65536 bytes"),
        "{}",
        e.message()
    );

    // Over capacity: 64 MiB budget, a job of 3 peers x 4 blocks x 16 MiB does not fit.
    let e = c
        .accept_job(accept(1, 4 << 20, now_ms() + 60_000))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("over capacity"), "{}", e.message());

    // Expired.
    let e = c
        .accept_job(accept(2, 1024, now_ms() - 1))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("expired"), "{}", e.message());

    // A job that fits reserves memory until released.
    let r = c
        .accept_job(accept(3, 1024, now_ms() + 60_000))
        .await
        .expect("accept")
        .into_inner();
    assert!(r.reserved_bytes > 0);
    let s = c
        .status(StatusRequest { version: v() })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(s.memory_reserved, r.reserved_bytes);
    assert_eq!(s.jobs_running, 1);
    let rel = c
        .release_job(mr_proto::v1::ReleaseJobRequest {
            version: v(),
            job_id: 3,
            reason: "done".into(),
        })
        .await
        .expect("release");
    assert!(rel.into_inner().released);

    // Draining: no new jobs.
    m.state.drain();
    let e = c
        .accept_job(accept(4, 1024, now_ms() + 60_000))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("draining"), "{}", e.message());
}

/// Sends a Status call with the given metadata through an unsigned channel.
async fn raw_status(
    addr: SocketAddr,
    pairs: &[(&'static str, String)],
) -> Result<(), tonic::Status> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let pairs = pairs.to_vec();
    let mut c = MinerClient::with_interceptor(ch, move |mut r: tonic::Request<()>| {
        for (k, val) in &pairs {
            r.metadata_mut().insert(*k, val.parse().expect("ascii"));
        }
        Ok(r)
    });
    c.status(StatusRequest { version: v() }).await.map(|_| ())
}

/// The exact body tonic sends for StatusRequest{version: CURRENT}: a gRPC frame.
fn status_body() -> Vec<u8> {
    let msg = StatusRequest { version: v() }.encode_to_vec();
    let mut b = vec![0u8];
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(&msg);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_missing_and_replayed_signatures_are_refused() {
    let validator = key();
    let m = start_miner(&[(&validator, 5000.0)], 64 << 20, 0.0).await;
    let path = "/mapreduce.v1.Miner/Status";
    let nonce = NonceSource::new().next(&SystemClock);
    let signed = sign_request(
        &validator,
        "POST",
        path,
        &status_body(),
        Some(m.key.ss58_address()),
        nonce,
    )
    .expect("sign");

    // No metadata at all.
    let e = raw_status(m.axon, &[]).await.expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.message().contains("missing header x-bittensor-version"),
        "{}",
        e.message()
    );

    // Forged: the validator's hotkey, somebody else's signature.
    let forger = key();
    let forged = sign_request(
        &forger,
        "POST",
        path,
        &status_body(),
        Some(m.key.ss58_address()),
        nonce,
    )
    .expect("sign");
    let mut f = signed.clone();
    f.signature = forged.signature;
    let e = raw_status(m.axon, &f.to_pairs())
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(e.message(), "bad signature");

    // Signed for another method: the path is in the signature.
    let other = sign_request(
        &validator,
        "POST",
        "/mapreduce.v1.Miner/Probe",
        &status_body(),
        Some(m.key.ss58_address()),
        nonce + 1,
    )
    .expect("sign");
    let e = raw_status(m.axon, &other.to_pairs())
        .await
        .expect_err("refused");
    assert_eq!(e.message(), "bad signature");

    // Genuine: once accepted, then refused as a replay.
    raw_status(m.axon, &signed.to_pairs())
        .await
        .expect("genuine call");
    let e = raw_status(m.axon, &signed.to_pairs())
        .await
        .expect_err("replay");
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("replayed request"), "{}", e.message());

    // Addressed to another receiver.
    let elsewhere = sign_request(
        &validator,
        "POST",
        path,
        &status_body(),
        Some(forger.ss58_address()),
        nonce + 2,
    )
    .expect("sign");
    let e = raw_status(m.axon, &elsewhere.to_pairs())
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("not for us"), "{}", e.message());
}

struct ValidatorNode {
    key: Keypair,
    axon: SocketAddr,
    store: Arc<Store>,
}

async fn start_validator(
    key: Keypair,
    db: &std::path::Path,
    clients: Vec<String>,
    miners: &[&MinerNode],
) -> ValidatorNode {
    start_validator_with(key, db, clients, miners, Duration::from_secs(300), 50).await
}

async fn start_validator_with(
    key: Keypair,
    db: &std::path::Path,
    clients: Vec<String>,
    miners: &[&MinerNode],
    ttl: Duration,
    burst: u32,
) -> ValidatorNode {
    start_validator_spares(key, db, clients, miners, ttl, burst, 0).await
}

async fn start_validator_spares(
    key: Keypair,
    db: &std::path::Path,
    clients: Vec<String>,
    miners: &[&MinerNode],
    ttl: Duration,
    burst: u32,
    spares: u32,
) -> ValidatorNode {
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
    let k = Arc::new(key.clone());
    let state = ValidatorState::new(
        k,
        Arc::clone(&store),
        ValidatorOptions {
            session_time: ttl,
            max_job_bytes: 1 << 30,
            block_elems: 64 * 1024,
            miner_timeout: T,
            max_world_size: 64,
            miners_per_job: 0,
            spares,
        },
    );
    let layer = auth_rate(
        &key,
        StaticRegistry::new(NETUID),
        Admission::Clients { allow: clients },
        1 << 20,
        if burst >= 50 { 50.0 } else { 0.001 },
        burst,
    );
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let axon = l.local_addr().expect("addr");
    tokio::spawn(serve_validator(
        l,
        layer,
        ValidatorService { state, bench: None },
        std::future::pending(),
    ));
    ValidatorNode { key, axon, store }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_get_a_job_and_all_reduce_through_three_miners_skipping_a_refusal() {
    let vkey = key();
    let mut miners = Vec::new();
    for _ in 0..3 {
        miners.push(start_miner(&[(&vkey, 0.0)], 256 << 20, 0.0).await);
    }
    // The most free memory, so asked first; it refuses (draining) and the validator moves on.
    let draining = start_miner(&[(&vkey, 0.0)], 512 << 20, 0.0).await;
    draining.state.drain();
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("validator.sqlite");
    let mut refs: Vec<&MinerNode> = miners.iter().collect();
    refs.push(&draining);
    let val = start_validator(vkey.clone(), &db, vec!["*".into()], &refs).await;
    let addr = ValidatorAddr {
        endpoint: val.axon.to_string(),
        hotkey: val.key.ss58_address().to_string(),
    };
    let elements: u64 = 4 << 20; // 16 MiB of f32 per peer
    let peers: Vec<Keypair> = (0..3).map(|_| key()).collect();
    let seed = 11;
    let job_id = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || all_reduce_job(&addr, &peers, "test-run", elements, seed)
    })
    .await
    .expect("peers");
    let row = val.store.job(job_id).expect("db").expect("job row");
    assert_eq!(row.state, JobState::Done as i32, "{row:?}");
    assert_eq!(row.miners.len(), 3);
    assert!(!row.miners.iter().any(|m| m == draining.key.ss58_address()));
    // Miners got their reservations back (the relay forgets the job once its last connection
    // has closed, a moment after the peers return).
    for m in &miners {
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while m.state.jobs_running() > 0 && std::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(m.state.jobs_running(), 0);
    }

    // An unlisted client is refused.
    let val2 = start_validator(key(), &dir.path().join("v2.sqlite"), vec![], &[]).await;
    let stranger = key();
    let ch = connect(
        &val2.axon.to_string(),
        Arc::new(stranger.clone()),
        val2.key.ss58_address(),
        T,
    )
    .await
    .expect("connect");
    let e = ValidatorClient::new(ch)
        .job_status(JobStatusRequest {
            version: v(),
            job_id,
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("validator.clients"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validator_names_a_spare_when_capacity_allows_and_checks_failure_reports() {
    let vkey = key();
    let mut miners = Vec::new();
    for _ in 0..3 {
        miners.push(start_miner(&[(&vkey, 0.0)], 256 << 20, 0.0).await);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let refs: Vec<&MinerNode> = miners.iter().collect();
    let val = start_validator_spares(
        vkey.clone(),
        &dir.path().join("v.sqlite"),
        vec!["*".into()],
        &refs,
        Duration::from_secs(300),
        50,
        1,
    )
    .await;
    let peer = key();
    let ch = connect(
        &val.axon.to_string(),
        Arc::new(peer.clone()),
        val.key.ss58_address(),
        T,
    )
    .await
    .expect("connect");
    let mut c = ValidatorClient::new(ch);
    let ask = |miners: u32, name: &str| RequestJobRequest {
        version: v(),
        world_size: 1,
        elements: 1 << 20,
        dtype: 1,
        miners,
        name: name.into(),
    };
    let ticket_of = |info: &mr_proto::v1::JobInfo| {
        let st = info.ticket.clone().expect("a ticket");
        mr_proto::v1::JobTicket::decode(st.ticket.as_slice()).expect("ticket")
    };

    // Two miners wanted, three available: the third is the spare, signed into the ticket.
    let info = c.request_job(ask(2, "a")).await.expect("job").into_inner();
    let t = ticket_of(&info);
    assert_eq!((t.miners.len(), t.spares.len()), (2, 1), "{t:?}");
    assert!(!t.miners.iter().any(|m| m.hotkey == t.spares[0].hotkey));
    let row = val.store.job(info.job_id).expect("db").expect("row");
    assert_eq!(row.miners.len(), 3, "the spare holds a reservation too");

    // A failure report may only name the job's miners (or its spare); it is recorded.
    let report = |failed: Vec<String>| ReportJobRequest {
        version: v(),
        job_id: info.job_id,
        ok: true,
        reason: String::new(),
        failed_miners: failed,
    };
    let e = c
        .report_job(report(vec![key().ss58_address().to_string()]))
        .await
        .expect_err("not a miner of the job");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    assert!(val.store.job_failures_since(0).expect("db").is_empty());
    let dead = t.miners[1].hotkey.clone();
    c.report_job(report(vec![dead.clone()]))
        .await
        .expect("report");
    let f = val.store.job_failures_since(0).expect("db");
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0.as_str(), f[0].1), (dead.as_str(), info.job_id));

    // Three wanted, three available: no capacity for a spare, and the job runs anyway.
    let info = c.request_job(ask(3, "b")).await.expect("job").into_inner();
    let t = ticket_of(&info);
    assert_eq!((t.miners.len(), t.spares.len()), (3, 0), "{t:?}");
}

#[test]
fn relay_trust_is_shared_by_clones_and_replaceable() {
    let t = Trust::new(["a".to_string()]);
    let running = t.clone(); // what the relay holds
    assert!(running.trusts("a") && !running.trusts("b"));
    t.replace(["b".to_string()]);
    assert!(running.trusts("b") && !running.trusts("a"));
    assert_eq!(running.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_expires_jobs_and_rate_limits_callers() {
    let dir = tempfile::tempdir().expect("tmp");
    let val = start_validator_with(
        key(),
        &dir.path().join("v.sqlite"),
        vec!["*".into()],
        &[],
        Duration::from_millis(500),
        3,
    )
    .await;
    let peer = key();
    let ch = connect(
        &val.axon.to_string(),
        Arc::new(peer.clone()),
        val.key.ss58_address(),
        T,
    )
    .await
    .expect("connect");
    let mut c = ValidatorClient::new(ch);
    let info = c
        .request_job(mr_proto::v1::RequestJobRequest {
            version: v(),
            world_size: 2,
            elements: 1024,
            dtype: 1,
            miners: 0,
            name: String::new(),
        })
        .await
        .expect("request")
        .into_inner();
    assert_eq!(info.state, JobState::Pending as i32);
    assert_eq!(info.peers[0], peer.ss58_address());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let st = c
        .job_status(JobStatusRequest {
            version: v(),
            job_id: info.job_id,
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(st.state, JobState::Expired as i32, "{st:?}");
    let e = c
        .join_job(mr_proto::v1::JoinJobRequest {
            version: v(),
            job_id: info.job_id,
            rank: 1,
            name: String::new(),
        })
        .await
        .expect_err("expired job");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("Expired"), "{}", e.message());
    // Burst of 3 per hotkey, (almost) no refill: the 4th call is refused.
    let e = c
        .job_status(JobStatusRequest {
            version: v(),
            job_id: info.job_id,
        })
        .await
        .expect_err("rate limited");
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("rate limit"), "{}", e.message());
    // Another hotkey has its own bucket.
    let other = key();
    let ch = connect(
        &val.axon.to_string(),
        Arc::new(other),
        val.key.ss58_address(),
        T,
    )
    .await
    .expect("connect");
    ValidatorClient::new(ch)
        .job_status(JobStatusRequest {
            version: v(),
            job_id: info.job_id,
        })
        .await
        .expect("own bucket");
}

/// Two peers of one job through two miners, with a 3 s job lease (validator.job_ttl_secs), run
/// collectives for 7 s: every collective after half the lease renews it (RenewJob), so the job
/// stays running past its first expiry, the miners' reservations follow (ExtendJob), and the
/// job ends done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_use_is_renewed_past_its_ttl() {
    use mapreduce::core::{Collective, Dtype, Op};
    use mapreduce::peer::{Session, SessionOptions, check};
    let vkey = key();
    let mut miners = Vec::new();
    for _ in 0..2 {
        miners.push(start_miner(&[(&vkey, 0.0)], 256 << 20, 0.0).await);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let refs: Vec<&MinerNode> = miners.iter().collect();
    let ttl = Duration::from_secs(3);
    let val = start_validator_with(
        vkey.clone(),
        &dir.path().join("v.sqlite"),
        vec!["*".into()],
        &refs,
        ttl,
        50,
    )
    .await;
    let addr = ValidatorAddr {
        endpoint: val.axon.to_string(),
        hotkey: val.key.ss58_address().to_string(),
    };
    let elements: u64 = 64 * 1024;
    let peers: Vec<Keypair> = (0..2).map(|_| key()).collect();
    let started = now_ms();
    let sessions = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let hs: Vec<_> = peers
                .iter()
                .enumerate()
                .map(|(rank, k)| {
                    let addr = addr.clone();
                    s.spawn(move || {
                        let rank = rank as u32;
                        let mut sess = Session::init(
                            &addr,
                            k,
                            2,
                            rank,
                            "lease-run",
                            elements,
                            Dtype::F32,
                            SessionOptions::default(),
                        )
                        .unwrap_or_else(|e| panic!("rank {rank} init: {e}"));
                        let first_expiry = sess.expires_at_ms();
                        for step in 0..8u64 {
                            let mut data = vec![0f32; elements as usize];
                            check::fill(step, rank, &mut data);
                            sess.all_reduce(&mut data, Op::Sum)
                                .unwrap_or_else(|e| panic!("rank {rank} step {step}: {e}"));
                            check::verify(
                                step,
                                2,
                                Collective::AllReduce(Op::Sum),
                                Dtype::F32,
                                rank,
                                &data,
                            )
                            .unwrap_or_else(|e| panic!("rank {rank} step {step}: {e}"));
                            std::thread::sleep(Duration::from_millis(900));
                        }
                        (sess, first_expiry)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("peer"))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("peers");
    let now = now_ms();
    assert!(
        now > started + 2 * ttl.as_millis() as u64,
        "the run must outlast the lease twice"
    );
    let job_id = sessions[0].0.job_id();
    let row = val.store.job(job_id).expect("db").expect("job row");
    assert_eq!(row.state, JobState::Running as i32, "{row:?}");
    assert!(
        row.expires_at_ms > now,
        "lease not renewed: {row:?} (now {now})"
    );
    for (s, first) in &sessions {
        assert!(s.expires_at_ms() > *first, "the session saw no renewal");
    }
    // The miners' reservations were extended too (the first one ended at the first expiry).
    for m in &miners {
        let acc = m.state.accepted_jobs();
        let (_, _, until) = acc
            .iter()
            .find(|(id, _, _)| *id == job_id)
            .unwrap_or_else(|| panic!("reservation of job {job_id} gone: {acc:?}"));
        assert!(
            *until > now,
            "reservation not extended: {until} (now {now})"
        );
    }
    // Sessions own a runtime: closed (and dropped) off the async test's threads.
    tokio::task::spawn_blocking(move || {
        for (s, _) in sessions {
            s.close();
        }
    })
    .await
    .expect("close");
    let row = val.store.job(job_id).expect("db").expect("job row");
    assert_eq!(row.state, JobState::Done as i32, "{row:?}");
}

/// A job left alone past its lease expires: the validator says so, refuses to renew it, the
/// session's next collective fails naming the expiry, and the miners drop their reservations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_job_expires_and_is_not_renewed() {
    use mapreduce::core::{Dtype, Op};
    use mapreduce::peer::{Session, SessionOptions};
    let vkey = key();
    let miner = start_miner(&[(&vkey, 0.0)], 256 << 20, 0.0).await;
    let dir = tempfile::tempdir().expect("tmp");
    let val = start_validator_with(
        vkey.clone(),
        &dir.path().join("v.sqlite"),
        vec!["*".into()],
        &[&miner],
        Duration::from_secs(2),
        50,
    )
    .await;
    let addr = ValidatorAddr {
        endpoint: val.axon.to_string(),
        hotkey: val.key.ss58_address().to_string(),
    };
    let peer = key();
    let (job_id, err) = tokio::task::spawn_blocking(move || {
        let mut sess =
            Session::create(&addr, &peer, 1, 1024, Dtype::F32, SessionOptions::default())
                .expect("create");
        let mut data = vec![1f32; 1024];
        sess.all_reduce(&mut data, Op::Sum).expect("first use");
        std::thread::sleep(Duration::from_millis(2600));
        let err = sess
            .all_reduce(&mut data, Op::Sum)
            .expect_err("an expired job is not renewed");
        (sess.job_id(), err)
    })
    .await
    .expect("peer");
    let msg = err.to_string();
    assert!(
        matches!(err, mapreduce::peer::PeerError::Expired { .. }) && msg.contains("expired"),
        "{msg}"
    );
    let row = val.store.job(job_id).expect("db").expect("job row");
    assert_eq!(row.state, JobState::Expired as i32, "{row:?}");
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while miner
        .state
        .accepted_jobs()
        .iter()
        .any(|(id, _, _)| *id == job_id)
    {
        assert!(
            std::time::Instant::now() < end,
            "the miner kept the reservation of expired job {job_id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
