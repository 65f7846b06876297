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
