//! The records that go in and come out of a collection.

use quiverdb_types::{Metadata, Pk, RowId};
use serde::{Deserialize, Serialize};

/// A record to write. `pk` is `None` for auto-id inserts.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecord {
    /// The primary key; required unless the collection assigns auto ids.
    pub pk: Option<Pk>,
    /// The document text (any size).
    pub text: String,
    /// Schemaless metadata.
    pub metadata: Metadata,
    /// The embedding; validated, and normalized in cosine collections.
    pub vector: Vec<f32>,
}

/// A stored record: one version of a primary key.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The primary key.
    pub pk: Pk,
    /// The internal id of this version.
    pub row: RowId,
    /// The document text.
    pub text: String,
    /// Schemaless metadata.
    pub metadata: Metadata,
    /// The stored vector (unit length in cosine collections).
    pub vector: Vec<f32>,
}

/// A stored record without its vector (see [`Collection::scan_rows`](crate::Collection::scan_rows)).
#[derive(Clone, Debug, PartialEq)]
pub struct RowEntry {
    /// The primary key.
    pub pk: Pk,
    /// The internal id of this version.
    pub row: RowId,
    /// The document text.
    pub text: String,
    /// Schemaless metadata.
    pub metadata: Metadata,
}

/// What a committed write did. `seq` is the batch's sequence number; a batch that changed
/// nothing commits nothing and reports the collection's current `last_seq`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteReceipt {
    /// Sequence number of the batch.
    pub seq: u64,
    /// Rows written, in batch order.
    pub inserted: Vec<(Pk, RowId)>,
    /// Rows replaced (upsert) or deleted.
    pub removed: Vec<(Pk, RowId)>,
}

/// One committed batch, as read back from the change log.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Sequence number of the batch.
    pub seq: u64,
    /// Rows written.
    pub inserted: Vec<(Pk, RowId)>,
    /// Rows removed.
    pub removed: Vec<(Pk, RowId)>,
}

/// The persisted body of a change-log entry (the sequence number is its key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredChange {
    pub(crate) inserted: Vec<(Pk, RowId)>,
    pub(crate) removed: Vec<(Pk, RowId)>,
}
