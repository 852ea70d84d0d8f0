//! Throughput of the data plane's per-element work: checksums and dtype conversion.
//! `cargo bench -p mapreduce --bench wire` prints GB/s (of f32) for each; not a pass/fail test.

use mapreduce::core::Dtype;
use mapreduce::wire::{checksum, dtype};
use std::hint::black_box;
use std::time::Instant;

const N: usize = 256 * 1024; // one 1 MiB block of f32
const ROUNDS: usize = 400;

fn rate(name: &str, bytes: usize, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name:<32} {:>7.2} GB/s  ({:.3} ns/element)",
        (bytes * ROUNDS) as f64 / secs / 1e9,
        secs * 1e9 / (N * ROUNDS) as f64
    );
}

fn main() {
    let src: Vec<f32> = (0..N).map(|i| (i as f32).sin()).collect();
    let mut out = vec![0f32; N];
    let mut wire = Vec::new();
    rate("xxh3 checksum (f32 block)", N * 4, || {
        black_box(checksum(dtype::f32_bytes(black_box(&src))));
    });
    for d in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        dtype::encode(&src, d, &mut wire);
        let w = wire.clone();
        rate(&format!("encode f32 -> {d}"), N * 4, || {
            dtype::encode(black_box(&src), d, &mut wire);
        });
        rate(&format!("decode {d} -> f32"), N * 4, || {
            dtype::decode_into(black_box(&w), d, &mut out);
        });
        rate(&format!("accumulate {d} into f32"), N * 4, || {
            dtype::accumulate(&mut out, black_box(&w), d);
        });
    }
    cold();
}

/// A peer's view: a 64 MiB tensor walked in 256 KiB wire blocks, so the tensor side is out of
/// cache as it is in a real all_reduce (encode reads it, decode writes it).
fn cold() {
    const T: usize = 16 << 20;
    const BLOCK: usize = 128 * 1024;
    let mut tensor: Vec<f32> = (0..T).map(|i| (i as f32).cos()).collect();
    let mut wire = vec![0u8; BLOCK * 2];
    let passes = 4;
    let time = |name: &str, f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..passes {
            f();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name:<32} {:>7.2} GB/s of f32 (64 MiB tensor, out of cache)",
            (T * 4 * passes) as f64 / secs / 1e9
        );
    };
    for d in [Dtype::F16, Dtype::Bf16] {
        time(&format!("encode f32 -> {d}, cold"), &mut || {
            for c in tensor.chunks(BLOCK) {
                dtype::encode_into(c, d, &mut wire);
                black_box(&wire);
            }
        });
        dtype::encode_into(&tensor[..BLOCK], d, &mut wire);
        time(&format!("decode {d} -> f32, cold"), &mut || {
            for c in tensor.chunks_mut(BLOCK) {
                dtype::decode_into(black_box(&wire), d, c);
            }
        });
        time(&format!("decode {d} -> f32, cold, streaming"), &mut || {
            for c in tensor.chunks_mut(BLOCK) {
                dtype::decode_into_streaming(black_box(&wire), d, c);
            }
        });
    }
}
