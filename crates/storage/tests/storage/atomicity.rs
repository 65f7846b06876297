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
