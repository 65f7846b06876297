//! Concurrent async searches share work.
//!
//! An async similarity search queues a [`Request`] on its store and one job on the CPU pool.
//! A job, when a pool thread gets to it, answers the first few queued requests (not
//! necessarily its own; see [`batch_size`]); a job that finds the queue empty does nothing.
//! Unfiltered requests with the same `k` and `ef` are searched together
//! ([`VectorStore::similarity_search_batch_by_vector`]): a collection small enough to be
//! scanned exactly is then read once for four queries at a time. Every other request is
//! answered alone, by the blocking method it mirrors, so each answer is exactly what the
//! blocking call returns (tested in `tests/store_api.rs`).
//!
//! Every request is answered: a request is queued and its job submitted in one poll (no
//! `.await` between, so a cancelled call cannot do one without the other), and a job that
//! runs while requests are queued takes at least one, so at all times
//! `queued <= jobs not yet run`.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::bridge::{panic_message, Deliver};
use crate::search::ScoredDocuments;
use crate::{Error, Result, SearchOptions, VectorStore};

/// Most requests one pool job answers: two four-query scans.
pub(crate) const MAX_BATCH: usize = 8;

/// How many of `queued` requests a job takes: one when batching would not share work (a
/// walked graph: gathering requests would only serialize them), else an even share for
/// each pool thread, at most [`MAX_BATCH`] — so a few slow requests (a slow blocking
/// embedder) still run on every thread at once.
fn batch_size(queued: usize, threads: usize, shares_work: bool) -> usize {
    if shares_work {
        queued.div_ceil(threads.max(1)).clamp(1, MAX_BATCH)
    } else {
        1
    }
}

/// A search's query: text (embedded on the pool) or a vector.
pub(crate) enum Query {
    Text(String),
    Vector(Vec<f32>),
}

type Answer = Result<ScoredDocuments>;

struct Request {
    query: Query,
    opts: SearchOptions,
    reply: tokio::sync::oneshot::Sender<Answer>,
}

/// A store's queued async searches.
#[derive(Default)]
pub(crate) struct SearchQueue {
    pending: Mutex<VecDeque<Request>>,
}

impl VectorStore {
    /// Queues a similarity search for the pool and awaits its answer. Dropping the future
    /// leaves the request to be answered into the void: a search changes nothing.
    pub(crate) async fn asearch_queued(&self, query: Query, opts: &SearchOptions) -> Answer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner.searches.pending.lock().push_back(Request {
            query,
            opts: opts.clone(),
            reply,
        });
        let store = self.clone();
        self.inner
            .pool
            .submit(Box::new(move || store.answer_queued_searches()));
        answer
            .await
            .unwrap_or_else(|_| Err(Error::Panicked("the CPU pool dropped the search".into())))
    }

    /// A pool job: answers the first [`batch_size`] queued requests; returns how to hand
    /// the answers over. Never panics: a panic in one request's embedding fails that
    /// request ([`isolated`]), and any other panic while answering fails the batch.
    fn answer_queued_searches(&self) -> Deliver {
        let shares_work = matches!(self.live(), Ok(Some(live)) if live.batch_searches_share_work());
        let batch: Vec<Request> = {
            let mut pending = self.inner.searches.pending.lock();
            let n = batch_size(pending.len(), self.inner.pool.threads(), shares_work)
                .min(pending.len());
            pending.drain(..n).collect()
        };
        let (work, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|r| ((r.query, r.opts), r.reply))
            .unzip();
        let answers =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer_searches(work)))
                .unwrap_or_else(|panic| {
                    let message = panic_message(&panic);
                    (0..replies.len())
                        .map(|_| Err(Error::Panicked(message.clone())))
                        .collect()
                });
        Box::new(move || {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
        })
    }

    /// One answer per request, in order, each what the blocking call would answer.
    fn answer_searches(&self, work: Vec<(Query, SearchOptions)>) -> Vec<Answer> {
        let mut answers: Vec<Option<Answer>> = (0..work.len()).map(|_| None).collect();
        // Requests searched together: (index in `work`, query vector).
        let mut shared: Vec<(usize, Vec<f32>)> = Vec::new();
        for (i, (query, opts)) in work.iter().enumerate() {
            if opts.filter.is_some() || opts.k == 0 {
                answers[i] = Some(isolated(|| match query {
                    Query::Text(text) => self.similarity_search_with_score(text, opts),
                    Query::Vector(v) => self.similarity_search_with_score_by_vector(v, opts),
                }));
                continue;
            }
            match query {
                Query::Vector(v) => shared.push((i, v.clone())),
                Query::Text(text) => match isolated(|| self.query_vector(text, None, &opts.params))
                {
                    Ok(Some(v)) => shared.push((i, v)),
                    Ok(None) => answers[i] = Some(Ok(Vec::new())),
                    Err(e) => answers[i] = Some(Err(e)),
                },
            }
        }
        while let Some(&(first, _)) = shared.first() {
            let (k, ef) = (work[first].1.k, work[first].1.ef);
            let (group, rest): (Vec<_>, Vec<_>) = shared
                .into_iter()
                .partition(|(i, _)| (work[*i].1.k, work[*i].1.ef) == (k, ef));
            shared = rest;
            let queries: Vec<&[f32]> = group.iter().map(|(_, v)| v.as_slice()).collect();
            match self.similarity_search_batch_by_vector(&queries, k, ef) {
                Ok(found) => {
                    for ((i, _), answer) in group.iter().zip(found) {
                        answers[*i] = Some(answer);
                    }
                }
                // Not per query (the collection could not be read): each request on its own.
                Err(_) => {
                    for (i, v) in &group {
                        answers[*i] =
                            Some(self.similarity_search_with_score_by_vector(v, &work[*i].1));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.expect("every request is answered"))
            .collect()
    }
}

/// Runs one request's own work (which calls the user's embedder) so that a panic there
/// fails that request alone, as it did when each async search was its own pool job.
fn isolated<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|panic| Err(Error::Panicked(panic_message(&panic))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_share_the_queue_between_threads() {
        assert_eq!(batch_size(1, 2, true), 1);
        assert_eq!(
            batch_size(2, 2, true),
            1,
            "two requests, two threads: one each"
        );
        assert_eq!(batch_size(7, 2, true), 4);
        assert_eq!(batch_size(100, 2, true), MAX_BATCH);
        assert_eq!(
            batch_size(0, 2, true),
            1,
            "an empty queue takes nothing anyway"
        );
        assert_eq!(batch_size(100, 2, false), 1, "a walked graph: no batches");
        assert_eq!(batch_size(5, 0, true), 5);
    }
}
