//! Attacks on the data plane (issue 12), one test per case, against real `mrd relay` processes
//! on 127.0.0.1. Each test sends what an attacker would (raw frames, forged or stale tickets,
//! idle or trickling sockets, a crowd of connections), checks the relay's refusal (an Error frame
//! naming the problem, then close), and checks that nothing changed: the relay (3 MiB budget)
//! still runs two one-peer jobs at once with exact results, which it could not if the refused
//! connection had kept any memory reserved.

mod relay_support;

use mapreduce::core::{Collective, Dtype, Op};
use mapreduce::peer::{Job, Peer, check};
use mapreduce::relay::{Relay, RelayOptions, Trust};
use mapreduce::wallet::Keypair;
use mapreduce::wire::handshake::{JobTicket, hello, issue, now_ms};
use mapreduce::wire::io::{read_header, read_payload, write_frame};
use mapreduce::wire::{Header, Kind};
use prost::Message;
use relay_support::{RelayProc, TestJob, job, key, next_error};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);
/// Elements of the jobs that prove the budget is whole (about 1.1 MiB reserved each).
const N: u64 = 200_000;
const BLOCK: u32 = 64 * 1024;

/// A relay trusting `key(0)`, with a 3 MiB budget (two small jobs fit, three do not), a 1 s
/// handshake timeout and at most 8 connections per address.
fn relay() -> RelayProc {
    relay_with(&[])
}

fn relay_with(extra: &[(&str, &str)]) -> RelayProc {
    let mut env = vec![
        ("MR_RELAY_WINDOW_BLOCKS", "2"),
        ("MR_RELAY_MAX_MEMORY_MIB", "3"),
        ("MR_RELAY_HANDSHAKE_TIMEOUT_SECS", "1"),
        ("MR_RELAY_MAX_CONNS_PER_IP", "8"),
    ];
    for (k, v) in extra {
        env.retain(|(ek, _)| ek != k);
        env.push((k, v));
    }
    RelayProc::start(&key(0), &env)
}

fn frame(kind: Kind, job: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, &Header::for_payload(kind, job, payload), payload).expect("encode");
    out
}

fn connect(relay: &RelayProc) -> TcpStream {
    let s = TcpStream::connect(&relay.addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s
}

/// Sends `bytes` on a new connection; returns the relay's reason, after checking it closed.
fn refusal(relay: &RelayProc, bytes: &[u8]) -> String {
    refusal_at(&relay.addr, bytes)
}

fn refusal_at(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(bytes).expect("write");
    let why = next_error(&mut s);
    assert!(
        read_header(&mut s, 1 << 20).expect("clean close").is_none(),
        "closed after the refusal"
    );
    why
}

/// A one-peer ticket of job `id` giving shard 0 to `miner` at `addr`.
fn ticket_for(id: u64, miner: &Keypair, addr: &str) -> TestJob {
    ticket_expiring(id, miner, addr, now_ms() + 600_000)
}

fn ticket_expiring(id: u64, miner: &Keypair, addr: &str, expires_at_ms: u64) -> TestJob {
    let peer = key(id * 1000);
    let t = JobTicket {
        job_id: id,
        peers: vec![peer.ss58_address().to_string()],
        miners: vec![mapreduce::wire::handshake::MinerSlot {
            hotkey: miner.ss58_address().to_string(),
            address: addr.to_string(),
            weight: 1,
        }],
        dtype: u32::from(Dtype::F32.code()),
        block_elems: BLOCK,
        elements: N,
        expires_at_ms,
        deadline_ms: 10_000,
        ..Default::default()
    };
    TestJob {
        ticket: issue(t, &key(0)).expect("sign"),
        keys: vec![peer],
    }
}

fn hello_frame(tj: &TestJob, id: u64, rank: u32, shard: u32, signer: &Keypair) -> Vec<u8> {
    let hs = hello(&tj.ticket, id, rank, shard, signer)
        .expect("hello")
        .encode_to_vec();
    frame(Kind::Hello, id, &hs)
}

/// Sends the handshake of `rank` of `tj` by hand and returns the socket.
fn join_raw(relay: &RelayProc, tj: &TestJob, id: u64, rank: u32) -> TcpStream {
    let mut s = connect(relay);
    s.write_all(&hello_frame(tj, id, rank, 0, &tj.keys[rank as usize]))
        .expect("hello");
    s
}

/// Joins a one-peer job by hand and returns the socket after the Welcome.
fn join_alone(relay: &RelayProc, tj: &TestJob, id: u64) -> TcpStream {
    let mut s = join_raw(relay, tj, id, 0);
    let w = read_header(&mut s, 1 << 20)
        .expect("frame")
        .expect("welcome");
    assert_eq!(w.kind, Kind::Welcome);
    let mut buf = vec![0u8; w.len as usize];
    read_payload(&mut s, &w, &mut buf).expect("welcome payload");
    s
}

/// Begins operation 0 (all_reduce sum) on a raw connection.
fn begin(s: &mut TcpStream, id: u64) {
    let c = Collective::AllReduce(Op::Sum).encode();
    write_frame(s, &Header::for_payload(Kind::Begin, id, &c), &c).expect("begin");
}

/// Nothing changed: two one-peer jobs run at once (the 3 MiB budget holds both only if no
/// refused connection kept memory), with exact results.
fn budget_is_whole(relay: &RelayProc, first_id: u64) {
    let validator = key(0);
    let jobs: Vec<TestJob> = (0..2)
        .map(|i| {
            job(
                &validator,
                first_id + i,
                1,
                &[relay],
                Dtype::F32,
                N,
                BLOCK,
                10_000,
            )
        })
        .collect();
    let end = Instant::now() + DEADLINE;
    let mut peers = Vec::new();
    for tj in &jobs {
        let p = loop {
            match Peer::connect(
                Job::from_ticket(tj.ticket.clone(), 0).expect("job"),
                &tj.keys[0],
            ) {
                Ok(p) => break p,
                // A refused or dropped connection may still be closing for a moment: until the
                // relay has read its end, its memory and its place in the address's connection
                // count are still taken.
                Err(e)
                    if Instant::now() < end
                        && ["memory budget", "too many connections"]
                            .iter()
                            .any(|s| e.to_string().contains(s)) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the budget is not whole: {e}"),
            }
        };
        peers.push(p);
    }
    for (i, p) in peers.iter_mut().enumerate() {
        let mut data = vec![0f32; N as usize];
        check::fill(i as u64, 0, &mut data);
        p.all_reduce(&mut data, Op::Sum).expect("all_reduce");
        check::verify(
            i as u64,
            1,
            Collective::AllReduce(Op::Sum),
            Dtype::F32,
            0,
            &data,
        )
        .expect("exact");
    }
}

fn small_job(id: u64, peers: u32, relay: &RelayProc) -> TestJob {
    job(&key(0), id, peers, &[relay], Dtype::F32, 10, 4, 10_000)
}

#[test]
fn no_handshake_data_frame_first_is_refused() {
    let r = relay();
    let why = refusal(&r, &frame(Kind::Data, 1, b"abcd"));
    assert!(why.contains("expected a handshake"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn garbage_instead_of_a_frame_is_refused() {
    let r = relay();
    let why = refusal(
        &r,
        b"GET / HTTP/1.1\r\n\r\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
    assert!(why.contains("bad magic"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn malformed_handshake_payload_is_refused() {
    let r = relay();
    let why = refusal(&r, &frame(Kind::Hello, 1, b"\xff\xff"));
    assert!(why.contains("malformed"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn ticket_signed_by_an_untrusted_key_is_refused() {
    let r = relay();
    let stranger = key(55);
    let tj = job(&stranger, 7, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let why = refusal(&r, &hello_frame(&tj, 7, 0, 0, &tj.keys[0]));
    assert!(why.contains("does not trust"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn ticket_with_a_forged_validator_signature_is_refused() {
    let r = relay();
    let mut tj = job(&key(0), 8, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    tj.ticket.signature[0] ^= 1;
    let why = refusal(&r, &hello_frame(&tj, 8, 0, 0, &tj.keys[0]));
    assert!(why.contains("bad ticket signature"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn expired_ticket_is_refused() {
    let r = relay();
    let tj = ticket_expiring(9, &key(900), &r.addr, now_ms() - 1_000);
    let why = refusal(&r, &hello_frame(&tj, 9, 0, 0, &tj.keys[0]));
    assert!(why.contains("expired"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn ticket_for_another_shard_is_refused() {
    // A one-miner ticket presented as shard 1: the ticket names no such miner.
    let r = relay();
    let tj = small_job(10, 1, &r);
    let why = refusal(&r, &hello_frame(&tj, 10, 0, 1, &tj.keys[0]));
    assert!(why.contains("shard 1 is not in the ticket"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn rank_not_in_ticket_is_refused() {
    let r = relay();
    let tj = small_job(11, 2, &r);
    // Rank 5 of 2, signed by a peer key (the signature check comes after the rank check).
    let why = refusal(&r, &hello_frame(&tj, 11, 5, 0, &tj.keys[0]));
    assert!(why.contains("rank 5 is not in the ticket"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn join_signed_by_someone_else_is_refused() {
    let r = relay();
    let tj = small_job(12, 1, &r);
    let why = refusal(&r, &hello_frame(&tj, 12, 0, 0, &key(66)));
    assert!(why.contains("bad join signature"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn handshake_frame_naming_another_job_is_refused() {
    let r = relay();
    let tj = small_job(13, 1, &r);
    let hs = hello(&tj.ticket, 13, 0, 0, &tj.keys[0])
        .expect("hello")
        .encode_to_vec();
    let why = refusal(&r, &frame(Kind::Hello, 14, &hs));
    assert!(why.contains("names job 14"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn duplicate_rank_fails_the_job_and_frees_it() {
    let r = relay();
    let tj = job(&key(0), 15, 2, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let mut first = join_raw(&r, &tj, 15, 0);
    std::thread::sleep(Duration::from_millis(100));
    let mut second = connect(&r);
    second
        .write_all(&hello_frame(&tj, 15, 0, 0, &tj.keys[0]))
        .expect("hello");
    for s in [&mut second, &mut first] {
        let why = next_error(s);
        assert!(why.contains("duplicate rank"), "{why}");
    }
    drop((first, second));
    budget_is_whole(&r, 100);
}

#[test]
fn frame_over_the_limit_is_refused() {
    let r = relay();
    let mut big = Header::for_payload(Kind::Hello, 1, &[]);
    big.len = 1 << 30;
    let why = refusal(&r, &big.encode());
    assert!(why.contains("over this connection's limit"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn bad_checksum_is_refused() {
    let r = relay();
    let mut corrupt = frame(Kind::Hello, 1, b"xxxx");
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    let why = refusal(&r, &corrupt);
    assert!(why.contains("checksum"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn data_block_with_a_bad_checksum_fails_the_job_and_frees_it() {
    let r = relay();
    let tj = job(&key(0), 16, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let mut s = join_alone(&r, &tj, 16);
    begin(&mut s, 16);
    let payload = vec![0u8; BLOCK as usize * 4];
    let mut h = Header::for_payload(Kind::Data, 16, &payload);
    h.dtype = Some(Dtype::F32);
    h.checksum ^= 1;
    write_frame(&mut s, &h, &payload).expect("data");
    let why = next_error(&mut s);
    assert!(why.contains("rank 0") && why.contains("checksum"), "{why}");
    drop(s);
    budget_is_whole(&r, 100);
}

#[test]
fn block_out_of_range_fails_the_job_and_frees_it() {
    let r = relay();
    let tj = job(&key(0), 17, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let mut s = join_alone(&r, &tj, 17);
    begin(&mut s, 17);
    let payload = vec![0u8; BLOCK as usize * 4];
    let mut h = Header::for_payload(Kind::Data, 17, &payload);
    h.dtype = Some(Dtype::F32);
    h.block = 999;
    write_frame(&mut s, &h, &payload).expect("data");
    let why = next_error(&mut s);
    assert!(why.contains("sent block 999, expected block 0"), "{why}");
    drop(s);
    budget_is_whole(&r, 100);
}

#[test]
fn wrong_dtype_fails_the_job_and_frees_it() {
    let r = relay();
    let tj = job(&key(0), 18, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let mut s = join_alone(&r, &tj, 18);
    begin(&mut s, 18);
    let payload = vec![0u8; BLOCK as usize * 2];
    let mut h = Header::for_payload(Kind::Data, 18, &payload);
    h.dtype = Some(Dtype::F16);
    write_frame(&mut s, &h, &payload).expect("data");
    let why = next_error(&mut s);
    assert!(why.contains("the job's dtype is"), "{why}");
    drop(s);
    budget_is_whole(&r, 100);
}

#[test]
fn data_before_beginning_an_operation_fails_the_job() {
    let r = relay();
    let tj = job(&key(0), 19, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let mut s = join_alone(&r, &tj, 19);
    let payload = vec![0u8; BLOCK as usize * 4];
    let mut h = Header::for_payload(Kind::Data, 19, &payload);
    h.dtype = Some(Dtype::F32);
    write_frame(&mut s, &h, &payload).expect("data");
    let why = next_error(&mut s);
    assert!(why.contains("before beginning it"), "{why}");
    drop(s);
    budget_is_whole(&r, 100);
}

#[test]
fn ticket_asking_for_oversized_blocks_is_refused() {
    let r = relay();
    // 32 Mi f32 elements per block: 128 MiB, over the relay's 64 MiB block limit.
    let tj = job(&key(0), 20, 1, &[&r], Dtype::F32, 1 << 26, 32 << 20, 10_000);
    let why = refusal(&r, &hello_frame(&tj, 20, 0, 0, &tj.keys[0]));
    assert!(why.contains("more than this relay's"), "{why}");
    budget_is_whole(&r, 100);
}

#[test]
fn same_job_id_with_another_ticket_is_refused() {
    let r = relay();
    // Job 21 admitted (its one peer welcomed) before the second ticket arrives.
    let a = job(&key(0), 21, 1, &[&r], Dtype::F32, N, BLOCK, 10_000);
    let _first = join_alone(&r, &a, 21);
    // Another ticket (other peers) for job 21 while it runs.
    let b = job(&key(0), 21, 2, &[&r], Dtype::F32, 10, 4, 10_000);
    let why = refusal(&r, &hello_frame(&b, 21, 0, 0, &b.keys[0]));
    assert!(why.contains("different ticket"), "{why}");
}

#[test]
fn idle_connection_is_closed_after_the_handshake_timeout() {
    let r = relay();
    let mut s = connect(&r);
    let t0 = Instant::now();
    let why = next_error(&mut s);
    let took = t0.elapsed();
    assert!(why.contains("no handshake in time"), "{why}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "closed after {took:?} (relay.handshake_timeout_secs = 1)"
    );
    budget_is_whole(&r, 100);
}

#[test]
fn trickling_handshake_is_closed_after_the_handshake_timeout() {
    let r = relay();
    let tj = small_job(22, 1, &r);
    let bytes = hello_frame(&tj, 22, 0, 0, &tj.keys[0]);
    let mut s = connect(&r);
    let t0 = Instant::now();
    // One byte every 100 ms: the whole handshake would take many seconds.
    let mut closed = false;
    for b in &bytes {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t0.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let _ = closed;
    // The relay gave up after ~1 s: its Error frame, then close.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("no handshake in time"), "{text:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "trickler held the connection for {:?}",
        t0.elapsed()
    );
    budget_is_whole(&r, 100);
}

#[test]
fn too_many_connections_from_one_address_are_refused_and_others_are_served() {
    let r = relay_with(&[("MR_RELAY_HANDSHAKE_TIMEOUT_SECS", "30")]);
    // Eight idle connections from 127.0.0.1: the limit.
    let held: Vec<TcpStream> = (0..8).map(|_| connect(&r)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = connect(&r);
    let why = next_error(&mut ninth);
    assert!(
        why.contains("too many connections from 127.0.0.1") && why.contains("max_conns_per_ip"),
        "{why}"
    );
    // Another address is not affected: a connection from 127.0.0.2 reaches the handshake.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let other = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        sock.connect(r.addr.parse().expect("relay addr"))
            .await
            .expect("connect from 127.0.0.2")
            .into_std()
            .expect("std")
    });
    other.set_nonblocking(false).expect("blocking");
    other
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    let r2 = (&other).read(&mut buf);
    assert!(
        matches!(&r2, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "127.0.0.2 was not left waiting for its handshake: {r2:?}"
    );
    // Freeing the address's connections lets it in again: jobs run.
    drop(held);
    drop(other);
    budget_is_whole(&r, 100);
}

#[test]
fn ticket_for_another_miner_is_refused() {
    // A miner's relay knows its hotkey (`mrd miner` sets it; a standalone `mrd relay` has none),
    // so this one runs in the test process, on real TCP.
    let me = key(901);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let relay = Relay::new(RelayOptions {
        window_blocks: 2,
        max_memory: 3 << 20,
        trust: Trust::new([key(0).ss58_address().to_string()]),
        handshake_timeout: Duration::from_secs(1),
        max_block_bytes: 64 << 20,
        max_conns_per_ip: 8,
        own_hotkey: Some(me.ss58_address().to_string()),
    });
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    rt.spawn(std::sync::Arc::clone(&relay).serve(l));

    // A valid ticket (trusted validator, right address) that gives the shard to another miner.
    let other = ticket_for(30, &key(900), &addr);
    let why = refusal_at(&addr, &hello_frame(&other, 30, 0, 0, &other.keys[0]));
    assert!(
        why.contains("gives shard 0 to miner") && why.contains("not to this miner"),
        "{why}"
    );
    assert_eq!(relay.job_count(), 0, "a job was admitted");
    // The same job for this miner is served: the refusal was about the miner, nothing else.
    let ours = ticket_for(31, &me, &addr);
    let mut p = Peer::connect(
        Job::from_ticket(ours.ticket.clone(), 0).expect("job"),
        &ours.keys[0],
    )
    .expect("joins");
    let mut data = vec![1f32; N as usize];
    p.all_reduce(&mut data, Op::Sum).expect("all_reduce");
    assert!(data.iter().all(|&x| x == 1.0));
}
