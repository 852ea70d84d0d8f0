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
    ($decode:ident, $accumulate:ident, $load:ident, $scalar:ident, $doc:literal) => {
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

decode_and_accumulate!(decode_f16, accumulate_f16, load_f16x8, f16_at, "f16");
decode_and_accumulate!(decode_bf16, accumulate_bf16, load_bf16x8, bf16_at, "bf16");

/// f32 -> bf16 bits, round to nearest even, NaN kept quiet (as `half::bf16::from_f32`).
///
/// # Safety
/// The CPU must support AVX2 (see [`available`]).
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn encode_bf16(src: &[f32], dst: &mut [u8]) {
    assert_eq!(dst.len(), src.len() * 2);
    let n8 = src.len() / 8 * 8;
    let mut i = 0;
    let abs_mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let inf = _mm256_set1_epi32(0x7F80_0000);
    let round = _mm256_set1_epi32(0x7FFF);
    let one = _mm256_set1_epi32(1);
    let quiet = _mm256_set1_epi32(0x0040_0000);
    while i < n8 {
        // SAFETY: i + 8 <= src.len() and 2 * (i + 8) <= dst.len(); unaligned load and store.
        unsafe {
            let b = _mm256_castps_si256(_mm256_loadu_ps(src.as_ptr().add(i)));
            let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(b), one);
            let rounded = _mm256_add_epi32(b, _mm256_add_epi32(round, lsb));
            let nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, abs_mask), inf);
            let quieted = _mm256_or_si256(b, quiet);
            let r = _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quieted, nan));
            // Pack 8 x u32 (each < 65536) into 8 x u16; packus works per 128-bit lane.
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
