//! Distance kernels: every available instruction-set path vs a naive loop and vs
//! anndists' scalar `DistL2` / `DistDot` (what hnsw_rs uses with its SIMD features off).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hnsw_rs::prelude::{DistDot, DistL2, Distance};
use quiverdb_index::kernels;

/// Unit-length data (anndists' `DistDot` asserts `1 - dot >= 0`).
fn data(dim: usize, seed: u32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect();
    kernels::normalize(&mut v);
    v
}

fn naive_l2(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for i in 0..a.len() {
        let d = a[i] - b[i];
        s += d * d;
    }
    s
}

fn naive_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

fn bench(c: &mut Criterion) {
    for (kind, naive) in [
        ("l2", naive_l2 as fn(&[f32], &[f32]) -> f32),
        ("dot", naive_dot),
    ] {
        let mut g = c.benchmark_group(format!("kernels/{kind}"));
        for dim in [128usize, 384, 768, 1536] {
            let (a, b) = (data(dim, 1), data(dim, 7));
            g.throughput(Throughput::Elements(dim as u64));
            g.bench_with_input(BenchmarkId::new("naive", dim), &dim, |bch, _| {
                bch.iter(|| naive(black_box(&a), black_box(&b)))
            });
            g.bench_with_input(BenchmarkId::new("anndists", dim), &dim, |bch, _| {
                if kind == "l2" {
                    bch.iter(|| DistL2.eval(black_box(&a), black_box(&b)))
                } else {
                    bch.iter(|| DistDot.eval(black_box(&a), black_box(&b)))
                }
            });
            for set in kernels::available() {
                g.bench_with_input(BenchmarkId::new(set.name(), dim), &dim, |bch, _| {
                    if kind == "l2" {
                        bch.iter(|| set.l2_squared(black_box(&a), black_box(&b)))
                    } else {
                        bch.iter(|| set.dot(black_box(&a), black_box(&b)))
                    }
                });
            }
            g.bench_with_input(BenchmarkId::new("dispatched", dim), &dim, |bch, _| {
                if kind == "l2" {
                    bch.iter(|| kernels::l2_squared(black_box(&a), black_box(&b)))
                } else {
                    bch.iter(|| kernels::dot(black_box(&a), black_box(&b)))
                }
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(800));
    targets = bench
}
criterion_main!(benches);
