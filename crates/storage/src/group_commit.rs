//! Group commit: many committed batches, one fsync.
//!
//! Every committed batch takes a *ticket* (a counter bumped after its transaction is applied
//! in memory). A dedicated flusher thread waits for unflushed tickets, reads the highest one,
//! flushes the store once, and then *settles* every ticket up to it. Since a ticket is taken
//! only after its transaction is applied, a flush that starts after reading ticket `t` covers
//! batches `1..=t`. Sync writers wait on a condition variable; async writers register a tokio
//! `oneshot` sender, so they never block the executor while waiting.
//!
//! # Invariants
//! `settled <= committed`; a ticket `t <= settled` has its outcome decided: success unless it
//! lies in a recorded failure range.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::kv::Kv;

/// Failures remembered for waiters that have not yet looked at their outcome.
const KEPT_FAILURES: usize = 64;

#[derive(Debug)]
struct State {
    committed: u64,
    settled: u64,
    /// `(first, last, message)`: tickets in `first..=last` failed to flush.
    failures: VecDeque<(u64, u64, String)>,
    waiters: Vec<(u64, oneshot::Sender<Result<(), String>>)>,
    flushes: u64,
    shutdown: bool,
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
                flushes: 0,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("quiverdb-flusher".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run_flusher(&shared, &kv)
            })?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Records one committed batch; call only after its transaction is applied.
    pub(crate) fn ticket(&self) -> u64 {
        let mut st = self.shared.state.lock();
        st.committed += 1;
        self.shared.work.notify_one();
        st.committed
    }

    /// Blocks until `ticket` is durable.
    pub(crate) fn wait(&self, ticket: u64) -> Result<()> {
        let mut st = self.shared.state.lock();
        while st.settled < ticket {
            self.shared.done.wait(&mut st);
        }
        st.outcome(ticket).map_err(flush_failed)
    }

    /// Waits until `ticket` is durable without blocking the async executor.
    pub(crate) async fn wait_async(&self, ticket: u64) -> Result<()> {
        let rx = {
            let mut st = self.shared.state.lock();
            if st.settled >= ticket {
                return st.outcome(ticket).map_err(flush_failed);
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push((ticket, tx));
            rx
        };
        match rx.await {
            Ok(outcome) => outcome.map_err(flush_failed),
            Err(_) => Err(Error::Sled("the flusher thread stopped".to_owned())),
        }
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

fn run_flusher(shared: &Shared, kv: &Kv) {
    let mut st = shared.state.lock();
    loop {
        while st.settled == st.committed && !st.shutdown {
            shared.work.wait(&mut st);
        }
        if st.settled == st.committed {
            break; // shutdown with nothing pending
        }
        let first = st.settled + 1;
        let target = st.committed;
        let result = parking_lot::MutexGuard::unlocked(&mut st, || kv.flush());
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
        let (ready, pending): (Vec<_>, Vec<_>) =
            waiters.into_iter().partition(|(t, _)| *t <= target);
        st.waiters = pending;
        for (ticket, tx) in ready {
            // A dropped receiver means the caller stopped waiting; nothing to do.
            let _ = tx.send(st.outcome(ticket));
        }
        shared.done.notify_all();
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
