//! Distance kernels. (Scalar placeholder: the SIMD paths arrive with issue 3.)

use quiverdb_types::Metric;

/// Squared Euclidean distance.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Inner product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The engine distance of `metric` (smaller is better); cosine expects normalized input.
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(a, b),
        Metric::Ip => -dot(a, b),
        Metric::Cosine => (1.0 - dot(a, b)).clamp(0.0, 2.0),
    }
}

/// Normalizes `v` in place to unit length; returns `false` (leaving `v`) for a zero vector.
pub fn normalize(v: &mut [f32]) -> bool {
    let n = dot(v, v).sqrt();
    if n == 0.0 || !n.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= n);
    true
}
