//! Group-commit throughput: durable single-record inserts per second with 1, 2, 8 and 64
//! concurrent writer threads on one collection, 8 threads each writing its own collection,
//! plus 64 async tasks on a 2-worker tokio runtime.
//!
//! Run: `cargo run --release -p quiverdb-storage --example group_commit [secs_per_case] [rounds]`
//! (defaults 2 s, 3 rounds). Prints one JSON line per case with the median over the rounds. The database lives in a fresh temporary directory under
//! `$TMPDIR` (so the numbers depend on that disk's fsync latency).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiverdb_storage::{CollectionConfig, Database, Metadata, Metric, NewRecord, PkKind};

fn record(i: u64) -> NewRecord {
    NewRecord {
        pk: None,
        text: format!("document number {i}"),
        metadata: Metadata::new(),
        vector: (0..64).map(|j| ((i + j) % 17) as f32 + 0.5).collect(),
    }
}

fn config() -> CollectionConfig {
    CollectionConfig {
        pk_kind: PkKind::AutoInt,
        metric: Metric::L2,
        ..CollectionConfig::default()
    }
}

struct Outcome {
    commits: u64,
    /// `fdatasync`s of the write-ahead log.
    syncs: u64,
    secs: f64,
}

/// `writers` threads inserting into one collection, or each into its own (`own_collection`).
fn run_threads(writers: usize, own_collection: bool, duration: Duration) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path()).expect("open");
    let colls: Vec<_> = (0..if own_collection { writers } else { 1 })
        .map(|i| {
            db.create_collection(&format!("bench{i}"), config())
                .expect("create")
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let syncs_before = db.log_sync_count();
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let coll = colls[w % colls.len()].clone();
            let (stop, commits) = (stop.clone(), commits.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = commits.fetch_add(1, Ordering::Relaxed);
                    coll.insert(vec![record(n)]).expect("insert");
                }
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer");
    }
    let secs = start.elapsed().as_secs_f64();
    let stored: u64 = colls.iter().map(|c| c.count().expect("count") as u64).sum();
    assert_eq!(stored, commits.load(Ordering::Relaxed));
    Outcome {
        commits: stored,
        syncs: db.log_sync_count() - syncs_before,
        secs,
    }
}

fn run_async(tasks: usize, duration: Duration) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open(dir.path()).expect("open");
    let coll = db.create_collection("bench", config()).expect("create");
    let syncs_before = db.log_sync_count();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (coll, stop) = (coll.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        coll.insert_async(vec![record(i)]).await.expect("insert");
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::task::spawn_blocking(move || std::thread::sleep(duration))
            .await
            .expect("sleep");
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.expect("task");
        }
    });
    Outcome {
        commits: coll.count().expect("count") as u64,
        syncs: db.log_sync_count() - syncs_before,
        secs: start.elapsed().as_secs_f64(),
    }
}

fn median(outs: &mut [Outcome]) -> &Outcome {
    outs.sort_by(|a, b| (a.commits as f64 / a.secs).total_cmp(&(b.commits as f64 / b.secs)));
    &outs[outs.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let duration = Duration::from_secs_f64(secs);
    let cases: Vec<(&str, usize)> = vec![
        ("threads", 1),
        ("threads", 2),
        ("threads", 8),
        ("threads", 64),
        ("collections", 8),
        ("async_tasks", 64),
    ];
    println!("{{\"load_average_before\":\"{}\"}}", load_average());
    // Rounds interleave the cases so that background load hits them alike.
    let mut results: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, &(kind, n)) in cases.iter().enumerate() {
            results[i].push(match kind {
                "threads" => run_threads(n, false, duration),
                "collections" => run_threads(n, true, duration),
                _ => run_async(n, duration),
            });
        }
    }
    let base = {
        let o = median(&mut results[0]);
        o.commits as f64 / o.secs
    };
    for (&(kind, n), outs) in cases.iter().zip(results.iter_mut()) {
        let rates: Vec<String> = outs
            .iter()
            .map(|o| format!("{:.0}", o.commits as f64 / o.secs))
            .collect();
        let o = median(outs);
        let rate = o.commits as f64 / o.secs;
        println!(
            "{{\"case\":\"{kind}\",\"writers\":{n},\"median_commits_per_s\":{rate:.0},\"all_rounds\":[{}],\"writes_per_sync\":{:.1},\"vs_single\":{:.2}}}",
            rates.join(","),
            o.commits as f64 / o.syncs.max(1) as f64,
            rate / base
        );
    }
    println!("{{\"load_average_after\":\"{}\"}}", load_average());
}
