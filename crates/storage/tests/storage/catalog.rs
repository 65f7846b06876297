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
