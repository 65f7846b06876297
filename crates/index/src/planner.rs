//! Filter-aware search planner: chooses between the graph and exact search by the
//! cardinality of the allowed set (as qdrant and Lucene do).
//!
//! * no allow-set → [`VectorIndex::search`];
//! * a selective allow-set → [`VectorIndex::search_among`], exact over the allowed ids.
//!   Exact search costs ~`allowed` distance evaluations, a graph search ~`ef / selectivity`
//!   = `ef * live / allowed`, so exact wins while `allowed² <= ratio * ef * live`, with the
//!   engine's `ratio` measured ([`Costs`]); at most [`EXACT_MAX_COUNT`] ids always go exact;
//! * a broad allow-set (at least the engine's `postfilter_min_fraction` of the live rows) →
//!   an unfiltered graph search over-fetching `k / selectivity`, keeping the allowed hits
//!   ([`Strategy::PostFilter`]; one wider retry, then the next branch if still short);
//! * otherwise the graph search with the allow-set as filter, `ef` raised as the
//!   selectivity drops ([`filtered_ef`]) for engines that need it; if that returns fewer than
//!   `min(k, allowed live rows)` hits, exact search over the allowed ids instead.
//!
//! So even a 0.1 %-selective filter returns the true `k` nearest allowed rows.
//! The constants come from `quiverdb-bench ann --planner-crossover` on 100,000 x 128 L2
//! (see `docs/BENCHMARKS.md`, `## ANN`).

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use quiverdb_types::RowId;

use crate::hnsw_rs_engine::RowIdHasher;
use crate::{IndexError, Neighbor, SearchParams, VectorIndex};

/// Allowed sets of at most this many ids always go to exact search.
pub const EXACT_MAX_COUNT: usize = 1_000;

/// An engine's measured planner constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Exact search while `allowed² <= exact_ratio * max(ef, k) * live`.
    pub exact_ratio: f64,
    /// Post-filter an over-fetched unfiltered search from this selectivity on.
    pub postfilter_min_fraction: f64,
    /// Whether a filtered graph search needs `ef` raised as the selectivity drops
    /// ([`filtered_ef`]): yes when rejected nodes take places in the beam (hnsw_rs), no
    /// when the beam holds admitted nodes only (the native two-hop walk).
    pub raise_ef: bool,
}

/// hnsw_rs: its filtered walk never exits early, so filtering is slow at any selectivity
/// (measured crossover with exact near 17,000 of 100,000 at ef 64; post-filtering beat the
/// filter hook at every selectivity from 5 %).
pub const HNSW_RS_COSTS: Costs = Costs {
    exact_ratio: 45.0,
    postfilter_min_fraction: 0.0,
    raise_ef: true,
};
/// The native HNSW (two-hop filtered walk, `ef` not raised): crossover with exact near
/// 4,000 of 100,000 at ef 64 (filtered 4,815 vs exact 3,622 QPS at 5 %, 3,580 vs 5,736 at
/// 3 %, and recall falls below 0.98 under 3 %). Post-filtering wins from about 40 %: with
/// the inlined membership test (`--planner-crossover`, ef 64, filtered vs post-filtered
/// QPS) synth-128 8,779 vs 5,932 at 30 %, 7,679 vs 8,393 at 50 %; minilm-384 3,548 vs
/// 2,798 at 30 %, 3,821 vs 4,581 at 50 %.
pub const NATIVE_COSTS: Costs = Costs {
    exact_ratio: 2.5,
    postfilter_min_fraction: 0.4,
    raise_ef: false,
};
/// The flat engine: exact over the allowed ids is always cheapest.
pub const FLAT_COSTS: Costs = Costs {
    exact_ratio: f64::INFINITY,
    postfilter_min_fraction: 1.0,
    raise_ef: false,
};

/// The constants for an engine, by its [`crate::IndexStats::engine`] name (unknown engines
/// get the native ones).
pub fn costs_for(engine: &str) -> Costs {
    match engine {
        "hnsw_rs" => HNSW_RS_COSTS,
        "flat" => FLAT_COSTS,
        _ => NATIVE_COSTS,
    }
}

/// Upper bound of the raised `ef` of a filtered graph search.
pub const FILTERED_EF_CAP: usize = 2_048;

/// The row ids a search may return (the result of a metadata filter).
///
/// Membership is asked once per node a filtered graph walk meets (about ten times per
/// scored node at 10 % selectivity), so it is a bit test when the ids are dense enough for
/// a bitmap over their span to cost no more than the sorted list (at most 64 bits per id),
/// and a hash lookup otherwise. On minilm-384 at 10 % the bitmap (with the link prefetch of
/// the walk) took the filtered walk from 0.29 to 0.42 of the unfiltered QPS.
///
/// # Invariants
/// `sorted` holds exactly the allowed ids, ascending, without duplicates; `members`
/// answers `contains` for exactly those ids.
#[derive(Debug, Clone, Default)]
pub struct AllowSet {
    members: Members,
    sorted: Vec<RowId>,
}

#[derive(Debug, Clone)]
enum Members {
    /// Bit `id - first` of `words` is set for each allowed id.
    Bits {
        first: u64,
        words: Box<[u64]>,
    },
    Hash(HashSet<RowId, BuildHasherDefault<RowIdHasher>>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Bits {
            first: 0,
            words: Box::default(),
        }
    }
}

/// A bitmap is used while the ids' span is at most this many times their count.
const BITMAP_MAX_SPAN_PER_ID: u64 = 64;

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
    #[inline]
    pub fn contains(&self, id: RowId) -> bool {
        match &self.members {
            Members::Bits { first, words } => {
                let Some(bit) = id.0.checked_sub(*first) else {
                    return false;
                };
                usize::try_from(bit / 64)
                    .ok()
                    .and_then(|w| words.get(w))
                    .is_some_and(|w| w >> (bit % 64) & 1 == 1)
            }
            Members::Hash(set) => set.contains(&id),
        }
    }

    /// The allowed ids, ascending.
    pub fn ids(&self) -> &[RowId] {
        &self.sorted
    }

    /// Whether membership is a bit test (else a hash lookup); for tests and benchmarks.
    pub fn is_bitmap(&self) -> bool {
        matches!(self.members, Members::Bits { .. })
    }
}

impl FromIterator<RowId> for AllowSet {
    fn from_iter<I: IntoIterator<Item = RowId>>(iter: I) -> Self {
        let mut sorted: Vec<RowId> = iter.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let members = match (sorted.first(), sorted.last()) {
            (Some(first), Some(last))
                if (last.0 - first.0) / BITMAP_MAX_SPAN_PER_ID <= sorted.len() as u64 =>
            {
                let span = last.0 - first.0 + 1;
                let mut words = vec![0u64; span.div_ceil(64) as usize].into_boxed_slice();
                for id in &sorted {
                    let bit = id.0 - first.0;
                    words[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                Members::Bits {
                    first: first.0,
                    words,
                }
            }
            (Some(_), Some(_)) => Members::Hash(sorted.iter().copied().collect()),
            _ => Members::default(),
        };
        AllowSet { members, sorted }
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
pub fn choose(costs: Costs, live: usize, allowed: Option<usize>, params: SearchParams) -> Strategy {
    let Some(a) = allowed else {
        return Strategy::Unfiltered;
    };
    let ef = params.ef.max(params.k) as f64;
    let (a, live_f) = (a as f64, live as f64);
    if a <= EXACT_MAX_COUNT as f64 || a * a <= costs.exact_ratio * ef * live_f {
        Strategy::Exact
    } else if a >= costs.postfilter_min_fraction * live_f {
        Strategy::PostFilter
    } else {
        Strategy::Filtered
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
    let strategy = match allow {
        None => Strategy::Unfiltered,
        Some(a) => choose(
            costs_for(index.stats().engine),
            index.len(),
            Some(a.len()),
            params,
        ),
    };
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
            for widen in [1.0, 4.0] {
                // 1.5x the expected need plus a margin makes a short answer rare.
                let k_fetch = ((params.k as f64 / selectivity) * 1.5 * widen).ceil() as usize + 8;
                let ef_fetch = ((params.ef.max(params.k) as f64 / selectivity).ceil() as usize)
                    .clamp(k_fetch, FILTERED_EF_CAP.max(k_fetch));
                let p = SearchParams {
                    k: k_fetch,
                    ef: ef_fetch,
                };
                let mut hits = index.search(query, p, None)?;
                hits.retain(|n| allow.contains(n.id));
                if hits.len() >= params.k || k_fetch >= live {
                    if hits.len() >= params.k.min(allow.len()) {
                        hits.truncate(params.k);
                        return Ok(hits);
                    }
                    break;
                }
            }
            search_with(index, query, params, Some(allow), Strategy::Filtered)
        }
        Strategy::Filtered => {
            let live = index.len();
            let ef = if costs_for(index.stats().engine).raise_ef {
                filtered_ef(params, live, allow.len())
            } else {
                params.ef.max(params.k)
            };
            let hits = index.search_allowed(query, SearchParams { k: params.k, ef }, allow)?;
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

    /// Dense and sparse sets (bitmap and hash) agree with the list they were built from,
    /// at the edges of the span and of each 64-bit word, and for ids far outside it.
    #[test]
    fn allow_set_membership_matches_its_ids_either_way() {
        let dense: Vec<u64> = (1_000..3_000).filter(|i| i % 3 == 0).collect();
        let sparse: Vec<u64> = vec![7, 1 << 40, u64::MAX - 1, 64, 65];
        let empty: Vec<u64> = Vec::new();
        for (ids, bitmap) in [(dense, true), (sparse, false), (empty, true)] {
            let a: AllowSet = ids.iter().map(|&i| RowId(i)).collect();
            assert_eq!(a.is_bitmap(), bitmap, "{ids:?}");
            assert_eq!(a.len(), ids.len());
            let probes = ids
                .iter()
                .flat_map(|&i| [i.wrapping_sub(1), i, i.wrapping_add(1), i ^ 63, i ^ 64])
                .chain([0, 1, 998, 999, 1_000, 3_000, 3_001, u64::MAX]);
            for probe in probes {
                assert_eq!(a.contains(RowId(probe)), ids.contains(&probe), "{probe}");
            }
        }
    }

    #[test]
    fn choice_follows_the_crossover() {
        let p = SearchParams { k: 10, ef: 64 };
        let n = 100_000;
        for costs in [HNSW_RS_COSTS, NATIVE_COSTS, FLAT_COSTS] {
            assert_eq!(choose(costs, n, None, p), Strategy::Unfiltered);
            assert_eq!(choose(costs, n, Some(EXACT_MAX_COUNT), p), Strategy::Exact);
        }
        assert_eq!(choose(HNSW_RS_COSTS, n, Some(15_000), p), Strategy::Exact);
        assert_eq!(
            choose(HNSW_RS_COSTS, n, Some(20_000), p),
            Strategy::PostFilter
        );
        assert_eq!(choose(NATIVE_COSTS, n, Some(3_500), p), Strategy::Exact);
        assert_eq!(choose(NATIVE_COSTS, n, Some(5_000), p), Strategy::Filtered);
        assert_eq!(choose(NATIVE_COSTS, n, Some(10_000), p), Strategy::Filtered);
        assert_eq!(choose(NATIVE_COSTS, n, Some(35_000), p), Strategy::Filtered);
        assert_eq!(
            choose(NATIVE_COSTS, n, Some(50_000), p),
            Strategy::PostFilter
        );
        assert_eq!(choose(FLAT_COSTS, n, Some(90_000), p), Strategy::Exact);
        // A larger collection moves the crossover to a smaller fraction.
        assert_eq!(
            choose(HNSW_RS_COSTS, 10 * n, Some(60_000), p),
            Strategy::PostFilter
        );
        assert_eq!(costs_for("hnsw_rs"), HNSW_RS_COSTS);
        assert_eq!(costs_for("native-hnsw"), NATIVE_COSTS);
    }

    #[test]
    fn ef_rises_as_selectivity_drops() {
        let p = SearchParams { k: 10, ef: 64 };
        assert_eq!(filtered_ef(p, 1000, 1000), 64);
        assert_eq!(filtered_ef(p, 1000, 50), 200);
        assert_eq!(filtered_ef(p, 1_000_000, 1), FILTERED_EF_CAP);
    }
}
