//! The store's operations against the server, as async functions; `surface.rs` exposes
//! each as a blocking and an async [`quiverdb::Store`] method.

use std::collections::HashMap;

use milvus::v2::prelude::{
    DeleteRequest, FieldData, InsertRequest, QueryRequest, QueryResults, SearchRequest,
    SearchVectors, UpsertRequest,
};
use quiverdb::rules::{check_k, check_mmr};
use quiverdb::types::{Metadata, Pk, PkKind};
use quiverdb::{Document, Error, MmrOptions, QueryOptions, Result, SearchOptions};
use quiverdb_index::mmr::maximal_marginal_relevance;

use crate::errors::SdkResultExt;
use crate::lite_compat::{
    meta_column, pk_column, pk_in_filter, pk_literal, read_hits, substitute_params, text_column,
    DYNAMIC_FIELD,
};
use crate::mapping::{self, check_ids, lookup_kind};
use crate::store::Schema;
use crate::{MilvusIndex, MilvusStore};

/// Keys per `pk in [...]` expression: keeps expressions (and answers) reasonably small.
const KEYS_PER_CALL: usize = 1_000;

/// Keys per page when listing matches (Milvus answers at most 16,384 rows a query).
const KEY_PAGE: usize = 10_000;

/// Query parameters of a key-ordered page (what the SDK's own query iterator sends).
const ITERATOR_PARAMS: &[(&str, &str)] = &[("iterator", "true"), ("reduce_stop_for_best", "false")];

/// Texts, metadatas and ids of an upsert.
use quiverdb::rules::UpsertInput;

impl MilvusStore {
    fn name(&self) -> &str {
        &self.inner.config.collection_name
    }

    fn reserved(&self) -> [&str; 3] {
        let c = &self.inner.config;
        [&c.primary_field, &c.text_field, &c.vector_field]
    }

    /// A filter expression for the server: `None` for no filter, placeholders filled.
    pub(crate) fn server_filter(
        &self,
        expr: Option<&str>,
        params: &quiverdb::FilterParams,
    ) -> Result<Option<String>> {
        let Some(e) = expr.filter(|e| !e.trim().is_empty()) else {
            return Ok(None);
        };
        substitute_params(e, params).map(Some).map_err(|err| {
            // A placeholder without a value: the embedded store's parser reports it as a
            // typed filter error; give the same one when it agrees.
            let c = &self.inner.config;
            let pk_is_int = match self.schema() {
                Ok(Some(s)) => s.pk_kind != PkKind::Str,
                _ => c.auto_id,
            };
            let schema =
                quiverdb_filter::Schema::dynamic(&c.primary_field, pk_is_int, &c.text_field);
            match quiverdb_filter::compile(e, &schema, params) {
                Err(source) => Error::Filter {
                    expr: e.to_owned(),
                    source,
                },
                Ok(_) => err,
            }
        })
    }

    /// A filter that every row matches (Milvus needs a limit for an empty filter).
    fn match_all(&self, schema: Schema) -> String {
        let pk = &self.inner.config.primary_field;
        match schema.pk_kind {
            PkKind::Str => format!("{pk} >= \"\""),
            PkKind::Int | PkKind::AutoInt => format!("{pk} >= 0 or {pk} < 0"),
        }
    }

    async fn query(
        &self,
        filter: String,
        output: Vec<String>,
        limit: Option<usize>,
    ) -> Result<QueryResults> {
        self.query_with(filter, output, limit, &[]).await
    }

    async fn query_with(
        &self,
        filter: String,
        output: Vec<String>,
        limit: Option<usize>,
        params: &[(&str, &str)],
    ) -> Result<QueryResults> {
        let mut req = QueryRequest::builder()
            .collection_name(self.name())
            .filter(filter)
            .output_fields(output)
            .consistency_level(self.read_consistency());
        if let Some(l) = limit {
            req = req.limit(l as i64);
        }
        if !params.is_empty() {
            req = req.extra_params(
                params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
        }
        let resp = self
            .inner
            .client
            .query(req.build().remote()?)
            .await
            .remote()?;
        Ok(resp.results().clone())
    }

    fn doc_fields(&self) -> Vec<String> {
        let c = &self.inner.config;
        vec![
            c.primary_field.clone(),
            c.text_field.clone(),
            DYNAMIC_FIELD.to_owned(),
        ]
    }

    /// Rows of a query that asked for [`Self::doc_fields`], as documents keyed by pk.
    fn query_documents(
        &self,
        results: &QueryResults,
        fields: Option<&[String]>,
    ) -> Result<Vec<(Pk, Document)>> {
        let c = &self.inner.config;
        let pks = pk_column(results.get_output_field(&c.primary_field), &c.primary_field)?;
        let texts = text_column(results.get_output_field(&c.text_field), pks.len())?;
        let metas = meta_column(results.get_output_field(DYNAMIC_FIELD), pks.len())?;
        Ok(pks
            .into_iter()
            .zip(texts)
            .zip(metas)
            .map(|((pk, text), meta)| {
                let doc = mapping::to_document(pk.clone(), text, meta, &c.primary_field, fields);
                (pk, doc)
            })
            .collect())
    }

    // ---- writes ----------------------------------------------------------------------

    /// Inserts texts with their vectors; returns the ids.
    pub(crate) async fn insert_vectors(
        &self,
        texts: Vec<String>,
        vectors: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        ids: Option<Vec<Pk>>,
    ) -> Result<Vec<Pk>> {
        let n = check_lengths(&texts, &vectors, metadatas.as_deref())?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (dim, metric) = match self.schema()? {
            Some(s) => (s.dim, s.metric),
            None => (vectors[0].len(), self.inner.config.metric),
        };
        mapping::check_vectors(&vectors, dim, metric)?;
        mapping::check_texts(&texts)?;
        let schema = self.ensure_collection(dim, ids.as_deref()).await?;
        if schema.dim != dim {
            mapping::check_vectors(&vectors, schema.dim, schema.metric)?;
        }
        let ids = mapping::insert_ids(schema.pk_kind, n, ids)?;
        if let Some(ids) = &ids {
            mapping::check_unique(ids)?;
            if self.inner.options.check_duplicate_ids {
                if let Some(existing) = self.existing_pks(schema, ids).await?.into_iter().next() {
                    return Err(Error::DuplicateId { id: existing });
                }
            }
        }
        let columns = self.columns(ids.clone(), texts, vectors, metadatas, n);
        let resp = self
            .inner
            .client
            .insert(
                InsertRequest::builder()
                    .collection_name(self.name())
                    .columns(columns)
                    .build()
                    .remote()?,
            )
            .await
            .remote()?;
        match ids {
            Some(ids) => Ok(ids),
            None => crate::lite_compat::ids_to_pks(resp.ids()),
        }
    }

    fn columns(
        &self,
        ids: Option<Vec<Pk>>,
        texts: Vec<String>,
        vectors: Vec<Vec<f32>>,
        metadatas: Option<Vec<Metadata>>,
        n: usize,
    ) -> Vec<FieldData> {
        let c = &self.inner.config;
        let reserved = self.reserved();
        let mut columns = Vec::with_capacity(4);
        if let Some(ids) = ids {
            columns.push(pk_field_data(&c.primary_field, ids));
        }
        columns.push(FieldData::varchar(&c.text_field, texts));
        columns.push(FieldData::float_vector(&c.vector_field, vectors));
        let metas = metadatas.unwrap_or_else(|| vec![Metadata::new(); n]);
        columns.push(FieldData::json(
            DYNAMIC_FIELD,
            metas
                .into_iter()
                .map(|m| mapping::dynamic_json(m, &reserved))
                .collect(),
        ));
        columns
    }

    /// Which of `ids` are stored.
    async fn existing_pks(&self, schema: Schema, ids: &[Pk]) -> Result<Vec<Pk>> {
        let pk = &self.inner.config.primary_field;
        let kind = lookup_kind(schema.pk_kind);
        let mut found = Vec::new();
        let wanted: Vec<Pk> = ids.iter().filter(|id| kind.accepts(id)).cloned().collect();
        for chunk in wanted.chunks(KEYS_PER_CALL) {
            let r = self
                .query(pk_in_filter(pk, chunk), vec![pk.clone()], None)
                .await?;
            found.extend(pk_column(r.get_output_field(pk), pk)?);
        }
        Ok(found)
    }

    /// Ids for an upsert from `ids` or the documents' ids.
    pub(crate) fn upsert_input(
        &self,
        ids: Option<Vec<Pk>>,
        documents: Vec<Document>,
    ) -> Result<Option<UpsertInput>> {
        quiverdb::rules::upsert_input(ids, documents, self.inner.config.auto_id, || {
            Ok(self.schema()?.map(|s| s.pk_kind))
        })
    }

    pub(crate) fn ids_from_documents(
        &self,
        doc_ids: Vec<Option<String>>,
    ) -> Result<Option<Vec<Pk>>> {
        let kind = self.schema()?.map(|s| s.pk_kind);
        mapping::ids_from_documents(kind, self.inner.config.auto_id, doc_ids)
    }

    /// Replaces whole records by id.
    pub(crate) async fn upsert_vectors(
        &self,
        texts: Vec<String>,
        vectors: Vec<Vec<f32>>,
        metadatas: Vec<Metadata>,
        ids: Vec<Pk>,
    ) -> Result<Vec<Pk>> {
        let n = check_lengths(&texts, &vectors, Some(&metadatas))?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (dim, metric) = match self.schema()? {
            Some(s) => (s.dim, s.metric),
            None => (vectors[0].len(), self.inner.config.metric),
        };
        mapping::check_vectors(&vectors, dim, metric)?;
        mapping::check_texts(&texts)?;
        let schema = self.ensure_collection(dim, Some(&ids)).await?;
        check_ids(lookup_kind(schema.pk_kind), &ids, n)?;
        mapping::check_unique(&ids)?;
        let columns = self.columns(Some(ids.clone()), texts, vectors, Some(metadatas), n);
        let insert = InsertRequest::builder()
            .collection_name(self.name())
            .columns(columns)
            .build()
            .remote()?;
        self.inner
            .client
            .upsert(UpsertRequest::builder().insert(insert).build().remote()?)
            .await
            .remote()?;
        Ok(ids)
    }

    /// Deletes by ids or by filter; returns how many records were deleted.
    pub(crate) async fn delete_records(
        &self,
        ids: Option<Vec<Pk>>,
        expr: Option<&str>,
    ) -> Result<usize> {
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
            (None, Some(e)) => Some(substitute_params(e, &Default::default())?),
            (Some(_), None) => None,
        };
        let Some(schema) = self.schema()? else {
            return Ok(0);
        };
        // Ask which records match first: the count is exact (Milvus reports the keys it
        // was given), and the delete itself is by literal keys (lite_compat, workaround 1).
        let pks = match (ids, filter) {
            (Some(ids), _) => {
                check_ids(lookup_kind(schema.pk_kind), &ids, ids.len())?;
                self.existing_pks(schema, &ids).await?
            }
            (None, Some(filter)) => self.matching_pks(filter).await?,
            (None, None) => return Ok(0),
        };
        let pk = &self.inner.config.primary_field;
        for chunk in pks.chunks(KEYS_PER_CALL) {
            self.inner
                .client
                .delete(
                    DeleteRequest::builder()
                        .collection_name(self.name())
                        .filter(pk_in_filter(pk, chunk))
                        .build()
                        .remote()?,
                )
                .await
                .remote()?;
        }
        Ok(pks.len())
    }

    /// Every key matching `filter`, however many: Milvus answers at most 16,384 rows per
    /// query, so keys are read in pages, each asking for the keys after the previous
    /// page's largest (`iterator` mode: the server returns them in key order). If the
    /// pages do not add up to the server's `count(*)` (a server that does not order
    /// them), the call fails rather than answer short.
    async fn matching_pks(&self, filter: String) -> Result<Vec<Pk>> {
        let pk = &self.inner.config.primary_field;
        let mut out = Vec::new();
        let mut cursor: Option<Pk> = None;
        let mut pages = 0usize;
        loop {
            let f = match &cursor {
                None => filter.clone(),
                Some(c) => format!("{pk} > {} and ({filter})", pk_literal(c)),
            };
            let r = self
                .query_with(f, vec![pk.clone()], Some(KEY_PAGE), ITERATOR_PARAMS)
                .await?;
            let page = pk_column(r.get_output_field(pk), pk)?;
            pages += 1;
            let full = page.len() >= KEY_PAGE;
            cursor = page.iter().max().cloned();
            out.extend(page);
            if !full {
                break;
            }
        }
        if pages > 1 {
            out.sort();
            out.dedup();
            let total = self.count_matching(filter).await?;
            if total != out.len() {
                return Err(crate::lite_compat::malformed(format!(
                    "paging by key read {} keys, the server counts {total}",
                    out.len()
                )));
            }
        }
        Ok(out)
    }

    async fn count_matching(&self, filter: String) -> Result<usize> {
        let r = self
            .query(filter, vec!["count(*)".to_owned()], None)
            .await?;
        Ok(r.get_row_count() as usize)
    }

    // ---- reads -----------------------------------------------------------------------

    /// The `k` nearest records to `embedding`, with Milvus scores.
    pub(crate) async fn search_vector(
        &self,
        embedding: &[f32],
        opts: &SearchOptions,
    ) -> Result<Vec<(Document, f32)>> {
        check_k(opts.k)?;
        let filter = self.server_filter(opts.filter.as_deref(), &opts.params)?;
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        mapping::check_vector(0, embedding, schema.dim, schema.metric)?;
        let c = &self.inner.config;
        let hits = self.search_hits(embedding, opts.k, opts.ef, filter).await?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let doc = mapping::to_document(h.pk, h.text, h.metadata, &c.primary_field, None);
                (doc, h.score)
            })
            .collect())
    }

    async fn search_hits(
        &self,
        embedding: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<String>,
    ) -> Result<Vec<crate::lite_compat::Hit>> {
        let c = &self.inner.config;
        let mut req = SearchRequest::builder()
            .collection_name(self.name())
            .vector_field(&c.vector_field)
            .vectors(SearchVectors::Float(vec![embedding.to_vec()]))
            .output_fields([c.text_field.clone(), DYNAMIC_FIELD.to_owned()])
            .limit(k as i64)
            .consistency_level(self.read_consistency());
        if let Some(f) = filter {
            req = req.filter(f);
        }
        if let (Some(ef), MilvusIndex::Hnsw { .. }) = (ef, self.inner.options.index) {
            req = req.extra_params(HashMap::from([("ef".to_owned(), ef.max(k).to_string())]));
        }
        let resp = self
            .inner
            .client
            .search(req.build().remote()?)
            .await
            .remote()?;
        match resp.results().iter().next() {
            Some(r) => read_hits(r, &c.text_field),
            None => Ok(Vec::new()),
        }
    }

    /// MMR: `fetch_k` hits, their vectors fetched by key, reranked client-side.
    pub(crate) async fn mmr_vector(
        &self,
        embedding: &[f32],
        opts: &MmrOptions,
    ) -> Result<Vec<Document>> {
        check_mmr(opts)?;
        let filter = self.server_filter(opts.filter.as_deref(), &opts.params)?;
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        mapping::check_vector(0, embedding, schema.dim, schema.metric)?;
        let hits = self
            .search_hits(embedding, opts.fetch_k.max(1), opts.ef, filter)
            .await?;
        if hits.is_empty() {
            return Ok(Vec::new());
        }
        let c = &self.inner.config;
        let pks: Vec<Pk> = hits.iter().map(|h| h.pk.clone()).collect();
        let r = self
            .query(
                pk_in_filter(&c.primary_field, &pks),
                vec![c.primary_field.clone(), c.vector_field.clone()],
                None,
            )
            .await?;
        let got = pk_column(r.get_output_field(&c.primary_field), &c.primary_field)?;
        let vectors = r
            .get_output_field(&c.vector_field)
            .and_then(|f| f.as_float_vectors())
            .ok_or_else(|| {
                crate::lite_compat::malformed("no float vectors in the MMR fetch".into())
            })?;
        let by_pk: HashMap<&Pk, &Vec<f32>> = got.iter().zip(vectors).collect();
        // Hits whose vector is gone (deleted meanwhile) drop out, as in the embedded store.
        let (kept, vecs): (Vec<_>, Vec<&[f32]>) = hits
            .iter()
            .filter_map(|h| by_pk.get(&h.pk).map(|v| (h, v.as_slice())))
            .unzip();
        let picks = maximal_marginal_relevance(embedding, &vecs, opts.k, opts.lambda_mult);
        Ok(picks
            .into_iter()
            .map(|i| {
                let h = kept[i].clone();
                mapping::to_document(h.pk, h.text, h.metadata, &c.primary_field, None)
            })
            .collect())
    }

    /// Documents matching `expr`: the first `limit` by key, as the embedded store.
    pub(crate) async fn metadata_documents(
        &self,
        expr: &str,
        opts: &QueryOptions,
    ) -> Result<Vec<Document>> {
        let filter = self.server_filter(Some(expr), &opts.params)?;
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        if opts.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = filter.unwrap_or_else(|| self.match_all(schema));
        let fields = opts.fields.as_deref();
        let r = self
            .query(filter.clone(), self.doc_fields(), Some(opts.limit))
            .await?;
        let mut docs = self.query_documents(&r, fields)?;
        if docs.len() >= opts.limit {
            // More may match than were returned, and Milvus does not say which `limit` it
            // picked: take the first `limit` keys of all matches, then fetch those.
            let mut pks = self.matching_pks(filter).await?;
            pks.sort();
            pks.truncate(opts.limit);
            docs = self.documents_by_pks(&pks, fields).await?;
        }
        docs.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(docs.into_iter().map(|(_, d)| d).collect())
    }

    async fn documents_by_pks(
        &self,
        pks: &[Pk],
        fields: Option<&[String]>,
    ) -> Result<Vec<(Pk, Document)>> {
        let pk = &self.inner.config.primary_field;
        let mut out = Vec::with_capacity(pks.len());
        for chunk in pks.chunks(KEYS_PER_CALL) {
            let r = self
                .query(pk_in_filter(pk, chunk), self.doc_fields(), None)
                .await?;
            out.extend(self.query_documents(&r, fields)?);
        }
        Ok(out)
    }

    /// Keys matching `expr`, in key order.
    pub(crate) async fn pks_matching(&self, expr: &str) -> Result<Vec<Pk>> {
        let filter = self.server_filter(Some(expr), &Default::default())?;
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        let filter = filter.unwrap_or_else(|| self.match_all(schema));
        let mut pks = self.matching_pks(filter).await?;
        pks.sort();
        Ok(pks)
    }

    /// Documents by key, in the order asked; unknown (or wrong-kind) keys are skipped.
    pub(crate) async fn documents_by_ids(&self, ids: &[Pk]) -> Result<Vec<Document>> {
        let Some(schema) = self.schema()? else {
            return Ok(Vec::new());
        };
        let kind = lookup_kind(schema.pk_kind);
        let mut wanted: Vec<Pk> = ids.iter().filter(|id| kind.accepts(id)).cloned().collect();
        wanted.sort();
        wanted.dedup();
        let found: HashMap<Pk, Document> = self
            .documents_by_pks(&wanted, None)
            .await?
            .into_iter()
            .collect();
        Ok(ids.iter().filter_map(|id| found.get(id).cloned()).collect())
    }

    /// Number of records.
    pub(crate) async fn record_count(&self) -> Result<usize> {
        if self.schema()?.is_none() {
            return Ok(0);
        }
        let r = self
            .query(String::new(), vec!["count(*)".to_owned()], None)
            .await?;
        Ok(r.get_row_count() as usize)
    }

    // ---- embedding -------------------------------------------------------------------

    /// Embeds documents without blocking the caller's executor: the model's own async
    /// call, or its blocking call on the store's runtime's blocking pool.
    pub(crate) async fn aembed_documents(
        &self,
        texts: Vec<String>,
    ) -> Result<(Vec<String>, Vec<Vec<f32>>)> {
        let model = self.embeddings()?.clone();
        let own = match model.aembed_documents(&texts) {
            Some(fut) => Some(fut.await.map_err(Error::Embedding)?),
            None => None,
        };
        if let Some(v) = own {
            return Ok((texts, v));
        }
        self.inner
            .runtime
            .handle()
            .spawn_blocking(move || {
                let v = model.embed_documents(&texts);
                v.map(|v| (texts, v))
            })
            .await
            .map_err(|e| Error::Panicked(e.to_string()))?
            .map_err(Error::Embedding)
    }

    /// Async query embedding.
    pub(crate) async fn aembed_query(&self, query: &str) -> Result<Vec<f32>> {
        let model = self.embeddings()?.clone();
        if let Some(fut) = model.aembed_query(query) {
            return fut.await.map_err(Error::Embedding);
        }
        let q = query.to_owned();
        self.inner
            .runtime
            .handle()
            .spawn_blocking(move || model.embed_query(&q))
            .await
            .map_err(|e| Error::Panicked(e.to_string()))?
            .map_err(Error::Embedding)
    }
}

fn pk_field_data(name: &str, ids: Vec<Pk>) -> FieldData {
    if matches!(ids.first(), Some(Pk::Str(_))) {
        FieldData::varchar(
            name,
            ids.into_iter()
                .map(|p| match p {
                    Pk::Str(s) => s,
                    Pk::Int(i) => i.to_string(),
                })
                .collect(),
        )
    } else {
        FieldData::int64(
            name,
            ids.into_iter()
                .map(|p| match p {
                    Pk::Int(i) => i,
                    Pk::Str(_) => 0,
                })
                .collect(),
        )
    }
}

fn check_lengths(
    texts: &[String],
    vectors: &[Vec<f32>],
    metadatas: Option<&[Metadata]>,
) -> Result<usize> {
    let n = texts.len();
    if vectors.len() != n {
        return Err(Error::LengthMismatch {
            what: "embeddings",
            expected: n,
            got: vectors.len(),
        });
    }
    if let Some(m) = metadatas {
        if m.len() != n {
            return Err(Error::LengthMismatch {
                what: "metadatas",
                expected: n,
                got: m.len(),
            });
        }
    }
    Ok(n)
}
