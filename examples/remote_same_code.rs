//! The seed demo's operations through whichever backend the URI picks: the same code
//! runs on the embedded store (a directory path, the default) and on a Milvus server
//! (`http://host:port`).
//!
//! ```text
//! cargo run --release --example remote_same_code -- [URI] [--docs N]
//! cargo run --release --example remote_same_code -- ./dev.quiver
//! scripts/with-milvus.sh sh -c 'cargo run --release --example remote_same_code -- "$MILVUS_URI"'
//! ```
//!
//! Adds 100 documents one per call (async tasks joined, then blocking calls), populates
//! `--docs` documents (default 1000), then runs 100 searches, 100 MMR searches, 100
//! metadata queries and 100 `get_pks` (sync and async), 100 upserts and 100 deletes,
//! printing each operation's time. Only the URI differs between the backends.

use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Document, HashingEmbeddings, MmrOptions, Pk, QueryOptions, SearchOptions, Store, VectorStore,
};
use quiverdb_milvus::AnyStore;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const COLLECTION: &str = "remote_same_code";

fn doc(i: usize) -> Document {
    let mut m = Metadata::new();
    m.insert("n".into(), Value::Int(i as i64));
    m.insert("category".into(), Value::from(format!("cat_{}", i % 5)));
    Document::new(format!(
        "This is test document {i} with some content: {}",
        i * 7919 % 1000
    ))
    .with_metadata(m)
    .with_id(format!("doc_{i}"))
}

/// The one line that differs between the embedded store and Milvus: the URI.
async fn open(uri: &str) -> Res<AnyStore> {
    Ok(AnyStore::aopen(
        VectorStore::builder()
            .uri(uri)
            .collection_name(COLLECTION)
            .embeddings(HashingEmbeddings::new(384))
            .drop_old(true),
    )
    .await?)
}

struct Row {
    name: &'static str,
    sync_secs: f64,
    async_secs: f64,
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn check(what: &str, ok: bool) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

/// Runs `n` async calls as spawned tasks, joined; returns the seconds taken.
async fn spawned<F, Fut, T>(n: usize, store: &AnyStore, f: F) -> Res<f64>
where
    F: Fn(AnyStore, usize) -> Fut,
    Fut: std::future::Future<Output = quiverdb::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(store.clone(), i))).collect();
    for task in tasks {
        task.await??;
    }
    Ok(secs(t))
}

async fn run(uri: &str, docs: usize) -> Res<Vec<Row>> {
    let mut rows = Vec::new();

    // Adds, one document per call.
    let store = open(uri).await?;
    let a = spawned(100, &store, |s, i| async move {
        s.aadd_documents(vec![doc(i)], None).await
    })
    .await?;
    check("100 async adds", store.acount().await? == 100)?;
    let store = open(uri).await?;
    let t = Instant::now();
    for i in 0..100 {
        store.add_documents(vec![doc(i)], None)?;
    }
    let s = secs(t);
    check("100 sync adds", store.count()? == 100)?;
    rows.push(Row {
        name: "add 100 (one per call)",
        sync_secs: s,
        async_secs: a,
    });

    // A populated collection for the reads.
    let store = open(uri).await?;
    let t = Instant::now();
    for start in (0..docs).step_by(1000) {
        let batch: Vec<Document> = (start..docs.min(start + 1000)).map(doc).collect();
        store.aadd_documents(batch, None).await?;
    }
    println!("populated {docs} documents in {:.3} s", secs(t));

    let query = |i: usize| format!("test document {}", i % 50);
    let t = Instant::now();
    for i in 0..100 {
        let hits = store.similarity_search(&query(i), &SearchOptions::k(3))?;
        check("3 hits", hits.len() == 3)?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, i| async move {
        st.asimilarity_search(&query(i), &SearchOptions::k(3)).await
    })
    .await?;
    rows.push(Row {
        name: "search 100",
        sync_secs: s,
        async_secs: a,
    });

    let mmr = MmrOptions {
        k: 3,
        fetch_k: 20,
        ..MmrOptions::default()
    };
    let t = Instant::now();
    for i in 0..100 {
        store.max_marginal_relevance_search(&query(i), &mmr)?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, i| {
        let o = mmr.clone();
        async move { st.amax_marginal_relevance_search(&query(i), &o).await }
    })
    .await?;
    rows.push(Row {
        name: "mmr 100",
        sync_secs: s,
        async_secs: a,
    });

    let q = QueryOptions::default();
    let t = Instant::now();
    for _ in 0..100 {
        let r = store.search_by_metadata("category == 'cat_1'", &q)?;
        check("10 metadata hits", r.len() == 10.min(docs / 5))?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, _| {
        let o = q.clone();
        async move { st.asearch_by_metadata("category == 'cat_1'", &o).await }
    })
    .await?;
    rows.push(Row {
        name: "search_by_metadata 100",
        sync_secs: s,
        async_secs: a,
    });

    let t = Instant::now();
    for _ in 0..100 {
        store.get_pks("category == 'cat_1'")?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, _| async move {
        st.aget_pks("category == 'cat_1'").await
    })
    .await?;
    rows.push(Row {
        name: "get_pks 100",
        sync_secs: s,
        async_secs: a,
    });

    let t = Instant::now();
    for i in 0..100 {
        store.upsert(None, vec![doc(i).with_metadata(Metadata::new())])?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, i| async move {
        st.aupsert(None, vec![doc(100 + i)]).await
    })
    .await?;
    check("upserts keep the count", store.count()? == docs.max(200))?;
    rows.push(Row {
        name: "upsert 100 (one per call)",
        sync_secs: s,
        async_secs: a,
    });

    let t = Instant::now();
    for i in 0..100 {
        store.delete(Some(vec![Pk::from(format!("doc_{i}"))]), None)?;
    }
    let s = secs(t);
    let a = spawned(100, &store, |st, i| async move {
        st.adelete(Some(vec![Pk::from(format!("doc_{}", 100 + i))]), None)
            .await
    })
    .await?;
    check("deletes", store.count()? == docs.saturating_sub(200))?;
    rows.push(Row {
        name: "delete 100 (one per call)",
        sync_secs: s,
        async_secs: a,
    });
    store.drop()?;
    Ok(rows)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    let mut uri = None;
    let mut docs = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--docs" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n >= 200 => docs = n,
                _ => return usage("--docs takes a number >= 200"),
            },
            "-h" | "--help" => return usage(""),
            other if uri.is_none() => uri = Some(other.to_owned()),
            other => return usage(&format!("unexpected argument {other}")),
        }
    }
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let uri = uri.unwrap_or_else(|| tmp.path().join("db").display().to_string());
    let backend = if uri.starts_with("http") {
        "Milvus"
    } else {
        "embedded"
    };
    println!("remote_same_code: {backend} store at {uri}, {docs} documents");
    match run(&uri, docs).await {
        Ok(rows) => {
            println!("\n| operation ({backend}) | sync s | async s |");
            println!("|---|---:|---:|");
            for r in rows {
                println!("| {} | {:.4} | {:.4} |", r.name, r.sync_secs, r.async_secs);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> std::process::ExitCode {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!(
        "usage: remote_same_code [URI (default: a temporary directory)] [--docs N (default 1000)]"
    );
    if msg.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(2)
    }
}
