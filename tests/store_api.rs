//! End-to-end behaviour of the public store, through both surfaces.

use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Document, Error, HashingEmbeddings, Metric, MmrOptions, Pk, QueryOptions, SearchOptions,
    VectorStore,
};

fn meta(pairs: &[(&str, Value)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn docs(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            Document::new(format!("document number {i} about topic {}", i % 3)).with_metadata(meta(
                &[
                    ("id", Value::from(format!("doc_{i}"))),
                    ("n", Value::Int(i as i64)),
                    ("category", Value::from(format!("cat_{}", i % 3))),
                ],
            ))
        })
        .collect()
}

fn store() -> VectorStore {
    VectorStore::builder()
        .embeddings(HashingEmbeddings::new(64))
        .open()
        .unwrap()
}

#[test]
fn add_search_and_scores_follow_the_metric() {
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let s = VectorStore::builder()
            .embeddings(HashingEmbeddings::new(64))
            .metric(metric)
            .open()
            .unwrap();
        let ids = s.add_documents(docs(30), None).unwrap();
        assert_eq!(ids.len(), 30);
        assert!(
            ids.iter().all(|p| matches!(p, Pk::Int(_))),
            "no ids given → auto ids"
        );
        let hits = s
            .similarity_search_with_score("document number 7 about topic 1", &SearchOptions::k(3))
            .unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0].0.metadata["id"], Value::from("doc_7"), "{metric}");
        // The exact text has the best score: distance 0 for L2, similarity 1 for IP/cosine
        // (the hashing embedder returns unit vectors).
        match metric {
            Metric::L2 => assert!(hits[0].1.abs() < 1e-4 && hits[1].1 >= hits[0].1),
            _ => assert!((hits[0].1 - 1.0).abs() < 1e-4 && hits[1].1 <= hits[0].1),
        }
        let rel = s
            .similarity_search_with_relevance_scores(
                "document number 7 about topic 1",
                &SearchOptions::k(1),
            )
            .unwrap();
        assert!(
            (rel[0].1 - 1.0).abs() < 1e-4,
            "relevance of an exact hit is 1"
        );
        // Documents carry their pk in id and metadata["pk"].
        let d = &hits[0].0;
        assert_eq!(
            d.id.as_deref(),
            Some(d.metadata["pk"].clone())
                .and_then(|v| match v {
                    Value::Int(i) => Some(i.to_string()),
                    _ => None,
                })
                .as_deref()
        );
    }
}

#[test]
fn filters_narrow_searches_and_bad_filters_are_typed_errors() {
    let s = store();
    s.add_documents(docs(60), None).unwrap();
    let hits = s
        .similarity_search(
            "document number",
            &SearchOptions::k(50).filter("category == 'cat_2' and n < 30"),
        )
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits
        .iter()
        .all(|d| d.metadata["category"] == Value::from("cat_2")));
    let templated = s
        .similarity_search(
            "document",
            &SearchOptions::k(50)
                .filter("n in {ns}")
                .param("ns", vec![1i64, 2, 3]),
        )
        .unwrap();
    assert_eq!(templated.len(), 3);
    let err = s
        .similarity_search(
            "x",
            &SearchOptions::k(3).filter("category == 'a' And n > 1"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Filter { .. }), "{err}");
    assert!(err.to_string().contains("And"), "{err}");
}

#[test]
fn bad_input_gets_typed_errors_and_changes_nothing() {
    let s = store();
    s.add_documents(docs(5), None).unwrap();
    let before = s.count().unwrap();
    assert!(matches!(
        s.similarity_search("x", &SearchOptions::k(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.similarity_search_by_vector(&[0.0; 3], &SearchOptions::k(1)),
        Err(Error::WrongDimension {
            expected: 64,
            got: 3
        })
    ));
    let mut nan = vec![0.1; 64];
    nan[5] = f32::NAN;
    assert!(matches!(
        s.add_embeddings(vec!["a".into()], vec![nan.clone()], None, None),
        Err(Error::NonFiniteVector { component: 5, .. })
    ));
    assert!(matches!(
        s.similarity_search_by_vector(&nan, &SearchOptions::k(1)),
        Err(Error::NonFiniteVector { .. })
    ));
    assert!(matches!(
        s.add_embeddings(
            vec!["a".into(), "b".into()],
            vec![vec![0.1; 64]],
            None,
            None
        ),
        Err(Error::LengthMismatch {
            what: "embeddings",
            ..
        })
    ));
    assert!(matches!(
        s.add_texts(["a"], None, Some(vec![Pk::from("x")])),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.delete(None, None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.delete(None, Some("  ")),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.delete(Some(vec![Pk::Int(1)]), Some("n > 1")),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.delete(None, Some("n >")),
        Err(Error::Filter { .. })
    ));
    assert!(matches!(
        s.upsert(None, docs(1)),
        Err(Error::MissingIds { .. })
    ));
    assert_eq!(s.count().unwrap(), before);
    // Huge k returns everything there is.
    assert_eq!(
        s.similarity_search("x", &SearchOptions::k(usize::MAX))
            .unwrap()
            .len(),
        before
    );
}

#[test]
fn caller_ids_upsert_delete_and_lookups() {
    let s = store();
    let ids: Vec<Pk> = (0..10).map(|i| Pk::from(format!("k{i}"))).collect();
    s.add_documents(docs(10), Some(ids.clone())).unwrap();
    assert!(matches!(
        s.add_documents(docs(1), Some(vec![Pk::from("k3")])),
        Err(Error::DuplicateId { .. })
    ));
    assert!(matches!(
        s.add_documents(docs(1), Some(vec![Pk::Int(3)])),
        Err(Error::WrongIdKind { .. })
    ));
    let updated = vec![Document::new("replaced text").with_id("k3")];
    s.upsert(None, updated).unwrap();
    let got = s
        .get_by_ids(&[Pk::from("k3"), Pk::from("nope"), Pk::from("k4")])
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].page_content, "replaced text");
    assert!(
        !got[0].metadata.contains_key("category"),
        "upsert replaces the whole record"
    );
    assert_eq!(s.count().unwrap(), 10);
    assert_eq!(
        s.delete(
            Some(vec![Pk::from("k1"), Pk::from("k2"), Pk::from("zz")]),
            None
        )
        .unwrap(),
        2
    );
    assert_eq!(s.delete(None, Some("category == 'cat_0'")).unwrap(), 3); // k0, k6, k9
    assert_eq!(s.count().unwrap(), 5);
    let pks = s.get_pks("n >= 0").unwrap();
    assert_eq!(
        pks,
        vec![
            Pk::from("k4"),
            Pk::from("k5"),
            Pk::from("k7"),
            Pk::from("k8")
        ]
    );
    let by_meta = s
        .search_by_metadata(
            "category in ['cat_1', 'cat_2']",
            &QueryOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(by_meta.len(), 2);
    assert_eq!(by_meta[0].id.as_deref(), Some("k4"));
}

#[test]
fn mmr_prefers_diverse_results() {
    let s = store();
    let texts = [
        "apple pie recipe",
        "apple pie recipe with cinnamon",
        "apple pie recipe classic",
        "apple orchard tour",
        "car engine repair",
    ];
    s.add_texts(texts, None, None).unwrap();
    let plain = s
        .similarity_search("apple pie", &SearchOptions::k(2))
        .unwrap();
    let mmr = s
        .max_marginal_relevance_search(
            "apple pie",
            &MmrOptions {
                k: 2,
                lambda_mult: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(mmr.len(), 2);
    assert!(plain[1].page_content.starts_with("apple pie recipe"));
    assert!(
        !mmr[1].page_content.starts_with("apple pie recipe"),
        "diverse second pick: {:?}",
        mmr[1].page_content
    );
}

#[test]
fn empty_inputs_and_missing_collection() {
    let s = store();
    assert!(!s.has_collection().unwrap());
    assert!(s
        .similarity_search("x", &SearchOptions::default())
        .unwrap()
        .is_empty());
    assert!(s.get_pks("n > 1").unwrap().is_empty());
    assert!(s
        .add_texts(Vec::<String>::new(), None, None)
        .unwrap()
        .is_empty());
    assert!(!s.has_collection().unwrap(), "empty input creates nothing");
    s.add_texts(["a"], None, None).unwrap();
    assert!(s.drop().unwrap());
    assert!(s
        .similarity_search("a", &SearchOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn reopen_keeps_data_metric_and_relevance() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = VectorStore::builder()
            .path(&path)
            .embeddings(HashingEmbeddings::new(32))
            .metric(Metric::Cosine)
            .open()
            .unwrap();
        s.add_documents(docs(20), None).unwrap();
        s.close().unwrap();
        assert!(matches!(s.count(), Err(Error::Closed)));
    }
    // Reopened with the default (L2) builder: the stored metric wins.
    let s = VectorStore::builder()
        .path(&path)
        .embeddings(HashingEmbeddings::new(32))
        .open()
        .unwrap();
    assert_eq!(s.metric(), Metric::Cosine);
    assert_eq!(s.count().unwrap(), 20);
    let hits = s
        .similarity_search_with_relevance_scores(
            "document number 4 about topic 1",
            &SearchOptions::k(1),
        )
        .unwrap();
    assert_eq!(hits[0].0.metadata["id"], Value::from("doc_4"));
    assert!(hits[0].1 > 0.99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_surface_matches_sync_surface() {
    let sync = store();
    let asy = store();
    let ids: Vec<Pk> = (0..40).map(|i| Pk::from(format!("d{i}"))).collect();
    sync.add_documents(docs(40), Some(ids.clone())).unwrap();
    asy.aadd_documents(docs(40), Some(ids.clone()))
        .await
        .unwrap();
    let opts = SearchOptions::k(5).filter("n > 3");
    for q in ["topic 1", "document number 12", "zzz"] {
        let a = sync.similarity_search_with_score(q, &opts).unwrap();
        let b = asy.asimilarity_search_with_score(q, &opts).await.unwrap();
        assert_eq!(a, b, "{q}");
        let a = sync
            .max_marginal_relevance_search(q, &MmrOptions::default())
            .unwrap();
        let b = asy
            .amax_marginal_relevance_search(q, &MmrOptions::default())
            .await
            .unwrap();
        assert_eq!(a, b, "{q}");
    }
    let up = vec![Document::new("new").with_id("d1")];
    assert_eq!(
        sync.upsert(None, up.clone()).unwrap(),
        asy.aupsert(None, up).await.unwrap()
    );
    assert_eq!(
        sync.delete(None, Some("n < 5")).unwrap(),
        asy.adelete(None, Some("n < 5")).await.unwrap()
    );
    assert_eq!(
        sync.get_pks("n >= 0").unwrap(),
        asy.aget_pks("n >= 0").await.unwrap()
    );
    let q = QueryOptions::default();
    assert_eq!(
        sync.search_by_metadata("category == 'cat_1'", &q).unwrap(),
        asy.asearch_by_metadata("category == 'cat_1'", &q)
            .await
            .unwrap()
    );
    assert_eq!(
        sync.get_by_ids(&ids[..5]).unwrap(),
        asy.aget_by_ids(&ids[..5]).await.unwrap()
    );
    assert!(matches!(
        asy.asimilarity_search("x", &SearchOptions::k(0)).await,
        Err(Error::InvalidArgument(_))
    ));
}

/// Concurrent async searches are answered in shared batches (`coalesce.rs`); each answer is
/// still exactly the blocking call's: collections small enough to be scanned and large
/// enough to be walked, similarity and MMR searches, mixed `k`, `fetch_k` and `ef`, texts
/// and vectors, filtered and not, and bad requests (a wrong-dimension vector, an MMR
/// `lambda_mult` out of range) that fail alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_searches_answer_as_blocking_ones() {
    use quiverdb::Embeddings;

    #[derive(Debug, PartialEq)]
    enum Found {
        Scored(Vec<(Document, f32)>),
        Documents(Vec<Document>),
    }
    #[derive(Clone, Debug)]
    struct Call {
        text: String,
        vector: Option<Vec<f32>>,
        search: SearchOptions,
        mmr: Option<MmrOptions>,
    }
    async fn run_async(s: &VectorStore, c: &Call) -> Result<Found, Error> {
        Ok(match (&c.mmr, &c.vector) {
            (None, Some(v)) => Found::Scored(
                s.asimilarity_search_with_score_by_vector(v, &c.search)
                    .await?,
            ),
            (None, None) => {
                Found::Scored(s.asimilarity_search_with_score(&c.text, &c.search).await?)
            }
            (Some(m), Some(v)) => {
                Found::Documents(s.amax_marginal_relevance_search_by_vector(v, m).await?)
            }
            (Some(m), None) => {
                Found::Documents(s.amax_marginal_relevance_search(&c.text, m).await?)
            }
        })
    }
    fn run_blocking(s: &VectorStore, c: &Call) -> Result<Found, Error> {
        Ok(match (&c.mmr, &c.vector) {
            (None, Some(v)) => {
                Found::Scored(s.similarity_search_with_score_by_vector(v, &c.search)?)
            }
            (None, None) => Found::Scored(s.similarity_search_with_score(&c.text, &c.search)?),
            (Some(m), Some(v)) => {
                Found::Documents(s.max_marginal_relevance_search_by_vector(v, m)?)
            }
            (Some(m), None) => Found::Documents(s.max_marginal_relevance_search(&c.text, m)?),
        })
    }

    let model = HashingEmbeddings::new(64);
    for n in [300, 2_300] {
        let s = store();
        s.add_documents(docs(n), None).unwrap();
        let calls: Vec<Call> = (0..160)
            .map(|i| {
                let text = format!("document number {} about topic {}", i * 7 % n, i % 3);
                let mut search = SearchOptions::k(1 + i % 5);
                if i % 3 == 0 {
                    search.ef = Some(16 + i % 40);
                }
                if i % 11 == 0 {
                    search = search.filter("n > 20");
                }
                let mmr = (i % 4 == 3).then(|| MmrOptions {
                    k: 1 + i % 4,
                    fetch_k: if i % 8 == 3 { 1 + i % 5 } else { 10 + i % 15 },
                    lambda_mult: if i % 37 == 3 {
                        1.5
                    } else {
                        (i % 5) as f32 / 4.0
                    },
                    filter: search.filter.clone(),
                    ef: search.ef,
                    ..MmrOptions::default()
                });
                let vector = match i % 6 {
                    0 | 3 => Some(model.embed_query(&text).unwrap()),
                    1 if i % 17 == 0 => Some(vec![0.5; 3]),
                    _ => None,
                };
                Call {
                    text,
                    vector,
                    search,
                    mmr,
                }
            })
            .collect();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(calls.len()));
        let tasks: Vec<_> = calls
            .iter()
            .cloned()
            .map(|call| {
                let (s, start) = (s.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await; // all at once, so the queue fills and batches form
                    run_async(&s, &call).await
                })
            })
            .collect();
        for (call, task) in calls.iter().zip(tasks) {
            let got = task.await.unwrap();
            match (got, run_blocking(&s, call)) {
                (Ok(got), Ok(want)) => {
                    assert!(!matches!(&want, Found::Scored(v) if v.is_empty()));
                    assert!(!matches!(&want, Found::Documents(v) if v.is_empty()));
                    assert_eq!(got, want, "{n} documents, {call:?}");
                }
                (Err(got), Err(want)) => {
                    assert!(
                        matches!(
                            got,
                            Error::WrongDimension { .. } | Error::InvalidArgument(_)
                        ),
                        "{got}"
                    );
                    assert_eq!(got.to_string(), want.to_string());
                }
                (got, want) => panic!("{call:?}: async {got:?}, blocking {want:?}"),
            }
        }
    }
}

/// Queries asked together are not all embedded by one batch, one after another: with a
/// slow blocking embedder, two concurrent searches are embedded on the store's two pool
/// threads at once (each embedding waits, up to 10 s, until it sees the other in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_with_a_slow_embedder_use_every_pool_thread() {
    use quiverdb::{EmbeddingResult, Embeddings};
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// Counts queries in flight and those that met another one in flight.
    struct Meeting {
        model: HashingEmbeddings,
        state: Arc<(Mutex<(usize, usize)>, Condvar)>,
    }
    impl Embeddings for Meeting {
        fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>> {
            self.model.embed_documents(texts)
        }
        fn embed_query(&self, text: &str) -> EmbeddingResult<Vec<f32>> {
            let (lock, changed) = &*self.state;
            let mut g = lock.lock().unwrap();
            g.0 += 1;
            changed.notify_all();
            let deadline = Instant::now() + Duration::from_secs(10);
            while g.0 < 2 && Instant::now() < deadline {
                g = changed
                    .wait_timeout(g, deadline.saturating_duration_since(Instant::now()))
                    .unwrap()
                    .0;
            }
            g.1 += usize::from(g.0 >= 2);
            drop(g);
            self.model.embed_query(text)
        }
    }

    let state = Arc::new((Mutex::new((0, 0)), Condvar::new()));
    let s = VectorStore::builder()
        .embeddings(Meeting {
            model: HashingEmbeddings::new(64),
            state: state.clone(),
        })
        .threads(2)
        .unwrap()
        .open()
        .unwrap();
    s.add_documents(docs(50), None).unwrap();
    let opts = SearchOptions::k(2);
    let (a, b) = tokio::join!(
        s.asimilarity_search("document number 3", &opts),
        s.asimilarity_search("topic 1", &opts),
    );
    assert_eq!(a.unwrap().len(), 2);
    assert_eq!(b.unwrap().len(), 2);
    let met = state.0.lock().unwrap().1;
    assert_eq!(met, 2, "the two queries were embedded one after the other");
}

/// An embedder that panics on one query fails that async search with `Error::Panicked`;
/// the searches answered in the same batch, and later ones, are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_embedder_fails_only_its_own_async_search() {
    use quiverdb::{EmbeddingResult, Embeddings};

    struct Fragile(HashingEmbeddings);
    impl Embeddings for Fragile {
        fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>> {
            self.0.embed_documents(texts)
        }
        fn embed_query(&self, text: &str) -> EmbeddingResult<Vec<f32>> {
            assert!(!text.contains("boom"), "the model cannot embed {text:?}");
            self.0.embed_query(text)
        }
    }

    let s = VectorStore::builder()
        .embeddings(Fragile(HashingEmbeddings::new(64)))
        .threads(1)
        .unwrap()
        .open()
        .unwrap();
    s.add_documents(docs(50), None).unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                let query = if i == 5 {
                    "boom".to_owned()
                } else {
                    format!("topic {i}")
                };
                start.wait().await;
                s.asimilarity_search(&query, &SearchOptions::k(2)).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Err(Error::Panicked(m)) if i == 5 => assert!(m.contains("boom"), "{m}"),
            Ok(hits) if i != 5 => assert_eq!(hits.len(), 2),
            other => panic!("search {i}: {other:?}"),
        }
    }
    let after = s.asimilarity_search("topic 1", &SearchOptions::k(2)).await;
    assert_eq!(after.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_tasks_match_a_model() {
    let s = store();
    s.add_texts(["seed"], None, None).unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let m = meta(&[("i", Value::Int(i))]);
            let ids = s
                .aadd_texts([format!("task {i}")], Some(vec![m]), None)
                .await
                .unwrap();
            let hits = s
                .asimilarity_search(&format!("task {i}"), &SearchOptions::k(1))
                .await
                .unwrap();
            assert!(!hits.is_empty());
            if i % 3 == 0 {
                assert_eq!(s.adelete(Some(ids), None).await.unwrap(), 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 1 seed + 100 added - 34 deleted (i = 0, 3, ..., 99).
    assert_eq!(s.count().unwrap(), 67);
    assert_eq!(s.get_pks("i % 3 == 0").unwrap().len(), 0);
    assert_eq!(s.get_pks("i >= 0").unwrap().len(), 66);
}

/// Async adds whose futures are dropped at every stage (before the commit, while it is
/// queued, after it is durable) leave the index, the rows and storage in agreement, also
/// after a reopen: a write either committed whole (and is searchable) or did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_async_adds_leave_the_index_and_storage_in_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        VectorStore::builder()
            .path(dir.path())
            .embeddings(HashingEmbeddings::new(64))
            .open()
            .unwrap()
    };
    let s = open();
    s.add_texts(["seed"], None, None).unwrap();
    let mut tasks = Vec::new();
    for i in 0..120u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let m = meta(&[("i", Value::Int(i as i64))]);
            let add = s.aadd_texts([format!("task {i}")], Some(vec![m]), None);
            // From 0 (dropped after the first poll) to 4.8 ms (usually finished).
            let budget = std::time::Duration::from_micros(i * 40);
            tokio::time::timeout(budget, add).await.is_ok()
        }));
    }
    let mut finished = 0;
    for t in tasks {
        finished += usize::from(t.await.unwrap());
    }
    // Committed after every batch the dropped futures queued, so its apply covers them.
    s.add_texts(["last"], None, None).unwrap();
    let stored = s.count().unwrap();
    assert!(
        stored >= finished + 2 && stored <= 122,
        "{stored} stored, {finished} finished"
    );
    let indexed = s
        .similarity_search_by_vector(&[0.1; 64], &SearchOptions::k(500))
        .unwrap();
    assert_eq!(indexed.len(), stored, "the index and storage disagree");
    let tagged = s.get_pks("i >= 0").unwrap();
    assert_eq!(tagged.len(), stored - 2, "the rows and storage disagree");
    drop(s);
    let s = open();
    assert_eq!(s.count().unwrap(), stored);
    let mut again = s.get_pks("i >= 0").unwrap();
    let mut tagged = tagged;
    tagged.sort_by_key(|p| p.to_string());
    again.sort_by_key(|p| p.to_string());
    assert_eq!(again, tagged, "a reopen found other records");
}

#[test]
fn from_texts_and_from_documents() {
    let s = VectorStore::from_texts(
        ["a b c", "d e f"],
        None,
        None,
        VectorStore::builder().embeddings(HashingEmbeddings::new(16)),
    )
    .unwrap();
    assert_eq!(s.count().unwrap(), 2);
    let s = VectorStore::from_documents(
        vec![
            Document::new("x").with_id("one"),
            Document::new("y").with_id("two"),
        ],
        VectorStore::builder().embeddings(HashingEmbeddings::new(16)),
    )
    .unwrap();
    assert_eq!(
        s.get_pks("pk in ['one', 'two']").unwrap(),
        vec![Pk::from("one"), Pk::from("two")]
    );
}

#[test]
fn describe_export_and_integrity() {
    let s = store();
    assert!(s.describe().unwrap().is_none());
    s.add_documents(docs(12), None).unwrap();
    s.delete(None, Some("n < 2")).unwrap();
    let info = s.describe().unwrap().unwrap();
    assert_eq!(info.records, 10);
    assert_eq!(info.dimension, Some(64));
    assert_eq!(info.metric, Metric::L2);
    let st = info.index_stats.unwrap();
    assert_eq!(st.live, 10);
    let report = s.check_integrity().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!((report.records, report.indexed), (10, 10));
    let exported = s.export_records().unwrap();
    assert_eq!(exported.len(), 10);
    assert!(exported.iter().all(|(_, v)| v.len() == 64));
    assert_eq!(exported[0].0.metadata["n"], Value::Int(2), "pk order");
}

/// `Database::collection_info` reads storage alone: what `describe` says but the index
/// counters, for an open collection and after a reopen; an unknown name is an error.
#[test]
fn collection_info_is_describe_without_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = quiverdb::Database::open(dir.path()).unwrap();
    let s = db
        .store("docs")
        .embeddings(HashingEmbeddings::new(64))
        .open()
        .unwrap();
    s.add_documents(docs(12), None).unwrap();
    s.delete(None, Some("n < 2")).unwrap();
    let described = s.describe().unwrap().unwrap();
    assert!(described.index_stats.is_some());
    let stored = db.collection_info("docs").unwrap();
    assert_eq!(
        stored,
        quiverdb::CollectionInfo {
            index_stats: None,
            ..described.clone()
        }
    );
    s.close().unwrap();
    drop((s, db));
    let db = quiverdb::Database::open(dir.path()).unwrap();
    let reopened = db.collection_info("docs").unwrap();
    assert_eq!(
        (reopened.records, reopened.last_seq, reopened.dimension),
        (10, described.last_seq, Some(64))
    );
    assert!(
        reopened.snapshot_modified.is_some(),
        "close wrote a snapshot"
    );
    match db.collection_info("nope") {
        Err(Error::UnknownCollection { name }) => assert_eq!(name, "nope"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_with_a_repeated_id_keeps_the_last_record() {
    let s = store();
    s.add_documents(
        docs(3),
        Some(vec![Pk::from("a"), Pk::from("b"), Pk::from("c")]),
    )
    .unwrap();
    let twice = vec![Document::new("first b"), Document::new("second b")];
    s.upsert(Some(vec![Pk::from("b"), Pk::from("b")]), twice.clone())
        .unwrap();
    s.aupsert(Some(vec![Pk::from("c"), Pk::from("c")]), twice)
        .await
        .unwrap();
    let got = s.get_by_ids(&[Pk::from("b"), Pk::from("c")]).unwrap();
    assert_eq!(got[0].page_content, "second b");
    assert_eq!(got[1].page_content, "second b");
    assert_eq!(s.count().unwrap(), 3);
    let hits = s
        .similarity_search("second b", &SearchOptions::k(3))
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(s.check_integrity().unwrap().is_ok());
}

#[test]
fn deleting_most_rows_compacts_the_index_in_the_background() {
    let s = store();
    let texts: Vec<String> = (0..2400)
        .map(|i| format!("row {i} of the compaction test"))
        .collect();
    let metas: Vec<Metadata> = (0..2400).map(|i| meta(&[("n", Value::Int(i))])).collect();
    s.add_texts(texts, Some(metas), None).unwrap();
    assert_eq!(s.delete(None, Some("n < 1500")).unwrap(), 1500);
    // Compaction runs on the pool after the write; wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let st = s.describe().unwrap().unwrap().index_stats.unwrap();
        assert_eq!(st.live, 900);
        if st.tombstones == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction: {st:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let hits = s
        .similarity_search("row 2000 of the compaction test", &SearchOptions::k(1))
        .unwrap();
    assert_eq!(hits[0].metadata["n"], Value::Int(2000));
    assert!(s.check_integrity().unwrap().is_ok());
}

/// A search never drops a hit because the row behind it is half-applied: while writers add
/// vectors, readers searching k = 1 for the vector being written (or any other) always get a
/// document. (The index used to learn of a row before the row view did; a top hit on such a
/// row was filtered out and the search came back empty.)
#[test]
fn searches_during_writes_never_come_back_short() {
    let s = store();
    fn vector(i: usize) -> Vec<f32> {
        (0..8)
            .map(|j| ((i * 31 + j * 7) % 97) as f32 + 1.0)
            .collect()
    }
    s.add_embeddings(vec!["seed".into()], vec![vector(0)], None, None)
        .unwrap();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (s, next) = (s.clone(), next.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i > 1_500 {
                    break;
                }
                s.add_embeddings(vec![format!("d{i}")], vec![vector(i)], None, None)
                    .unwrap();
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, next, done) = (s.clone(), next.clone(), done.clone());
            std::thread::spawn(move || {
                // At least one search, however late this thread starts.
                let mut searches = 0;
                loop {
                    let i = next.load(std::sync::atomic::Ordering::SeqCst);
                    let hits = s
                        .similarity_search_by_vector(&vector(i), &SearchOptions::k(1))
                        .unwrap();
                    assert_eq!(hits.len(), 1, "search {searches} for vector {i}");
                    searches += 1;
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        break searches;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(s.count().unwrap(), 1_501);
}
