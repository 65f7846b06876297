//! Settings of the Milvus backend that the embedded store has no use for.

use std::time::Duration;

/// The vector index a new collection gets. AUTOINDEX (the default, as the Python store)
/// lets the server choose; Milvus Lite accepts only `AutoIndex`, `Flat` and `IvfFlat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MilvusIndex {
    /// The server's choice (Milvus `AUTOINDEX`).
    #[default]
    AutoIndex,
    /// Exact search (Milvus `FLAT`).
    Flat,
    /// Inverted lists (Milvus `IVF_FLAT`) with `nlist` clusters.
    IvfFlat {
        /// Number of clusters.
        nlist: u32,
    },
    /// HNSW (Milvus `HNSW`); searches pass `SearchOptions::ef` as `ef`.
    Hnsw {
        /// Links per node.
        m: u32,
        /// Build breadth.
        ef_construction: u32,
    },
}

/// How reads see writes (Milvus's consistency levels). `Strong` (the default here) makes
/// every write visible to the next search or query, as in the embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Consistency {
    /// Reads see every write acknowledged before them.
    #[default]
    Strong,
    /// Reads see this client's own writes.
    Session,
    /// Reads may lag writes by a bounded time.
    Bounded,
    /// Reads may lag writes.
    Eventually,
}

/// Connection and collection settings of a [`crate::MilvusStore`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MilvusOptions {
    /// How long to keep trying to connect (default 10 s). Connecting is the only step that
    /// is retried; a failed call after that is reported at once.
    pub connect_timeout: Duration,
    /// Deadline of each call after connecting; `None` (default) waits as long as the server
    /// takes.
    pub rpc_timeout: Option<Duration>,
    /// `user:password` or an API key; `None` for a server without authentication.
    pub token: Option<String>,
    /// The Milvus database (default: the server's `default`).
    pub database: Option<String>,
    /// Index of a new collection.
    pub index: MilvusIndex,
    /// Consistency level of a new collection and of every read.
    pub consistency: Consistency,
    /// Before inserting caller ids, ask the server which already exist and refuse them with
    /// `Error::DuplicateId`, as the embedded store does (default true). Milvus itself does
    /// not enforce unique keys; the check costs one query per insert and is not atomic
    /// against a concurrent writer of the same id.
    pub check_duplicate_ids: bool,
}

impl std::fmt::Debug for MilvusOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("database", &self.database)
            .field("index", &self.index)
            .field("consistency", &self.consistency)
            .field("check_duplicate_ids", &self.check_duplicate_ids)
            .finish()
    }
}

impl Default for MilvusOptions {
    fn default() -> Self {
        MilvusOptions {
            connect_timeout: Duration::from_secs(10),
            rpc_timeout: None,
            token: None,
            database: None,
            index: MilvusIndex::AutoIndex,
            consistency: Consistency::Strong,
            check_duplicate_ids: true,
        }
    }
}

impl MilvusOptions {
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Sets the per-call deadline.
    pub fn rpc_timeout(mut self, d: Duration) -> Self {
        self.rpc_timeout = Some(d);
        self
    }
    /// Sets the authentication token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Sets the database.
    pub fn database(mut self, db: impl Into<String>) -> Self {
        self.database = Some(db.into());
        self
    }
    /// Sets the index of a new collection.
    pub fn index(mut self, index: MilvusIndex) -> Self {
        self.index = index;
        self
    }
    /// Sets the consistency level.
    pub fn consistency(mut self, c: Consistency) -> Self {
        self.consistency = c;
        self
    }
    /// Whether inserts check caller ids for duplicates first.
    pub fn check_duplicate_ids(mut self, yes: bool) -> Self {
        self.check_duplicate_ids = yes;
        self
    }
}
