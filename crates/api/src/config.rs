use std::path::PathBuf;
use std::sync::Arc;

use quiverdb_types::Metric;

use crate::Embeddings;

/// Index parameters of a new collection (existing collections keep their stored ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// Graph engine: `"native"` (default), `"hnsw_rs"` or `"flat"` (exact).
    pub engine: String,
    /// HNSW links per node (default 16).
    pub m: usize,
    /// HNSW build breadth (default 200).
    pub ef_construction: usize,
    /// Default HNSW search breadth (default 64); searches use at least `k`.
    pub ef_search: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            engine: "native".into(),
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// How a [`crate::VectorStore`] is opened, in the spirit of the Python constructor.
#[derive(Clone)]
pub struct StoreConfig {
    /// Database directory; `None` is a temporary in-memory database.
    pub path: Option<PathBuf>,
    /// Collection name (default `LangChainCollection`).
    pub collection_name: String,
    /// The embedding model; without one only the `*_by_vector`/`add_embeddings` calls work.
    pub embeddings: Option<Arc<dyn Embeddings>>,
    /// Metric of a new collection (default L2, as Milvus AUTOINDEX).
    pub metric: Metric,
    /// Whether a new collection assigns int64 ids itself (default false: caller string ids).
    pub auto_id: bool,
    /// Drop an existing collection of the same name on open.
    pub drop_old: bool,
    /// Index parameters of a new collection.
    pub index: IndexOptions,
    /// Name of the primary-key field in filters and returned metadata (default `pk`).
    pub primary_field: String,
    /// Name of the text field in filters (default `text`).
    pub text_field: String,
    /// Name of the vector field (default `vector`; informational).
    pub vector_field: String,
    /// The CPU pool for searches, index builds and embedding; default: one shared pool.
    pub pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("collection_name", &self.collection_name)
            .field("embeddings", &self.embeddings.is_some())
            .field("metric", &self.metric)
            .field("auto_id", &self.auto_id)
            .field("drop_old", &self.drop_old)
            .field("index", &self.index)
            .field("primary_field", &self.primary_field)
            .field("text_field", &self.text_field)
            .field("vector_field", &self.vector_field)
            .finish_non_exhaustive()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: None,
            collection_name: "LangChainCollection".into(),
            embeddings: None,
            metric: Metric::L2,
            auto_id: false,
            drop_old: false,
            index: IndexOptions::default(),
            primary_field: "pk".into(),
            text_field: "text".into(),
            vector_field: "vector".into(),
            pool: None,
        }
    }
}

/// Builder of a [`crate::VectorStore`]; finish with [`StoreBuilder::open`] or
/// [`StoreBuilder::aopen`].
#[derive(Debug, Clone, Default)]
pub struct StoreBuilder {
    pub(crate) config: StoreConfig,
}

impl StoreBuilder {
    /// Stores in the database directory `path` (created if missing).
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.path = Some(path.into());
        self
    }
    /// Stores in a temporary in-memory database (gone when the process ends).
    pub fn in_memory(mut self) -> Self {
        self.config.path = None;
        self
    }
    /// The collection's name.
    pub fn collection_name(mut self, name: impl Into<String>) -> Self {
        self.config.collection_name = name.into();
        self
    }
    /// The embedding model.
    pub fn embeddings(mut self, e: impl Embeddings) -> Self {
        self.config.embeddings = Some(Arc::new(e));
        self
    }
    /// The embedding model, shared.
    pub fn embeddings_arc(mut self, e: Arc<dyn Embeddings>) -> Self {
        self.config.embeddings = Some(e);
        self
    }
    /// The metric of a new collection.
    pub fn metric(mut self, m: Metric) -> Self {
        self.config.metric = m;
        self
    }
    /// Whether a new collection assigns ids itself.
    pub fn auto_id(mut self, yes: bool) -> Self {
        self.config.auto_id = yes;
        self
    }
    /// Drop an existing collection of the same name first.
    pub fn drop_old(mut self, yes: bool) -> Self {
        self.config.drop_old = yes;
        self
    }
    /// Index parameters of a new collection.
    pub fn index(mut self, index: IndexOptions) -> Self {
        self.config.index = index;
        self
    }
    /// Field names used in filters and returned metadata.
    pub fn field_names(
        mut self,
        primary: impl Into<String>,
        text: impl Into<String>,
        vector: impl Into<String>,
    ) -> Self {
        self.config.primary_field = primary.into();
        self.config.text_field = text.into();
        self.config.vector_field = vector.into();
        self
    }
    /// A CPU pool of your own (else one shared pool, one thread per core).
    pub fn pool(mut self, pool: Arc<rayon::ThreadPool>) -> Self {
        self.config.pool = Some(pool);
        self
    }
    /// A dedicated CPU pool with `threads` threads.
    pub fn threads(mut self, threads: usize) -> crate::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("quiverdb-store-{i}"))
            .build()
            .map_err(|e| crate::Error::InvalidArgument(format!("cannot build CPU pool: {e}")))?;
        self.config.pool = Some(Arc::new(pool));
        Ok(self)
    }
    /// The configuration so far.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
}
