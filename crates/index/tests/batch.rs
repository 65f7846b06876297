//! `VectorIndex::search_batch` answers every query exactly as `search` does, on every engine.

use quiverdb_index::{new_index, Engine, IndexConfig, Metric, RowId, SearchParams};
use rand::{Rng, SeedableRng};

#[test]
fn search_batch_equals_search_per_query_on_every_engine() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut vector =
        |dim: usize| -> Vec<f32> { (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let dim = 40;
    let rows: Vec<Vec<f32>> = (0..3_000).map(|_| vector(dim)).collect();
    let queries: Vec<Vec<f32>> = (0..9).map(|_| vector(dim)).collect();
    let bad = vec![0.5; dim - 1];
    for engine in [Engine::Native, Engine::HnswRs, Engine::Flat] {
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            if engine == Engine::HnswRs && metric == Metric::Ip {
                continue; // hnsw_rs does not support IP (a typed error at creation)
            }
            // 500 rows: the native engine scans; 3,000: it walks.
            for n in [500, 3_000] {
                let mut config = IndexConfig::new(engine, metric, dim);
                config.ef_construction = 40;
                let index = new_index(&config).unwrap();
                let items: Vec<(RowId, &[f32])> = rows[..n]
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (RowId(i as u64), v.as_slice()))
                    .collect();
                index.insert_batch(&items, &pool).unwrap();
                for i in (0..n as u64).step_by(9) {
                    index.remove(RowId(i));
                }
                let params = SearchParams { k: 6, ef: 24 };
                for size in 1..=queries.len() {
                    let mut batch: Vec<&[f32]> =
                        queries[..size].iter().map(Vec::as_slice).collect();
                    batch.insert(size / 2, &bad);
                    let answers = index.search_batch(&batch, params);
                    assert_eq!(answers.len(), batch.len());
                    for (q, answer) in batch.iter().zip(answers) {
                        let what = format!("{engine:?} {metric:?} n={n} batch of {size}");
                        match index.search(q, params, None) {
                            Ok(alone) => {
                                assert_eq!(alone.len(), 6, "{what}");
                                assert_eq!(answer.unwrap(), alone, "{what}");
                            }
                            Err(e) => {
                                assert_eq!(answer.unwrap_err().to_string(), e.to_string(), "{what}")
                            }
                        }
                    }
                }
            }
        }
    }
}
