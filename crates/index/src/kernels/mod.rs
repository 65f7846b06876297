//! Distance kernels: squared L2, inner product, cosine-as-dot.
//!
//! Each instruction set has its own file (`scalar`, `avx2`, `avx512`, `neon`); `unsafe`
//! lives only in those files. The fastest path the CPU supports is chosen **once**, on
//! first use, by runtime feature detection, and held as a [`KernelSet`] of plain function
//! pointers. [`available`] lists every path this CPU can run, so tests and benches can call
//! each one explicitly.
//!
//! Order of preference on x86_64: AVX-512F, then AVX2+FMA, then the scalar fallback. (On
//! the Zen 5 development machine AVX-512 is on par with AVX2 at dim 128 and 1.3–1.6×
//! faster from 384 up; see `docs/BENCHMARKS.md`, `## Distance kernels`.) On aarch64 NEON
//! is always used (written against the `std::arch::aarch64` API but not compiled or run
//! yet: no aarch64 machine or target was available).
//!
//! Every kernel reads the common prefix of its two arguments, so a length mismatch (a
//! caller bug, `debug_assert`ed in the public functions) can never read out of bounds.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
mod select;

use std::fmt;
use std::sync::LazyLock;

use quiverdb_types::Metric;

pub use select::available;

/// A kernel on two equal-length slices.
pub type KernelFn = fn(&[f32], &[f32]) -> f32;

/// `sum (a[i] - step[i] * code[i])^2`: squared L2 against an 8-bit code (see `quant`).
pub type Sq8L2Fn = fn(&[f32], &[f32], &[u8]) -> f32;
/// `sum w[i] * code[i]`: the code-dependent part of an inner product with an 8-bit code.
pub type Sq8DotFn = fn(&[f32], &[u8]) -> f32;
/// A primitive kernel of one query against consecutive rows of the query's length (one
/// result per row, as many as `rows` and the output hold): bit for bit the one-row
/// kernel's results, without a call per row.
pub type RowsFn = fn(&[f32], &[f32], &mut [f32]);
/// A primitive kernel of four queries (all of one length) against consecutive rows of that
/// length, reading each row once for the four: bit for bit the one-row kernel's results.
pub type X4RowsFn = fn(&[&[f32]; 4], &[f32], &mut [[f32; 4]]);

/// One instruction-set path: a name, its two primitive kernels, their forms over a block
/// of rows for one query and for four (bit for bit the same results), and their
/// counterparts against 8-bit codes.
///
/// # Invariants
/// A `KernelSet` is only ever built (by [`available`]) for an instruction set the running
/// CPU supports, so calling its functions is always sound.
#[derive(Clone, Copy)]
pub struct KernelSet {
    name: &'static str,
    l2: KernelFn,
    dot: KernelFn,
    l2_rows: RowsFn,
    dot_rows: RowsFn,
    l2_x4_rows: X4RowsFn,
    dot_x4_rows: X4RowsFn,
    sq8_l2: Sq8L2Fn,
    sq8_dot: Sq8DotFn,
}

impl fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelSet")
            .field("name", &self.name)
            .finish()
    }
}

impl KernelSet {
    /// `scalar`, `avx2+fma`, `avx512f` or `neon`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Squared Euclidean distance, never negative (`+inf` on overflow or non-finite
    /// input, never NaN).
    #[inline]
    pub fn l2_squared(&self, a: &[f32], b: &[f32]) -> f32 {
        clamp_l2((self.l2)(a, b))
    }

    /// Inner product.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.dot)(a, b)
    }

    /// [`Self::distance`] from `q` to each consecutive `q.len()`-float row of `rows`, into
    /// `out` (`rows.len()` should be `out.len() * q.len()`; only whole rows that have a
    /// slot in `out` are scored). Bit for bit `distance(metric, q, row)` for every row, so
    /// a scan by blocks ranks exactly as a scan row by row; it only saves the call per row.
    #[inline]
    pub fn distances(&self, metric: Metric, q: &[f32], rows: &[f32], out: &mut [f32]) {
        debug_assert_eq!(rows.len(), out.len() * q.len());
        if q.is_empty() {
            out.fill(self.distance(metric, q, q));
            return;
        }
        match metric {
            Metric::L2 => {
                (self.l2_rows)(q, rows, out);
                out.iter_mut().for_each(|d| *d = clamp_l2(*d));
            }
            Metric::Ip => {
                (self.dot_rows)(q, rows, out);
                out.iter_mut().for_each(|d| *d = ip_distance(-*d));
            }
            Metric::Cosine => {
                (self.dot_rows)(q, rows, out);
                out.iter_mut().for_each(|d| *d = cosine_distance(1.0 - *d));
            }
        }
    }

    /// [`Self::distances`] for four queries at once, reading each row once for the four:
    /// `out[i][j]` is bit for bit `distance(metric, q[j], row i)` (so a batch of queries
    /// ranks exactly as each query alone).
    ///
    /// # Panics
    /// If the four queries differ in length (a caller bug: an index's queries all have its
    /// dimension).
    #[inline]
    pub fn distances_x4(
        &self,
        metric: Metric,
        q: &[&[f32]; 4],
        rows: &[f32],
        out: &mut [[f32; 4]],
    ) {
        let n = q[0].len();
        assert!(
            q.iter().all(|q| q.len() == n),
            "distances_x4: the four queries differ in length"
        );
        debug_assert_eq!(rows.len(), out.len() * n);
        if n == 0 {
            out.fill(q.map(|q| self.distance(metric, q, q)));
            return;
        }
        match metric {
            Metric::L2 => {
                (self.l2_x4_rows)(q, rows, out);
                out.iter_mut().for_each(|d| *d = d.map(clamp_l2));
            }
            Metric::Ip => {
                (self.dot_x4_rows)(q, rows, out);
                out.iter_mut().for_each(|d| *d = d.map(|d| ip_distance(-d)));
            }
            Metric::Cosine => {
                (self.dot_x4_rows)(q, rows, out);
                out.iter_mut()
                    .for_each(|d| *d = d.map(|d| cosine_distance(1.0 - d)));
            }
        }
    }

    /// `sum (a[i] - step[i] * code[i])^2` over the common prefix (not clamped: callers
    /// apply the metric's rules, see `quant::Sq8Query`).
    #[inline]
    pub fn sq8_l2(&self, a: &[f32], step: &[f32], code: &[u8]) -> f32 {
        (self.sq8_l2)(a, step, code)
    }

    /// `sum w[i] * code[i]` over the common prefix.
    #[inline]
    pub fn sq8_dot(&self, w: &[f32], code: &[u8]) -> f32 {
        (self.sq8_dot)(w, code)
    }

    /// The engine distance of `metric` (smaller is better); cosine expects normalized
    /// input and is clamped to `[0, 2]`. Never NaN: a NaN (only possible from non-finite
    /// input, which the engines reject) becomes the worst distance.
    #[inline]
    pub fn distance(&self, metric: Metric, a: &[f32], b: &[f32]) -> f32 {
        match metric {
            Metric::L2 => self.l2_squared(a, b),
            Metric::Ip => ip_distance(-self.dot(a, b)),
            Metric::Cosine => cosine_distance(1.0 - self.dot(a, b)),
        }
    }
}

/// The block form of a one-row kernel `f`, for paths without a fused loop of their own.
#[inline]
fn rows_with(f: KernelFn, q: &[f32], rows: &[f32], out: &mut [f32]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        *o = f(q, x);
    }
}

/// The four-query block form of a one-row kernel `f`, for paths without a fused loop.
#[inline]
fn x4_rows_with(f: KernelFn, q: &[&[f32]; 4], rows: &[f32], out: &mut [[f32; 4]]) {
    for (o, x) in out.iter_mut().zip(rows.chunks_exact(q[0].len())) {
        *o = q.map(|q| f(q, x));
    }
}

/// A raw squared L2 sum made a distance: never negative, `+inf` for NaN.
#[inline]
fn clamp_l2(d: f32) -> f32 {
    if d >= 0.0 {
        d
    } else if d.is_nan() {
        f32::INFINITY
    } else {
        0.0
    }
}

/// A negated inner product made a distance: `+inf` for NaN.
#[inline]
fn ip_distance(d: f32) -> f32 {
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// `1 - cos` made a distance: clamped to `[0, 2]`, `2` for NaN.
#[inline]
fn cosine_distance(d: f32) -> f32 {
    if d.is_nan() {
        2.0
    } else {
        d.clamp(0.0, 2.0)
    }
}

static ACTIVE: LazyLock<KernelSet> = LazyLock::new(|| {
    let set = select::best();
    tracing::debug!(kernels = set.name, "distance kernels selected");
    set
});

/// The path chosen for this process (the first entry of [`available`]).
#[inline]
pub fn active() -> KernelSet {
    *ACTIVE
}

/// Squared Euclidean distance (never negative).
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    ACTIVE.l2_squared(a, b)
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    ACTIVE.dot(a, b)
}

/// The engine distance of `metric` (smaller is better); cosine expects normalized input.
#[inline]
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    ACTIVE.distance(metric, a, b)
}

/// Normalizes `v` in place to unit length; returns `false` (leaving `v`) for a zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    // Summed in f64 so that very small or very large components neither underflow nor
    // overflow the norm.
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x = (f64::from(*x) / n) as f32);
    true
}

/// Hints the CPU to load the cache line at the start of `v` (no-op where unsupported).
#[inline(always)]
pub fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    avx2::prefetch(v.as_ptr());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Hints the CPU to load the cache line holding `*x`, of any type (graph links, row ids).
#[inline(always)]
pub fn prefetch_line<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    avx2::prefetch((x as *const T).cast::<f32>());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

#[cfg(test)]
mod tests;
