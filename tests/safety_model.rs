//! Model-based test: proptest sequences of add / upsert / delete (by ids and by filter) /
//! search / metadata queries / reopen on a database in a temp dir, against a plain
//! `BTreeMap` model with brute-force kNN. Stored documents and filter results must equal
//! the model exactly; searches must equal brute force exactly with the `flat` engine and
//! reach recall@10 ≥ 0.95 with the default HNSW engine. Fixed seeds; proptest shrinks a
//! failing sequence to a minimal one.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Document, EmbeddingResult, Embeddings, Error, IndexOptions, Pk, QueryOptions, SearchOptions,
    VectorStore,
};
use rand::{Rng, SeedableRng};

const DIM: usize = 8;
const KEYS: u8 = 40;

/// Texts are `t<seed> ...`; the vector is drawn from an RNG seeded with `seed`, so the
/// model knows every vector without ties between distinct seeds.
#[derive(Debug, Clone, Copy)]
struct SeedEmbeddings;

fn vector_of(seed: u32) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(seed));
    (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

fn seed_of(text: &str) -> EmbeddingResult<u32> {
    text.split_whitespace()
        .next()
        .and_then(|t| t.strip_prefix('t'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a seeded text: {text:?}"))
}

impl Embeddings for SeedEmbeddings {
    fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>> {
        texts.iter().map(|t| seed_of(t).map(vector_of)).collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<u8>, u32),
    Upsert(Vec<u8>, u32),
    Delete(Vec<u8>),
    DeleteWhere(i64),
    Search(u32, Option<i64>),
    Query(i64),
    Reopen { close: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let keys = prop::collection::vec(0..KEYS, 1..6);
    prop_oneof![
        4 => (keys.clone(), any::<u32>()).prop_map(|(k, s)| Op::Add(k, s)),
        2 => (keys.clone(), any::<u32>()).prop_map(|(k, s)| Op::Upsert(k, s)),
        2 => keys.prop_map(Op::Delete),
        1 => (0i64..100).prop_map(Op::DeleteWhere),
        3 => (any::<u32>(), prop::option::of(0i64..100)).prop_map(|(s, f)| Op::Search(s, f)),
        1 => (0i64..100).prop_map(Op::Query),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    text: String,
    n: i64,
}

type Model = BTreeMap<String, Rec>;

fn key(k: u8) -> String {
    format!("key{k:02}")
}

fn n_of(seed: u32) -> i64 {
    i64::from(seed % 100)
}

fn rec(seed: u32, k: u8) -> Rec {
    Rec {
        text: format!("t{seed} for key{k:02}"),
        n: n_of(seed),
    }
}

fn doc(r: &Rec) -> Document {
    Document::new(r.text.clone())
        .with_metadata(Metadata::from([("n".to_string(), Value::Int(r.n))]))
}

fn open(dir: &Path, engine: &str) -> VectorStore {
    VectorStore::builder()
        .path(dir)
        .collection_name("model")
        .embeddings(SeedEmbeddings)
        .index(IndexOptions {
            engine: engine.into(),
            ..IndexOptions::default()
        })
        .open()
        .expect("open")
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        let ok: bool = $cond;
        if !ok {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

/// Counters a run accumulates for the recall bound.
#[derive(Default)]
struct Recall {
    found: usize,
    wanted: usize,
}

fn check_contents(s: &VectorStore, model: &Model) -> Result<(), TestCaseError> {
    let pks: Vec<String> = s
        .get_pks("pk like '%'")
        .unwrap()
        .into_iter()
        .map(|p| p.to_id_string())
        .collect();
    let want: Vec<String> = model.keys().cloned().collect();
    check!(pks == want, "stored keys {pks:?} != model {want:?}");
    let ids: Vec<Pk> = model.keys().map(|k| Pk::from(k.as_str())).collect();
    let docs = s.get_by_ids(&ids).unwrap();
    for (d, (k, r)) in docs.iter().zip(model) {
        check!(d.id.as_deref() == Some(k), "id {:?} != {k}", d.id);
        check!(
            d.page_content == r.text,
            "{k}: text {:?} != {:?}",
            d.page_content,
            r.text
        );
        check!(
            d.metadata.get("n") == Some(&Value::Int(r.n)),
            "{k}: metadata {:?}",
            d.metadata
        );
    }
    check!(
        docs.len() == model.len(),
        "get_by_ids returned {} of {}",
        docs.len(),
        model.len()
    );
    check!(s.count().unwrap() == model.len(), "count");
    Ok(())
}

fn step(
    s: &VectorStore,
    model: &mut Model,
    op: &Op,
    engine: &str,
    recall: &mut Recall,
) -> Result<(), TestCaseError> {
    match op {
        Op::Add(keys, seed) => {
            let mut uniq = keys.clone();
            uniq.sort();
            uniq.dedup();
            let dup = uniq.len() != keys.len() || keys.iter().any(|k| model.contains_key(&key(*k)));
            let recs: Vec<Rec> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| rec(seed.wrapping_add(i as u32), *k))
                .collect();
            let res = s.add_documents(
                recs.iter().map(doc).collect(),
                Some(keys.iter().map(|k| Pk::from(key(*k))).collect()),
            );
            if dup {
                check!(
                    matches!(
                        res,
                        Err(Error::DuplicateId { .. }) | Err(Error::InvalidArgument(_))
                    ),
                    "add of duplicate keys {keys:?}: {res:?}"
                );
            } else {
                check!(res.is_ok(), "add {keys:?}: {res:?}");
                for (k, r) in keys.iter().zip(recs) {
                    model.insert(key(*k), r);
                }
            }
        }
        Op::Upsert(keys, seed) => {
            let mut keys = keys.clone();
            keys.sort();
            keys.dedup();
            let recs: Vec<Rec> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| rec(seed.wrapping_add(i as u32), *k))
                .collect();
            s.upsert(
                Some(keys.iter().map(|k| Pk::from(key(*k))).collect()),
                recs.iter().map(doc).collect(),
            )
            .map_err(|e| TestCaseError::fail(format!("upsert: {e}")))?;
            for (k, r) in keys.iter().zip(recs) {
                model.insert(key(*k), r);
            }
        }
        Op::Delete(keys) => {
            let n = s
                .delete(Some(keys.iter().map(|k| Pk::from(key(*k))).collect()), None)
                .map_err(|e| TestCaseError::fail(format!("delete: {e}")))?;
            let mut uniq = keys.clone();
            uniq.sort();
            uniq.dedup();
            let want = uniq
                .iter()
                .filter(|k| model.remove(&key(**k)).is_some())
                .count();
            check!(n == want, "delete {keys:?} removed {n}, model {want}");
        }
        Op::DeleteWhere(below) => {
            let n = s
                .delete(None, Some(&format!("n < {below}")))
                .map_err(|e| TestCaseError::fail(format!("delete where: {e}")))?;
            let before = model.len();
            model.retain(|_, r| r.n >= *below);
            check!(n == before - model.len(), "delete n < {below}: {n}");
        }
        Op::Search(seed, below) => {
            let q = vector_of(*seed);
            let mut opts = SearchOptions::k(10);
            if let Some(b) = below {
                opts = opts.filter(format!("n < {b}"));
            }
            let hits = s
                .similarity_search_with_score_by_vector(&q, &opts)
                .map_err(|e| TestCaseError::fail(format!("search: {e}")))?;
            let mut truth: Vec<(f32, &String)> = model
                .iter()
                .filter(|(_, r)| below.is_none_or(|b| r.n < b))
                .map(|(k, r)| (l2(&q, &vector_of(seed_of(&r.text).unwrap())), k))
                .collect();
            truth.sort_by(|a, b| a.0.total_cmp(&b.0));
            truth.truncate(10);
            check!(
                hits.len() == truth.len(),
                "search found {} of {}",
                hits.len(),
                truth.len()
            );
            for (d, _) in &hits {
                let k = d.id.as_ref().unwrap();
                check!(
                    model.get(k).is_some_and(|r| r.text == d.page_content),
                    "hit {k} not in model"
                );
            }
            let got: Vec<&str> = hits.iter().map(|(d, _)| d.id.as_deref().unwrap()).collect();
            if engine == "flat" {
                let want: Vec<&str> = truth.iter().map(|(_, k)| k.as_str()).collect();
                for ((_, score), (dist, _)) in hits.iter().zip(&truth) {
                    check!(
                        (score - dist).abs() < 1e-4,
                        "flat scores differ: {got:?} vs {want:?}"
                    );
                }
                // Ids up to ties: each hit's own distance is its score.
                for (d, score) in &hits {
                    let r = &model[d.id.as_ref().unwrap()];
                    let dist = l2(&q, &vector_of(seed_of(&r.text).unwrap()));
                    check!(
                        (dist - score).abs() < 1e-4,
                        "flat search {got:?} != brute force {want:?}"
                    );
                }
            }
            recall.wanted += truth.len();
            recall.found += truth
                .iter()
                .filter(|(_, k)| got.contains(&k.as_str()))
                .count();
        }
        Op::Query(at_least) => {
            let expr = format!("n >= {at_least}");
            let want: Vec<String> = model
                .iter()
                .filter(|(_, r)| r.n >= *at_least)
                .map(|(k, _)| k.clone())
                .collect();
            let pks: Vec<String> = s
                .get_pks(&expr)
                .unwrap()
                .iter()
                .map(|p| p.to_id_string())
                .collect();
            check!(pks == want, "get_pks({expr}) {pks:?} != {want:?}");
            let docs = s
                .search_by_metadata(
                    &expr,
                    &QueryOptions {
                        limit: 1000,
                        ..QueryOptions::default()
                    },
                )
                .unwrap();
            let got: Vec<(String, String)> = docs
                .into_iter()
                .map(|d| (d.id.unwrap(), d.page_content))
                .collect();
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|k| {
                    let t = model[&k].text.clone();
                    (k, t)
                })
                .collect();
            check!(got == want, "search_by_metadata({expr}) differs");
        }
        Op::Reopen { .. } => unreachable!("handled by the driver"),
    }
    Ok(())
}

fn run(engine: &str, cases: u32, seed: u8) {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let total = std::sync::Mutex::new(Recall::default());
    let result = runner.run(&prop::collection::vec(op(), 5..60), |ops| {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path(), engine);
        let mut model = Model::new();
        let mut recall = Recall::default();
        for op in &ops {
            if let Op::Reopen { close } = op {
                if *close {
                    s.close().unwrap();
                }
                drop(s);
                s = open(dir.path(), engine);
                let report = s.check_integrity().unwrap();
                check!(
                    report.is_ok(),
                    "integrity after reopen: {:?}",
                    report.problems
                );
            } else {
                step(&s, &mut model, op, engine, &mut recall)?;
            }
        }
        check_contents(&s, &model)?;
        let report = s.check_integrity().unwrap();
        check!(report.is_ok(), "integrity: {:?}", report.problems);
        let mut t = total.lock().unwrap();
        t.found += recall.found;
        t.wanted += recall.wanted;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{engine}: {e}");
    }
    let t = total.into_inner().unwrap();
    let r = t.found as f64 / t.wanted.max(1) as f64;
    eprintln!(
        "model {engine}: {cases} cases, recall@10 {r:.4} over {} wanted",
        t.wanted
    );
    assert!(r >= 0.95, "{engine}: recall@10 {r:.4} < 0.95");
}

#[test]
fn flat_engine_equals_the_model_and_brute_force() {
    run("flat", 64, 1);
}

#[test]
fn hnsw_engine_equals_the_model_with_high_recall() {
    run("native", 48, 2);
}
