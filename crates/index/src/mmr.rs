//! Maximal marginal relevance reranking. (Stub: filled in by issue 3.)
