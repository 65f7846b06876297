//! The storage error type.

use std::path::PathBuf;

use quiverdb_types::{Pk, PkKind};

/// Everything that can go wrong in the storage crate.
///
/// Batch validation errors carry `row`, the index of the offending record in the batch the
/// caller passed in. A rejected batch changes nothing.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum Error {
    /// Another process holds the database's file lock.
    #[error("database at {path:?} is locked by another process")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The database files could not be read as a QuiverDB database.
    #[error("database at {path:?} is corrupted: {detail}")]
    Corrupted {
        /// The database directory (empty for a temporary database).
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// No collection of that name exists (or it was dropped while a handle was held).
    #[error("unknown collection {name:?}")]
    UnknownCollection {
        /// The collection name.
        name: String,
    },
    /// `create_collection` of a name that exists, without `drop_old`.
    #[error("collection {name:?} already exists")]
    CollectionExists {
        /// The collection name.
        name: String,
    },
    /// A collection name outside `[A-Za-z_][A-Za-z0-9_]*` or longer than 255 bytes.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A vector whose length differs from the collection's dimension.
    #[error("wrong vector dimension: expected {expected}, got {got}")]
    WrongDimension {
        /// The collection's dimension.
        expected: usize,
        /// The length of the rejected vector.
        got: usize,
    },
    /// A vector component that is NaN or infinite.
    #[error("vector of row {row} has a non-finite component {value} at index {component}")]
    NonFiniteVector {
        /// Index of the record in the batch.
        row: usize,
        /// Index of the component in the vector.
        component: usize,
        /// The offending value.
        value: f32,
    },
    /// An all-zero vector in a cosine collection (it has no direction).
    #[error("vector of row {row} is all zeros, which has no cosine direction")]
    ZeroVector {
        /// Index of the record in the batch.
        row: usize,
    },
    /// A vector of length zero.
    #[error("vector of row {row} is empty")]
    EmptyVector {
        /// Index of the record in the batch.
        row: usize,
    },
    /// `insert` of a primary key that is already stored or repeated in the batch.
    #[error("duplicate primary key {pk}")]
    DuplicatePk {
        /// The duplicated key.
        pk: Pk,
    },
    /// A primary key of the wrong kind; for auto-id collections, any key given to `insert`.
    #[error("primary key {got} does not fit a collection with {expected} keys{}",
        if *expected == PkKind::AutoInt { " (auto ids are assigned by the store: pass no key to insert)" } else { "" })]
    WrongPkKind {
        /// What the collection accepts.
        expected: PkKind,
        /// The rejected key.
        got: Pk,
    },
    /// A record without a primary key where one is required.
    #[error("record {row} has no primary key, and the collection does not assign them")]
    MissingPk {
        /// Index of the record in the batch.
        row: usize,
    },
    /// A collection configuration that cannot be used.
    #[error("invalid collection configuration: {reason}")]
    InvalidConfig {
        /// What was wrong.
        reason: String,
    },
    /// [`Collection::changes_since`](crate::Collection::changes_since) was asked for changes
    /// after `requested`, but the entries up to `pruned_upto` were pruned: the caller must
    /// rebuild what it derives from the log from the rows instead.
    #[error(
        "change-log entries after {requested} were pruned (the log starts after {pruned_upto})"
    )]
    ChangesPruned {
        /// The sequence number the caller had applied.
        requested: u64,
        /// Every entry with a sequence number up to this one may be gone.
        pruned_upto: u64,
    },
    /// The auto id counter reached `i64::MAX`.
    #[error("auto ids are exhausted (the counter reached i64::MAX)")]
    AutoIdExhausted,
    /// An operating-system IO error.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// A commit failed after its write-ahead log record may have become durable (its sync,
    /// or applying it to the engine, failed). Its outcome is decided by the next open, which
    /// replays the log; until then the database refuses writes.
    #[error("the database stopped accepting writes ({detail}); reopen it to recover")]
    WritesStopped {
        /// What failed.
        detail: String,
    },
    /// An error reported by the key-value engine (its message; engine types stay private).
    #[error("storage engine error: {0}")]
    Sled(String),
    /// A value could not be encoded.
    #[error("encoding error: {0}")]
    Encoding(String),
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The same failure for another writer of a commit that failed (errors are not
    /// `Clone`): a stopped log stays [`Error::WritesStopped`], an I/O error keeps its kind,
    /// anything else keeps its message.
    pub(crate) fn for_another_writer(&self) -> Error {
        match self {
            Error::WritesStopped { detail } => Error::WritesStopped {
                detail: detail.clone(),
            },
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            other => Error::Sled(other.to_string()),
        }
    }
}
