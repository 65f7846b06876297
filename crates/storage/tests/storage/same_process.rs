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
