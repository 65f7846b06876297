//! 8-bit scalar quantization (SQ8): a compact copy of the vectors for graph walks.
//!
//! Each dimension `d` gets a range `[lo[d], lo[d] + 255 * step[d]]` learned from the data;
//! a value is stored as the nearest of its 256 levels (values outside the range are
//! clamped to its ends). A code is a quarter of the f32 vector, so a walk over a large
//! graph fetches a quarter of the memory per node; the engine re-ranks its final
//! candidates with the exact f32 distances, so quantization error can only cost recall
//! (a true neighbour not reached), never a wrong distance or order in the answer.
//!
//! Distances against a code are computed from a query prepared once per search
//! ([`Sq8::prepare`]): for L2, `|q - x|^2 = sum (q[d] - lo[d] - step[d] * c[d])^2`; for the
//! inner product, `q . x = q . lo + sum (q[d] * step[d]) * c[d]`.

use quiverdb_types::Metric;

use crate::kernels::KernelSet;

/// Per-dimension ranges of an 8-bit scalar quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sq8 {
    lo: Vec<f32>,
    step: Vec<f32>,
    /// `1 / step`, for coding.
    inv_step: Vec<f32>,
}

/// Rows a quantizer is trained on at most (evenly spaced over the data).
const TRAIN_ROWS: usize = 100_000;

/// The per-dimension minimum and maximum of the rows seen so far: [`Sq8::train`] in
/// pieces (a caller that must not hold a lock for the whole pass feeds it a few rows at a
/// time). Rows fed in any order give the same quantizer.
#[derive(Debug, Clone)]
pub struct Sq8Ranges {
    lo: Vec<f32>,
    hi: Vec<f32>,
}

impl Sq8Ranges {
    /// No rows seen yet.
    pub fn new(dim: usize) -> Sq8Ranges {
        Sq8Ranges {
            lo: vec![f32::INFINITY; dim],
            hi: vec![f32::NEG_INFINITY; dim],
        }
    }

    /// Widens the ranges to hold `row` (finite values).
    pub fn observe(&mut self, row: &[f32]) {
        for ((l, h), &x) in self.lo.iter_mut().zip(&mut self.hi).zip(row) {
            *l = l.min(x);
            *h = h.max(x);
        }
    }

    /// The quantizer of these ranges: 256 levels from each minimum to its maximum.
    pub fn finish(self) -> Sq8 {
        let Sq8Ranges { mut lo, hi } = self;
        let step = lo
            .iter_mut()
            .zip(&hi)
            .map(|(l, &h)| {
                if !l.is_finite() || !h.is_finite() {
                    // No rows: any range works; codes will all be clamped.
                    *l = 0.0;
                    return 1.0;
                }
                let s = (h - *l) / 255.0;
                // A constant dimension: every code is 0 and decodes exactly.
                if s > 0.0 && s.is_finite() {
                    s
                } else {
                    1.0
                }
            })
            .collect::<Vec<f32>>();
        let inv_step = step.iter().map(|s| 1.0 / s).collect();
        Sq8 { lo, step, inv_step }
    }
}

impl Sq8 {
    /// Learns the range of every dimension from `data` (`n` rows of `dim` floats, all
    /// finite): its minimum and maximum over up to [`TRAIN_ROWS`] evenly spaced rows (every
    /// [`Sq8::train_stride`]`(n)`-th).
    pub fn train(dim: usize, data: &[f32]) -> Sq8 {
        let n = data.len().checked_div(dim).unwrap_or(0);
        let mut ranges = Sq8Ranges::new(dim);
        for row in data.chunks_exact(dim.max(1)).step_by(Self::train_stride(n)) {
            ranges.observe(row);
        }
        ranges.finish()
    }

    /// Which rows [`Sq8::train`] learns from when there are `n`: every `stride`-th,
    /// starting with the first.
    pub fn train_stride(n: usize) -> usize {
        n.div_ceil(TRAIN_ROWS).max(1)
    }

    /// The dimension this quantizer was trained for.
    pub fn dim(&self) -> usize {
        self.lo.len()
    }

    /// Appends the code of `v` (one byte per dimension) to `out`.
    pub fn encode_into(&self, v: &[f32], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + self.dim(), 0);
        self.encode(v, &mut out[start..]);
    }

    /// Writes the code of `v` into `out` (both of the quantizer's dimension).
    pub fn encode(&self, v: &[f32], out: &mut [u8]) {
        debug_assert_eq!(v.len(), self.dim());
        debug_assert_eq!(out.len(), self.dim());
        for (((c, &x), &l), &inv) in out.iter_mut().zip(v).zip(&self.lo).zip(&self.inv_step) {
            // Rounds half up (no `round`: a libm call on the baseline x86_64 target); `as
            // u8` saturates and maps NaN to 0, so out-of-range values clamp to the ends.
            *c = ((x - l) * inv + 0.5) as u8;
        }
    }

    /// The value code `c` stands for in dimension `d`.
    #[cfg(test)]
    pub fn decode(&self, d: usize, c: u8) -> f32 {
        self.lo[d] + self.step[d] * f32::from(c)
    }

    /// Prepares `q` (already normalized for cosine) for distances against codes.
    pub fn prepare(&self, metric: Metric, q: &[f32], out: &mut Sq8Query) {
        out.metric = metric;
        out.a.clear();
        match metric {
            Metric::L2 => {
                out.a.extend(q.iter().zip(&self.lo).map(|(&x, &l)| x - l));
                out.bias = 0.0;
            }
            Metric::Ip | Metric::Cosine => {
                out.a.extend(q.iter().zip(&self.step).map(|(&x, &s)| x * s));
                out.bias = q.iter().zip(&self.lo).map(|(&x, &l)| x * l).sum();
            }
        }
    }

    /// The engine distance of `metric` between the prepared query and `code`, with the
    /// same conventions as [`KernelSet::distance`] (never NaN).
    #[inline]
    pub fn distance(&self, k: &KernelSet, p: &Sq8Query, code: &[u8]) -> f32 {
        match p.metric {
            Metric::L2 => {
                let d = k.sq8_l2(&p.a, &self.step, code);
                if d >= 0.0 {
                    d
                } else if d.is_nan() {
                    f32::INFINITY
                } else {
                    0.0
                }
            }
            Metric::Ip => {
                let d = -(p.bias + k.sq8_dot(&p.a, code));
                if d.is_nan() {
                    f32::INFINITY
                } else {
                    d
                }
            }
            Metric::Cosine => {
                let d = 1.0 - (p.bias + k.sq8_dot(&p.a, code));
                if d.is_nan() {
                    2.0
                } else {
                    d.clamp(0.0, 2.0)
                }
            }
        }
    }
}

/// A query prepared by [`Sq8::prepare`]; reusable across queries (no allocation once
/// its buffer has grown).
#[derive(Debug, Clone)]
pub struct Sq8Query {
    metric: Metric,
    /// L2: `q - lo`; inner product: `q * step`.
    a: Vec<f32>,
    /// Inner product: `q . lo`.
    bias: f32,
}

impl Default for Sq8Query {
    fn default() -> Self {
        Sq8Query {
            metric: Metric::L2,
            a: Vec::new(),
            bias: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels;

    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..n * dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn codes_decode_within_half_a_step() {
        let dim = 37;
        let data = rows(500, dim, 7);
        let q = Sq8::train(dim, &data);
        let mut code = Vec::new();
        for row in data.chunks_exact(dim) {
            code.clear();
            q.encode_into(row, &mut code);
            assert_eq!(code.len(), dim);
            for (d, (&x, &c)) in row.iter().zip(&code).enumerate() {
                let err = (q.decode(d, c) - x).abs();
                assert!(
                    err <= q.step[d] * 0.5 + 1e-6,
                    "dim {d}: {x} -> {c}, err {err}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_values_clamp_to_the_ends() {
        let q = Sq8::train(2, &[0.0, 5.0, 1.0, 5.0]);
        let mut code = Vec::new();
        q.encode_into(&[-3.0, 5.0], &mut code);
        q.encode_into(&[9.0, f32::NAN], &mut code);
        assert_eq!(code, [0, 0, 255, 0]);
        // The constant dimension decodes exactly.
        assert_eq!(q.decode(1, 0), 5.0);
    }

    /// Distances against codes match the exact distance to the decoded vector, for every
    /// metric and every kernel path this CPU has.
    #[test]
    fn code_distances_equal_distances_to_decoded_vectors() {
        for dim in [1, 15, 16, 33, 64, 128, 384, 385] {
            let data = rows(300, dim, dim as u64);
            let sq = Sq8::train(dim, &data);
            let query = rows(1, dim, 99);
            for set in kernels::available() {
                for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
                    let mut p = Sq8Query::default();
                    sq.prepare(metric, &query, &mut p);
                    for row in data.chunks_exact(dim).take(20) {
                        let mut code = Vec::new();
                        sq.encode_into(row, &mut code);
                        let decoded: Vec<f32> = code
                            .iter()
                            .enumerate()
                            .map(|(d, &c)| sq.decode(d, c))
                            .collect();
                        let want = set.distance(metric, &query, &decoded);
                        let got = sq.distance(&set, &p, &code);
                        let tol = 1e-4 * (1.0 + want.abs()) * (dim as f32).sqrt();
                        assert!(
                            (got - want).abs() <= tol,
                            "{} {metric:?} dim {dim}: {got} vs {want}",
                            set.name()
                        );
                    }
                }
            }
        }
    }
}
