//! Concurrency: threads (blocking API) and tokio tasks (async API) mix every operation on
//! one store for a bounded time. Each worker owns a disjoint key range, so the model of
//! what must be stored is deterministic: the union of the workers' models of their own
//! acknowledged operations. Checked:
//!
//! * no read ever sees a torn record: text and metadata are written together and always
//!   name the same key and version, in every search, lookup and query;
//! * every worker reads its own acknowledged writes (its keys equal its model);
//! * at the end the store equals the union of the models, `check_integrity()` passes,
//!   and the same holds after a reopen.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quiverdb::types::{Metadata, Value};
use quiverdb::{Document, HashingEmbeddings, Pk, QueryOptions, SearchOptions, VectorStore};
use rand::{Rng, SeedableRng};

const DIM: usize = 32;
const RUN_FOR: Duration = Duration::from_millis(2500);
/// Each worker runs past [`RUN_FOR`] until it has made more operations than this.
const MIN_OPS: usize = 5;

/// key → version of the record the worker last wrote.
type Model = BTreeMap<String, u64>;

fn text_of(key: &str, version: u64) -> String {
    format!("{key} version {version} body {}", version * 31 % 97)
}

fn meta_of(owner: usize, key: &str, version: u64) -> Metadata {
    Metadata::from([
        ("owner".to_string(), Value::from(format!("w{owner}"))),
        ("key".to_string(), Value::from(key)),
        ("version".to_string(), Value::Int(version as i64)),
    ])
}

/// Text and metadata of one read document agree with each other and with its id.
fn assert_whole(d: &Document) {
    let id = d.id.as_deref().expect("id");
    let Some(Value::Str(key)) = d.metadata.get("key") else {
        panic!("record {id}: no key in metadata {:?}", d.metadata)
    };
    let Some(Value::Int(v)) = d.metadata.get("version") else {
        panic!("record {id}: no version in metadata {:?}", d.metadata)
    };
    assert_eq!(key, id, "torn record: metadata key {key} on id {id}");
    assert_eq!(
        d.page_content,
        text_of(id, *v as u64),
        "torn record {id}: text does not match metadata version {v}"
    );
}

/// One step of a worker: picks an operation, performs it (sync or async through `run`),
/// updates the model once it is acknowledged, and checks what it read.
struct Worker {
    id: usize,
    rng: rand::rngs::StdRng,
    model: Model,
    next_key: usize,
    version: u64,
    ops: usize,
}

enum Step {
    Add(Vec<String>),
    Upsert(Vec<String>),
    DeleteIds(Vec<String>),
    DeleteFilter(u64),
    Search(String),
    Get(Vec<String>),
    Query,
}

impl Worker {
    fn new(id: usize) -> Worker {
        Worker {
            id,
            rng: rand::rngs::StdRng::seed_from_u64(id as u64 + 100),
            model: Model::new(),
            next_key: 0,
            version: 0,
            ops: 0,
        }
    }

    fn pick(&mut self) -> Step {
        self.version += 1;
        let own: Vec<String> = self.model.keys().cloned().collect();
        let some_own = |rng: &mut rand::rngs::StdRng, n: usize| -> Vec<String> {
            let mut v: Vec<String> = (0..n)
                .map(|_| own[rng.gen_range(0..own.len())].clone())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        match self.rng.gen_range(0..10) {
            _ if own.len() < 4 => Step::Add(self.fresh_keys(3)),
            0 | 1 => {
                let n = self.rng.gen_range(1..6);
                Step::Add(self.fresh_keys(n))
            }
            2 => Step::Upsert(some_own(&mut self.rng, 3)),
            3 => Step::DeleteIds(some_own(&mut self.rng, 2)),
            4 => Step::DeleteFilter(self.version.saturating_sub(20)),
            5 | 6 => {
                let k = &own[self.rng.gen_range(0..own.len())];
                Step::Search(text_of(k, self.model[k]))
            }
            7 | 8 => Step::Get(some_own(&mut self.rng, 4)),
            _ => Step::Query,
        }
    }

    fn fresh_keys(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.next_key += 1;
                format!("w{}_k{}", self.id, self.next_key)
            })
            .collect()
    }

    fn docs(&self, keys: &[String]) -> (Vec<Pk>, Vec<Document>) {
        let ids = keys.iter().map(|k| Pk::from(k.as_str())).collect();
        let docs = keys
            .iter()
            .map(|k| {
                Document::new(text_of(k, self.version)).with_metadata(meta_of(
                    self.id,
                    k,
                    self.version,
                ))
            })
            .collect();
        (ids, docs)
    }

    fn filter_delete_expr(&self, below: u64) -> String {
        format!("owner == 'w{}' and version < {below}", self.id)
    }

    /// Applies an acknowledged write to the model.
    fn acknowledged(&mut self, step: &Step, deleted: usize) {
        match step {
            Step::Add(keys) | Step::Upsert(keys) => {
                for k in keys {
                    self.model.insert(k.clone(), self.version);
                }
            }
            Step::DeleteIds(keys) => {
                let before = self.model.len();
                for k in keys {
                    self.model.remove(k);
                }
                assert_eq!(
                    deleted,
                    before - self.model.len(),
                    "w{}: delete count",
                    self.id
                );
            }
            Step::DeleteFilter(below) => {
                let before = self.model.len();
                self.model.retain(|_, v| *v >= *below);
                assert_eq!(
                    deleted,
                    before - self.model.len(),
                    "w{}: filter delete count",
                    self.id
                );
            }
            _ => {}
        }
        self.ops += 1;
    }

    /// Checks documents read for this worker's own keys against the model.
    fn check_own(&self, keys: &[String], got: &[Document]) {
        let want: Vec<(&String, u64)> = keys
            .iter()
            .filter_map(|k| self.model.get(k).map(|v| (k, *v)))
            .collect();
        let have: Vec<(String, u64)> = got
            .iter()
            .map(|d| {
                assert_whole(d);
                let Value::Int(v) = d.metadata["version"] else {
                    unreachable!()
                };
                (d.id.clone().unwrap(), v as u64)
            })
            .collect();
        let want: Vec<(String, u64)> = want.into_iter().map(|(k, v)| (k.clone(), v)).collect();
        assert_eq!(have, want, "w{}: read-your-writes", self.id);
    }

    fn run_sync(&mut self, s: &VectorStore) {
        let step = self.pick();
        let mut deleted = 0;
        match &step {
            Step::Add(keys) => {
                let (ids, docs) = self.docs(keys);
                s.add_documents(docs, Some(ids)).unwrap();
            }
            Step::Upsert(keys) => {
                let (ids, docs) = self.docs(keys);
                s.upsert(Some(ids), docs).unwrap();
            }
            Step::DeleteIds(keys) => {
                deleted = s
                    .delete(
                        Some(keys.iter().map(|k| Pk::from(k.as_str())).collect()),
                        None,
                    )
                    .unwrap();
            }
            Step::DeleteFilter(below) => {
                deleted = s
                    .delete(None, Some(&self.filter_delete_expr(*below)))
                    .unwrap();
            }
            Step::Search(q) => {
                for d in s.similarity_search(q, &SearchOptions::k(5)).unwrap() {
                    assert_whole(&d);
                }
                let own = format!("owner == 'w{}'", self.id);
                for d in s
                    .similarity_search(q, &SearchOptions::k(5).filter(own))
                    .unwrap()
                {
                    assert_whole(&d);
                    assert!(self.model.contains_key(d.id.as_ref().unwrap()));
                }
            }
            Step::Get(keys) => {
                let ids: Vec<Pk> = keys.iter().map(|k| Pk::from(k.as_str())).collect();
                self.check_own(keys, &s.get_by_ids(&ids).unwrap());
            }
            Step::Query => {
                let all = s
                    .search_by_metadata("version >= 0", &QueryOptions::default())
                    .unwrap();
                all.iter().for_each(assert_whole);
                let own = s
                    .search_by_metadata(
                        &format!("owner == 'w{}'", self.id),
                        &QueryOptions {
                            limit: usize::MAX,
                            ..QueryOptions::default()
                        },
                    )
                    .unwrap();
                let keys: Vec<String> = self.model.keys().cloned().collect();
                let mut own = own;
                own.sort_by(|a, b| a.id.cmp(&b.id));
                self.check_own(&keys, &own);
            }
        }
        self.acknowledged(&step, deleted);
    }

    async fn run_async(&mut self, s: &VectorStore) {
        let step = self.pick();
        let mut deleted = 0;
        match &step {
            Step::Add(keys) => {
                let (ids, docs) = self.docs(keys);
                s.aadd_documents(docs, Some(ids)).await.unwrap();
            }
            Step::Upsert(keys) => {
                let (ids, docs) = self.docs(keys);
                s.aupsert(Some(ids), docs).await.unwrap();
            }
            Step::DeleteIds(keys) => {
                let ids = keys.iter().map(|k| Pk::from(k.as_str())).collect();
                deleted = s.adelete(Some(ids), None).await.unwrap();
            }
            Step::DeleteFilter(below) => {
                let expr = self.filter_delete_expr(*below);
                deleted = s.adelete(None, Some(&expr)).await.unwrap();
            }
            Step::Search(q) => {
                for d in s.asimilarity_search(q, &SearchOptions::k(5)).await.unwrap() {
                    assert_whole(&d);
                }
            }
            Step::Get(keys) => {
                let ids: Vec<Pk> = keys.iter().map(|k| Pk::from(k.as_str())).collect();
                let got = s.aget_by_ids(&ids).await.unwrap();
                self.check_own(keys, &got);
            }
            Step::Query => {
                let pks = s
                    .aget_pks(&format!("owner == 'w{}'", self.id))
                    .await
                    .unwrap();
                let mut got: Vec<String> = pks.iter().map(|p| p.to_id_string()).collect();
                got.sort();
                let want: Vec<String> = self.model.keys().cloned().collect();
                assert_eq!(got, want, "w{}: get_pks", self.id);
            }
        }
        self.acknowledged(&step, deleted);
    }
}

fn open(dir: &std::path::Path) -> VectorStore {
    VectorStore::builder()
        .path(dir)
        .collection_name("conc")
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .unwrap()
}

/// The store's whole content as key → version, checking every record on the way.
fn contents(s: &VectorStore) -> Model {
    let pks = s.get_pks("pk like '%'").unwrap();
    s.get_by_ids(&pks)
        .unwrap()
        .into_iter()
        .map(|d| {
            assert_whole(&d);
            let Value::Int(v) = d.metadata["version"] else {
                unreachable!()
            };
            (d.id.unwrap(), v as u64)
        })
        .collect()
}

#[test]
fn threads_and_tasks_mixing_every_operation_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let deadline = Instant::now() + RUN_FOR;

    let threads: Vec<_> = (0..3)
        .map(|id| {
            let s = store.clone();
            std::thread::spawn(move || {
                let mut w = Worker::new(id);
                // Until the deadline, and at least a few operations each whatever the
                // machine's load (the count is checked below).
                while Instant::now() < deadline || w.ops <= MIN_OPS {
                    w.run_sync(&s);
                }
                w
            })
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tasks: Vec<Worker> = rt.block_on(async {
        let handles: Vec<_> = (3..7)
            .map(|id| {
                let s = store.clone();
                tokio::spawn(async move {
                    let mut w = Worker::new(id);
                    while Instant::now() < deadline || w.ops <= MIN_OPS {
                        w.run_async(&s).await;
                    }
                    w
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    let workers: Vec<Worker> = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .chain(tasks)
        .collect();

    let mut model = Model::new();
    let mut ops = 0;
    for w in &workers {
        assert!(w.ops > MIN_OPS, "w{} ran only {} ops", w.id, w.ops);
        ops += w.ops;
        model.extend(w.model.iter().map(|(k, v)| (k.clone(), *v)));
    }
    eprintln!(
        "concurrency: {} workers, {ops} acknowledged operations, {} live records",
        workers.len(),
        model.len()
    );
    assert_eq!(contents(&store), model, "end state differs from the model");
    assert_eq!(store.count().unwrap(), model.len());
    let report = store.check_integrity().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    // Every record is found by a search for its own text.
    for (k, v) in model.iter().take(50) {
        let hits = store
            .similarity_search(&text_of(k, *v), &SearchOptions::k(3))
            .unwrap();
        assert!(
            hits.iter().any(|d| d.id.as_deref() == Some(k)),
            "{k} not found"
        );
    }
    store.close().unwrap();
    let store = open(dir.path());
    assert_eq!(contents(&store), model, "after reopen");
    assert!(store.check_integrity().unwrap().is_ok());
}

#[test]
fn readers_never_see_half_of_an_upsert_batch() {
    // In memory, a batch is one sled transaction.
    let store = VectorStore::builder()
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .unwrap();
    readers_see_upsert_batches_whole(store);
}

#[test]
fn readers_never_see_half_of_an_upsert_batch_on_disk() {
    // On disk, a batch reaches sled one key at a time after its log record is synced; the
    // store's readers go through its in-memory rows, which take each batch whole.
    let dir = tempfile::tempdir().unwrap();
    readers_see_upsert_batches_whole(open(dir.path()));
}

/// One writer upserts the same 20 keys to a new version in one batch, over and over;
/// readers must see every batch whole: all 20 keys at one version.
fn readers_see_upsert_batches_whole(store: VectorStore) {
    let keys: Vec<String> = (0..20).map(|i| format!("b{i}")).collect();
    let ids: Vec<Pk> = keys.iter().map(|k| Pk::from(k.as_str())).collect();
    let batch = |v: u64| -> Vec<Document> {
        keys.iter()
            .map(|k| Document::new(text_of(k, v)).with_metadata(meta_of(0, k, v)))
            .collect()
    };
    store.upsert(Some(ids.clone()), batch(0)).unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let writer = {
        let s = store.clone();
        let ids = ids.clone();
        let batches: Vec<Vec<Document>> = (1..400).map(batch).collect();
        std::thread::spawn(move || {
            let mut n = 0;
            for b in batches {
                // Past the deadline once a few batches are in, whatever the machine's load.
                if Instant::now() >= deadline && n > 3 {
                    break;
                }
                s.upsert(Some(ids.clone()), b).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut reads = 0;
    let mut torn = Vec::new();
    while Instant::now() < deadline || reads <= 3 {
        let got = store.get_by_ids(&ids).unwrap();
        let versions: Vec<i64> = got
            .iter()
            .map(|d| {
                assert_whole(d);
                match d.metadata["version"] {
                    Value::Int(v) => v,
                    _ => unreachable!(),
                }
            })
            .collect();
        if got.len() != keys.len() || versions.iter().any(|v| *v != versions[0]) {
            torn.push(versions);
        }
        let q = store
            .search_by_metadata(
                "version >= 0",
                &QueryOptions {
                    limit: 100,
                    ..QueryOptions::default()
                },
            )
            .unwrap();
        q.iter().for_each(assert_whole);
        if q.len() != keys.len() {
            torn.push(vec![q.len() as i64]);
        }
        reads += 1;
    }
    let batches = writer.join().unwrap();
    assert!(batches > 3 && reads > 3, "{batches} batches, {reads} reads");
    assert!(
        torn.is_empty(),
        "{} of {reads} reads saw a half-applied batch, e.g. {:?}",
        torn.len(),
        torn.first()
    );
}

#[test]
fn a_one_thread_pool_does_not_deadlock_writers_and_async_readers() {
    // Sync writers apply batches (parallel insert_batch on the pool) while async readers
    // keep the pool's only thread busy: this hung for good before readers stopped waiting
    // for the applier. A watchdog turns a hang into a failure.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let store = VectorStore::builder()
            .embeddings(HashingEmbeddings::new(DIM))
            .threads(1)
            .unwrap()
            .open()
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(1000);
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let s = store.clone();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while Instant::now() < deadline {
                        let ids: Vec<Pk> =
                            (0..10).map(|i| Pk::from(format!("w{w}_{n}_{i}"))).collect();
                        let texts: Vec<String> =
                            (0..10).map(|i| format!("text {w} {n} {i}")).collect();
                        s.add_texts(texts, None, Some(ids)).unwrap();
                        n += 1;
                    }
                    n * 10
                })
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let s = store.clone();
                    tokio::spawn(async move {
                        while Instant::now() < deadline {
                            s.asimilarity_search("text 1", &SearchOptions::k(3))
                                .await
                                .unwrap();
                            s.aget_by_ids(&[Pk::from("w0_0_0")]).await.unwrap();
                        }
                    })
                })
                .collect();
            for r in readers {
                r.await.unwrap();
            }
        });
        let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(store.count().unwrap(), written);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("writers and readers on a one-thread pool deadlocked (or the workload panicked)");
}
