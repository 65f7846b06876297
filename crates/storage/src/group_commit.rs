//! The flusher and applier threads: commits for async writers, and the checkpoints that
//! are due.
//!
//! A commit of an on-disk store is durable when it returns: its write-ahead log record is
//! synced before sled sees it, and commits running at once share that `fdatasync` (see
//! `wal`). Blocking writers combine their batches themselves (`Collection::commit`). What
//! is left for a thread of the database's own:
//!
//! * **Async writers' commits.** An async writer queues its batch on its collection and
//!   [schedules](GroupCommit::schedule) a *commit job*; this thread runs every job
//!   scheduled so far, each committing its collection's whole queue as one write set. Async
//!   writers thus never block an executor thread — a commit waits for the log's
//!   `fdatasync`, and a checkpoint holds the log's lock for a whole sled flush — and the
//!   batches queued during one commit are committed together by the next. The flusher only
//!   plans, logs and syncs a commit, and answers its writers once it is durable; the
//!   **applier thread** applies it to sled (jobs in order, so a collection's commits reach
//!   sled in log order; reads of sled wait for it), while the flusher goes on with the
//!   next commit, planned against the write sets still on
//!   their way to sled (`Collection::commit_queued`). Measured when it came in (binaries
//!   alternating three times, `async_bursts … 20`, ms per 100): `add-new` 3.09–3.31 vs
//!   3.31–3.50, `delete` 3.01–3.28 vs 3.15–3.28; `group_commit`'s 64 async tasks 43–47k vs
//!   35–36k commits/s. Committing inline
//!   when the collection's lock was free was measured (before commits synced) and gained
//!   nothing (`async_bursts add-new 20`: 3.9–5.6 vs 3.8–3.9 ms per 100).
//! * **Checkpoints.** A commit that finds the log past its threshold
//!   [requests](GroupCommit::request_checkpoint) one, so no writer's call runs a whole sled
//!   flush itself. A failed checkpoint is logged and loses nothing (the log still holds every
//!   commit); the next request tries again.
//!
//! Writers used to take a *ticket* and wait for a group flush covering it; once commits
//! synced their own records (d875d2a) that wait had nothing left to do, and dropping it
//! saved async writers a wake-up each: `async_bursts delete 20`, 2.63–2.64 vs 2.83–3.08 ms
//! per 100 over three alternations (`add-new` within noise).
//!
//! # Invariants
//! Every scheduled job runs exactly once: each thread runs the jobs left at shutdown before
//! it exits (the applier after the flusher, whose last jobs may hand it more). At most one
//! checkpoint is pending at a time. A checkpoint waits for every logged commit to be
//! applied (`Wal::applying`), which the applier does without any lock a checkpoint holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::Result;
use crate::kv::Kv;

/// Commits one collection's queued batches (see [`GroupCommit::schedule`]).
pub(crate) type CommitJob = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    /// Commit jobs of async writers, run in order.
    jobs: Vec<CommitJob>,
    /// A commit found the write-ahead log past its threshold.
    checkpoint_due: bool,
    /// Checkpoints this thread ran.
    checkpoints: u64,
    shutdown: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("jobs", &self.jobs.len())
            .field("checkpoint_due", &self.checkpoint_due)
            .field("checkpoints", &self.checkpoints)
            .finish_non_exhaustive()
    }
}

/// The applier thread's queue.
#[derive(Default)]
struct ApplyQueue {
    jobs: std::collections::VecDeque<CommitJob>,
    shutdown: bool,
}

impl std::fmt::Debug for ApplyQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyQueue")
            .field("jobs", &self.jobs.len())
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

#[derive(Debug, Default)]
struct Applier {
    queue: Mutex<ApplyQueue>,
    work: Condvar,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signals the thread that there is work (or shutdown).
    work: Condvar,
    /// Commits made (combined batches count once); counted outside `state`, on every
    /// commit's path.
    commits: AtomicU64,
}

/// The flusher thread of one database.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    applier: Arc<Applier>,
    applier_thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    pub(crate) fn start(kv: Kv) -> Result<GroupCommit> {
        let shared = Arc::new(Shared::default());
        let applier = Arc::new(Applier::default());
        let applier_thread = std::thread::Builder::new()
            .name("quiverdb-applier".to_owned())
            .spawn({
                let applier = Arc::clone(&applier);
                move || run_applier(&applier)
            })?;
        let thread = std::thread::Builder::new()
            .name("quiverdb-flusher".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_flusher(&shared, &kv)
            })?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
            applier,
            applier_thread: Some(applier_thread),
        })
    }

    /// Hands the applier thread a job: applying a logged commit to sled. Jobs run one at a time in the order they were handed over, so the commits of
    /// a collection reach sled in their log order.
    pub(crate) fn apply_later(&self, job: CommitJob) {
        self.applier.queue.lock().jobs.push_back(job);
        self.applier.work.notify_one();
    }

    /// Hands a commit job to the thread.
    pub(crate) fn schedule(&self, job: CommitJob) {
        self.shared.state.lock().jobs.push(job);
        self.shared.work.notify_one();
    }

    /// Asks the thread for a checkpoint (one, however many ask before it runs).
    pub(crate) fn request_checkpoint(&self) {
        let mut st = self.shared.state.lock();
        if !st.checkpoint_due {
            st.checkpoint_due = true;
            self.shared.work.notify_one();
        }
    }

    /// Counts one commit (for tests and benchmarks).
    pub(crate) fn committed_one(&self) {
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// How many commits have been made.
    pub(crate) fn committed(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// How many checkpoints the thread has run.
    pub(crate) fn checkpoints(&self) -> u64 {
        self.shared.state.lock().checkpoints
    }
}

impl Drop for GroupCommit {
    /// Stops both threads once their jobs are done. The last handle on a database may be
    /// dropped by one of them (a job holds its collection until the job ends, and the
    /// writer it answered may have dropped everything else meanwhile): that thread is
    /// not joined (it cannot join itself) but left to finish its loop, which ends at once.
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.work.notify_all();
        join_unless_current(self.thread.take(), "flusher");
        // After the flusher: its last jobs may hand the applier more.
        self.applier.queue.lock().shutdown = true;
        self.applier.work.notify_all();
        join_unless_current(self.applier_thread.take(), "applier");
    }
}

fn join_unless_current(thread: Option<JoinHandle<()>>, name: &str) {
    let Some(t) = thread else { return };
    if t.thread().id() == std::thread::current().id() {
        return;
    }
    if t.join().is_err() {
        tracing::error!("the quiverdb {name} thread panicked");
    }
}

/// The applier thread: runs apply jobs in order until shutdown and no job is left.
fn run_applier(applier: &Applier) {
    let mut q = applier.queue.lock();
    loop {
        while !q.shutdown && q.jobs.is_empty() {
            applier.work.wait(&mut q);
        }
        let Some(job) = q.jobs.pop_front() else {
            break; // shut down, nothing left
        };
        parking_lot::MutexGuard::unlocked(&mut q, || run_job(job));
    }
}

/// The thread: runs commit jobs, then a requested checkpoint, until shutdown and no job is
/// left.
fn run_flusher(shared: &Shared, kv: &Kv) {
    let mut st = shared.state.lock();
    loop {
        while !st.shutdown && st.jobs.is_empty() && !st.checkpoint_due {
            shared.work.wait(&mut st);
        }
        let jobs = std::mem::take(&mut st.jobs);
        let checkpoint = std::mem::take(&mut st.checkpoint_due);
        if jobs.is_empty() && !checkpoint && st.shutdown {
            break;
        }
        let checkpointed = parking_lot::MutexGuard::unlocked(&mut st, || {
            run_jobs(jobs);
            // At shutdown the database's own drop checkpoints next.
            checkpoint.then(|| match kv.checkpoint() {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint failed; the write-ahead log keeps every commit");
                    false
                }
            })
        });
        if checkpointed == Some(true) {
            st.checkpoints += 1;
        }
    }
}

/// Runs commit jobs; a panicking job drops its batches' reply channels, so their writers get
/// an error instead of waiting forever, and the other jobs still run.
fn run_jobs(jobs: Vec<CommitJob>) {
    jobs.into_iter().for_each(run_job);
}

fn run_job(job: CommitJob) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        tracing::error!("a commit job panicked; its writers get an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_and_the_rest_at_shutdown() {
        let gc = GroupCommit::start(Kv::temporary().unwrap()).unwrap();
        let ran = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let ran = Arc::clone(&ran);
            gc.schedule(Box::new(move || ran.lock().push(i)));
        }
        drop(gc);
        assert_eq!(*ran.lock(), (0..100).collect::<Vec<_>>());
    }

    /// A job may drop the last handle on the database, so `GroupCommit` is dropped on
    /// its own thread: that must return (it once panicked: a thread cannot join itself)
    /// and leave the thread to end.
    #[test]
    fn the_threads_may_drop_their_own_group_commit() {
        for on_applier in [false, true] {
            let gc = Arc::new(Mutex::new(Some(
                GroupCommit::start(Kv::temporary().unwrap()).unwrap(),
            )));
            let (tx, rx) = std::sync::mpsc::channel();
            let job: CommitJob = Box::new({
                let gc = Arc::clone(&gc);
                move || {
                    let last = gc.lock().take();
                    drop(last);
                    tx.send(()).unwrap();
                }
            });
            {
                let held = gc.lock();
                let g = held.as_ref().unwrap();
                if on_applier {
                    g.apply_later(job);
                } else {
                    g.schedule(job);
                }
            }
            rx.recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("dropping it on its own thread (applier {on_applier}) did not return")
                });
        }
    }

    #[test]
    fn a_panicking_job_does_not_stop_the_others() {
        let gc = GroupCommit::start(Kv::temporary().unwrap()).unwrap();
        let ran = Arc::new(Mutex::new(0));
        gc.schedule(Box::new(|| panic!("boom")));
        let r = Arc::clone(&ran);
        gc.schedule(Box::new(move || *r.lock() += 1));
        drop(gc);
        assert_eq!(*ran.lock(), 1);
    }

    #[test]
    fn a_requested_checkpoint_runs() {
        let gc = GroupCommit::start(Kv::temporary().unwrap()).unwrap();
        gc.request_checkpoint();
        gc.request_checkpoint();
        let t = std::time::Instant::now();
        while gc.checkpoints() == 0 {
            assert!(t.elapsed().as_secs() < 30, "no checkpoint ran");
            std::thread::yield_now();
        }
        assert!(gc.checkpoints() <= 2);
    }
}
