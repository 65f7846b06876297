//! QuiverDB: an embedded, in-process vector database with the LangChain–Milvus
//! vector-store surface, synchronously and asynchronously.
//!
//! A [`VectorStore`] is one collection of records — a primary key, a text, schemaless
//! metadata and a vector — in a database directory (or in memory). It offers the
//! methods of the LangChain–Milvus store (`add_texts`, `similarity_search`,
//! `max_marginal_relevance_search`, `delete`, `upsert`, `search_by_metadata`, `get_pks`,
//! …), each as a blocking call and as an async twin with an `a` prefix. Filters use the
//! Milvus boolean expression language (`category == 'a' and score > 0.5`).
//!
//! ```
//! use quiverdb::{HashingEmbeddings, SearchOptions, VectorStore};
//! use quiverdb::types::{Metadata, Value};
//!
//! let store = VectorStore::builder().embeddings(HashingEmbeddings::default()).open()?;
//! let mut m = Metadata::new();
//! m.insert("category".into(), Value::from("fruit"));
//! store.add_texts(["apples and pears", "rust and vectors"], Some(vec![m, Metadata::new()]), None)?;
//! let hits = store.similarity_search("pears", &SearchOptions::k(1).filter("category == 'fruit'"))?;
//! assert_eq!(hits[0].page_content, "apples and pears");
//! # Ok::<(), quiverdb::Error>(())
//! ```
//!
//! # Durability
//! A write that returned `Ok` is on disk (fsynced). Concurrent writers share flushes
//! (group commit), which is what makes many small async writes fast. Storage is the
//! source of truth; the vector index is derived and is rebuilt from storage, or restored
//! from a snapshot written by [`VectorStore::close`] and caught up from storage's change
//! log, when a collection is opened.
//!
//! # Concurrency
//! `VectorStore` is `Clone + Send + Sync`. Reads and writes may run from any number of
//! threads or tasks at once. Blocking calls need no async runtime; async calls need only
//! the caller's tokio runtime (the library never starts one) and run CPU work on a rayon
//! pool (shared by default, or set with [`StoreBuilder::pool`]). Do not call the blocking
//! write methods from inside that pool's own threads: a write may wait there for the pool.
//!
//! # Scores
//! `L2`: squared Euclidean distance (smaller is better); `IP`: inner product; `COSINE`:
//! cosine similarity — as Milvus returns them. Relevance scores map these to `[0, 1]`.
#![forbid(unsafe_code)]

mod async_api;
mod backend;
mod bridge;
mod coalesce;
mod config;
mod database;
mod document;
mod embeddings;
mod error;
mod info;
mod live;
mod options;
mod rows;
pub mod rules;
mod search;
mod store;
mod write;

pub use backend::Store;
pub use config::{IndexOptions, Location, StoreBuilder, StoreConfig};
pub use database::Database;
pub use document::Document;
pub use embeddings::{BoxFuture, EmbeddingResult, Embeddings, HashingEmbeddings};
pub use error::{Error, Result};
pub use info::{CollectionInfo, IndexState, IntegrityReport};
pub use options::{MmrOptions, QueryOptions, SearchOptions};
pub use store::VectorStore;

/// The data types the store speaks: keys, metrics, metadata values.
pub mod types {
    pub use quiverdb_types::{
        metadata_from_json, metadata_to_json, Metadata, Metric, Pk, PkKind, Value,
    };
}
pub use quiverdb_filter::Params as FilterParams;
pub use quiverdb_types::{Metadata, Metric, Pk, Value};
