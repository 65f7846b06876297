//! The vocabulary every QuiverDB crate speaks.
//!
//! QuiverDB is split into crates with one job each (storage, index, filter, the public
//! store). They meet on a handful of plain data types, defined here once:
//!
//! * [`Pk`] — a record's primary key as the user sees it: an `i64` (auto ids or caller
//!   ints) or a `String` (caller ids), and [`PkKind`], what a collection accepts.
//! * [`RowId`] — the internal id of one *version* of a record. Storage hands out a fresh
//!   `RowId` for every insert and every upsert and never reuses one; the vector index is
//!   keyed by it, so an update is "tombstone the old row id, insert the new one".
//! * [`Metric`] — how vectors are compared (squared L2, inner product, cosine).
//! * [`Value`] / [`Metadata`] — schemaless, JSON-like metadata. `bincode` cannot encode
//!   `serde_json::Value` (it needs `deserialize_any`), so metadata has its own
//!   externally tagged enum with lossless conversions from and to `serde_json::Value`.
//!   `Int(2)` and `Float(2.0)` stay distinct.
//!
//! ```
//! use quiverdb_types::{metadata_from_json, metadata_to_json, Value};
//! let json = serde_json::json!({"source": "a.pdf", "page": 2, "score": 2.0, "tags": ["x"]});
//! let meta = metadata_from_json(json.clone()).unwrap();
//! assert_eq!(meta.get("page"), Some(&Value::Int(2)));
//! assert_eq!(meta.get("score"), Some(&Value::Float(2.0)));
//! assert_eq!(metadata_to_json(meta), json);
//! ```
#![forbid(unsafe_code)]

mod metric;
mod pk;
mod value;

pub use metric::Metric;
pub use pk::{Pk, PkKind, RowId};
pub use value::{metadata_from_json, metadata_to_json, Metadata, PathStep, Value, ValueError};
