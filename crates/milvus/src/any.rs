//! [`AnyStore`]: one store type whose backend the URI picks.

use quiverdb::types::{Metadata, Metric, Pk};
use quiverdb::{
    Document, Location, MmrOptions, QueryOptions, Result, SearchOptions, Store, StoreBuilder,
    VectorStore,
};

use crate::{MilvusOptions, MilvusStore};

/// The embedded store or a Milvus server, chosen by the builder's URI (or path):
///
/// | URI | backend |
/// |---|---|
/// | none, `""`, `:memory:` | embedded, in memory |
/// | `./dev.quiver`, `/data/db`, `file:///data/db` | embedded, in that directory |
/// | `http://host:19530`, `https://…` | [`MilvusStore`] on that server |
/// | `unix:/path.sock` | refused: the SDK speaks TCP only |
///
/// Application code is the same for both: it calls the [`Store`] methods.
///
/// ```no_run
/// use quiverdb::{HashingEmbeddings, SearchOptions, Store, VectorStore};
/// use quiverdb_milvus::AnyStore;
///
/// let uri = std::env::var("STORE_URI").unwrap_or_else(|_| "./dev.quiver".into());
/// let store = AnyStore::open(
///     VectorStore::builder()
///         .uri(uri) // "./dev.quiver" or "http://127.0.0.1:19530": the only difference
///         .embeddings(HashingEmbeddings::default()),
/// )?;
/// store.add_texts(vec!["apples and pears".into()], None, Some(vec!["a".into()]))?;
/// let hits = store.similarity_search("pears", &SearchOptions::k(1))?;
/// # Ok::<(), quiverdb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// The embedded store.
    Embedded(VectorStore),
    /// A Milvus server.
    Milvus(MilvusStore),
}

impl AnyStore {
    /// Opens the backend the builder's location names, with default Milvus options.
    pub fn open(builder: StoreBuilder) -> Result<AnyStore> {
        Self::open_with(builder, MilvusOptions::default())
    }

    /// [`AnyStore::open`] with Milvus options (ignored by the embedded store).
    pub fn open_with(builder: StoreBuilder, options: MilvusOptions) -> Result<AnyStore> {
        Ok(match builder.config().location()? {
            Location::Remote(_) => AnyStore::Milvus(MilvusStore::open_with(builder, options)?),
            Location::Memory => AnyStore::Embedded(builder.in_memory().open()?),
            Location::Path(p) => AnyStore::Embedded(builder.path(p).open()?),
        })
    }

    /// Async [`AnyStore::open`].
    pub async fn aopen(builder: StoreBuilder) -> Result<AnyStore> {
        Self::aopen_with(builder, MilvusOptions::default()).await
    }

    /// Async [`AnyStore::open_with`].
    pub async fn aopen_with(builder: StoreBuilder, options: MilvusOptions) -> Result<AnyStore> {
        Ok(match builder.config().location()? {
            Location::Remote(_) => {
                AnyStore::Milvus(MilvusStore::aopen_with(builder, options).await?)
            }
            Location::Memory => AnyStore::Embedded(builder.in_memory().aopen().await?),
            Location::Path(p) => AnyStore::Embedded(builder.path(p).aopen().await?),
        })
    }

    /// Which backend this is: `"embedded"` or `"milvus"`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Embedded(_) => "embedded",
            AnyStore::Milvus(_) => "milvus",
        }
    }
}

/// Forwards a call to whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($s) => $call,
            AnyStore::Milvus($s) => $call,
        }
    };
}

impl Store for AnyStore {
    fn collection_name(&self) -> &str {
        dispatch!(self, s => Store::collection_name(s))
    }
    fn metric(&self) -> Metric {
        dispatch!(self, s => Store::metric(s))
    }
    fn has_collection(&self) -> Result<bool> {
        dispatch!(self, s => Store::has_collection(s))
    }
    fn add_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::add_texts(s, texts, metadatas, ids))
    }
    async fn aadd_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::aadd_texts(s, texts, metadatas, ids).await)
    }
    fn add_documents(&self, documents: Vec<Document>, ids: Option<Vec<Pk>>) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::add_documents(s, documents, ids))
    }
    async fn aadd_documents(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::aadd_documents(s, documents, ids).await)
    }
    fn add_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::add_embeddings(s, texts, embeddings, metadatas, ids))
    }
    async fn aadd_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::aadd_embeddings(s, texts, embeddings, metadatas, ids).await)
    }
    fn upsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::upsert(s, ids, documents))
    }
    async fn aupsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::aupsert(s, ids, documents).await)
    }
    fn delete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        dispatch!(self, s => Store::delete(s, ids, expr))
    }
    async fn adelete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        dispatch!(self, s => Store::adelete(s, ids, expr).await)
    }
    fn similarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::similarity_search(s, query, opts))
    }
    async fn asimilarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::asimilarity_search(s, query, opts).await)
    }
    fn similarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::similarity_search_with_score(s, query, opts))
    }
    async fn asimilarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::asimilarity_search_with_score(s, query, opts).await)
    }
    fn similarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::similarity_search_with_relevance_scores(s, query, opts))
    }
    async fn asimilarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::asimilarity_search_with_relevance_scores(s, query, opts).await)
    }
    fn similarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::similarity_search_by_vector(s, embedding, opts))
    }
    async fn asimilarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::asimilarity_search_by_vector(s, embedding, opts).await)
    }
    fn similarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::similarity_search_with_score_by_vector(s, embedding, opts))
    }
    async fn asimilarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        dispatch!(self, s => Store::asimilarity_search_with_score_by_vector(s, embedding, opts).await)
    }
    fn max_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::max_marginal_relevance_search(s, query, opts))
    }
    async fn amax_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::amax_marginal_relevance_search(s, query, opts).await)
    }
    fn max_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::max_marginal_relevance_search_by_vector(s, embedding, opts))
    }
    async fn amax_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::amax_marginal_relevance_search_by_vector(s, embedding, opts).await)
    }
    fn search_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::search_by_metadata(s, expr, opts))
    }
    async fn asearch_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::asearch_by_metadata(s, expr, opts).await)
    }
    fn get_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::get_pks(s, expr))
    }
    async fn aget_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        dispatch!(self, s => Store::aget_pks(s, expr).await)
    }
    fn get_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::get_by_ids(s, ids))
    }
    async fn aget_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        dispatch!(self, s => Store::aget_by_ids(s, ids).await)
    }
    fn count(&self) -> Result<usize> {
        dispatch!(self, s => Store::count(s))
    }
    async fn acount(&self) -> Result<usize> {
        dispatch!(self, s => Store::acount(s).await)
    }
    fn drop(&self) -> Result<bool> {
        dispatch!(self, s => Store::drop(s))
    }
    async fn adrop(&self) -> Result<bool> {
        dispatch!(self, s => Store::adrop(s).await)
    }
    fn close(&self) -> Result<()> {
        dispatch!(self, s => Store::close(s))
    }
    async fn aclose(&self) -> Result<()> {
        dispatch!(self, s => Store::aclose(s).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiverdb::{Error, HashingEmbeddings};

    #[test]
    fn uri_dispatch() {
        let mem = AnyStore::open(VectorStore::builder()).unwrap();
        assert_eq!(mem.backend(), "embedded");
        let mem = AnyStore::open(VectorStore::builder().uri(":memory:")).unwrap();
        assert_eq!(mem.backend(), "embedded");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let b = || {
            VectorStore::builder()
                .uri(path.to_str().unwrap())
                .embeddings(HashingEmbeddings::new(16))
        };
        let s = AnyStore::open(b()).unwrap();
        assert_eq!(s.backend(), "embedded");
        s.add_texts(vec!["x".into()], None, Some(vec!["a".into()]))
            .unwrap();
        s.close().unwrap();
        drop(s);
        assert!(
            path.exists(),
            "the embedded store wrote to the URI's directory"
        );
        let s = AnyStore::open(b()).unwrap();
        assert_eq!(s.count().unwrap(), 1);

        let err = AnyStore::open(VectorStore::builder().uri("unix:/tmp/milvus.sock")).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedUri { reason, .. } if reason.contains("TCP")),
            "{err}"
        );
        let err = AnyStore::open(VectorStore::builder().uri("ftp://x")).unwrap_err();
        assert!(matches!(err, Error::UnsupportedUri { .. }), "{err}");
    }

    #[test]
    fn unreachable_server_is_a_connection_error_within_the_timeout() {
        // A port nobody listens on: bind, read the port, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let err = AnyStore::open_with(
            VectorStore::builder().uri(format!("http://127.0.0.1:{port}")),
            MilvusOptions::default().connect_timeout(std::time::Duration::from_millis(300)),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Connection(_)), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_open_failure_inside_a_runtime_does_not_panic() {
        let err = MilvusStore::aopen_with(
            VectorStore::builder().uri("http://127.0.0.1:9"),
            MilvusOptions::default().connect_timeout(std::time::Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Connection(_)), "{err}");
    }

    #[test]
    fn bad_names_are_refused_before_connecting() {
        let err = MilvusStore::open(
            VectorStore::builder()
                .uri("http://127.0.0.1:9")
                .collection_name("has-dash"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
        let err = MilvusStore::open(VectorStore::builder().uri("./dir")).unwrap_err();
        assert!(matches!(err, Error::UnsupportedUri { .. }), "{err}");
    }
}
