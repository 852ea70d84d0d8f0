use super::*;
use crate::wire::Header;
use proptest::prelude::*;

fn params(p: u32, elements: u64, block: u64, dtype: Dtype, window: u32) -> Params {
    Params {
        job: 1,
        shard: 0,
        plan: ShardPlan {
            elements,
            block_elems: block,
        },
        dtype,
        window,
        peers: (0..p).map(|r| format!("peer{r}")).collect(),
    }
}

fn frame(kind: Kind, seq: u32, block: u32, dtype: Option<Dtype>, payload: Vec<u8>) -> Frame {
    let mut header = Header::for_payload(kind, 1, &payload);
    header.seq = seq;
    header.block = block;
    header.dtype = dtype;
    Frame {
        header,
        payload: Bytes::from(payload),
    }
}

fn begin(seq: u32, c: Collective) -> Frame {
    frame(Kind::Begin, seq, 0, None, c.encode().to_vec())
}

fn data(seq: u32, block: u32, v: &[f32]) -> Frame {
    frame(
        Kind::Data,
        seq,
        block,
        Some(Dtype::F32),
        dtype::f32_bytes(v).to_vec(),
    )
}

fn joined(m: &mut Machine) {
    for r in 0..m.params().p() {
        m.join(r).expect("join");
    }
}

fn sends(events: &[Event]) -> Vec<(u32, Vec<f32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { block, payload, .. } => {
                Some((*block, bytemuck::pod_collect_to_vec::<u8, f32>(payload)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn sums_in_rank_order_whatever_the_arrival_order() {
    let mut m = Machine::new(params(3, 2, 2, Dtype::F32, 4));
    joined(&mut m);
    let c = Collective::AllReduce(Op::Sum);
    let x = [[1e8f32, 1.0], [1.0, -3.5], [-1e8, 2.0]];
    for r in [2, 0, 1] {
        m.on_frame(r, begin(0, c)).expect("begin");
    }
    assert!(m.on_frame(2, data(0, 0, &x[2])).expect("d").is_empty());
    assert!(m.on_frame(1, data(0, 0, &x[1])).expect("d").is_empty());
    let ev = m.on_frame(0, data(0, 0, &x[0])).expect("d");
    let want: Vec<f32> = (0..2).map(|i| (x[0][i] + x[1][i]) + x[2][i]).collect();
    assert_eq!(sends(&ev), vec![(0, want)]);
    assert_eq!(m.released(0, 0), vec![Event::OpDone { seq: 0 }]);
}

#[test]
fn the_window_holds_a_fast_peer_back() {
    let mut m = Machine::new(params(2, 8, 1, Dtype::F32, 2));
    joined(&mut m);
    let c = Collective::AllReduce(Op::Avg);
    m.on_frame(0, begin(0, c)).expect("begin");
    m.on_frame(1, begin(0, c)).expect("begin");
    m.on_frame(0, data(0, 0, &[2.0])).expect("d");
    m.on_frame(0, data(0, 1, &[2.0])).expect("d");
    assert!(!m.may_read(0), "two blocks ahead with a window of two");
    assert!(m.may_read(1));
    let ev = m.on_frame(1, data(0, 0, &[4.0])).expect("d");
    assert_eq!(sends(&ev), vec![(0, vec![3.0])]);
    assert!(!m.may_read(0), "reduced but not yet delivered");
    m.released(0, 0);
    assert!(m.may_read(0));
    // A reader that ignored may_read is a protocol error, not a buffer.
    m.on_frame(0, data(0, 2, &[2.0])).expect("d");
    let f = m.on_frame(0, data(0, 3, &[2.0])).expect_err("past window");
    assert!(f.reason.contains("past the window"), "{}", f.reason);
}

#[test]
fn broadcast_forwards_the_source_only() {
    let mut m = Machine::new(params(3, 3, 2, Dtype::F32, 4));
    joined(&mut m);
    let c = Collective::Broadcast { src: 1 };
    for r in 0..3 {
        m.on_frame(r, begin(0, c)).expect("begin");
    }
    assert!(!m.may_read(0), "receivers wait for the operation to end");
    let ev = m.on_frame(1, data(0, 0, &[1.0, 2.0])).expect("d");
    assert!(matches!(ev[0], Event::Send { skip: Some(1), .. }));
    let f = m
        .on_frame(0, data(0, 0, &[1.0, 2.0]))
        .expect_err("not the source");
    assert_eq!(f.culprit, Some(0));
}

#[test]
fn bad_input_fails_the_job_naming_the_rank() {
    let c = Collective::AllReduce(Op::Sum);
    let cases: Vec<(Vec<(u32, Frame)>, &str)> = vec![
        (vec![(0, data(0, 0, &[1.0]))], "before beginning"),
        (
            vec![(0, begin(0, c)), (0, data(0, 1, &[1.0]))],
            "expected block 0",
        ),
        (
            vec![(0, begin(0, c)), (0, data(0, 0, &[1.0, 2.0, 3.0]))],
            "bytes for block 0",
        ),
        (
            vec![
                (0, begin(0, c)),
                (0, frame(Kind::Data, 0, 0, Some(Dtype::F16), vec![0; 4])),
            ],
            "dtype",
        ),
        (
            vec![
                (0, begin(0, c)),
                (1, begin(0, Collective::AllReduce(Op::Avg))),
            ],
            "disagree",
        ),
        (vec![(0, begin(0, c)), (0, begin(0, c))], "twice"),
        (vec![(1, begin(5, c))], "expected operation 0"),
        (
            vec![(0, frame(Kind::Welcome, 0, 0, None, vec![]))],
            "never send",
        ),
        (
            vec![(0, begin(0, c)), (0, frame(Kind::End, 0, 0, None, vec![]))],
            "left during",
        ),
    ];
    for (frames, want) in cases {
        let mut m = Machine::new(params(2, 2, 2, Dtype::F32, 4));
        joined(&mut m);
        let mut err = None;
        for (r, f) in frames {
            if let Err(e) = m.on_frame(r, f) {
                err = Some(e);
                break;
            }
        }
        let e = err.expect(want);
        assert!(
            e.reason.contains(want),
            "{:?} should contain {want:?}",
            e.reason
        );
        assert!(e.reason.contains("peer"), "names the peer: {}", e.reason);
        assert!(m.failed().is_some());
        assert!(
            m.on_frame(0, begin(0, c)).is_err(),
            "a failed job stays failed"
        );
    }
    let mut m = Machine::new(params(2, 2, 2, Dtype::F32, 4));
    m.join(0).expect("join");
    assert!(
        m.join(0)
            .expect_err("dup")
            .reason
            .contains("duplicate rank")
    );
}

#[test]
fn a_disconnect_is_reported_in_words_that_say_a_peer_left() {
    let mut m = Machine::new(params(2, 8, 2, Dtype::F32, 4));
    let idle = m.disconnected(1).reason;
    let mut m = Machine::new(params(2, 8, 2, Dtype::F32, 4));
    joined(&mut m);
    m.on_frame(0, begin(0, Collective::AllReduce(Op::Sum)))
        .expect("begin");
    let busy = m.disconnected(1).reason;
    for reason in [&idle, &busy] {
        assert!(reason.starts_with("rank 1 (peer1)"), "{reason}");
        assert!(reports_a_peer_left(reason), "{reason}");
    }
    assert!(busy.contains("during operation 0"), "{busy}");
    assert!(!reports_a_peer_left("memory budget exceeded"));
}

#[test]
fn leaving_between_operations_finishes_the_job() {
    let mut m = Machine::new(params(2, 0, 2, Dtype::F32, 4));
    joined(&mut m);
    let c = Collective::AllReduce(Op::Sum);
    m.on_frame(0, begin(0, c)).expect("begin");
    let ev = m.on_frame(1, begin(0, c)).expect("begin");
    assert_eq!(
        ev,
        vec![Event::OpDone { seq: 0 }],
        "an empty shard is done at once"
    );
    m.on_frame(0, frame(Kind::End, 0, 0, None, vec![]))
        .expect("end");
    let ev = m
        .on_frame(1, frame(Kind::End, 0, 0, None, vec![]))
        .expect("end");
    assert_eq!(ev, vec![Event::Finished]);
}

#[test]
fn a_spare_resumes_at_the_operation_the_job_is_at() {
    let c = Collective::AllReduce(Op::Sum);
    let mut m = Machine::new(params(2, 0, 2, Dtype::F32, 4));
    m.resume_at(3);
    joined(&mut m);
    m.on_frame(0, begin(3, c)).expect("begin");
    let ev = m.on_frame(1, begin(3, c)).expect("begin");
    assert_eq!(ev, vec![Event::OpDone { seq: 3 }]);
    // Once an operation ran, resuming elsewhere is ignored.
    m.resume_at(9);
    m.on_frame(0, begin(4, c)).expect("the next operation is 4");

    let mut m = Machine::new(params(2, 0, 2, Dtype::F32, 4));
    m.resume_at(3);
    joined(&mut m);
    let f = m
        .on_frame(0, begin(0, c))
        .expect_err("not where the job is");
    assert!(f.reason.contains("expected operation 3"), "{}", f.reason);
}

/// A frame from anyone: random kind, ids, dtype and payload.
fn any_frame() -> impl Strategy<Value = (u32, Frame)> {
    (
        0u32..4,
        1u8..8,
        0u64..3,
        0u32..2,
        0u32..4,
        0u32..3,
        proptest::option::of(0u8..4),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(rank, kind, job, shard, block, seq, dt, payload)| {
            let mut f = frame(
                Kind::from_u8(kind).unwrap_or(Kind::Data),
                seq,
                block,
                dt.and_then(Dtype::from_code),
                payload,
            );
            f.header.job = job;
            f.header.shard = shard;
            (rank, f)
        })
}

proptest! {
    /// Arbitrary frames never panic the machine, and once failed it stays failed.
    #[test]
    fn arbitrary_frames_never_panic(frames in proptest::collection::vec(any_frame(), 0..60), releases in proptest::collection::vec((0u32..3, 0u32..4), 0..20)) {
        let mut m = Machine::new(params(3, 7, 2, Dtype::F32, 2));
        joined(&mut m);
        let mut rel = releases.into_iter();
        for (rank, f) in frames {
            let was_failed = m.failed().is_some();
            let r = m.on_frame(rank, f);
            if was_failed { prop_assert!(r.is_err()); }
            if let Some((s, b)) = rel.next() { m.released(s, b); }
            let _ = m.may_read(rank);
            let _ = m.stall_reason(std::time::Duration::from_secs(1));
        }
    }

    /// Valid frames in any interleaving the window allows give the rank-order f32 sum.
    #[test]
    fn any_interleaving_gives_the_exact_sum(
        p in 1u32..5,
        n in 0u64..40,
        block in 1u64..8,
        window in 1u32..4,
        inputs in proptest::collection::vec(any::<f32>(), 160),
        order in proptest::collection::vec(any::<u8>(), 400),
    ) {
        let mut m = Machine::new(params(p, n, block, Dtype::F32, window));
        joined(&mut m);
        let plan = m.params().plan;
        let c = Collective::AllReduce(Op::Sum);
        let x = |r: u32, i: u64| inputs[((u64::from(r) * 40 + i) % 160) as usize];
        let mut queues: Vec<VecDeque<Frame>> = (0..p).map(|r| {
            let mut q = VecDeque::from([begin(0, c)]);
            for b in 0..plan.blocks() {
                let v: Vec<f32> = plan.block(b).map(|i| x(r, i)).collect();
                q.push_back(data(0, b, &v));
            }
            q
        }).collect();
        let mut out = vec![None; n as usize];
        let mut done = false;
        let mut pick = order.into_iter().cycle();
        let mut steps = 0;
        while !done {
            steps += 1;
            prop_assert!(steps < 10_000, "stuck");
            let readable: Vec<u32> = (0..p).filter(|&r| m.may_read(r) && !queues[r as usize].is_empty()).collect();
            prop_assert!(!readable.is_empty(), "deadlock");
            let r = readable[pick.next().unwrap_or(0) as usize % readable.len()];
            let f = queues[r as usize].pop_front().expect("queued");
            for e in m.on_frame(r, f).expect("valid") {
                match e {
                    Event::Send { seq, block, payload, .. } => {
                        let v = bytemuck::pod_collect_to_vec::<u8, f32>(&payload);
                        for (i, val) in plan.block(block).zip(v) { out[i as usize] = Some(val); }
                        for e2 in m.released(seq, block) { done |= e2 == Event::OpDone { seq: 0 }; }
                    }
                    Event::OpDone { .. } => done = true,
                    _ => {}
                }
            }
        }
        for i in 0..n {
            let mut want = x(0, i);
            for r in 1..p { want += x(r, i); }
            let got = out[i as usize].expect("every element reduced");
            prop_assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }
}
