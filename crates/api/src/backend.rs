//! [`Store`]: the store surface as a trait, so that one piece of application code runs
//! on the embedded [`VectorStore`] or on a remote backend (`quiverdb_milvus::MilvusStore`,
//! or `quiverdb_milvus::AnyStore`, which picks one of the two from a URI).
//!
//! The trait mirrors the inherent methods of [`VectorStore`] one for one — blocking
//! `name` and async `aname` — with concrete argument types where the inherent methods
//! are generic (`Vec<String>` for texts). `VectorStore` keeps its inherent methods, so
//! code written against it compiles unchanged; the impl below only delegates.
//!
//! The async methods return `impl Future + Send` (so they can be spawned); the trait is
//! therefore used through generics (`S: Store`) or an enum, not `dyn Store`.

use std::future::Future;

use quiverdb_types::{Metadata, Metric, Pk};

use crate::{Document, MmrOptions, QueryOptions, Result, SearchOptions, VectorStore};

/// The LangChain–Milvus store surface, implemented by every QuiverDB backend.
///
/// Every method has the meaning documented on the [`VectorStore`] method of the same
/// name; a backend that cannot honour one exactly documents the difference.
pub trait Store: Send + Sync {
    /// The collection's name.
    fn collection_name(&self) -> &str;

    /// The collection's metric: the stored one once the collection exists, else the
    /// configured one.
    fn metric(&self) -> Metric;

    /// Whether the collection exists (it is created by the first write).
    fn has_collection(&self) -> Result<bool>;

    /// Embeds `texts` and adds them; returns their ids.
    fn add_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>>;

    /// Async [`Store::add_texts`].
    fn aadd_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send;

    /// Adds documents; ids from `ids`, else from every document's `id` when all have one.
    fn add_documents(&self, documents: Vec<Document>, ids: Option<Vec<Pk>>) -> Result<Vec<Pk>>;

    /// Async [`Store::add_documents`].
    fn aadd_documents(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send;

    /// Adds texts with precomputed vectors; returns their ids.
    fn add_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>>;

    /// Async [`Store::add_embeddings`].
    fn aadd_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send;

    /// Replaces whole records by id (inserting missing ones); returns the ids.
    fn upsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>>;

    /// Async [`Store::upsert`].
    fn aupsert(
        &self,
        ids: Option<Vec<Pk>>,
        documents: Vec<Document>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send;

    /// Deletes by ids or by a filter expression (not both); returns how many were deleted.
    fn delete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize>;

    /// Async [`Store::delete`].
    fn adelete(
        &self,
        ids: Option<Vec<Pk>>,
        expr: Option<&str>,
    ) -> impl Future<Output = Result<usize>> + Send;

    /// The `k` documents most similar to `query`.
    fn similarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>>;

    /// Async [`Store::similarity_search`].
    fn asimilarity_search(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// The `k` documents most similar to `query`, with the metric's raw scores.
    fn similarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>>;

    /// Async [`Store::similarity_search_with_score`].
    fn asimilarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send;

    /// Like [`Store::similarity_search_with_score`], with relevance scores in `[0, 1]`.
    fn similarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>>;

    /// Async [`Store::similarity_search_with_relevance_scores`].
    fn asimilarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send;

    /// The `k` documents nearest to `embedding`.
    fn similarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>>;

    /// Async [`Store::similarity_search_by_vector`].
    fn asimilarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// The `k` documents nearest to `embedding`, with scores.
    fn similarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>>;

    /// Async [`Store::similarity_search_with_score_by_vector`].
    fn asimilarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send;

    /// Maximal marginal relevance: `fetch_k` candidates, reranked for diversity.
    fn max_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>>;

    /// Async [`Store::max_marginal_relevance_search`].
    fn amax_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// MMR from a query vector.
    fn max_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>>;

    /// Async [`Store::max_marginal_relevance_search_by_vector`].
    fn amax_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// Documents whose metadata matches `expr` (no vector search), in primary-key order.
    fn search_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>>;

    /// Async [`Store::search_by_metadata`].
    fn asearch_by_metadata(
        &self,
        expr: &str,
        opts: &QueryOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// Primary keys of the records matching `expr`, in key order.
    fn get_pks(&self, expr: &str) -> Result<Vec<Pk>>;

    /// Async [`Store::get_pks`].
    fn aget_pks(&self, expr: &str) -> impl Future<Output = Result<Vec<Pk>>> + Send;

    /// The documents with these ids, in the order asked; unknown ids are skipped.
    fn get_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>>;

    /// Async [`Store::get_by_ids`].
    fn aget_by_ids(&self, ids: &[Pk]) -> impl Future<Output = Result<Vec<Document>>> + Send;

    /// Number of live records.
    fn count(&self) -> Result<usize>;

    /// Async [`Store::count`].
    fn acount(&self) -> impl Future<Output = Result<usize>> + Send;

    /// Drops the collection (a later write creates it again); returns whether it existed.
    fn drop(&self) -> Result<bool>;

    /// Async [`Store::drop`].
    fn adrop(&self) -> impl Future<Output = Result<bool>> + Send;

    /// Releases the store; later calls get [`crate::Error::Closed`].
    fn close(&self) -> Result<()>;

    /// Async [`Store::close`].
    fn aclose(&self) -> impl Future<Output = Result<()>> + Send;
}

impl Store for VectorStore {
    fn collection_name(&self) -> &str {
        VectorStore::collection_name(self)
    }
    fn metric(&self) -> Metric {
        VectorStore::metric(self)
    }
    fn has_collection(&self) -> Result<bool> {
        VectorStore::has_collection(self)
    }
    fn add_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        VectorStore::add_texts(self, texts, metadatas, ids)
    }
    fn aadd_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send {
        VectorStore::aadd_texts(self, texts, metadatas, ids)
    }
    fn add_documents(&self, documents: Vec<Document>, ids: Option<Vec<Pk>>) -> Result<Vec<Pk>> {
        VectorStore::add_documents(self, documents, ids)
    }
    fn aadd_documents(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send {
        VectorStore::aadd_documents(self, documents, ids)
    }
    fn add_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        VectorStore::add_embeddings(self, texts, embeddings, metadatas, ids)
    }
    fn aadd_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send {
        VectorStore::aadd_embeddings(self, texts, embeddings, metadatas, ids)
    }
    fn upsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        VectorStore::upsert(self, ids, documents)
    }
    fn aupsert(
        &self,
        ids: Option<Vec<Pk>>,
        documents: Vec<Document>,
    ) -> impl Future<Output = Result<Vec<Pk>>> + Send {
        VectorStore::aupsert(self, ids, documents)
    }
    fn delete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        VectorStore::delete(self, ids, expr)
    }
    fn adelete(
        &self,
        ids: Option<Vec<Pk>>,
        expr: Option<&str>,
    ) -> impl Future<Output = Result<usize>> + Send {
        VectorStore::adelete(self, ids, expr)
    }
    fn similarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        VectorStore::similarity_search(self, query, opts)
    }
    fn asimilarity_search(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::asimilarity_search(self, query, opts)
    }
    fn similarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        VectorStore::similarity_search_with_score(self, query, opts)
    }
    fn asimilarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send {
        VectorStore::asimilarity_search_with_score(self, query, opts)
    }
    fn similarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        VectorStore::similarity_search_with_relevance_scores(self, query, opts)
    }
    fn asimilarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send {
        VectorStore::asimilarity_search_with_relevance_scores(self, query, opts)
    }
    fn similarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        VectorStore::similarity_search_by_vector(self, embedding, opts)
    }
    fn asimilarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::asimilarity_search_by_vector(self, embedding, opts)
    }
    fn similarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        VectorStore::similarity_search_with_score_by_vector(self, embedding, opts)
    }
    fn asimilarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> impl Future<Output = Result<Vec<(Document, f32)>>> + Send {
        VectorStore::asimilarity_search_with_score_by_vector(self, embedding, opts)
    }
    fn max_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        VectorStore::max_marginal_relevance_search(self, query, opts)
    }
    fn amax_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::amax_marginal_relevance_search(self, query, opts)
    }
    fn max_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        VectorStore::max_marginal_relevance_search_by_vector(self, embedding, opts)
    }
    fn amax_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::amax_marginal_relevance_search_by_vector(self, embedding, opts)
    }
    fn search_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        VectorStore::search_by_metadata(self, expr, opts)
    }
    fn asearch_by_metadata(
        &self,
        expr: &str,
        opts: &QueryOptions,
    ) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::asearch_by_metadata(self, expr, opts)
    }
    fn get_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        VectorStore::get_pks(self, expr)
    }
    fn aget_pks(&self, expr: &str) -> impl Future<Output = Result<Vec<Pk>>> + Send {
        VectorStore::aget_pks(self, expr)
    }
    fn get_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        VectorStore::get_by_ids(self, ids)
    }
    fn aget_by_ids(&self, ids: &[Pk]) -> impl Future<Output = Result<Vec<Document>>> + Send {
        VectorStore::aget_by_ids(self, ids)
    }
    fn count(&self) -> Result<usize> {
        VectorStore::count(self)
    }
    fn acount(&self) -> impl Future<Output = Result<usize>> + Send {
        VectorStore::acount(self)
    }
    fn drop(&self) -> Result<bool> {
        VectorStore::drop(self)
    }
    fn adrop(&self) -> impl Future<Output = Result<bool>> + Send {
        VectorStore::adrop(self)
    }
    fn close(&self) -> Result<()> {
        VectorStore::close(self)
    }
    fn aclose(&self) -> impl Future<Output = Result<()>> + Send {
        VectorStore::aclose(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HashingEmbeddings;

    /// Generic code over the trait, as an application would write it.
    fn add_and_find<S: Store>(store: &S) -> Result<Vec<Document>> {
        store.add_texts(
            vec!["apples and pears".into(), "rust and vectors".into()],
            None,
            Some(vec![Pk::from("a"), Pk::from("b")]),
        )?;
        store.similarity_search("pears", &SearchOptions::k(1))
    }

    #[test]
    fn vector_store_through_the_trait() {
        let store = VectorStore::builder()
            .embeddings(HashingEmbeddings::new(32))
            .open()
            .unwrap();
        let hits = add_and_find(&store).unwrap();
        assert_eq!(hits[0].id.as_deref(), Some("a"));
        assert_eq!(Store::count(&store).unwrap(), 2);
    }

    #[test]
    fn async_trait_futures_are_send() {
        fn is_send<T: Send>(_: T) {}
        let store = VectorStore::builder().open().unwrap();
        is_send(Store::asimilarity_search(&store, "q", &SearchOptions::k(1)));
        is_send(Store::aadd_texts(&store, vec![], None, None));
    }
}
