//! Integration tests of `quiverdb-storage`, one module per scenario.

use std::path::Path;

use quiverdb_storage::{
    CollectionConfig, Database, Error, Metadata, Metric, NewRecord, Pk, PkKind, RowId, Value,
};

fn rec(pk: impl Into<Option<Pk>>, text: &str, vector: Vec<f32>) -> NewRecord {
    NewRecord {
        pk: pk.into(),
        text: text.to_owned(),
        metadata: Metadata::new(),
        vector,
    }
}

fn s(k: &str) -> Option<Pk> {
    Some(Pk::Str(k.to_owned()))
}

fn cfg(pk_kind: PkKind, metric: Metric) -> CollectionConfig {
    CollectionConfig {
        pk_kind,
        metric,
        ..CollectionConfig::default()
    }
}

fn open(dir: &Path) -> Database {
    Database::open(dir).expect("open")
}

mod round_trip {
    use super::*;
    use std::collections::BTreeMap;

    fn rich_metadata() -> Metadata {
        let mut inner = BTreeMap::new();
        inner.insert(
            "deep".to_owned(),
            Value::Map(BTreeMap::from([("k".to_owned(), Value::Int(-7))])),
        );
        inner.insert(
            "list".to_owned(),
            Value::List(vec![
                Value::Int(1),
                Value::Str("a".into()),
                Value::List(vec![Value::Float(2.5)]),
            ]),
        );
        Metadata::from([
            ("null".to_owned(), Value::Null),
            ("bool".to_owned(), Value::Bool(true)),
            ("int".to_owned(), Value::Int(2)),
            ("float".to_owned(), Value::Float(2.0)),
            ("neg".to_owned(), Value::Float(-0.5e300)),
            ("str".to_owned(), Value::Str("héllo ✓".into())),
            ("empty_list".to_owned(), Value::List(vec![])),
            ("map".to_owned(), Value::Map(inner)),
        ])
    }

    #[test]
    fn every_value_kind_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let big_text: String = "0123456789abcdef".repeat(5 * 1024 * 1024 / 16);
        let records = vec![
            NewRecord {
                pk: s("rich"),
                text: "t".into(),
                metadata: rich_metadata(),
                vector: vec![1.0, -2.0, 3.5],
            },
            NewRecord {
                pk: s("big"),
                text: big_text.clone(),
                metadata: Metadata::new(),
                vector: vec![0.0, 0.0, 1e-30],
            },
            NewRecord {
                pk: s(""),
                text: String::new(),
                metadata: Metadata::new(),
                vector: vec![f32::MAX, f32::MIN, 0.0],
            },
        ];
        {
            let db = open(dir.path());
            let c = db
                .create_collection("docs", cfg(PkKind::Str, Metric::L2))
                .unwrap();
            let receipt = c.insert(records.clone()).unwrap();
            assert_eq!(receipt.seq, 1);
            assert_eq!(receipt.inserted.len(), 3);
        }
        let db = open(dir.path());
        let c = db.open_collection("docs").unwrap();
        let got = c
            .get(&[
                Pk::from("rich"),
                Pk::from("big"),
                Pk::from(""),
                Pk::from("nope"),
            ])
            .unwrap();
        for (g, want) in got.iter().zip(&records) {
            let g = g.as_ref().expect("stored");
            assert_eq!(Some(&g.pk), want.pk.as_ref());
            assert_eq!(g.text, want.text);
            assert_eq!(g.metadata, want.metadata);
            assert_eq!(g.vector, want.vector);
        }
        assert!(got[3].is_none());
        let rich = got[0].as_ref().unwrap();
        assert_eq!(rich.metadata["int"], Value::Int(2));
        assert_eq!(rich.metadata["float"], Value::Float(2.0));
        assert_eq!(got[1].as_ref().unwrap().text.len(), big_text.len());
        let schema = c.schema();
        assert_eq!(schema.dimension, Some(3));
        assert_eq!(schema.pk_kind, PkKind::Str);
        assert_eq!(c.count().unwrap(), 3);
        assert!(c.check_integrity().unwrap().is_ok());
    }

    #[test]
    fn schema_and_dimension_persist() {
        let dir = tempfile::tempdir().unwrap();
        let index = quiverdb_storage::IndexParams {
            engine: "hnsw".into(),
            m: 8,
            ef_construction: 50,
            ef_search: 20,
        };
        {
            let db = open(dir.path());
            let c = db
                .create_collection(
                    "c",
                    CollectionConfig {
                        index: index.clone(),
                        metric: Metric::Ip,
                        pk_kind: PkKind::Int,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(c.schema().dimension, None);
            c.insert(vec![rec(Pk::Int(5), "x", vec![1.0, 2.0])])
                .unwrap();
            assert_eq!(c.schema().dimension, Some(2));
        }
        let db = open(dir.path());
        let schema = db.open_collection("c").unwrap().schema();
        assert_eq!(schema.name, "c");
        assert_eq!(schema.dimension, Some(2));
        assert_eq!(schema.metric, Metric::Ip);
        assert_eq!(schema.pk_kind, PkKind::Int);
        assert_eq!(schema.index, index);
        assert_eq!(schema.format_version, quiverdb_storage::FORMAT_VERSION);
    }

    #[test]
    fn cosine_vectors_are_stored_normalized() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", cfg(PkKind::Int, Metric::Cosine))
            .unwrap();
        c.insert(vec![rec(Pk::Int(1), "", vec![0.0, 3.0, 4.0])])
            .unwrap();
        let v = c.get(&[Pk::Int(1)]).unwrap().remove(0).unwrap().vector;
        assert!(
            (v[1] - 0.6).abs() < 1e-6 && (v[2] - 0.8).abs() < 1e-6,
            "{v:?}"
        );
    }
}

mod auto_ids {
    use super::*;

    #[test]
    fn never_reused_after_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let c = db
                .create_collection("a", cfg(PkKind::AutoInt, Metric::L2))
                .unwrap();
            let r = c
                .insert(vec![
                    rec(None, "1", vec![1.0]),
                    rec(None, "2", vec![2.0]),
                    rec(None, "3", vec![3.0]),
                ])
                .unwrap();
            let ids: Vec<_> = r.inserted.iter().map(|(pk, _)| pk.clone()).collect();
            assert_eq!(ids, vec![Pk::Int(1), Pk::Int(2), Pk::Int(3)]);
            c.delete(&[Pk::Int(3), Pk::Int(2)]).unwrap();
        }
        let db = open(dir.path());
        let c = db.open_collection("a").unwrap();
        let r = c.insert(vec![rec(None, "4", vec![4.0])]).unwrap();
        assert_eq!(r.inserted[0].0, Pk::Int(4));
        // Row ids are never reused either: 3 rows were handed out before.
        assert_eq!(r.inserted[0].1, RowId(4));
        assert_eq!(c.count().unwrap(), 2);
    }

    #[test]
    fn upsert_with_explicit_id_bumps_the_counter() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("a", cfg(PkKind::AutoInt, Metric::L2))
            .unwrap();
        c.upsert(vec![rec(Pk::Int(10), "", vec![1.0])]).unwrap();
        let r = c.insert(vec![rec(None, "", vec![1.0])]).unwrap();
        assert_eq!(r.inserted[0].0, Pk::Int(11));
        assert!(matches!(
            c.upsert(vec![rec(None, "", vec![1.0])]),
            Err(Error::MissingPk { row: 0 })
        ));
    }
}

mod atomicity {
    use super::*;

    fn assert_untouched(c: &quiverdb_storage::Collection, count: usize, seq: u64) {
        assert_eq!(c.count().unwrap(), count);
        assert_eq!(c.last_seq(), seq);
        assert_eq!(c.scan().count(), count);
        assert_eq!(c.changes_since(0).unwrap().len() as u64, seq);
        assert!(c.check_integrity().unwrap().is_ok());
    }

    #[test]
    fn a_batch_rejected_in_its_last_row_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", cfg(PkKind::Str, Metric::Cosine))
                .unwrap();
            c.insert(vec![rec(s("kept"), "", vec![1.0, 0.0])]).unwrap();
            let good = |k: &str| rec(s(k), "", vec![1.0, 1.0]);
            let bad_batches = vec![
                (vec![good("a"), good("b"), good("a")], "duplicate in batch"),
                (vec![good("a"), good("b"), good("kept")], "duplicate stored"),
                (
                    vec![good("a"), good("b"), rec(s("c"), "", vec![1.0, f32::NAN])],
                    "nan",
                ),
                (
                    vec![good("a"), good("b"), rec(s("c"), "", vec![0.0, 0.0])],
                    "zero",
                ),
                (
                    vec![good("a"), good("b"), rec(s("c"), "", vec![1.0])],
                    "dimension",
                ),
                (
                    vec![good("a"), good("b"), rec(None, "", vec![1.0, 1.0])],
                    "missing pk",
                ),
            ];
            for (batch, why) in bad_batches {
                assert!(c.insert(batch).is_err(), "{why}");
                assert_untouched(&c, 1, 1);
            }
            let bad_upsert = vec![
                good("kept"),
                good("z"),
                rec(s("y"), "", vec![f32::INFINITY, 1.0]),
            ];
            assert!(c.upsert(bad_upsert).is_err());
            assert_untouched(&c, 1, 1);
            assert_eq!(
                c.get(&[Pk::from("kept")]).unwrap()[0].as_ref().unwrap().row,
                RowId(1)
            );
        }
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        assert_untouched(&c, 1, 1);
        assert_eq!(c.get(&[Pk::from("a")]).unwrap(), vec![None]);
    }

    #[test]
    fn dimension_is_not_fixed_by_a_rejected_batch() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        assert!(c
            .insert(vec![
                rec(s("a"), "", vec![1.0, 2.0]),
                rec(s("b"), "", vec![1.0])
            ])
            .is_err());
        assert_eq!(c.schema().dimension, None);
        c.insert(vec![rec(s("a"), "", vec![1.0])]).unwrap();
        assert_eq!(c.schema().dimension, Some(1));
    }
}

mod bad_input {
    use super::*;

    #[test]
    fn each_bad_input_has_its_typed_error() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection(
                "c",
                CollectionConfig {
                    dimension: Some(2),
                    metric: Metric::Cosine,
                    ..Default::default()
                },
            )
            .unwrap();
        let one = |r: NewRecord| {
            c.insert(vec![rec(s("ok"), "", vec![1.0, 0.0]), r])
                .unwrap_err()
        };
        assert!(matches!(
            one(rec(s("x"), "", vec![1.0])),
            Error::WrongDimension {
                expected: 2,
                got: 1
            }
        ));
        assert!(matches!(
            one(rec(s("x"), "", vec![1.0, f32::NEG_INFINITY])),
            Error::NonFiniteVector {
                row: 1,
                component: 1,
                ..
            }
        ));
        assert!(matches!(
            one(rec(s("x"), "", vec![0.0, 0.0])),
            Error::ZeroVector { row: 1 }
        ));
        assert!(matches!(
            one(rec(s("x"), "", vec![])),
            Error::EmptyVector { row: 1 }
        ));
        assert!(
            matches!(one(rec(s("ok"), "", vec![0.0, 1.0])), Error::DuplicatePk { pk } if pk == Pk::from("ok"))
        );
        assert!(matches!(
            one(rec(None, "", vec![0.0, 1.0])),
            Error::MissingPk { row: 1 }
        ));
        assert!(matches!(
            one(rec(Pk::Int(3), "", vec![0.0, 1.0])),
            Error::WrongPkKind {
                expected: PkKind::Str,
                got: Pk::Int(3)
            }
        ));

        let auto = db
            .create_collection("auto", cfg(PkKind::AutoInt, Metric::L2))
            .unwrap();
        let err = auto
            .insert(vec![rec(Pk::Int(1), "", vec![1.0])])
            .unwrap_err();
        assert!(matches!(
            err,
            Error::WrongPkKind {
                expected: PkKind::AutoInt,
                ..
            }
        ));
        assert!(err.to_string().contains("auto ids"), "{err}");
        let int = db
            .create_collection("int", cfg(PkKind::Int, Metric::L2))
            .unwrap();
        assert!(matches!(
            int.insert(vec![rec(s("a"), "", vec![1.0])]),
            Err(Error::WrongPkKind {
                expected: PkKind::Int,
                ..
            })
        ));

        for bad in ["", "9lives", "has-dash", "sp ace", "ünï"] {
            assert!(
                matches!(
                    db.create_collection(bad, CollectionConfig::default()),
                    Err(Error::InvalidName { .. })
                ),
                "{bad}"
            );
        }
        let long = "n".repeat(256);
        assert!(matches!(
            db.create_collection(&long, CollectionConfig::default()),
            Err(Error::InvalidName { .. })
        ));
        assert!(db
            .create_collection(&"n".repeat(255), CollectionConfig::default())
            .is_ok());
        assert!(matches!(
            db.create_collection("c", CollectionConfig::default()),
            Err(Error::CollectionExists { .. })
        ));
        assert!(matches!(
            db.open_collection("nope"),
            Err(Error::UnknownCollection { .. })
        ));
        assert!(matches!(
            db.create_collection(
                "zero",
                CollectionConfig {
                    dimension: Some(0),
                    ..Default::default()
                }
            ),
            Err(Error::InvalidConfig { .. })
        ));
        // Nothing of the rejected batches was written.
        assert_eq!(c.count().unwrap(), 0);
    }
}

mod writes {
    use super::*;

    #[test]
    fn upsert_replaces_with_a_fresh_row_and_delete_ignores_unknown_keys() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        let r1 = c
            .insert(vec![
                rec(s("a"), "v1", vec![1.0]),
                rec(s("b"), "b", vec![2.0]),
            ])
            .unwrap();
        let old_a = r1.inserted[0].1;
        let r2 = c
            .upsert(vec![
                rec(s("a"), "v2", vec![3.0]),
                rec(s("c"), "c", vec![4.0]),
            ])
            .unwrap();
        assert_eq!(r2.removed, vec![(Pk::from("a"), old_a)]);
        let new_a = r2.inserted[0].1;
        assert!(new_a > old_a);
        assert_eq!(c.count().unwrap(), 3);
        assert_eq!(c.get_row(old_a).unwrap(), None);
        let a = c.get(&[Pk::from("a")]).unwrap().remove(0).unwrap();
        assert_eq!(
            (a.text.as_str(), a.row, a.vector.clone()),
            ("v2", new_a, vec![3.0])
        );
        assert_eq!(c.get_row(new_a).unwrap(), Some(a));

        // Last occurrence wins inside one upsert batch.
        let r3 = c
            .upsert(vec![
                rec(s("d"), "first", vec![1.0]),
                rec(s("d"), "second", vec![1.0]),
            ])
            .unwrap();
        assert_eq!(r3.inserted.len(), 1);
        assert_eq!(
            c.get(&[Pk::from("d")]).unwrap()[0].as_ref().unwrap().text,
            "second"
        );

        let r4 = c
            .delete(&[Pk::from("b"), Pk::from("zzz"), Pk::Int(1), Pk::from("b")])
            .unwrap();
        assert_eq!(r4.removed.len(), 1);
        assert_eq!(c.count().unwrap(), 3);
        let nothing = c.delete(&[Pk::from("zzz")]).unwrap();
        assert_eq!((nothing.seq, nothing.removed.len()), (r4.seq, 0));
        assert!(c.check_integrity().unwrap().is_ok());
    }

    #[test]
    fn scan_is_in_row_order_and_filters() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        c.insert(vec![
            rec(s("z"), "1", vec![1.0]),
            rec(s("a"), "2", vec![2.0]),
            rec(s("m"), "3", vec![3.0]),
        ])
        .unwrap();
        c.upsert(vec![rec(s("z"), "4", vec![4.0])]).unwrap();
        let order: Vec<_> = c.scan().map(|r| r.unwrap().pk).collect();
        assert_eq!(order, vec![Pk::from("a"), Pk::from("m"), Pk::from("z")]);
        let big = c.scan_filter(|r| r.vector[0] > 2.5).unwrap();
        assert_eq!(
            big.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            vec!["3", "4"]
        );
    }

    #[test]
    fn empty_batches_commit_nothing() {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        assert_eq!(c.insert(vec![]).unwrap().seq, 0);
        assert_eq!(c.last_seq(), 0);
        assert!(c.changes_since(0).unwrap().is_empty());
    }
}

mod changes {
    use super::*;

    #[test]
    fn changes_since_returns_later_batches_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a1, a2, b);
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", CollectionConfig::default())
                .unwrap();
            let r1 = c
                .insert(vec![rec(s("a"), "", vec![1.0]), rec(s("b"), "", vec![1.0])])
                .unwrap();
            a1 = r1.inserted[0].1;
            b = r1.inserted[1].1;
            a2 = c.upsert(vec![rec(s("a"), "", vec![2.0])]).unwrap().inserted[0].1;
            c.delete(&[Pk::from("b")]).unwrap();
            assert_eq!(c.last_seq(), 3);
        }
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        let all = c.changes_since(0).unwrap();
        assert_eq!(
            all.iter().map(|ch| ch.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            all[0].inserted,
            vec![(Pk::from("a"), a1), (Pk::from("b"), b)]
        );
        assert_eq!(all[1].inserted, vec![(Pk::from("a"), a2)]);
        assert_eq!(all[1].removed, vec![(Pk::from("a"), a1)]);
        assert_eq!(all[2].removed, vec![(Pk::from("b"), b)]);
        assert!(all[2].inserted.is_empty());
        assert_eq!(c.changes_since(2).unwrap(), all[2..].to_vec());
        assert!(c.changes_since(3).unwrap().is_empty());
        assert!(c.changes_since(u64::MAX).unwrap().is_empty());
        // Pruning drops old entries only.
        assert_eq!(c.prune_changes(2).unwrap(), 2);
        assert_eq!(c.changes_since(0).unwrap(), all[2..].to_vec());
        assert_eq!(c.last_seq(), 3);
    }

    #[test]
    fn collections_have_separate_logs() {
        let db = Database::temporary().unwrap();
        let x = db
            .create_collection("x", CollectionConfig::default())
            .unwrap();
        let y = db
            .create_collection("y", CollectionConfig::default())
            .unwrap();
        x.insert(vec![rec(s("a"), "", vec![1.0])]).unwrap();
        y.insert(vec![rec(s("a"), "", vec![1.0])]).unwrap();
        y.insert(vec![rec(s("b"), "", vec![1.0])]).unwrap();
        assert_eq!(x.changes_since(0).unwrap().len(), 1);
        assert_eq!(y.changes_since(0).unwrap().len(), 2);
        assert_eq!(x.count().unwrap(), 1);
    }
}

mod catalog {
    use super::*;

    #[test]
    fn list_drop_and_recreate() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        for name in ["beta", "Alpha", "_x"] {
            db.create_collection(name, CollectionConfig::default())
                .unwrap();
        }
        assert_eq!(db.list_collections().unwrap(), vec!["Alpha", "_x", "beta"]);
        let beta = db.open_collection("beta").unwrap();
        beta.insert(vec![rec(s("k"), "", vec![1.0, 2.0])]).unwrap();
        assert!(db.drop_collection("beta").unwrap());
        assert!(!db.drop_collection("beta").unwrap());
        assert!(!db.has_collection("beta").unwrap());
        assert!(matches!(beta.count(), Err(Error::UnknownCollection { .. })));
        assert!(matches!(
            beta.insert(vec![rec(s("j"), "", vec![1.0])]),
            Err(Error::UnknownCollection { .. })
        ));
        assert!(matches!(
            beta.get(&[Pk::from("k")]),
            Err(Error::UnknownCollection { .. })
        ));

        let again = db
            .create_collection("beta", CollectionConfig::default())
            .unwrap();
        assert_eq!(again.count().unwrap(), 0);
        assert_eq!(again.schema().dimension, None);
        assert_eq!(again.get(&[Pk::from("k")]).unwrap(), vec![None]);
        again.insert(vec![rec(s("k"), "", vec![1.0])]).unwrap();
        // drop_old replaces the collection.
        let fresh = db
            .create_collection(
                "beta",
                CollectionConfig {
                    drop_old: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(fresh.count().unwrap(), 0);
        assert!(fresh.check_integrity().unwrap().is_ok());
        drop((db, again, fresh, beta));
        let db = open(dir.path());
        assert_eq!(db.list_collections().unwrap(), vec!["Alpha", "_x", "beta"]);
        assert_eq!(db.open_collection("beta").unwrap().count().unwrap(), 0);
    }
}

mod same_process {
    use super::*;

    #[test]
    fn opening_a_path_twice_shares_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path());
        let b = open(&dir.path().join(".").join("."));
        assert_eq!(a.path(), b.path());
        let ca = a
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        let cb = b.open_collection("c").unwrap();
        cb.insert(vec![rec(s("k"), "", vec![1.0])]).unwrap();
        assert_eq!(ca.count().unwrap(), 1);
        assert!(a.has_collection("c").unwrap());
        drop((a, b, ca, cb));
        // Fully closed: a fresh open works and sees the data.
        let again = open(dir.path());
        assert_eq!(again.open_collection("c").unwrap().count().unwrap(), 1);
        assert!(Database::temporary().unwrap().path().is_none());
    }
}

mod reopen {
    use super::*;

    #[test]
    fn concurrent_opens_of_one_path_share_one_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let dbs: Vec<Database> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Database::open(&path).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        dbs[0]
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        assert!(dbs.iter().all(|d| d.has_collection("c").unwrap()));
    }

    #[test]
    fn rapid_close_and_reopen_cycles() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            let db = open(dir.path());
            let c = match db.open_collection("c") {
                Ok(c) => c,
                Err(Error::UnknownCollection { .. }) => db
                    .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
                    .unwrap(),
                Err(e) => panic!("{e}"),
            };
            let r = c.insert(vec![rec(None, "", vec![1.0])]).unwrap();
            assert_eq!(r.inserted[0].0, Pk::Int(i + 1));
        }
    }
}

mod locking {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const HELPER_ENV: &str = "QUIVERDB_STORAGE_LOCK_HELPER";

    /// In a child process (selected by the env var): tries to open the path and reports.
    #[test]
    fn child_helper() {
        let Ok(path) = std::env::var(HELPER_ENV) else {
            return; // not the child: nothing to do
        };
        match Database::open(&path) {
            Err(Error::Locked { .. }) => println!("HELPER-RESULT: locked"),
            Err(e) => println!("HELPER-RESULT: error {e}"),
            Ok(_) => println!("HELPER-RESULT: opened"),
        }
    }

    #[test]
    fn a_second_process_gets_locked_immediately() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "locking::child_helper",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the second process hung on the lock");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("HELPER-RESULT: locked"),
            "child said: {stdout}"
        );
        drop(db);
    }
}

mod corruption {
    use super::*;

    fn garble_files(dir: &Path) -> usize {
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                n += garble_files(&p);
            } else {
                let len = std::fs::metadata(&p).unwrap().len().max(64) as usize;
                let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8 ^ 0xA5).collect();
                std::fs::write(&p, garbage).unwrap();
                n += 1;
            }
        }
        n
    }

    #[test]
    fn garbage_files_give_corrupted_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", CollectionConfig::default())
                .unwrap();
            c.insert(vec![rec(s("a"), "text", vec![1.0, 2.0])]).unwrap();
        }
        assert!(garble_files(dir.path()) > 0);
        match Database::open(dir.path()) {
            Err(Error::Corrupted { path, detail }) => {
                assert!(!detail.is_empty());
                assert_eq!(path, dir.path().canonicalize().unwrap());
            }
            other => panic!("expected Corrupted, got {other:?}"),
        }
    }

    #[test]
    fn a_foreign_file_named_db_is_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("db"),
            b"this is not a database at all, just text",
        )
        .unwrap();
        assert!(matches!(
            Database::open(dir.path()),
            Err(Error::Corrupted { .. })
        ));
    }

    #[test]
    fn truncated_files_give_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", CollectionConfig::default())
                .unwrap();
            c.insert(vec![rec(s("a"), "text", vec![1.0, 2.0])]).unwrap();
        }
        let db_file = dir.path().join("db");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&db_file)
            .unwrap();
        f.set_len(100).unwrap();
        drop(f);
        let conf = dir.path().join("conf");
        if conf.exists() {
            std::fs::write(&conf, b"xx").unwrap();
        }
        match Database::open(dir.path()) {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("expected Corrupted, got {other:?}"),
        }
    }
}

mod concurrency {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn group_commit_under_concurrent_threads() {
        let dir = tempfile::tempdir().unwrap();
        const THREADS: usize = 8;
        const PER_THREAD: usize = 15;
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
                .unwrap();
            let c = Arc::new(c);
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let c = Arc::clone(&c);
                    std::thread::spawn(move || {
                        for i in 0..PER_THREAD {
                            c.insert(vec![rec(
                                None,
                                &format!("{t}-{i}"),
                                vec![t as f32, i as f32],
                            )])
                            .unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(c.last_seq(), (THREADS * PER_THREAD) as u64);
            // Writers shared flushes: never more flushes than commits (+1 for creation).
            assert!(db.flush_count() <= (THREADS * PER_THREAD + 2) as u64);
        }
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        assert_eq!(c.count().unwrap(), THREADS * PER_THREAD);
        let mut ids: Vec<_> = c.scan().map(|r| r.unwrap().pk).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), THREADS * PER_THREAD);
        assert!(c.check_integrity().unwrap().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_writes_from_many_tasks() {
        let dir = tempfile::tempdir().unwrap();
        const TASKS: usize = 40;
        {
            let db = open(dir.path());
            let c = db
                .create_collection("c", cfg(PkKind::Int, Metric::L2))
                .unwrap();
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        let pk = Pk::Int(t as i64);
                        c.insert_async(vec![rec(pk.clone(), "x", vec![1.0, t as f32])])
                            .await
                            .unwrap();
                        c.upsert_async(vec![rec(pk.clone(), "y", vec![2.0, t as f32])])
                            .await
                            .unwrap();
                        if t % 4 == 0 {
                            c.delete_async(vec![pk]).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(c.count().unwrap(), TASKS - TASKS / 4);
        }
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        assert_eq!(c.count().unwrap(), TASKS - TASKS / 4);
        assert!(c.scan().all(|r| r.unwrap().text == "y"));
        assert!(c.check_integrity().unwrap().is_ok());
    }
}

mod model {
    //! Random insert/upsert/delete/reopen sequences checked against a `BTreeMap` model.
    use super::*;
    use std::collections::BTreeMap;

    /// xorshift64*: a fixed-seed generator, so a failure replays exactly.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    type Model = BTreeMap<Pk, (String, Vec<f32>)>;

    fn check(c: &quiverdb_storage::Collection, model: &Model) {
        assert_eq!(c.count().unwrap(), model.len());
        let stored: BTreeMap<Pk, (String, Vec<f32>)> = c
            .scan()
            .map(|r| {
                let r = r.unwrap();
                (r.pk, (r.text, r.vector))
            })
            .collect();
        assert_eq!(&stored, model);
        let rep = c.check_integrity().unwrap();
        assert!(rep.is_ok(), "{:?}", rep.problems);
    }

    #[test]
    fn random_operations_match_the_model() {
        for seed in [1u64, 7, 42] {
            let dir = tempfile::tempdir().unwrap();
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut model = Model::new();
            let mut db = open(dir.path());
            let mut c = db
                .create_collection("m", cfg(PkKind::Int, Metric::L2))
                .unwrap();
            let mut seq = 0;
            for step in 0..120 {
                let key = |rng: &mut Rng| Pk::Int(rng.below(30) as i64);
                let batch = |rng: &mut Rng| -> Vec<NewRecord> {
                    (0..1 + rng.below(4))
                        .map(|_| {
                            let v = rng.below(1000) as f32;
                            rec(key(rng), &format!("s{step}-{v}"), vec![v, 1.0])
                        })
                        .collect()
                };
                match rng.below(10) {
                    0..=3 => {
                        let b = batch(&mut rng);
                        let mut keys: Vec<_> = b.iter().map(|r| r.pk.clone().unwrap()).collect();
                        let stored_or_dup = keys.iter().any(|k| model.contains_key(k)) || {
                            keys.sort();
                            keys.windows(2).any(|w| w[0] == w[1])
                        };
                        match c.insert(b.clone()) {
                            Ok(r) => {
                                assert!(!stored_or_dup);
                                seq += 1;
                                assert_eq!(r.seq, seq);
                                for x in b {
                                    model.insert(x.pk.unwrap(), (x.text, x.vector));
                                }
                            }
                            Err(Error::DuplicatePk { .. }) => assert!(stored_or_dup),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    4..=6 => {
                        let b = batch(&mut rng);
                        c.upsert(b.clone()).unwrap();
                        seq += 1;
                        for x in b {
                            model.insert(x.pk.unwrap(), (x.text, x.vector));
                        }
                    }
                    7..=8 => {
                        let keys: Vec<_> = (0..1 + rng.below(3)).map(|_| key(&mut rng)).collect();
                        let r = c.delete(&keys).unwrap();
                        let mut removed = 0;
                        for k in &keys {
                            removed += usize::from(model.remove(k).is_some());
                        }
                        assert_eq!(r.removed.len(), removed);
                        seq += u64::from(removed > 0);
                    }
                    _ => {
                        drop((c, db));
                        db = open(dir.path());
                        c = db.open_collection("m").unwrap();
                    }
                }
                assert_eq!(c.last_seq(), seq, "seed {seed} step {step}");
                if step % 20 == 19 {
                    check(&c, &model);
                }
            }
            check(&c, &model);
            assert_eq!(c.changes_since(0).unwrap().len() as u64, seq);
        }
    }
}

mod crash {
    //! A child process writes and acknowledges batches, then gets killed; every acknowledged
    //! batch must be there after reopening.
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    const HELPER_ENV: &str = "QUIVERDB_STORAGE_CRASH_HELPER";

    /// In the child (selected by the env var): writes until killed, printing an ack per batch.
    #[test]
    fn child_writer() {
        let Ok(path) = std::env::var(HELPER_ENV) else {
            return;
        };
        let db = Database::open(&path).unwrap();
        let c = db
            .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
            .unwrap();
        for i in 0..100_000u32 {
            let r = c
                .insert(vec![
                    rec(None, &format!("{i}"), vec![i as f32]),
                    rec(None, "pair", vec![0.5]),
                ])
                .unwrap();
            println!("ACK {}", r.seq);
        }
    }

    #[test]
    fn acknowledged_batches_survive_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = 0u64;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ACK ") {
                acked = n.trim().parse().unwrap();
                if acked >= 40 {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(acked >= 40, "the child stopped early");
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        assert!(c.last_seq() >= acked);
        assert_eq!(c.count().unwrap() as u64, 2 * c.last_seq());
        assert!(c.check_integrity().unwrap().is_ok());
        // Batches are whole: each seq's pair of records is present.
        for ch in c.changes_since(0).unwrap() {
            assert_eq!(ch.inserted.len(), 2);
        }
    }
}
