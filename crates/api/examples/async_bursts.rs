//! Bursts of 100 concurrent async calls against 100 sequential blocking calls, on a durable
//! store of 1,000 tutorial-like documents; prints the median per burst over many bursts (the
//! demo `async_vs_sync` times each row once, as the tutorial does).
//!
//! ```text
//! cargo run --release -p quiverdb --example async_bursts -- search|add [BURSTS]
//! ```

use std::time::Instant;

use quiverdb::{HashingEmbeddings, SearchOptions, VectorStore};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), quiverdb::Error> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "search".into());
    let bursts: usize = std::env::args()
        .nth(2)
        .and_then(|b| b.parse().ok())
        .unwrap_or(if what == "add" { 30 } else { 200 });
    let dir = tempfile::tempdir().map_err(|e| quiverdb::Error::Storage(e.to_string()))?;
    let store = VectorStore::builder()
        .path(dir.path())
        .embeddings(HashingEmbeddings::new(384))
        .auto_id(true)
        .open()?;
    let texts: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "This is test document {i} with some random content: {}",
                i * 7919 % 1000
            )
        })
        .collect();
    store.add_texts(texts, None, None)?;
    let (mut sync_ms, mut async_ms) = (Vec::new(), Vec::new());
    for round in 0..bursts {
        let t = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let s = store.clone();
                let what = what.clone();
                tokio::spawn(async move {
                    if what == "add" {
                        s.aadd_texts([format!("async doc {round} {i}")], None, None)
                            .await
                            .map(|_| ())
                    } else {
                        s.asimilarity_search(
                            &format!("test document {}", i % 50),
                            &SearchOptions::k(3),
                        )
                        .await
                        .map(|_| ())
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await
                .map_err(|e| quiverdb::Error::Panicked(e.to_string()))??;
        }
        async_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        for i in 0..100 {
            if what == "add" {
                store.add_texts([format!("sync doc {round} {i}")], None, None)?;
            } else {
                store.similarity_search(
                    &format!("test document {}", i % 50),
                    &SearchOptions::k(3),
                )?;
            }
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
