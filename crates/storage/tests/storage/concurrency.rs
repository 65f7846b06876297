use super::*;
use std::sync::Arc;

#[test]
fn group_commit_under_concurrent_threads() {
    let dir = tempfile::tempdir().unwrap();
    const THREADS: usize = 8;
    const PER_THREAD: usize = 15;
    {
        let db = open(dir.path());
        let c = db
            .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
            .unwrap();
        let c = Arc::new(c);
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        c.insert(vec![rec(
                            None,
                            &format!("{t}-{i}"),
                            vec![t as f32, i as f32],
                        )])
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.last_seq(), (THREADS * PER_THREAD) as u64);
        // Writers shared syncs: never more than one per write.
        assert!(db.log_sync_count() <= (THREADS * PER_THREAD) as u64);
    }
    let db = open(dir.path());
    let c = db.open_collection("c").unwrap();
    assert_eq!(c.count().unwrap(), THREADS * PER_THREAD);
    let mut ids: Vec<_> = c.scan().map(|r| r.unwrap().pk).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), THREADS * PER_THREAD);
    assert!(c.check_integrity().unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_writes_from_many_tasks() {
    let dir = tempfile::tempdir().unwrap();
    const TASKS: usize = 40;
    {
        let db = open(dir.path());
        let c = db
            .create_collection("c", cfg(PkKind::Int, Metric::L2))
            .unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let c = c.clone();
                tokio::spawn(async move {
                    let pk = Pk::Int(t as i64);
                    c.insert_async(vec![rec(pk.clone(), "x", vec![1.0, t as f32])])
                        .await
                        .unwrap();
                    c.upsert_async(vec![rec(pk.clone(), "y", vec![2.0, t as f32])])
                        .await
                        .unwrap();
                    if t % 4 == 0 {
                        c.delete_async(vec![pk]).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(c.count().unwrap(), TASKS - TASKS / 4);
    }
    let db = open(dir.path());
    let c = db.open_collection("c").unwrap();
    assert_eq!(c.count().unwrap(), TASKS - TASKS / 4);
    assert!(c.scan().all(|r| r.unwrap().text == "y"));
    assert!(c.check_integrity().unwrap().is_ok());
}

/// Async writers never commit on the executor: on a single-threaded runtime, 200 tasks each
/// queue one batch while the flusher thread commits, so their batches are combined into a
/// few commits made durable by a few syncs of the log — and every one is acknowledged.
/// (Committing inline, each task's commit blocked the runtime thread: 200 commits.)
#[test]
fn concurrent_async_writes_share_commits_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    const TASKS: usize = 200;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    {
        let db = open(dir.path());
        let c = db
            .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
            .unwrap();
        let (syncs_before, commits_before) = (db.log_sync_count(), db.commit_count());
        let seqs = rt.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        c.insert_async(vec![rec(None, &format!("{t}"), vec![t as f32, 1.0])])
                            .await
                            .unwrap()
                            .seq
                    })
                })
                .collect();
            let mut seqs = Vec::new();
            for t in tasks {
                seqs.push(t.await.unwrap());
            }
            seqs
        });
        let syncs = db.log_sync_count() - syncs_before;
        let commits = db.commit_count() - commits_before;
        assert!(
            commits < (TASKS / 4) as u64,
            "{commits} transactions for {TASKS} concurrent async writes"
        );
        assert!(
            syncs < (TASKS / 4) as u64,
            "{syncs} syncs for {TASKS} concurrent async writes"
        );
        // Each batch got its own sequence number, in one of few transactions.
        let mut distinct = seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), TASKS);
        assert_eq!(c.last_seq(), TASKS as u64);
    }
    let db = open(dir.path());
    assert_eq!(db.open_collection("c").unwrap().count().unwrap(), TASKS);
}

/// A logged commit reaches sled one key at a time, not as a transaction: readers running
/// beside upserts that move every key to a new row must still find each key, whole, and
/// never a row without its vector (which `get` reports as corruption). The race windows
/// are short, so this is a smoke test of the whole path; the order that closes them is
/// pinned by `kv`'s `writes_reach_sled_in_an_order_readers_can_follow`.
#[test]
fn readers_find_every_key_whole_while_upserts_move_it() {
    const KEYS: usize = 100;
    const ROUNDS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = Arc::new(
        db.create_collection("c", cfg(PkKind::Str, Metric::L2))
            .unwrap(),
    );
    let pks: Vec<Pk> = (0..KEYS).map(|k| Pk::Str(format!("k{k}"))).collect();
    let batch = |round: usize| -> Vec<NewRecord> {
        pks.iter()
            .map(|pk| rec(Some(pk.clone()), "t", vec![round as f32, 1.0]))
            .collect()
    };
    c.insert(batch(0)).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, pks, done) = (Arc::clone(&c), pks.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                // At least one read, however late this thread starts.
                let mut reads = 0;
                loop {
                    for (pk, got) in pks.iter().zip(c.get(&pks).unwrap()) {
                        let got = got.unwrap_or_else(|| panic!("{pk} not found"));
                        assert_eq!(&got.pk, pk);
                        assert_eq!(got.vector.len(), 2);
                    }
                    for r in c.scan() {
                        r.unwrap();
                    }
                    reads += 1;
                    if done.load(std::sync::atomic::Ordering::SeqCst) {
                        break reads;
                    }
                }
            })
        })
        .collect();
    for round in 1..=ROUNDS {
        c.upsert(batch(round)).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let got = c.get(&pks).unwrap();
    assert!(got
        .iter()
        .all(|r| r.as_ref().unwrap().vector[0] == ROUNDS as f32));
}

/// Blocking writers commit for each other (one leads, the ones that queue meanwhile wait
/// for their outcome) and hand a queue that keeps growing to the flusher thread, which
/// also commits for async writers. Many of both on one collection: every write lands, in
/// fewer commits than writes, and nobody waits forever (a watchdog fails the test).
#[test]
fn blocking_and_async_writers_share_commits_and_all_land() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 40;
    const TASKS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let c = db
        .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
        .unwrap();
    let commits_before = db.commit_count();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writers = {
        let c = c.clone();
        std::thread::spawn(move || {
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        for i in 0..PER_THREAD {
                            c.insert(vec![rec(None, &format!("{t}-{i}"), vec![t as f32, 1.0])])
                                .unwrap();
                        }
                    })
                })
                .collect();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let c = c.clone();
                        tokio::spawn(async move {
                            c.insert_async(vec![rec(None, &format!("a{t}"), vec![1.0, t as f32])])
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
            for t in threads {
                t.join().unwrap();
            }
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("writers still waiting after 120 s");
    writers.join().unwrap();
    let writes = THREADS * PER_THREAD + TASKS;
    assert_eq!(c.count().unwrap(), writes);
    assert_eq!(c.last_seq(), writes as u64);
    let commits = db.commit_count() - commits_before;
    assert!(
        commits < (writes * 3 / 4) as u64,
        "{commits} commits for {writes} concurrent writes"
    );
    assert!(c.check_integrity().unwrap().is_ok());
}
