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
    /// Where the store lives, as a URI; overrides `path` when set. See [`Location::parse`]:
    /// a filesystem path (or `file://`) is the embedded store, `http(s)://` a Milvus server
    /// (opened by the `quiverdb-milvus` crate).
    pub uri: Option<String>,
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
            .field("uri", &self.uri)
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
            uri: None,
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
        self.config.uri = None;
        self
    }
    /// Stores in a temporary in-memory database (gone when the process ends).
    pub fn in_memory(mut self) -> Self {
        self.config.path = None;
        self.config.uri = None;
        self
    }
    /// Where the store lives, as a URI (see [`Location::parse`]): a directory path opens
    /// the embedded store; `http://host:19530` is a Milvus server, which
    /// [`StoreBuilder::open`] refuses with [`crate::Error::UnsupportedUri`] — open it with
    /// `quiverdb_milvus::AnyStore`, which takes the same builder.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.config.uri = Some(uri.into());
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

/// Where a store lives, decided by its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A temporary in-memory database.
    Memory,
    /// The embedded store in this database directory.
    Path(PathBuf),
    /// A remote server (`http://`, `https://` or `unix:`), served by `quiverdb-milvus`.
    Remote(String),
}

impl Location {
    /// Classifies a URI: `http://…`, `https://…` and `unix:…` are remote; `file://DIR` and
    /// any other string without a `scheme://` prefix are a directory; `""` and `:memory:`
    /// are in memory. Other schemes are [`crate::Error::UnsupportedUri`].
    pub fn parse(uri: &str) -> crate::Result<Location> {
        let trimmed = uri.trim();
        if trimmed.is_empty() || trimmed == ":memory:" {
            return Ok(Location::Memory);
        }
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("unix:")
        {
            return Ok(Location::Remote(trimmed.to_owned()));
        }
        if lower.starts_with("file://") {
            let rest = &trimmed["file://".len()..];
            if rest.is_empty() {
                return Err(crate::Error::UnsupportedUri {
                    uri: uri.to_owned(),
                    reason: "file:// needs a directory path".into(),
                });
            }
            return Ok(Location::Path(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = trimmed.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return Err(crate::Error::UnsupportedUri {
                    uri: uri.to_owned(),
                    reason: format!(
                        "unknown scheme {scheme:?}: expected a directory path, file://, http:// or https://"
                    ),
                });
            }
        }
        Ok(Location::Path(PathBuf::from(trimmed)))
    }
}

impl StoreConfig {
    /// Where this configuration points: the URI when one is set, else `path`.
    pub fn location(&self) -> crate::Result<Location> {
        match &self.uri {
            Some(uri) => Location::parse(uri),
            None => Ok(match &self.path {
                Some(p) => Location::Path(p.clone()),
                None => Location::Memory,
            }),
        }
    }

    /// The embedded store's directory (`None`: in memory); a remote URI is
    /// [`crate::Error::UnsupportedUri`], pointing to `quiverdb-milvus`.
    pub(crate) fn embedded_path(&self) -> crate::Result<Option<PathBuf>> {
        match self.location()? {
            Location::Memory => Ok(None),
            Location::Path(p) => Ok(Some(p)),
            Location::Remote(uri) => Err(crate::Error::UnsupportedUri {
                uri,
                reason: "the embedded store opens directories; a server URI is opened by \
                         quiverdb_milvus::AnyStore (crate quiverdb-milvus) with the same builder"
                    .into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_pick_a_location() {
        assert_eq!(Location::parse("").unwrap(), Location::Memory);
        assert_eq!(Location::parse(":memory:").unwrap(), Location::Memory);
        assert_eq!(
            Location::parse("./dev.quiver").unwrap(),
            Location::Path("./dev.quiver".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/x").unwrap(),
            Location::Path("/tmp/x".into())
        );
        assert_eq!(
            Location::parse("http://127.0.0.1:19530").unwrap(),
            Location::Remote("http://127.0.0.1:19530".into())
        );
        assert_eq!(
            Location::parse("HTTPS://milvus.example:443").unwrap(),
            Location::Remote("HTTPS://milvus.example:443".into())
        );
        assert!(matches!(
            Location::parse("unix:/tmp/m.sock").unwrap(),
            Location::Remote(_)
        ));
        assert!(matches!(
            Location::parse("grpc://host:1"),
            Err(crate::Error::UnsupportedUri { .. })
        ));
        assert!(matches!(
            Location::parse("file://"),
            Err(crate::Error::UnsupportedUri { .. })
        ));
    }

    #[test]
    fn embedded_open_refuses_a_server_uri() {
        let cfg = StoreConfig {
            uri: Some("http://localhost:19530".into()),
            ..StoreConfig::default()
        };
        let err = cfg.embedded_path().unwrap_err();
        assert!(err.to_string().contains("quiverdb-milvus"), "{err}");
        let cfg = StoreConfig {
            path: Some("/data/a".into()),
            ..StoreConfig::default()
        };
        assert_eq!(cfg.embedded_path().unwrap(), Some(PathBuf::from("/data/a")));
    }
}
