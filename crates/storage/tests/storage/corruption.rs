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

#[test]
fn the_marker_tells_an_emptied_database_from_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let db = Database::open(&path).unwrap();
        db.create_collection("c", CollectionConfig::default())
            .unwrap();
    }
    assert!(path.join("QUIVERDB").exists());
    // An interrupted creation (marker still "creating") opens as the database it is.
    std::fs::write(path.join("QUIVERDB"), b"quiverdb database: creating\n").unwrap();
    assert_eq!(
        Database::open(&path).unwrap().list_collections().unwrap(),
        vec!["c"]
    );
    // Emptying the log: refused, not a fresh empty database.
    std::fs::write(path.join("db"), b"").unwrap();
    assert!(matches!(
        Database::open(&path),
        Err(Error::Corrupted { .. })
    ));
    // A brand-new directory still opens, and gets its marker.
    let fresh = dir.path().join("fresh");
    Database::open(&fresh).unwrap();
    assert_eq!(
        std::fs::read(fresh.join("QUIVERDB")).unwrap(),
        b"quiverdb database: format 1\n"
    );
}
