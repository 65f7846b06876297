//! The engine factory ([`new_index`], [`load_snapshot`]) and what every engine shares:
//! input checks ([`prepare_vector`]) and a bounded best-k collector ([`TopK`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;

use quiverdb_types::{Metric, RowId};

use crate::flat::FlatIndex;
use crate::hnsw::NativeHnsw;
use crate::hnsw_rs_engine::HnswRsIndex;
use crate::snapshot::{read_manifest, ManifestKind};
use crate::{Engine, IndexConfig, IndexError, Neighbor, VectorIndex};

/// Builds an empty index for `config` (validated first).
pub fn new_index(config: &IndexConfig) -> Result<Arc<dyn VectorIndex>, IndexError> {
    config.validate()?;
    Ok(match config.engine {
        Engine::Flat => Arc::new(FlatIndex::new(config)?),
        Engine::Native => Arc::new(NativeHnsw::new(config)?),
        Engine::HnswRs => Arc::new(HnswRsIndex::new(config)?),
    })
}

/// A loaded index and the storage sequence number its snapshot covers.
pub type LoadedIndex = (Arc<dyn VectorIndex>, u64);

/// Loads the snapshot in `dir`, whichever engine wrote it, with the sequence number it
/// covers.
///
/// `Ok(None)` when there is no snapshot (no directory or no manifest); `Err` when one is
/// present but cannot be trusted — the caller then rebuilds from storage.
pub fn load_snapshot(dir: &Path) -> Result<Option<LoadedIndex>, IndexError> {
    if !dir.exists() {
        return Ok(None);
    }
    match read_manifest(dir)? {
        ManifestKind::Absent => Ok(None),
        ManifestKind::HnswRs => {
            let (idx, seq) = HnswRsIndex::load(dir)?;
            Ok(Some((Arc::new(idx), seq)))
        }
        ManifestKind::Ours(m) => {
            let idx: Arc<dyn VectorIndex> = match m.engine {
                Engine::Flat => Arc::new(FlatIndex::from_manifest(&m, dir)?),
                Engine::Native => Arc::new(NativeHnsw::from_manifest(&m, dir)?),
                Engine::HnswRs => {
                    return Err(crate::snapshot::snapshot_error(
                        dir,
                        "hnsw_rs engine named in a flat/native manifest",
                    ))
                }
            };
            Ok(Some((idx, m.seq)))
        }
    }
}

/// Checks every vector of a batch before any is inserted (a batch goes in whole or not at
/// all); in parallel on `pool` from [`PARALLEL_CHECK_FLOATS`] floats on.
pub(crate) fn check_batch(
    dim: usize,
    metric: Metric,
    items: &[(RowId, &[f32])],
    pool: &rayon::ThreadPool,
) -> Result<(), IndexError> {
    use rayon::prelude::*;
    if items.len().saturating_mul(dim) < PARALLEL_CHECK_FLOATS {
        return items
            .iter()
            .try_for_each(|(_, v)| check_vector(dim, metric, v));
    }
    pool.install(|| {
        items
            .par_iter()
            .try_for_each(|(_, v)| check_vector(dim, metric, v))
    })
}

/// Batches with fewer floats than this are checked on the calling thread. Checking runs at
/// several floats per nanosecond, so below it the work is a few hundred microseconds at
/// most, while a parallel section waits for the pool's other threads: in the demo's async
/// add burst, where those threads share two cores with the commit threads, checking 90
/// rows took up to 0.66 ms (against 20-50 µs on the caller).
const PARALLEL_CHECK_FLOATS: usize = 1 << 20;

/// Checks a vector against the index without copying it: length, finiteness, and for
/// cosine a non-zero norm (so that [`crate::kernels::normalize`] succeeds on it).
pub(crate) fn check_vector(dim: usize, metric: Metric, v: &[f32]) -> Result<(), IndexError> {
    if v.len() != dim {
        return Err(IndexError::WrongDimension {
            expected: dim,
            got: v.len(),
        });
    }
    if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(IndexError::NonFinite { index, value });
    }
    if metric == Metric::Cosine && v.iter().all(|&x| x == 0.0) {
        return Err(IndexError::ZeroVector);
    }
    Ok(())
}

/// Checks a vector against the index and normalizes it for cosine.
pub(crate) fn prepare_vector<'a>(
    dim: usize,
    metric: Metric,
    v: &'a [f32],
) -> Result<Cow<'a, [f32]>, IndexError> {
    check_vector(dim, metric, v)?;
    if metric == Metric::Cosine {
        let mut owned = v.to_vec();
        if !crate::kernels::normalize(&mut owned) {
            return Err(IndexError::ZeroVector);
        }
        Ok(Cow::Owned(owned))
    } else {
        Ok(Cow::Borrowed(v))
    }
}

/// A distance with a total order (NaN sorts last, never panics) and a tie-break.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored<T> {
    pub(crate) dist: f32,
    pub(crate) item: T,
}

impl<T: Ord> PartialEq for Scored<T> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<T: Ord> Eq for Scored<T> {}
impl<T: Ord> PartialOrd for Scored<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T: Ord> Ord for Scored<T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.dist
            .total_cmp(&o.dist)
            .then_with(|| self.item.cmp(&o.item))
    }
}

/// [`VectorIndex::search_batch`] for engines that scan: prepares each query
/// ([`prepare_vector`]) and hands the prepared ones to `scan` (one answer each, in order);
/// a query that cannot be prepared gets its own error.
pub(crate) fn search_prepared(
    dim: usize,
    metric: Metric,
    queries: &[&[f32]],
    scan: impl FnOnce(&[&[f32]]) -> Vec<Vec<Neighbor>>,
) -> Vec<Result<Vec<Neighbor>, IndexError>> {
    let prepared: Vec<Result<Cow<'_, [f32]>, IndexError>> = queries
        .iter()
        .map(|q| prepare_vector(dim, metric, q))
        .collect();
    let valid: Vec<&[f32]> = prepared.iter().filter_map(|p| p.as_deref().ok()).collect();
    let mut scanned = scan(&valid).into_iter();
    prepared
        .into_iter()
        .map(|p| p.map(|_| scanned.next().unwrap_or_default()))
        .collect()
}

/// Rows a scan scores with one kernel call.
const SCAN_BLOCK: usize = 64;

/// Rows stored back to back, as both scanning engines keep them: `vectors` holds
/// `ids.len()` rows of `dim` floats, and `skip(i)` names the rows a scan leaves out (the
/// native graph's deleted slots).
pub(crate) struct Rows<'a, S> {
    pub ids: &'a [RowId],
    pub vectors: &'a [f32],
    pub dim: usize,
    pub skip: S,
}

impl<S: Fn(usize) -> bool> Rows<'_, S> {
    /// Calls `f(first row, distances)` for each block of up to [`SCAN_BLOCK`] rows, the
    /// distances computed by `score(block of vectors, out)`; `out` is `buf` cut to the
    /// block's length.
    #[inline]
    fn blocks<T: Copy>(
        &self,
        buf: &mut [T; SCAN_BLOCK],
        mut score: impl FnMut(&[f32], &mut [T]),
        mut f: impl FnMut(usize, &[T]),
    ) {
        let n = self.ids.len().min(self.vectors.len() / self.dim.max(1));
        for start in (0..n).step_by(SCAN_BLOCK) {
            let len = SCAN_BLOCK.min(n - start);
            let out = &mut buf[..len];
            score(
                &self.vectors[start * self.dim..(start + len) * self.dim],
                out,
            );
            f(start, out);
        }
    }

    /// Exact top-`k` of one query (of `dim` floats), scored a block of rows at a time
    /// ([`KernelSet::distances`](crate::kernels::KernelSet::distances), bit for bit the
    /// one-row distances, so the answer is a row-by-row scan's, ties included: [`TopK`]
    /// orders by distance, then id). `keep(id)` is asked only of a row that would enter.
    pub(crate) fn top_k<F>(
        &self,
        kernels: crate::kernels::KernelSet,
        metric: Metric,
        q: &[f32],
        k: usize,
        keep: Option<&F>,
    ) -> Vec<Neighbor>
    where
        F: Fn(RowId) -> bool + ?Sized,
    {
        let mut top = TopK::new(k);
        let score = |rows: &[f32], out: &mut [f32]| kernels.distances(metric, q, rows, out);
        self.blocks(&mut [0.0; SCAN_BLOCK], score, |start, ds| {
            for (i, &d) in (start..).zip(ds) {
                if top.accepts(d) && !(self.skip)(i) && keep.is_none_or(|f| f(self.ids[i])) {
                    top.push(d, self.ids[i]);
                }
            }
        });
        top.into_sorted()
    }

    /// Exact top-`k` of several queries, sharing the reads: four queries at a time, each
    /// block of rows is scored against the four by one call of
    /// [`KernelSet::distances_x4`](crate::kernels::KernelSet::distances_x4), so the rows
    /// are read once per four queries (a last group of two or three is padded with copies
    /// of its last query: a scan is bound by reading the rows, not by the arithmetic); a
    /// last single query is scanned alone. Each answer equals [`Rows::top_k`] of its query
    /// (the four-query kernels are bit for bit the one-query kernels).
    pub(crate) fn top_k_batch(
        &self,
        kernels: crate::kernels::KernelSet,
        metric: Metric,
        queries: &[&[f32]],
        k: usize,
    ) -> Vec<Vec<Neighbor>> {
        let mut answers = Vec::with_capacity(queries.len());
        for group in queries.chunks(4) {
            if let [q] = group {
                answers.push(self.top_k(kernels, metric, q, k, None::<&fn(RowId) -> bool>));
                continue;
            }
            let q: [&[f32]; 4] = std::array::from_fn(|j| group[j.min(group.len() - 1)]);
            let mut tops = [(); 4].map(|()| TopK::new(k));
            let score =
                |rows: &[f32], out: &mut [[f32; 4]]| kernels.distances_x4(metric, &q, rows, out);
            self.blocks(&mut [[0.0; 4]; SCAN_BLOCK], score, |start, ds| {
                for (i, d) in (start..).zip(ds) {
                    if (self.skip)(i) {
                        continue;
                    }
                    for (top, &d) in tops.iter_mut().zip(d) {
                        if top.accepts(d) {
                            top.push(d, self.ids[i]);
                        }
                    }
                }
            });
            answers.extend(tops.into_iter().take(group.len()).map(TopK::into_sorted));
        }
        answers
    }
}

/// Keeps the `k` smallest `(distance, row)` pairs seen: a tie at the `k`-th distance goes
/// to the smaller row id, so an exact scan's answer depends on the rows, not on the order
/// it meets them in (slot order changes with removals and compactions).
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Scored<RowId>>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }
    /// Whether a candidate at `dist` may enter (always, until full; a tie with the worst
    /// kept may, if its id is smaller: [`TopK::push`] decides).
    #[inline]
    pub(crate) fn accepts(&self, dist: f32) -> bool {
        self.heap.len() < self.k || self.heap.peek().is_some_and(|s| dist <= s.dist)
    }
    #[inline]
    pub(crate) fn push(&mut self, dist: f32, id: RowId) {
        if self.k == 0 {
            return;
        }
        let s = Scored { dist, item: id };
        if self.heap.len() < self.k {
            self.heap.push(s);
        } else if let Some(mut top) = self.heap.peek_mut() {
            if s < *top {
                *top = s;
            }
        }
    }
    /// Best first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|s| Neighbor {
                id: s.item,
                distance: s.dist,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small batches are checked on the caller, large ones on the pool: both find the same
    /// bad vector, wherever it is.
    #[test]
    fn batches_are_checked_whole_on_either_side_of_the_parallel_threshold() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let dim = 64;
        for n in [3, PARALLEL_CHECK_FLOATS / dim + 5] {
            let mut rows = vec![vec![0.5f32; dim]; n];
            let check = |rows: &[Vec<f32>]| {
                let items: Vec<(RowId, &[f32])> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (RowId(i as u64), v.as_slice()))
                    .collect();
                check_batch(dim, Metric::Cosine, &items, &pool)
            };
            assert!(check(&rows).is_ok(), "{n} good rows");
            rows[n - 1][dim - 1] = f32::NAN;
            assert!(
                matches!(check(&rows), Err(IndexError::NonFinite { index, .. }) if index == dim - 1),
                "{n} rows, the last with a NaN"
            );
            rows[n - 1] = vec![0.0; dim];
            assert!(
                matches!(check(&rows), Err(IndexError::ZeroVector)),
                "{n} rows, a zero row"
            );
            rows[n - 1] = vec![0.5; dim];
            rows[0].pop();
            assert!(
                matches!(check(&rows), Err(IndexError::WrongDimension { got, .. }) if got == dim - 1),
                "{n} rows, a short one"
            );
        }
    }

    #[test]
    fn topk_keeps_the_smallest_best_first() {
        let mut t = TopK::new(3);
        for (d, i) in [
            (5.0, 1),
            (1.0, 2),
            (f32::NAN, 9),
            (3.0, 3),
            (0.5, 4),
            (9.0, 5),
        ] {
            t.push(d, RowId(i));
        }
        let ids: Vec<u64> = t.into_sorted().iter().map(|n| n.id.0).collect();
        assert_eq!(ids, vec![4, 2, 3]);
    }

    /// Scanning with `accepts` then `push`, the kept set is the same in any order: a tie at
    /// the k-th distance goes to the smaller id.
    #[test]
    fn ties_at_the_boundary_go_to_the_smaller_id_in_any_order() {
        let rows = [(1.0, 7), (2.0, 9), (2.0, 3), (2.0, 5), (3.0, 1)];
        let scan = |order: &[usize]| {
            let mut t = TopK::new(2);
            for &i in order {
                let (d, id) = rows[i];
                if t.accepts(d) {
                    t.push(d, RowId(id));
                }
            }
            t.into_sorted().iter().map(|n| n.id.0).collect::<Vec<_>>()
        };
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [1, 0, 3, 4, 2]] {
            assert_eq!(scan(&order), vec![7, 3], "{order:?}");
        }
    }

    /// A scan by blocks answers exactly as a naive row-by-row scan — distances bit for bit,
    /// ties by id — at the block edges (0, 1, 63, 64, 65 and 130 rows), with skipped rows,
    /// a lazy filter, `k` past the row count, and batches of 1 to 6 queries (groups of
    /// four, padded, and a lone last query), on every metric.
    #[test]
    fn block_scans_equal_a_row_by_row_scan() {
        let dim = 19;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct values: many exact ties between rows.
            (x >> 61) as f32 - 3.0
        };
        let kernels = crate::kernels::active();
        for n in [0usize, 1, 63, 64, 65, 130] {
            let vectors: Vec<f32> = (0..n * dim).map(|_| next()).collect();
            let ids: Vec<RowId> = (0..n as u64).map(|i| RowId(1_000 - 3 * i)).collect();
            let skip = |i: usize| i % 7 == 3;
            let rows = Rows {
                ids: &ids,
                vectors: &vectors,
                dim,
                skip,
            };
            let queries: Vec<Vec<f32>> =
                (0..6).map(|_| (0..dim).map(|_| next()).collect()).collect();
            let odd = |id: RowId| id.0 % 2 == 1;
            for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
                let naive = |q: &[f32], k: usize, keep: &dyn Fn(RowId) -> bool| {
                    let mut all: Vec<(u32, RowId)> = (0..n)
                        .filter(|&i| !skip(i) && keep(ids[i]))
                        .map(|i| {
                            let d = kernels.distance(metric, q, &vectors[i * dim..(i + 1) * dim]);
                            (d.to_bits(), ids[i])
                        })
                        .collect();
                    all.sort_by(|a, b| {
                        f32::from_bits(a.0)
                            .total_cmp(&f32::from_bits(b.0))
                            .then(a.1.cmp(&b.1))
                    });
                    all.truncate(k);
                    all
                };
                let bits = |hits: Vec<Neighbor>| -> Vec<(u32, RowId)> {
                    hits.into_iter()
                        .map(|h| (h.distance.to_bits(), h.id))
                        .collect()
                };
                for k in [1, 5, n + 2] {
                    for q in &queries {
                        let all = rows.top_k(kernels, metric, q, k, None::<&fn(RowId) -> bool>);
                        assert_eq!(bits(all), naive(q, k, &|_| true), "{metric:?} n={n} k={k}");
                        let kept = rows.top_k(kernels, metric, q, k, Some(&odd));
                        assert_eq!(
                            bits(kept),
                            naive(q, k, &odd),
                            "{metric:?} n={n} k={k} filtered"
                        );
                    }
                    for b in 1..=6 {
                        let batch: Vec<&[f32]> = queries[..b].iter().map(Vec::as_slice).collect();
                        let answers = rows.top_k_batch(kernels, metric, &batch, k);
                        assert_eq!(answers.len(), b);
                        for (q, answer) in batch.iter().zip(answers) {
                            assert_eq!(
                                bits(answer),
                                naive(q, k, &|_| true),
                                "{metric:?} n={n} k={k} batch of {b}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prepare_rejects_bad_vectors() {
        assert!(matches!(
            prepare_vector(3, Metric::L2, &[1.0, 2.0]),
            Err(IndexError::WrongDimension {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            prepare_vector(2, Metric::L2, &[1.0, f32::NAN]),
            Err(IndexError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            prepare_vector(2, Metric::Cosine, &[0.0, 0.0]),
            Err(IndexError::ZeroVector)
        ));
        let v = prepare_vector(2, Metric::Cosine, &[3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6);
    }

    #[test]
    fn factory_validates_and_reports_no_snapshot() {
        let mut c = IndexConfig::new(Engine::Flat, Metric::L2, 4);
        assert_eq!(new_index(&c).unwrap().stats().engine, "flat");
        c.engine = Engine::Native;
        assert_eq!(new_index(&c).unwrap().stats().engine, "native-hnsw");
        c.m = 1;
        assert!(matches!(
            new_index(&c),
            Err(IndexError::InvalidParameter(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(load_snapshot(dir.path()).unwrap().is_none());
        assert!(load_snapshot(&dir.path().join("missing"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn load_snapshot_dispatches_by_engine() {
        for engine in [Engine::Flat, Engine::Native, Engine::HnswRs] {
            let idx = new_index(&IndexConfig::new(engine, Metric::L2, 3)).unwrap();
            for i in 0..50u64 {
                idx.insert(RowId(i), &[i as f32, 1.0, -1.0]).unwrap();
            }
            let dir = tempfile::tempdir().unwrap();
            idx.save_snapshot(dir.path(), 5).unwrap();
            let (back, seq) = load_snapshot(dir.path()).unwrap().unwrap();
            assert_eq!(seq, 5);
            assert_eq!(back.stats().engine, idx.stats().engine);
            assert_eq!(back.len(), 50);
            let p = crate::SearchParams { k: 3, ef: 16 };
            let q = [10.2f32, 1.0, -1.0];
            assert_eq!(
                back.search(&q, p, None).unwrap(),
                idx.search(&q, p, None).unwrap(),
                "{engine:?}"
            );
        }
    }

    #[test]
    fn garbage_manifest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MANIFEST"), b"not a manifest at all, no").unwrap();
        assert!(matches!(
            load_snapshot(dir.path()),
            Err(IndexError::Snapshot { .. })
        ));
    }
}
