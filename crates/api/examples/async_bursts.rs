//! Bursts of 100 concurrent async calls against 100 sequential blocking calls, on a durable
//! store of tutorial-like documents; prints the median per burst over many bursts (the demo
//! `async_vs_sync` times each row once, as the tutorial does).
//!
//! ```text
//! cargo run --release -p quiverdb --example async_bursts -- search|add|add-new|delete|delete-new [BURSTS]
//! ```
//! `search`: k = 3 similarity searches over 1,000 documents. `add`: one document per call
//! (the collection grows by 200 per burst). `add-new`: the demo's add rows, each burst into
//! a new, empty collection (`drop_old`) on the same path, documents with the demo's
//! metadata. `delete`: one delete per call by the demo's filter `id == 'doc_i'`, distinct
//! documents each time, over a collection of 200 per burst. `delete-new`: the demo's delete
//! rows, each burst on a new collection of 1,000 documents added in one call just before.

use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{Document, HashingEmbeddings, SearchOptions, VectorStore};

/// Documents `ids` with the demo's text and metadata (`id`, `score`, `category`).
fn docs(ids: std::ops::Range<usize>) -> Vec<Document> {
    ids.map(|i| {
        let mut m = Metadata::new();
        m.insert("id".into(), Value::from(format!("doc_{i}")));
        m.insert(
            "score".into(),
            Value::Float((i * 7919 % 1000) as f64 / 1000.0),
        );
        m.insert("category".into(), Value::from(format!("cat_{}", i % 5)));
        Document::new(format!(
            "This is test document {i} with some random content: {}",
            i * 7919 % 1000
        ))
        .with_metadata(m)
    })
    .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One call of the kind measured; `i` is unique over the whole run.
async fn call_async(
    store: &VectorStore,
    what: &str,
    round: usize,
    i: usize,
) -> quiverdb::Result<()> {
    match what {
        "add" => store
            .aadd_texts([format!("async doc {round} {i}")], None, None)
            .await
            .map(|_| ()),
        "add-new" => store.aadd_documents(docs(i..i + 1), None).await.map(|_| ()),
        "delete" | "delete-new" => {
            let n = store
                .adelete(None, Some(&format!("id == 'doc_{i}'")))
                .await?;
            assert_eq!(n, 1, "doc_{i}");
            Ok(())
        }
        _ => store
            .asimilarity_search(&format!("test document {}", i % 50), &SearchOptions::k(3))
            .await
            .map(|_| ()),
    }
}

fn call_sync(store: &VectorStore, what: &str, round: usize, i: usize) -> quiverdb::Result<()> {
    match what {
        "add" => store
            .add_texts([format!("sync doc {round} {i}")], None, None)
            .map(|_| ()),
        "add-new" => store.add_documents(docs(i..i + 1), None).map(|_| ()),
        "delete" | "delete-new" => {
            let n = store.delete(None, Some(&format!("id == 'doc_{i}'")))?;
            assert_eq!(n, 1, "doc_{i}");
            Ok(())
        }
        _ => store
            .similarity_search(&format!("test document {}", i % 50), &SearchOptions::k(3))
            .map(|_| ()),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), quiverdb::Error> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "search".into());
    let bursts: usize = std::env::args()
        .nth(2)
        .and_then(|b| b.parse().ok())
        .unwrap_or(if what == "search" { 200 } else { 30 });
    let dir = tempfile::tempdir().map_err(|e| quiverdb::Error::Storage(e.to_string()))?;
    let open = |drop_old: bool| {
        VectorStore::builder()
            .path(dir.path())
            .embeddings(HashingEmbeddings::new(384))
            .auto_id(true)
            .drop_old(drop_old)
            .open()
    };
    let mut store = open(false)?;
    let n = match what.as_str() {
        "delete" => 200 * bursts,
        "add-new" | "delete-new" => 0,
        _ => 1000,
    };
    store.add_documents(docs(0..n), None)?;
    let (mut sync_ms, mut async_ms) = (Vec::new(), Vec::new());
    for round in 0..bursts {
        let fresh = |round_docs| -> quiverdb::Result<VectorStore> {
            let store = open(true)?;
            store.add_documents(round_docs, None)?;
            Ok(store)
        };
        match what.as_str() {
            "add-new" => store = open(true)?,
            "delete-new" => store = fresh(docs(round * 200..round * 200 + 1000))?,
            _ => {}
        }
        let t = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (s, what) = (store.clone(), what.clone());
                tokio::spawn(async move { call_async(&s, &what, round, round * 200 + i).await })
            })
            .collect();
        for t in tasks {
            t.await
                .map_err(|e| quiverdb::Error::Panicked(e.to_string()))??;
        }
        async_ms.push(t.elapsed().as_secs_f64() * 1e3);
        match what.as_str() {
            "add-new" => store = open(true)?,
            "delete-new" => store = fresh(docs(round * 200..round * 200 + 1000))?,
            _ => {}
        }
        let t = Instant::now();
        for i in 100..200 {
            call_sync(&store, &what, round, round * 200 + i)?;
        }
        sync_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (s, a) = (median(sync_ms), median(async_ms));
    println!(
        "{{\"calls\":\"{what}\",\"bursts\":{bursts},\"sync_ms_per_100\":{s:.3},\"async_ms_per_100\":{a:.3},\"async_speedup\":{:.2}}}",
        s / a
    );
    Ok(())
}
