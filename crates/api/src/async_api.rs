//! The async twins of [`VectorStore`]'s methods: same names with an `a` prefix, same
//! arguments, same results.
//!
//! CPU work (embedding with the built-in model, searches, MMR, filter scans, index
//! updates) runs on the store's rayon pool through a oneshot bridge (similarity and MMR
//! searches through a queue that lets concurrent ones share work, see `coalesce.rs`); writes
//! await storage's group commit, so concurrent calls share one durable flush. No lock is
//! held across an `.await`. Dropping a future mid-call leaves the store consistent: a write
//! either committed (and is applied to the index by the next call) or did not.

use std::sync::Arc;

use quiverdb_types::{Metadata, Pk};

use crate::coalesce::{Query, Want};
use crate::rules::split_documents;
use crate::write::PreparedWrite;
use crate::{
    Document, Error, MmrOptions, QueryOptions, Result, SearchOptions, StoreBuilder, VectorStore,
};

impl VectorStore {
    async fn on_pool<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(VectorStore) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let store = self.clone();
        self.inner.pool.run(move || f(store)).await
    }

    async fn aembed_documents(&self, texts: Arc<Vec<String>>) -> Result<Vec<Vec<f32>>> {
        let model = self.embeddings()?.clone();
        if let Some(fut) = model.aembed_documents(&texts) {
            return fut.await.map_err(Error::Embedding);
        }
        self.on_pool(move |_| model.embed_documents(&texts).map_err(Error::Embedding))
            .await
    }

    /// Commits a prepared write through group commit, then applies it on the pool.
    async fn acommit(&self, prepared: PreparedWrite) -> Result<quiverdb_storage::WriteReceipt> {
        let committed = prepared.acommit().await?;
        committed.apply_async(&self.inner.pool).await
    }

    /// Async [`VectorStore::from_texts`].
    pub async fn afrom_texts<S: Into<String>>(
        texts: impl IntoIterator<Item = S>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
        builder: StoreBuilder,
    ) -> Result<VectorStore> {
        let texts: Vec<String> = texts.into_iter().map(Into::into).collect();
        let has_ids = ids.as_ref().is_some_and(|i| !i.is_empty());
        let store = builder.auto_id(!has_ids).aopen().await?;
        store
            .aadd_texts(texts, metadatas, ids.filter(|_| has_ids))
            .await?;
        Ok(store)
    }

    /// Async [`VectorStore::from_documents`].
    pub async fn afrom_documents(
        documents: Vec<Document>,
        builder: StoreBuilder,
    ) -> Result<VectorStore> {
        let ids = documents
            .iter()
            .map(|d| d.id.clone().map(Pk::Str))
            .collect::<Option<Vec<_>>>()
            .filter(|ids| !ids.is_empty());
        let store = builder.auto_id(ids.is_none()).aopen().await?;
        store.aadd_documents(documents, ids).await?;
        Ok(store)
    }

    /// Async [`VectorStore::add_texts`].
    pub async fn aadd_texts<S: Into<String>>(
        &self,
        texts: impl IntoIterator<Item = S>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let texts: Vec<String> = texts.into_iter().map(Into::into).collect();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let texts = Arc::new(texts);
        let vectors = self.aembed_documents(texts.clone()).await?;
        let texts = Arc::try_unwrap(texts).unwrap_or_else(|t| (*t).clone());
        self.aadd_embeddings(texts, vectors, metadatas, ids).await
    }

    /// Async [`VectorStore::add_documents`].
    pub async fn aadd_documents(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let ids = match ids {
            Some(ids) => Some(ids),
            None => {
                let docs_ids: Vec<Option<String>> =
                    documents.iter().map(|d| d.id.clone()).collect();
                let store = self.clone();
                // Resolving ids may need the collection's schema: cheap, but keep it uniform.
                store.ids_from_documents(docs_ids)?
            }
        };
        let (texts, metadatas, _) = split_documents(documents);
        self.aadd_texts(texts, Some(metadatas), ids).await
    }

    /// Async [`VectorStore::add_embeddings`].
    pub async fn aadd_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let prepared = if self.live()?.is_some() {
            self.prepare_insert(texts, embeddings, metadatas, ids, false)?
        } else {
            // Creating the collection may load or build an index: off the executor.
            self.on_pool(move |s| s.prepare_insert(texts, embeddings, metadatas, ids, false))
                .await?
        };
        let Some(prepared) = prepared else {
            return Ok(Vec::new());
        };
        let receipt = self.acommit(prepared).await?;
        Ok(receipt.inserted.into_iter().map(|(pk, _)| pk).collect())
    }

    /// Async [`VectorStore::upsert`].
    pub async fn aupsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        let Some((texts, metadatas, ids)) = self.prepare_upsert_ids(ids, documents)? else {
            return Ok(Vec::new());
        };
        let texts = Arc::new(texts);
        let vectors = self.aembed_documents(texts.clone()).await?;
        let texts = Arc::try_unwrap(texts).unwrap_or_else(|t| (*t).clone());
        let prepared = self
            .on_pool(move |s| s.prepare_insert(texts, vectors, Some(metadatas), Some(ids), true))
            .await?;
        let Some(prepared) = prepared else {
            return Ok(Vec::new());
        };
        let receipt = self.acommit(prepared).await?;
        Ok(receipt.inserted.into_iter().map(|(pk, _)| pk).collect())
    }

    /// Async [`VectorStore::delete`].
    pub async fn adelete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        let expr = expr.map(str::to_owned);
        let prepared = self
            .on_pool(move |s| s.prepare_delete(ids, expr.as_deref()))
            .await?;
        let Some(prepared) = prepared else {
            return Ok(0);
        };
        Ok(self.acommit(prepared).await?.removed.len())
    }

    /// Async [`VectorStore::drop`].
    pub async fn adrop(&self) -> Result<bool> {
        self.on_pool(|s| s.drop()).await
    }

    /// Async [`VectorStore::close`].
    pub async fn aclose(&self) -> Result<()> {
        self.on_pool(|s| s.close()).await
    }

    /// Async [`VectorStore::similarity_search`].
    pub async fn asimilarity_search(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        let hits = self.asimilarity_search_with_score(query, opts).await?;
        Ok(hits.into_iter().map(|(d, _)| d).collect())
    }

    /// Async [`VectorStore::similarity_search_with_score`].
    pub async fn asimilarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        if opts.k == 0 || self.live()?.is_none() {
            // Same validation and empty answer as the blocking call, without embedding.
            return self.similarity_search_with_score_by_vector(&[], opts);
        }
        if let Some(fut) = self.embeddings()?.aembed_query(query) {
            let vector = fut.await.map_err(Error::Embedding)?;
            return self
                .asimilarity_search_with_score_by_vector(&vector, opts)
                .await;
        }
        // A blocking model: embed and search on the pool, with other queued searches.
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue_search(
            Query::Text(query.to_owned()),
            Want::Similarity(opts.clone(), reply),
        );
        queued_answer(answer).await
    }

    /// Async [`VectorStore::similarity_search_with_relevance_scores`].
    pub async fn asimilarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        let hits = self.asimilarity_search_with_score(query, opts).await?;
        let metric = self.metric();
        Ok(hits
            .into_iter()
            .map(|(d, s)| (d, metric.relevance(s)))
            .collect())
    }

    /// Async [`VectorStore::similarity_search_by_vector`].
    pub async fn asimilarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        let hits = self
            .asimilarity_search_with_score_by_vector(embedding, opts)
            .await?;
        Ok(hits.into_iter().map(|(d, _)| d).collect())
    }

    /// Async [`VectorStore::similarity_search_with_score_by_vector`].
    pub async fn asimilarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let want = Want::Similarity(opts.clone(), reply);
        self.queue_search(Query::Vector(embedding.to_vec()), want);
        queued_answer(answer).await
    }

    /// Async [`VectorStore::max_marginal_relevance_search`].
    pub async fn amax_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        if opts.k == 0 || self.live()?.is_none() {
            return self.max_marginal_relevance_search_by_vector(&[], opts);
        }
        if let Some(fut) = self.embeddings()?.aembed_query(query) {
            let vector = fut.await.map_err(Error::Embedding)?;
            return self
                .amax_marginal_relevance_search_by_vector(&vector, opts)
                .await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue_search(
            Query::Text(query.to_owned()),
            Want::Mmr(opts.clone(), reply),
        );
        queued_answer(answer).await
    }

    /// Async [`VectorStore::max_marginal_relevance_search_by_vector`].
    pub async fn amax_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue_search(
            Query::Vector(embedding.to_vec()),
            Want::Mmr(opts.clone(), reply),
        );
        queued_answer(answer).await
    }

    /// Async [`VectorStore::search_by_metadata`].
    pub async fn asearch_by_metadata(
        &self,
        expr: &str,
        opts: &QueryOptions,
    ) -> Result<Vec<Document>> {
        let (expr, opts) = (expr.to_owned(), opts.clone());
        self.on_pool(move |s| s.search_by_metadata(&expr, &opts))
            .await
    }

    /// Async [`VectorStore::get_pks`].
    pub async fn aget_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        let expr = expr.to_owned();
        self.on_pool(move |s| s.get_pks(&expr)).await
    }

    /// Async [`VectorStore::get_by_ids`].
    pub async fn aget_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        let ids = ids.to_vec();
        self.on_pool(move |s| s.get_by_ids(&ids)).await
    }

    /// Async [`VectorStore::count`].
    pub async fn acount(&self) -> Result<usize> {
        self.on_pool(|s| s.count()).await
    }
}

/// The answer to a queued search ([`VectorStore::queue_search`]); a reply dropped unsent
/// (the pool job panicked) is an [`Error::Panicked`].
async fn queued_answer<T>(answer: tokio::sync::oneshot::Receiver<Result<T>>) -> Result<T> {
    answer
        .await
        .unwrap_or_else(|_| Err(Error::Panicked("the CPU pool dropped the search".into())))
}
