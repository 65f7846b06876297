//! Group commit: durability tickets, and the flusher thread that commits for async writers.
//!
//! Every committed batch takes a *ticket* (a counter bumped after its commit returns). A flush
//! reads the highest ticket, flushes the store once, and then *settles* every ticket up to it.
//! Since a ticket is taken only after its commit returned, a flush that starts after reading
//! ticket `t` covers batches `1..=t`. An on-disk store's commit syncs its write-ahead log
//! record before it returns (see `wal`), so the fsyncs are shared where the commits are
//! combined — every batch queued on a collection while a commit runs goes into the next
//! commit's one record (`Collection::commit`) — and a flush only runs a checkpoint when the
//! log is due one. The tickets stay the one place where a flush's failure reaches every
//! writer it concerns.
//!
//! Who flushes: a sync writer whose ticket is unsettled and finds no flush running leads one
//! itself (no thread hand-off on the latency path); otherwise it sleeps on a condition
//! variable until the running flush settles. Async writers never flush or block: they register
//! a tokio `oneshot` sender and a dedicated flusher thread (or a sync leader) flushes for them.
//!
//! Who commits for async writers: the same thread. An async writer queues its batch on its
//! collection and [schedules](GroupCommit::schedule) a *commit job*; the flusher runs every
//! job scheduled so far (each commits its collection's whole queue as one write set), then
//! flushes once for all of them. Async writers thus never block an executor thread — a
//! commit waits for the log's `fdatasync`, and a checkpoint holds the log's lock for a whole
//! sled flush — and the batches queued during one commit are committed together by the
//! next. Committing inline when the collection's lock was free was measured (when commits
//! did not yet sync) and gained nothing (`async_bursts add-new 20`: 3.9–5.6 vs 3.8–3.9 ms
//! per 100).
//!
//! # Invariants
//! `settled <= committed`; at most one flush runs at a time (`flushing`); a ticket
//! `t <= settled` has its outcome decided: success unless it lies in a recorded failure range;
//! every registered async waiter has a ticket `> settled`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::kv::Kv;

/// Failures remembered for waiters that have not yet looked at their outcome.
const KEPT_FAILURES: usize = 64;

/// Commits one collection's queued batches (see [`GroupCommit::schedule`]).
pub(crate) type CommitJob = Box<dyn FnOnce() + Send>;

struct State {
    committed: u64,
    settled: u64,
    /// `(first, last, message)`: tickets in `first..=last` failed to flush.
    failures: VecDeque<(u64, u64, String)>,
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
    /// Commit jobs of async writers, run by the flusher before its next flush.
    jobs: Vec<CommitJob>,
    flushes: u64,
    /// A flush is running (by the flusher thread or a sync leader).
    flushing: bool,
    shutdown: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("committed", &self.committed)
            .field("settled", &self.settled)
            .field("waiters", &self.waiters.len())
            .field("jobs", &self.jobs.len())
            .field("flushing", &self.flushing)
            .finish_non_exhaustive()
    }
}

impl State {
    fn outcome(&self, ticket: u64) -> Result<(), String> {
        debug_assert!(ticket <= self.settled);
        match self
            .failures
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&ticket))
        {
            Some((_, _, msg)) => Err(msg.clone()),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signals the flusher that there are unflushed tickets (or shutdown).
    work: Condvar,
    /// Signals sync waiters that `settled` moved.
    done: Condvar,
}

/// The group-commit coordinator of one database.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    kv: Kv,
    thread: Option<JoinHandle<()>>,
}

fn flush_failed(msg: String) -> Error {
    Error::Sled(format!("flush failed, the write may not be durable: {msg}"))
}

impl GroupCommit {
    pub(crate) fn start(kv: Kv) -> Result<GroupCommit> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                committed: 0,
                settled: 0,
                failures: VecDeque::new(),
                waiters: Vec::new(),
                jobs: Vec::new(),
                flushes: 0,
                flushing: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("quiverdb-flusher".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                let kv = kv.clone();
                move || run_flusher(&shared, &kv)
            })?;
        Ok(GroupCommit {
            shared,
            kv,
            thread: Some(thread),
        })
    }

    /// Records one committed batch; call only after its transaction is applied.
    pub(crate) fn ticket(&self) -> u64 {
        let mut st = self.shared.state.lock();
        st.committed += 1;
        st.committed
    }

    /// Blocks until `ticket` is durable. If no flush is running, this thread leads one
    /// (covering every batch committed so far); otherwise it waits for the running one and,
    /// if that did not cover `ticket`, leads or waits again.
    pub(crate) fn wait(&self, ticket: u64) -> Result<()> {
        let mut st = self.shared.state.lock();
        loop {
            if st.settled >= ticket {
                return st.outcome(ticket).map_err(flush_failed);
            }
            if st.flushing {
                self.shared.done.wait(&mut st);
            } else {
                flush_once(&self.shared, &self.kv, &mut st);
            }
        }
    }

    /// Waits until `ticket` is durable without blocking the async executor: the flusher
    /// thread (or a sync leader) flushes, and a `oneshot` wakes this task.
    pub(crate) async fn wait_async(&self, ticket: u64) -> Result<()> {
        let rx = {
            let mut st = self.shared.state.lock();
            if st.settled >= ticket {
                return st.outcome(ticket).map_err(flush_failed);
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push((ticket, tx));
            self.shared.work.notify_one();
            rx
        };
        match rx.await {
            Ok(outcome) => outcome.map_err(flush_failed),
            Err(_) => Err(Error::Sled("the flusher thread stopped".to_owned())),
        }
    }

    /// Hands a commit job to the flusher thread, which runs it before its next flush. The
    /// job must not wait for durability (it runs on the thread that provides it).
    pub(crate) fn schedule(&self, job: CommitJob) {
        self.shared.state.lock().jobs.push(job);
        self.shared.work.notify_one();
    }

    /// How many tickets (committed transactions) have been taken.
    pub(crate) fn committed(&self) -> u64 {
        self.shared.state.lock().committed
    }

    /// How many flushes the flusher has done (for tests and benchmarks).
    pub(crate) fn flushes(&self) -> u64 {
        self.shared.state.lock().flushes
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the quiverdb flusher thread panicked");
            }
        }
    }
}

/// The flusher thread: runs async writers' commit jobs, then flushes on behalf of async
/// waiters (sync waiters lead their own flushes).
fn run_flusher(shared: &Shared, kv: &Kv) {
    let mut st = shared.state.lock();
    loop {
        while !st.shutdown && st.jobs.is_empty() && (st.flushing || st.waiters.is_empty()) {
            shared.work.wait(&mut st);
        }
        let jobs = std::mem::take(&mut st.jobs);
        let ran_jobs = !jobs.is_empty();
        if ran_jobs {
            parking_lot::MutexGuard::unlocked(&mut st, || run_jobs(jobs));
        }
        if st.shutdown {
            if st.jobs.is_empty() {
                break;
            }
            continue;
        }
        // After commit jobs, flush at once: their writers are about to wait for it.
        let due = !st.waiters.is_empty() || ran_jobs;
        if due && !st.flushing && st.settled < st.committed {
            flush_once(shared, kv, &mut st);
        }
    }
}

/// Runs commit jobs; a panicking job drops its batches' reply channels, so their writers get
/// an error instead of waiting forever, and the other jobs still run.
fn run_jobs(jobs: Vec<CommitJob>) {
    for job in jobs {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a commit job panicked; its writers get an error");
        }
    }
}

/// Flushes once for every ticket committed so far and settles them. Requires that no flush is
/// running and that some ticket is unsettled; the lock is released during the flush.
fn flush_once(shared: &Shared, kv: &Kv, st: &mut parking_lot::MutexGuard<'_, State>) {
    debug_assert!(!st.flushing && st.settled < st.committed);
    st.flushing = true;
    let first = st.settled + 1;
    let target = st.committed;
    let result = parking_lot::MutexGuard::unlocked(st, || kv.flush());
    st.flushing = false;
    st.flushes += 1;
    if let Err(e) = result {
        tracing::error!(error = %e, first, target, "group-commit flush failed");
        if st.failures.len() == KEPT_FAILURES {
            st.failures.pop_front();
        }
        st.failures.push_back((first, target, e.to_string()));
    }
    st.settled = target;
    let waiters = std::mem::take(&mut st.waiters);
    let (ready, pending): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|(t, _)| *t <= target);
    st.waiters = pending;
    for (ticket, tx) in ready {
        // A dropped receiver means the caller stopped waiting; nothing to do.
        let _ = tx.send(st.outcome(ticket));
    }
    shared.done.notify_all();
    if !st.waiters.is_empty() {
        shared.work.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flush_serves_many_tickets() {
        let kv = Kv::temporary().unwrap();
        let gc = GroupCommit::start(kv).unwrap();
        let mut last = 0;
        for _ in 0..200 {
            last = gc.ticket();
        }
        assert_eq!(last, 200);
        gc.wait(last).unwrap();
        // Every earlier ticket is settled too, without waiting.
        gc.wait(1).unwrap();
        let flushes = gc.flushes();
        assert!(
            (1..200).contains(&flushes),
            "{flushes} flushes for 200 tickets"
        );
    }

    #[test]
    fn async_waiters_are_woken() {
        let kv = Kv::temporary().unwrap();
        let gc = Arc::new(GroupCommit::start(kv).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let t = gc.ticket();
        rt.block_on(gc.wait_async(t)).unwrap();
        let t2 = gc.ticket();
        rt.block_on(async {
            let (a, b) = tokio::join!(gc.wait_async(t2), gc.wait_async(t2));
            a.and(b)
        })
        .unwrap();
        assert!(gc.flushes() >= 1);
    }
}
