//! Damaged files: garbage, truncated and zero-length database files, a path that is a
//! file, a database written by a newer format version (tampered as `docs/FORMAT.md`
//! describes: the `meta` tree's `format_version` record), and a read-only directory. Every
//! case gets a clear typed error — never a panic — and a failed open leaves the files as
//! they were.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quiverdb::{Database, Error, HashingEmbeddings, Pk, VectorStore};

fn store_at(dir: &Path) -> quiverdb::Result<VectorStore> {
    VectorStore::builder()
        .path(dir)
        .collection_name("files")
        .embeddings(HashingEmbeddings::new(16))
        .open()
}

/// A closed database holding a few records (and an index snapshot).
fn healthy(dir: &Path) {
    let s = store_at(dir).unwrap();
    s.add_texts(
        (0..50).map(|i| format!("record {i}")),
        None,
        Some((0..50).map(|i| Pk::from(format!("r{i}"))).collect()),
    )
    .unwrap();
    s.close().unwrap();
}

fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Storage files only (not the index snapshot, which the store may rewrite or ignore).
fn storage_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_keys()
        .filter(|p| !p.starts_with(dir.join("index")))
        .collect()
}

/// Opens through both public entry points; both must fail with a typed error that says
/// the database is damaged (or is an I/O error), and the files must not change.
fn assert_refused(dir: &Path, what: &str) -> Error {
    assert_refused_with(dir, what, true)
}

/// `same_bytes: false` where sled itself may rewrite its housekeeping files while opening
/// a readable log that QuiverDB then refuses; those cases check the data afterwards.
fn assert_refused_with(dir: &Path, what: &str, same_bytes: bool) -> Error {
    let before = files_under(dir);
    let by_db = Database::open(dir);
    let by_store = store_at(dir);
    let e = match (by_db, by_store) {
        (Err(a), Err(b)) => {
            assert_eq!(
                std::mem::discriminant(&a),
                std::mem::discriminant(&b),
                "{what}: the two entry points disagree: {a:?} vs {b:?}"
            );
            b
        }
        (a, b) => panic!("{what}: expected errors, got {a:?} and {b:?}"),
    };
    assert!(
        matches!(e, Error::Corrupted { .. } | Error::Storage(_)),
        "{what}: unexpected error variant {e:?}"
    );
    assert!(!e.to_string().is_empty());
    if same_bytes {
        let after = files_under(dir);
        let changed: Vec<&PathBuf> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        assert!(
            changed.is_empty(),
            "{what}: a failed open changed {changed:?}"
        );
    }
    e
}

#[test]
fn garbage_files_are_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    for p in storage_files(dir.path()) {
        let len = std::fs::metadata(&p).unwrap().len().max(64) as usize;
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8 ^ 0x5A).collect();
        std::fs::write(&p, garbage).unwrap();
    }
    let e = assert_refused(dir.path(), "garbage");
    assert!(matches!(e, Error::Corrupted { .. }), "{e:?}");
}

/// Truncates the log of a healthy database to `keep` bytes and opens it: `Ok(records)`
/// if it opened (with how many records it then holds), else the error.
fn open_truncated(keep: u64) -> Option<Result<(usize, bool), Error>> {
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    let db = dir.path().join("db");
    if keep >= std::fs::metadata(&db).unwrap().len() {
        return None;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(keep)
        .unwrap();
    Some(match Database::open(dir.path()) {
        Ok(_) => {
            let s = store_at(dir.path()).unwrap();
            Ok((s.count().unwrap(), s.check_integrity().unwrap().is_ok()))
        }
        Err(e) => Err(e),
    })
}

/// A log cut anywhere is refused, or opens with everything (a cut past the last byte sled
/// needs): the write-ahead log's header records the last transaction checkpointed into
/// sled's log, so an older prefix that sled would happily recover is caught.
#[test]
fn truncated_database_file_is_corrupted() {
    let mut keeps = vec![7u64, 100, 4096];
    keeps.extend((1..40).map(|i| i * 3_001));
    for keep in keeps {
        match open_truncated(keep) {
            None => {}
            Some(Ok((n, ok))) => {
                assert_eq!(n, 50, "{keep}: opened an older database");
                assert!(ok, "{keep}: opened with integrity problems");
            }
            Some(Err(e)) => assert!(matches!(e, Error::Corrupted { .. }), "{keep}: {e:?}"),
        }
    }
}

/// An emptied log, or every file of the database emptied, must not open as a fresh empty
/// database (every record silently gone): the `QUIVERDB` marker says a database was there.
#[test]
fn an_emptied_database_is_corrupted() {
    match open_truncated(0) {
        Some(Ok((n, _))) => panic!("log truncated to 0 bytes opened with {n} records"),
        Some(Err(e)) => assert!(matches!(e, Error::Corrupted { .. }), "{e:?}"),
        None => {}
    }
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    for p in storage_files(dir.path()) {
        std::fs::write(&p, b"").unwrap();
    }
    assert_refused(dir.path(), "zero-length files");
}

/// A log cut after its first few KiB, which sled opens as the prefix it can read (here: no
/// collection), is refused: it lost transactions the last checkpoint put there.
#[test]
fn a_truncated_log_is_corrupted() {
    match open_truncated(4096) {
        Some(Ok((n, _))) => panic!("log truncated to 4096 bytes opened with {n} records"),
        Some(Err(e)) => assert!(matches!(e, Error::Corrupted { .. }), "{e:?}"),
        None => {}
    }
}

#[test]
fn foreign_and_garbled_files_are_corrupted() {
    // A zero-length conf file next to a healthy log.
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    std::fs::write(dir.path().join("conf"), b"").unwrap();
    match Database::open(dir.path()) {
        // sled may rewrite a missing configuration; the data must then be all there.
        Ok(_) => assert_eq!(store_at(dir.path()).unwrap().count().unwrap(), 50),
        Err(e) => assert!(matches!(e, Error::Corrupted { .. }), "{e:?}"),
    }

    // A directory with only a foreign file named like sled's log.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), b"not a database, just some text\n").unwrap();
    assert_refused_with(dir.path(), "foreign db file", false);

    // A conf file of garbage next to a healthy log.
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    std::fs::write(dir.path().join("conf"), b"\xff\xfe garbage").unwrap();
    assert_refused(dir.path(), "garbage conf");
}

#[test]
fn a_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"hello").unwrap();
    let e = Database::open(&file).unwrap_err();
    assert!(
        matches!(e, Error::Storage(_) | Error::Corrupted { .. }),
        "{e:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    healthy(dir.path());
    {
        // docs/FORMAT.md: tree `meta`, key `format_version`, value version byte + u64 BE.
        let db = common::sled_open_released(dir.path());
        let meta = db.open_tree("meta").unwrap();
        let current = meta
            .get(b"format_version")
            .unwrap()
            .expect("format_version");
        assert_eq!(
            &current[..],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1],
            "FORMAT.md is stale"
        );
        meta.insert(b"format_version", &[1u8, 0, 0, 0, 0, 0, 0, 0, 2][..])
            .unwrap();
        db.flush().unwrap();
    }
    let wal_before = std::fs::read(dir.path().join("wal")).expect("a write-ahead log");
    let e = assert_refused_with(dir.path(), "newer format", false);
    // sled rewrites its own files while opening, but the write-ahead log (not replayed,
    // not checkpointed for a refused format) is untouched.
    assert!(
        std::fs::read(dir.path().join("wal")).unwrap() == wal_before,
        "a refused open changed the write-ahead log"
    );
    match &e {
        Error::Corrupted { detail, .. } => {
            assert!(
                detail.contains('2') && detail.contains("version"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Putting the version back makes it open again with everything in place: nothing was
    // damaged by the refused opens.
    {
        let db = common::sled_open_released(dir.path());
        db.open_tree("meta")
            .unwrap()
            .insert(b"format_version", &[1u8, 0, 0, 0, 0, 0, 0, 0, 1][..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = store_at(dir.path()).unwrap();
    assert_eq!(s.count().unwrap(), 50);
    assert!(s.check_integrity().unwrap().is_ok());
}

#[test]
fn a_read_only_directory_gives_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    healthy(&db_dir);
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let restore =
        || std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Root ignores permissions: find out by trying, and skip if the write works.
    let probe = db_dir.join("probe");
    if std::fs::write(&probe, b"x").is_ok() {
        std::fs::remove_file(&probe).unwrap();
        restore();
        eprintln!("skipped: permissions are not enforced for this user (root?)");
        return;
    }
    // A fresh database in a read-only directory cannot be created.
    let ro_parent = dir.path().join("ro");
    std::fs::create_dir(&ro_parent).unwrap();
    std::fs::set_permissions(&ro_parent, std::fs::Permissions::from_mode(0o500)).unwrap();
    let fresh = Database::open(ro_parent.join("new"));
    assert!(
        matches!(fresh, Err(Error::Storage(_) | Error::Corrupted { .. })),
        "{fresh:?}"
    );
    // The existing one either opens (reads work) or refuses with a typed error.
    match store_at(&db_dir) {
        Ok(s) => assert_eq!(s.count().unwrap(), 50),
        Err(e) => assert!(
            matches!(e, Error::Storage(_) | Error::Corrupted { .. }),
            "{e:?}"
        ),
    }
    restore();
    std::fs::set_permissions(&ro_parent, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Opening a directory whose `db` file is not a QuiverDB database is refused before sled
/// opens (and would rewrite) it: the refused open changes nothing.
#[test]
fn a_refused_foreign_file_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), b"not a database, just some text\n").unwrap();
    assert_refused(dir.path(), "foreign db file");
}
