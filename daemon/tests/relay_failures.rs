//! Failures with real processes: a peer or a relay killed mid-transfer, and bad input of every
//! kind. The others get a clear error naming who went away, within the deadline; a bad
//! connection fails only its own job, and the relay's memory comes back.

mod relay_support;

use mapreduce::core::{Dtype, Op};
use mapreduce::peer::bench::{Command, Reply};
use mapreduce::peer::{Job, Peer, PeerError, check};
use mapreduce::wire::handshake::hello;
use mapreduce::wire::io::{read_header, read_payload, write_frame};
use mapreduce::wire::{Header, Kind};
use prost::Message;
use relay_support::{PeerProc, RelayProc, TestJob, job, key, next_error, signal};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

/// Starts P peer processes on a big enough job that the kill lands mid-transfer.
fn running_job(relays: &[&RelayProc], id: u64) -> (TestJob, Vec<PeerProc>) {
    let validator = key(0);
    let tj = job(
        &validator,
        id,
        3,
        relays,
        Dtype::F32,
        12 << 20,
        64 * 1024,
        10_000,
    );
    let mut peers: Vec<PeerProc> = (0..3).map(|r| PeerProc::start(&tj, r, 5)).collect();
    for p in &mut peers {
        p.send(&Command::Connect);
    }
    for p in &peers {
        assert!(matches!(p.recv(DEADLINE), Reply::Connected { .. }));
    }
    for p in &mut peers {
        p.send(&Command::Prepare {
            op: "sum".into(),
            src: 0,
        });
    }
    for p in &peers {
        assert!(matches!(p.recv(Duration::from_secs(60)), Reply::Ready));
    }
    for p in &mut peers {
        p.send(&Command::Go);
    }
    std::thread::sleep(Duration::from_millis(30));
    (tj, peers)
}

fn expect_failure(p: &PeerProc, killed_at: Instant, names: &str) {
    match p.recv(DEADLINE + Duration::from_secs(5)) {
        Reply::Failed { error } => {
            assert!(error.contains(names), "{error:?} should name {names:?}");
            assert!(
                killed_at.elapsed() < DEADLINE,
                "error came after {:?}",
                killed_at.elapsed()
            );
            eprintln!("after {:?}: {error}", killed_at.elapsed());
        }
        other => panic!("expected a failure naming {names}, got {other:?}"),
    }
}

#[test]
fn a_peer_killed_mid_transfer_is_named_to_the_others() {
    let validator = key(0);
    let relays: Vec<RelayProc> = (0..3)
        .map(|_| RelayProc::start(&validator, &[("MR_RELAY_WINDOW_BLOCKS", "2")]))
        .collect();
    let refs: Vec<&RelayProc> = relays.iter().collect();
    let (tj, peers) = running_job(&refs, 101);
    assert!(peers[0].try_recv().is_none(), "still transferring");
    signal(peers[2].proc.pid(), "-KILL");
    let killed = Instant::now();
    let name = format!("rank 2 ({})", tj.keys[2].ss58_address());
    expect_failure(&peers[0], killed, &name);
    expect_failure(&peers[1], killed, &name);
}

#[test]
fn a_relay_killed_mid_transfer_is_named_to_every_peer() {
    let validator = key(0);
    let relays: Vec<RelayProc> = (0..3)
        .map(|_| RelayProc::start(&validator, &[("MR_RELAY_WINDOW_BLOCKS", "2")]))
        .collect();
    let refs: Vec<&RelayProc> = relays.iter().collect();
    let (_tj, peers) = running_job(&refs, 102);
    assert!(peers[0].try_recv().is_none(), "still transferring");
    signal(relays[1].proc.pid(), "-KILL");
    let killed = Instant::now();
    for p in &peers {
        expect_failure(p, killed, &format!("at {}", relays[1].addr));
    }
}

/// Sends raw bytes; returns the relay's error message (it must answer with one and close).
fn raw_error(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(bytes).expect("write");
    let h = read_header(&mut s, 1 << 20)
        .expect("a frame")
        .expect("not closed");
    assert_eq!(h.kind, Kind::Error);
    let mut buf = vec![0u8; h.len as usize];
    read_payload(&mut s, &h, &mut buf).expect("payload");
    assert!(
        read_header(&mut s, 1 << 20).expect("clean close").is_none(),
        "then closed"
    );
    String::from_utf8(buf).expect("utf-8")
}

fn frame(kind: Kind, job: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, &Header::for_payload(kind, job, payload), payload).expect("encode");
    out
}

#[test]
fn bad_connections_get_a_reason_and_are_closed() {
    let validator = key(0);
    let relay = RelayProc::start(&validator, &[]);
    let a = &relay.addr;
    let http = raw_error(
        a,
        b"GET / HTTP/1.1\r\n\r\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
    assert!(http.contains("bad magic"), "{http}");
    assert!(raw_error(a, &frame(Kind::Data, 1, b"abcd")).contains("expected a handshake"));
    let mut big = Header::for_payload(Kind::Hello, 1, &[]);
    big.len = 1 << 30;
    assert!(raw_error(a, &big.encode()).contains("over this connection's limit"));
    let mut corrupt = frame(Kind::Hello, 1, b"xxxx");
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert!(raw_error(a, &corrupt).contains("checksum"));
    assert!(raw_error(a, &frame(Kind::Hello, 1, b"\xff\xff")).contains("malformed"));

    // A ticket from a validator this relay does not trust.
    let stranger = key(55);
    let tj = job(&stranger, 7, 1, &[&relay], Dtype::F32, 10, 4, 10_000);
    let hs = hello(&tj.ticket, 7, 0, 0, &tj.keys[0])
        .expect("hello")
        .encode_to_vec();
    assert!(raw_error(a, &frame(Kind::Hello, 7, &hs)).contains("does not trust"));

    // Someone else signing for rank 0.
    let tj = job(&validator, 8, 1, &[&relay], Dtype::F32, 10, 4, 10_000);
    let hs = hello(&tj.ticket, 8, 0, 0, &key(66))
        .expect("hello")
        .encode_to_vec();
    assert!(raw_error(a, &frame(Kind::Hello, 8, &hs)).contains("bad join signature"));
}

/// Joins `tj` as `rank` by hand and returns the socket, after the Welcome.
fn join_raw(relay: &RelayProc, tj: &TestJob, id: u64, rank: u32) -> TcpStream {
    let mut s = TcpStream::connect(&relay.addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let hs = hello(&tj.ticket, id, rank, 0, &tj.keys[rank as usize])
        .expect("hello")
        .encode_to_vec();
    s.write_all(&frame(Kind::Hello, id, &hs)).expect("hello");
    s
}

#[test]
fn a_bad_frame_fails_only_its_job_and_frees_its_memory() {
    let validator = key(0);
    // A one-peer job reserves about 1.1 MiB, the two-peer job B about 1.6 MiB: in 3 MiB, A fits
    // with B or with C, but not with both, nor with C and D.
    let relay = RelayProc::start(
        &validator,
        &[
            ("MR_RELAY_WINDOW_BLOCKS", "2"),
            ("MR_RELAY_MAX_MEMORY_MIB", "3"),
        ],
    );
    let n = 200_000u64;
    let block = 64 * 1024;

    // Job A: one peer that stays connected across the whole test.
    let ta = job(&validator, 201, 1, &[&relay], Dtype::F32, n, block, 10_000);
    let mut a = Peer::connect(
        Job::from_ticket(ta.ticket.clone(), 0).expect("job"),
        &ta.keys[0],
    )
    .expect("A joins");
    let mut data = vec![0f32; n as usize];
    check::fill(1, 0, &mut data);
    a.all_reduce(&mut data, Op::Sum).expect("A works");

    // Job B: rank 0 is the library, rank 1 a raw client that sends a corrupted block.
    let tb = job(&validator, 202, 2, &[&relay], Dtype::F32, n, block, 10_000);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let job = Job::from_ticket(tb.ticket.clone(), 0).expect("job");
            let mut p = Peer::connect(job, &tb.keys[0])?;
            let mut d = vec![1f32; n as usize];
            p.all_reduce(&mut d, Op::Sum)
        });
        let mut raw = join_raw(&relay, &tb, 202, 1);
        let w = read_header(&mut raw, 1 << 20)
            .expect("frame")
            .expect("welcome");
        assert_eq!(w.kind, Kind::Welcome);
        let c = mapreduce::core::Collective::AllReduce(Op::Sum).encode();
        let mut begin = Header::for_payload(Kind::Begin, 202, &c);
        begin.seq = 0;
        write_frame(&mut raw, &begin, &c).expect("begin");
        let payload = vec![0u8; block as usize * 4];
        let mut h2 = Header::for_payload(Kind::Data, 202, &payload);
        h2.dtype = Some(Dtype::F32);
        h2.checksum ^= 1;
        write_frame(&mut raw, &h2, &payload).expect("data");
        let err = h.join().expect("thread").expect_err("job B fails");
        let msg = err.to_string();
        assert!(matches!(err, PeerError::Relay { .. }), "{msg}");
        assert!(msg.contains("rank 1") && msg.contains("checksum"), "{msg}");
    });

    // Job A is untouched.
    check::fill(2, 0, &mut data);
    a.all_reduce(&mut data, Op::Sum).expect("A still works");
    check::verify(
        2,
        1,
        mapreduce::core::Collective::AllReduce(Op::Sum),
        Dtype::F32,
        0,
        &data,
    )
    .expect("A exact");

    // Job B's memory came back: job C fits beside A (it would not if B had leaked).
    let tc = job(&validator, 203, 1, &[&relay], Dtype::F32, n, block, 10_000);
    let deadline = Instant::now() + DEADLINE;
    let mut c = loop {
        match Peer::connect(
            Job::from_ticket(tc.ticket.clone(), 0).expect("job"),
            &tc.keys[0],
        ) {
            Ok(c) => break c,
            // B's connections may still be closing for a moment.
            Err(e) if Instant::now() < deadline && e.to_string().contains("memory budget") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("job C refused: {e}"),
        }
    };
    c.all_reduce(&mut data, Op::Avg).expect("C works");

    // A third job does not fit: refused with the budget named, nothing reserved.
    let td = job(&validator, 204, 1, &[&relay], Dtype::F32, n, block, 10_000);
    let err = Peer::connect(
        Job::from_ticket(td.ticket.clone(), 0).expect("job"),
        &td.keys[0],
    )
    .expect_err("over budget");
    assert!(err.to_string().contains("memory budget exhausted"), "{err}");
}

#[test]
fn a_duplicate_rank_fails_the_job_for_both_connections() {
    let validator = key(0);
    let relay = RelayProc::start(&validator, &[]);
    let tj = job(&validator, 301, 2, &[&relay], Dtype::F32, 10, 4, 10_000);
    let mut first = join_raw(&relay, &tj, 301, 0);
    // Let the first join land before the second.
    std::thread::sleep(Duration::from_millis(100));
    let mut second = join_raw(&relay, &tj, 301, 0);
    for s in [&mut second, &mut first] {
        let why = next_error(s);
        assert!(why.contains("duplicate rank"), "{why}");
    }
}
