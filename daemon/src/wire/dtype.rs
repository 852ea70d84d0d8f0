//! Tensor data on the wire: f32 <-> f16 / bf16 over whole slices, with no per-element allocation.
//!
//! f16 uses `half`'s slice conversions (F16C instructions when the CPU has them, detected at run
//! time); bf16 is a branch-free loop the compiler vectorises. Wire bytes may arrive at any
//! alignment, so reads go through aligned stack chunks when a direct cast is not possible.

use crate::core::Dtype;
use half::f16;
use half::slice::HalfFloatSliceExt;

#[cfg(target_endian = "big")]
compile_error!("the data plane sends tensors in host order and assumes a little-endian host");

/// Elements converted per stack chunk when a slice cannot be cast in place.
const CHUNK: usize = 2048;

/// f32 -> bf16, round to nearest even, NaN kept quiet: bit-identical to `half::bf16::from_f32`.
#[inline(always)]
fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let nan = (b & 0x7FFF_FFFF) > 0x7F80_0000;
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    let quiet = ((b >> 16) | 0x0040) as u16;
    if nan { quiet } else { rounded }
}

#[inline(always)]
fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// The bytes of an f32 slice as they go on the wire (little-endian host: no copy).
pub fn f32_bytes(src: &[f32]) -> &[u8] {
    bytemuck::cast_slice(src)
}

/// Mutable bytes of an f32 slice, for receiving f32 data straight into a tensor.
pub fn f32_bytes_mut(dst: &mut [f32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(dst)
}

/// Converts `src` to 16-bit wire values in `dst` (same length).
pub fn encode_half(src: &[f32], dtype: Dtype, dst: &mut [u16]) {
    debug_assert_eq!(src.len(), dst.len());
    match dtype {
        Dtype::F16 => {
            let d: &mut [f16] = bytemuck::cast_slice_mut(dst);
            d.convert_from_f32_slice(src);
        }
        Dtype::Bf16 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = bf16_bits(*s);
            }
        }
        Dtype::F32 => unreachable!("f32 needs no conversion"),
    }
}

/// Whether the AVX2/F16C paths can run here (tests turn them off to check the portable path).
#[inline]
fn simd() -> bool {
    #[cfg(test)]
    if tests::PORTABLE.with(|p| p.get()) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Wire bytes for `src` in `dtype`, in `out` (whose old contents are dropped).
pub fn encode(src: &[f32], dtype: Dtype, out: &mut Vec<u8>) {
    out.clear();
    out.resize(src.len() * dtype.size(), 0);
    encode_into(src, dtype, out);
}

/// [`encode`] into `out` (exactly `src.len() * dtype.size()` bytes; what it held is overwritten).
pub fn encode_into(src: &[f32], dtype: Dtype, out: &mut [u8]) {
    debug_assert_eq!(out.len(), src.len() * dtype.size());
    match dtype {
        Dtype::F32 => out.copy_from_slice(f32_bytes(src)),
        Dtype::F16 | Dtype::Bf16 => {
            #[cfg(target_arch = "x86_64")]
            if simd() {
                // SAFETY: `simd()` checked the CPU features these need.
                unsafe {
                    match dtype {
                        Dtype::F16 => super::simd::encode_f16(src, out),
                        _ => super::simd::encode_bf16(src, out),
                    }
                }
                return;
            }
            let mut tmp = [0u16; CHUNK];
            for (s, d) in src.chunks(CHUNK).zip(out.chunks_mut(CHUNK * 2)) {
                let t = &mut tmp[..s.len()];
                encode_half(s, dtype, t);
                d.copy_from_slice(bytemuck::cast_slice(t));
            }
        }
    }
}

/// Calls `f` with the wire values of `wire` as f32, one aligned chunk at a time.
#[inline]
fn for_each_chunk(wire: &[u8], dtype: Dtype, mut f: impl FnMut(usize, &[f32])) {
    let mut buf = [0f32; CHUNK];
    match dtype {
        Dtype::F32 => {
            if let Ok(v) = bytemuck::try_cast_slice::<u8, f32>(wire) {
                f(0, v);
                return;
            }
            for (i, c) in wire.chunks(CHUNK * 4).enumerate() {
                let n = c.len() / 4;
                for (d, s) in buf[..n].iter_mut().zip(c.chunks_exact(4)) {
                    *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                }
                f(i * CHUNK, &buf[..n]);
            }
        }
        Dtype::F16 | Dtype::Bf16 => {
            let mut tmp = [0u16; CHUNK];
            for (i, c) in wire.chunks(CHUNK * 2).enumerate() {
                let n = c.len() / 2;
                let halves: &[u16] = match bytemuck::try_cast_slice(c) {
                    Ok(v) => v,
                    Err(_) => {
                        bytemuck::cast_slice_mut::<u16, u8>(&mut tmp[..n]).copy_from_slice(c);
                        &tmp[..n]
                    }
                };
                let out = &mut buf[..n];
                if dtype == Dtype::F16 {
                    let h: &[f16] = bytemuck::cast_slice(halves);
                    h.convert_to_f32_slice(out);
                } else {
                    for (d, s) in out.iter_mut().zip(halves) {
                        *d = bf16_to_f32(*s);
                    }
                }
                f(i * CHUNK, out);
            }
        }
    }
}

/// Decodes wire bytes into `dst` (`dst.len() * dtype.size() == wire.len()`).
pub fn decode_into(wire: &[u8], dtype: Dtype, dst: &mut [f32]) {
    debug_assert_eq!(wire.len(), dst.len() * dtype.size());
    #[cfg(target_arch = "x86_64")]
    if dtype != Dtype::F32 && wire.len() == dst.len() * 2 && simd() {
        // SAFETY: `simd()` checked the CPU features these need.
        unsafe {
            match dtype {
                Dtype::F16 => super::simd::decode_f16(wire, dst),
                _ => super::simd::decode_bf16(wire, dst),
            }
        }
        return;
    }
    for_each_chunk(wire, dtype, |at, v| {
        dst[at..at + v.len()].copy_from_slice(v)
    });
}

/// [`decode_into`] for a destination that will not be read again while it is still in cache
/// (a peer's large tensor): 16-bit dtypes are decoded with non-temporal stores where the CPU has
/// them, which do not read each destination line from memory before overwriting it. Same values.
pub fn decode_into_streaming(wire: &[u8], dtype: Dtype, dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if dtype != Dtype::F32 && wire.len() == dst.len() * 2 && simd() {
        // SAFETY: `simd()` checked the CPU features these need.
        unsafe {
            match dtype {
                Dtype::F16 => super::simd::decode_f16_nt(wire, dst),
                _ => super::simd::decode_bf16_nt(wire, dst),
            }
        }
        return;
    }
    decode_into(wire, dtype, dst);
}

/// `acc[i] += wire[i]` in f32.
pub fn accumulate(acc: &mut [f32], wire: &[u8], dtype: Dtype) {
    debug_assert_eq!(wire.len(), acc.len() * dtype.size());
    #[cfg(target_arch = "x86_64")]
    if wire.len() == acc.len() * dtype.size() && simd() {
        // SAFETY: `simd()` checked the CPU features these need.
        unsafe {
            match dtype {
                Dtype::F32 => super::simd::accumulate_f32(wire, acc),
                Dtype::F16 => super::simd::accumulate_f16(wire, acc),
                Dtype::Bf16 => super::simd::accumulate_bf16(wire, acc),
            }
        }
        return;
    }
    for_each_chunk(wire, dtype, |at, v| {
        for (a, x) in acc[at..at + v.len()].iter_mut().zip(v) {
            *a += *x;
        }
    });
}

/// `a[i] + b[i]` in f32, for two blocks of wire bytes of the same length: one pass, no copy first.
pub fn add_pair(a: &[u8], b: &[u8], dtype: Dtype) -> Vec<f32> {
    let mut out = vec![0f32; a.len() / dtype.size()];
    add_pair_into(a, b, dtype, &mut out);
    out
}

/// [`add_pair`] into `out` (`out.len()` elements; whatever it held is overwritten), so a
/// relay can reuse its sum buffers instead of zeroing a fresh one per block.
pub fn add_pair_into(a: &[u8], b: &[u8], dtype: Dtype, out: &mut [f32]) {
    debug_assert_eq!(a.len(), b.len());
    let n = out.len();
    debug_assert_eq!(a.len(), n * dtype.size());
    #[cfg(target_arch = "x86_64")]
    if dtype == Dtype::F32 && a.len() == 4 * n && b.len() == 4 * n && simd() {
        // SAFETY: `simd()` checked the CPU features this needs; the lengths were checked.
        unsafe { super::simd::add_pair_f32(a, b, out) };
        return;
    }
    if dtype == Dtype::F32 {
        // Zipped exact chunks have a known length: this compiles to a vectorised loop.
        for ((o, x), y) in out.iter_mut().zip(a.chunks_exact(4)).zip(b.chunks_exact(4)) {
            *o = f32::from_le_bytes([x[0], x[1], x[2], x[3]])
                + f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        }
        return;
    }
    decode_into(a, dtype, out);
    accumulate(out, b, dtype);
}

/// Elements per step of [`reduce_into`]: the f32 partial sum (8 KiB) stays in L1 while every
/// input's piece is folded into it.
const REDUCE_CHUNK: usize = 2048;

/// The reduced block of `inputs` (wire bytes of the same length, in rank order) in `out` (wire
/// bytes, as long as one input): `((in[0] + in[1]) + in[2]) + ...` in f32, divided by `divide`
/// when given, rounded to `dtype`. One pass over each input and one over `out`, a chunk at a
/// time, with no block-sized f32 sum in memory: a relay's decode, accumulate and encode passes
/// over a block (and its sum's trips to memory) in one. The arithmetic, and so every bit of the
/// result, is that of folding the inputs one by one with [`add_pair_into`] and [`accumulate`].
pub fn reduce_into<B: AsRef<[u8]>>(
    inputs: &[B],
    dtype: Dtype,
    divide: Option<f32>,
    out: &mut [u8],
) {
    let size = dtype.size();
    let n = out.len() / size;
    debug_assert_eq!(out.len(), n * size);
    debug_assert!(inputs.iter().all(|x| x.as_ref().len() == out.len()));
    let mut buf = [0f32; REDUCE_CHUNK];
    let mut at = 0;
    while at < n {
        let len = REDUCE_CHUNK.min(n - at);
        let (lo, hi) = (at * size, (at + len) * size);
        let acc = &mut buf[..len];
        match inputs {
            [] => acc.fill(0.0),
            [only] => decode_into(&only.as_ref()[lo..hi], dtype, acc),
            [a, b, rest @ ..] => {
                add_pair_into(&a.as_ref()[lo..hi], &b.as_ref()[lo..hi], dtype, acc);
                for x in rest {
                    accumulate(acc, &x.as_ref()[lo..hi], dtype);
                }
            }
        }
        if let Some(d) = divide {
            for x in acc.iter_mut() {
                *x /= d;
            }
        }
        encode_into(acc, dtype, &mut out[lo..hi]);
        at += len;
    }
}

/// What a value becomes after a trip through the wire dtype (for references and checks).
pub fn round_trip(x: f32, dtype: Dtype) -> f32 {
    match dtype {
        Dtype::F32 => x,
        Dtype::F16 => f16::from_f32(x).to_f32(),
        Dtype::Bf16 => bf16_to_f32(bf16_bits(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    thread_local! {
        pub static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn specials() -> Vec<f32> {
        vec![
            0.0,
            -0.0,
            1.0,
            -1.5,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            65504.0,
            65520.0,
            3.0e38,
        ]
    }

    #[test]
    fn bf16_matches_half_bit_for_bit() {
        for x in specials() {
            assert_eq!(bf16_bits(x), half::bf16::from_f32(x).to_bits(), "{x}");
        }
    }

    proptest! {
        #[test]
        fn bf16_matches_half(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            prop_assert_eq!(bf16_bits(x), half::bf16::from_f32(x).to_bits());
        }

        #[test]
        fn roundtrips_at_any_alignment(v in proptest::collection::vec(any::<f32>(), 0..5000), off in 0usize..4, portable in any::<bool>()) {
            PORTABLE.with(|p| p.set(portable));
            for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                let mut wire = Vec::new();
                encode(&v, dtype, &mut wire);
                // Shift the bytes so casts in place fail and the chunked path runs.
                let mut shifted = vec![0u8; off];
                shifted.extend_from_slice(&wire);
                let wire = &shifted[off..];
                let mut out = vec![0f32; v.len()];
                decode_into(wire, dtype, &mut out);
                // The streaming decode, into a destination at every 4-byte offset from 32.
                let mut big = vec![0f32; v.len() + 8];
                let skew = off + 1;
                decode_into_streaming(wire, dtype, &mut big[skew..skew + v.len()]);
                for i in 0..v.len() {
                    prop_assert!(big[skew + i].to_bits() == out[i].to_bits() || (big[skew + i].is_nan() && out[i].is_nan()));
                }
                let mut acc = vec![1.0f32; v.len()];
                accumulate(&mut acc, wire, dtype);
                let pair = add_pair(wire, wire, dtype);
                for i in 0..v.len() {
                    let want = round_trip(v[i], dtype);
                    prop_assert!(want.to_bits() == out[i].to_bits() || (want.is_nan() && out[i].is_nan()));
                    let sum = 1.0 + want;
                    prop_assert!(sum.to_bits() == acc[i].to_bits() || (sum.is_nan() && acc[i].is_nan()));
                    let twice = want + want;
                    prop_assert!(twice.to_bits() == pair[i].to_bits() || (twice.is_nan() && pair[i].is_nan()));
                }
            }
        }

        /// The one-pass reduction is bit for bit the element-wise fold in rank order, at any
        /// length (across chunk borders), any P, sum or average, on both paths.
        #[test]
        fn reduce_into_is_the_rank_order_fold(
            p in 0usize..5,
            n in 0usize..5000,
            seed in any::<u64>(),
            avg in any::<bool>(),
            portable in any::<bool>(),
        ) {
            PORTABLE.with(|c| c.set(portable));
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let inputs: Vec<Vec<f32>> = (0..p)
                .map(|_| (0..n).map(|_| {
                    let r = next();
                    // Mostly ordinary values, some arbitrary bit patterns (NaN, inf, subnormal).
                    if r % 16 == 0 { f32::from_bits((r >> 32) as u32) } else { ((r >> 40) as f32) / 8e6 - 1.0 }
                }).collect())
                .collect();
            let divide = (avg && p > 0).then_some(p as f32);
            for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                let wires: Vec<Vec<u8>> = inputs.iter().map(|v| {
                    let mut w = Vec::new();
                    encode(v, dtype, &mut w);
                    w
                }).collect();
                let mut out = vec![0u8; n * dtype.size()];
                reduce_into(&wires, dtype, divide, &mut out);
                let mut got = vec![0f32; n];
                decode_into(&out, dtype, &mut got);
                for i in 0..n {
                    let mut want = 0.0f32;
                    for (r, v) in inputs.iter().enumerate() {
                        let x = round_trip(v[i], dtype);
                        want = if r == 0 { x } else { want + x };
                    }
                    if let Some(d) = divide { want /= d; }
                    let want = round_trip(want, dtype);
                    prop_assert!(want.to_bits() == got[i].to_bits() || (want.is_nan() && got[i].is_nan()),
                        "{dtype} p={p} i={i}: {want} vs {}", got[i]);
                }
            }
        }
    }
}
