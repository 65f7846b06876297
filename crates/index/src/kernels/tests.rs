//! Every available path against an f64 reference.

use proptest::prelude::*;

use super::*;

fn ref_l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum()
}

fn ref_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// Error bound: float32 summation of `n` terms has relative error about `n * eps` of the
/// sum of absolute terms; we allow `4e-6 * (n + 1)` of that magnitude (plus a tiny
/// absolute term), which every blocked/pairwise order here stays well inside.
fn bound(n: usize, magnitude: f64) -> f64 {
    4e-6 * (n as f64 + 1.0) * magnitude + 1e-6
}

fn vecs() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
    (0usize..=1100, 0usize..4).prop_flat_map(|(n, off)| {
        (
            proptest::collection::vec(-100.0f32..100.0, n + off),
            proptest::collection::vec(-100.0f32..100.0, n + off),
            Just(off),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_path_matches_reference((a, b, off) in vecs()) {
        // Offset sub-slices: unaligned starts for the SIMD loads.
        let (a, b) = (&a[off..], &b[off..]);
        let l2_ref = ref_l2(a, b);
        let dot_ref = ref_dot(a, b);
        let dot_mag: f64 = a.iter().zip(b).map(|(&x, &y)| f64::from(x * y).abs()).sum();
        for set in available() {
            let l2 = f64::from(set.l2_squared(a, b));
            prop_assert!(l2 >= 0.0, "{}: negative l2 {}", set.name(), l2);
            prop_assert!((l2 - l2_ref).abs() <= bound(a.len(), l2_ref),
                "{} l2 {} vs {} (n = {})", set.name(), l2, l2_ref, a.len());
            let d = f64::from(set.dot(a, b));
            prop_assert!((d - dot_ref).abs() <= bound(a.len(), dot_mag),
                "{} dot {} vs {} (n = {})", set.name(), d, dot_ref, a.len());
        }
    }

    /// The block kernels, for one query and for four, are bit for bit the one-row ones (a
    /// scan by blocks, or of four queries at once, must rank exactly as a row-by-row scan of
    /// each query), on every path and metric, aligned or not, for 0 to 5 rows.
    #[test]
    fn block_kernels_equal_one_row_at_a_time(
        (n, off, nrows) in (0usize..=600, 0usize..4, 0usize..=5),
        seed in any::<u64>(),
    ) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 20) as f32 - 8.0
        };
        let queries: Vec<Vec<f32>> = (0..4).map(|_| (0..n + off).map(|_| next()).collect()).collect();
        let q: [&[f32]; 4] = std::array::from_fn(|j| &queries[j][off..]);
        let block: Vec<f32> = (0..off + n * nrows).map(|_| next()).collect();
        let rows = &block[off..];
        for set in available() {
            for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
                let mut one = vec![f32::NAN; nrows];
                set.distances(metric, q[0], rows, &mut one);
                let mut four = vec![[f32::NAN; 4]; nrows];
                set.distances_x4(metric, &q, rows, &mut four);
                for r in 0..nrows {
                    let row = &rows[r * n..(r + 1) * n];
                    let single = set.distance(metric, q[0], row);
                    prop_assert_eq!(one[r].to_bits(), single.to_bits(),
                        "{} {:?} row {} (n = {}): {} vs {}", set.name(), metric, r, n, one[r], single);
                    for (j, d) in four[r].iter().enumerate() {
                        let single = set.distance(metric, q[j], row);
                        prop_assert_eq!(d.to_bits(), single.to_bits(),
                            "{} {:?} row {} query {} (n = {}): {} vs {}",
                            set.name(), metric, r, j, n, d, single);
                    }
                }
            }
        }
    }

    #[test]
    fn cosine_is_clamped_and_never_nan((a, b, off) in vecs()) {
        let (mut a, mut b) = (a[off..].to_vec(), b[off..].to_vec());
        let ok = normalize(&mut a) & normalize(&mut b);
        for set in available() {
            let d = set.distance(Metric::Cosine, &a, &b);
            prop_assert!((0.0..=2.0).contains(&d), "{}: {}", set.name(), d);
            if ok && !a.is_empty() {
                let self_d = set.distance(Metric::Cosine, &a, &a);
                prop_assert!(self_d < 1e-4, "{}: self distance {}", set.name(), self_d);
            }
        }
    }
}

#[test]
fn scalar_is_always_available_and_last() {
    let sets = available();
    assert_eq!(sets.last().map(|s| s.name()), Some("scalar"));
    assert_eq!(active().name(), sets[0].name());
}

#[test]
fn identical_vectors_give_zero_l2_not_negative() {
    let v: Vec<f32> = (0..777).map(|i| (i as f32).sin() * 1e3).collect();
    for set in available() {
        assert_eq!(set.l2_squared(&v, &v), 0.0, "{}", set.name());
    }
}

#[test]
fn normalize_rejects_zero_and_scales_tiny() {
    let mut z = vec![0.0f32; 5];
    assert!(!normalize(&mut z));
    let mut tiny = vec![1e-30f32, 0.0, 1e-30];
    assert!(normalize(&mut tiny));
    assert!((dot(&tiny, &tiny) - 1.0).abs() < 1e-6);
}

#[test]
fn public_functions_agree_with_metric_conventions() {
    let a = [1.0f32, 0.0];
    let b = [0.0f32, 1.0];
    assert_eq!(distance(Metric::L2, &a, &b), 2.0);
    assert_eq!(distance(Metric::Ip, &a, &a), -1.0);
    assert_eq!(distance(Metric::Cosine, &a, &b), 1.0);
}

#[test]
fn non_finite_input_never_gives_nan() {
    let a = [f32::INFINITY, 0.0, 1.0];
    let b = [0.0, f32::NEG_INFINITY, 1.0];
    let n = [f32::NAN, 1.0, 1.0];
    for set in available() {
        for (x, y) in [(&a, &b), (&a, &a), (&n, &b)] {
            for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
                let d = set.distance(metric, x, y);
                assert!(!d.is_nan(), "{} {metric}: {d}", set.name());
            }
            assert!(set.l2_squared(x, y) >= 0.0);
        }
    }
}
