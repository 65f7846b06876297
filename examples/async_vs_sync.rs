//! The LangChain–Milvus "async vs sync" tutorial, on QuiverDB's embedded store.
//!
//! Adds, searches and deletes 10 and 100 documents one call at a time, first with one
//! async task per call (joined), then with the blocking calls one after another, plus MMR,
//! upsert, search_by_metadata and get_pks rows. Durability is on: every write that
//! returns is fsynced. The figures of Milvus Lite 3.2.2 through langchain-milvus 0.4.0 on
//! this kind of machine (`shared/peers/README.md`) are printed beside ours.
//!
//! ```text
//! cargo run --release --example async_vs_sync [-- --docs N] [--path DIR]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Document, HashingEmbeddings, MmrOptions, Pk, QueryOptions, SearchOptions, VectorStore,
};
use rand::{Rng, SeedableRng};

const COLLECTION: &str = "langchain_perf_test";

/// Milvus Lite figures (sync, async) in seconds, from `shared/peers/README.md`.
const MILVUS_LITE: &[(&str, f64, f64)] = &[
    ("add 10", 0.533, 0.572),
    ("add 100", 0.671, 0.692),
    ("search 10", 0.340, 0.272),
    ("search 100", 2.470, 2.448),
    ("delete 10", 0.423, 0.356),
    ("delete 100", 3.158, 2.854),
    ("mmr 100", 2.993, 2.845),
    ("search_by_metadata 100", 2.856, 3.510),
    ("get_pks 100", 3.674, 4.198),
];

struct Args {
    docs: usize,
    path: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        docs: 1000,
        path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--docs" => {
                args.docs = it
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| usage("--docs takes a number"))
            }
            "--path" => {
                args.path = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--path takes a directory"))
                        .into(),
                )
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!("usage: async_vs_sync [--docs N (default 1000)] [--path DIR (default: a temporary directory)]");
    std::process::exit(if msg.is_empty() { 0 } else { 2 });
}

/// The tutorial's documents: `This is test document {i} with some random content: {r}`.
fn make_docs(n: usize, start: usize, prefix: &str) -> Vec<Document> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42 * 1_000_003 + start as u64);
    (start..start + n)
        .map(|i| {
            let content = format!(
                "{prefix} {i} with some random content: {}",
                rng.gen::<f64>()
            );
            let mut m = Metadata::new();
            m.insert("id".into(), Value::from(format!("doc_{i}")));
            m.insert("score".into(), Value::Float(rng.gen::<f64>()));
            m.insert("category".into(), Value::from(format!("cat_{}", i % 5)));
            Document::new(content).with_metadata(m)
        })
        .collect()
}

fn new_store(path: &std::path::Path) -> VectorStore {
    VectorStore::builder()
        .path(path)
        .collection_name(COLLECTION)
        .embeddings(HashingEmbeddings::new(384))
        .auto_id(true)
        .drop_old(true)
        .open()
        .expect("open store")
}

async fn populate(path: &std::path::Path, n: usize) -> (VectorStore, Vec<Pk>) {
    let store = new_store(path);
    let mut pks = Vec::with_capacity(n);
    for start in (0..n).step_by(10_000) {
        let batch = make_docs(10_000.min(n - start), start, "This is test document");
        pks.extend(store.aadd_documents(batch, None).await.expect("populate"));
    }
    (store, pks)
}

struct Report {
    rows: Vec<(String, f64, f64)>,
}

impl Report {
    fn row(&mut self, name: &str, sync: f64, asynchronous: f64) {
        self.rows.push((name.to_owned(), sync, asynchronous));
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let tmp;
    let root = match &args.path {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::tempdir().expect("temporary directory");
            tmp.path().to_path_buf()
        }
    };
    let path = root.join("perf.quiver");
    let mut report = Report { rows: Vec::new() };
    println!(
        "QuiverDB async vs sync — durable writes, {} docs for searches, 384-d hashing embeddings\n",
        args.docs
    );

    // ---- adds, one document per call -----------------------------------------------
    for n in [10usize, 100] {
        let docs = make_docs(n, 0, "This is test document");
        let store = new_store(&path);
        let t = Instant::now();
        let tasks: Vec<_> = docs
            .iter()
            .cloned()
            .map(|d| {
                let s = store.clone();
                tokio::spawn(async move { s.aadd_documents(vec![d], None).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("aadd_documents");
        }
        let a = secs(t);
        assert_eq!(store.count().unwrap(), n);
        println!("Async add for {n} documents took {a:.4} seconds");

        let store = new_store(&path);
        let t = Instant::now();
        for d in &docs {
            store
                .add_documents(vec![d.clone()], None)
                .expect("add_documents");
        }
        let s = secs(t);
        assert_eq!(store.count().unwrap(), n);
        println!("Sync add for {n} documents took {s:.4} seconds");
        report.row(&format!("add {n}"), s, a);
    }

    // ---- searches over the populated collection --------------------------------------
    let t = Instant::now();
    let (store, pks) = populate(&path, args.docs).await;
    println!(
        "\nPopulated {} documents in {:.3} seconds",
        args.docs,
        secs(t)
    );
    for n in [10usize, 100] {
        let t = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.asimilarity_search(&format!("test document {}", i % 50), &SearchOptions::k(3))
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(
                t.await.expect("task").expect("asimilarity_search").len(),
                3.min(args.docs)
            );
        }
        let a = secs(t);
        println!("Async search for {n} queries took {a:.4} seconds");
        let t = Instant::now();
        for i in 0..n {
            let hits = store
                .similarity_search(&format!("test document {}", i % 50), &SearchOptions::k(3))
                .expect("similarity_search");
            assert_eq!(hits.len(), 3.min(args.docs));
        }
        let s = secs(t);
        println!("Sync search for {n} queries took {s:.4} seconds");
        report.row(&format!("search {n}"), s, a);
    }

    let mmr = MmrOptions {
        k: 3,
        fetch_k: 20,
        ..MmrOptions::default()
    };
    let t = Instant::now();
    for i in 0..100 {
        store
            .max_marginal_relevance_search(&format!("test document {}", i % 50), &mmr)
            .expect("mmr");
    }
    let s = secs(t);
    let t = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (st, o) = (store.clone(), mmr.clone());
            tokio::spawn(async move {
                st.amax_marginal_relevance_search(&format!("test document {}", i % 50), &o)
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await
            .expect("task")
            .expect("amax_marginal_relevance_search");
    }
    let a = secs(t);
    println!("MMR search for 100 queries took {s:.4} s sync, {a:.4} s async");
    report.row("mmr 100", s, a);

    let q = QueryOptions::default();
    let t = Instant::now();
    for _ in 0..100 {
        let r = store
            .search_by_metadata("category == 'cat_1'", &q)
            .expect("search_by_metadata");
        assert_eq!(r.len(), 10.min(args.docs / 5));
    }
    let s = secs(t);
    let t = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (st, o) = (store.clone(), q.clone());
            tokio::spawn(async move { st.asearch_by_metadata("category == 'cat_1'", &o).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("asearch_by_metadata");
    }
    let a = secs(t);
    println!("search_by_metadata x100 took {s:.4} s sync, {a:.4} s async");
    report.row("search_by_metadata 100", s, a);

    let t = Instant::now();
    for _ in 0..100 {
        store.get_pks("category == 'cat_1'").expect("get_pks");
    }
    let s = secs(t);
    let t = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let st = store.clone();
            tokio::spawn(async move { st.aget_pks("category == 'cat_1'").await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("aget_pks");
    }
    let a = secs(t);
    println!("get_pks x100 took {s:.4} s sync, {a:.4} s async");
    report.row("get_pks 100", s, a);

    let up = 100.min(pks.len() / 2);
    let t = Instant::now();
    store
        .upsert(
            Some(pks[..up].to_vec()),
            make_docs(up, 0, "This is UPDATED document"),
        )
        .expect("upsert");
    let s = secs(t);
    let t = Instant::now();
    store
        .aupsert(
            Some(pks[up..2 * up].to_vec()),
            make_docs(up, up, "This is UPDATED2 document"),
        )
        .await
        .expect("aupsert");
    let a = secs(t);
    assert_eq!(store.count().unwrap(), args.docs);
    let updated = store.get_pks("text like 'This is UPDATED%'").unwrap().len();
    assert_eq!(updated, 2 * up);
    println!("Upsert of {up} documents in one call took {s:.4} s sync, {a:.4} s async");
    report.row("upsert 100 (one call)", s, a);
    drop(store);

    // ---- deletes by filter, one per call -----------------------------------------------
    for n in [10usize, 100] {
        let (store, _) = populate(&path, 1000).await;
        let t = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(
                    async move { s.adelete(None, Some(&format!("id == 'doc_{i}'"))).await },
                )
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("task").expect("adelete"), 1);
        }
        let a = secs(t);
        assert_eq!(store.count().unwrap(), 1000 - n);
        println!("Async delete for {n} documents took {a:.4} seconds");

        let (store, _) = populate(&path, 1000).await;
        let t = Instant::now();
        for i in 0..n {
            assert_eq!(
                store
                    .delete(None, Some(&format!("id == 'doc_{i}'")))
                    .expect("delete"),
                1
            );
        }
        let s = secs(t);
        assert_eq!(store.count().unwrap(), 1000 - n);
        println!("Sync delete for {n} documents took {s:.4} seconds");
        report.row(&format!("delete {n}"), s, a);
    }

    // ---- summary ----------------------------------------------------------------------
    println!("\n| operation | QuiverDB sync s | QuiverDB async s | async speed-up | Milvus Lite sync s | Milvus Lite async s | vs Lite (sync) | vs Lite (async) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, s, a) in &report.rows {
        let lite = MILVUS_LITE.iter().find(|(n, _, _)| *n == name);
        let (ls, la) = lite.map_or((f64::NAN, f64::NAN), |(_, s, a)| (*s, *a));
        println!(
            "| {name} | {s:.4} | {a:.4} | {:.1}× | {ls:.3} | {la:.3} | {:.0}× | {:.0}× |",
            s / a,
            ls / s,
            la / a
        );
    }
}
