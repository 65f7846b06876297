//! x86_64 AVX-512F kernels: 16 lanes, 4 independent accumulators (64 floats per step), the
//! remainder handled with one masked load instead of a scalar loop.

use std::arch::x86_64::*;

/// Squared Euclidean distance over the common prefix of `a` and `b`.
///
/// # Safety
/// The CPU must support AVX-512F (checked by the caller with `is_x86_feature_detected!`).
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut acc2 = _mm512_setzero_ps();
    let mut acc3 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: every load reads 16 floats at an offset `< i + 64 <= n`, and `n` is at
        // most the length of both slices; unaligned loads accept any address.
        unsafe {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 = _mm512_sub_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
            );
            let d2 = _mm512_sub_ps(
                _mm512_loadu_ps(pa.add(i + 32)),
                _mm512_loadu_ps(pb.add(i + 32)),
            );
            let d3 = _mm512_sub_ps(
                _mm512_loadu_ps(pa.add(i + 48)),
                _mm512_loadu_ps(pb.add(i + 48)),
            );
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            acc2 = _mm512_fmadd_ps(d2, d2, acc2);
            acc3 = _mm512_fmadd_ps(d3, d3, acc3);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`.
        unsafe {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
        }
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        // SAFETY: the masked load touches only the `n - i < 16` lanes in bounds; masked-off
        // lanes are not accessed and do not fault.
        unsafe {
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
            );
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc0, acc1),
        _mm512_add_ps(acc2, acc3),
    ))
}

/// Inner product over the common prefix of `a` and `b`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut acc2 = _mm512_setzero_ps();
    let mut acc3 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: every load reads 16 floats at an offset `< i + 64 <= n`.
        unsafe {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
                acc1,
            );
            acc2 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 32)),
                _mm512_loadu_ps(pb.add(i + 32)),
                acc2,
            );
            acc3 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 48)),
                _mm512_loadu_ps(pb.add(i + 48)),
                acc3,
            );
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`.
        unsafe {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        }
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        // SAFETY: the masked load touches only the in-bounds lanes.
        unsafe {
            acc1 = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mask, pa.add(i)),
                _mm512_maskz_loadu_ps(mask, pb.add(i)),
                acc1,
            );
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc0, acc1),
        _mm512_add_ps(acc2, acc3),
    ))
}

/// [`l2_squared`] of `q` against each consecutive `q.len()`-float row of `rows`, into
/// `out` (one result per row, as many as both hold): the one-row kernel inlined into one
/// loop, so each result is bit for bit the one-row call's. `q` must not be empty.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn l2_squared_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        // SAFETY: the caller guarantees AVX-512F.
        *o = unsafe { l2_squared(q, x) };
    }
}

/// [`dot`] of `q` with each consecutive `q.len()`-float row of `rows`, into `out`; bit for
/// bit the one-row calls. `q` must not be empty.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn dot_rows(q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        // SAFETY: the caller guarantees AVX-512F.
        *o = unsafe { dot(q, x) };
    }
}

/// Four queries against each consecutive row of `rows` (rows as long as the queries, which
/// must all have one non-zero length), into `out`, loading each row once for the four:
/// [`l2_squared`] (`L2`) or [`dot`], each result bit for bit `l2_squared(q[j], row)` /
/// `dot(q[j], row)`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn x4_rows<const L2: bool>(q: &[&[f32]; 4], rows: &[f32], out: &mut [[f32; 4]]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q[0].len())) {
        // SAFETY: the caller guarantees AVX-512F.
        *o = unsafe { four_queries::<L2>(q, x) };
    }
}

/// Four queries against one row, the body of [`x4_rows`]: the loop structure of
/// [`l2_squared`] and [`dot`] (four accumulators over 64-float steps, then 16-float steps
/// into the first, then one masked step into the second, summed in the same order), once
/// per query, with each 16-float block of `x` loaded once for the four.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn four_queries<const L2: bool>(q: &[&[f32]; 4], x: &[f32]) -> [f32; 4] {
    /// One lane block of one query: `(q - x)^2` or `q * x` added to `acc`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn step<const L2: bool>(q: __m512, x: __m512, acc: __m512) -> __m512 {
        if L2 {
            let d = _mm512_sub_ps(q, x);
            _mm512_fmadd_ps(d, d, acc)
        } else {
            _mm512_fmadd_ps(q, x, acc)
        }
    }
    let n = x.len();
    debug_assert!(q.iter().all(|q| q.len() == n));
    let px = x.as_ptr();
    let pq = q.map(<[f32]>::as_ptr);
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: every load reads 16 floats at an offset `< i + 64 <= n`, and every slice
        // holds `n` floats.
        unsafe {
            let xs = [0, 16, 32, 48].map(|o| _mm512_loadu_ps(px.add(i + o)));
            for (acc, p) in acc.iter_mut().zip(pq) {
                for (c, (a, xv)) in acc.iter_mut().zip(xs).enumerate() {
                    *a = step::<L2>(_mm512_loadu_ps(p.add(i + 16 * c)), xv, *a);
                }
            }
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`.
        unsafe {
            let xv = _mm512_loadu_ps(px.add(i));
            for (acc, p) in acc.iter_mut().zip(pq) {
                acc[0] = step::<L2>(_mm512_loadu_ps(p.add(i)), xv, acc[0]);
            }
        }
        i += 16;
    }
    if i < n {
        let mask: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        // SAFETY: the masked loads touch only the `n - i < 16` lanes in bounds.
        unsafe {
            let xv = _mm512_maskz_loadu_ps(mask, px.add(i));
            for (acc, p) in acc.iter_mut().zip(pq) {
                acc[1] = step::<L2>(_mm512_maskz_loadu_ps(mask, p.add(i)), xv, acc[1]);
            }
        }
    }
    acc.map(|[a0, a1, a2, a3]| {
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))
    })
}

/// `sum (a[i] - step[i] * code[i])^2` over the common prefix (see `scalar::sq8_l2`).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn sq8_l2(a: &[f32], step: &[f32], code: &[u8]) -> f32 {
    let n = a.len().min(step.len()).min(code.len());
    let (pa, ps, pc) = (a.as_ptr(), step.as_ptr(), code.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: the float loads read 16 lanes at `i` and `i + 16`, the byte loads 16
        // bytes there, all `< i + 32 <= n`, within every slice; unaligned loads accept any
        // address.
        unsafe {
            let c0 = codes16(pc.add(i));
            let c1 = codes16(pc.add(i + 16));
            let d0 = _mm512_fnmadd_ps(_mm512_loadu_ps(ps.add(i)), c0, _mm512_loadu_ps(pa.add(i)));
            let d1 = _mm512_fnmadd_ps(
                _mm512_loadu_ps(ps.add(i + 16)),
                c1,
                _mm512_loadu_ps(pa.add(i + 16)),
            );
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
        }
        i += 32;
    }
    let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for j in i..n {
        let d = a[j] - step[j] * f32::from(code[j]);
        sum += d * d;
    }
    sum
}

/// `sum w[i] * code[i]` over the common prefix (see `scalar::sq8_dot`).
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn sq8_dot(w: &[f32], code: &[u8]) -> f32 {
    let n = w.len().min(code.len());
    let (pw, pc) = (w.as_ptr(), code.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: as in `sq8_l2`: every load ends at or before `i + 32 <= n`.
        unsafe {
            let c0 = codes16(pc.add(i));
            let c1 = codes16(pc.add(i + 16));
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pw.add(i)), c0, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pw.add(i + 16)), c1, acc1);
        }
        i += 32;
    }
    let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for j in i..n {
        sum += w[j] * f32::from(code[j]);
    }
    sum
}

/// The 16 codes at `p` as floats.
///
/// # Safety
/// The CPU must support AVX-512F, and 16 bytes from `p` must be readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn codes16(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 readable bytes at `p`; the load is unaligned.
    unsafe { _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast::<__m128i>()))) }
}
