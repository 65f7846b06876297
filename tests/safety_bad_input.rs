//! Bad input: every public entry point fed wrong dimensions, NaN/inf, empty strings, huge
//! texts, duplicate ids, ids of the wrong kind, malformed and adversarial filters, k = 0 and
//! k = usize::MAX, unknown collections and path-like collection names. Each call gets its
//! typed `quiverdb::Error` variant (asserted), and afterwards the store is unchanged (same
//! count, same search results, same stored documents) and still takes writes.

use quiverdb::types::{Metadata, Value};
use quiverdb::{
    Database, Document, Error, HashingEmbeddings, IndexOptions, Metric, MmrOptions, Pk,
    QueryOptions, SearchOptions, VectorStore,
};

const DIM: usize = 16;

fn meta(n: i64) -> Metadata {
    Metadata::from([
        ("n".to_string(), Value::Int(n)),
        ("cat".to_string(), Value::from(format!("c{}", n % 3))),
    ])
}

fn seeded(dir: &std::path::Path, metric: Metric) -> VectorStore {
    let s = VectorStore::builder()
        .path(dir)
        .collection_name("bad")
        .metric(metric)
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .unwrap();
    let ids: Vec<Pk> = (0..40).map(|i| Pk::from(format!("id{i}"))).collect();
    let texts: Vec<String> = (0..40)
        .map(|i| format!("document {i} topic {}", i % 4))
        .collect();
    s.add_texts(texts, Some((0..40).map(meta).collect()), Some(ids))
        .unwrap();
    s
}

/// Everything observable about the store, to compare before and after bad calls.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    count: usize,
    docs: Vec<(Option<String>, String, Metadata)>,
    search: Vec<Vec<String>>,
}

fn fingerprint(s: &VectorStore) -> Fingerprint {
    let pks = s.get_pks("pk like '%'").unwrap();
    let docs = s
        .get_by_ids(&pks)
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.page_content, d.metadata))
        .collect();
    let search = ["document 3", "topic 2", "nothing like it"]
        .iter()
        .map(|q| {
            s.similarity_search(q, &SearchOptions::k(5))
                .unwrap()
                .into_iter()
                .map(|d| d.id.unwrap())
                .collect()
        })
        .collect();
    Fingerprint {
        count: s.count().unwrap(),
        docs,
        search,
    }
}

/// Asserts `$call` fails with an error matching `$pat`.
macro_rules! refused {
    ($what:expr, $call:expr, $pat:pat $(if $guard:expr)?) => {{
        match $call {
            Err(e) => assert!(
                matches!(e, $pat $(if $guard)?),
                "{}: expected {}, got {e:?}",
                $what,
                stringify!($pat)
            ),
            Ok(v) => panic!("{}: expected {}, got Ok({v:?})", $what, stringify!($pat)),
        }
    }};
}

fn vecs(n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| (0..dim).map(|j| ((i * 7 + j) % 5) as f32 + 0.5).collect())
        .collect()
}

#[test]
fn vectors_of_the_wrong_shape_or_value_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for metric in [Metric::L2, Metric::Cosine] {
        let s = seeded(&dir.path().join(format!("{metric}")), metric);
        let before = fingerprint(&s);
        let ids = |n: usize| Some((0..n).map(|i| Pk::from(format!("new{i}"))).collect());
        refused!(
            "short vector",
            s.add_embeddings(vec!["a".into()], vecs(1, DIM - 1), None, ids(1)),
            Error::WrongDimension { expected: DIM, got } if got == DIM - 1
        );
        refused!(
            "long vector in a batch",
            s.add_embeddings(
                vec!["a".into(), "b".into()],
                vec![vecs(1, DIM)[0].clone(), vecs(1, DIM + 3)[0].clone()],
                None,
                ids(2)
            ),
            Error::WrongDimension { .. }
        );
        refused!(
            "empty vector",
            s.add_embeddings(vec!["a".into()], vec![vec![]], None, ids(1)),
            Error::EmptyVector { .. } | Error::WrongDimension { .. }
        );
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut v = vecs(2, DIM);
            v[1][3] = bad;
            refused!(
                format!("{bad} in a vector"),
                s.add_embeddings(vec!["a".into(), "b".into()], v.clone(), None, ids(2)),
                Error::NonFiniteVector {
                    row: 1,
                    component: 3,
                    ..
                }
            );
            refused!(
                format!("{bad} in a query"),
                s.similarity_search_by_vector(&v[1], &SearchOptions::k(3)),
                Error::NonFiniteVector { .. }
            );
            refused!(
                format!("{bad} in an MMR query"),
                s.max_marginal_relevance_search_by_vector(&v[1], &MmrOptions::default()),
                Error::NonFiniteVector { .. }
            );
        }
        refused!(
            "wrong query dimension",
            s.similarity_search_by_vector(&[1.0; 3], &SearchOptions::k(3)),
            Error::WrongDimension {
                expected: DIM,
                got: 3
            }
        );
        refused!(
            "empty query vector",
            s.similarity_search_by_vector(&[], &SearchOptions::k(3)),
            Error::WrongDimension { .. } | Error::EmptyVector { .. }
        );
        if metric == Metric::Cosine {
            refused!(
                "zero vector, cosine",
                s.add_embeddings(vec!["z".into()], vec![vec![0.0; DIM]], None, ids(1)),
                Error::ZeroVector { .. }
            );
            refused!(
                "zero query, cosine",
                s.similarity_search_by_vector(&[0.0; DIM], &SearchOptions::k(3)),
                Error::ZeroVector { .. }
            );
        }
        refused!(
            "embeddings/texts length",
            s.add_embeddings(vec!["a".into()], vecs(2, DIM), None, ids(1)),
            Error::LengthMismatch { .. }
        );
        refused!(
            "metadatas length",
            s.add_texts(["a", "b"], Some(vec![meta(1)]), ids(2)),
            Error::LengthMismatch { .. }
        );
        refused!(
            "ids length",
            s.add_texts(["a", "b"], None, ids(3)),
            Error::LengthMismatch { .. } | Error::InvalidArgument(_)
        );
        assert_eq!(fingerprint(&s), before, "{metric}: store changed");
        s.add_texts(["still works"], None, Some(vec![Pk::from("ok")]))
            .unwrap();
        assert_eq!(s.count().unwrap(), before.count + 1);
        assert!(s.check_integrity().unwrap().is_ok());
    }
}

#[test]
fn ids_that_collide_or_have_the_wrong_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), Metric::L2);
    let before = fingerprint(&s);
    refused!(
        "id already stored",
        s.add_texts(
            ["x", "y"],
            None,
            Some(vec![Pk::from("fresh"), Pk::from("id3")])
        ),
        Error::DuplicateId { .. }
    );
    refused!(
        "id twice in one batch",
        s.add_texts(
            ["x", "y"],
            None,
            Some(vec![Pk::from("twin"), Pk::from("twin")])
        ),
        Error::DuplicateId { .. } | Error::InvalidArgument(_)
    );
    refused!(
        "int id in a string collection",
        s.add_texts(["x"], None, Some(vec![Pk::Int(5)])),
        Error::WrongIdKind { .. }
    );
    refused!(
        "int id to upsert",
        s.upsert(Some(vec![Pk::Int(5)]), vec![Document::new("x")]),
        Error::WrongIdKind { .. }
    );
    refused!(
        "int id to delete",
        s.delete(Some(vec![Pk::Int(5)]), None),
        Error::WrongIdKind { .. }
    );
    refused!(
        "upsert without ids",
        s.upsert(None, vec![Document::new("x")]),
        Error::MissingIds { .. }
    );
    refused!(
        "add without ids in a caller-id collection",
        s.add_texts(["x"], None, None),
        Error::MissingIds { .. }
    );
    assert_eq!(fingerprint(&s), before);

    // An auto-id collection refuses caller string ids.
    let auto = VectorStore::builder()
        .path(dir.path())
        .collection_name("auto")
        .auto_id(true)
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .unwrap();
    auto.add_texts(["a", "b"], None, None).unwrap();
    refused!(
        "string id in an auto-id collection",
        auto.delete(Some(vec![Pk::from("a")]), None),
        Error::WrongIdKind { .. }
    );
    assert_eq!(auto.count().unwrap(), 2);
}

#[test]
fn texts_and_metadata_at_the_edges() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), Metric::L2);
    let count = s.count().unwrap();
    // Empty texts and keys are data, not errors: they round-trip.
    s.add_texts([""], None, Some(vec![Pk::from("empty-text")]))
        .unwrap();
    let got = s.get_by_ids(&[Pk::from("empty-text")]).unwrap();
    assert_eq!(got[0].page_content, "");
    // An empty id is either refused or stored and readable, never half-stored.
    match s.add_texts(["x"], None, Some(vec![Pk::from("")])) {
        Ok(_) => assert_eq!(s.get_by_ids(&[Pk::from("")]).unwrap().len(), 1),
        Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}"),
    }
    let count_mid = s.count().unwrap();
    assert!(count_mid == count + 1 || count_mid == count + 2);
    // A 6 MB text with a 1 MB metadata string round-trips exactly, also after reopen.
    let huge: String = "quiver ".repeat(6 << 20 >> 3);
    let big_meta = Metadata::from([("blob".to_string(), Value::from("m".repeat(1 << 20)))]);
    s.add_texts(
        [huge.clone()],
        Some(vec![big_meta.clone()]),
        Some(vec![Pk::from("huge")]),
    )
    .unwrap();
    drop(s);
    let s = seeded_reopen(dir.path());
    let got = s.get_by_ids(&[Pk::from("huge")]).unwrap();
    assert_eq!(got[0].page_content, huge);
    assert_eq!(got[0].metadata["blob"], big_meta["blob"]);
    assert!(s.check_integrity().unwrap().is_ok());
    // Empty inputs are no-ops.
    assert!(s
        .add_texts(Vec::<String>::new(), None, None)
        .unwrap()
        .is_empty());
    assert!(s.upsert(None, vec![]).unwrap().is_empty());
    assert_eq!(s.delete(Some(vec![]), Some("n > 1000")).unwrap(), 0);
    assert_eq!(s.count().unwrap(), count_mid + 1);
}

fn seeded_reopen(dir: &std::path::Path) -> VectorStore {
    VectorStore::builder()
        .path(dir)
        .collection_name("bad")
        .embeddings(HashingEmbeddings::new(DIM))
        .open()
        .unwrap()
}

#[test]
fn malformed_and_adversarial_filters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), Metric::L2);
    let before = fingerprint(&s);
    let deep_parens = format!("{}n > 1{}", "(".repeat(10_000), ")".repeat(10_000));
    let deep_not = format!("{}n > 1", "not ".repeat(10_000));
    let deep_unclosed = "(".repeat(10_000);
    let deep_json = format!("n{}", "[\"a\"]".repeat(10_000));
    let huge_literal = format!("cat == '{}'", "x".repeat(1 << 20));
    let huge_unterminated = format!("cat == '{}", "x".repeat(1 << 20));
    let long_chain = vec!["n == 1"; 20_000].join(" or ");
    let huge_in = format!(
        "n in [{}]",
        (0..200_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let malformed = [
        "n >",
        "and",
        "n > 1 And cat == 'a'",
        "cat == 'unterminated",
        "n >> 1",
        "n in [1, 2",
        "\u{0}",
        "n > {missing}",
        "\u{feff}n > 1 ))",
        deep_parens.as_str(),
        deep_not.as_str(),
        deep_unclosed.as_str(),
        deep_json.as_str(),
        huge_unterminated.as_str(),
    ];
    for expr in malformed {
        let what = format!("filter {:?}", &expr[..expr.len().min(40)]);
        refused!(
            format!("{what} in search"),
            s.similarity_search("document", &SearchOptions::k(3).filter(expr)),
            Error::Filter { .. }
        );
        refused!(
            format!("{what} in MMR"),
            s.max_marginal_relevance_search(
                "document",
                &MmrOptions {
                    filter: Some(expr.into()),
                    ..MmrOptions::default()
                }
            ),
            Error::Filter { .. }
        );
        refused!(
            format!("{what} in search_by_metadata"),
            s.search_by_metadata(expr, &QueryOptions::default()),
            Error::Filter { .. }
        );
        refused!(
            format!("{what} in get_pks"),
            s.get_pks(expr),
            Error::Filter { .. }
        );
        refused!(
            format!("{what} in delete"),
            s.delete(None, Some(expr)),
            Error::Filter { .. }
        );
    }
    // Large but well-formed filters either work or are refused as filters: never a panic,
    // never a stack overflow, never a changed store.
    for expr in [huge_literal.as_str(), long_chain.as_str(), huge_in.as_str()] {
        match s.get_pks(expr) {
            Ok(pks) => assert!(pks.len() <= before.count),
            Err(e) => assert!(matches!(e, Error::Filter { .. }), "{e:?}"),
        }
    }
    assert_eq!(s.get_pks(&long_chain).map(|p| p.len()).unwrap_or(1), 1);
    assert_eq!(fingerprint(&s), before);
    assert!(s.check_integrity().unwrap().is_ok());
}

#[test]
fn out_of_range_arguments_are_refused_and_huge_k_is_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path(), Metric::L2);
    let before = fingerprint(&s);
    refused!(
        "k = 0",
        s.similarity_search("x", &SearchOptions::k(0)),
        Error::InvalidArgument(_)
    );
    refused!(
        "k = 0 by vector",
        s.similarity_search_by_vector(&[0.5; DIM], &SearchOptions::k(0)),
        Error::InvalidArgument(_)
    );
    refused!(
        "MMR k = 0",
        s.max_marginal_relevance_search(
            "x",
            &MmrOptions {
                k: 0,
                ..MmrOptions::default()
            }
        ),
        Error::InvalidArgument(_)
    );
    for lambda in [-0.1, 1.5, f32::NAN] {
        refused!(
            format!("lambda {lambda}"),
            s.max_marginal_relevance_search(
                "x",
                &MmrOptions {
                    lambda_mult: lambda,
                    ..MmrOptions::default()
                }
            ),
            Error::InvalidArgument(_)
        );
    }
    refused!(
        "delete with neither",
        s.delete(None, None),
        Error::InvalidArgument(_)
    );
    refused!(
        "delete with an empty filter",
        s.delete(None, Some("")),
        Error::InvalidArgument(_)
    );
    let all = s
        .similarity_search("x", &SearchOptions::k(usize::MAX))
        .unwrap();
    assert_eq!(all.len(), before.count);
    let all = s
        .similarity_search(
            "x",
            &SearchOptions {
                ef: Some(usize::MAX),
                ..SearchOptions::k(usize::MAX)
            },
        )
        .unwrap();
    assert_eq!(all.len(), before.count);
    let mmr = s
        .max_marginal_relevance_search(
            "x",
            &MmrOptions {
                k: usize::MAX,
                fetch_k: usize::MAX,
                ..MmrOptions::default()
            },
        )
        .unwrap();
    assert_eq!(mmr.len(), before.count);
    let q = s
        .search_by_metadata(
            "n >= 0",
            &QueryOptions {
                limit: usize::MAX,
                ..QueryOptions::default()
            },
        )
        .unwrap();
    assert_eq!(q.len(), before.count);
    assert_eq!(fingerprint(&s), before);
}

#[test]
fn unknown_collections_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert!(!db.has_collection("nope").unwrap());
    assert!(!db.drop_collection("nope").unwrap());
    let names = [
        "",
        "../escape",
        "..",
        "a/b",
        "a\\b",
        "/abs",
        "with space",
        "nul\0byte",
        "1starts_with_digit",
        "ünïcode",
    ];
    let long = "x".repeat(300);
    for name in names.iter().copied().chain([long.as_str()]) {
        refused!(
            format!("create {name:?}"),
            db.create_collection(
                name,
                Some(4),
                Metric::L2,
                false,
                IndexOptions::default(),
                false
            ),
            Error::InvalidName { .. }
        );
        let store = db
            .store(name)
            .embeddings(HashingEmbeddings::new(DIM))
            .open();
        match store {
            Err(e) => assert!(matches!(e, Error::InvalidName { .. }), "{name:?}: {e:?}"),
            Ok(store) => refused!(
                format!("first write to {name:?}"),
                store.add_texts(["x"], None, Some(vec![Pk::from("a")])),
                Error::InvalidName { .. }
            ),
        }
    }
    // Nothing was created, inside or outside the database directory.
    assert!(db.list_collections().unwrap().is_empty());
    assert!(!dir.path().join("escape").exists());
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join("index"))
        .into_iter()
        .flatten()
        .collect();
    assert!(
        snapshots.is_empty(),
        "unexpected snapshot dirs {snapshots:?}"
    );
    refused!(
        "bad index engine",
        db.create_collection(
            "ok",
            Some(4),
            Metric::L2,
            false,
            IndexOptions {
                engine: "nope".into(),
                ..IndexOptions::default()
            },
            false
        ),
        Error::InvalidArgument(_)
    );
    refused!(
        "zero m",
        db.create_collection(
            "ok",
            Some(4),
            Metric::L2,
            false,
            IndexOptions {
                m: 0,
                ..IndexOptions::default()
            },
            false
        ),
        Error::InvalidArgument(_)
    );
    refused!(
        "zero dimension",
        db.create_collection(
            "ok",
            Some(0),
            Metric::L2,
            false,
            IndexOptions::default(),
            false
        ),
        Error::InvalidArgument(_) | Error::EmptyVector { .. } | Error::WrongDimension { .. }
    );
    db.create_collection(
        "ok",
        Some(4),
        Metric::L2,
        false,
        IndexOptions::default(),
        false,
    )
    .unwrap();
    refused!(
        "create twice",
        db.create_collection(
            "ok",
            Some(4),
            Metric::L2,
            false,
            IndexOptions::default(),
            false
        ),
        Error::CollectionExists { .. }
    );
    // A store without an embedder refuses text calls with a typed error.
    let bare = db.store("ok").open().unwrap();
    refused!(
        "no embedder",
        bare.add_texts(["x"], None, Some(vec![Pk::from("a")])),
        Error::NoEmbeddings
    );
    assert_eq!(bare.count().unwrap(), 0);
    // A closed store refuses everything.
    bare.close().unwrap();
    refused!("closed count", bare.count(), Error::Closed);
    refused!(
        "closed add",
        bare.add_embeddings(
            vec!["x".into()],
            vec![vec![1.0; 4]],
            None,
            Some(vec![Pk::from("a")])
        ),
        Error::Closed
    );
}
