//! Graph walks: the greedy descent, the beam search of one layer used while building, and
//! the filtered level-0 search of a query.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use quiverdb_types::RowId;

use super::graph::Graph;
use crate::engine::{Rows, Scored, TopK};
use crate::kernels;
use crate::quant::{Sq8, Sq8Query};
use crate::Neighbor;

/// How a walk scores nodes: against their f32 vectors, or against their 8-bit codes (a
/// quarter of the memory to fetch per node; the query walk then re-ranks its final
/// candidates exactly, see [`search_query`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Probe<'a> {
    Exact(&'a [f32]),
    Codes(&'a Sq8, &'a Sq8Query),
}

impl Probe<'_> {
    #[inline]
    fn dist(&self, g: &Graph, slot: u32) -> f32 {
        match *self {
            Probe::Exact(q) => g.dist(q, g.vector(slot)),
            Probe::Codes(sq, p) => sq.distance(&g.kernels, p, g.code(slot)),
        }
    }

    #[inline]
    fn codes(&self) -> bool {
        matches!(self, Probe::Codes(..))
    }
}

/// A visited set reset in O(1): a node is visited when its stamp equals the current
/// generation, and rejected (by a filter, in this query) when it equals the generation
/// with the top bit set; one array, so a filtered walk checks both with one load.
#[derive(Debug, Default)]
pub(super) struct Visited {
    /// 16-bit stamps keep the array small (cache); it is cleared once every 32,767 uses.
    stamps: Vec<u16>,
    generation: u16,
}

const REJECTED: u16 = 0x8000;

impl Visited {
    pub(super) fn reset(&mut self, n: usize) {
        if self.stamps.len() < n {
            self.stamps.resize(n.next_power_of_two(), 0);
        }
        self.generation += 1;
        if self.generation >= REJECTED {
            self.stamps.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `i` visited (a rejected mark is overwritten); returns whether it was not.
    #[inline]
    pub(super) fn insert(&mut self, i: u32) -> bool {
        match self.stamps.get_mut(i as usize) {
            Some(s) if *s != self.generation => {
                *s = self.generation;
                true
            }
            _ => false,
        }
    }

    /// The mark of `i`: visited, rejected, or neither (out of range counts as visited).
    #[inline]
    fn mark(&self, i: u32) -> Mark {
        match self.stamps.get(i as usize) {
            Some(&s) if s == self.generation | REJECTED => Mark::Rejected,
            Some(&s) if s != self.generation => Mark::New,
            _ => Mark::Visited,
        }
    }

    /// Marks `i` rejected (the caller saw it unmarked).
    #[inline]
    fn reject(&mut self, i: u32) {
        if let Some(s) = self.stamps.get_mut(i as usize) {
            *s = self.generation | REJECTED;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    Visited,
    Rejected,
}

/// Per-thread buffers, pooled by the index so a search allocates nothing once warm.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Also holds which nodes the filter rejected in this query: each is asked once (the
    /// neighbourhoods a two-hop walk looks through overlap a lot).
    pub(super) visited: Visited,
    candidates: BinaryHeap<Reverse<Scored<u32>>>,
    results: BinaryHeap<Scored<u32>>,
    links: Vec<u32>,
    /// Links of a filtered-out neighbour (the second hop of a filtered walk).
    hop: Vec<u32>,
    /// Filtered-out neighbours of the node being expanded.
    blocked: Vec<u32>,
    fresh: Vec<u32>,
    pub(super) layer: Vec<Scored<u32>>,
    /// The query prepared for code distances (kept for its buffer).
    pub(super) sq8_query: Sq8Query,
}

type Dist = Scored<u32>;

/// How many nodes ahead of the one being scored a walk prefetches vectors: scoring one
/// takes less than a memory round trip. One ahead to two: unfiltered QPS at ef 64 +6 %
/// on minilm-384 (7,692 / 7,875 -> 8,183 / 8,356) and +7 % on synth-128 (13,304 / 13,386
/// -> 14,251 / 14,202), same recall.
const PREFETCH_AHEAD: usize = 2;
/// The same for walks on 8-bit codes (a quarter of the lines per node, so more nodes fit
/// in flight). 2 / 6 / 12 ahead, QPS at ef 64, two rounds: minilm-384 12,681 / 14,476 /
/// 17,026 and 13,185 / 16,840 / 17,334; synth-128 23,968 / 26,289 / 20,966 and 21,338 /
/// 23,027 / 23,314; `search_scaling` 1M (ms per 100) 17.19 / 10.63 / 10.29, 13.83 / 12.18
/// / 11.93, 16.00 / 10.55 / 12.16. Recall unchanged.
const CODE_PREFETCH_AHEAD: usize = 6;

/// How many nodes ahead a walk prefetches.
#[inline]
fn ahead(codes: bool) -> usize {
    if codes {
        CODE_PREFETCH_AHEAD
    } else {
        PREFETCH_AHEAD
    }
}

fn prefetch_node(g: &Graph, slot: u32, codes: bool) {
    if codes {
        for line in g.code(slot).iter().step_by(64) {
            kernels::prefetch_line(line);
        }
        return;
    }
    let v = g.vector(slot);
    // One hint per 64-byte line, for up to 1 KiB; the hardware prefetcher follows the rest
    // of a longer row.
    let mut i = 0;
    while i < v.len().min(256) {
        kernels::prefetch(&v[i..]);
        i += 16;
    }
}

/// Prefetches the level-0 link list of `slot` (every line of it).
#[inline]
fn prefetch_links(g: &Graph, slot: u32) {
    for line in g.link_slot(slot, 0).iter().step_by(16) {
        kernels::prefetch_line(line);
    }
}

/// Moves `cur` to the closest node reachable greedily at `level`.
pub(super) fn greedy(g: &Graph, probe: &Probe<'_>, cur: &mut Dist, level: u8, s: &mut Scratch) {
    loop {
        let mut changed = false;
        g.read_links(cur.item, level, &mut s.links);
        for &nb in &s.links {
            let d = probe.dist(g, nb);
            if d < cur.dist {
                *cur = Scored { dist: d, item: nb };
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Beam search of width `ef` at `level` from `ep`, over every node (tombstones included).
/// Leaves the result, closest first, in `s.layer`.
pub(super) fn search_layer(g: &Graph, q: &[f32], ep: Dist, ef: usize, level: u8, s: &mut Scratch) {
    s.visited.reset(g.len());
    s.candidates.clear();
    s.results.clear();
    s.visited.insert(ep.item);
    s.candidates.push(Reverse(ep));
    s.results.push(ep);
    while let Some(Reverse(c)) = s.candidates.pop() {
        let worst = s.results.peek().map_or(f32::INFINITY, |r| r.dist);
        if c.dist > worst && s.results.len() >= ef {
            break;
        }
        g.read_links(c.item, level, &mut s.links);
        expand(g, s, false);
        for i in 0..s.fresh.len() {
            if let Some(&next) = s.fresh.get(i + PREFETCH_AHEAD) {
                prefetch_node(g, next, false);
            }
            let nb = s.fresh[i];
            let d = g.dist(q, g.vector(nb));
            let worst = s.results.peek().map_or(f32::INFINITY, |r| r.dist);
            if s.results.len() < ef || d < worst {
                let e = Scored { dist: d, item: nb };
                s.candidates.push(Reverse(e));
                s.results.push(e);
                if s.results.len() > ef {
                    s.results.pop();
                }
            }
        }
    }
    s.layer.clear();
    s.layer.extend(s.results.drain());
    s.layer.sort_unstable();
}

/// Keeps the not-yet-visited links of `s.links` in `s.fresh`, marking them visited.
#[inline]
fn expand(g: &Graph, s: &mut Scratch, codes: bool) {
    s.fresh.clear();
    for &nb in &s.links {
        if s.visited.insert(nb) {
            s.fresh.push(nb);
        }
    }
    for &first in s.fresh.iter().take(ahead(codes)) {
        prefetch_node(g, first, codes);
    }
}

/// Filter checks a walk makes before it judges the filter's selectivity (once)...
const SPARSE_PROBE: usize = 512;
/// ... and gives up for the exact scan when fewer than one check in this many passed.
const SPARSE_RATIO: usize = 50;

/// How the query search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Normal termination.
    Done,
    /// The walk found fewer than `k` admitted nodes, or hit the work bound before `ef`
    /// were found: the caller should answer by an exact scan instead.
    Exhausted,
}

/// The `k` best admitted nodes (live and accepted by `allow`) for a query.
///
/// Without a filter this is the usual beam search; tombstones are scored and kept as
/// candidates (stepping stones) but never enter the results. With a filter the level-0
/// walk only ever scores admitted nodes (ACORN-1, Patel et al. 2024): a rejected neighbour
/// is not scored but looked through, its own admitted neighbours joining the expansion (two
/// hops), up to `2M` new nodes per expansion. So the beam of `ef` holds admitted nodes
/// only, early exit works as unfiltered, and the distance work stays near the unfiltered
/// search's at moderate selectivity. `budget` bounds the distance evaluations (and 32 times
/// that the filter calls) made while fewer than `ef` admitted nodes have been found.
#[allow(clippy::too_many_arguments)]
pub(super) fn search_query<F>(
    g: &Graph,
    q: &[f32],
    probe: &Probe<'_>,
    k: usize,
    ef: usize,
    budget: usize,
    allow: Option<&F>,
    s: &mut Scratch,
    out: &mut Vec<Neighbor>,
) -> Outcome
where
    F: Fn(RowId) -> bool + ?Sized,
{
    out.clear();
    let Some((ep, top)) = g.entry() else {
        return Outcome::Done;
    };
    let codes = probe.codes();
    let mut cur = Scored {
        dist: probe.dist(g, ep),
        item: ep,
    };
    for level in (1..=top).rev() {
        greedy(g, probe, &mut cur, level, s);
    }
    let everyone = allow.is_none() && g.live() == g.len();
    let no_tombstones = g.live() == g.len();
    let admitted = |slot: u32| -> bool {
        everyone
            || ((no_tombstones || !g.is_deleted(slot))
                && allow.is_none_or(|f| f(g.ids[slot as usize])))
    };
    s.visited.reset(g.len());
    s.candidates.clear();
    s.results.clear();
    s.visited.insert(cur.item);
    s.candidates.push(Reverse(cur));
    let mut bound = f32::INFINITY;
    if admitted(cur.item) {
        s.results.push(cur);
        bound = cur.dist;
    }
    let mut evaluated = 0usize;
    let mut checked = 0usize;
    let mut admitted_seen = 0usize;
    let mut judged = false;
    while let Some(Reverse(c)) = s.candidates.pop() {
        if c.dist > bound && s.results.len() >= ef {
            break;
        }
        // The next node to expand is likely the best candidate now: start loading its
        // links while this one's neighbours are scored.
        if let Some(Reverse(next)) = s.candidates.peek() {
            prefetch_links(g, next.item);
        }
        g.read_links(c.item, 0, &mut s.links);
        if allow.is_none() {
            // Tombstones only: score every neighbour, dead ones too (they stay in the
            // candidates as stepping stones, never in the results). Measured against the
            // two-hop walk on 30 % deleted: ~7,400 vs ~5,700 QPS, same recall.
            expand(g, s, codes);
        } else {
            let (c, a) = expand_admitted(g, s, &admitted, codes);
            checked += c;
            admitted_seen += a;
            // Below ~2 % admitted the two-hop neighbourhoods stop connecting the admitted
            // nodes (recall drops under 0.9 at 1 %): the exact scan is both right and cheap.
            // Judged once, early: later checks mostly meet rejected nodes again around
            // admitted ones already visited, so the ratio then understates the selectivity.
            if !judged && checked >= SPARSE_PROBE {
                judged = true;
                if admitted_seen * SPARSE_RATIO < checked {
                    return Outcome::Exhausted;
                }
            }
        }
        if s.results.len() < ef {
            evaluated += s.fresh.len();
            if evaluated > budget || checked > budget.saturating_mul(32) {
                return Outcome::Exhausted;
            }
        }
        for i in 0..s.fresh.len() {
            if let Some(&next) = s.fresh.get(i + ahead(codes)) {
                prefetch_node(g, next, codes);
            }
            let nb = s.fresh[i];
            let d = probe.dist(g, nb);
            if s.results.len() < ef || d < bound {
                let e = Scored { dist: d, item: nb };
                s.candidates.push(Reverse(e));
                // Only the tombstone walk meets non-admitted nodes here.
                if allow.is_some() || admitted(nb) {
                    s.results.push(e);
                    if s.results.len() > ef {
                        s.results.pop();
                    }
                    bound = s.results.peek().map_or(f32::INFINITY, |r| r.dist);
                }
            }
        }
    }
    if s.results.len() < k && allow.is_some() {
        // The admitted part of the graph reachable in two hops ran out: maybe there are
        // fewer than `k` admitted rows, maybe they are scattered; the exact scan knows.
        return Outcome::Exhausted;
    }
    s.layer.clear();
    s.layer.extend(s.results.drain());
    if codes {
        // Re-rank by the exact distance: the answer's order and distances are exact; the
        // codes only chose which `ef` nodes to consider.
        for i in 0..s.layer.len() {
            if let Some(next) = s.layer.get(i + PREFETCH_AHEAD) {
                prefetch_node(g, next.item, false);
            }
            let e = &mut s.layer[i];
            e.dist = g.dist(q, g.vector(e.item));
        }
    }
    s.layer.sort_unstable();
    out.extend(s.layer.iter().take(k).map(|e| Neighbor {
        id: g.ids[e.item as usize],
        distance: e.dist,
    }));
    Outcome::Done
}

/// Fills `s.fresh` with the not-yet-visited admitted nodes among `s.links` and, through
/// the rejected ones (closest first, as lists are kept), among their links, up to `2M`;
/// marks them visited. Returns how many filter checks it made and how many passed.
#[inline]
fn expand_admitted(
    g: &Graph,
    s: &mut Scratch,
    admitted: &impl Fn(u32) -> bool,
    codes: bool,
) -> (usize, usize) {
    s.fresh.clear();
    s.blocked.clear();
    // One hop: ask the filter about the new neighbours (row ids loaded up front, as below),
    // then collect the rejected ones in list order (closest first) to look through.
    s.hop.clear();
    let visited = &s.visited;
    s.hop
        .extend(s.links.iter().filter(|&&nb| visited.mark(nb) == Mark::New));
    prefetch_ids(g, &s.hop);
    let checked_1 = s.hop.len();
    for &nb in &s.hop {
        if admitted(nb) {
            s.visited.insert(nb);
            s.fresh.push(nb);
        } else {
            s.visited.reject(nb);
        }
    }
    let visited = &s.visited;
    s.blocked.extend(
        s.links
            .iter()
            .filter(|&&nb| visited.mark(nb) == Mark::Rejected),
    );
    let mut checked = checked_1;
    // Up to `2M` new admitted nodes per expansion. Fewer is faster but loses recall at
    // 1M (10% filter, ef 64, filtered / unfiltered QPS and recall): 100k: cap 32 0.69 /
    // 0.9999, 16 0.81 / 0.9989, 8 0.78 / 0.994; 1M: 32 0.25 / 0.963, 16 0.29 / 0.947,
    // 8 0.54 / 0.887; through the planner on 1M, cap 16 gave 0.933 (ef 64) and 0.9496
    // (ef 128) against 0.964 and 0.976 for 32. Re-measured with the inlined bitmap test and
    // the link prefetch (ratio / recall at ef 64): minilm-384 32 0.44 / 0.992, 24 0.48 /
    // 0.989, 20 0.52 / 0.984; 1M x 128 recall 0.963, 0.958, 0.952.
    let cap = g.m0;
    // Prefetch every line of the lists about to be read, so their cache misses overlap
    // instead of coming one after the other inside the loop below (minilm-384, 10 %:
    // touching the first word of 16 lists gave 0.33 of the unfiltered QPS, prefetching
    // all lines of 8 lists 0.36, of 16 0.41, of 32 0.42).
    for &b in s.blocked.iter().take(2 * g.m0) {
        let list = g.link_slot(b, 0);
        for line in list.iter().step_by(16) {
            kernels::prefetch_line(line);
        }
    }
    for &b in &s.blocked {
        if s.fresh.len() >= cap {
            break;
        }
        // A rejected node is looked through once; one not reached now (the cap) stays
        // unvisited, so a later expansion may still look through it.
        if !s.visited.insert(b) {
            continue;
        }
        g.read_links(b, 0, &mut s.hop);
        // Keep the nodes not seen yet and prefetch their row ids up front, so their misses
        // overlap instead of coming one per filter call below.
        let visited = &s.visited;
        s.hop.retain(|&nb| visited.mark(nb) == Mark::New);
        prefetch_ids(g, &s.hop);
        for &nb in &s.hop {
            checked += 1;
            if admitted(nb) {
                s.visited.insert(nb);
                s.fresh.push(nb);
                if s.fresh.len() >= cap {
                    break;
                }
            } else {
                s.visited.reject(nb);
            }
        }
    }
    for &first in s.fresh.iter().take(ahead(codes)) {
        prefetch_node(g, first, codes);
    }
    (checked, s.fresh.len())
}

/// Prefetches the row ids of `slots` (their cache misses overlap), so the filter calls
/// that follow find them in cache.
#[inline]
fn prefetch_ids(g: &Graph, slots: &[u32]) {
    for &nb in slots {
        if let Some(id) = g.ids.get(nb as usize) {
            kernels::prefetch_line(id);
        }
    }
}

/// Exact answer over every admitted node (small graphs, and the fallback for very
/// selective filters). Unfiltered, the rows are scored 64 at a time by one kernel call
/// ([`Rows::top_k`]; a call per row cost a quarter of a 1,000 × 384 scan). A filter is asked
/// first, row by row, instead. (Scoring four rows per step with a kernel of its own was
/// measured slower earlier: `search_scaling 1000`, 2.62 vs 2.31 ms per 100 searches.)
pub(super) fn exact_scan<F>(g: &Graph, q: &[f32], k: usize, allow: Option<&F>) -> Vec<Neighbor>
where
    F: Fn(RowId) -> bool + ?Sized,
{
    let Some(allow) = allow else {
        return rows(g).top_k(g.kernels, g.metric, q, k, None::<&F>);
    };
    // A filter is asked first, row by row: it may leave out most rows, whose distances
    // would be wasted work.
    let mut top = TopK::new(k);
    for slot in 0..g.len() as u32 {
        if g.is_deleted(slot) {
            continue;
        }
        let id = g.ids[slot as usize];
        if allow(id) {
            let d = g.dist(q, g.vector(slot));
            if top.accepts(d) {
                top.push(d, id);
            }
        }
    }
    top.into_sorted()
}

/// The graph's vectors as a scan reads them: back to back, deleted slots left out.
pub(super) fn rows(g: &Graph) -> Rows<'_, impl Fn(usize) -> bool + '_> {
    Rows {
        ids: &g.ids,
        vectors: &g.vectors,
        dim: g.dim,
        skip: |slot| g.is_deleted(slot as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::{Mark, Visited};

    #[test]
    fn visited_survives_generation_wrap() {
        let mut v = Visited::default();
        for round in 0..70_000u32 {
            v.reset(10);
            assert_eq!(v.mark(4), Mark::New, "round {round}");
            v.reject(4);
            assert_eq!(v.mark(4), Mark::Rejected);
            assert!(v.insert(4), "visiting overrides a rejection");
            assert!(v.insert(3), "round {round}");
            assert!(!v.insert(3));
            assert_eq!(v.mark(3), Mark::Visited);
        }
        assert!(!v.insert(100), "out of range is never new");
    }
}
