//! Crash safety: a child process writes through the public API (sync and async, adds,
//! upserts, deletes) and reports every acknowledged batch on stdout; the parent kills it
//! with SIGKILL at a random moment, reopens the store and checks that
//!
//! * every acknowledged batch is fully there,
//! * the one batch in flight at the kill is there entirely or not at all,
//! * storage's integrity check passes, and a search for each live record's own vector
//!   finds it,
//! * a second collection, written at the same time by another thread of the child (so
//!   commits of two collections share the write-ahead log's syncs), holds every record it
//!   acknowledged, in order, and at most the one in flight besides.
//!
//! `QUIVERDB_CRASH_ROUNDS` sets the number of rounds (default 50; the long run in
//! `docs/RELIABILITY.md` uses 1,000).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quiverdb::{HashingEmbeddings, Pk, SearchOptions, VectorStore};
use rand::{Rng, SeedableRng};

const CHILD_ENV: &str = "QUIVERDB_CRASH_CHILD_DIR";
const DIM: usize = 32;

fn open(dir: &std::path::Path) -> VectorStore {
    open_collection(dir, "crash")
}

fn open_collection(dir: &std::path::Path, name: &str) -> VectorStore {
    VectorStore::builder()
        .path(dir)
        .collection_name(name)
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .expect("open store")
}

/// The second collection: records `s1`, `s2`, … added one per blocking call, in order.
const SIDE: &str = "side";

fn side_id(n: u64) -> Pk {
    Pk::from(format!("s{n}").as_str())
}

/// One batch, as the child reports it: `BEGIN`/`ACK` followed by the operation.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Put {
        upsert: bool,
        items: Vec<(String, String)>,
    },
    Delete {
        ids: Vec<String>,
    },
}

impl Op {
    fn encode(&self) -> String {
        match self {
            Op::Put { upsert, items } => {
                let body: Vec<String> = items.iter().map(|(k, t)| format!("{k}={t}")).collect();
                format!(
                    "{} {}",
                    if *upsert { "upsert" } else { "add" },
                    body.join(";")
                )
            }
            Op::Delete { ids } => format!("delete {}", ids.join(";")),
        }
    }

    fn decode(s: &str) -> Op {
        let (kind, body) = s.split_once(' ').expect("op line");
        match kind {
            "delete" => Op::Delete {
                ids: body.split(';').map(str::to_owned).collect(),
            },
            k => Op::Put {
                upsert: k == "upsert",
                items: body
                    .split(';')
                    .map(|kv| {
                        let (k, t) = kv.split_once('=').expect("item");
                        (k.to_owned(), t.to_owned())
                    })
                    .collect(),
            },
        }
    }

    fn apply(&self, model: &mut BTreeMap<String, String>) {
        match self {
            Op::Put { items, .. } => {
                for (k, t) in items {
                    model.insert(k.clone(), t.clone());
                }
            }
            Op::Delete { ids } => {
                for k in ids {
                    model.remove(k);
                }
            }
        }
    }
}

/// The child's body: runs only when the parent sets `CHILD_ENV`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // not spawned by the parent: nothing to do
    };
    let seed: u64 = std::env::var("QUIVERDB_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let store = open(std::path::Path::new(&dir));
    let side = open_collection(std::path::Path::new(&dir), SIDE);
    std::thread::spawn(move || {
        let mut n = side.get_pks("pk like '%'").unwrap().len() as u64;
        loop {
            n += 1;
            side.add_texts([format!("side {n}")], None, Some(vec![side_id(n)]))
                .unwrap();
            println!("@@SIDE {n}");
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Keys already acknowledged in earlier rounds come back through the store.
    let mut live: Vec<String> = store
        .get_pks("pk like '%'")
        .unwrap()
        .into_iter()
        .map(|p| p.to_id_string())
        .collect();
    let mut next = seed * 1_000_000;
    let mut version = 0u64;
    loop {
        version += 1;
        let choice = if live.len() < 3 {
            0
        } else {
            rng.gen_range(0..10)
        };
        let op = match choice {
            0..=4 => {
                let n = rng.gen_range(1..=5);
                let items = (0..n)
                    .map(|_| {
                        next += 1;
                        (format!("k{next}"), format!("text {next} v{version}"))
                    })
                    .collect();
                Op::Put {
                    upsert: false,
                    items,
                }
            }
            5..=7 => {
                let n = rng.gen_range(1..=3).min(live.len());
                let mut items: Vec<(String, String)> = (0..n)
                    .map(|_| {
                        let k = live[rng.gen_range(0..live.len())].clone();
                        let t = format!("updated {k} v{version}");
                        (k, t)
                    })
                    .collect();
                items.sort();
                items.dedup_by(|a, b| a.0 == b.0);
                Op::Put {
                    upsert: true,
                    items,
                }
            }
            _ => {
                let n = rng.gen_range(1..=2).min(live.len());
                let mut ids: Vec<String> = (0..n)
                    .map(|_| live[rng.gen_range(0..live.len())].clone())
                    .collect();
                ids.sort();
                ids.dedup();
                Op::Delete { ids }
            }
        };
        println!("@@BEGIN {}", op.encode());
        let use_async = rng.gen_bool(0.5);
        match &op {
            Op::Put { upsert, items } => {
                let ids: Vec<Pk> = items.iter().map(|(k, _)| Pk::from(k.as_str())).collect();
                let texts: Vec<String> = items.iter().map(|(_, t)| t.clone()).collect();
                if *upsert {
                    let docs = texts.iter().map(quiverdb::Document::new).collect();
                    if use_async {
                        rt.block_on(store.aupsert(Some(ids), docs)).unwrap();
                    } else {
                        store.upsert(Some(ids), docs).unwrap();
                    }
                } else if use_async {
                    rt.block_on(store.aadd_texts(texts, None, Some(ids)))
                        .unwrap();
                } else {
                    store.add_texts(texts, None, Some(ids)).unwrap();
                }
            }
            Op::Delete { ids } => {
                let ids: Vec<Pk> = ids.iter().map(|k| Pk::from(k.as_str())).collect();
                if use_async {
                    rt.block_on(store.adelete(Some(ids), None)).unwrap();
                } else {
                    store.delete(Some(ids), None).unwrap();
                }
            }
        }
        println!("@@ACK {}", op.encode());
        match &op {
            Op::Put {
                upsert: false,
                items,
            } => live.extend(items.iter().map(|(k, _)| k.clone())),
            Op::Delete { ids } => live.retain(|k| !ids.contains(k)),
            _ => {}
        }
    }
}

#[test]
fn killed_writer_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("QUIVERDB_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut total_acks = 0usize;
    // Records of the second collection known to be there (acknowledged, or found after a
    // kill).
    let mut side_count = 0u64;
    let mut in_flight_at_kill = 0usize;
    let mut in_flight_applied = 0usize;
    for round in 0..rounds {
        let mut command = Command::new(&exe);
        command
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("QUIVERDB_CRASH_SEED", (round + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if round % 2 == 0 {
            // Every other writer checkpoints its write-ahead log after 64 KiB instead of
            // 32 MiB, so kills also land during checkpoints and right after them.
            command.env("QUIVERDB_WAL_CHECKPOINT_BYTES", "65536"); // quiverdb_storage::CHECKPOINT_BYTES_ENV
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it write for a random while once it has started, then kill it mid-stream.
        let budget = Duration::from_millis(rng.gen_range(30..300));
        let mut lines = Vec::new();
        let mut started: Option<Instant> = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(l) => {
                    started.get_or_insert_with(Instant::now);
                    lines.push(l);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
            if started.is_some_and(|s| s.elapsed() >= budget) {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        // Acknowledged batches must all be there; the one in flight, all or nothing.
        let mut in_flight: Option<Op> = None;
        // libtest may print its own text before ours on a line: look for the marker.
        for l in lines
            .iter()
            .filter_map(|l| l.find("@@").map(|i| &l[i + 2..]))
        {
            if let Some(n) = l.strip_prefix("SIDE ") {
                side_count = side_count.max(n.parse().unwrap());
            } else if let Some(op) = l.strip_prefix("BEGIN ") {
                in_flight = Some(Op::decode(op));
            } else if let Some(op) = l.strip_prefix("ACK ") {
                let op = Op::decode(op);
                assert_eq!(
                    in_flight.take().as_ref(),
                    Some(&op),
                    "round {round}: ack without begin"
                );
                op.apply(&mut model);
                total_acks += 1;
            }
        }
        let store = open(dir.path());
        let stored: BTreeMap<String, String> = store
            .get_by_ids(&store.get_pks("pk like '%'").unwrap())
            .unwrap()
            .into_iter()
            .map(|d| (d.id.unwrap(), d.page_content))
            .collect();
        in_flight_at_kill += usize::from(in_flight.is_some());
        if stored != model {
            let op = in_flight
                .unwrap_or_else(|| panic!("round {round}: store differs from acknowledged model"));
            in_flight_applied += 1;
            op.apply(&mut model);
            assert_eq!(
                stored, model,
                "round {round}: in-flight batch {op:?} half applied"
            );
        }
        // Every live record is found by a search for its own vector.
        let emb = HashingEmbeddings::new(DIM);
        for (k, text) in &model {
            let hits = store
                .similarity_search_by_vector(&emb.embed(text), &SearchOptions::k(3))
                .unwrap();
            assert!(
                hits.iter().any(|d| d.id.as_deref() == Some(k.as_str())),
                "round {round}: {k} not found by its own vector"
            );
        }
        store.close().unwrap();
        // The second collection: every acknowledged record, in order, plus at most the one
        // in flight.
        let side = open_collection(dir.path(), SIDE);
        let found = side.get_pks("pk like '%'").unwrap().len() as u64;
        assert!(
            found == side_count || found == side_count + 1,
            "round {round}: {found} records in the second collection, {side_count} acknowledged"
        );
        let docs = side
            .get_by_ids(&(1..=found).map(side_id).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(
            docs.len() as u64,
            found,
            "round {round}: a gap in the second collection"
        );
        for (n, d) in (1..).zip(&docs) {
            assert_eq!(d.page_content, format!("side {n}"), "round {round}");
        }
        side_count = found;
        side.close().unwrap();
    }
    eprintln!(
        "crash test: {rounds} rounds, {total_acks} acknowledged batches, {in_flight_at_kill} kills mid-batch \
         ({in_flight_applied} of those batches had committed), {} live records at the end, \
         {side_count} records in the second collection",
        model.len()
    );
    assert!(
        total_acks > rounds,
        "the child acknowledged too little to test anything"
    );
}
