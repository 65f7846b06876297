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
