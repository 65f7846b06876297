//! Durable storage for QuiverDB collections, on sled.
//!
//! Storage is the source of truth of every collection: primary keys, text, metadata, vectors
//! and the schema. The vector index (another crate) is derived from it and catches up through
//! the per-collection change log ([`Collection::changes_since`]).
//!
//! # Model
//! * A [`Database`] is a directory. It holds any number of named [`Collection`]s, which share
//!   a handful of sled trees; each collection's keys start with its internal id (see
//!   `docs/FORMAT.md` for every tree, key and value layout).
//! * A record is stored under its primary key ([`Pk`]); every stored *version* of it gets a
//!   fresh [`RowId`], monotonic per collection and never reused. An upsert writes a new row id
//!   and removes the old one; the receipt reports both.
//! * Auto-id collections ([`PkKind::AutoInt`]) assign `1, 2, 3, …`; ids are never reused,
//!   also after deletes and reopen, because the counter is written in the batch's transaction.
//! * Every committed batch gets a sequence number and a change-log entry. Entries covered by
//!   an index snapshot are pruned ([`Collection::prune_changes`]), never past a registered
//!   reader ([`ChangePin`]); asking for pruned changes is [`Error::ChangesPruned`], never a
//!   silently shorter list.
//!
//! # Invariants
//! The key index and the rows agree both ways, every row has exactly one vector of the
//! schema's dimension (unit length for cosine), and the recorded count, next row id, next auto
//! id and last sequence number match what is stored. [`Collection::check_integrity`] verifies
//! all of it.
//!
//! # Durability
//! A write call returns `Ok` only once its batch is on disk: appended to the database's
//! write-ahead log (the `wal` file) and that file `fdatasync`ed, before any of it is applied
//! to sled. It is then applied to sled in memory with plain inserts and removes, in an order
//! concurrent readers can follow; sled's own files are made durable at checkpoints (sled's
//! flush, then an `fdatasync` of its log, since sled alone stops at `sync_file_range`, see
//! `kv`), after which the log starts over. Opening replays the logged batches after the last
//! checkpoint, in order, completing any that sled's files hold in part. A batch is
//! all-or-nothing, also across a crash; a batch rejected by validation writes nothing.
//!
//! # Concurrency
//! Handles are cheap `Clone + Send + Sync`. Writers of one collection are serialized for
//! validation and commit (one log record and sync for every batch queued meanwhile: write
//! combining); commits of different collections share the log's syncs. The `_async`
//! methods have the database's flusher thread commit for them and await on a tokio
//! `oneshot`, never blocking the executor; the library never creates a runtime. Point reads
//! and scans take no lock (a scan is not a snapshot); `count` and `schema` read the
//! in-memory state under the collection's write lock, `last_seq` an atomic. An async
//! writer hears back once its batch is durable in the log, possibly before sled has it;
//! a read of sled first waits until sled holds every batch acknowledged so far, so it sees
//! every write whose call has returned. Readers may also see a batch as soon as it is
//! applied, before its writer's call returns, and one key at a time: a key's index entry
//! after its row, a row after its vector. Opening the
//! same path twice in a process returns the same database; another process gets
//! [`Error::Locked`].
//!
//! # Example
//! ```
//! use quiverdb_storage::{CollectionConfig, Database, NewRecord};
//! use quiverdb_types::{Metric, Pk, PkKind};
//!
//! let db = Database::temporary()?;
//! let docs = db.create_collection(
//!     "docs",
//!     CollectionConfig { metric: Metric::Cosine, pk_kind: PkKind::AutoInt, ..Default::default() },
//! )?;
//! let receipt = docs.insert(vec![NewRecord {
//!     pk: None,
//!     text: "hello".into(),
//!     metadata: Default::default(),
//!     vector: vec![3.0, 4.0],
//! }])?;
//! assert_eq!(receipt.inserted[0].0, Pk::Int(1));
//! let got = docs.get(&[Pk::Int(1)])?.remove(0).expect("stored");
//! assert_eq!(got.vector, vec![0.6, 0.8]); // cosine vectors are stored normalized
//! assert_eq!(docs.schema().dimension, Some(2)); // fixed by the first write
//! assert_eq!(docs.changes_since(0)?.len(), 1);
//! # Ok::<(), quiverdb_storage::Error>(())
//! ```
#![forbid(unsafe_code)]

mod change_log;
mod codec;
mod collection;
mod database;
mod error;
mod group_commit;
mod integrity;
mod kv;
mod record;
mod schema;
mod wal;
mod write;

pub use change_log::ChangePin;
pub use collection::{Batch, Collection, CommitHook};
pub use database::Database;
pub use error::{Error, Result};
pub use integrity::IntegrityReport;
pub use quiverdb_types::{Metadata, Metric, Pk, PkKind, RowId, Value};
pub use record::{Change, NewRecord, Record, RowEntry, WriteReceipt};
pub use schema::{
    validate_name, CollectionConfig, IndexParams, Schema, FORMAT_VERSION, MAX_NAME_LEN,
};
pub use wal::CHECKPOINT_BYTES_ENV;
