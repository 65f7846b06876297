use std::fmt::Debug;
use std::path::Path;

use crate::planner::AllowSet;
use quiverdb_types::{Metric, RowId};

/// Errors of the index crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// A vector of the wrong length.
    #[error("wrong vector dimension: expected {expected}, got {got}")]
    WrongDimension {
        /// The index's dimension.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// A NaN or infinite component.
    #[error("vector component {index} is not finite ({value})")]
    NonFinite {
        /// Position of the bad component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A zero vector where a direction is needed (cosine).
    #[error("zero vector cannot be normalized for cosine similarity")]
    ZeroVector,
    /// A row id that is already in the index.
    #[error("row id {0} is already in the index")]
    DuplicateRow(RowId),
    /// Parameters out of range (checked before any dependency sees them).
    #[error("invalid index parameter: {0}")]
    InvalidParameter(String),
    /// A snapshot that cannot be trusted.
    #[error("index snapshot {path}: {detail}")]
    Snapshot {
        /// The snapshot file or directory.
        path: String,
        /// What was wrong with it.
        detail: String,
    },
    /// I/O while writing or reading a snapshot.
    #[error("index snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Per-search knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// How many neighbours to return.
    pub k: usize,
    /// Size of the dynamic candidate list (HNSW); engines use `max(ef, k)`.
    pub ef: usize,
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// The row.
    pub id: RowId,
    /// Engine distance, smaller is better (see the crate docs).
    pub distance: f32,
}

/// An allow-predicate over row ids, evaluated inside the search.
pub type RowFilter<'a> = &'a (dyn Fn(RowId) -> bool + Sync);

/// Counters an engine reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexStats {
    /// Engine name (`flat`, `native-hnsw`, `hnsw_rs`).
    pub engine: &'static str,
    /// Rows that can be returned.
    pub live: usize,
    /// Rows removed but still held (tombstones).
    pub tombstones: usize,
    /// Approximate bytes of memory held.
    pub memory_bytes: usize,
}

/// The approximate (or exact) index behind a collection.
///
/// # Contract
/// * Vectors are checked by the caller for dimension and finiteness; engines still return
///   [`IndexError`] rather than panic when they are not.
/// * For [`Metric::Cosine`] engines normalize on insert and on query.
/// * `search` returns at most `k` live rows accepted by `filter`, best first, no duplicates.
pub trait VectorIndex: Send + Sync + Debug {
    /// The vectors' dimension.
    fn dim(&self) -> usize;
    /// The metric.
    fn metric(&self) -> Metric;
    /// Number of live rows.
    fn len(&self) -> usize;
    /// Whether there are no live rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Adds one row; safe while searches run.
    fn insert(&self, id: RowId, vector: &[f32]) -> Result<(), IndexError>;
    /// Adds many rows, in parallel on `pool`.
    fn insert_batch(
        &self,
        items: &[(RowId, &[f32])],
        pool: &rayon::ThreadPool,
    ) -> Result<(), IndexError>;
    /// Tombstones a row; returns whether it was live.
    fn remove(&self, id: RowId) -> bool;
    /// Whether a row is live.
    fn contains(&self, id: RowId) -> bool;
    /// The stored vector of a live row (normalized for cosine).
    fn vector(&self, id: RowId) -> Option<Vec<f32>>;
    /// The `params.k` nearest live rows accepted by `filter`.
    fn search(
        &self,
        query: &[f32],
        params: SearchParams,
        filter: Option<RowFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError>;
    /// Unfiltered [`VectorIndex::search`] for several queries at once: one answer per
    /// query, in order, each what `search` answers for that query alone. Engines that can
    /// share work between queries (one pass over the vectors for all of them) override it.
    fn search_batch(
        &self,
        queries: &[&[f32]],
        params: SearchParams,
    ) -> Vec<Result<Vec<Neighbor>, IndexError>> {
        queries
            .iter()
            .map(|q| self.search(q, params, None))
            .collect()
    }
    /// Whether [`VectorIndex::search_batch`] answers a batch for less work than its
    /// queries one by one right now (so callers gain by gathering concurrent queries, and
    /// lose parallelism by gathering them when it does not).
    fn search_batch_shares_work(&self) -> bool {
        false
    }
    /// [`VectorIndex::search`] with the planner's allow-set as the filter. Engines whose
    /// filtered walk asks the filter many times per scored node override it to test
    /// membership inline instead of through a `dyn Fn` per call.
    fn search_allowed(
        &self,
        query: &[f32],
        params: SearchParams,
        allow: &AllowSet,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search(query, params, Some(&|id| allow.contains(id)))
    }
    /// Exact search restricted to `ids` (the planner's path for selective filters).
    /// Unknown or removed ids are skipped.
    fn search_among(
        &self,
        query: &[f32],
        k: usize,
        ids: &[RowId],
    ) -> Result<Vec<Neighbor>, IndexError> {
        let mut q = query.to_vec();
        if self.metric() == Metric::Cosine && !crate::kernels::normalize(&mut q) {
            return Err(IndexError::ZeroVector);
        }
        let mut hits: Vec<Neighbor> = ids
            .iter()
            .filter_map(|&id| {
                let v = self.vector(id)?;
                Some(Neighbor {
                    id,
                    distance: crate::kernels::distance(self.metric(), &q, &v),
                })
            })
            .collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        hits.truncate(k);
        Ok(hits)
    }
    /// Counters.
    fn stats(&self) -> IndexStats;
    /// Upkeep after removals, while searches, inserts and removes go on: rebuilds the graph
    /// without its tombstones once they pass the engine's threshold (the native engine also
    /// repairs the links around new tombstones before that); returns whether it did
    /// anything. Engines without tombstones do nothing.
    fn compact_if_needed(&self, pool: &rayon::ThreadPool) -> Result<bool, IndexError> {
        let _ = pool;
        Ok(false)
    }
    /// Writes a snapshot into `dir` (atomically: temp file, fsync, rename, fsync dir),
    /// tagged with the storage sequence number `seq` it covers.
    fn save_snapshot(&self, dir: &Path, seq: u64) -> Result<(), IndexError>;
}

/// Turns an engine distance into the score users see (Milvus semantics): squared L2 for
/// L2, the inner product for IP, the cosine similarity for cosine.
pub fn score_from_distance(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::L2 => distance,
        Metric::Ip => -distance,
        Metric::Cosine => 1.0 - distance,
    }
}
