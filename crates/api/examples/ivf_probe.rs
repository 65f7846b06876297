//! A feasibility probe, not an engine: would an inverted-file index (IVF) keep searches over
//! 1,000,000 documents within 3× the 1,000-document time (issue 6's flatness target), where
//! graph walks stay at 7–9× (`docs/BENCHMARKS.md`)?
//!
//! It embeds `search_scaling`'s documents (the demo's texts with `frac(i * golden ratio)`
//! as the random part), clusters a sample with k-means, assigns every vector to its
//! nearest centroid, and then answers `search_scaling`'s queries (`test document {i % 50}`)
//! by scanning the `nprobe` nearest lists exactly (full f32 vectors: an upper bound on what
//! compressed codes would find). It prints recall@3 against brute force and the time per
//! query of each step. Nothing here is used by the store.
//!
//! ```text
//! cargo run --release -p quiverdb --example ivf_probe -- [N] [LISTS] [ROUNDS] [golden|random]
//! ```
//! Defaults: 1,000,000 documents, 1,024 lists, 8 k-means rounds (0: the lists are the
//! Voronoi cells of sampled documents), `search_scaling`'s texts (`random`: a uniform draw
//! per document, as the demo's).

use std::time::Instant;

use rayon::prelude::*;

use quiverdb::HashingEmbeddings;

const DIM: usize = 384;

/// Document `i`'s text: `search_scaling`'s (`frac(i * golden ratio)`), or with `random`
/// a uniform draw per document (splitmix64), like the demo's `StdRng` draws.
fn text(i: usize, random: bool) -> String {
    let r = if random {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) >> 11
    } else {
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11
    };
    format!(
        "This is test document {i} with some random content: {}",
        r as f64 / (1u64 << 53) as f64
    )
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums, so the loop vectorizes.
    let mut acc = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    acc.iter().sum()
}

fn row(data: &[f32], i: usize) -> &[f32] {
    &data[i * DIM..(i + 1) * DIM]
}

fn nearest(centroids: &[f32], v: &[f32]) -> usize {
    (0..centroids.len() / DIM)
        .map(|c| (l2(row(centroids, c), v), c))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0, |(_, c)| c)
}

/// The `k` smallest `(distance, id)` pairs, best first.
fn top_k(mut d: Vec<(f32, usize)>, k: usize) -> Vec<(f32, usize)> {
    let k = k.min(d.len());
    if k == 0 {
        return Vec::new();
    }
    d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    d.truncate(k);
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let lists: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let random = args.next().is_some_and(|a| a == "random");
    let emb = HashingEmbeddings::new(DIM);

    let t = Instant::now();
    let data: Vec<f32> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| emb.embed(&text(i, random)))
        .collect();
    eprintln!(
        "embedded {n} documents in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // k-means on a sample: deterministic start (every `step`-th vector), 8 rounds.
    let t = Instant::now();
    let sample_n = (lists * 32).min(n);
    let step = n / sample_n;
    let sample: Vec<f32> = (0..sample_n)
        .flat_map(|s| row(&data, s * step).to_vec())
        .collect();
    let cstep = sample_n / lists;
    let mut centroids: Vec<f32> = (0..lists)
        .flat_map(|c| row(&sample, c * cstep).to_vec())
        .collect();
    for _ in 0..rounds {
        let assign: Vec<usize> = (0..sample_n)
            .into_par_iter()
            .map(|s| nearest(&centroids, row(&sample, s)))
            .collect();
        let mut sums = vec![0f64; lists * DIM];
        let mut counts = vec![0usize; lists];
        for (s, &c) in assign.iter().enumerate() {
            counts[c] += 1;
            for (acc, x) in sums[c * DIM..(c + 1) * DIM].iter_mut().zip(row(&sample, s)) {
                *acc += f64::from(*x);
            }
        }
        for c in 0..lists {
            if counts[c] > 0 {
                for d in 0..DIM {
                    centroids[c * DIM + d] = (sums[c * DIM + d] / counts[c] as f64) as f32;
                }
            }
        }
    }
    eprintln!(
        "k-means ({lists} lists, {sample_n} samples, {rounds} rounds) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let assign: Vec<usize> = (0..n)
        .into_par_iter()
        .map(|i| nearest(&centroids, row(&data, i)))
        .collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); lists];
    for (i, &c) in assign.iter().enumerate() {
        members[c].push(i);
    }
    // Each list's vectors contiguous, as an engine would keep them.
    let list_vectors: Vec<Vec<f32>> = members
        .iter()
        .map(|m| m.iter().flat_map(|&i| row(&data, i).to_vec()).collect())
        .collect();
    let mut sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    sizes.sort_unstable();
    eprintln!(
        "assigned in {:.1} s; list sizes: min {} median {} p99 {} max {}",
        t.elapsed().as_secs_f64(),
        sizes[0],
        sizes[lists / 2],
        sizes[lists * 99 / 100],
        sizes[lists - 1]
    );

    let queries: Vec<Vec<f32>> = (0..100)
        .map(|i| emb.embed(&format!("test document {}", i % 50)))
        .collect();
    let truth: Vec<Vec<usize>> = queries
        .par_iter()
        .map(|q| {
            let d = (0..n).map(|i| (l2(row(&data, i), q), i)).collect();
            top_k(d, 3).into_iter().map(|(_, i)| i).collect()
        })
        .collect();

    for nprobe in [1usize, 2, 4, 8, 16, 32] {
        let (mut hits, mut scanned) = (0usize, 0usize);
        let (mut t_centroids, mut t_lists) = (0f64, 0f64);
        for (q, want) in queries.iter().zip(&truth) {
            let t = Instant::now();
            let probes: Vec<usize> = top_k(
                (0..lists).map(|c| (l2(row(&centroids, c), q), c)).collect(),
                nprobe,
            )
            .into_iter()
            .map(|(_, c)| c)
            .collect();
            t_centroids += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut cand = Vec::new();
            for &c in &probes {
                for (j, &id) in members[c].iter().enumerate() {
                    cand.push((l2(row(&list_vectors[c], j), q), id));
                }
            }
            scanned += cand.len();
            let got = top_k(cand, 3);
            t_lists += t.elapsed().as_secs_f64();
            hits += got.iter().filter(|(_, id)| want.contains(id)).count();
        }
        println!(
            "{{\"docs\":{n},\"lists\":{lists},\"nprobe\":{nprobe},\"recall_at_3\":{:.3},\"vectors_scanned\":{},\"us_centroids\":{:.1},\"us_lists\":{:.1}}}",
            hits as f64 / (3 * queries.len()) as f64,
            scanned / queries.len(),
            t_centroids * 1e6 / queries.len() as f64,
            t_lists * 1e6 / queries.len() as f64
        );
    }
}
