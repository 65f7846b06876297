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
    assert_eq!(c.changes_since(2).unwrap(), all[2..].to_vec());
    assert_eq!(c.last_seq(), 3);
}

/// Three batches, committed in `dir` (or a temporary database).
fn three_batches(db: &Database) -> quiverdb_storage::Collection {
    let c = db
        .create_collection("c", CollectionConfig::default())
        .unwrap();
    c.insert(vec![rec(s("a"), "", vec![1.0]), rec(s("b"), "", vec![1.0])])
        .unwrap();
    c.upsert(vec![rec(s("a"), "", vec![2.0])]).unwrap();
    c.delete(&[Pk::from("b")]).unwrap();
    c
}

fn pruned(r: Result<Vec<quiverdb_storage::Change>, Error>) -> Option<(u64, u64)> {
    match r {
        Err(Error::ChangesPruned {
            requested,
            pruned_upto,
        }) => Some((requested, pruned_upto)),
        _ => None,
    }
}

#[test]
fn changes_before_the_watermark_are_a_typed_error_not_a_shorter_list() {
    let db = Database::temporary().unwrap();
    let c = three_batches(&db);
    assert_eq!(c.changes_pruned_upto(), 0);
    assert_eq!(c.prune_changes(2).unwrap(), 2);
    assert_eq!(c.changes_pruned_upto(), 2);
    assert_eq!(pruned(c.changes_since(0)), Some((0, 2)));
    assert_eq!(pruned(c.changes_since(1)), Some((1, 2)));
    let after: Vec<u64> = c
        .changes_since(2)
        .unwrap()
        .iter()
        .map(|ch| ch.seq)
        .collect();
    assert_eq!(after, vec![3]);
    // Later batches are logged as before; the watermark does not move by itself.
    c.insert(vec![rec(s("c"), "", vec![1.0])]).unwrap();
    let after: Vec<u64> = c
        .changes_since(2)
        .unwrap()
        .iter()
        .map(|ch| ch.seq)
        .collect();
    assert_eq!(after, vec![3, 4]);
    // The watermark never goes down, and never passes the last batch.
    assert_eq!(c.prune_changes(1).unwrap(), 0);
    assert_eq!(c.changes_pruned_upto(), 2);
    assert_eq!(c.prune_changes(u64::MAX).unwrap(), 2);
    assert_eq!(c.changes_pruned_upto(), 4);
    assert!(c.changes_since(4).unwrap().is_empty());
    assert!(c.check_integrity().unwrap().is_ok());
    let rep = c.check_integrity().unwrap();
    assert_eq!(rep.changes, 0);
}

#[test]
fn the_watermark_survives_reopen_and_a_drop_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        let c = three_batches(&db);
        assert_eq!(c.prune_changes(2).unwrap(), 2);
    }
    {
        let db = open(dir.path());
        let c = db.open_collection("c").unwrap();
        assert_eq!(c.changes_pruned_upto(), 2);
        assert_eq!(pruned(c.changes_since(1)), Some((1, 2)));
        assert_eq!(c.changes_since(2).unwrap().len(), 1);
        assert!(c.check_integrity().unwrap().is_ok());
        // A collection created under the same name after a drop starts with a full log.
        db.drop_collection("c").unwrap();
        let c = three_batches(&db);
        assert_eq!(c.changes_pruned_upto(), 0);
        assert_eq!(c.changes_since(0).unwrap().len(), 3);
    }
    let db = open(dir.path());
    let c = db.open_collection("c").unwrap();
    assert_eq!(c.changes_pruned_upto(), 0);
    assert_eq!(c.changes_since(0).unwrap().len(), 3);
}

/// A database written before pruning existed has no watermark record: it opens with
/// watermark 0 and a complete log, as before.
#[test]
fn a_database_without_a_watermark_reads_its_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(dir.path());
        three_batches(&db);
    }
    // Only the storage's own files and no `changes_pruned/` key: what an older build wrote.
    let db = open(dir.path());
    let c = db.open_collection("c").unwrap();
    assert_eq!(c.changes_pruned_upto(), 0);
    let seqs: Vec<u64> = c
        .changes_since(0)
        .unwrap()
        .iter()
        .map(|ch| ch.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(c.check_integrity().unwrap().is_ok());
}

#[test]
fn a_prune_never_passes_a_live_pin() {
    let db = Database::temporary().unwrap();
    let c = three_batches(&db);
    let slow = c.pin_changes(1);
    let fast = c.pin_changes(3);
    assert_eq!(c.prune_changes(3).unwrap(), 1);
    assert_eq!(c.changes_pruned_upto(), 1);
    // The slow reader still gets everything after its position.
    assert_eq!(c.changes_since(slow.position()).unwrap().len(), 2);
    slow.advance(2);
    slow.advance(0); // positions never go back
    assert_eq!(slow.position(), 2);
    assert_eq!(c.prune_changes(3).unwrap(), 1);
    assert_eq!(c.changes_pruned_upto(), 2);
    drop(slow);
    assert_eq!(c.prune_changes(3).unwrap(), 1);
    assert_eq!(c.changes_pruned_upto(), 3);
    assert_eq!(fast.position(), 3);
}

/// Readers racing a prune either get the whole tail after their position or the typed
/// error, never a list with a hole.
#[test]
fn readers_racing_prunes_never_see_a_hole() {
    let db = Database::temporary().unwrap();
    let c = db
        .create_collection("c", CollectionConfig::default())
        .unwrap();
    for i in 0..200 {
        c.insert(vec![rec(s(&format!("k{i}")), "", vec![1.0])])
            .unwrap();
    }
    std::thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            for upto in (0..=200).step_by(5) {
                c.prune_changes(upto).unwrap();
            }
        });
        for from in (0..200).cycle().take(2000) {
            match c.changes_since(from) {
                Ok(list) => {
                    let seqs: Vec<u64> = list.iter().map(|ch| ch.seq).collect();
                    assert_eq!(seqs, ((from + 1)..=200).collect::<Vec<_>>(), "from {from}");
                }
                Err(Error::ChangesPruned { requested, .. }) => assert_eq!(requested, from),
                Err(e) => panic!("{e}"),
            }
        }
        pruner.join().unwrap();
    });
    assert_eq!(c.changes_pruned_upto(), 200);
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
