//! The hnsw_rs engine through the `VectorIndex` trait: recall against brute force,
//! tombstones, filters, compaction, snapshots (round trip and corruption), bad configs.

use std::collections::HashSet;

use quiverdb_index::hnsw_rs_engine::HnswRsIndex;
use quiverdb_index::{
    kernels, Engine, IndexConfig, IndexError, Metric, RowId, SearchParams, VectorIndex,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DIM: usize = 16;

/// Seeded clustered data: `n` vectors around 20 centres.
fn data(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-5.0..5.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|c| c + rng.gen_range(-1.0..1.0))
                .collect()
        })
        .collect()
}

fn config(metric: Metric) -> IndexConfig {
    let mut c = IndexConfig::new(Engine::HnswRs, metric, DIM);
    c.m = 12;
    c.ef_construction = 64;
    c
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

fn build(metric: Metric, vectors: &[Vec<f32>]) -> HnswRsIndex {
    let idx = HnswRsIndex::new(&config(metric)).unwrap();
    let items: Vec<(RowId, &[f32])> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (RowId(i as u64), v.as_slice()))
        .collect();
    idx.insert_batch(&items, &pool()).unwrap();
    idx
}

/// Exact top-k among rows accepted by `keep`.
fn brute(
    metric: Metric,
    vectors: &[Vec<f32>],
    q: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<RowId> {
    let norm = |v: &[f32]| {
        let mut v = v.to_vec();
        if metric == Metric::Cosine {
            kernels::normalize(&mut v);
        }
        v
    };
    let q = norm(q);
    let mut d: Vec<(f32, usize)> = (0..vectors.len())
        .filter(|&i| keep(i))
        .map(|i| (kernels::distance(metric, &q, &norm(&vectors[i])), i))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter()
        .take(k)
        .map(|(_, i)| RowId(i as u64))
        .collect()
}

fn recall(got: &[RowId], truth: &[RowId]) -> f64 {
    let t: HashSet<_> = truth.iter().collect();
    got.iter().filter(|g| t.contains(g)).count() as f64 / truth.len().max(1) as f64
}

const P: SearchParams = SearchParams { k: 10, ef: 64 };

mod recall_scenarios {
    use super::*;

    #[test]
    fn recall_at_10_beats_0_9_for_l2_and_cosine() {
        for metric in [Metric::L2, Metric::Cosine] {
            // Queries from the same mixture as the data, held out of the index.
            let mut vectors = data(2_040, 1);
            let queries = vectors.split_off(2_000);
            let idx = build(metric, &vectors);
            assert_eq!(idx.len(), 2_000);
            let mut total = 0.0;
            for q in &queries {
                let got: Vec<RowId> = idx
                    .search(q, P, None)
                    .unwrap()
                    .iter()
                    .map(|n| n.id)
                    .collect();
                total += recall(&got, &brute(metric, &vectors, q, 10, |_| true));
            }
            let r = total / queries.len() as f64;
            eprintln!("{metric:?} recall@10 = {r}");
            assert!(r >= 0.9, "{metric:?} recall@10 = {r}");
            idx.check_integrity().unwrap();
        }
    }

    #[test]
    fn results_are_sorted_unique_and_stored_vectors_are_normalized() {
        let vectors = data(300, 3);
        let idx = build(Metric::Cosine, &vectors);
        let hits = idx.search(&vectors[7], P, None).unwrap();
        // (Among the hits, not necessarily first: a graph built by parallel inserts may,
        // rarely, leave a node that a walk reaches late.)
        assert!(hits.iter().any(|h| h.id == RowId(7)), "{hits:?}");
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
        let ids: HashSet<_> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids.len(), hits.len());
        let v = idx.vector(RowId(7)).unwrap();
        assert!((kernels::dot(&v, &v) - 1.0).abs() < 1e-5);
        assert!(idx
            .search(&vectors[0], SearchParams { k: 0, ef: 8 }, None)
            .unwrap()
            .is_empty());
    }
}

mod tombstones_and_filters {
    use super::*;

    #[test]
    fn deleted_rows_are_never_returned() {
        let vectors = data(1_500, 4);
        let idx = build(Metric::L2, &vectors);
        let dead: HashSet<usize> = (0..1_500).filter(|i| i % 3 == 0).collect();
        for &i in &dead {
            assert!(idx.remove(RowId(i as u64)));
        }
        assert!(!idx.remove(RowId(0)));
        assert_eq!(idx.len(), 1_000);
        assert_eq!(idx.stats().tombstones, 500);
        let mut total = 0.0;
        for q in vectors.iter().step_by(50) {
            let got: Vec<RowId> = idx
                .search(q, P, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            assert_eq!(got.len(), 10);
            assert!(
                got.iter().all(|id| !dead.contains(&(id.0 as usize))),
                "{got:?}"
            );
            total += recall(
                &got,
                &brute(Metric::L2, &vectors, q, 10, |i| !dead.contains(&i)),
            );
        }
        assert!(total / 30.0 >= 0.9, "recall after deletes {}", total / 30.0);
        assert!(idx.vector(RowId(0)).is_none() && !idx.contains(RowId(0)));
    }

    #[test]
    fn filtered_search_returns_only_allowed_rows() {
        let vectors = data(1_000, 5);
        let idx = build(Metric::L2, &vectors);
        idx.remove(RowId(2));
        let allow = |id: RowId| id.0 % 4 == 2;
        let hits = idx.search(&vectors[2], P, Some(&allow)).unwrap();
        assert!(!hits.is_empty());
        assert!(
            hits.iter().all(|h| allow(h.id) && h.id != RowId(2)),
            "{hits:?}"
        );
        let none = |_: RowId| false;
        assert!(idx.search(&vectors[2], P, Some(&none)).unwrap().is_empty());
        let among = idx
            .search_among(
                &vectors[6],
                3,
                &[RowId(6), RowId(2), RowId(10), RowId(99_999)],
            )
            .unwrap();
        assert_eq!(
            among.iter().map(|n| n.id).collect::<Vec<_>>(),
            vec![RowId(6), RowId(10)]
        );
    }

    #[test]
    fn compaction_drops_tombstones_and_keeps_answers() {
        let vectors = data(1_500, 6);
        let idx = build(Metric::L2, &vectors);
        for i in (0..1_500).filter(|i| i % 2 == 0) {
            idx.remove(RowId(i as u64));
        }
        assert!(idx.needs_compaction());
        assert!(idx.compact(&pool()).unwrap());
        idx.check_integrity().unwrap();
        assert_eq!(idx.stats().tombstones, 0);
        assert_eq!(idx.len(), 750);
        assert!(!idx.compact(&pool()).unwrap());
        let mut total = 0.0;
        for q in vectors.iter().step_by(50) {
            let got: Vec<RowId> = idx
                .search(q, P, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            assert!(got.iter().all(|id| id.0 % 2 == 1));
            total += recall(&got, &brute(Metric::L2, &vectors, q, 10, |i| i % 2 == 1));
        }
        assert!(total / 30.0 >= 0.9);
        // Inserts after the swap land in the new graph.
        idx.insert(RowId(5_000), &vectors[0]).unwrap();
        let hits = idx.search(&vectors[0], P, None).unwrap();
        assert!(hits.iter().any(|h| h.id == RowId(5_000)), "{hits:?}");
    }

    #[test]
    fn searches_run_while_inserting() {
        let vectors = data(1_000, 7);
        let idx = build(Metric::L2, &vectors[..500]);
        std::thread::scope(|s| {
            s.spawn(|| {
                for (i, v) in vectors.iter().enumerate().skip(500) {
                    idx.insert(RowId(i as u64), v).unwrap();
                }
            });
            for q in vectors.iter().take(200) {
                assert!(!idx.search(q, P, None).unwrap().is_empty());
            }
        });
        assert_eq!(idx.len(), 1_000);
        idx.check_integrity().unwrap();
    }
}

mod snapshots {
    use super::*;

    #[test]
    fn round_trip_keeps_rows_tombstones_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let vectors = data(800, 8);
        let idx = build(Metric::Cosine, &vectors);
        idx.remove(RowId(3));
        idx.save_snapshot(dir.path(), 42).unwrap();
        let (back, seq) = HnswRsIndex::load(dir.path()).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(back.len(), 799);
        assert!(!back.contains(RowId(3)));
        assert_eq!(back.vector(RowId(5)), idx.vector(RowId(5)));
        for q in vectors.iter().step_by(40) {
            let a: Vec<RowId> = idx
                .search(q, P, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            let b: Vec<RowId> = back
                .search(q, P, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            assert!(recall(&b, &a) >= 0.9, "{a:?} vs {b:?}");
        }
        // A reloaded index keeps working and saves again (hnsw_rs renames dumps after a
        // reload; the manifest records the name actually used).
        back.insert(RowId(10_000), &vectors[1]).unwrap();
        back.save_snapshot(dir.path(), 43).unwrap();
        let (again, seq) = HnswRsIndex::load(dir.path()).unwrap();
        assert_eq!((seq, again.len()), (43, 800));
        again.check_integrity().unwrap();
        let gens = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("gen-")
        });
        assert_eq!(gens.count(), 1, "old generations are removed");
    }

    #[test]
    fn empty_index_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let idx = HnswRsIndex::new(&config(Metric::L2)).unwrap();
        idx.save_snapshot(dir.path(), 7).unwrap();
        let (back, seq) = HnswRsIndex::load(dir.path()).unwrap();
        assert_eq!((seq, back.len()), (7, 0));
        assert!(back.search(&[0.0; DIM], P, None).unwrap().is_empty());
        back.insert(RowId(1), &[1.0; DIM]).unwrap();
        assert_eq!(back.search(&[0.0; DIM], P, None).unwrap()[0].id, RowId(1));
    }

    fn saved(dir: &std::path::Path) {
        build(Metric::L2, &data(300, 9))
            .save_snapshot(dir, 1)
            .unwrap();
    }

    fn gen_file(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
        let gen = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("gen-"))
            .unwrap();
        std::fs::read_dir(gen)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap()
    }

    fn assert_snapshot_error(dir: &std::path::Path) {
        match HnswRsIndex::load(dir) {
            Err(IndexError::Snapshot { .. }) => {}
            other => panic!("expected a snapshot error, got {other:?}"),
        }
    }

    #[test]
    fn corrupted_files_are_errors_not_panics() {
        for victim in ["hnsw.graph", "hnsw.data", "rows.bin", "MANIFEST"] {
            let dir = tempfile::tempdir().unwrap();
            saved(dir.path());
            let path = if victim == "MANIFEST" {
                dir.path().join("MANIFEST")
            } else {
                gen_file(dir.path(), victim)
            };
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            std::fs::write(&path, &bytes).unwrap();
            assert_snapshot_error(dir.path());
            // Truncated too.
            std::fs::write(&path, &bytes[..mid]).unwrap();
            assert_snapshot_error(dir.path());
        }
        let dir = tempfile::tempdir().unwrap();
        assert_snapshot_error(dir.path());
        saved(dir.path());
        std::fs::remove_file(gen_file(dir.path(), "hnsw.data")).unwrap();
        assert_snapshot_error(dir.path());
    }
}

mod configs {
    use super::*;

    #[test]
    fn bad_configs_are_errors_not_exits() {
        let mut c = config(Metric::L2);
        c.m = 300; // hnsw_rs would exit(1) above 256
        assert!(matches!(
            HnswRsIndex::new(&c),
            Err(IndexError::InvalidParameter(_))
        ));
        let mut c = config(Metric::L2);
        c.dim = 0;
        assert!(HnswRsIndex::new(&c).is_err());
        let mut c = config(Metric::L2);
        c.ef_construction = 1;
        assert!(HnswRsIndex::new(&c).is_err());
        let e = HnswRsIndex::new(&config(Metric::Ip)).unwrap_err();
        assert!(e.to_string().contains("IP"), "{e}");
    }
}

mod model {
    use super::*;
    use std::collections::BTreeMap;

    /// Random inserts, batch inserts, removes, compactions and snapshot reloads checked
    /// against a plain map: `len`, `contains`, `vector`, exact `search_among`, and that a
    /// search never returns a removed row.
    #[test]
    fn random_operations_agree_with_a_plain_map() {
        for seed in [1u64, 2] {
            let mut rng = StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let pool = pool();
            let mut idx = HnswRsIndex::new(&config(Metric::L2)).unwrap();
            let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
            let mut next = 0u64;
            let pool_of_vectors = data(3_000, seed + 10);
            let take = |rng: &mut StdRng| pool_of_vectors[rng.gen_range(0..3_000)].clone();
            for step in 0..60 {
                match rng.gen_range(0..10) {
                    0..=2 => {
                        let n = rng.gen_range(1..60);
                        let batch: Vec<(RowId, Vec<f32>)> =
                            (0..n).map(|i| (RowId(next + i), take(&mut rng))).collect();
                        next += n;
                        let items: Vec<(RowId, &[f32])> =
                            batch.iter().map(|(id, v)| (*id, v.as_slice())).collect();
                        idx.insert_batch(&items, &pool).unwrap();
                        model.extend(batch.into_iter().map(|(id, v)| (id.0, v)));
                    }
                    3..=4 => {
                        let v = take(&mut rng);
                        idx.insert(RowId(next), &v).unwrap();
                        model.insert(next, v);
                        next += 1;
                    }
                    5..=7 => {
                        for _ in 0..rng.gen_range(1..20) {
                            let id = rng.gen_range(0..next.max(1));
                            assert_eq!(idx.remove(RowId(id)), model.remove(&id).is_some());
                        }
                    }
                    8 => {
                        idx.compact(&pool).unwrap();
                    }
                    _ => {
                        idx.save_snapshot(dir.path(), step).unwrap();
                        let (back, seq) = HnswRsIndex::load(dir.path()).unwrap();
                        assert_eq!(seq, step);
                        idx = back;
                    }
                }
                idx.check_integrity().unwrap();
                assert_eq!(idx.len(), model.len(), "step {step}");
                let q = take(&mut rng);
                let hits = idx.search(&q, P, None).unwrap();
                assert_eq!(hits.len(), 10.min(model.len()));
                assert!(hits.iter().all(|h| model.contains_key(&h.id.0)));
                let probe: Vec<RowId> = (0..next).step_by(3).map(RowId).collect();
                let exact: Vec<RowId> = idx
                    .search_among(&q, 5, &probe)
                    .unwrap()
                    .iter()
                    .map(|n| n.id)
                    .collect();
                let mut truth: Vec<(f32, u64)> = probe
                    .iter()
                    .filter_map(|id| Some((kernels::l2_squared(&q, model.get(&id.0)?), id.0)))
                    .collect();
                truth.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let truth: Vec<RowId> = truth.iter().take(5).map(|t| RowId(t.1)).collect();
                assert_eq!(exact, truth, "step {step}");
                for id in (0..next).step_by(7) {
                    assert_eq!(idx.vector(RowId(id)).as_ref(), model.get(&id), "row {id}");
                    assert_eq!(idx.contains(RowId(id)), model.contains_key(&id));
                }
            }
        }
    }

    #[test]
    fn searches_keep_working_while_a_compaction_swaps_the_graph() {
        let vectors = data(1_500, 12);
        let idx = build(Metric::L2, &vectors);
        for i in (0..1_500u64).filter(|i| i % 2 == 0) {
            idx.remove(RowId(i));
        }
        std::thread::scope(|s| {
            let searcher = s.spawn(|| {
                let mut n = 0;
                for q in vectors.iter().cycle().take(400) {
                    let hits = idx.search(q, P, None).unwrap();
                    assert!(hits.iter().all(|h| h.id.0 % 2 == 1), "{hits:?}");
                    n += hits.len();
                }
                n
            });
            assert!(idx.compact(&pool()).unwrap());
            assert!(searcher.join().unwrap() > 0);
        });
        assert_eq!(idx.stats().tombstones, 0);
    }

    #[test]
    fn insert_batch_compacts_once_tombstones_pass_the_threshold() {
        let vectors = data(1_500, 13);
        let idx = build(Metric::L2, &vectors);
        for i in 0..600u64 {
            idx.remove(RowId(i));
        }
        assert!(idx.needs_compaction());
        let extra = [(RowId(10_000), vectors[0].as_slice())];
        idx.insert_batch(&extra, &pool()).unwrap();
        assert_eq!(idx.stats().tombstones, 0);
        assert_eq!(idx.len(), 901);
        assert!(idx.contains(RowId(10_000)) && !idx.contains(RowId(0)));
        idx.check_integrity().unwrap();
    }
}
