//! MMR on hand-built vectors with known pick orders (and against a plain re-statement of
//! LangChain's loop), and every branch of the filter-aware planner.

use std::collections::HashSet;
use std::path::Path;

use quiverdb_index::hnsw_rs_engine::HnswRsIndex;
use quiverdb_index::mmr::maximal_marginal_relevance;
use quiverdb_index::planner::{self, AllowSet, Strategy};
use quiverdb_index::{
    kernels, Engine, IndexConfig, IndexError, IndexStats, Metric, Neighbor, RowFilter, RowId,
    SearchParams, VectorIndex,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod mmr {
    use super::*;

    fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
        v.iter().map(Vec::as_slice).collect()
    }

    /// LangChain's loop, restated in f64 with full recomputation each round.
    fn reference(q: &[f32], c: &[Vec<f32>], k: usize, lambda: f64) -> Vec<usize> {
        let cos = |a: &[f32], b: &[f32]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let s = dot / (na * nb);
            if s.is_finite() {
                s
            } else {
                0.0
            }
        };
        let want = k.min(c.len());
        if want == 0 {
            return vec![];
        }
        let sim_q: Vec<f64> = c.iter().map(|v| cos(q, v)).collect();
        let mut first = 0;
        for i in 0..c.len() {
            if sim_q[i] > sim_q[first] {
                first = i;
            }
        }
        let mut idxs = vec![first];
        while idxs.len() < want {
            let (mut best, mut pick) = (f64::NEG_INFINITY, usize::MAX);
            for i in 0..c.len() {
                if idxs.contains(&i) {
                    continue;
                }
                let red = idxs
                    .iter()
                    .map(|&j| cos(&c[i], &c[j]))
                    .fold(f64::NEG_INFINITY, f64::max);
                let s = lambda * sim_q[i] - (1.0 - lambda) * red;
                if s > best {
                    best = s;
                    pick = i;
                }
            }
            idxs.push(pick);
        }
        idxs
    }

    #[test]
    fn lambda_one_is_relevance_order() {
        let q = vec![1.0, 0.0];
        let c = vec![
            vec![0.0, 1.0],
            vec![1.0, 0.1],
            vec![1.0, 0.5],
            vec![1.0, 0.0],
        ];
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c), 4, 1.0),
            vec![3, 1, 2, 0]
        );
    }

    #[test]
    fn lambda_zero_is_maximum_diversity() {
        let q = vec![1.0, 0.0];
        // 0: the query direction, 1: a near duplicate of 0, 2: orthogonal, 3: opposite.
        let c = vec![
            vec![1.0, 0.0],
            vec![0.99, 0.05],
            vec![0.0, 1.0],
            vec![-1.0, 0.0],
        ];
        // First pick is always argmax sim_q; then the one least similar to the picked set.
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c), 2, 0.0),
            vec![0, 3]
        );
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c), 4, 0.0)[..2],
            [0, 3]
        );
        // A relevance-leaning lambda still passes over the near duplicate.
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c[..3]), 2, 0.3),
            vec![0, 2]
        );
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        let q = vec![1.0, 0.0];
        let c = vec![
            vec![0.0, 1.0],
            vec![2.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, -1.0],
        ];
        // 1 and 2 tie on sim_q (first pick: 1); 0 and 3 tie later.
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c), 4, 1.0),
            vec![1, 2, 0, 3]
        );
    }

    #[test]
    fn k_larger_than_n_and_zero_norm_rows() {
        let q = vec![1.0, 1.0];
        let c = vec![vec![0.0, 0.0], vec![1.0, 1.0]];
        assert_eq!(
            maximal_marginal_relevance(&q, &refs(&c), 10, 0.5),
            vec![1, 0]
        );
        assert!(maximal_marginal_relevance(&q, &refs(&c), 0, 0.5).is_empty());
        let zero_q = vec![0.0, 0.0];
        assert_eq!(
            maximal_marginal_relevance(&zero_q, &refs(&c), 1, 0.5),
            vec![0]
        );
    }

    #[test]
    fn matches_the_reference_loop_on_random_vectors() {
        let mut rng = StdRng::seed_from_u64(11);
        for round in 0..40 {
            let dim = rng.gen_range(2..12);
            let n = rng.gen_range(1..30);
            let c: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
                .collect();
            let q: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let k = rng.gen_range(0..n + 3);
            let lambda = [0.0, 0.25, 0.5, 0.75, 1.0][round % 5];
            assert_eq!(
                maximal_marginal_relevance(&q, &refs(&c), k, lambda as f32),
                reference(&q, &c, k, lambda),
                "round {round}"
            );
        }
    }
}

const DIM: usize = 8;

fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect()
}

fn hnsw(vs: &[Vec<f32>]) -> HnswRsIndex {
    let mut c = IndexConfig::new(Engine::HnswRs, Metric::L2, DIM);
    c.m = 12;
    c.ef_construction = 64;
    let idx = HnswRsIndex::new(&c).unwrap();
    let items: Vec<(RowId, &[f32])> = vs
        .iter()
        .enumerate()
        .map(|(i, v)| (RowId(i as u64), v.as_slice()))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    idx.insert_batch(&items, &pool).unwrap();
    idx
}

/// One 3,000-row index shared by the read-only planner tests (debug builds are slow).
fn shared() -> &'static (Vec<Vec<f32>>, HnswRsIndex) {
    static SHARED: std::sync::OnceLock<(Vec<Vec<f32>>, HnswRsIndex)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let vs = vectors(3_000, 2);
        let idx = hnsw(&vs);
        (vs, idx)
    })
}

fn exact(vs: &[Vec<f32>], q: &[f32], k: usize, allow: &AllowSet) -> Vec<RowId> {
    let mut d: Vec<(f32, RowId)> = allow
        .ids()
        .iter()
        .filter(|id| (id.0 as usize) < vs.len())
        .map(|id| (kernels::l2_squared(q, &vs[id.0 as usize]), *id))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|(_, id)| id).collect()
}

fn ids(hits: &[Neighbor]) -> Vec<RowId> {
    hits.iter().map(|n| n.id).collect()
}

const P: SearchParams = SearchParams { k: 10, ef: 64 };

mod planner_branches {
    use super::*;

    #[test]
    fn no_allow_set_is_the_plain_search() {
        let vs = vectors(1_000, 1);
        let idx = hnsw(&vs);
        assert_eq!(
            planner::choose(planner::HNSW_RS_COSTS, idx.len(), None, P),
            Strategy::Unfiltered
        );
        let a = planner::search(&idx, &vs[3], P, None).unwrap();
        assert_eq!(ids(&a), ids(&idx.search(&vs[3], P, None).unwrap()));
    }

    #[test]
    fn a_very_selective_filter_returns_the_true_neighbours() {
        let vs = vectors(1_000, 1);
        let idx = hnsw(&vs);
        let mut rng = StdRng::seed_from_u64(3);
        // 0.1 % selective, then 1 %: exact over the allowed ids, so exactly the truth.
        for size in [1, 10] {
            let allow: AllowSet = (0..size).map(|_| RowId(rng.gen_range(0..1_000))).collect();
            assert_eq!(
                planner::choose(planner::HNSW_RS_COSTS, idx.len(), Some(allow.len()), P),
                Strategy::Exact
            );
            for q in vs.iter().take(20) {
                let got = planner::search(&idx, q, P, Some(&allow)).unwrap();
                assert_eq!(ids(&got), exact(&vs, q, 10, &allow));
            }
        }
        // Removed rows drop out of the exact path too.
        let allow: AllowSet = [RowId(1), RowId(2)].into_iter().collect();
        idx.remove(RowId(1));
        assert_eq!(
            ids(&planner::search(&idx, &vs[1], P, Some(&allow)).unwrap()),
            vec![RowId(2)]
        );
    }

    #[test]
    fn a_broad_filter_goes_through_the_graph_with_good_recall() {
        let (vs, idx) = shared();
        let allow: AllowSet = (0..3_000u64).filter(|i| i % 2 == 0).map(RowId).collect();
        assert_eq!(
            planner::choose(planner::NATIVE_COSTS, 1_000_000, Some(100_000), P),
            Strategy::Filtered
        );
        let mut hit = 0;
        for q in vs.iter().take(15) {
            let got = planner::search_with(idx, q, P, Some(&allow), Strategy::Filtered).unwrap();
            assert!(planner::search(idx, q, P, Some(&allow))
                .unwrap()
                .iter()
                .all(|n| allow.contains(n.id)));
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|n| allow.contains(n.id)));
            let truth: HashSet<RowId> = exact(vs, q, 10, &allow).into_iter().collect();
            hit += got.iter().filter(|n| truth.contains(&n.id)).count();
        }
        assert!(
            hit as f64 / 150.0 >= 0.9,
            "filtered recall {}",
            hit as f64 / 150.0
        );
    }

    #[test]
    fn a_broad_filter_post_filters_an_over_fetched_search() {
        let (vs, idx) = shared();
        let allow: AllowSet = (0..3_000u64).filter(|i| i % 3 != 0).map(RowId).collect();
        assert_eq!(
            planner::choose(planner::NATIVE_COSTS, 1_000_000, Some(600_000), P),
            Strategy::PostFilter
        );
        let mut hit = 0;
        for q in vs.iter().take(15) {
            let got = planner::search_with(idx, q, P, Some(&allow), Strategy::PostFilter).unwrap();
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|n| allow.contains(n.id)));
            let truth: HashSet<RowId> = exact(vs, q, 10, &allow).into_iter().collect();
            hit += got.iter().filter(|n| truth.contains(&n.id)).count();
        }
        assert!(
            hit as f64 / 150.0 >= 0.9,
            "post-filter recall {}",
            hit as f64 / 150.0
        );
        // Too few allowed rows among the over-fetched hits: falls through to the filtered
        // path and its exact fallback, still the true answer.
        let few: AllowSet = [RowId(5), RowId(500), RowId(2_999)].into_iter().collect();
        let got = planner::search_with(idx, &vs[0], P, Some(&few), Strategy::PostFilter).unwrap();
        assert_eq!(ids(&got), exact(vs, &vs[0], 10, &few));
    }

    /// Forwards to a real index but lets the filtered graph search come back short, as
    /// hnsw_rs does with selective filters.
    #[derive(Debug)]
    struct ShortGraph(&'static HnswRsIndex);

    impl VectorIndex for ShortGraph {
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn metric(&self) -> Metric {
            self.0.metric()
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn insert(&self, id: RowId, v: &[f32]) -> Result<(), IndexError> {
            self.0.insert(id, v)
        }
        fn insert_batch(
            &self,
            items: &[(RowId, &[f32])],
            pool: &rayon::ThreadPool,
        ) -> Result<(), IndexError> {
            self.0.insert_batch(items, pool)
        }
        fn remove(&self, id: RowId) -> bool {
            self.0.remove(id)
        }
        fn contains(&self, id: RowId) -> bool {
            self.0.contains(id)
        }
        fn vector(&self, id: RowId) -> Option<Vec<f32>> {
            self.0.vector(id)
        }
        fn search(
            &self,
            q: &[f32],
            p: SearchParams,
            f: Option<RowFilter<'_>>,
        ) -> Result<Vec<Neighbor>, IndexError> {
            let mut hits = self.0.search(q, p, f)?;
            if f.is_some() {
                hits.truncate(1);
            }
            Ok(hits)
        }
        fn search_among(
            &self,
            q: &[f32],
            k: usize,
            ids: &[RowId],
        ) -> Result<Vec<Neighbor>, IndexError> {
            self.0.search_among(q, k, ids)
        }
        fn stats(&self) -> IndexStats {
            self.0.stats()
        }
        fn save_snapshot(&self, dir: &Path, seq: u64) -> Result<(), IndexError> {
            self.0.save_snapshot(dir, seq)
        }
    }

    #[test]
    fn a_short_filtered_result_falls_back_to_exact() {
        let (vs, inner) = shared();
        let idx = ShortGraph(inner);
        let allow: AllowSet = (0..3_000u64).filter(|i| i % 3 == 0).map(RowId).collect();
        for q in vs.iter().take(10) {
            let got = planner::search_with(&idx, q, P, Some(&allow), Strategy::Filtered).unwrap();
            assert_eq!(ids(&got), exact(vs, q, 10, &allow));
        }
        // Fewer live allowed rows than k: the short graph answer already has them all, and
        // no fallback is needed (nor harmful).
        let tiny_but_forced: AllowSet = [RowId(0)].into_iter().collect();
        let got = planner::search_with(&idx, &vs[0], P, Some(&tiny_but_forced), Strategy::Filtered)
            .unwrap();
        assert_eq!(ids(&got), vec![RowId(0)]);
    }

    #[test]
    fn forced_strategies_agree_on_an_exact_answer() {
        let (vs, idx) = shared();
        let allow: AllowSet = (0..3_000u64).filter(|i| i % 5 == 0).map(RowId).collect();
        let q = &vs[10];
        let e = planner::search_with(idx, q, P, Some(&allow), Strategy::Exact).unwrap();
        assert_eq!(ids(&e), exact(vs, q, 10, &allow));
        let f = planner::search_with(idx, q, P, Some(&allow), Strategy::Filtered).unwrap();
        assert!(f.iter().all(|n| allow.contains(n.id)));
        // The query's own row is allowed: the walk finds it (among its hits, since the
        // shared hnsw_rs graph is built by parallel inserts).
        assert!(f.iter().any(|n| n.id == RowId(10)), "{f:?}");
    }
}
