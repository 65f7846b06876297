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
