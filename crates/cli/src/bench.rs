//! The LangChain–Milvus "async vs sync" tutorial workload, on QuiverDB's embedded store:
//! `quiver bench` and `cargo run --release --example async_vs_sync` both run [`run`].
//!
//! Adds, searches and deletes 10 and 100 documents one call at a time, first with one
//! async task per call (joined), then with the blocking calls one after another, plus MMR,
//! upsert, search_by_metadata and get_pks rows. Durability is on: every write that
//! returns is fsynced. The figures of Milvus Lite 3.2.2 through langchain-milvus 0.4.0 on
//! this kind of machine (`shared/peers/README.md`) are printed beside ours.
//!
//! Each row runs [`BenchOptions::rounds`] times (writes on a fresh store each time) and
//! reports the median: one burst of 100 calls takes a few milliseconds, and on a shared
//! two-core machine a single burst can lose a third of that to a neighbour. `rounds = 1`
//! gives the tutorial's single run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Document, HashingEmbeddings, MmrOptions, Pk, QueryOptions, SearchOptions, VectorStore,
};
use rand::{Rng, SeedableRng};

use crate::error::{CliError, Result};

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

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Documents in the searched collection (default 1000).
    pub docs: usize,
    /// Directory to work in (default: a temporary directory, removed afterwards).
    pub path: Option<PathBuf>,
    /// How many times each row runs; the report gives the median (default 5, at least 1).
    pub rounds: usize,
    /// The runtime the caller runs [`run`] on, for the report's header (the caller builds
    /// it: [`RuntimeFlavor::build`]).
    pub runtime: RuntimeFlavor,
}

/// The tokio runtime the async rows run on.
///
/// The tutorial's async rows run on Python's asyncio, one event loop on one thread; its
/// Rust counterpart is tokio's current-thread runtime, the default. The store does its CPU
/// work on its own pool either way, so the executor only spawns tasks and hands over
/// answers. On this project's two-core machine the current-thread runtime is also the
/// faster of the two for these bursts (`docs/BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RuntimeFlavor {
    /// `tokio::runtime::Builder::new_current_thread`.
    #[default]
    Current,
    /// `tokio::runtime::Builder::new_multi_thread` (one worker per core).
    Multi,
}

impl RuntimeFlavor {
    /// Builds the runtime (I/O and timers enabled).
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            RuntimeFlavor::Current => tokio::runtime::Builder::new_current_thread(),
            RuntimeFlavor::Multi => tokio::runtime::Builder::new_multi_thread(),
        }
        .enable_all()
        .build()
    }

    fn describe(self) -> &'static str {
        match self {
            RuntimeFlavor::Current => "tokio current-thread runtime (one event loop, like asyncio)",
            RuntimeFlavor::Multi => "tokio multi-thread runtime",
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            docs: 1000,
            path: None,
            rounds: 5,
            runtime: RuntimeFlavor::Current,
        }
    }
}

/// One row of the summary table: seconds for the blocking and the async calls, each the
/// median of the rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// The operation (`add 10`, `search 100`, ...).
    pub name: String,
    /// Seconds, blocking calls one after another.
    pub sync_secs: f64,
    /// Seconds, one async task per call, joined.
    pub async_secs: f64,
}

/// The seconds each round of one timed operation took.
#[derive(Debug, Clone, Default)]
struct Times(Vec<f64>);

impl Times {
    /// Records the time since `t`.
    fn stop(&mut self, t: Instant) {
        self.0.push(t.elapsed().as_secs_f64());
    }

    /// The median (the upper one of an even count); NaN before any round.
    fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// `0.0038 seconds`, with the spread when there were several rounds:
    /// `0.0038 seconds (median of 5: 0.0031–0.0052)`.
    fn describe(&self, unit: &str) -> String {
        let med = self.median();
        match self.0.len() {
            0 | 1 => format!("{med:.4} {unit}"),
            n => {
                let lo = self.0.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{med:.4} {unit} (median of {n}: {lo:.4}–{hi:.4})")
            }
        }
    }
}

/// Every timed operation, in the order run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BenchReport {
    /// The rows of the summary table.
    pub rows: Vec<BenchRow>,
}

impl BenchReport {
    fn row(&mut self, name: &str, sync_secs: f64, async_secs: f64) {
        self.rows.push(BenchRow {
            name: name.to_owned(),
            sync_secs,
            async_secs,
        });
    }

    fn row_of(&mut self, name: &str, sync: &Times, asynchronous: &Times) {
        self.row(name, sync.median(), asynchronous.median());
    }
}

macro_rules! say {
    ($out:expr) => { writeln!($out).map_err(CliError::Output)? };
    ($out:expr, $($arg:tt)*) => { writeln!($out, $($arg)*).map_err(CliError::Output)? };
}

/// Runs the workload on the caller's tokio runtime (either flavor; the async rows spawn
/// one task per call), writing progress lines and the final markdown table to `out`.
pub async fn run<W: Write + Send>(opts: BenchOptions, out: &mut W) -> Result<BenchReport> {
    if opts.rounds == 0 {
        return Err(CliError::Bench("rounds must be at least 1".into()));
    }
    let tmp;
    let root = match &opts.path {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| CliError::write(std::env::temp_dir(), e))?;
            tmp.path().to_path_buf()
        }
    };
    let path = root.join("perf.quiver");
    let (docs, rounds) = (opts.docs, opts.rounds);
    let mut report = BenchReport::default();
    say!(
        out,
        "QuiverDB async vs sync — durable writes, {docs} docs for searches, 384-d hashing embeddings, median of {rounds} round{}, async on a {}\n",
        if rounds == 1 { "" } else { "s" },
        opts.runtime.describe()
    );

    adds(&path, rounds, &mut report, out).await?;
    searches(&path, docs, rounds, &mut report, out).await?;
    deletes(&path, rounds, &mut report, out).await?;

    say!(out);
    write_table(&report, out)?;
    Ok(report)
}

/// The summary table in markdown, with the Milvus Lite figures and the ratios to them
/// (`—` where Milvus Lite has no figure for the row).
pub fn write_table<W: Write>(report: &BenchReport, out: &mut W) -> Result<()> {
    say!(out, "| operation | QuiverDB sync s | QuiverDB async s | async speed-up | Milvus Lite sync s | Milvus Lite async s | vs Lite (sync) | vs Lite (async) |");
    say!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &report.rows {
        let (name, s, a) = (&r.name, r.sync_secs, r.async_secs);
        let lite = match MILVUS_LITE.iter().find(|(n, _, _)| n == name) {
            Some((_, ls, la)) => format!("{ls:.3} | {la:.3} | {:.0}× | {:.0}×", ls / s, la / a),
            None => "— | — | — | —".to_owned(),
        };
        say!(out, "| {name} | {s:.4} | {a:.4} | {:.1}× | {lite} |", s / a);
    }
    Ok(())
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

fn new_store(path: &Path) -> Result<VectorStore> {
    Ok(VectorStore::builder()
        .path(path)
        .collection_name(COLLECTION)
        .embeddings(HashingEmbeddings::new(384))
        .auto_id(true)
        .drop_old(true)
        .open()?)
}

async fn populate(path: &Path, n: usize) -> Result<(VectorStore, Vec<Pk>)> {
    let store = new_store(path)?;
    let mut pks = Vec::with_capacity(n);
    for start in (0..n).step_by(10_000) {
        let batch = make_docs(10_000.min(n - start), start, "This is test document");
        pks.extend(store.aadd_documents(batch, None).await?);
    }
    Ok((store, pks))
}

/// Spawns `n` tasks at once, the `i`-th running `call(i)`, and joins them: one burst of
/// concurrent async calls. Their results, in order.
async fn burst<T, F, Fut>(n: usize, call: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = quiverdb::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(call(i))).collect();
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await??);
    }
    Ok(results)
}

/// The tutorial's two lines for an operation: `Async add for 100 documents took … seconds`,
/// then the same for `Sync`.
fn tutorial_lines<W: Write>(
    out: &mut W,
    operation: &str,
    what: &str,
    sync: &Times,
    asynchronous: &Times,
) -> Result<()> {
    for (mode, times) in [("Async", asynchronous), ("Sync", sync)] {
        say!(
            out,
            "{mode} {operation} for {what} took {}",
            times.describe("seconds")
        );
    }
    Ok(())
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(CliError::Bench(format!(
            "{what}: expected {want:?}, got {got:?}"
        )))
    }
}

/// Adds, one document per call, each round on a fresh store.
async fn adds<W: Write + Send>(
    path: &Path,
    rounds: usize,
    report: &mut BenchReport,
    out: &mut W,
) -> Result<()> {
    for n in [10usize, 100] {
        let docs = make_docs(n, 0, "This is test document");
        let (mut a, mut s) = (Times::default(), Times::default());
        for _ in 0..rounds {
            let store = new_store(path)?;
            let t = Instant::now();
            burst(n, |i| {
                let (st, d) = (store.clone(), docs[i].clone());
                async move { st.aadd_documents(vec![d], None).await }
            })
            .await?;
            a.stop(t);
            expect_eq("count after async adds", store.count()?, n)?;

            let store = new_store(path)?;
            let t = Instant::now();
            for d in &docs {
                store.add_documents(vec![d.clone()], None)?;
            }
            s.stop(t);
            expect_eq("count after sync adds", store.count()?, n)?;
        }
        tutorial_lines(out, "add", &format!("{n} documents"), &s, &a)?;
        report.row_of(&format!("add {n}"), &s, &a);
    }
    Ok(())
}

/// Searches, MMR, metadata queries and upserts over a populated collection.
async fn searches<W: Write + Send>(
    path: &Path,
    docs: usize,
    rounds: usize,
    report: &mut BenchReport,
    out: &mut W,
) -> Result<()> {
    let t = Instant::now();
    let (store, pks) = populate(path, docs).await?;
    say!(
        out,
        "\nPopulated {docs} documents in {:.3} seconds",
        t.elapsed().as_secs_f64()
    );
    let query = |i: usize| format!("test document {}", i % 50);
    for n in [10usize, 100] {
        let (mut a, mut s) = (Times::default(), Times::default());
        for _ in 0..rounds {
            let t = Instant::now();
            let answers = burst(n, |i| {
                let (st, q) = (store.clone(), query(i));
                async move { st.asimilarity_search(&q, &SearchOptions::k(3)).await }
            })
            .await?;
            a.stop(t);
            for hits in answers {
                expect_eq("async search hits", hits.len(), 3.min(docs))?;
            }
            let t = Instant::now();
            for i in 0..n {
                let hits = store.similarity_search(&query(i), &SearchOptions::k(3))?;
                expect_eq("search hits", hits.len(), 3.min(docs))?;
            }
            s.stop(t);
        }
        tutorial_lines(out, "search", &format!("{n} queries"), &s, &a)?;
        report.row_of(&format!("search {n}"), &s, &a);
    }

    let mmr = MmrOptions {
        k: 3,
        fetch_k: 20,
        ..MmrOptions::default()
    };
    let (mut a, mut s) = (Times::default(), Times::default());
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..100 {
            store.max_marginal_relevance_search(&query(i), &mmr)?;
        }
        s.stop(t);
        let t = Instant::now();
        burst(100, |i| {
            let (st, q, o) = (store.clone(), query(i), mmr.clone());
            async move { st.amax_marginal_relevance_search(&q, &o).await }
        })
        .await?;
        a.stop(t);
    }
    say!(
        out,
        "MMR search for 100 queries took {} sync, {} async",
        s.describe("s"),
        a.describe("s")
    );
    report.row_of("mmr 100", &s, &a);

    let q = QueryOptions::default();
    let (mut a, mut s) = (Times::default(), Times::default());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..100 {
            let r = store.search_by_metadata("category == 'cat_1'", &q)?;
            expect_eq("search_by_metadata hits", r.len(), 10.min(docs / 5))?;
        }
        s.stop(t);
        let t = Instant::now();
        burst(100, |_| {
            let (st, o) = (store.clone(), q.clone());
            async move { st.asearch_by_metadata("category == 'cat_1'", &o).await }
        })
        .await?;
        a.stop(t);
    }
    say!(
        out,
        "search_by_metadata x100 took {} sync, {} async",
        s.describe("s"),
        a.describe("s")
    );
    report.row_of("search_by_metadata 100", &s, &a);

    let (mut a, mut s) = (Times::default(), Times::default());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..100 {
            store.get_pks("category == 'cat_1'")?;
        }
        s.stop(t);
        let t = Instant::now();
        burst(100, |_| {
            let st = store.clone();
            async move { st.aget_pks("category == 'cat_1'").await }
        })
        .await?;
        a.stop(t);
    }
    say!(
        out,
        "get_pks x100 took {} sync, {} async",
        s.describe("s"),
        a.describe("s")
    );
    report.row_of("get_pks 100", &s, &a);

    // Every round replaces the same records again (an upsert of a pk that exists).
    let up = 100.min(pks.len() / 2);
    let (mut a, mut s) = (Times::default(), Times::default());
    for _ in 0..rounds {
        let t = Instant::now();
        store.upsert(
            Some(pks[..up].to_vec()),
            make_docs(up, 0, "This is UPDATED document"),
        )?;
        s.stop(t);
        let t = Instant::now();
        store
            .aupsert(
                Some(pks[up..2 * up].to_vec()),
                make_docs(up, up, "This is UPDATED2 document"),
            )
            .await?;
        a.stop(t);
        expect_eq("count after upserts", store.count()?, docs)?;
    }
    let updated = store.get_pks("text like 'This is UPDATED%'")?.len();
    expect_eq("updated records", updated, 2 * up)?;
    say!(
        out,
        "Upsert of {up} documents in one call took {} sync, {} async",
        s.describe("s"),
        a.describe("s")
    );
    report.row_of("upsert 100 (one call)", &s, &a);
    Ok(())
}

/// Deletes by filter, one per call, each round on a freshly populated store.
async fn deletes<W: Write + Send>(
    path: &Path,
    rounds: usize,
    report: &mut BenchReport,
    out: &mut W,
) -> Result<()> {
    for n in [10usize, 100] {
        let (mut a, mut s) = (Times::default(), Times::default());
        for _ in 0..rounds {
            let (store, _) = populate(path, 1000).await?;
            let t = Instant::now();
            let deleted = burst(n, |i| {
                let st = store.clone();
                async move { st.adelete(None, Some(&format!("id == 'doc_{i}'"))).await }
            })
            .await?;
            a.stop(t);
            expect_eq("async deleted", deleted, vec![1; n])?;
            expect_eq("count after async deletes", store.count()?, 1000 - n)?;

            let (store, _) = populate(path, 1000).await?;
            let t = Instant::now();
            for i in 0..n {
                let deleted = store.delete(None, Some(&format!("id == 'doc_{i}'")))?;
                expect_eq("deleted", deleted, 1)?;
            }
            s.stop(t);
            expect_eq("count after deletes", store.count()?, 1000 - n)?;
        }
        tutorial_lines(out, "delete", &format!("{n} documents"), &s, &a)?;
        report.row_of(&format!("delete {n}"), &s, &a);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_are_deterministic_and_carry_the_tutorial_metadata() {
        let a = make_docs(3, 5, "This is test document");
        assert_eq!(a, make_docs(3, 5, "This is test document"));
        assert!(a[0]
            .page_content
            .starts_with("This is test document 5 with"));
        assert_eq!(a[2].metadata["id"], Value::from("doc_7"));
        assert_eq!(a[1].metadata["category"], Value::from("cat_1"));
    }

    #[test]
    fn table_compares_with_milvus_lite() {
        let mut r = BenchReport::default();
        r.row("add 10", 0.0533, 0.0286);
        r.row("upsert 100 (one call)", 0.01, 0.01);
        let mut out = Vec::new();
        write_table(&r, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| add 10 | 0.0533 | 0.0286 | 1.9× | 0.533 | 0.572 | 10× | 20× |"
        );
        assert_eq!(
            lines[3],
            "| upsert 100 (one call) | 0.0100 | 0.0100 | 1.0× | — | — | — | — |"
        );
    }

    #[test]
    fn times_report_the_median_and_the_spread() {
        let mut t = Times::default();
        assert!(t.median().is_nan());
        t.0 = vec![0.003];
        assert_eq!(t.describe("seconds"), "0.0030 seconds");
        t.0 = vec![0.005, 0.001, 0.003, 0.002];
        assert_eq!(t.median(), 0.003);
        assert_eq!(t.describe("s"), "0.0030 s (median of 4: 0.0010–0.0050)");
    }

    #[tokio::test]
    async fn zero_rounds_is_an_error() {
        let opts = BenchOptions {
            rounds: 0,
            ..BenchOptions::default()
        };
        let e = run(opts, &mut Vec::new()).await.unwrap_err().to_string();
        assert!(e.contains("rounds must be at least 1"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_reports_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BenchOptions {
            docs: 40,
            path: Some(dir.path().to_path_buf()),
            rounds: 2,
            runtime: RuntimeFlavor::Multi,
        };
        let mut out = Vec::new();
        let report = run(opts, &mut out).await.unwrap();
        let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "add 10",
                "add 100",
                "search 10",
                "search 100",
                "mmr 100",
                "search_by_metadata 100",
                "get_pks 100",
                "upsert 100 (one call)",
                "delete 10",
                "delete 100"
            ]
        );
        for r in &report.rows {
            assert!(r.sync_secs > 0.0 && r.async_secs > 0.0, "{r:?}");
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("median of 2 rounds"), "{text}");
        assert!(
            text.contains("Async add for 100 documents took ") && text.contains("(median of 2: "),
            "{text}"
        );
    }

    /// The default runtime: one thread runs the tasks and every store call they make.
    #[test]
    fn a_small_run_on_a_current_thread_runtime_reports_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BenchOptions {
            docs: 40,
            path: Some(dir.path().to_path_buf()),
            rounds: 1,
            ..BenchOptions::default()
        };
        assert_eq!(opts.runtime, RuntimeFlavor::Current);
        let rt = opts.runtime.build().unwrap();
        let mut out = Vec::new();
        let report = rt.block_on(run(opts, &mut out)).unwrap();
        assert_eq!(report.rows.len(), 10);
        for r in &report.rows {
            assert!(r.sync_secs > 0.0 && r.async_secs > 0.0, "{r:?}");
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("current-thread runtime"), "{text}");
    }

    #[test]
    fn expect_eq_reports_both_sides() {
        assert!(expect_eq("x", 1, 1).is_ok());
        let e = expect_eq("count", 2, 3).unwrap_err().to_string();
        assert_eq!(e, "bench: count: expected 3, got 2");
    }
}
