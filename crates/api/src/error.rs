use std::path::PathBuf;

use quiverdb_types::{Pk, PkKind};

/// Everything that can go wrong in a QuiverDB call.
///
/// Every variant says what was wrong and, where it applies, what was expected. A call that
/// returns an error has changed nothing that was already stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vector of the wrong length.
    #[error("wrong vector dimension: the collection has dimension {expected}, got {got}")]
    WrongDimension {
        /// The collection's dimension.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// A NaN or infinite vector component.
    #[error("vector {row} has a non-finite component at index {component} ({value})")]
    NonFiniteVector {
        /// Position of the vector in the call's input.
        row: usize,
        /// Position of the bad component.
        component: usize,
        /// The bad value.
        value: f32,
    },
    /// A zero vector in a cosine collection (it has no direction).
    #[error("vector {row} is all zeros: cosine similarity needs a non-zero vector")]
    ZeroVector {
        /// Position of the vector in the call's input.
        row: usize,
    },
    /// An empty vector.
    #[error("vector {row} is empty")]
    EmptyVector {
        /// Position of the vector in the call's input.
        row: usize,
    },
    /// No collection of that name.
    #[error("unknown collection {name:?}")]
    UnknownCollection {
        /// The name asked for.
        name: String,
    },
    /// A collection of that name exists already.
    #[error("collection {name:?} already exists (pass drop_old to replace it)")]
    CollectionExists {
        /// The name.
        name: String,
    },
    /// A collection name that is not allowed.
    #[error("invalid collection name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Another process holds the database.
    #[error("database {path} is locked by another process")]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// The database directory is damaged or not a QuiverDB database.
    #[error("database {path} is corrupted: {detail}")]
    Corrupted {
        /// The database directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// An id that is already stored (insert never overwrites; use upsert).
    #[error("duplicate id {id}: insert never overwrites, use upsert to replace")]
    DuplicateId {
        /// The id.
        id: Pk,
    },
    /// An id of the wrong kind for the collection.
    #[error("id {id} has the wrong kind: the collection's primary key is {expected}")]
    WrongIdKind {
        /// What the collection takes.
        expected: PkKind,
        /// What was passed.
        id: Pk,
    },
    /// Ids are needed and were not given.
    #[error("missing ids: {reason}")]
    MissingIds {
        /// Where they were needed.
        reason: String,
    },
    /// Two inputs that must have the same length do not.
    #[error("{what}: expected {expected} items, got {got}")]
    LengthMismatch {
        /// Which inputs.
        what: &'static str,
        /// The length of the leading input (usually the texts).
        expected: usize,
        /// The length of the other one.
        got: usize,
    },
    /// A malformed filter expression.
    #[error("invalid filter expression {expr:?}: {source}")]
    Filter {
        /// The expression.
        expr: String,
        /// Parser or type-checker error, with its byte offset.
        #[source]
        source: quiverdb_filter::FilterError,
    },
    /// An argument out of range (`k = 0`, both ids and a filter, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The embedding model failed.
    #[error("embedding failed: {0}")]
    Embedding(String),
    /// The store has no embedding model and the call needs one.
    #[error(
        "this store has no embedding model; use the *_by_vector / add_embeddings calls or set one"
    )]
    NoEmbeddings,
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A background job panicked; the store itself is unchanged.
    #[error("internal task panicked: {0}")]
    Panicked(String),
    /// A storage failure not covered above (I/O, encoding).
    #[error("storage: {0}")]
    Storage(String),
    /// An index failure not covered above.
    #[error("index: {0}")]
    Index(String),
    /// A remote backend (a Milvus server) refused the call: its status code and message.
    /// `code` is Milvus's error code (or the gRPC status code when the refusal came from
    /// the transport layer).
    #[error("server error (code {code}): {message}")]
    Remote {
        /// The server's error code.
        code: i32,
        /// The server's message, verbatim.
        message: String,
    },
    /// A remote backend could not be reached, or did not answer within the timeout.
    #[error("connection failed: {0}")]
    Connection(String),
    /// A store URI this build cannot open (for example an `http://` URI given to the
    /// embedded store, which lives in the `quiverdb-milvus` crate).
    #[error("unsupported URI {uri:?}: {reason}")]
    UnsupportedUri {
        /// The URI.
        uri: String,
        /// Why, and what to use instead.
        reason: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<quiverdb_storage::Error> for Error {
    fn from(e: quiverdb_storage::Error) -> Self {
        use quiverdb_storage::Error as S;
        match e {
            S::Locked { path } => Error::Locked { path },
            S::Corrupted { path, detail } => Error::Corrupted { path, detail },
            S::UnknownCollection { name } => Error::UnknownCollection { name },
            S::CollectionExists { name } => Error::CollectionExists { name },
            S::InvalidName { name, reason } => Error::InvalidName { name, reason },
            S::WrongDimension { expected, got } => Error::WrongDimension { expected, got },
            S::NonFiniteVector {
                row,
                component,
                value,
            } => Error::NonFiniteVector {
                row,
                component,
                value,
            },
            S::ZeroVector { row } => Error::ZeroVector { row },
            S::EmptyVector { row } => Error::EmptyVector { row },
            S::DuplicatePk { pk } => Error::DuplicateId { id: pk },
            S::WrongPkKind { expected, got } => Error::WrongIdKind { expected, id: got },
            S::MissingPk { row } => Error::MissingIds {
                reason: format!("record {row} has no id and the collection needs caller ids"),
            },
            other => Error::Storage(other.to_string()),
        }
    }
}

impl From<quiverdb_index::IndexError> for Error {
    fn from(e: quiverdb_index::IndexError) -> Self {
        use quiverdb_index::IndexError as I;
        match e {
            I::WrongDimension { expected, got } => Error::WrongDimension { expected, got },
            I::ZeroVector => Error::ZeroVector { row: 0 },
            other => Error::Index(other.to_string()),
        }
    }
}
