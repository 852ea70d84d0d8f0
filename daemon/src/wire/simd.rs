//! x86-64 fast paths for the wire dtypes: AVX2 + F16C, 8 elements per instruction, chosen at run
//! time (the generic build must still run on any x86-64). Bytes are loaded and stored unaligned,
//! so wire buffers need no alignment and no staging copy.
//!
//! Every function here is checked against the portable path by the property tests in `dtype`.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

/// Whether this CPU has what the functions below need (cached by std after the first call).
#[inline]
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c")
}

/// f32 -> f16 bits (round to nearest even), `dst.len() == 2 * src.len()`.
///
/// # Safety
/// The CPU must support AVX2 and F16C (see [`available`]).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn encode_f16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2);
    let n8 = src.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= src.len() and 2 * (i + 8) <= dst.len(); unaligned load and store.
        unsafe {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(dst.as_mut_ptr().add(2 * i) as *mut __m128i, h);
        }
        i += 8;
    }
    for j in n8..src.len() {
        let b = half::f16::from_f32(src[j]).to_bits().to_le_bytes();
        dst[2 * j..2 * j + 2].copy_from_slice(&b);
    }
}

#[inline(always)]
unsafe fn load_f16x8(src: &[u8], i: usize) -> __m256 {
    // SAFETY (caller): 2 * (i + 8) <= src.len().
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i)) }
}

#[inline(always)]
unsafe fn load_bf16x8(src: &[u8], i: usize) -> __m256 {
    // SAFETY (caller): 2 * (i + 8) <= src.len(). bf16 is the top half of an f32.
    unsafe {
        let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }
}

fn f16_at(src: &[u8], j: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([src[2 * j], src[2 * j + 1]])).to_f32()
}

fn bf16_at(src: &[u8], j: usize) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([src[2 * j], src[2 * j + 1]])) << 16)
}

macro_rules! decode_and_accumulate {
    ($decode:ident, $decode_nt:ident, $accumulate:ident, $load:ident, $scalar:ident, $doc:literal) => {
        #[doc = concat!("Decodes ", $doc, " bytes into `dst` (`src.len() == 2 * dst.len()`).")]
        ///
        /// # Safety
        /// The CPU must support AVX2 and F16C (see [`available`]).
        #[target_feature(enable = "avx2,f16c")]
        pub unsafe fn $decode(src: &[u8], dst: &mut [f32]) {
            assert_eq!(src.len(), dst.len() * 2);
            let n8 = dst.len() / 8 * 8;
            let mut i = 0;
            while i < n8 {
                // SAFETY: i + 8 <= dst.len(), so both accesses are in bounds.
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i), $load(src, i)) };
                i += 8;
            }
            for j in n8..dst.len() {
                dst[j] = $scalar(src, j);
            }
        }

        #[doc = concat!("[`", stringify!($decode), "`] with non-temporal stores: for a large tensor ")]
        /// that will not be read again while it is still in cache, the stores skip reading every
        /// destination line from memory first (half the memory traffic of a plain store).
        ///
        /// # Safety
        /// The CPU must support AVX2 and F16C (see [`available`]).
        #[target_feature(enable = "avx2,f16c")]
        pub unsafe fn $decode_nt(src: &[u8], dst: &mut [f32]) {
            assert_eq!(src.len(), dst.len() * 2);
            // Plain stores up to the first 32-byte boundary, which streaming stores need.
            let head = dst.as_ptr().align_offset(32).min(dst.len());
            for j in 0..head {
                dst[j] = $scalar(src, j);
            }
            let n8 = head + (dst.len() - head) / 8 * 8;
            let mut i = head;
            while i < n8 {
                // SAFETY: i + 8 <= dst.len(); dst + i is 32-byte aligned (head, then steps of 32).
                unsafe { _mm256_stream_ps(dst.as_mut_ptr().add(i), $load(src, i)) };
                i += 8;
            }
            // Streaming stores are weakly ordered: fence them before the buffer is handed on.
            _mm_sfence();
            for j in n8..dst.len() {
                dst[j] = $scalar(src, j);
            }
        }

        #[doc = concat!("`acc[i] += ", $doc, "[i]` (`src.len() == 2 * acc.len()`).")]
        ///
        /// # Safety
        /// The CPU must support AVX2 and F16C (see [`available`]).
        #[target_feature(enable = "avx2,f16c")]
        pub unsafe fn $accumulate(src: &[u8], acc: &mut [f32]) {
            assert_eq!(src.len(), acc.len() * 2);
            let n8 = acc.len() / 8 * 8;
            let mut i = 0;
            while i < n8 {
                // SAFETY: i + 8 <= acc.len(), so both accesses are in bounds.
                unsafe {
                    let p = acc.as_mut_ptr().add(i);
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), $load(src, i)));
                }
                i += 8;
            }
            for j in n8..acc.len() {
                acc[j] += $scalar(src, j);
            }
        }
    };
}

decode_and_accumulate!(
    decode_f16,
    decode_f16_nt,
    accumulate_f16,
    load_f16x8,
    f16_at,
    "f16"
);
decode_and_accumulate!(
    decode_bf16,
    decode_bf16_nt,
    accumulate_bf16,
    load_bf16x8,
    bf16_at,
    "bf16"
);

/// 8 x f32 -> 8 x bf16 bits in the low halves of the 32-bit lanes (round to nearest even, NaN
/// kept quiet).
#[inline(always)]
unsafe fn bf16_bits8(v: __m256, round: __m256i, one: __m256i, quiet: __m256i) -> __m256i {
    // SAFETY (caller): the CPU has AVX2 (these only touch registers).
    unsafe {
        let b = _mm256_castps_si256(v);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(b), one);
        let rounded = _mm256_add_epi32(b, _mm256_add_epi32(round, lsb));
        // NaN is the only value unordered with itself: one compare instead of mask and compare.
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let quieted = _mm256_or_si256(b, quiet);
        _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quieted, nan))
    }
}

/// f32 -> bf16 bits, round to nearest even, NaN kept quiet (as `half::bf16::from_f32`).
///
/// # Safety
/// The CPU must support AVX2 (see [`available`]).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn encode_bf16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2);
    let round = _mm256_set1_epi32(0x7FFF);
    let one = _mm256_set1_epi32(1);
    let quiet = _mm256_set1_epi32(0x0040_0000);
    // 16 at a time: one pack and one permute per 16 (packus works per 128-bit lane, so
    // [a0..3 b0..3 | a4..7 b4..7] is put back in order by swapping the middle quarters).
    let n16 = src.len() / 16 * 16;
    let mut i = 0;
    while i < n16 {
        // SAFETY: i + 16 <= src.len() and 2 * (i + 16) <= dst.len(); unaligned loads and store.
        unsafe {
            let a = bf16_bits8(_mm256_loadu_ps(src.as_ptr().add(i)), round, one, quiet);
            let b = bf16_bits8(_mm256_loadu_ps(src.as_ptr().add(i + 8)), round, one, quiet);
            let packed = _mm256_packus_epi32(a, b);
            let ordered = _mm256_permute4x64_epi64::<0b1101_1000>(packed);
            _mm256_storeu_si256(dst.as_mut_ptr().add(2 * i) as *mut __m256i, ordered);
        }
        i += 16;
    }
    let n8 = src.len() / 8 * 8;
    while i < n8 {
        // SAFETY: i + 8 <= src.len() and 2 * (i + 8) <= dst.len(); unaligned load and store.
        unsafe {
            let r = bf16_bits8(_mm256_loadu_ps(src.as_ptr().add(i)), round, one, quiet);
            let packed = _mm256_packus_epi32(r, r);
            let ordered = _mm256_permute4x64_epi64::<0b1000>(packed);
            _mm_storeu_si128(
                dst.as_mut_ptr().add(2 * i) as *mut __m128i,
                _mm256_castsi256_si128(ordered),
            );
        }
        i += 8;
    }
    for j in n8..src.len() {
        let b = half::bf16::from_f32(src[j]).to_bits().to_le_bytes();
        dst[2 * j..2 * j + 2].copy_from_slice(&b);
    }
}

/// `acc[i] += src[i]` for f32 wire bytes (`src.len() == 4 * acc.len()`), 8 lanes at a time.
///
/// # Safety
/// The CPU must support AVX2 (see [`available`]).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn accumulate_f32(src: &[u8], acc: &mut [f32]) {
    assert_eq!(src.len(), acc.len() * 4);
    let n8 = acc.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= acc.len() and 4 * (i + 8) <= src.len(); unaligned loads and store.
        unsafe {
            let p = acc.as_mut_ptr().add(i);
            let x = _mm256_loadu_ps(src.as_ptr().add(4 * i) as *const f32);
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), x));
        }
        i += 8;
    }
    for (j, a) in acc.iter_mut().enumerate().skip(n8) {
        *a += f32_at(src, j);
    }
}

/// `dst[i] = a[i] + b[i]` for two blocks of f32 wire bytes (`a.len() == b.len() == 4 * dst.len()`).
///
/// # Safety
/// The CPU must support AVX2 (see [`available`]).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn add_pair_f32(a: &[u8], b: &[u8], dst: &mut [f32]) {
    assert_eq!(a.len(), dst.len() * 4);
    assert_eq!(b.len(), dst.len() * 4);
    let n8 = dst.len() / 8 * 8;
    let mut i = 0;
    while i < n8 {
        // SAFETY: i + 8 <= dst.len() and 4 * (i + 8) <= a.len() == b.len().
        unsafe {
            let x = _mm256_loadu_ps(a.as_ptr().add(4 * i) as *const f32);
            let y = _mm256_loadu_ps(b.as_ptr().add(4 * i) as *const f32);
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_add_ps(x, y));
        }
        i += 8;
    }
    for (j, d) in dst.iter_mut().enumerate().skip(n8) {
        *d = f32_at(a, j) + f32_at(b, j);
    }
}

fn f32_at(src: &[u8], j: usize) -> f32 {
    f32::from_le_bytes([src[4 * j], src[4 * j + 1], src[4 * j + 2], src[4 * j + 3]])
}
