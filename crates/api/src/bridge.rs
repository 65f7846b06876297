//! Runs CPU work on a rayon pool from async code, without blocking the caller's executor.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::{Error, Result};

/// A rayon pool plus a queue that coalesces small jobs.
///
/// Many concurrent async calls each need a few microseconds of CPU (a search over a small
/// collection, an embedding). Spawning one rayon job per call costs a thread wake-up per
/// call; instead, calls push their job on a queue, and *drainers* — at most one per pool
/// thread — take jobs from it one at a time until it is empty ([`drain`]). Under load this
/// turns N wake-ups into one per pool thread, each drainer takes its next job only when it
/// is free (so a burst is spread evenly and a slow job holds up no other), and single calls
/// pay one wake-up as before.
#[derive(Clone)]
pub(crate) struct CpuPool {
    pool: Arc<rayon::ThreadPool>,
    queue: Arc<Mutex<Queue>>,
}

/// A queued call: runs its work and returns how to hand the result over (sending it wakes
/// the awaiting task, so results are sent in batches; see [`drain`]).
pub(crate) type Job = Box<dyn FnOnce() -> Deliver + Send>;
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Drainers started and not yet finished; never more than the pool's threads.
    drainers: usize,
}

impl std::fmt::Debug for CpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPool")
            .field("threads", &self.pool.current_num_threads())
            .finish_non_exhaustive()
    }
}

impl CpuPool {
    /// Wraps a caller's pool.
    pub fn new(pool: Arc<rayon::ThreadPool>) -> CpuPool {
        CpuPool {
            pool,
            queue: Arc::default(),
        }
    }

    /// The process-wide default pool, created on first use with one thread per core.
    pub fn shared() -> CpuPool {
        static POOL: OnceLock<CpuPool> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            CpuPool::new(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("quiverdb-cpu-{i}"))
                    .build()
                    .expect("building a rayon pool only fails if threads cannot be spawned"),
            ))
        })
        .clone()
    }

    /// The caller's pool if one was configured, else the shared one.
    pub fn from_config(pool: Option<&Arc<rayon::ThreadPool>>) -> CpuPool {
        match pool {
            Some(p) => CpuPool::new(p.clone()),
            None => CpuPool::shared(),
        }
    }

    /// How many threads the pool runs.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The rayon pool (for parallel index builds).
    pub fn rayon(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// Runs `f` on the pool and awaits its result; a panic in `f` becomes
    /// [`Error::Panicked`].
    ///
    /// Dropping the returned future does not stop `f` (rayon jobs cannot be cancelled); the
    /// store's writes are designed so that a job that finishes unobserved leaves it
    /// consistent.
    pub async fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            Box::new(move || {
                let _ = tx.send(out);
            })
        });
        self.submit(job);
        match rx.await {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => Err(Error::Panicked(panic_message(&panic))),
            Err(_) => Err(Error::Panicked("the CPU pool dropped the job".into())),
        }
    }

    /// Queues `job` for a drainer, starting one if fewer than the pool's threads run. The
    /// job must not panic (wrap its work in `catch_unwind`, as [`CpuPool::run`] does).
    pub(crate) fn submit(&self, job: Job) {
        let start_drainer = {
            let mut q = self.queue.lock();
            q.jobs.push_back(job);
            let start = q.drainers < self.pool.current_num_threads();
            q.drainers += usize::from(start);
            start
        };
        if start_drainer {
            let queue = self.queue.clone();
            self.pool.spawn(move || drain(&queue));
        }
    }
}

/// Most results a drainer holds back before handing them over.
const DELIVER_BATCH: usize = 8;

/// Runs queued jobs, one at a time in arrival order, until the queue is empty.
///
/// Results are handed over in batches of up to [`DELIVER_BATCH`], and at once when the
/// queue runs dry: each hand-over may wake a task's executor thread, which then competes
/// with the pool for the cores, so a burst of calls wakes few of them; a lone call is not
/// delayed. Jobs catch their own panics, so a panic never unwinds through here and the
/// drainer count stays true.
fn drain(queue: &Mutex<Queue>) {
    let mut delivers: Vec<Deliver> = Vec::with_capacity(DELIVER_BATCH);
    loop {
        let job = {
            let mut q = queue.lock();
            match q.jobs.pop_front() {
                Some(job) => job,
                None if delivers.is_empty() => {
                    q.drainers -= 1;
                    return;
                }
                None => {
                    drop(q);
                    delivers.drain(..).for_each(|d| d());
                    continue;
                }
            }
        };
        delivers.push(job());
        if delivers.len() == DELIVER_BATCH {
            delivers.drain(..).for_each(|d| d());
        }
    }
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of its own (the shared one is used by other tests at the same time).
    fn two_thread_pool() -> CpuPool {
        CpuPool::new(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        ))
    }

    #[tokio::test]
    async fn panics_come_back_as_errors() {
        let pool = CpuPool::shared();
        let ok = pool.run(|| Ok(21 * 2)).await.unwrap();
        assert_eq!(ok, 42);
        let err = pool.run::<_, ()>(|| panic!("boom")).await.unwrap_err();
        assert!(
            matches!(err, Error::Panicked(ref m) if m == "boom"),
            "{err}"
        );
        // The drainer survived the panic.
        assert_eq!(pool.run(|| Ok(1)).await.unwrap(), 1);
    }

    /// A slow call does not hold up calls made after it while another pool thread is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_job_does_not_block_later_ones() {
        let pool = two_thread_pool();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let p = pool.clone();
            tokio::spawn(async move {
                p.run(move || {
                    started_tx.send(()).unwrap();
                    // Holds its pool thread until the fast calls are done (or 10 s).
                    let _ = release_rx.recv_timeout(std::time::Duration::from_secs(10));
                    Ok(())
                })
                .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        for i in 0..20u64 {
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                pool.run(move || Ok(i + 1)),
            )
            .await
            .expect("a fast call waited behind the slow one")
            .unwrap();
            assert_eq!(got, i + 1);
        }
        release_tx.send(()).unwrap();
        slow.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_jobs_all_complete() {
        let pool = two_thread_pool();
        let tasks: Vec<_> = (0..500u64)
            .map(|i| {
                let p = pool.clone();
                tokio::spawn(async move { p.run(move || Ok(i * 2)).await })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap().unwrap();
        }
        assert_eq!(sum, 2 * (0..500u64).sum::<u64>());
        // Every drainer finished: none is counted that could keep a later call from
        // starting one (which would leave that call waiting forever).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pool.queue.lock().drainers > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a drainer never finished"
            );
            std::thread::yield_now();
        }
        assert!(pool.queue.lock().jobs.is_empty());
        assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7);
    }

    /// Never more drainers than pool threads, however many calls arrive at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drainers_never_outnumber_pool_threads() {
        let pool = two_thread_pool();
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                let (p, most) = (pool.clone(), most.clone());
                let queue = pool.queue.clone();
                tokio::spawn(async move {
                    p.run(move || {
                        let now = queue.lock().drainers;
                        most.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                        std::thread::sleep(std::time::Duration::from_micros(50));
                        Ok(i)
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as u64);
        }
        let most = most.load(std::sync::atomic::Ordering::Relaxed);
        assert!((1..=2).contains(&most), "{most} drainers at once");
    }
}
