//! Runs CPU work on a rayon pool from async code, without blocking the caller's executor.

use std::sync::{Arc, OnceLock};

use crate::{Error, Result};

/// The process-wide default CPU pool, created on first use with one thread per core.
pub(crate) fn default_pool() -> Arc<rayon::ThreadPool> {
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("quiverdb-cpu-{i}"))
                .build()
                .expect("building a rayon pool only fails if threads cannot be spawned"),
        )
    })
    .clone()
}

/// Runs `f` on `pool` and awaits its result; a panic in `f` becomes [`Error::Panicked`].
///
/// Dropping the returned future does not stop `f` (rayon jobs cannot be cancelled); the
/// store's writes are designed so that a job that finishes unobserved leaves it consistent.
pub(crate) async fn spawn_cpu<F, R>(pool: &rayon::ThreadPool, f: F) -> Result<R>
where
    F: FnOnce() -> Result<R> + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    match rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => Err(Error::Panicked(panic_message(&panic))),
        Err(_) => Err(Error::Panicked("the CPU pool dropped the job".into())),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
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

    #[tokio::test]
    async fn panics_come_back_as_errors() {
        let pool = default_pool();
        let ok = spawn_cpu(&pool, || Ok(21 * 2)).await.unwrap();
        assert_eq!(ok, 42);
        let err = spawn_cpu::<_, ()>(&pool, || panic!("boom"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Panicked(ref m) if m == "boom"),
            "{err}"
        );
    }
}
