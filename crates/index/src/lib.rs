//! QuiverDB's vector index: derived, rebuildable state that makes search fast.
//!
//! Everything in this crate can be rebuilt from storage. Records are addressed by
//! [`RowId`] (one per stored version of a record, never reused); an update is a
//! [`VectorIndex::remove`] of the old row id plus an insert of the new one.
//!
//! * [`kernels`] — distance kernels (squared L2, inner product, cosine-as-dot), chosen once
//!   at start-up by runtime CPU feature detection.
//! * [`VectorIndex`] — the one trait every engine implements (flat/exact, HNSW engines).
//!
//! # Distances
//! Engines work with a *distance*, smaller is better: squared L2 for [`Metric::L2`],
//! `-dot` for [`Metric::Ip`], `1 - dot` (on normalized vectors) for [`Metric::Cosine`].
//! [`score_from_distance`] turns it into the Milvus score users see.
//!
//! # Concurrency
//! Engines are `Send + Sync`; insert, remove and search take `&self` and may run at once.

pub mod atomic_file;
mod config;
pub mod hnsw_rs_engine;
pub mod kernels;
pub mod mmr;
pub mod planner;
mod vector_index;

pub use config::{Engine, IndexConfig};

pub use quiverdb_types::{Metric, RowId};
pub use vector_index::{
    score_from_distance, IndexError, IndexStats, Neighbor, RowFilter, SearchParams, VectorIndex,
};
