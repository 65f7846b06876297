//! The change log through the public store: snapshots prune it, reopen still answers the
//! same, and several stores on one path in one process share the collection and converge.

mod common;

use std::path::Path;

use quiverdb::{Document, HashingEmbeddings, Pk, SearchOptions, VectorStore};

fn open(path: &Path) -> VectorStore {
    VectorStore::builder()
        .path(path)
        .embeddings(HashingEmbeddings::new(32))
        .open()
        .unwrap()
}

fn add(s: &VectorStore, from: usize, to: usize) {
    let docs = (from..to)
        .map(|i| Document::new(format!("document {i} about topic {}", i % 5)))
        .collect();
    let ids = (from..to).map(|i| Pk::from(format!("d{i}"))).collect();
    s.add_documents(docs, Some(ids)).unwrap();
}

/// Ids and scores of a few searches over the whole collection.
fn answers(s: &VectorStore) -> Vec<Vec<(String, String)>> {
    ["document 3 about topic 3", "topic 1", "document 17"]
        .iter()
        .map(|q| {
            let mut hits: Vec<(String, String)> = s
                .similarity_search_with_score(q, &SearchOptions::k(100))
                .unwrap()
                .into_iter()
                .map(|(d, score)| (d.id.unwrap_or_default(), format!("{score:.5}")))
                .collect();
            hits.sort();
            hits
        })
        .collect()
}

fn ids(s: &VectorStore) -> Vec<String> {
    let mut ids: Vec<String> = answers(s)[0].iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids
}

/// Change-log entries on disk, counted with sled directly (every store must be dropped).
fn change_log_entries(path: &Path) -> usize {
    let db = common::sled_open_released(path);
    db.open_tree("changes").unwrap().len()
}

/// Writes 40 documents in 8 batches, deletes 6, replaces 2; returns the ids left.
fn write_some(s: &VectorStore) -> Vec<String> {
    for b in 0..8 {
        add(s, b * 5, b * 5 + 5);
    }
    let gone: Vec<Pk> = (0..40)
        .step_by(7)
        .map(|i| Pk::from(format!("d{i}")))
        .collect();
    assert_eq!(s.delete(Some(gone), None).unwrap(), 6);
    s.upsert(
        None,
        vec![
            Document::new("replaced one").with_id("d1"),
            Document::new("replaced two").with_id("d2"),
        ],
    )
    .unwrap();
    let mut left: Vec<String> = (0..40)
        .filter(|i| i % 7 != 0)
        .map(|i| format!("d{i}"))
        .collect();
    left.sort();
    left
}

#[test]
fn closing_prunes_the_change_log_and_reopen_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let before = {
        let s = open(&path);
        let left = write_some(&s);
        assert_eq!(ids(&s), left);
        let before = answers(&s);
        s.close().unwrap(); // writes the index snapshot, then prunes what it covers
        before
    };
    assert_eq!(
        change_log_entries(&path),
        0,
        "the snapshot covers every batch"
    );
    let s = open(&path);
    assert_eq!(answers(&s), before);
    assert!(s.check_integrity().unwrap().is_ok());
    // Writing after the prune works and is logged again until the next snapshot.
    add(&s, 100, 103);
    assert_eq!(s.count().unwrap(), 34 + 3);
    drop(s);
    assert_eq!(change_log_entries(&path), 1);
    let s = open(&path);
    assert_eq!(s.count().unwrap(), 37);
}

/// Two stores on one path in one process share the database and the collection: each
/// sees the other's writes. One closes (snapshot + prune) while the other has not applied
/// its writes: the other still converges, since the prune keeps what it has not applied.
#[test]
fn two_stores_on_one_path_see_each_other_and_a_lagging_one_converges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer = open(&path);
    add(&writer, 1000, 1001);
    let reader = open(&path); // loads the collection now, then stays idle
    let mut left = write_some(&writer);
    left.push("d1000".to_owned());
    left.sort();
    writer.close().unwrap();
    drop(writer);
    assert_eq!(ids(&reader), left, "the lagging store misses or keeps rows");
    assert_eq!(reader.count().unwrap(), left.len());
    // Writes through the reader are seen by a third store, and reopen agrees.
    add(&reader, 2000, 2002);
    let third = open(&path);
    assert_eq!(third.count().unwrap(), left.len() + 2);
    let expected = answers(&third);
    assert_eq!(answers(&reader), expected);
    reader.close().unwrap();
    third.close().unwrap();
    drop((reader, third));
    assert_eq!(change_log_entries(&path), 0);
    let again = open(&path);
    assert_eq!(answers(&again), expected);
    assert!(again.check_integrity().unwrap().is_ok());
}
