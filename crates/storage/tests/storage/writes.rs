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
