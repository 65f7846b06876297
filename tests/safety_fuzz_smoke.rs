//! The fuzz targets' bounded smoke run on stable (the real fuzzers live in
//! `crates/filter/fuzz` and `crates/storage/fuzz` and need nightly + cargo-fuzz): the same
//! two properties, driven by proptest on a few thousand inputs, through the public API.
//!
//! * Filter compiler: any text given as a filter to `get_pks`, `search_by_metadata` or a
//!   search returns `Ok` or `Error::Filter` — no panic, no stack overflow, no other error.
//! * Storage decoding: a database directory with fuzzed files (raw garbage, or bytes of a
//!   healthy database flipped) opens with a typed error or opens and answers reads and
//!   `check_integrity()` without panicking.
//!
//! Crashers the fuzzers find become cases in `REGRESSIONS`.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use quiverdb::types::{Metadata, Value};
use quiverdb::{Database, Error, HashingEmbeddings, Pk, QueryOptions, SearchOptions, VectorStore};

/// Inputs that once crashed or hung a fuzzer (none found so far), plus hand-picked edges.
const REGRESSIONS: &[&str] = &[
    "",
    "(",
    ")",
    "not",
    "a[",
    "a[\"",
    "$meta[",
    "{",
    "{p",
    "a in [",
    "a like '",
    "a like '%\\",
    "1 + 2 == 3",
    "a == 9223372036854775807 + 1",
    "a == -9223372036854775808",
    "a == 1e309",
    "a % 0 == 1",
    "json_contains(",
    "array_length(l) == 18446744073709551616",
    "\u{0}",
    "'\u{10FFFF}'",
];

fn filter_store() -> &'static VectorStore {
    static S: OnceLock<VectorStore> = OnceLock::new();
    S.get_or_init(|| {
        let s = VectorStore::builder()
            .embeddings(HashingEmbeddings::new(8))
            .open()
            .unwrap();
        let metas = vec![
            Metadata::from([
                ("a".to_string(), Value::Int(3)),
                ("s".to_string(), Value::from("x y")),
                ("f".to_string(), Value::Float(0.5)),
                (
                    "l".to_string(),
                    Value::List(vec![Value::Int(1), Value::from("b")]),
                ),
            ]),
            Metadata::new(),
        ];
        s.add_texts(
            ["hello", ""],
            Some(metas),
            Some(vec![Pk::from("k1"), Pk::from("k2")]),
        )
        .unwrap();
        s
    })
}

fn check_filter(expr: &str) {
    let s = filter_store();
    let ok = |r: Result<usize, Error>| match r {
        Ok(n) => assert!(n <= 2, "{expr:?}: {n} rows of 2"),
        Err(Error::Filter { .. }) => {}
        Err(e) => panic!("{expr:?}: unexpected error {e:?}"),
    };
    ok(s.get_pks(expr).map(|p| p.len()));
    ok(s.search_by_metadata(expr, &QueryOptions::default())
        .map(|d| d.len()));
    ok(
        s.similarity_search("hello", &SearchOptions::k(2).filter(expr))
            .map(|d| d.len()),
    );
}

/// Text that looks like filters: tokens of the language glued at random, plus arbitrary
/// strings.
fn filter_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("a".to_string()),
        Just("s".to_string()),
        Just("l".to_string()),
        Just("pk".to_string()),
        Just("text".to_string()),
        Just("$meta[\"a\"]".to_string()),
        Just("==".to_string()),
        Just("!=".to_string()),
        Just("<".to_string()),
        Just(">=".to_string()),
        Just("and".to_string()),
        Just("or".to_string()),
        Just("not".to_string()),
        Just("in".to_string()),
        Just("like".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just("+".to_string()),
        Just("%".to_string()),
        Just("{p}".to_string()),
        Just("json_contains".to_string()),
        Just("array_length".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "'[^']{0,8}'".prop_map(|s| s),
        "\"[a-z%_\\\\]{0,6}\"".prop_map(|s| s),
    ];
    prop_oneof![
        3 => prop::collection::vec(token, 0..24).prop_map(|t| t.join(" ")),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

#[test]
fn filter_inputs_never_panic() {
    for expr in REGRESSIONS {
        check_filter(expr);
    }
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 3000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    runner
        .run(&filter_text(), |expr| {
            check_filter(&expr);
            Ok(())
        })
        .unwrap();
}

/// The files of a small healthy database, built once.
fn healthy_files() -> &'static Vec<(String, Vec<u8>)> {
    static F: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let s = store_at(dir.path()).unwrap();
        s.add_texts(
            (0..12).map(|i| format!("text {i}")),
            Some(
                (0..12)
                    .map(|i| Metadata::from([("n".to_string(), Value::Int(i))]))
                    .collect(),
            ),
            Some((0..12).map(|i| Pk::from(format!("k{i}"))).collect()),
        )
        .unwrap();
        s.delete(Some(vec![Pk::from("k3")]), None).unwrap();
        drop(s);
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    })
}

fn store_at(dir: &Path) -> quiverdb::Result<VectorStore> {
    VectorStore::builder()
        .path(dir)
        .collection_name("fuzz")
        .embeddings(HashingEmbeddings::new(8))
        .open()
}

/// Opens a fuzzed directory and reads whatever opens; typed errors only.
fn exercise(dir: &Path) {
    let db = match Database::open(dir) {
        Ok(db) => db,
        Err(Error::Corrupted { .. } | Error::Storage(_)) => return,
        Err(e) => panic!("unexpected error opening fuzzed files: {e:?}"),
    };
    let _ = db.list_collections();
    drop(db);
    if let Ok(s) = store_at(dir) {
        let _ = s.count();
        let _ = s.get_pks("n >= 0");
        let _ = s.similarity_search("text 5", &SearchOptions::k(3));
        let _ = s.check_integrity();
    }
}

#[derive(Debug, Clone)]
enum Damage {
    Raw { conf: Vec<u8>, db: Vec<u8> },
    Flips(Vec<(u32, u8)>),
    Truncate(u32),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        1 => (
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(any::<u8>(), 0..512)
        )
            .prop_map(|(conf, db)| Damage::Raw { conf, db }),
        3 => prop::collection::vec((any::<u32>(), 1u8..=255), 1..8).prop_map(Damage::Flips),
        1 => any::<u32>().prop_map(Damage::Truncate),
    ]
}

#[test]
fn fuzzed_database_files_never_panic() {
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 150,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]),
    );
    runner
        .run(&damage(), |d| {
            let dir = tempfile::tempdir().unwrap();
            match &d {
                Damage::Raw { conf, db } => {
                    std::fs::write(dir.path().join("conf"), conf).unwrap();
                    std::fs::write(dir.path().join("db"), db).unwrap();
                }
                Damage::Flips(_) | Damage::Truncate(_) => {
                    for (name, bytes) in healthy_files() {
                        let mut bytes = bytes.clone();
                        if name == "db" && !bytes.is_empty() {
                            let len = bytes.len();
                            match &d {
                                Damage::Flips(f) => {
                                    for (off, x) in f {
                                        bytes[*off as usize % len] ^= x;
                                    }
                                }
                                Damage::Truncate(n) => bytes.truncate(*n as usize % len),
                                Damage::Raw { .. } => unreachable!(),
                            }
                        }
                        std::fs::write(dir.path().join(name), bytes).unwrap();
                    }
                }
            }
            exercise(dir.path());
            Ok(())
        })
        .unwrap();
}
