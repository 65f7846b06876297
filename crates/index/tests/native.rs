//! The native HNSW engine against the exact flat engine on seeded clustered data.
//!
//! Sizes are small in debug builds (fast `cargo test`) and the task's 20,000 × 64 in
//! release (`cargo test --release -p quiverdb-index --test native`).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use quiverdb_index::{
    load_snapshot, Engine, FlatIndex, IndexConfig, IndexError, Metric, NativeHnsw, RowFilter,
    RowId, SearchParams, VectorIndex,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const K: usize = 10;

struct Data {
    dim: usize,
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
}

fn sizes() -> (usize, usize, usize) {
    if cfg!(debug_assertions) {
        (4_000, 32, 100)
    } else {
        (20_000, 64, 200)
    }
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A Gaussian mixture: 64 centres, spread 0.15 around each.
fn clustered(n: usize, dim: usize, nq: usize, seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..dim).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let point = |rng: &mut StdRng| -> Vec<f32> {
        let c = &centres[rng.gen_range(0..centres.len())];
        c.iter().map(|x| x + 0.15 * gaussian(rng)).collect()
    };
    let base = (0..n).map(|_| point(&mut rng)).collect();
    let queries = (0..nq).map(|_| point(&mut rng)).collect();
    Data { dim, base, queries }
}

fn data() -> &'static Data {
    static D: OnceLock<Data> = OnceLock::new();
    D.get_or_init(|| {
        let (n, dim, nq) = sizes();
        clustered(n, dim, nq, 42)
    })
}

fn config(engine: Engine, metric: Metric, dim: usize) -> IndexConfig {
    let mut c = IndexConfig::new(engine, metric, dim);
    c.m = 16;
    c.ef_construction = 100;
    c
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn build<I: VectorIndex>(idx: &I, d: &Data, threads: usize) {
    let items: Vec<(RowId, &[f32])> = d
        .base
        .iter()
        .enumerate()
        .map(|(i, v)| (RowId(i as u64), &v[..]))
        .collect();
    idx.insert_batch(&items, &pool(threads)).unwrap();
}

/// The native index and the flat ground truth, built once and shared (read-only).
fn shared() -> &'static (NativeHnsw, FlatIndex) {
    static S: OnceLock<(NativeHnsw, FlatIndex)> = OnceLock::new();
    S.get_or_init(|| {
        let d = data();
        let h = NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap();
        let f = FlatIndex::new(&config(Engine::Flat, Metric::L2, d.dim)).unwrap();
        build(&h, d, 2);
        build(&f, d, 2);
        h.check_integrity().unwrap();
        (h, f)
    })
}

/// Mean recall@10 of `idx` against `truth` over the queries; also checks that every hit
/// passes `allowed`.
fn recall(
    idx: &dyn VectorIndex,
    truth: &dyn VectorIndex,
    queries: &[Vec<f32>],
    ef: usize,
    filter: Option<RowFilter<'_>>,
) -> f64 {
    let p = SearchParams { k: K, ef };
    let (mut hit, mut total) = (0usize, 0usize);
    for q in queries {
        let want: HashSet<RowId> = truth
            .search(q, p, filter)
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        let got = idx.search(q, p, filter).unwrap();
        let ids: HashSet<RowId> = got.iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), got.len(), "duplicate ids in a result");
        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
        for n in &got {
            assert!(idx.contains(n.id), "returned a removed row {}", n.id);
            if let Some(f) = filter {
                assert!(f(n.id), "returned a filtered-out row {}", n.id);
            }
        }
        hit += want.intersection(&ids).count();
        total += want.len();
    }
    hit as f64 / total.max(1) as f64
}

mod recall {
    use super::*;

    #[test]
    fn recall_at_10_ef_64_is_at_least_0_95() {
        let (h, f) = shared();
        let r = recall(h, f, &data().queries, 64, None);
        println!("native recall@10 ef=64: {r:.4}");
        assert!(r >= 0.95, "recall {r}");
    }

    #[test]
    fn filtered_search_at_10_and_1_percent() {
        let (h, f) = shared();
        for (modulus, name) in [(10u64, "10%"), (100, "1%")] {
            let allow = move |id: RowId| {
                id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .is_multiple_of(modulus)
            };
            let r = recall(h, f, &data().queries, 64, Some(&allow));
            println!("native filtered {name} recall@10 ef=64: {r:.4}");
            assert!(r >= 0.95, "{name}: recall {r}");
        }
    }

    #[test]
    fn cosine_and_ip() {
        let d = clustered(2_000, 16, 50, 7);
        for metric in [Metric::Cosine, Metric::Ip] {
            let h = NativeHnsw::new(&config(Engine::Native, metric, d.dim)).unwrap();
            let f = FlatIndex::new(&config(Engine::Flat, metric, d.dim)).unwrap();
            build(&h, &d, 2);
            build(&f, &d, 1);
            let r = recall(&h, &f, &d.queries, 64, None);
            assert!(r >= 0.95, "{metric}: recall {r}");
            h.check_integrity().unwrap();
        }
    }
}

mod deletes {
    use super::*;

    #[test]
    fn thirty_percent_removed_keeps_recall_and_never_returns_them() {
        let d = data();
        let h = NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap();
        let f = FlatIndex::new(&config(Engine::Flat, Metric::L2, d.dim)).unwrap();
        build(&h, d, 2);
        build(&f, d, 1);
        let mut rng = StdRng::seed_from_u64(3);
        let mut removed = 0;
        for i in 0..d.base.len() as u64 {
            if rng.gen_bool(0.3) {
                assert!(h.remove(RowId(i)));
                assert!(f.remove(RowId(i)));
                removed += 1;
            }
        }
        assert_eq!(h.len(), d.base.len() - removed);
        assert_eq!(h.stats().tombstones, removed);
        let r = recall(&h, &f, &d.queries, 64, None);
        println!("native recall@10 ef=64 after 30% removed: {r:.4}");
        assert!(r >= 0.95, "recall {r}");
        h.check_integrity().unwrap();

        // Compaction drops every tombstone and keeps the answers.
        assert_eq!(h.compact(&pool(2)).unwrap(), removed);
        assert!(!h.needs_compaction());
        assert_eq!(h.stats().tombstones, 0);
        assert_eq!(h.len(), d.base.len() - removed);
        h.check_integrity().unwrap();
        let r = recall(&h, &f, &d.queries, 64, None);
        println!("native recall@10 ef=64 after compaction: {r:.4}");
        assert!(r >= 0.95, "recall {r}");
    }

    #[test]
    fn compaction_racing_inserts_and_removes_loses_nothing() {
        compaction_race(None);
    }

    /// The same race on a graph that walks on 8-bit codes: the writer crosses a
    /// re-training of the codes (trained at 1,200 nodes, again at 2,400) while the
    /// compaction rebuilds and swaps the graph.
    #[test]
    fn compaction_racing_inserts_removes_and_code_retraining_loses_nothing() {
        compaction_race(Some(300));
    }

    fn compaction_race(quantize_from: Option<usize>) {
        let d = Arc::new(clustered(3_000, 8, 20, 17));
        let h = Arc::new(NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap());
        if quantize_from.is_some() {
            h.set_quantize_from(quantize_from);
        }
        for i in 0..2_000usize {
            h.insert(RowId(i as u64), &d.base[i]).unwrap();
        }
        for i in (0..2_000u64).step_by(2) {
            h.remove(RowId(i));
        }
        let writer = {
            let (h, d) = (h.clone(), d.clone());
            std::thread::spawn(move || {
                for i in 2_000..d.base.len() {
                    h.insert(RowId(i as u64), &d.base[i]).unwrap();
                    // Remove some old live rows and re-insert one removed id under its
                    // old row id (allowed: it is not live).
                    if i % 4 == 0 {
                        h.remove(RowId((i - 1_999) as u64));
                    }
                    if i % 50 == 0 {
                        let back = ((i - 2_000) * 2) as u64;
                        h.insert(RowId(back), &d.base[back as usize]).unwrap();
                    }
                }
            })
        };
        let searcher = {
            let (h, d) = (h.clone(), d.clone());
            std::thread::spawn(move || {
                for q in d.queries.iter().cycle().take(300) {
                    let hits = h.search(q, SearchParams { k: K, ef: 32 }, None).unwrap();
                    let ids: HashSet<RowId> = hits.iter().map(|n| n.id).collect();
                    assert!(hits.len() <= K && ids.len() == hits.len());
                }
            })
        };
        h.compact(&pool(2)).unwrap();
        writer.join().unwrap();
        searcher.join().unwrap();
        h.check_integrity().unwrap();
        if quantize_from.is_some() {
            assert!(h.is_quantized());
            let st = h.stats();
            let trained_at = h.codes_trained_at().unwrap();
            assert!(
                2 * trained_at > st.live + st.tombstones,
                "a re-training is still due: trained at {trained_at}, {st:?}"
            );
        }
        // The expected membership, replayed sequentially.
        let mut live: HashSet<u64> = (0..2_000u64).filter(|i| i % 2 == 1).collect();
        for i in 2_000..d.base.len() {
            live.insert(i as u64);
            if i % 4 == 0 {
                live.remove(&((i - 1_999) as u64));
            }
            if i % 50 == 0 {
                live.insert(((i - 2_000) * 2) as u64);
            }
        }
        assert_eq!(h.len(), live.len());
        for i in 0..d.base.len() as u64 {
            assert_eq!(h.contains(RowId(i)), live.contains(&i), "row {i}");
        }
        // Every live row is findable by its own vector (HNSW does not promise that every
        // node stays reachable, so allow 1% misses, as in the concurrency test).
        let found = live
            .iter()
            .filter(|&&i| {
                let hit = h
                    .search(&d.base[i as usize], SearchParams { k: 1, ef: 64 }, None)
                    .unwrap();
                hit[0].distance == 0.0
            })
            .count();
        println!(
            "compaction race: {found} of {} rows find themselves",
            live.len()
        );
        assert!(
            found as f64 >= 0.99 * live.len() as f64,
            "{found} of {}",
            live.len()
        );
    }
}

mod concurrency {
    use super::*;

    /// Every row of `d` is findable by its own vector — up to 1 % misses: HNSW does not
    /// promise that every node stays reachable.
    fn assert_most_rows_find_themselves(h: &NativeHnsw, d: &Data) {
        let found = (0..d.base.len())
            .filter(|&i| {
                h.search(&d.base[i], SearchParams { k: 1, ef: 64 }, None)
                    .unwrap()[0]
                    .distance
                    == 0.0
            })
            .count();
        assert!(found as f64 >= 0.99 * d.base.len() as f64, "{found}");
    }

    #[test]
    fn inserts_and_searches_from_several_threads() {
        let d = clustered(3_000, 16, 50, 11);
        let h = Arc::new(NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap());
        let d = Arc::new(d);
        let writers = 3;
        let mut handles = Vec::new();
        for t in 0..writers {
            let (h, d) = (h.clone(), d.clone());
            handles.push(std::thread::spawn(move || {
                for i in (t..d.base.len()).step_by(writers) {
                    h.insert(RowId(i as u64), &d.base[i]).unwrap();
                }
            }));
        }
        for _ in 0..2 {
            let (h, d) = (h.clone(), d.clone());
            handles.push(std::thread::spawn(move || {
                for q in d.queries.iter().cycle().take(400) {
                    let hits = h.search(q, SearchParams { k: K, ef: 32 }, None).unwrap();
                    assert!(hits.len() <= K);
                }
            }));
        }
        for j in handles {
            j.join().unwrap();
        }
        assert_eq!(h.len(), d.base.len());
        h.check_integrity().unwrap();
        assert_most_rows_find_themselves(&h, &d);
    }

    /// Inserts from several threads cross the 8-bit threshold and three doublings (each a
    /// re-training under the write lock) while other threads search: every answer carries
    /// exact distances, in order, and the graph ends whole and walking on codes.
    #[test]
    fn searches_stay_exact_while_inserts_train_and_retrain_codes() {
        let d = Arc::new(clustered(3_000, 16, 50, 19));
        let h = Arc::new(NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap());
        h.set_quantize_from(Some(300));
        let mut handles = Vec::new();
        for t in 0..2 {
            let (h, d) = (h.clone(), d.clone());
            handles.push(std::thread::spawn(move || {
                for i in (t..d.base.len()).step_by(2) {
                    h.insert(RowId(i as u64), &d.base[i]).unwrap();
                }
            }));
        }
        for _ in 0..2 {
            let (h, d) = (h.clone(), d.clone());
            handles.push(std::thread::spawn(move || {
                for q in d.queries.iter().cycle().take(600) {
                    let hits = h.search(q, SearchParams { k: K, ef: 32 }, None).unwrap();
                    for (j, n) in hits.iter().enumerate() {
                        let exact =
                            quiverdb_index::kernels::l2_squared(q, &d.base[n.id.0 as usize]);
                        assert_eq!(n.distance, exact, "hit {j} of a search");
                        assert!(j == 0 || hits[j - 1].distance <= n.distance);
                    }
                }
            }));
        }
        for j in handles {
            j.join().unwrap();
        }
        assert!(h.is_quantized());
        h.check_integrity().unwrap();
        assert_most_rows_find_themselves(&h, &d);
    }

    #[test]
    fn snapshots_taken_during_inserts_and_removes_are_consistent() {
        let d = Arc::new(clustered(2_000, 8, 1, 13));
        let h = Arc::new(NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap());
        let writer = {
            let (h, d) = (h.clone(), d.clone());
            std::thread::spawn(move || {
                let items: Vec<(RowId, &[f32])> = d.base[..1_000]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (RowId(i as u64), &v[..]))
                    .collect();
                h.insert_batch(&items, &pool(2)).unwrap();
                for i in 1_000..d.base.len() {
                    h.insert(RowId(i as u64), &d.base[i]).unwrap();
                    if i % 3 == 0 {
                        h.remove(RowId((i - 500) as u64));
                    }
                }
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let mut seq = 0;
        while !writer.is_finished() || seq < 3 {
            seq += 1;
            h.save_snapshot(dir.path(), seq).unwrap();
            let (g, s) = NativeHnsw::load(dir.path()).unwrap();
            assert_eq!(s, seq);
            g.check_integrity().unwrap();
        }
        writer.join().unwrap();
        h.check_integrity().unwrap();
    }

    #[test]
    fn same_seed_same_graph() {
        let d = clustered(1_500, 16, 30, 5);
        let run = || {
            let h = NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap();
            build(&h, &d, 1);
            d.queries
                .iter()
                .map(|q| h.search(q, SearchParams { k: K, ef: 16 }, None).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}

mod snapshots {
    use super::*;

    #[test]
    fn round_trip_gives_identical_answers() {
        let (h, _) = shared();
        let dir = tempfile::tempdir().unwrap();
        h.save_snapshot(dir.path(), 9).unwrap();
        let (g, seq) = NativeHnsw::load(dir.path()).unwrap();
        assert_eq!(seq, 9);
        g.check_integrity().unwrap();
        assert_eq!(g.stats(), h.stats());
        let p = SearchParams { k: K, ef: 64 };
        for q in &data().queries {
            assert_eq!(g.search(q, p, None).unwrap(), h.search(q, p, None).unwrap());
        }
        let (dynamic, seq) = load_snapshot(dir.path()).unwrap().unwrap();
        assert_eq!((dynamic.len(), seq), (h.len(), 9));
        // A newer snapshot replaces the older data file.
        g.remove(RowId(1));
        g.save_snapshot(dir.path(), 10).unwrap();
        let (g2, seq) = NativeHnsw::load(dir.path()).unwrap();
        assert_eq!(seq, 10);
        assert!(!g2.contains(RowId(1)));
        g2.check_integrity().unwrap();
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "MANIFEST and one data file");
    }

    #[test]
    fn corruption_is_an_error_not_a_panic() {
        let d = clustered(300, 8, 1, 1);
        let h = NativeHnsw::new(&config(Engine::Native, Metric::L2, d.dim)).unwrap();
        build(&h, &d, 1);
        let dir = tempfile::tempdir().unwrap();
        h.save_snapshot(dir.path(), 1).unwrap();
        let data_path = dir.path().join("native-hnsw-1.bin");
        let manifest_path = dir.path().join("MANIFEST");
        let good = std::fs::read(&data_path).unwrap();
        let good_manifest = std::fs::read(&manifest_path).unwrap();
        let is_snapshot_err =
            |r: Result<_, IndexError>| matches!(r, Err(IndexError::Snapshot { .. }));

        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        std::fs::write(&data_path, &flipped).unwrap();
        assert!(is_snapshot_err(load_snapshot(dir.path()).map(|_| ())));

        std::fs::write(&data_path, &good[..good.len() - 7]).unwrap();
        assert!(is_snapshot_err(load_snapshot(dir.path()).map(|_| ())));

        std::fs::remove_file(&data_path).unwrap();
        assert!(is_snapshot_err(load_snapshot(dir.path()).map(|_| ())));
        std::fs::write(&data_path, &good).unwrap();
        assert!(load_snapshot(dir.path()).unwrap().is_some());

        let mut wrong_version = good_manifest.clone();
        wrong_version[8] = 99;
        std::fs::write(&manifest_path, &wrong_version).unwrap();
        assert!(is_snapshot_err(load_snapshot(dir.path()).map(|_| ())));

        for cut in [0, 5, 20, good_manifest.len() - 1] {
            std::fs::write(&manifest_path, &good_manifest[..cut]).unwrap();
            assert!(
                is_snapshot_err(load_snapshot(dir.path()).map(|_| ())),
                "cut {cut}"
            );
        }
        // Every single-byte corruption of the manifest is caught.
        for i in 0..good_manifest.len() {
            let mut m = good_manifest.clone();
            m[i] ^= 0x01;
            std::fs::write(&manifest_path, &m).unwrap();
            assert!(load_snapshot(dir.path()).is_err(), "byte {i}");
        }
    }
}
