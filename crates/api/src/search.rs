//! The read side of [`VectorStore`]: similarity search, MMR, metadata queries and key
//! lookups (blocking; the async twins are in `async_api.rs`).

use std::sync::Arc;

use quiverdb_filter::Params;
use quiverdb_index::mmr::maximal_marginal_relevance;
use quiverdb_index::score_from_distance;
use quiverdb_types::Pk;

use crate::live::{Hits, LiveCollection};
use crate::rules::{check_k, check_mmr};

use crate::{Document, Error, MmrOptions, QueryOptions, Result, SearchOptions, VectorStore};

/// Documents with their Milvus scores, best first.
pub(crate) type ScoredDocuments = Vec<(Document, f32)>;

/// The collection a batch of searches read, and each search's hits, in order.
pub(crate) type BatchHits = (Arc<LiveCollection>, Vec<Result<Hits>>);

impl VectorStore {
    /// The query's vector, or `None` when the collection does not exist yet (the filter is
    /// still checked, so a malformed one is an error either way; nothing is embedded).
    pub(crate) fn query_vector(
        &self,
        query: &str,
        filter: Option<&str>,
        params: &Params,
    ) -> Result<Option<Vec<f32>>> {
        if self.live()?.is_none() {
            self.compile_filter(filter, params)?;
            return Ok(None);
        }
        self.embeddings()?
            .embed_query(query)
            .map(Some)
            .map_err(Error::Embedding)
    }

    /// The `k` documents most similar to `query`.
    pub fn similarity_search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Document>> {
        Ok(strip_scores(
            self.similarity_search_with_score(query, opts)?,
        ))
    }

    /// The `k` documents most similar to `query`, with Milvus scores (squared L2 distance,
    /// inner product, or cosine similarity, by the collection's metric).
    pub fn similarity_search_with_score(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        check_k(opts.k)?;
        match self.query_vector(query, opts.filter.as_deref(), &opts.params)? {
            Some(vector) => self.similarity_search_with_score_by_vector(&vector, opts),
            None => Ok(Vec::new()),
        }
    }

    /// Like [`Self::similarity_search_with_score`], with relevance scores in `[0, 1]`
    /// (`1 - d/4` for L2, `(s + 1)/2` for IP and cosine, from the stored metric).
    pub fn similarity_search_with_relevance_scores(
        &self,
        query: &str,
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        let metric = self.metric();
        Ok(self
            .similarity_search_with_score(query, opts)?
            .into_iter()
            .map(|(d, s)| (d, metric.relevance(s)))
            .collect())
    }

    /// The `k` documents nearest to `embedding`.
    pub fn similarity_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<Document>> {
        Ok(strip_scores(
            self.similarity_search_with_score_by_vector(embedding, opts)?,
        ))
    }

    /// The `k` documents nearest to `embedding`, with Milvus scores.
    pub fn similarity_search_with_score_by_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        check_k(opts.k)?;
        let filter = self.compile_filter(opts.filter.as_deref(), &opts.params)?;
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        let hits = live.search(embedding, opts.k, opts.ef, filter.as_ref())?;
        Ok(self.scored_documents(&live, hits))
    }

    /// The hits of several unfiltered searches with the same `k` and `ef`, searched
    /// together (how concurrent async searches share work): the collection they were read
    /// from and one answer per query, in order, each what a one-query search answers;
    /// `None` when the collection does not exist (every answer is then empty).
    pub(crate) fn search_batch_hits(
        &self,
        queries: &[&[f32]],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Option<BatchHits>> {
        let Some(live) = self.live()? else {
            return Ok(None);
        };
        let answers = live.search_batch(queries, k, ef)?;
        Ok(Some((live, answers)))
    }

    /// Search hits as documents with Milvus scores.
    pub(crate) fn scored_documents(&self, live: &LiveCollection, hits: Hits) -> ScoredDocuments {
        let pk_field = &self.inner.config.primary_field;
        hits.into_iter()
            .map(|(row, n)| {
                (
                    row.to_document(pk_field, None),
                    score_from_distance(live.metric, n.distance),
                )
            })
            .collect()
    }

    /// Maximal marginal relevance: `fetch_k` candidates, reranked for diversity.
    pub fn max_marginal_relevance_search(
        &self,
        query: &str,
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        check_k(opts.k)?;
        match self.query_vector(query, opts.filter.as_deref(), &opts.params)? {
            Some(vector) => self.max_marginal_relevance_search_by_vector(&vector, opts),
            None => Ok(Vec::new()),
        }
    }

    /// MMR from a query vector.
    pub fn max_marginal_relevance_search_by_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        check_mmr(opts)?;
        let filter = self.compile_filter(opts.filter.as_deref(), &opts.params)?;
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        let hits = live.search(embedding, opts.fetch_k.max(1), opts.ef, filter.as_ref())?;
        Ok(self.mmr_documents(&live, embedding, hits, opts))
    }

    /// MMR's reranking of its `fetch_k` candidates `hits` for `embedding`.
    pub(crate) fn mmr_documents(
        &self,
        live: &LiveCollection,
        embedding: &[f32],
        hits: Hits,
        opts: &MmrOptions,
    ) -> Vec<Document> {
        let ids: Vec<_> = hits.iter().map(|(_, n)| n.id).collect();
        let vectors = live.vectors(&ids);
        let (rows, vecs): (Vec<_>, Vec<Vec<f32>>) = hits
            .into_iter()
            .zip(vectors)
            .filter_map(|((row, _), v)| v.map(|v| (row, v)))
            .unzip();
        let candidates: Vec<&[f32]> = vecs.iter().map(Vec::as_slice).collect();
        let picks = maximal_marginal_relevance(embedding, &candidates, opts.k, opts.lambda_mult);
        let pk_field = &self.inner.config.primary_field;
        picks
            .into_iter()
            .map(|i| rows[i].to_document(pk_field, None))
            .collect()
    }

    /// Documents whose metadata matches `expr` (no vector search), in primary-key order.
    pub fn search_by_metadata(&self, expr: &str, opts: &QueryOptions) -> Result<Vec<Document>> {
        let filter = self
            .compile_filter(Some(expr), &opts.params)?
            .expect("a filter is compiled when an expression is given");
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        live.catch_up()?;
        let pk_field = &self.inner.config.primary_field;
        let rows = live.rows();
        Ok(rows
            .matching_first(&filter, opts.limit)
            .iter()
            .map(|r| r.to_document(pk_field, opts.fields.as_deref()))
            .collect())
    }

    /// Primary keys of the records matching `expr`, in key order.
    pub fn get_pks(&self, expr: &str) -> Result<Vec<Pk>> {
        let filter = self
            .compile_filter(Some(expr), &Params::new())?
            .expect("a filter is compiled when an expression is given");
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        live.catch_up()?;
        let rows = live.rows();
        Ok(rows
            .matching_sorted(&filter)
            .iter()
            .map(|r| r.pk.clone())
            .collect())
    }

    /// The documents with these ids, in the order asked; unknown ids are skipped.
    pub fn get_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        let Some(live) = self.live()? else {
            return Ok(Vec::new());
        };
        live.catch_up()?;
        let pk_field = &self.inner.config.primary_field;
        // One read lock for all ids, so a batch applied meanwhile is seen whole or not at all.
        let rows = live.rows();
        Ok(ids
            .iter()
            .filter_map(|pk| rows.row_of(pk).and_then(|r| rows.get(r)))
            .map(|r| r.to_document(pk_field, None))
            .collect())
    }
}

fn strip_scores(hits: Vec<(Document, f32)>) -> Vec<Document> {
    hits.into_iter().map(|(d, _)| d).collect()
}
