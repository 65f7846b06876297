//! Approximate search quality on vectors whose distances crowd together.
//!
//! `search_scaling`'s documents are the tutorial's text (`This is test document {i} with
//! some random content: {r}`) with `r = frac(i * golden ratio)` standing in for the random
//! draw. The hashing embedder turns them into vectors that are all about as far from each
//! other (nearest neighbour at squared distance 0.41, median pair at 0.52). On such data an
//! HNSW graph built with the paper's heuristic alone (as hnswlib and faiss build it) leaves
//! most nodes with no link in and finds 0.1-0.3 of the true neighbours at any `ef`
//! (`docs/BENCHMARKS.md`, "Filling the neighbour lists"); the demo's own documents, with
//! random draws, do not crowd like this. This checks the store's graph against exact search
//! on the same documents, past the size below which the graph is not walked at all.

use quiverdb::types::{Metadata, Value};
use quiverdb::{Document, HashingEmbeddings, IndexOptions, SearchOptions, VectorStore};

/// `search_scaling`'s documents (see the crate docs): text and `id` metadata.
fn templated_docs(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let r = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            let mut m = Metadata::new();
            m.insert("id".into(), Value::from(format!("doc_{i}")));
            Document::new(format!(
                "This is test document {i} with some random content: {}",
                r as f64 / (1u64 << 53) as f64
            ))
            .with_metadata(m)
        })
        .collect()
}

fn store(engine: &str, docs: &[Document]) -> VectorStore {
    let store = VectorStore::builder()
        .in_memory()
        .embeddings(HashingEmbeddings::new(384))
        .auto_id(true)
        .index(IndexOptions {
            engine: engine.into(),
            ..IndexOptions::default()
        })
        .open()
        .unwrap();
    store.add_documents(docs.to_vec(), None).unwrap();
    store
}

fn ids(store: &VectorStore, query: &str) -> Vec<String> {
    store
        .similarity_search(query, &SearchOptions::k(3))
        .unwrap()
        .into_iter()
        .map(|d| format!("{:?}", d.metadata["id"]))
        .collect()
}

#[test]
fn the_graph_finds_what_exact_search_finds_on_crowded_vectors() {
    // 3,000 documents: more than the native engine scans exactly (2,048 nodes).
    let docs = templated_docs(3_000);
    let graph = store("native", &docs);
    let exact = store("flat", &docs);
    let queries: Vec<String> = (0..100).map(|i| format!("test document {i}")).collect();
    let mut found = 0;
    for q in &queries {
        let truth = ids(&exact, q);
        found += ids(&graph, q)
            .iter()
            .filter(|id| truth.contains(id))
            .count();
    }
    let recall = found as f64 / (3 * queries.len()) as f64;
    assert!(recall >= 0.85, "recall@3 against exact search: {recall}");
}
