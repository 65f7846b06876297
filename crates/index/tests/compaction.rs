//! `VectorIndex::compact_if_needed` through the trait, for every engine.

use quiverdb_index::{new_index, Engine, IndexConfig, Metric, RowId, SearchParams};
use rand::{Rng, SeedableRng};

#[test]
fn compaction_frees_tombstones_past_the_threshold_and_keeps_answers() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let vectors: Vec<Vec<f32>> = (0..1500)
        .map(|_| (0..8).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    for engine in [Engine::Native, Engine::HnswRs, Engine::Flat] {
        let mut config = IndexConfig::new(engine, Metric::L2, 8);
        config.ef_construction = 40;
        let index = new_index(&config).unwrap();
        let items: Vec<(RowId, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (RowId(i as u64), v.as_slice()))
            .collect();
        index.insert_batch(&items, &pool).unwrap();
        // 5% removed: below every engine's threshold (the native engine repairs from 10%,
        // see its unit tests, and compacts from 30% like hnsw_rs).
        for i in 0..75 {
            index.remove(RowId(i));
        }
        assert!(!index.compact_if_needed(&pool).unwrap(), "{engine:?}");
        // 40% removed: past it (except for the flat engine, which holds no tombstones).
        for i in 75..600 {
            index.remove(RowId(i));
        }
        let compacted = index.compact_if_needed(&pool).unwrap();
        assert_eq!(compacted, engine != Engine::Flat, "{engine:?}");
        let stats = index.stats();
        assert_eq!(stats.live, 900, "{engine:?}");
        assert_eq!(stats.tombstones, 0, "{engine:?} after compaction");
        // Every live row is still found by its own vector; no removed row comes back.
        for i in (600..1500).step_by(37) {
            let hits = index
                .search(&vectors[i], SearchParams { k: 5, ef: 64 }, None)
                .unwrap();
            assert_eq!(hits[0].id, RowId(i as u64), "{engine:?}");
            assert!(hits.iter().all(|h| h.id.0 >= 600), "{engine:?}");
        }
    }
}
