//! Fuzz targets run by proptest, bounded and counted (issue 12: cargo-fuzz needs a nightly
//! toolchain, which this project's pinned stable one cannot fetch here). Each target feeds one
//! parser that takes bytes from outside the process, or the relay's state machine, with generated
//! input and prints how many executions it ran:
//!
//! - the frame decoder (arbitrary bytes and mutated valid frames, decoded as a stream);
//! - job tickets and handshakes (arbitrary bytes, and valid handshakes with bytes flipped);
//! - btauth/1 signed headers (arbitrary metadata);
//! - config files (arbitrary text);
//! - the relay state machine fed arbitrary sequences of joins, frames, releases and disconnects.
//!
//! `FUZZ_CASES` sets the cases per target (default 2000: a few seconds each in a debug build on 2
//! cores, so CI runs them every time); `scripts/fuzz` runs them longer in release.
//! The properties beside the code (wire/codec.rs, relay/machine/tests.rs) and
//! tests/property_parsers.rs check finer invariants; these targets are about volume.

use bytes::BytesMut;
use mapreduce::config::Loader;
use mapreduce::core::{Dtype, ShardPlan};
use mapreduce::relay::machine::{Machine, Params};
use mapreduce::wallet::btauth::{SignedHeaders, Verifier};
use mapreduce::wire::handshake::verify_hello;
use mapreduce::wire::{Frame, FrameCodec, Header, Kind, encode_frame};
use mr_testkit::fixtures::{SignedHello, key, signed_hello};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio_util::codec::Decoder;

/// Runs `test` on `cases` generated values (FUZZ_CASES or `default`), counting executions.
fn fuzz<S: Strategy>(
    name: &str,
    default: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let runs = AtomicU64::new(0);
    let t0 = Instant::now();
    let result = runner.run(&strategy, |v| {
        runs.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    let n = runs.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    match result {
        Ok(()) => println!(
            "fuzz {name}: {n} executions in {secs:.1} s ({:.0}/s), no failure",
            n as f64 / secs.max(1e-9)
        ),
        Err(e) => panic!("fuzz {name}: failed after {n} executions: {e}"),
    }
}

fn valid_frames() -> Vec<u8> {
    let mut out = BytesMut::new();
    for (kind, payload) in [
        (Kind::Hello, &b"hello"[..]),
        (Kind::Data, &[0u8; 64][..]),
        (Kind::End, &[][..]),
    ] {
        encode_frame(&Header::for_payload(kind, 7, payload), payload, &mut out);
    }
    out.to_vec()
}

/// Decodes `bytes` as a stream fed in `chunk`-sized pieces; every frame within the limit.
fn decode_stream(bytes: &[u8], chunk: usize) -> Result<(), TestCaseError> {
    const MAX: u32 = 256;
    let mut codec = FrameCodec::new(MAX);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => prop_assert!(f.payload.len() <= MAX as usize),
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
    Ok(())
}

#[test]
fn fuzz_frame_decoder() {
    let valid = valid_frames();
    fuzz(
        "frame decoder (arbitrary bytes)",
        2000,
        (proptest::collection::vec(any::<u8>(), 0..600), 1usize..64),
        |(bytes, chunk)| decode_stream(&bytes, chunk),
    );
    fuzz(
        "frame decoder (mutated valid frames)",
        2000,
        (
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            1usize..64,
        ),
        |(flips, chunk)| {
            let mut b = valid.clone();
            for (i, x) in flips {
                let n = b.len();
                b[i % n] ^= x;
            }
            decode_stream(&b, chunk)
        },
    );
}

#[test]
fn fuzz_handshake_and_ticket() {
    let SignedHello {
        validator, hello, ..
    } = signed_hello();
    let valid = hello.encode_to_vec();
    let trusted = validator.ss58_address().to_string();
    let trust = move |a: &str| a == trusted;
    fuzz(
        "handshake (arbitrary bytes)",
        2000,
        proptest::collection::vec(any::<u8>(), 0..1024),
        |bytes| {
            prop_assert!(verify_hello(&bytes, &trust, 1).is_err());
            Ok(())
        },
    );
    fuzz(
        "handshake (valid, bytes flipped)",
        1000,
        proptest::collection::vec((any::<usize>(), 1..=255u8), 1..4),
        |flips| {
            let mut b = valid.clone();
            for (i, x) in flips {
                let n = b.len();
                b[i % n] ^= x;
            }
            // Never panics; a flip that still verifies must decode to the same handshake.
            if verify_hello(&b, &trust, 1).is_ok() {
                prop_assert_eq!(
                    mr_proto::v1::Handshake::decode(&b[..]).ok(),
                    mr_proto::v1::Handshake::decode(&valid[..]).ok()
                );
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_signed_headers() {
    let verifier = Verifier::new(key(10).ss58_address());
    fuzz(
        "btauth/1 signed headers",
        2000,
        (
            proptest::collection::vec(".{0,90}", 6),
            proptest::collection::vec(any::<u8>(), 0..64),
        ),
        |(values, body)| {
            let names = [
                "x-bittensor-version",
                "x-bittensor-hotkey",
                "x-bittensor-receiver",
                "x-bittensor-nonce",
                "x-bittensor-signature",
                "x-bittensor-crypto",
            ];
            let pairs: Vec<(&str, &str)> = names
                .iter()
                .zip(values.iter())
                .map(|(n, v)| (*n, v.as_str()))
                .collect();
            if let Ok(h) = SignedHeaders::from_pairs(&pairs) {
                prop_assert!(verifier.verify(&h, "POST", "/x", &body).is_err());
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_config_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("config.toml");
    fuzz(
        "config files",
        500,
        "(\\[[a-z_]{1,10}\\]\n|[a-z_]{1,14} = [^\n]{0,24}\n|[^\n]{0,30}\n){0,14}",
        |text| {
            std::fs::write(&path, &text).expect("write");
            if let Err(e) = Loader::new().file(Some(path.clone())).load() {
                prop_assert!(!e.to_string().trim().is_empty(), "empty error for {text:?}");
            }
            prop_assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
            Ok(())
        },
    );
}

/// One step of a relay job as its connections drive it.
#[derive(Debug, Clone)]
enum Step {
    Join(u32),
    Frame(u32, u8, u32, u32, Option<u8>, Vec<u8>),
    Release(u32, u32),
    Disconnect(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u32..5).prop_map(Step::Join),
        (
            0u32..5,
            0u8..10,
            0u32..3,
            0u32..6,
            proptest::option::of(0u8..5),
            proptest::collection::vec(any::<u8>(), 0..48)
        )
            .prop_map(|(r, k, s, b, d, p)| Step::Frame(r, k, s, b, d, p)),
        (0u32..3, 0u32..6).prop_map(|(s, b)| Step::Release(s, b)),
        (0u32..5).prop_map(Step::Disconnect),
    ]
}

#[test]
fn fuzz_relay_state_machine() {
    fuzz(
        "relay state machine (frame sequences)",
        2000,
        (
            1u32..4,
            0u64..40,
            1u64..8,
            1u32..4,
            proptest::collection::vec(step(), 0..80),
        ),
        |(p, elements, block, window, steps)| {
            let mut m = Machine::new(Params {
                job: 1,
                shard: 0,
                plan: ShardPlan {
                    elements,
                    block_elems: block,
                },
                dtype: Dtype::F32,
                window,
                peers: (0..p).map(|r| format!("peer{r}")).collect(),
            });
            let mut failed = false;
            for s in steps {
                let r = match s {
                    Step::Join(rank) => m.join(rank).map(|_| ()),
                    Step::Frame(rank, kind, seq, block, dt, payload) => {
                        let mut header = Header::for_payload(
                            Kind::from_u8(kind).unwrap_or(Kind::Data),
                            1,
                            &payload,
                        );
                        header.seq = seq;
                        header.block = block;
                        header.dtype = dt.and_then(Dtype::from_code);
                        let frame = Frame {
                            header,
                            payload: bytes::Bytes::from(payload),
                        };
                        m.on_frame(rank, frame).map(|_| ())
                    }
                    Step::Release(seq, block) => {
                        m.released(seq, block);
                        Ok(())
                    }
                    Step::Disconnect(rank) => {
                        if rank < p {
                            m.disconnected(rank);
                            failed = true;
                        }
                        Ok(())
                    }
                };
                if r.is_err() {
                    failed = true;
                }
                // Once failed, a job stays failed: no frame is accepted after.
                if failed {
                    prop_assert!(m.failed().is_some(), "a fault that did not stick");
                }
            }
            Ok(())
        },
    );
}
