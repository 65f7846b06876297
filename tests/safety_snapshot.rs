//! Snapshot faults: the index snapshot `close()` writes under `<db>/index/<collection>/` is
//! deleted, truncated, emptied, bit-flipped, made older than storage, or replaced by a
//! snapshot newer than storage or of another collection. Every time the store must open,
//! rebuild or catch up, pass `check_integrity()`, and answer a fixed set of queries exactly
//! as brute force over the model does (flat engine) or with recall@10 ≥ 0.95 (HNSW).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quiverdb::types::{Metadata, Value};
use quiverdb::{Document, HashingEmbeddings, IndexOptions, Pk, SearchOptions, VectorStore};
use rand::{Rng, SeedableRng};

const DIM: usize = 16;
const COLL: &str = "snap";

type Model = BTreeMap<String, Vec<f32>>;

fn open(dir: &Path, engine: &str) -> VectorStore {
    VectorStore::builder()
        .path(dir)
        .collection_name(COLL)
        .index(IndexOptions {
            engine: engine.into(),
            ..IndexOptions::default()
        })
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .expect("open store")
}

fn snapshot_dir(db: &Path) -> PathBuf {
    db.join("index").join(COLL)
}

fn vector(rng: &mut rand::rngs::StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Adds `n` records with keys `k{from}..`, deletes every seventh of them, upserts every
/// fifth; mirrors everything into `model`.
fn write_some(store: &VectorStore, model: &mut Model, from: usize, n: usize, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keys: Vec<String> = (from..from + n).map(|i| format!("k{i}")).collect();
    let vectors: Vec<Vec<f32>> = keys.iter().map(|_| vector(&mut rng)).collect();
    let metas: Vec<Metadata> = (from..from + n)
        .map(|i| Metadata::from([("n".to_string(), Value::Int(i as i64))]))
        .collect();
    for chunk in 0..n.div_ceil(50) {
        let r = chunk * 50..((chunk + 1) * 50).min(n);
        store
            .add_embeddings(
                keys[r.clone()]
                    .iter()
                    .map(|k| format!("text {k}"))
                    .collect(),
                vectors[r.clone()].to_vec(),
                Some(metas[r.clone()].to_vec()),
                Some(
                    keys[r.clone()]
                        .iter()
                        .map(|k| Pk::from(k.as_str()))
                        .collect(),
                ),
            )
            .expect("add");
    }
    for (k, v) in keys.iter().zip(&vectors) {
        model.insert(k.clone(), v.clone());
    }
    let deleted: Vec<Pk> = keys
        .iter()
        .step_by(7)
        .map(|k| Pk::from(k.as_str()))
        .collect();
    store.delete(Some(deleted.clone()), None).expect("delete");
    for k in &deleted {
        model.remove(&k.to_id_string());
    }
    // Upserts go through the embedder, so the model takes the embedder's vector.
    let emb = HashingEmbeddings::new(DIM);
    let upserted: Vec<String> = keys
        .iter()
        .skip(1)
        .step_by(5)
        .filter(|k| model.contains_key(*k))
        .cloned()
        .collect();
    let docs: Vec<Document> = upserted
        .iter()
        .map(|k| {
            Document::new(format!("upserted {k} seed {seed}"))
                .with_metadata(Metadata::from([("n".to_string(), Value::Int(-1))]))
        })
        .collect();
    for (k, d) in upserted.iter().zip(&docs) {
        model.insert(k.clone(), emb.embed(&d.page_content));
    }
    store
        .upsert(
            Some(upserted.iter().map(|k| Pk::from(k.as_str())).collect()),
            docs,
        )
        .expect("upsert");
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn brute_force(model: &Model, q: &[f32], k: usize) -> Vec<String> {
    let mut all: Vec<(f32, &String)> = model.iter().map(|(key, v)| (l2(q, v), key)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    all.into_iter()
        .take(k)
        .map(|(_, key)| key.clone())
        .collect()
}

/// Checks the store against the model: same keys, integrity ok, searches as brute force.
fn check(store: &VectorStore, model: &Model, engine: &str, what: &str) {
    let report = store.check_integrity().expect("integrity");
    assert!(report.is_ok(), "{what}: {:?}", report.problems);
    assert_eq!(store.count().unwrap(), model.len(), "{what}: count");
    let stored: Vec<String> = store
        .get_pks("pk like '%'")
        .unwrap()
        .into_iter()
        .map(|p| p.to_id_string())
        .collect();
    let mut expected: Vec<String> = model.keys().cloned().collect();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    expected.sort();
    assert_eq!(stored_sorted, expected, "{what}: stored keys");
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let (mut found, mut wanted) = (0usize, 0usize);
    for _ in 0..20 {
        let q = vector(&mut rng);
        let truth = brute_force(model, &q, 10);
        let hits = store
            .similarity_search_with_score_by_vector(&q, &SearchOptions::k(10))
            .unwrap();
        let got: Vec<String> = hits.iter().map(|(d, _)| d.id.clone().unwrap()).collect();
        if engine == "flat" {
            // Compare distances, not ids, so that ties cannot make the test flaky.
            let want: Vec<f32> = truth.iter().map(|k| l2(&q, &model[k])).collect();
            let have: Vec<f32> = hits.iter().map(|(_, s)| *s).collect();
            assert_eq!(have.len(), want.len(), "{what}: flat result count");
            for (h, w) in have.iter().zip(&want) {
                assert!(
                    (h - w).abs() < 1e-4,
                    "{what}: flat scores {have:?} vs {want:?}"
                );
            }
        }
        wanted += truth.len();
        found += got.iter().filter(|g| truth.contains(g)).count();
    }
    let recall = found as f64 / wanted as f64;
    assert!(recall >= 0.95, "{what}: recall@10 {recall:.3} < 0.95");
}

/// Builds a closed database with a snapshot; returns the model of what it holds.
fn closed_db(dir: &Path, engine: &str) -> Model {
    let mut model = Model::new();
    let store = open(dir, engine);
    write_some(&store, &mut model, 0, 300, 1);
    store.close().unwrap();
    assert!(
        snapshot_dir(dir).join("MANIFEST").exists(),
        "close() wrote no snapshot MANIFEST under {}",
        snapshot_dir(dir).display()
    );
    model
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![snapshot_dir(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no snapshot files");
    out
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Deleted,
    Truncated,
    ZeroLength,
    BitFlipped,
    ManifestOnlyDeleted,
    DataOnlyDeleted,
}

fn inflict(dir: &Path, fault: Fault) {
    let files = snapshot_files(dir);
    match fault {
        Fault::Deleted => std::fs::remove_dir_all(snapshot_dir(dir)).unwrap(),
        Fault::Truncated => {
            for f in &files {
                let len = std::fs::metadata(f).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(f).unwrap();
                file.set_len(len / 2).unwrap();
            }
        }
        Fault::ZeroLength => {
            for f in &files {
                std::fs::write(f, b"").unwrap();
            }
        }
        Fault::BitFlipped => {
            for f in &files {
                let mut bytes = std::fs::read(f).unwrap();
                if bytes.is_empty() {
                    continue;
                }
                for i in [0, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
                    bytes[i] ^= 0x10;
                }
                std::fs::write(f, bytes).unwrap();
            }
        }
        Fault::ManifestOnlyDeleted => {
            std::fs::remove_file(snapshot_dir(dir).join("MANIFEST")).unwrap()
        }
        Fault::DataOnlyDeleted => {
            for f in files.iter().filter(|f| !f.ends_with("MANIFEST")) {
                std::fs::remove_file(f).unwrap();
            }
        }
    }
}

#[test]
fn damaged_snapshots_are_rebuilt_and_answer_as_before() {
    for engine in ["flat", "native"] {
        for fault in [
            Fault::Deleted,
            Fault::Truncated,
            Fault::ZeroLength,
            Fault::BitFlipped,
            Fault::ManifestOnlyDeleted,
            Fault::DataOnlyDeleted,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let model = closed_db(dir.path(), engine);
            // Healthy reopen first: the reference answers.
            let store = open(dir.path(), engine);
            check(&store, &model, engine, &format!("{engine} healthy"));
            store.close().unwrap();
            inflict(dir.path(), fault);
            let store = open(dir.path(), engine);
            let what = format!("{engine} after {fault:?}");
            check(&store, &model, engine, &what);
            // And it still takes writes, and a fresh snapshot is good again.
            let mut model = model;
            write_some(&store, &mut model, 1000, 20, 5);
            check(&store, &model, engine, &format!("{what}, then writes"));
            store.close().unwrap();
            let store = open(dir.path(), engine);
            check(&store, &model, engine, &format!("{what}, new snapshot"));
            store.close().unwrap();
        }
    }
}

#[test]
fn a_snapshot_older_than_storage_is_caught_up() {
    for engine in ["flat", "native"] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = closed_db(dir.path(), engine);
        let store = open(dir.path(), engine);
        // More writes, then a crash-like drop: no close, so the snapshot stays old.
        write_some(&store, &mut model, 500, 120, 2);
        let more: Vec<Pk> = model
            .keys()
            .take(40)
            .map(|k| Pk::from(k.as_str()))
            .collect();
        store.delete(Some(more.clone()), None).unwrap();
        for k in &more {
            model.remove(&k.to_id_string());
        }
        drop(store);
        let store = open(dir.path(), engine);
        check(&store, &model, engine, &format!("{engine} stale snapshot"));
        store.close().unwrap();
        let store = open(dir.path(), engine);
        check(&store, &model, engine, &format!("{engine} after re-close"));
        store.close().unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_snapshot_newer_than_storage_or_foreign_is_refused() {
    for engine in ["flat", "native"] {
        // State A, closed; keep a copy of the whole database at A.
        let dir = tempfile::tempdir().unwrap();
        let model_a = closed_db(dir.path(), engine);
        let at_a = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), &at_a.path().join("db"));
        // State B: more writes and a newer snapshot.
        let store = open(dir.path(), engine);
        let mut model_b = model_a.clone();
        write_some(&store, &mut model_b, 2000, 60, 3);
        store.close().unwrap();
        // Put B's snapshot into A's database: seq ahead of storage, must not be used.
        let old = at_a.path().join("db");
        std::fs::remove_dir_all(snapshot_dir(&old)).unwrap();
        copy_dir(&snapshot_dir(dir.path()), &snapshot_dir(&old));
        let store = open(&old, engine);
        check(
            &store,
            &model_a,
            engine,
            &format!("{engine} newer snapshot"),
        );
        store.close().unwrap();

        // A snapshot of another collection (other dimension) dropped in place.
        let other = tempfile::tempdir().unwrap();
        let s = VectorStore::builder()
            .path(other.path())
            .collection_name(COLL)
            .open()
            .unwrap();
        s.add_embeddings(
            vec!["x".into(); 3],
            vec![vec![0.5; 4], vec![0.1; 4], vec![0.2; 4]],
            None,
            Some(vec![Pk::from("a"), Pk::from("b"), Pk::from("c")]),
        )
        .unwrap();
        s.close().unwrap();
        std::fs::remove_dir_all(snapshot_dir(dir.path())).unwrap();
        copy_dir(&snapshot_dir(other.path()), &snapshot_dir(dir.path()));
        let store = open(dir.path(), engine);
        check(
            &store,
            &model_b,
            engine,
            &format!("{engine} foreign snapshot"),
        );
        store.close().unwrap();
    }
}
