//! QuiverDB's store surface over a Milvus server, for applications that outgrow one
//! machine: develop against the embedded store, deploy against Milvus, with the same
//! code — only the URI changes.
//!
//! * [`MilvusStore`] implements [`quiverdb::Store`] over Milvus's gRPC protocol with the
//!   official `milvus-sdk-rust` client: the same methods (blocking and async), options,
//!   `Document`s and errors as the embedded [`quiverdb::VectorStore`].
//! * [`AnyStore`] is one of the two, picked by the URI: a path (or none) opens the
//!   embedded store, `http(s)://host:port` a Milvus server.
//!
//! ```no_run
//! use quiverdb::{HashingEmbeddings, SearchOptions, Store, VectorStore};
//! use quiverdb_milvus::AnyStore;
//!
//! // "./dev.quiver" during development, "http://milvus:19530" in production.
//! let store = AnyStore::open(
//!     VectorStore::builder()
//!         .uri("http://127.0.0.1:19530")
//!         .collection_name("docs")
//!         .embeddings(HashingEmbeddings::default()),
//! )?;
//! store.add_texts(vec!["apples and pears".into()], None, Some(vec!["a".into()]))?;
//! let hits = store.similarity_search("pears", &SearchOptions::k(1))?;
//! # Ok::<(), quiverdb::Error>(())
//! ```
//!
//! # Mapping
//! As the LangChain–Milvus Python store: key, text and vector fields, metadata as dynamic
//! fields, auto ids or caller ids, `drop_old`, the metric, `AUTOINDEX` by default, and
//! consistency level `Strong` (a write is visible to the next read, as in the embedded
//! store). Embeddings are computed client-side with the store's [`quiverdb::Embeddings`];
//! MMR is computed client-side with QuiverDB's kernels on the candidates' vectors,
//! fetched by key; relevance scores use the embedded store's formulas.
//!
//! # Concurrency
//! `MilvusStore` is `Clone + Send + Sync`. Async methods run on the caller's tokio
//! runtime; blocking methods need none. The store owns one small runtime (one worker
//! thread) that drives its gRPC connection — see [`MilvusStore`].
//!
//! # Durability
//! What the server promises: a write that returned `Ok` was accepted by Milvus.
//!
//! # Milvus Lite
//! CI runs the suite against the C++ server of the `milvus-lite` 2.5.1 wheel
//! (`scripts/with-milvus.sh`). That endpoint lacks a few calls; the workarounds, each
//! also correct on a real server, are in one module and listed there.
#![forbid(unsafe_code)]

mod any;
mod block;
mod errors;
mod lite_compat;
mod mapping;
mod ops;
mod options;
mod store;
mod surface;

pub use any::AnyStore;
pub use options::{Consistency, MilvusIndex, MilvusOptions};
pub use store::MilvusStore;
