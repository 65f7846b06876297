//! How long searches and inserts stall when a native HNSW graph re-trains its 8-bit codes.
//!
//! The graph keeps 8-bit codes of its vectors from [`QUANTIZE_FROM_BYTES`] of them on, and
//! trains the quantizer again (coding every node anew) each time the node count doubles.
//! This builds a graph just below such a doubling, then crosses it with one-by-one inserts on
//! one thread while another thread searches without pause, and prints the slowest search
//! and insert seen, beside the medians.
//!
//! ```text
//! cargo run --release -p quiverdb-index --example retrain_pause -- [DIM] [DOUBLINGS]
//! ```
//! `DIM` defaults to 384; the graph is built in batches to about `2^DOUBLINGS` times the
//! node count where codes start (default 4: about 175,000 nodes at 384-d), then to 500
//! nodes below the next training, which the one-by-one inserts cross.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use quiverdb_index::hnsw::QUANTIZE_FROM_BYTES;
use quiverdb_index::{Engine, IndexConfig, Metric, NativeHnsw, RowId, SearchParams, VectorIndex};

/// A deterministic uniform vector in `[-0.5, 0.5)^dim` for row `i`.
fn vector(dim: usize, i: u64) -> Vec<f32> {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    format!(
        "n {} median {:.3} ms p99.9 {:.3} ms max {:.3} ms",
        v.len(),
        at(0.5),
        at(0.999),
        at(1.0)
    )
}

/// Inserts rows `from..to` in batches of 20,000 on `pool`.
fn build(index: &NativeHnsw, dim: usize, from: usize, to: usize, pool: &rayon::ThreadPool) {
    for start in (from..to).step_by(20_000) {
        let end = to.min(start + 20_000);
        let vectors: Vec<Vec<f32>> = (start..end).map(|i| vector(dim, i as u64)).collect();
        let items: Vec<(RowId, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(j, v)| (RowId((start + j) as u64), v.as_slice()))
            .collect();
        index.insert_batch(&items, pool).unwrap();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dim: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(384);
    let doublings: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let index = NativeHnsw::new(&IndexConfig::new(Engine::Native, Metric::L2, dim)).unwrap();
    let t = Instant::now();
    // Batches re-train after the batch, so where the next training falls depends on the
    // batches: build to about the size asked for, then to just below the next training.
    let coded_from = QUANTIZE_FROM_BYTES / (4 * dim);
    let first = (coded_from << doublings) - 20_000;
    build(&index, dim, 0, first, &pool);
    let trained_at = index.codes_trained_at().expect("past the code threshold");
    let retrain_at = 2 * trained_at;
    let base = retrain_at - 500;
    build(&index, dim, first, base, &pool);
    assert_eq!(index.codes_trained_at(), Some(trained_at));
    eprintln!(
        "built {base} x {dim} in {:.1} s; codes trained at {trained_at}, again at {retrain_at} nodes",
        t.elapsed().as_secs_f64()
    );
    let done = AtomicBool::new(false);
    let params = SearchParams { k: 10, ef: 64 };
    let (searches, inserts) = std::thread::scope(|scope| {
        let searcher = scope.spawn(|| {
            let mut times = Vec::new();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                let q = vector(dim, u64::MAX - i);
                i += 1;
                let t = Instant::now();
                index.search(&q, params, None).unwrap();
                times.push(t.elapsed());
            }
            times
        });
        let mut times = Vec::new();
        for i in base..retrain_at + 500 {
            let v = vector(dim, i as u64);
            let t = Instant::now();
            index.insert(RowId(i as u64), &v).unwrap();
            times.push(t.elapsed());
        }
        done.store(true, Ordering::Relaxed);
        (searcher.join().unwrap(), times)
    });
    assert_eq!(
        index.codes_trained_at(),
        Some(retrain_at),
        "the crossing re-trained"
    );
    println!("searches while crossing: {}", summary(searches));
    println!("inserts  while crossing: {}", summary(inserts));
}
