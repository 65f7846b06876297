//! What a collection looks like from outside: its schema, counts and index state, and the
//! integrity check that ties storage and index together.

use quiverdb_types::{Metric, PkKind};

/// A collection's description.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionInfo {
    /// The name.
    pub name: String,
    /// Vector dimension (`None` until the first vector is written).
    pub dimension: Option<usize>,
    /// The stored metric.
    pub metric: Metric,
    /// The primary-key kind.
    pub pk_kind: PkKind,
    /// Live records.
    pub records: usize,
    /// Index engine and parameters.
    pub index: crate::IndexOptions,
    /// Index counters (`None` before the first vector, and from
    /// [`Database::collection_info`](crate::Database::collection_info), which does not load
    /// the index).
    pub index_stats: Option<IndexState>,
    /// Sequence number of the last committed batch.
    pub last_seq: u64,
    /// When the index snapshot was last written (`None`: never, or in memory).
    pub snapshot_modified: Option<std::time::SystemTime>,
}

/// Counters of a collection's vector index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// Engine name.
    pub engine: String,
    /// Rows searches can return.
    pub live: usize,
    /// Removed rows still held by the graph.
    pub tombstones: usize,
    /// Approximate memory held, in bytes.
    pub memory_bytes: usize,
}

/// The result of [`crate::VectorStore::check_integrity`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntegrityReport {
    /// Records storage holds.
    pub records: usize,
    /// Rows the index can return.
    pub indexed: usize,
    /// Every inconsistency found (empty when all is well).
    pub problems: Vec<String>,
}

impl IntegrityReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}
