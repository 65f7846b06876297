//! Concurrent async searches share work.
//!
//! An async similarity or MMR search queues a [`Request`] on its store and one job on the
//! CPU pool. A job, when a pool thread gets to it, answers the first few queued requests
//! (not necessarily its own; see [`batch_size`]); a job that finds the queue empty does
//! nothing. Unfiltered requests that fetch the same number of candidates (`k`, or MMR's
//! `fetch_k`) with the same `ef` are searched together ([`VectorStore::search_batch_hits`]):
//! a collection small enough to be scanned exactly is then read once for four queries at a
//! time, and each request makes its own answer from its hits (scores, or MMR's reranking).
//! Every other request is answered alone, by the blocking method it mirrors, so each answer
//! is exactly what the blocking call returns (tested in `tests/store_api.rs`).
//!
//! Every request is answered: a request is queued and its job submitted in one call (no
//! `.await` between, so a cancelled caller cannot do one without the other), and a job that
//! runs while requests are queued takes at least one, so at all times
//! `queued <= jobs not yet run`.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use quiverdb_filter::Params;

use crate::bridge::{panic_message, Deliver};
use crate::live::{Hits, LiveCollection};
use crate::rules::check_mmr;
use crate::search::ScoredDocuments;
use crate::{Document, Error, MmrOptions, Result, SearchOptions, VectorStore};

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

/// Where a request's answer goes.
pub(crate) type Reply<T> = tokio::sync::oneshot::Sender<Result<T>>;

/// What a request asks for, and where its answer goes.
pub(crate) enum Want {
    /// `similarity_search_with_score*`.
    Similarity(SearchOptions, Reply<ScoredDocuments>),
    /// `max_marginal_relevance_search*`.
    Mmr(MmrOptions, Reply<Vec<Document>>),
}

struct Request {
    query: Query,
    want: Want,
}

/// A store's queued async searches.
#[derive(Default)]
pub(crate) struct SearchQueue {
    pending: Mutex<VecDeque<Request>>,
}

/// How far a request of a batch has got.
enum Step {
    /// To be answered by the blocking method it mirrors.
    Alone,
    /// Its text could not be embedded.
    Failed(Error),
    /// There is no collection yet: the empty answer.
    Empty,
    /// Waiting for its group's search, with its query vector.
    Queued(Vec<f32>),
    /// Searched with its group: the collection, its query vector, its hits.
    Searched(Arc<LiveCollection>, Vec<f32>, Result<Hits>),
}

impl Want {
    /// The shared search this request can join — candidates to fetch and `ef` — or `None`
    /// when it must be answered alone (a filter, or options the blocking call rejects).
    fn shared_search(&self) -> Option<(usize, Option<usize>)> {
        match self {
            Want::Similarity(o, _) => (o.filter.is_none() && o.k > 0).then_some((o.k, o.ef)),
            Want::Mmr(o, _) => {
                (o.filter.is_none() && check_mmr(o).is_ok()).then_some((o.fetch_k.max(1), o.ef))
            }
        }
    }

    /// The `params` its query text is embedded with.
    fn params(&self) -> &Params {
        match self {
            Want::Similarity(o, _) => &o.params,
            Want::Mmr(o, _) => &o.params,
        }
    }
}

impl VectorStore {
    /// Queues a search for the pool; its answer arrives on the [`Reply`] inside `want`. A
    /// dropped receiver leaves the request to be answered into the void: a search changes
    /// nothing.
    pub(crate) fn queue_search(&self, query: Query, want: Want) {
        self.inner
            .searches
            .pending
            .lock()
            .push_back(Request { query, want });
        let store = self.clone();
        self.inner
            .pool
            .submit(Box::new(move || store.answer_queued_searches()));
    }

    /// A pool job: answers the first [`batch_size`] queued requests; returns how to hand
    /// the answers over. Never panics: a panic in one request's own work fails that
    /// request ([`isolated`]); any other panic drops the batch's replies, which their
    /// callers see as [`Error::Panicked`].
    fn answer_queued_searches(&self) -> Deliver {
        let shares_work = matches!(self.live(), Ok(Some(live)) if live.batch_searches_share_work());
        let batch: Vec<Request> = {
            let mut pending = self.inner.searches.pending.lock();
            let n = batch_size(pending.len(), self.inner.pool.threads(), shares_work)
                .min(pending.len());
            pending.drain(..n).collect()
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.answer(batch)))
            .unwrap_or_else(|_| Box::new(|| ()))
    }

    /// Answers a batch, each request as the blocking call would; returns the hand-over.
    fn answer(&self, batch: Vec<Request>) -> Deliver {
        let mut steps: Vec<Step> = batch.iter().map(|r| self.first_step(r)).collect();
        // Search the queued requests, one group per (candidates, ef).
        while let Some(first) = steps.iter().position(|s| matches!(s, Step::Queued(_))) {
            let key = batch[first].want.shared_search();
            let mut group = Vec::new();
            for (i, step) in steps.iter_mut().enumerate().skip(first) {
                if matches!(step, Step::Queued(_)) && batch[i].want.shared_search() == key {
                    if let Step::Queued(v) = std::mem::replace(step, Step::Alone) {
                        group.push((i, v));
                    }
                }
            }
            let (k, ef) = key.unwrap_or_default();
            let queries: Vec<&[f32]> = group.iter().map(|(_, v)| v.as_slice()).collect();
            match self.search_batch_hits(&queries, k, ef) {
                Ok(Some((live, hits))) => {
                    for ((i, v), hits) in group.into_iter().zip(hits) {
                        steps[i] = Step::Searched(live.clone(), v, hits);
                    }
                }
                Ok(None) => group.into_iter().for_each(|(i, _)| steps[i] = Step::Empty),
                // Not per query (the collection could not be read): each request alone
                // (their steps are `Alone` again), each getting its own error.
                Err(_) => {}
            }
        }
        let deliveries: Vec<Deliver> = batch
            .into_iter()
            .zip(steps)
            .map(|(r, step)| self.finish(r, step))
            .collect();
        Box::new(move || deliveries.into_iter().for_each(|d| d()))
    }

    /// A request's first step: alone, or queued for a shared search with its vector (its
    /// text embedded now).
    fn first_step(&self, r: &Request) -> Step {
        if r.want.shared_search().is_none() {
            return Step::Alone;
        }
        match &r.query {
            Query::Vector(v) => Step::Queued(v.clone()),
            Query::Text(text) => {
                match isolated(|| self.query_vector(text, None, r.want.params())) {
                    Ok(Some(v)) => Step::Queued(v),
                    Ok(None) => Step::Empty,
                    Err(e) => Step::Failed(e),
                }
            }
        }
    }

    /// A request's answer, from its last step; returns how to send it.
    fn finish(&self, r: Request, step: Step) -> Deliver {
        match r.want {
            Want::Similarity(opts, reply) => {
                let answer = match step {
                    // (No request is still `Queued` here: each was searched or set back.)
                    Step::Alone | Step::Queued(_) => isolated(|| match &r.query {
                        Query::Text(t) => self.similarity_search_with_score(t, &opts),
                        Query::Vector(v) => self.similarity_search_with_score_by_vector(v, &opts),
                    }),
                    Step::Failed(e) => Err(e),
                    Step::Empty => Ok(Vec::new()),
                    Step::Searched(live, _, hits) => hits.map(|h| self.scored_documents(&live, h)),
                };
                send(reply, answer)
            }
            Want::Mmr(opts, reply) => {
                let answer = match step {
                    Step::Alone | Step::Queued(_) => isolated(|| match &r.query {
                        Query::Text(t) => self.max_marginal_relevance_search(t, &opts),
                        Query::Vector(v) => self.max_marginal_relevance_search_by_vector(v, &opts),
                    }),
                    Step::Failed(e) => Err(e),
                    Step::Empty => Ok(Vec::new()),
                    Step::Searched(live, v, hits) => {
                        hits.map(|h| self.mmr_documents(&live, &v, h, &opts))
                    }
                };
                send(reply, answer)
            }
        }
    }
}

/// How to hand `answer` over on `reply` (sending may wake the caller's executor thread, so
/// the pool sends a batch's answers together; see `bridge::drain`).
fn send<T: Send + 'static>(reply: Reply<T>, answer: Result<T>) -> Deliver {
    Box::new(move || {
        let _ = reply.send(answer);
    })
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
