//! Filter-aware search planner: chooses between the graph and exact search by the
//! cardinality of the allowed set (as qdrant and Lucene do).
//!
//! * no allow-set → [`VectorIndex::search`];
//! * a selective allow-set (at most [`EXACT_MAX_COUNT`] ids, or at most
//!   [`EXACT_MAX_FRACTION`] of the live rows) → [`VectorIndex::search_among`], exact over
//!   the allowed ids;
//! * a broad allow-set (at least [`POSTFILTER_MIN_FRACTION`] of the live rows) → an
//!   unfiltered graph search over-fetching `k / selectivity`, keeping the allowed hits
//!   ([`Strategy::PostFilter`]), else the next branch;
//! * otherwise the graph search with the allow-set as filter and `ef` raised as the
//!   selectivity drops ([`filtered_ef`]); if that returns fewer than
//!   `min(k, allowed live rows)` hits, exact search over the allowed ids instead.
//!
//! So even a 0.1 %-selective filter returns the true `k` nearest allowed rows.
//! The crossover constants come from `quiverdb-bench ann --planner-crossover` (see
//! `docs/BENCHMARKS.md`, `## ANN`).

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use quiverdb_types::RowId;

use crate::hnsw_rs_engine::RowIdHasher;
use crate::{IndexError, Neighbor, SearchParams, VectorIndex};

/// Allowed sets of at most this many ids always go to exact search.
pub const EXACT_MAX_COUNT: usize = 2_000;
/// Allowed sets of at most this fraction of the live rows go to exact search.
pub const EXACT_MAX_FRACTION: f64 = 0.02;
/// Allow-sets of at least this fraction of the live rows over-fetch an unfiltered graph
/// search and drop what they do not allow ([`Strategy::PostFilter`]).
pub const POSTFILTER_MIN_FRACTION: f64 = 0.3;
/// Upper bound of the raised `ef` of a filtered graph search.
pub const FILTERED_EF_CAP: usize = 2_048;

/// The row ids a search may return (the result of a metadata filter).
///
/// # Invariants
/// `sorted` holds exactly the members of `set`, ascending, without duplicates.
#[derive(Debug, Clone, Default)]
pub struct AllowSet {
    set: HashSet<RowId, BuildHasherDefault<RowIdHasher>>,
    sorted: Vec<RowId>,
}

impl AllowSet {
    /// Number of allowed ids (live or not).
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// O(1) membership.
    pub fn contains(&self, id: RowId) -> bool {
        self.set.contains(&id)
    }

    /// The allowed ids, ascending.
    pub fn ids(&self) -> &[RowId] {
        &self.sorted
    }
}

impl FromIterator<RowId> for AllowSet {
    fn from_iter<I: IntoIterator<Item = RowId>>(iter: I) -> Self {
        let mut sorted: Vec<RowId> = iter.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let set = sorted.iter().copied().collect();
        AllowSet { set, sorted }
    }
}

/// How a search is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The graph, no filter.
    Unfiltered,
    /// Exact over the allowed ids.
    Exact,
    /// The graph with the allow-set as filter (exact fallback if it comes back short).
    Filtered,
    /// An unfiltered graph search over-fetching `k / selectivity`, keeping the allowed
    /// hits (the `Filtered` path if that comes back short). Engines whose filtered walk
    /// has no early exit (hnsw_rs) pay 2-3x for a filter even when it admits most rows.
    PostFilter,
}

/// The strategy [`search`] picks for an allow-set of `allowed` ids over `live` rows.
pub fn choose(live: usize, allowed: Option<usize>) -> Strategy {
    match allowed {
        None => Strategy::Unfiltered,
        Some(a) if a <= EXACT_MAX_COUNT || (a as f64) <= EXACT_MAX_FRACTION * live as f64 => {
            Strategy::Exact
        }
        Some(a) if a as f64 >= POSTFILTER_MIN_FRACTION * live as f64 => Strategy::PostFilter,
        Some(_) => Strategy::Filtered,
    }
}

/// `ef` for a filtered graph search: `max(ef, k, k / selectivity)`, capped at
/// [`FILTERED_EF_CAP`] (but never below `max(ef, k)`).
pub fn filtered_ef(params: SearchParams, live: usize, allowed: usize) -> usize {
    let base = params.ef.max(params.k);
    let selectivity = (allowed.max(1) as f64 / live.max(1) as f64).min(1.0);
    let raised = (params.k as f64 / selectivity).ceil() as usize;
    base.max(raised.min(FILTERED_EF_CAP))
}

/// The `params.k` nearest live rows of `index` that `allow` admits (all rows if `None`).
pub fn search(
    index: &dyn VectorIndex,
    query: &[f32],
    params: SearchParams,
    allow: Option<&AllowSet>,
) -> Result<Vec<Neighbor>, IndexError> {
    let strategy = choose(index.len(), allow.map(AllowSet::len));
    search_with(index, query, params, allow, strategy)
}

/// [`search`] with the strategy forced (benchmarks measure the crossover with it).
/// `Exact` and `Filtered` without an allow-set run unfiltered.
pub fn search_with(
    index: &dyn VectorIndex,
    query: &[f32],
    params: SearchParams,
    allow: Option<&AllowSet>,
    strategy: Strategy,
) -> Result<Vec<Neighbor>, IndexError> {
    let Some(allow) = allow else {
        return index.search(query, params, None);
    };
    match strategy {
        Strategy::Unfiltered => index.search(query, params, None),
        Strategy::Exact => index.search_among(query, params.k, allow.ids()),
        Strategy::PostFilter => {
            let live = index.len();
            let selectivity = (allow.len() as f64 / live.max(1) as f64).clamp(1e-6, 1.0);
            let k_fetch = ((params.k as f64 / selectivity) * 1.2).ceil() as usize + 2;
            let ef_fetch = ((params.ef.max(params.k) as f64 / selectivity).ceil() as usize)
                .clamp(k_fetch, FILTERED_EF_CAP.max(k_fetch));
            let mut hits = index.search(
                query,
                SearchParams {
                    k: k_fetch,
                    ef: ef_fetch,
                },
                None,
            )?;
            hits.retain(|n| allow.contains(n.id));
            if hits.len() >= params.k {
                hits.truncate(params.k);
                return Ok(hits);
            }
            search_with(index, query, params, Some(allow), Strategy::Filtered)
        }
        Strategy::Filtered => {
            let live = index.len();
            let ef = filtered_ef(params, live, allow.len());
            let accept = |id: RowId| allow.contains(id);
            let hits = index.search(query, SearchParams { k: params.k, ef }, Some(&accept))?;
            if hits.len() < params.k {
                // Short: exact, unless the allowed set really has no more live rows.
                let needed = params.k.min(allow.len());
                let live_allowed = allow
                    .ids()
                    .iter()
                    .filter(|id| index.contains(**id))
                    .take(needed)
                    .count();
                if hits.len() < live_allowed {
                    tracing::debug!(
                        got = hits.len(),
                        live_allowed,
                        "filtered graph search came back short; exact fallback"
                    );
                    return index.search_among(query, params.k, allow.ids());
                }
            }
            Ok(hits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_set_dedups_and_sorts() {
        let a: AllowSet = [RowId(5), RowId(1), RowId(5)].into_iter().collect();
        assert_eq!(a.ids(), &[RowId(1), RowId(5)]);
        assert_eq!(a.len(), 2);
        assert!(a.contains(RowId(5)) && !a.contains(RowId(2)));
    }

    #[test]
    fn choice_follows_the_crossover() {
        assert_eq!(choose(1_000_000, None), Strategy::Unfiltered);
        assert_eq!(choose(1_000_000, Some(EXACT_MAX_COUNT)), Strategy::Exact);
        assert_eq!(choose(1_000_000, Some(19_000)), Strategy::Exact);
        assert_eq!(choose(1_000_000, Some(100_000)), Strategy::Filtered);
        assert_eq!(choose(1_000_000, Some(500_000)), Strategy::PostFilter);
    }

    #[test]
    fn ef_rises_as_selectivity_drops() {
        let p = SearchParams { k: 10, ef: 64 };
        assert_eq!(filtered_ef(p, 1000, 1000), 64);
        assert_eq!(filtered_ef(p, 1000, 50), 200);
        assert_eq!(filtered_ef(p, 1_000_000, 1), FILTERED_EF_CAP);
    }
}
