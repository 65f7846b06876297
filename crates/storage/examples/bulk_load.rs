//! Bulk-load throughput: `n` records (384-dim vectors, ~200-byte texts, small metadata) in
//! batches, then a full scan and a reopen.
//!
//! Run: `cargo run --release -p quiverdb-storage --example bulk_load [n] [batch]`
//! (defaults 50 000 and 1 000). Prints one JSON line.

use std::time::Instant;

use quiverdb_storage::{CollectionConfig, Database, Metadata, Metric, NewRecord, Pk, Value};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let batch: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let dim = 384;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path()).expect("open");
    let c = db
        .create_collection(
            "bulk",
            CollectionConfig {
                metric: Metric::Cosine,
                ..CollectionConfig::default()
            },
        )
        .expect("create");
    let start = Instant::now();
    for b in 0..n.div_ceil(batch) {
        let rows = (b * batch..((b + 1) * batch).min(n))
            .map(|i| NewRecord {
                pk: Some(Pk::Str(format!("doc-{i}"))),
                text: format!("{i} ").repeat(40),
                metadata: Metadata::from([
                    ("page".to_owned(), Value::Int(i as i64 % 50)),
                    (
                        "source".to_owned(),
                        Value::Str(format!("file{}.pdf", i % 7)),
                    ),
                ]),
                vector: (0..dim)
                    .map(|j| ((i * 31 + j * 7) % 101) as f32 - 50.0)
                    .collect(),
            })
            .collect();
        c.insert(rows).expect("insert");
    }
    let load_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut scanned = 0;
    for r in c.scan() {
        scanned += usize::from(!r.expect("scan").vector.is_empty());
    }
    let scan_s = start.elapsed().as_secs_f64();
    drop((c, db));
    let start = Instant::now();
    let db = Database::open(dir.path()).expect("reopen");
    let count = db
        .open_collection("bulk")
        .expect("open")
        .count()
        .expect("count");
    let reopen_s = start.elapsed().as_secs_f64();
    assert_eq!((scanned, count), (n, n));
    println!(
        "{{\"records\":{n},\"batch\":{batch},\"dim\":{dim},\"load_s\":{load_s:.2},\"records_per_s\":{:.0},\"scan_s\":{scan_s:.2},\"scan_records_per_s\":{:.0},\"reopen_s\":{reopen_s:.2}}}",
        n as f64 / load_s,
        n as f64 / scan_s
    );
}
