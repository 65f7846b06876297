//! x86_64 AVX2 + FMA kernels: 8 lanes, 4 independent accumulators (32 floats per step).

use std::arch::x86_64::*;

/// Squared Euclidean distance over the common prefix of `a` and `b`.
///
/// # Safety
/// The CPU must support AVX2 and FMA (checked by the caller with
/// `is_x86_feature_detected!`).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut acc2 = _mm256_setzero_ps();
    let mut acc3 = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY (whole function): every load reads 8 floats at `i` with `i + 8 <= n`, and
    // `n` is at most the length of both slices; unaligned loads accept any address.
    while i + 32 <= n {
        unsafe {
            let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            let d1 = _mm256_sub_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
            );
            let d2 = _mm256_sub_ps(
                _mm256_loadu_ps(pa.add(i + 16)),
                _mm256_loadu_ps(pb.add(i + 16)),
            );
            let d3 = _mm256_sub_ps(
                _mm256_loadu_ps(pa.add(i + 24)),
                _mm256_loadu_ps(pb.add(i + 24)),
            );
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            acc2 = _mm256_fmadd_ps(d2, d2, acc2);
            acc3 = _mm256_fmadd_ps(d3, d3, acc3);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, see above.
        unsafe {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            acc0 = _mm256_fmadd_ps(d, d, acc0);
        }
        i += 8;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    let mut sum = hsum(acc);
    for j in i..n {
        let d = a[j] - b[j];
        sum += d * d;
    }
    sum
}

/// Inner product over the common prefix of `a` and `b`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut acc2 = _mm256_setzero_ps();
    let mut acc3 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: every load reads 8 floats at an offset `< i + 32 <= n`.
        unsafe {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            acc2 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 16)),
                _mm256_loadu_ps(pb.add(i + 16)),
                acc2,
            );
            acc3 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 24)),
                _mm256_loadu_ps(pb.add(i + 24)),
                acc3,
            );
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        unsafe {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
        }
        i += 8;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    let mut sum = hsum(acc);
    for j in i..n {
        sum += a[j] * b[j];
    }
    sum
}

/// [`l2_squared`] of `q` against each consecutive `q.len()`-float row of `rows`, into
/// `out`: the one-row kernel inlined into one loop, bit for bit its results. `q` must not
/// be empty.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn l2_squared_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        *o = unsafe { l2_squared(q, x) };
    }
}

/// [`dot`] of `q` with each consecutive row of `rows`, into `out` (as [`l2_squared_rows`]).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        // SAFETY: the caller guarantees AVX2 and FMA.
        *o = unsafe { dot(q, x) };
    }
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Asks the CPU to pull the cache line holding `p` into L1; never faults.
#[inline(always)]
pub fn prefetch(p: *const f32) {
    // SAFETY: PREFETCHT0 is a hint; it never faults, whatever the address. SSE is part of
    // the x86_64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
}

/// `sum (a[i] - step[i] * code[i])^2` over the common prefix (see `scalar::sq8_l2`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sq8_l2(a: &[f32], step: &[f32], code: &[u8]) -> f32 {
    let n = a.len().min(step.len()).min(code.len());
    let (pa, ps, pc) = (a.as_ptr(), step.as_ptr(), code.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: the float loads read 8 lanes at `i` and `i + 8`, the byte loads 8 bytes
        // there, all `< i + 16 <= n`, within every slice; unaligned loads accept any
        // address.
        unsafe {
            let c0 = codes8(pc.add(i));
            let c1 = codes8(pc.add(i + 8));
            let d0 = _mm256_fnmadd_ps(_mm256_loadu_ps(ps.add(i)), c0, _mm256_loadu_ps(pa.add(i)));
            let d1 = _mm256_fnmadd_ps(
                _mm256_loadu_ps(ps.add(i + 8)),
                c1,
                _mm256_loadu_ps(pa.add(i + 8)),
            );
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
        }
        i += 16;
    }
    let mut sum = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        let d = a[j] - step[j] * f32::from(code[j]);
        sum += d * d;
    }
    sum
}

/// `sum w[i] * code[i]` over the common prefix (see `scalar::sq8_dot`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn sq8_dot(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: as in `sq8_l2`: every load ends at or before `i + 16 <= n`.
        unsafe {
            let c0 = codes8(pc.add(i));
            let c1 = codes8(pc.add(i + 8));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i)), c0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pw.add(i + 8)), c1, acc1);
        }
        i += 16;
    }
    let mut sum = hsum(_mm256_add_ps(acc0, acc1));
    for j in i..n {
        sum += w[j] * f32::from(code[j]);
    }
    sum
}

/// The 8 codes at `p` as floats.
///
/// # Safety
/// The CPU must support AVX2, and 8 bytes from `p` must be readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn codes8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 8 readable bytes at `p`; `_mm_loadl_epi64` reads only
    // the low 8 bytes, unaligned.
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast::<__m128i>()))) }
}
