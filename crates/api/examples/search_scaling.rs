//! Search latency as the collection grows: 100 `similarity_search` calls (k = 3, the demo's
//! queries) over collections of the demo's documents at each size, median of several rounds,
//! and the ratio to the smallest size — measured in one process. The documents' random
//! draw is replaced by `frac(i * golden ratio)`, which makes their hashing embeddings crowd
//! together far more than the demo's do (`docs/BENCHMARKS.md`, "Beside hnswlib and faiss").
//!
//! ```text
//! cargo run --release -p quiverdb --example search_scaling -- [SIZES] [--dir DIR] [--rounds R]
//! ```
//! `SIZES` defaults to `1000,100000`; `--rounds R` (default 15) sets how many timed bursts of 100
//! searches each size gets. With `--dir`, each collection is kept there
//! (`docs_N`) and reused by later runs, so a 1,000,000-document collection is built once.
//!
//! `--write-vectors DIR` builds no store: it writes each size's document embeddings to
//! `DIR/docs_N/base.fvecs` and 1,000 queries of the same kind (`test document {i}`) to
//! `query.fvecs`, for peer libraries to index the very same vectors
//! (`scripts/flatness_peers.sh`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{Document, Embeddings, HashingEmbeddings, SearchOptions, VectorStore};

fn docs(start: usize, n: usize) -> Vec<Document> {
    (start..start + n)
        .map(|i| {
            // A cheap deterministic stand-in for the tutorial's random suffix.
            let r = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            let mut m = Metadata::new();
            m.insert("id".into(), Value::from(format!("doc_{i}")));
            m.insert("category".into(), Value::from(format!("cat_{}", i % 5)));
            Document::new(format!(
                "This is test document {i} with some random content: {}",
                r as f64 / (1u64 << 53) as f64
            ))
            .with_metadata(m)
        })
        .collect()
}

fn open(dir: &std::path::Path, n: usize) -> Result<VectorStore, quiverdb::Error> {
    let t = Instant::now();
    let store = VectorStore::builder()
        .path(dir.join(format!("docs_{n}")))
        .embeddings(HashingEmbeddings::new(384))
        .auto_id(true)
        .open()?;
    let have = store.count()?;
    if have > 0 {
        eprintln!(
            "opened {have} documents in {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    if have != n {
        if have != 0 {
            store.drop()?;
            return open(dir, n);
        }
        let t = Instant::now();
        for start in (0..n).step_by(10_000) {
            store.add_documents(docs(start, 10_000.min(n - start)), None)?;
        }
        eprintln!("built {n} documents in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(store)
}

/// Appends `vectors` to an fvecs file (each row: its dimension as a little-endian `i32`,
/// then its values as little-endian `f32`).
fn write_fvecs(out: &mut impl Write, vectors: &[Vec<f32>]) -> std::io::Result<()> {
    for v in vectors {
        out.write_all(&(v.len() as i32).to_le_bytes())?;
        for x in v {
            out.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

/// Writes each size's document embeddings and the peer queries under `dir` (see the crate
/// docs).
fn write_vectors(dir: &Path, sizes: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let embedder = HashingEmbeddings::new(384);
    let queries: Vec<String> = (0..1000).map(|i| format!("test document {i}")).collect();
    let queries = embedder.embed_documents(&queries)?;
    for &n in sizes {
        let out = dir.join(format!("docs_{n}"));
        std::fs::create_dir_all(&out)?;
        let mut base = BufWriter::new(File::create(out.join("base.fvecs"))?);
        for start in (0..n).step_by(10_000) {
            let texts: Vec<String> = docs(start, 10_000.min(n - start))
                .into_iter()
                .map(|d| d.page_content)
                .collect();
            write_fvecs(&mut base, &embedder.embed_documents(&texts)?)?;
        }
        base.flush()?;
        write_fvecs(
            &mut BufWriter::new(File::create(out.join("query.fvecs"))?),
            &queries,
        )?;
        eprintln!("wrote {n} document vectors to {}", out.display());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sizes = vec![1_000usize, 100_000];
    let mut dir: Option<PathBuf> = None;
    let mut vectors: Option<PathBuf> = None;
    let mut rounds = 15;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--dir" {
            dir = args.next().map(PathBuf::from);
        } else if a == "--write-vectors" {
            vectors = args.next().map(PathBuf::from);
        } else if a == "--rounds" {
            rounds = args
                .next()
                .and_then(|r| r.parse().ok())
                .expect("--rounds takes a count");
        } else {
            sizes = a
                .split(',')
                .map(|s| s.replace('_', "").parse().expect("sizes like 1000,100000"))
                .collect();
        }
    }
    if let Some(out) = vectors {
        return write_vectors(&out, &sizes);
    }
    let tmp = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let stores = sizes
        .iter()
        .map(|&n| open(&dir, n))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = SearchOptions::k(3);
    let mut medians = vec![Vec::new(); sizes.len()];
    // Interleave sizes round by round so machine noise hits them alike.
    for _ in 0..rounds {
        for (store, times) in stores.iter().zip(&mut medians) {
            let t = Instant::now();
            for i in 0..100 {
                store.similarity_search(&format!("test document {}", i % 50), &opts)?;
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let medians: Vec<f64> = medians
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    for (n, ms) in sizes.iter().zip(&medians) {
        println!(
            "{{\"docs\":{n},\"ms_per_100_searches\":{ms:.2},\"vs_smallest\":{:.2}}}",
            ms / medians[0]
        );
    }
    for s in stores {
        s.close()?;
    }
    Ok(())
}
