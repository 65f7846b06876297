//! [`MilvusStore`]: the QuiverDB store surface over a Milvus server — connection, the
//! collection's life cycle and schema mapping. The operations are in `ops.rs`, the
//! [`quiverdb::Store`] impl in `surface.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use milvus::v2::prelude::{
    ClientV2, CollectionSchema, ConnectConfig, ConsistencyLevel, CreateCollectionRequest,
    CreateIndexRequest, DataType, DescribeCollectionRequest, DescribeIndexRequest,
    DropCollectionRequest, FieldSchema, HasCollectionRequest, IndexParam, IndexType,
    LoadCollectionRequest, MetricType, RetryConfig,
};
use parking_lot::Mutex;
use quiverdb::types::{Metric, PkKind};
use quiverdb::{Embeddings, Error, Location, Result, StoreBuilder, StoreConfig};

use crate::errors::SdkResultExt;
use crate::lite_compat::is_identifier;
use crate::{Consistency, MilvusIndex, MilvusOptions};

/// Longest VARCHAR Milvus stores (bytes): the bound of the text and string-key fields.
pub(crate) const MAX_VARCHAR: u32 = 65_535;

/// The QuiverDB store surface over one collection of a Milvus server.
///
/// Cheap to clone and `Send + Sync`. It implements [`quiverdb::Store`] — the same
/// methods, options, `Document`s and errors as the embedded [`quiverdb::VectorStore`] —
/// over Milvus's gRPC protocol with the official `milvus-sdk-rust` client.
///
/// # Mapping
/// As the LangChain–Milvus store: a primary-key field (`int64`, auto ids or caller ids,
/// or `varchar` caller ids), a `varchar` text field, a float-vector field, and metadata
/// as Milvus dynamic fields. The collection is created by the first write (dimension from
/// the first vector, key kind from the first ids), with `AUTOINDEX` and the configured
/// metric, and consistency level `Strong`, so that a write is visible to the next read.
/// Embeddings are computed client-side; MMR reranks client-side the `fetch_k` hits'
/// vectors, fetched by key; relevance scores use the embedded store's formulas.
///
/// # Runtime
/// The SDK is async (tokio). The async methods run on the caller's tokio runtime (it must
/// have its time driver enabled, as `#[tokio::main]` does). The store also owns one
/// small runtime — a single worker thread, `quiverdb-milvus` — that drives the gRPC
/// connection and runs blocking embedding models for the async methods; it is shut down
/// when the last clone is dropped. The blocking methods need no runtime from the caller:
/// they park the calling thread until the call completes, which works from any thread
/// (inside an async task it blocks that worker, as any blocking call does — use the
/// `a`-methods there).
///
/// # Differences from the embedded store
/// * Milvus does not enforce unique keys: inserts check caller ids first (see
///   [`MilvusOptions::check_duplicate_ids`]), which is not atomic against a concurrent
///   writer of the same id.
/// * Auto ids are the server's (large, time-based), not 1, 2, 3, ….
/// * Approximate search may order near-ties differently; scores are `f32` from the server.
/// * `k` (and MMR's `fetch_k`) is bounded by Milvus's top-k limit (16,384); larger is a
///   server error.
/// * Metadata keys named like the key, text or vector field are not stored (they would
///   shadow those fields); non-finite float metadata is stored as `null`.
#[derive(Clone)]
pub struct MilvusStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for MilvusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusStore")
            .field("uri", &self.inner.uri)
            .field("collection", &self.inner.config.collection_name)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub client: ClientV2,
    pub config: StoreConfig,
    pub options: MilvusOptions,
    pub uri: String,
    state: Mutex<State>,
    /// Serializes collection creation and drop. An async mutex on purpose: creating a
    /// collection is several server calls, and concurrent first writes must wait for them.
    pub create_lock: tokio::sync::Mutex<()>,
    pub runtime: OwnedRuntime,
}

/// The collection's schema as far as the store needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schema {
    pub pk_kind: PkKind,
    pub dim: usize,
    pub metric: Metric,
}

#[derive(Default)]
struct State {
    schema: Option<Schema>,
    closed: bool,
}

/// The store's own runtime, shut down without blocking when dropped (dropping a tokio
/// runtime normally blocks, and panics inside an async context).
pub(crate) struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    fn new() -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quiverdb-milvus")
            .enable_all()
            .build()
            .map(|rt| OwnedRuntime(Some(rt)))
            .map_err(|e| Error::Connection(format!("cannot start the client's I/O thread: {e}")))
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .map(tokio::runtime::Runtime::handle)
            .expect("the runtime is present until drop")
    }

    /// Runs `fut` to completion on the calling thread, inside this runtime's context (so
    /// the SDK's timers and spawned tasks land on it).
    ///
    /// `unconstrained`: when the caller is itself a tokio task, tokio's cooperative budget
    /// is the caller's (thread-local); once spent, every tokio resource answers "pending,
    /// wake me at once", and a nested poll loop would spin forever without yielding.
    pub fn block<F: Future>(&self, fut: F) -> F::Output {
        let _guard = self.handle().enter();
        crate::block::block_on(tokio::task::unconstrained(fut))
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl MilvusStore {
    /// Connects to the server named by the builder's URI (`http://host:port` or
    /// `https://…`) with default [`MilvusOptions`], and opens the collection if it exists.
    pub fn open(builder: StoreBuilder) -> Result<MilvusStore> {
        Self::open_with(builder, MilvusOptions::default())
    }

    /// [`MilvusStore::open`] with explicit options.
    pub fn open_with(builder: StoreBuilder, options: MilvusOptions) -> Result<MilvusStore> {
        let (config, uri) = prepare(builder, &options)?;
        let runtime = OwnedRuntime::new()?;
        let client = runtime.block(connect(&uri, &options))?;
        let store = MilvusStore::assemble(client, config, options, uri, runtime);
        store.inner.runtime.block(store.init())?;
        Ok(store)
    }

    /// Async [`MilvusStore::open`].
    pub async fn aopen(builder: StoreBuilder) -> Result<MilvusStore> {
        Self::aopen_with(builder, MilvusOptions::default()).await
    }

    /// Async [`MilvusStore::open_with`].
    pub async fn aopen_with(builder: StoreBuilder, options: MilvusOptions) -> Result<MilvusStore> {
        let (config, uri) = prepare(builder, &options)?;
        let runtime = OwnedRuntime::new()?;
        // Connect on the store's runtime, so the connection's background task lives there.
        let (u, o) = (uri.clone(), options.clone());
        let client = runtime
            .handle()
            .spawn(async move { connect(&u, &o).await })
            .await
            .map_err(|e| Error::Panicked(e.to_string()))??;
        let store = MilvusStore::assemble(client, config, options, uri, runtime);
        store.init().await?;
        Ok(store)
    }

    fn assemble(
        client: ClientV2,
        config: StoreConfig,
        options: MilvusOptions,
        uri: String,
        runtime: OwnedRuntime,
    ) -> MilvusStore {
        MilvusStore {
            inner: Arc::new(Inner {
                client,
                config,
                options,
                uri,
                state: Mutex::new(State::default()),
                create_lock: tokio::sync::Mutex::new(()),
                runtime,
            }),
        }
    }

    /// `drop_old`, then the existing collection's schema (and load) if there is one.
    async fn init(&self) -> Result<()> {
        let name = self.inner.config.collection_name.clone();
        if self.inner.config.drop_old && self.remote_has_collection().await? {
            self.inner
                .client
                .drop_collection(
                    DropCollectionRequest::builder()
                        .collection_name(&name)
                        .build()
                        .remote()?,
                )
                .await
                .remote()?;
        }
        if let Some(schema) = self.describe_remote().await? {
            self.inner.state.lock().schema = Some(schema);
        }
        Ok(())
    }

    /// The server URI.
    pub fn uri(&self) -> &str {
        &self.inner.uri
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The Milvus options.
    pub fn options(&self) -> &MilvusOptions {
        &self.inner.options
    }

    pub(crate) fn block<F: Future>(&self, fut: F) -> F::Output {
        self.inner.runtime.block(fut)
    }

    pub(crate) fn embeddings(&self) -> Result<&Arc<dyn Embeddings>> {
        self.inner
            .config
            .embeddings
            .as_ref()
            .ok_or(Error::NoEmbeddings)
    }

    /// The cached schema; `Err(Closed)` after `close`.
    pub(crate) fn schema(&self) -> Result<Option<Schema>> {
        let state = self.inner.state.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        Ok(state.schema)
    }

    pub(crate) fn set_closed(&self) {
        let mut state = self.inner.state.lock();
        state.closed = true;
        state.schema = None;
    }

    pub(crate) async fn remote_has_collection(&self) -> Result<bool> {
        let resp = self
            .inner
            .client
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name(&self.inner.config.collection_name)
                    .build()
                    .remote()?,
            )
            .await
            .remote()?;
        Ok(resp.exists())
    }

    /// Reads an existing collection's schema and index metric, creates the index if it is
    /// missing, and loads the collection. `None` when there is no collection.
    async fn describe_remote(&self) -> Result<Option<Schema>> {
        let cfg = &self.inner.config;
        if !self.remote_has_collection().await? {
            return Ok(None);
        }
        let desc = self
            .inner
            .client
            .describe_collection(
                DescribeCollectionRequest::builder()
                    .collection_name(&cfg.collection_name)
                    .build()
                    .remote()?,
            )
            .await
            .remote()?;
        let fields = desc.description().get_schema().get_fields();
        let find = |name: &str| fields.iter().find(|f| f.get_name() == name);
        let mismatch = |what: String| {
            Error::InvalidArgument(format!(
                "the existing collection {:?} does not match this store: {what}",
                cfg.collection_name
            ))
        };
        let pk = fields
            .iter()
            .find(|f| f.is_primary_key())
            .ok_or_else(|| mismatch("it has no primary key".into()))?;
        if pk.get_name() != cfg.primary_field {
            return Err(mismatch(format!(
                "its primary key is {:?}, the store's primary_field is {:?}",
                pk.get_name(),
                cfg.primary_field
            )));
        }
        let pk_kind = match (pk.get_data_type(), pk.is_auto_id()) {
            (DataType::Int64, true) => PkKind::AutoInt,
            (DataType::Int64, false) => PkKind::Int,
            (DataType::VarChar, _) => PkKind::Str,
            (other, _) => return Err(mismatch(format!("its primary key is {other:?}"))),
        };
        let vector = find(&cfg.vector_field)
            .filter(|f| f.get_data_type() == DataType::FloatVector)
            .ok_or_else(|| mismatch(format!("no float vector field {:?}", cfg.vector_field)))?;
        find(&cfg.text_field)
            .filter(|f| f.get_data_type() == DataType::VarChar)
            .ok_or_else(|| mismatch(format!("no varchar text field {:?}", cfg.text_field)))?;
        let dim = vector.get_dimension() as usize;
        let metric = match self.index_metric().await? {
            Some(m) => m,
            None => {
                self.create_index(cfg.metric).await?;
                cfg.metric
            }
        };
        self.load().await?;
        Ok(Some(Schema {
            pk_kind,
            dim,
            metric,
        }))
    }

    /// The metric of the vector field's index; `None` when it has no index.
    async fn index_metric(&self) -> Result<Option<Metric>> {
        let cfg = &self.inner.config;
        let resp = self
            .inner
            .client
            .describe_index(
                DescribeIndexRequest::builder()
                    .collection_name(&cfg.collection_name)
                    .field_name(&cfg.vector_field)
                    .build()
                    .remote()?,
            )
            .await;
        let resp = match resp {
            Ok(r) => r,
            // "index not found" is a server error; any other failure will surface on load.
            Err(milvus::v2::error::Error::Server(_)) => return Ok(None),
            Err(e) => return Err(crate::errors::from_sdk(e)),
        };
        Ok(resp
            .indexes()
            .first()
            .and_then(|i| match i.get_metric_type() {
                MetricType::L2 => Some(Metric::L2),
                MetricType::Ip => Some(Metric::Ip),
                MetricType::Cosine => Some(Metric::Cosine),
                _ => None,
            }))
    }

    async fn create_index(&self, metric: Metric) -> Result<()> {
        let cfg = &self.inner.config;
        let (index_type, params) = index_spec(self.inner.options.index);
        let param = IndexParam::new()
            .field_name(&cfg.vector_field)
            .index_type(index_type)
            .metric_type(metric_type(metric))
            .extra_params(params);
        // sync(false): see lite_compat, workaround 5; loading waits for the index.
        self.inner
            .client
            .create_index(
                CreateIndexRequest::builder()
                    .collection_name(&cfg.collection_name)
                    .index_param(param)
                    .sync(false)
                    .build()
                    .remote()?,
            )
            .await
            .remote()
    }

    async fn load(&self) -> Result<()> {
        self.inner
            .client
            .load_collection(
                LoadCollectionRequest::builder()
                    .collection_name(&self.inner.config.collection_name)
                    .build()
                    .remote()?,
            )
            .await
            .remote()
    }

    /// The collection's schema, creating the collection if needed with `dim` and the key
    /// kind the first ids imply.
    pub(crate) async fn ensure_collection(
        &self,
        dim: usize,
        ids: Option<&[quiverdb::Pk]>,
    ) -> Result<Schema> {
        if let Some(s) = self.schema()? {
            return Ok(s);
        }
        let _creating = self.inner.create_lock.lock().await;
        if let Some(s) = self.schema()? {
            return Ok(s);
        }
        // Another client may have created it meanwhile.
        let schema = match self.describe_remote().await? {
            Some(s) => s,
            None => {
                let cfg = &self.inner.config;
                let pk_kind = crate::mapping::kind_for_new_collection(cfg.auto_id, ids);
                self.create_collection(pk_kind, dim).await?;
                Schema {
                    pk_kind,
                    dim,
                    metric: cfg.metric,
                }
            }
        };
        let mut state = self.inner.state.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        state.schema = Some(schema);
        Ok(schema)
    }

    async fn create_collection(&self, pk_kind: PkKind, dim: usize) -> Result<()> {
        let cfg = &self.inner.config;
        let dim32 = u32::try_from(dim)
            .map_err(|_| Error::InvalidArgument(format!("dimension {dim} is too large")))?;
        let pk = FieldSchema::new()
            .name(&cfg.primary_field)
            .primary_key(true);
        let pk = match pk_kind {
            PkKind::Str => pk.data_type(DataType::VarChar).max_length(MAX_VARCHAR),
            PkKind::Int => pk.data_type(DataType::Int64).auto_id(false),
            PkKind::AutoInt => pk.data_type(DataType::Int64).auto_id(true),
        };
        let schema = CollectionSchema::new()
            .enable_dynamic_field(true)
            .add_field(pk)
            .add_field(
                FieldSchema::new()
                    .name(&cfg.text_field)
                    .data_type(DataType::VarChar)
                    .max_length(MAX_VARCHAR),
            )
            .add_field(
                FieldSchema::new()
                    .name(&cfg.vector_field)
                    .data_type(DataType::FloatVector)
                    .dimension(dim32),
            );
        self.inner
            .client
            .create_collection(
                CreateCollectionRequest::builder()
                    .collection_name(&cfg.collection_name)
                    .schema(schema)
                    .consistency_level(consistency_level(self.inner.options.consistency))
                    .build()
                    .remote()?,
            )
            .await
            .remote()?;
        self.create_index(cfg.metric).await?;
        self.load().await
    }

    /// Drops the collection; returns whether it existed.
    pub(crate) async fn drop_collection(&self) -> Result<bool> {
        self.schema()?;
        let _creating = self.inner.create_lock.lock().await;
        self.inner.state.lock().schema = None;
        if !self.remote_has_collection().await? {
            return Ok(false);
        }
        self.inner
            .client
            .drop_collection(
                DropCollectionRequest::builder()
                    .collection_name(&self.inner.config.collection_name)
                    .build()
                    .remote()?,
            )
            .await
            .remote()?;
        Ok(true)
    }

    pub(crate) fn read_consistency(&self) -> ConsistencyLevel {
        consistency_level(self.inner.options.consistency)
    }
}

/// Validates the builder for a server and extracts its URI.
fn prepare(builder: StoreBuilder, options: &MilvusOptions) -> Result<(StoreConfig, String)> {
    let config = builder.config().clone();
    let uri = match config.location()? {
        Location::Remote(uri) => uri,
        Location::Memory | Location::Path(_) => {
            return Err(Error::UnsupportedUri {
                uri: config.uri.clone().unwrap_or_default(),
                reason: "MilvusStore needs an http:// or https:// server URI; \
                         use AnyStore to open a path with the embedded store"
                    .into(),
            })
        }
    };
    if uri.to_ascii_lowercase().starts_with("unix:") {
        return Err(Error::UnsupportedUri {
            uri,
            reason: "unix-socket endpoints are not supported: milvus-sdk-rust's ClientV2 \
                     connects over TCP only; start the server on 127.0.0.1:PORT and use \
                     http://127.0.0.1:PORT"
                .into(),
        });
    }
    for (what, name) in [
        ("primary_field", &config.primary_field),
        ("text_field", &config.text_field),
        ("vector_field", &config.vector_field),
    ] {
        if !is_identifier(name) {
            return Err(Error::InvalidArgument(format!(
                "{what} {name:?} is not a Milvus field name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
    }
    let n = &config.collection_name;
    if !is_identifier(n) || n.len() > 255 {
        return Err(Error::InvalidName {
            name: n.clone(),
            reason: "a Milvus collection name is letters, digits and underscores, \
                     not starting with a digit, at most 255 characters"
                .into(),
        });
    }
    if options.connect_timeout.is_zero() {
        return Err(Error::InvalidArgument(
            "connect_timeout must be positive".into(),
        ));
    }
    Ok((config, uri))
}

/// Connects (the only retried step: `ClientV2::new` retries `Connect` until the
/// timeout), then turns retries off for every later call.
async fn connect(uri: &str, options: &MilvusOptions) -> Result<ClientV2> {
    let mut cfg = ConnectConfig::new()
        .uri(uri)
        .connect_timeout(options.connect_timeout)
        .retry(RetryConfig::new().max_attempts(1));
    if let Some(t) = options.rpc_timeout {
        cfg = cfg.rpc_timeout(t);
    }
    if let Some(t) = &options.token {
        cfg = cfg.token(t.clone());
    }
    if let Some(db) = &options.database {
        cfg = cfg.database(db.clone());
    }
    ClientV2::new(&cfg)
        .await
        .map_err(|e| match crate::errors::from_sdk(e) {
            Error::Connection(m) => Error::Connection(format!("{uri}: {m}")),
            Error::Remote { code, message } => Error::Remote {
                code,
                message: format!("{uri}: {message}"),
            },
            other => other,
        })
}

pub(crate) fn metric_type(m: Metric) -> MetricType {
    match m {
        Metric::L2 => MetricType::L2,
        Metric::Ip => MetricType::Ip,
        Metric::Cosine => MetricType::Cosine,
    }
}

fn consistency_level(c: Consistency) -> ConsistencyLevel {
    match c {
        Consistency::Strong => ConsistencyLevel::Strong,
        Consistency::Session => ConsistencyLevel::Session,
        Consistency::Bounded => ConsistencyLevel::Bounded,
        Consistency::Eventually => ConsistencyLevel::Eventually,
    }
}

fn index_spec(index: MilvusIndex) -> (IndexType, HashMap<String, String>) {
    let mut params = HashMap::new();
    let t = match index {
        MilvusIndex::AutoIndex => IndexType::AutoIndex,
        MilvusIndex::Flat => IndexType::Flat,
        MilvusIndex::IvfFlat { nlist } => {
            params.insert("nlist".into(), nlist.to_string());
            IndexType::IvfFlat
        }
        MilvusIndex::Hnsw { m, ef_construction } => {
            params.insert("M".into(), m.to_string());
            params.insert("efConstruction".into(), ef_construction.to_string());
            IndexType::Hnsw
        }
    };
    (t, params)
}
