//! QuiverDB's vector index: derived, rebuildable state that makes search fast.
//!
//! Everything in this crate can be rebuilt from storage. Records are addressed by
//! [`RowId`] (one per stored version of a record, never reused); an update is a
//! [`VectorIndex::remove`] of the old row id plus an insert of the new one.
//!
//! * [`kernels`] — distance kernels (squared L2, inner product, cosine-as-dot), chosen once
//!   at start-up by runtime CPU feature detection.
//! * [`VectorIndex`] — the one trait every engine implements:
//!   [`FlatIndex`] (exact, contiguous arena), [`NativeHnsw`] (our own cache-friendly HNSW,
//!   the default; it scans a small graph exactly instead of walking it) and
//!   [`hnsw_rs_engine::HnswRsIndex`] (HNSW on the `hnsw_rs` crate).
//!   [`VectorIndex::search_batch`] answers several queries at once; the flat engine and a
//!   scanned native graph read every row once per four queries for it.
//! * [`new_index`] builds the engine an [`IndexConfig`] names; [`load_snapshot`] reloads
//!   whichever engine wrote a snapshot directory ([`snapshot`] describes the format).
//!
//! ```
//! use quiverdb_index::{new_index, Engine, IndexConfig, Metric, RowId, SearchParams};
//!
//! let index = new_index(&IndexConfig::new(Engine::Native, Metric::L2, 2)).unwrap();
//! for i in 0..100u64 {
//!     index.insert(RowId(i), &[i as f32, 0.0]).unwrap();
//! }
//! index.remove(RowId(41));
//! let hits = index.search(&[40.6, 0.0], SearchParams { k: 2, ef: 32 }, None).unwrap();
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![RowId(40), RowId(42)]);
//! ```
//!
//! # Distances
//! Engines work with a *distance*, smaller is better: squared L2 for [`Metric::L2`],
//! `-dot` for [`Metric::Ip`], `1 - dot` (on normalized vectors) for [`Metric::Cosine`].
//! [`score_from_distance`] turns it into the Milvus score users see.
//!
//! # Concurrency
//! Engines are `Send + Sync`; insert, remove and search take `&self` and may run at once.
//!
//! # Durability
//! The index is derived state. `save_snapshot(dir, seq)` writes data files and then a
//! manifest, each by temp file + fsync + rename + directory fsync, tagged with the storage
//! sequence number `seq` it covers; on open the owner loads it and replays later changes,
//! or rebuilds from storage when [`load_snapshot`] reports it untrustworthy.

pub mod atomic_file;
mod config;
mod engine;
pub mod flat;
pub mod hnsw;
pub mod hnsw_rs_engine;
pub mod kernels;
pub mod mmr;
pub mod planner;
mod quant;
pub mod snapshot;
mod vector_index;

pub use config::{Engine, IndexConfig};
pub use engine::{load_snapshot, new_index, LoadedIndex};
pub use flat::FlatIndex;
pub use hnsw::NativeHnsw;

pub use quiverdb_types::{Metric, RowId};
pub use vector_index::{
    score_from_distance, IndexError, IndexStats, Neighbor, RowFilter, SearchParams, VectorIndex,
};
