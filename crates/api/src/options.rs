use quiverdb_filter::Params;

/// Options of the similarity-search family (`similarity_search*`), with the LangChain–Milvus
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// How many documents to return (default 4). Zero is an error, as in Milvus.
    pub k: usize,
    /// A Milvus filter expression (LangChain's `expr`); `None` or empty matches everything.
    pub filter: Option<String>,
    /// Values for `{name}` placeholders in `filter`.
    pub params: Params,
    /// HNSW search breadth; defaults to the collection's `ef_search`. Always at least `k`.
    pub ef: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 4,
            filter: None,
            params: Params::new(),
            ef: None,
        }
    }
}

impl SearchOptions {
    /// Default options with `k` results.
    pub fn k(k: usize) -> Self {
        SearchOptions {
            k,
            ..Self::default()
        }
    }

    /// Sets the filter expression.
    pub fn filter(mut self, expr: impl Into<String>) -> Self {
        self.filter = Some(expr.into());
        self
    }

    /// Sets one template parameter.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<quiverdb_types::Value>,
    ) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }
}

/// Options of `max_marginal_relevance_search*`, with the LangChain defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MmrOptions {
    /// How many documents to return (default 4).
    pub k: usize,
    /// How many candidates to fetch before reranking (default 20).
    pub fetch_k: usize,
    /// 1 = pure relevance, 0 = maximum diversity (default 0.5).
    pub lambda_mult: f32,
    /// A Milvus filter expression.
    pub filter: Option<String>,
    /// Values for `{name}` placeholders in `filter`.
    pub params: Params,
    /// HNSW search breadth for the candidate fetch.
    pub ef: Option<usize>,
}

impl Default for MmrOptions {
    fn default() -> Self {
        MmrOptions {
            k: 4,
            fetch_k: 20,
            lambda_mult: 0.5,
            filter: None,
            params: Params::new(),
            ef: None,
        }
    }
}

/// Options of `search_by_metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOptions {
    /// At most this many documents (default 10, as LangChain).
    pub limit: usize,
    /// Metadata keys to return; `None` returns all of them.
    pub fields: Option<Vec<String>>,
    /// Values for `{name}` placeholders.
    pub params: Params,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            limit: 10,
            fields: None,
            params: Params::new(),
        }
    }
}
