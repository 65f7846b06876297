//! [`VectorStore`]: the LangChain–Milvus surface over one collection (blocking calls).
//! The async twins are in `async_api.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiverdb_filter::{Filter, Params};
use quiverdb_storage::{CollectionConfig, Database, IndexParams, NewRecord};
use quiverdb_types::{Metadata, Metric, Pk, PkKind};

use crate::config::{StoreBuilder, StoreConfig};
use crate::live::LiveCollection;
use crate::rules::{self, UpsertInput};
use crate::write::{self, PreparedWrite};
use crate::{Document, Embeddings, Error, Result};

/// An embedded vector store over one collection, with the LangChain–Milvus methods.
///
/// Cheap to clone (`Arc` inside) and `Send + Sync`. Every method exists twice: `name`
/// (blocking; needs no async runtime) and `aname` (async; runs CPU work on the store's
/// rayon pool and waits for durability through group commit, never blocking the caller's
/// executor). Both return the same results for the same arguments.
///
/// The collection is created lazily by the first write, as in the Python store: its
/// dimension comes from the first vector, its key kind from the first ids (or auto ids).
#[derive(Clone)]
pub struct VectorStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Database,
    pub config: StoreConfig,
    pub pool: crate::bridge::CpuPool,
    /// Async similarity searches waiting for the pool.
    pub searches: crate::coalesce::SearchQueue,
    state: RwLock<State>,
    create_lock: Mutex<()>,
}

#[derive(Default)]
struct State {
    live: Option<Arc<LiveCollection>>,
    closed: bool,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("collection", &self.inner.config.collection_name)
            .field("path", &self.inner.config.path)
            .finish_non_exhaustive()
    }
}

/// Where a collection's index snapshot lives: `<db>/index/<collection>/`.
pub(crate) fn snapshot_dir(db: &Database, name: &str) -> Option<PathBuf> {
    db.path().map(|p| p.join("index").join(name))
}

pub(crate) fn remove_snapshot(db: &Database, name: &str) {
    if let Some(dir) = snapshot_dir(db, name) {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove index snapshot");
            }
        }
    }
}

pub(crate) fn index_params(o: &crate::IndexOptions) -> IndexParams {
    IndexParams {
        engine: o.engine.clone(),
        m: o.m,
        ef_construction: o.ef_construction,
        ef_search: o.ef_search,
    }
}

/// What [`CollectionInfo`](crate::CollectionInfo) says of a collection from its storage
/// alone (no rows or index loaded): all but `index_stats`, which is `None`.
pub(crate) fn stored_info(
    db: &Database,
    coll: &quiverdb_storage::Collection,
) -> Result<crate::CollectionInfo> {
    let schema = coll.schema();
    let snapshot_modified = snapshot_dir(db, &schema.name)
        .and_then(|d| std::fs::metadata(d).ok())
        .and_then(|m| m.modified().ok());
    Ok(crate::CollectionInfo {
        dimension: schema.dimension,
        metric: schema.metric,
        pk_kind: schema.pk_kind,
        records: coll.count()?,
        index: crate::IndexOptions {
            engine: schema.index.engine,
            m: schema.index.m,
            ef_construction: schema.index.ef_construction,
            ef_search: schema.index.ef_search,
        },
        index_stats: None,
        last_seq: coll.last_seq(),
        snapshot_modified,
        name: schema.name,
    })
}

/// Checks index options before anything is created with them.
pub(crate) fn validate_index_options(
    o: &crate::IndexOptions,
    dim: usize,
    metric: Metric,
) -> Result<()> {
    if !["native", "hnsw_rs", "flat"].contains(&o.engine.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "unknown index engine {:?}: expected native, hnsw_rs or flat",
            o.engine
        )));
    }
    let mut c =
        quiverdb_index::IndexConfig::new(crate::live::engine_from_name(&o.engine), metric, dim);
    c.m = o.m;
    c.ef_construction = o.ef_construction;
    c.ef_search = o.ef_search;
    c.validate()
        .map_err(|e| Error::InvalidArgument(e.to_string()))
}

impl StoreBuilder {
    /// Opens the store (blocking): the database, and the collection if it exists.
    pub fn open(self) -> Result<VectorStore> {
        let config = self.config;
        validate_index_options(&config.index, 1, config.metric)?;
        let db = match config.embedded_path()? {
            Some(p) => Database::open(&p)?,
            None => Database::temporary()?,
        };
        let pool = crate::bridge::CpuPool::from_config(config.pool.as_ref());
        let name = config.collection_name.clone();
        if config.drop_old {
            db.drop_collection(&name)?;
            remove_snapshot(&db, &name);
        }
        let store = VectorStore {
            inner: Arc::new(Inner {
                db,
                config,
                pool,
                searches: Default::default(),
                state: RwLock::new(State::default()),
                create_lock: Mutex::new(()),
            }),
        };
        if store.inner.db.has_collection(&name)? {
            let coll = store.inner.db.open_collection(&name)?;
            let live = store.load(coll)?;
            store.inner.state.write().live = Some(live);
        }
        Ok(store)
    }

    /// Opens the store without blocking the caller's executor.
    pub async fn aopen(self) -> Result<VectorStore> {
        let pool = crate::bridge::CpuPool::from_config(self.config.pool.as_ref());
        pool.run(move || self.open()).await
    }
}

impl VectorStore {
    /// A builder with the LangChain–Milvus defaults (collection `LangChainCollection`,
    /// L2, caller ids, in-memory until a path is set).
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Builds a store and adds `texts` in one call. Ids given → caller ids; none → auto ids
    /// (as the Python `from_texts`).
    pub fn from_texts<S: Into<String>>(
        texts: impl IntoIterator<Item = S>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
        builder: StoreBuilder,
    ) -> Result<VectorStore> {
        let has_ids = ids.as_ref().is_some_and(|i| !i.is_empty());
        let store = builder.auto_id(!has_ids).open()?;
        store.add_texts(texts, metadatas, ids.filter(|_| has_ids))?;
        Ok(store)
    }

    /// Builds a store and adds `documents`; their ids are used when every one has one.
    pub fn from_documents(documents: Vec<Document>, builder: StoreBuilder) -> Result<VectorStore> {
        let ids = documents
            .iter()
            .map(|d| d.id.clone().map(Pk::Str))
            .collect::<Option<Vec<_>>>()
            .filter(|ids| !ids.is_empty());
        let store = builder.auto_id(ids.is_none()).open()?;
        store.add_documents(documents, ids)?;
        Ok(store)
    }

    /// The collection's name.
    pub fn collection_name(&self) -> &str {
        &self.inner.config.collection_name
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The collection's metric: the stored one once the collection exists (also after a
    /// reopen — the Python store falls back to L2 there), else the configured one.
    pub fn metric(&self) -> Metric {
        match self.live() {
            Ok(Some(live)) => live.metric,
            _ => self.inner.config.metric,
        }
    }

    /// Whether the collection exists (it is created by the first write).
    pub fn has_collection(&self) -> Result<bool> {
        Ok(self.live()?.is_some())
    }

    /// The collection's schema, counts and index state; `None` before it exists.
    pub fn describe(&self) -> Result<Option<crate::CollectionInfo>> {
        let Some(live) = self.live()? else {
            return Ok(None);
        };
        live.catch_up()?;
        let index_stats = live.index().map(|i| {
            let st = i.stats();
            crate::IndexState {
                engine: st.engine.to_owned(),
                live: st.live,
                tombstones: st.tombstones,
                memory_bytes: st.memory_bytes,
            }
        });
        let records = live.rows().len();
        Ok(Some(crate::CollectionInfo {
            records,
            index_stats,
            ..stored_info(&self.inner.db, &live.coll)?
        }))
    }

    /// Every record with its stored vector (normalized for cosine), in primary-key order:
    /// for exports and backups. Reads storage, so it sees exactly what is durable.
    pub fn export_records(&self) -> Result<Vec<(Document, Vec<f32>)>> {
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        let pk_field = &self.inner.config.primary_field;
        let mut rows = Vec::new();
        for record in live.coll.scan() {
            let r = record?;
            let row = crate::rows::RowData {
                pk: r.pk,
                text: r.text,
                metadata: r.metadata,
            };
            rows.push((row, r.vector));
        }
        rows.sort_by(|a, b| a.0.pk.cmp(&b.0.pk));
        Ok(rows
            .into_iter()
            .map(|(row, v)| (row.to_document(pk_field, None), v))
            .collect())
    }

    /// Cross-checks storage (its own integrity check) against the derived state: every
    /// stored record is in the in-memory rows and in the index, and nothing else is.
    pub fn check_integrity(&self) -> Result<crate::IntegrityReport> {
        let Some(live) = self.live()? else {
            return Ok(crate::IntegrityReport::default());
        };
        live.catch_up()?;
        let storage = live.coll.check_integrity()?;
        let mut problems = storage.problems.clone();
        if storage.problem_count > storage.problems.len() {
            problems.push(format!(
                "... and {} more storage problems",
                storage.problem_count - storage.problems.len()
            ));
        }
        let rows = live.rows();
        if rows.len() != storage.rows {
            problems.push(format!(
                "{} rows in memory, {} in storage",
                rows.len(),
                storage.rows
            ));
        }
        let indexed = match live.index() {
            Some(index) => {
                let missing = rows.row_ids().filter(|r| !index.contains(*r)).count();
                if missing > 0 {
                    problems.push(format!("{missing} stored rows are missing from the index"));
                }
                if index.len() != rows.len() {
                    problems.push(format!(
                        "the index holds {} live rows, storage {}",
                        index.len(),
                        rows.len()
                    ));
                }
                index.len()
            }
            None => 0,
        };
        Ok(crate::IntegrityReport {
            records: storage.rows,
            indexed,
            problems,
        })
    }

    /// Number of live records.
    pub fn count(&self) -> Result<usize> {
        Ok(match self.live()? {
            Some(live) => {
                live.catch_up()?;
                live.rows().len()
            }
            None => 0,
        })
    }

    pub(crate) fn live(&self) -> Result<Option<Arc<LiveCollection>>> {
        let state = self.inner.state.read();
        if state.closed {
            return Err(Error::Closed);
        }
        Ok(state.live.clone())
    }

    fn load(&self, coll: quiverdb_storage::Collection) -> Result<Arc<LiveCollection>> {
        let dir = snapshot_dir(&self.inner.db, coll.name());
        Ok(Arc::new(LiveCollection::load(
            coll,
            self.inner.pool.rayon().clone(),
            dir,
        )?))
    }

    /// The collection, created on first use with the key kind the first write implies.
    pub(crate) fn ensure_live(&self, ids: Option<&[Pk]>) -> Result<Arc<LiveCollection>> {
        if let Some(live) = self.live()? {
            return Ok(live);
        }
        let _creating = self.inner.create_lock.lock();
        if let Some(live) = self.live()? {
            return Ok(live);
        }
        let cfg = &self.inner.config;
        let name = &cfg.collection_name;
        let db = &self.inner.db;
        let coll = if db.has_collection(name)? {
            db.open_collection(name)?
        } else {
            let config = CollectionConfig {
                dimension: None,
                metric: cfg.metric,
                pk_kind: rules::kind_for_new_collection(cfg.auto_id, ids),
                index: index_params(&cfg.index),
                drop_old: false,
            };
            remove_snapshot(db, name);
            match db.create_collection(name, config) {
                Ok(c) => c,
                Err(quiverdb_storage::Error::CollectionExists { .. }) => {
                    db.open_collection(name)?
                }
                Err(e) => return Err(e.into()),
            }
        };
        let live = self.load(coll)?;
        let mut state = self.inner.state.write();
        if state.closed {
            return Err(Error::Closed);
        }
        state.live = Some(live.clone());
        Ok(live)
    }

    pub(crate) fn embeddings(&self) -> Result<&Arc<dyn Embeddings>> {
        self.inner
            .config
            .embeddings
            .as_ref()
            .ok_or(Error::NoEmbeddings)
    }

    /// Compiles a filter against the collection's field names; `None` for no filter.
    pub(crate) fn compile_filter(
        &self,
        expr: Option<&str>,
        params: &Params,
    ) -> Result<Option<Filter>> {
        let Some(expr) = expr else {
            return Ok(None);
        };
        let pk_is_int = match self.live()? {
            Some(live) => live.pk_kind != PkKind::Str,
            None => self.inner.config.auto_id,
        };
        let cfg = &self.inner.config;
        let schema =
            quiverdb_filter::Schema::dynamic(&cfg.primary_field, pk_is_int, &cfg.text_field);
        quiverdb_filter::compile(expr, &schema, params)
            .map(Some)
            .map_err(|source| Error::Filter {
                expr: expr.to_owned(),
                source,
            })
    }

    // ---- writes ----------------------------------------------------------------------

    /// Embeds `texts` and adds them; returns their ids. Empty input returns `[]` without
    /// calling the embedder.
    pub fn add_texts<S: Into<String>>(
        &self,
        texts: impl IntoIterator<Item = S>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let texts: Vec<String> = texts.into_iter().map(Into::into).collect();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self
            .embeddings()?
            .embed_documents(&texts)
            .map_err(Error::Embedding)?;
        self.add_embeddings(texts, vectors, metadatas, ids)
    }

    /// Adds documents (text and metadata); ids from `ids`, else from every document's
    /// `id` when all have one, else auto ids.
    pub fn add_documents(&self, documents: Vec<Document>, ids: Option<Vec<Pk>>) -> Result<Vec<Pk>> {
        let (texts, metadatas, doc_ids) = rules::split_documents(documents);
        let ids = match ids {
            Some(ids) => Some(ids),
            None => self.ids_from_documents(doc_ids)?,
        };
        self.add_texts(texts, Some(metadatas), ids)
    }

    /// Adds texts with precomputed vectors; returns their ids.
    pub fn add_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let Some(prepared) = self.prepare_insert(texts, embeddings, metadatas, ids, false)? else {
            return Ok(Vec::new());
        };
        let receipt = prepared.commit()?.apply()?;
        Ok(receipt.inserted.into_iter().map(|(pk, _)| pk).collect())
    }

    /// Replaces whole records by id (inserting those that do not exist); ids from `ids`,
    /// else from each document's `id` (a missing one is an error). Returns the ids.
    pub fn upsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        let Some((texts, metadatas, ids)) = self.prepare_upsert_ids(ids, documents)? else {
            return Ok(Vec::new());
        };
        let vectors = self
            .embeddings()?
            .embed_documents(&texts)
            .map_err(Error::Embedding)?;
        let Some(prepared) =
            self.prepare_insert(texts, vectors, Some(metadatas), Some(ids), true)?
        else {
            return Ok(Vec::new());
        };
        let receipt = prepared.commit()?.apply()?;
        Ok(receipt.inserted.into_iter().map(|(pk, _)| pk).collect())
    }

    /// Deletes by ids or by a filter expression (not both; an empty filter is refused so
    /// that a typo cannot delete everything). Returns how many records were deleted.
    pub fn delete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        let Some(prepared) = self.prepare_delete(ids, expr)? else {
            return Ok(0);
        };
        Ok(prepared.commit()?.apply()?.removed.len())
    }

    /// Drops the collection (a later write creates it again). Returns whether it existed.
    pub fn drop(&self) -> Result<bool> {
        let _creating = self.inner.create_lock.lock();
        {
            let mut state = self.inner.state.write();
            if state.closed {
                return Err(Error::Closed);
            }
            state.live = None;
        }
        let name = &self.inner.config.collection_name;
        let existed = self.inner.db.drop_collection(name)?;
        remove_snapshot(&self.inner.db, name);
        Ok(existed)
    }

    /// Writes the index snapshot and flushes; later calls get [`Error::Closed`]. Data is
    /// durable after every successful write anyway: closing only saves reopen time.
    pub fn close(&self) -> Result<()> {
        let live = {
            let mut state = self.inner.state.write();
            if state.closed {
                return Ok(());
            }
            state.closed = true;
            state.live.take()
        };
        if let Some(live) = live {
            live.save_snapshot()?;
        }
        self.inner.db.flush()?;
        Ok(())
    }

    pub(crate) fn prepare_insert(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
        upsert: bool,
    ) -> Result<Option<PreparedWrite>> {
        let n = texts.len();
        if embeddings.len() != n {
            return Err(Error::LengthMismatch {
                what: "embeddings",
                expected: n,
                got: embeddings.len(),
            });
        }
        if let Some(m) = &metadatas {
            if m.len() != n {
                return Err(Error::LengthMismatch {
                    what: "metadatas",
                    expected: n,
                    got: m.len(),
                });
            }
        }
        if n == 0 {
            return Ok(None);
        }
        let live = self.ensure_live(ids.as_deref())?;
        let kind = live.pk_kind;
        let pks = if upsert {
            let ids = ids.ok_or_else(|| Error::MissingIds {
                reason: "upsert replaces records by id".into(),
            })?;
            let kind = if kind == PkKind::AutoInt {
                PkKind::Int
            } else {
                kind
            };
            rules::check_ids(kind, &ids, n)?;
            ids.into_iter().map(Some).collect()
        } else {
            write::insert_ids(kind, n, ids)?
        };
        let metadatas = metadatas.unwrap_or_else(|| vec![Metadata::new(); n]);
        let records = texts
            .into_iter()
            .zip(embeddings)
            .zip(metadatas)
            .zip(pks)
            .map(|(((text, vector), metadata), pk)| NewRecord {
                pk,
                text,
                metadata,
                vector,
            })
            .collect();
        Ok(Some(PreparedWrite::insert(live, upsert, records)))
    }

    pub(crate) fn prepare_upsert_ids(
        &self,
        ids: Option<Vec<Pk>>,
        documents: Vec<Document>,
    ) -> Result<Option<UpsertInput>> {
        rules::upsert_input(ids, documents, self.inner.config.auto_id, || {
            Ok(self.live()?.map(|live| live.pk_kind))
        })
    }

    /// Document ids as keys of the collection's kind, when every document has one.
    pub(crate) fn ids_from_documents(
        &self,
        doc_ids: Vec<Option<String>>,
    ) -> Result<Option<Vec<Pk>>> {
        let kind = self.live()?.map(|live| live.pk_kind);
        rules::ids_from_documents(kind, self.inner.config.auto_id, doc_ids)
    }

    pub(crate) fn prepare_delete(
        &self,
        ids: Option<Vec<Pk>>,
        expr: Option<&str>,
    ) -> Result<Option<PreparedWrite>> {
        let ids = ids.filter(|i| !i.is_empty());
        let filter = match (&ids, expr) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "delete takes ids or a filter expression, not both".into(),
                ))
            }
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "delete needs ids or a filter expression".into(),
                ))
            }
            (None, Some(e)) if e.trim().is_empty() => {
                return Err(Error::InvalidArgument(
                    "an empty filter would delete every record; use drop() for that".into(),
                ))
            }
            (_, expr) => self.compile_filter(expr, &Params::new())?,
        };
        let Some(live) = self.live()? else {
            return Ok(None);
        };
        let pks = match (ids, filter) {
            (Some(ids), _) => {
                let kind = live.pk_kind;
                let kind = if kind == PkKind::AutoInt {
                    PkKind::Int
                } else {
                    kind
                };
                rules::check_ids(kind, &ids, ids.len())?;
                ids
            }
            (None, Some(filter)) => {
                live.catch_up()?;
                let rows = live.rows();
                rows.matching_sorted(&filter)
                    .iter()
                    .map(|r| r.pk.clone())
                    .collect()
            }
            (None, None) => unreachable!("checked above"),
        };
        if pks.is_empty() {
            return Ok(None);
        }
        Ok(Some(PreparedWrite::delete(live, pks)))
    }
}
