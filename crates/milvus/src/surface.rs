//! [`quiverdb::Store`] for [`MilvusStore`]: each blocking method runs the async
//! operation to completion on the calling thread (see "Runtime" on [`MilvusStore`]);
//! each async method awaits it on the caller's runtime. Both validate the same way and
//! return the same results.

use quiverdb::types::{Metadata, Metric, Pk};
use quiverdb::{Document, Error, MmrOptions, QueryOptions, Result, SearchOptions, Store};

use crate::mapping::split_documents;
use crate::MilvusStore;
use quiverdb::rules::check_k;

/// Texts, metadatas and ids of an add.
type AddInput = (Vec<String>, Vec<Metadata>, Option<Vec<Pk>>);

impl MilvusStore {
    fn strip(hits: Vec<(Document, f32)>) -> Vec<Document> {
        hits.into_iter().map(|(d, _)| d).collect()
    }

    fn relevance(&self, hits: Vec<(Document, f32)>) -> Vec<(Document, f32)> {
        let metric = Store::metric(self);
        hits.into_iter()
            .map(|(d, s)| (d, metric.relevance(s)))
            .collect()
    }

    /// `true` when a text search must embed: the collection exists and `k` is valid.
    /// Otherwise checks the filter (placeholders) so bad input is an error either way.
    fn needs_query_vector(
        &self,
        k: usize,
        filter: Option<&str>,
        params: &quiverdb::FilterParams,
    ) -> Result<bool> {
        check_k(k)?;
        if self.schema()?.is_none() {
            self.server_filter(filter, params)?;
            return Ok(false);
        }
        Ok(true)
    }

    fn add_documents_input(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> Result<AddInput> {
        let (texts, metas, doc_ids) = split_documents(documents);
        let ids = match ids {
            Some(ids) => Some(ids),
            None => self.ids_from_documents(doc_ids)?,
        };
        Ok((texts, metas, ids))
    }

    fn embed_documents(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        self.embeddings()?
            .embed_documents(texts)
            .map_err(Error::Embedding)
    }

    fn embed_query(&self, query: &str) -> Result<Vec<f32>> {
        self.embeddings()?
            .embed_query(query)
            .map_err(Error::Embedding)
    }
}

impl Store for MilvusStore {
    fn collection_name(&self) -> &str {
        &self.inner.config.collection_name
    }

    fn metric(&self) -> Metric {
        match self.schema() {
            Ok(Some(s)) => s.metric,
            _ => self.inner.config.metric,
        }
    }

    fn has_collection(&self) -> Result<bool> {
        Ok(self.schema()?.is_some())
    }

    fn add_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.embed_documents(&texts)?;
        self.block(self.insert_vectors(texts, vectors, metadatas, ids))
    }

    async fn aadd_texts(
        &self,
        texts: Vec<String>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (texts, vectors) = self.aembed_documents(texts).await?;
        self.insert_vectors(texts, vectors, metadatas, ids).await
    }

    fn add_documents(&self, documents: Vec<Document>, ids: Option<Vec<Pk>>) -> Result<Vec<Pk>> {
        let (texts, metas, ids) = self.add_documents_input(documents, ids)?;
        Store::add_texts(self, texts, Some(metas), ids)
    }

    async fn aadd_documents(
        &self,
        documents: Vec<Document>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let (texts, metas, ids) = self.add_documents_input(documents, ids)?;
        Store::aadd_texts(self, texts, Some(metas), ids).await
    }

    fn add_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        self.block(self.insert_vectors(texts, embeddings, metadatas, ids))
    }

    async fn aadd_embeddings(
        &self,
        texts: Vec<String>,
        embeddings: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        self.insert_vectors(texts, embeddings, metadatas, ids).await
    }

    fn upsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        let Some((texts, metas, ids)) = self.upsert_input(ids, documents)? else {
            return Ok(Vec::new());
        };
        let vectors = self.embed_documents(&texts)?;
        self.block(self.upsert_vectors(texts, vectors, metas, ids))
    }

    async fn aupsert(&self, ids: Option<Vec<Pk>>, documents: Vec<Document>) -> Result<Vec<Pk>> {
        let Some((texts, metas, ids)) = self.upsert_input(ids, documents)? else {
            return Ok(Vec::new());
        };
        let (texts, vectors) = self.aembed_documents(texts).await?;
        self.upsert_vectors(texts, vectors, metas, ids).await
    }

    fn delete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        self.block(self.delete_records(ids, expr))
    }

    async fn adelete(&self, ids: Option<Vec<Pk>>, expr: Option<&str>) -> Result<usize> {
        self.delete_records(ids, expr).await
    }

    fn similarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        Ok(Self::strip(Store::similarity_search_with_score(
            self, query, opts,
        )?))
    }

    async fn asimilarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        Ok(Self::strip(
            Store::asimilarity_search_with_score(self, query, opts).await?,
        ))
    }

    fn similarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        if !self.needs_query_vector(opts.k, opts.filter.as_deref(), &opts.params)? {
            return Ok(Vec::new());
        }
        let v = self.embed_query(query)?;
        self.block(self.search_vector(&v, opts))
    }

    async fn asimilarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        if !self.needs_query_vector(opts.k, opts.filter.as_deref(), &opts.params)? {
            return Ok(Vec::new());
        }
        let v = self.aembed_query(query).await?;
        self.search_vector(&v, opts).await
    }

    fn similarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        let hits = Store::similarity_search_with_score(self, query, opts)?;
        Ok(self.relevance(hits))
    }

    async fn asimilarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        let hits = Store::asimilarity_search_with_score(self, query, opts).await?;
        Ok(self.relevance(hits))
    }

    fn similarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        Ok(Self::strip(
            self.block(self.search_vector(embedding, opts))?,
        ))
    }

    async fn asimilarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        Ok(Self::strip(self.search_vector(embedding, opts).await?))
    }

    fn similarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        self.block(self.search_vector(embedding, opts))
    }

    async fn asimilarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        self.search_vector(embedding, opts).await
    }

    fn max_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        if !self.needs_query_vector(opts.k, opts.filter.as_deref(), &opts.params)? {
            return Ok(Vec::new());
        }
        let v = self.embed_query(query)?;
        self.block(self.mmr_vector(&v, opts))
    }

    async fn amax_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        if !self.needs_query_vector(opts.k, opts.filter.as_deref(), &opts.params)? {
            return Ok(Vec::new());
        }
        let v = self.aembed_query(query).await?;
        self.mmr_vector(&v, opts).await
    }

    fn max_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        self.block(self.mmr_vector(embedding, opts))
    }

    async fn amax_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        self.mmr_vector(embedding, opts).await
    }

    fn search_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        self.block(self.metadata_documents(expr, opts))
    }

    async fn asearch_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        self.metadata_documents(expr, opts).await
    }

    fn get_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        self.block(self.pks_matching(expr))
    }

    async fn aget_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        self.pks_matching(expr).await
    }

    fn get_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        self.block(self.documents_by_ids(ids))
    }

    async fn aget_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        self.documents_by_ids(ids).await
    }

    fn count(&self) -> Result<usize> {
        self.block(self.record_count())
    }

    async fn acount(&self) -> Result<usize> {
        self.record_count().await
    }

    fn drop(&self) -> Result<bool> {
        self.block(self.drop_collection())
    }

    async fn adrop(&self) -> Result<bool> {
        self.drop_collection().await
    }

    /// Marks the store closed (later calls get `Error::Closed`). Data is on the server
    /// after every successful write; the connection closes when the last clone drops.
    fn close(&self) -> Result<()> {
        self.set_closed();
        Ok(())
    }

    async fn aclose(&self) -> Result<()> {
        self.set_closed();
        Ok(())
    }
}
