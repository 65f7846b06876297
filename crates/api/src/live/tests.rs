use super::*;
use quiverdb_types::{Metadata, Pk};

fn row(id: u64) -> CommittedRow {
    CommittedRow {
        row: RowId(id),
        data: Arc::new(RowData {
            pk: Pk::Int(id as i64),
            text: String::new(),
            metadata: Metadata::new(),
        }),
        vector: vec![0.0],
    }
}

/// Inserts one record into storage and returns the batch its writer would apply.
fn commit_one(coll: &quiverdb_storage::Collection, key: &str, vector: Vec<f32>) -> CommittedBatch {
    let rec = quiverdb_storage::NewRecord {
        pk: Some(Pk::Str(key.to_owned())),
        text: String::new(),
        metadata: Metadata::new(),
        vector: vector.clone(),
    };
    let receipt = coll.insert(vec![rec]).unwrap();
    let (pk, row) = receipt.inserted[0].clone();
    CommittedBatch {
        seq: receipt.seq,
        inserted: vec![CommittedRow {
            row,
            data: Arc::new(RowData {
                pk,
                text: String::new(),
                metadata: Metadata::new(),
            }),
            vector,
        }],
        removed: vec![],
    }
}

/// Collection `c` in a new database at `path` (the collection keeps its database open).
fn new_collection(path: &std::path::Path) -> quiverdb_storage::Collection {
    quiverdb_storage::Database::open(path)
        .unwrap()
        .create_collection("c", quiverdb_storage::CollectionConfig::default())
        .unwrap()
}

/// Collection `c` in a new temporary database.
fn new_temporary_collection() -> quiverdb_storage::Collection {
    quiverdb_storage::Database::temporary()
        .unwrap()
        .create_collection("c", quiverdb_storage::CollectionConfig::default())
        .unwrap()
}

fn one_thread_pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    )
}

/// Loads `coll` with a snapshot threshold of 10 rows, applies 12 single-row batches (each
/// followed by the upkeep check), then waits for the background job to finish and `done`
/// to hold (10 s at most).
fn twelve_rows_past_a_threshold_of_ten(
    coll: &quiverdb_storage::Collection,
    pool: &Arc<rayon::ThreadPool>,
    snapshot_dir: Option<std::path::PathBuf>,
    done: impl Fn() -> bool,
) -> Arc<LiveCollection> {
    let mut live = LiveCollection::load(coll.clone(), pool.clone(), snapshot_dir).unwrap();
    live.snapshot_every = 10;
    let live = Arc::new(live);
    for i in 0..12 {
        live.apply(commit_one(coll, &format!("k{i}"), vec![i as f32, 1.0]))
            .unwrap();
        live.maybe_snapshot();
    }
    // The job runs on the pool; wait for it.
    pool.install(|| {});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live.snapshot_running.load(Ordering::SeqCst) || !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "the background snapshot or prune did not happen"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    live
}

#[test]
fn background_snapshot_after_enough_changes_and_reload_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let coll = new_collection(&dir.path().join("db"));
    let pool = one_thread_pool();
    let snap = dir.path().join("snap");
    let _live = twelve_rows_past_a_threshold_of_ten(&coll, &pool, Some(snap.clone()), || {
        snap.join("MANIFEST").exists()
    });
    let (index, seq) = load_snapshot(&snap).unwrap().unwrap();
    assert!(
        seq >= 10,
        "snapshot covers the batches applied before it (seq {seq})"
    );
    assert!(index.len() >= 10);
    // A reload restores from it and catches up the rest.
    let again = LiveCollection::load(coll, pool, Some(snap)).unwrap();
    assert_eq!(again.index().unwrap().len(), 12);
}

#[test]
fn an_unchanged_index_is_not_snapshotted_again() {
    let dir = tempfile::tempdir().unwrap();
    let coll = new_collection(&dir.path().join("db"));
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().unwrap());
    let snap = dir.path().join("snap");
    let manifest = snap.join("MANIFEST");
    let live = LiveCollection::load(coll.clone(), pool.clone(), Some(snap.clone())).unwrap();
    live.apply(commit_one(&coll, "a", vec![1.0, 0.0])).unwrap();
    live.save_snapshot().unwrap();
    assert!(manifest.exists());
    // Nothing changed since: no rewrite (the removed manifest stays removed).
    std::fs::remove_file(&manifest).unwrap();
    live.save_snapshot().unwrap();
    assert!(!manifest.exists(), "an up-to-date snapshot was rewritten");
    live.apply(commit_one(&coll, "b", vec![0.0, 1.0])).unwrap();
    live.save_snapshot().unwrap();
    assert!(manifest.exists(), "a change must be snapshotted");
    // Restored from that snapshot, the index is current: closing writes nothing.
    let again = LiveCollection::load(coll, pool, Some(snap)).unwrap();
    assert_eq!(again.index().unwrap().len(), 2);
    std::fs::remove_file(&manifest).unwrap();
    again.save_snapshot().unwrap();
    assert!(!manifest.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_queued_while_the_applier_is_held_is_applied_on_release() {
    let coll = new_temporary_collection();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let live = Arc::new(LiveCollection::load(coll.clone(), pool.clone(), None).unwrap());
    let cpu = CpuPool::new(pool);
    let batch = commit_one(&coll, "k", vec![1.0, 2.0]);
    // Someone else (a background snapshot, say) holds the applier when the writer
    // tries to drain: the writer's own drain gives up and it waits.
    let held = live.lock_applier();
    let writer = {
        let (live, cpu) = (live.clone(), cpu.clone());
        tokio::spawn(async move { live.apply_async(batch, &cpu).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!writer.is_finished(), "applied while the lock was held");
    drop(held);
    tokio::time::timeout(std::time::Duration::from_secs(10), writer)
        .await
        .expect("the batch was forgotten: releasing the lock must drain it")
        .unwrap()
        .unwrap();
    assert_eq!(live.rows().len(), 1);
}

/// Deletes one key from storage and returns the batch its writer would apply.
fn delete_one(coll: &quiverdb_storage::Collection, key: &str) -> CommittedBatch {
    let receipt = coll.delete(&[Pk::Str(key.to_owned())]).unwrap();
    CommittedBatch {
        seq: receipt.seq,
        inserted: vec![],
        removed: receipt.removed.iter().map(|(_, r)| *r).collect(),
    }
}

/// The keys a search over the whole collection returns, sorted.
fn searched_keys(live: &LiveCollection) -> Vec<String> {
    let mut keys: Vec<String> = live
        .search(&[0.5, 0.5], 1000, Some(1000), None)
        .unwrap()
        .into_iter()
        .map(|(d, _)| d.pk.to_string())
        .collect();
    keys.sort();
    keys
}

/// Writes `k0..k{n}` through `live` and deletes every third key; returns the keys left.
fn write_and_delete(
    live: &LiveCollection,
    coll: &quiverdb_storage::Collection,
    n: usize,
) -> Vec<String> {
    let mut left = Vec::new();
    for i in 0..n {
        live.apply(commit_one(coll, &format!("k{i}"), vec![i as f32, 1.0]))
            .unwrap();
    }
    for i in 0..n {
        if i % 3 == 0 {
            live.apply(delete_one(coll, &format!("k{i}"))).unwrap();
        } else {
            left.push(Pk::Str(format!("k{i}")).to_string());
        }
    }
    left.sort();
    left
}

fn pruned(r: quiverdb_storage::Result<Vec<quiverdb_storage::Change>>) -> bool {
    matches!(r, Err(quiverdb_storage::Error::ChangesPruned { .. }))
}

#[test]
fn a_snapshot_prunes_the_change_log_it_covers_and_reopen_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().unwrap());
    let (before, left) = {
        let coll = new_collection(&dir.path().join("db"));
        let live = LiveCollection::load(coll.clone(), pool.clone(), Some(snap.clone())).unwrap();
        let left = write_and_delete(&live, &coll, 30);
        let seq = coll.last_seq();
        assert_eq!(coll.check_integrity().unwrap().changes as u64, seq);
        live.save_snapshot().unwrap();
        // Every entry up to the snapshot is gone, and asking for them is an error.
        assert_eq!(coll.changes_pruned_upto(), seq);
        assert_eq!(coll.check_integrity().unwrap().changes, 0);
        assert!(pruned(coll.changes_since(0)));
        // Later batches are logged (and pruned by the next snapshot).
        live.apply(commit_one(&coll, "late", vec![0.5, 0.5]))
            .unwrap();
        assert_eq!(coll.changes_since(seq).unwrap().len(), 1);
        assert_eq!(searched_keys(&live), {
            let mut l = left.clone();
            l.push(Pk::Str("late".into()).to_string());
            l.sort();
            l
        });
        (searched_keys(&live), left)
    };
    assert_eq!(before.len(), left.len() + 1);
    let db = quiverdb_storage::Database::open(dir.path().join("db")).unwrap();
    let coll = db.open_collection("c").unwrap();
    assert!(coll.check_integrity().unwrap().is_ok());
    // Restored from the snapshot plus the one batch logged after it.
    let again = LiveCollection::load(coll.clone(), pool, Some(snap)).unwrap();
    assert_ne!(again.snapshot_seq.load(Ordering::SeqCst), NO_SNAPSHOT);
    assert_eq!(searched_keys(&again), before);
}

#[test]
fn a_prune_keeps_what_another_live_handle_has_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let coll = new_collection(&dir.path().join("db"));
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().unwrap());
    let snap = dir.path().join("snap");
    let a = LiveCollection::load(coll.clone(), pool.clone(), Some(snap.clone())).unwrap();
    a.apply(commit_one(&coll, "first", vec![1.0, 1.0])).unwrap();
    // `b` is loaded now and then sits idle while `a` writes.
    let b = LiveCollection::load(coll.clone(), pool.clone(), Some(snap)).unwrap();
    let b_seq = b.applied_seq.load(Ordering::SeqCst);
    let mut left = write_and_delete(&a, &coll, 30);
    left.push(Pk::Str("first".into()).to_string());
    left.sort();
    a.save_snapshot().unwrap();
    assert_eq!(
        coll.changes_pruned_upto(),
        b_seq,
        "pruned past an idle handle"
    );
    assert!(coll.changes_since(b_seq).unwrap().len() > 30);
    // `b` catches up from the log: every row, none of the deleted.
    assert_eq!(searched_keys(&b), left);
    assert_eq!(searched_keys(&a), left);
    // Now that `b` is current, the next snapshot prunes everything.
    a.apply(commit_one(&coll, "more", vec![1.0, 0.0])).unwrap();
    b.catch_up_wait().unwrap();
    a.save_snapshot().unwrap();
    assert_eq!(coll.changes_pruned_upto(), coll.last_seq());
    assert_eq!(coll.check_integrity().unwrap().changes, 0);
}

#[test]
fn a_handle_whose_changes_were_pruned_rebuilds_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let coll = new_collection(&dir.path().join("db"));
    let pool = Arc::new(rayon::ThreadPoolBuilder::new().build().unwrap());
    let a = LiveCollection::load(coll.clone(), pool.clone(), Some(dir.path().join("a"))).unwrap();
    a.apply(commit_one(&coll, "first", vec![1.0, 1.0])).unwrap();
    let b_dir = dir.path().join("b");
    let b = LiveCollection::load(coll.clone(), pool.clone(), Some(b_dir.clone())).unwrap();
    b.save_snapshot().unwrap(); // an old snapshot, for the load path below
    let b_seq = b.applied_seq.load(Ordering::SeqCst);
    // A reader the prune does not know about (as if its pin were lost): the log goes.
    b.pin.advance(u64::MAX);
    let mut left = write_and_delete(&a, &coll, 30);
    left.push(Pk::Str("first".into()).to_string());
    left.sort();
    a.save_snapshot().unwrap();
    assert!(coll.changes_pruned_upto() > b_seq);
    assert!(pruned(coll.changes_since(b_seq)));
    // Catch-up finds the gap and rebuilds instead of failing or missing changes.
    assert_eq!(searched_keys(&b), left);
    assert_eq!(b.rows().len(), left.len());
    assert_eq!(b.index().unwrap().len(), left.len());
    assert_eq!(b.applied_seq.load(Ordering::SeqCst), coll.last_seq());
    // And it keeps applying later changes, from its writers and from the log.
    b.apply(delete_one(&coll, "k1")).unwrap();
    a.apply(commit_one(&coll, "late", vec![0.0, 1.0])).unwrap();
    left.retain(|k| k != &Pk::Str("k1".into()).to_string());
    left.push(Pk::Str("late".into()).to_string());
    left.sort();
    assert_eq!(searched_keys(&b), left);
    assert_eq!(searched_keys(&a), left);
    // Loading from b's old snapshot, older than the pruned log: rebuilt from the rows.
    drop(b);
    let c = LiveCollection::load(coll.clone(), pool, Some(b_dir)).unwrap();
    assert_eq!(c.snapshot_seq.load(Ordering::SeqCst), NO_SNAPSHOT);
    assert_eq!(searched_keys(&c), left);
}

#[test]
fn without_a_snapshot_dir_upkeep_prunes_what_every_handle_applied() {
    let coll = new_temporary_collection();
    let pool = one_thread_pool();
    let live = twelve_rows_past_a_threshold_of_ten(&coll, &pool, None, || {
        coll.changes_pruned_upto() >= 10
    });
    let other = LiveCollection::load(coll.clone(), pool, None).unwrap();
    assert_eq!(other.rows().len(), 12);
    assert_eq!(searched_keys(&other), searched_keys(&live));
}

#[test]
fn merge_keeps_the_net_effect() {
    let b = |seq, ins: &[u64], rem: &[u64]| CommittedBatch {
        seq,
        inserted: ins.iter().map(|i| row(*i)).collect(),
        removed: rem.iter().map(|r| RowId(*r)).collect(),
    };
    // Row 10 inserted then removed (an upsert's old version): gone without a trace;
    // row 1 existed before and is removed; rows 11 and 12 are new.
    let (ins, mut rem) = merge(vec![b(5, &[10, 11], &[1]), b(6, &[12], &[10])]);
    rem.sort();
    let ins: Vec<u64> = ins.iter().map(|r| r.row.0).collect();
    assert_eq!(ins, vec![11, 12]);
    assert_eq!(rem, vec![RowId(1)]);
}

/// Snapshots are written while batches are applied (no applier lock is held for them).
/// Every one of them must hold each batch up to its tag, and may hold parts of later ones:
/// a row inserted by a batch at or below the tag is in it unless some batch removed it
/// (a later removal may already be in), and a row removed at or below the tag is not (row
/// ids are never reused). A load takes the last one (no rebuild) and answers exactly as
/// storage says.
#[test]
fn snapshots_written_during_writes_cover_their_tag_and_load_without_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let coll = new_collection(&dir.path().join("db"));
    let pool = one_thread_pool();
    let live =
        Arc::new(LiveCollection::load(coll.clone(), pool.clone(), Some(snap.clone())).unwrap());
    let done = AtomicBool::new(false);
    // (seq, row, inserted?) of every batch, in order.
    let mut ops: Vec<(u64, RowId, bool)> = Vec::new();
    let taken = std::thread::scope(|scope| {
        let snapshots = scope.spawn(|| {
            let mut taken = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let before = live.snapshot_seq.load(Ordering::SeqCst);
                live.save_snapshot().unwrap();
                if live.snapshot_seq.load(Ordering::SeqCst) != before {
                    taken.push(load_snapshot(&snap).unwrap().unwrap());
                }
            }
            taken
        });
        for i in 0..400 {
            let b = commit_one(&coll, &format!("k{i}"), vec![i as f32, 1.0]);
            ops.push((b.seq, b.inserted[0].row, true));
            live.apply(b).unwrap();
            if i % 4 == 3 {
                let b = delete_one(&coll, &format!("k{}", i - 2));
                ops.push((b.seq, b.removed[0], false));
                live.apply(b).unwrap();
            }
        }
        done.store(true, Ordering::SeqCst);
        snapshots.join().unwrap()
    });
    assert!(
        taken.len() >= 2,
        "only {} snapshots were written during the writes",
        taken.len()
    );
    for (index, tag) in &taken {
        for &(seq, row, inserted) in ops.iter().filter(|o| o.0 <= *tag) {
            let ever_removed = ops.iter().any(|o| o.1 == row && !o.2);
            if inserted && !ever_removed {
                assert!(
                    index.contains(row),
                    "snapshot {tag} lacks row {row:?} of batch {seq}"
                );
            }
            if !inserted {
                assert!(
                    !index.contains(row),
                    "snapshot {tag} still has row {row:?} removed by batch {seq}"
                );
            }
        }
    }
    let expected: Vec<String> = {
        let mut k: Vec<String> = (0..400)
            .filter(|i| i % 4 != 1)
            .map(|i| Pk::Str(format!("k{i}")).to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(searched_keys(&live), expected);
    let on_disk = live.snapshot_seq.load(Ordering::SeqCst);
    drop(live);
    let again = LiveCollection::load(coll, pool, Some(snap)).unwrap();
    assert_eq!(
        again.snapshot_seq.load(Ordering::SeqCst),
        on_disk,
        "the load rebuilt instead of using the snapshot"
    );
    assert_eq!(searched_keys(&again), expected);
}
