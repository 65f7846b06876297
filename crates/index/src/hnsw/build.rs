//! Insertion: find neighbours layer by layer, keep them with the HNSW paper's heuristic,
//! and link both ways (shrinking overfull lists with the same heuristic).

use parking_lot::Mutex;

use super::graph::Graph;
use super::search::{greedy, search_layer, Probe, Scratch};
use crate::engine::Scored;

/// Neighbour selection: the paper's heuristic (Malkov & Yashunin, algorithm 4, as in
/// hnswlib), then its `keepPrunedConnections` up to `min_kept`. Walks `cands` (sorted
/// closest first) and keeps a candidate only if it is closer to the base than to every
/// neighbour already kept, up to `max`; then, while fewer than `min_kept` are kept, the
/// closest of the pruned ones. The kept ones are left in `out`.
///
/// Why fill at all: hnswlib and faiss never do. On data whose distances crowd together, as
/// the built-in hashing embedder's vectors of `search_scaling`'s templated texts do (their
/// numbers follow `frac(i * golden ratio)`, not random draws; nearest neighbour at squared
/// distance 0.41, median pair at 0.52), the heuristic keeps one or two
/// hub nodes for each new node, so each new node gets one or two reverse links, which the
/// hubs' overfull lists soon prune away: most nodes end up with no link in. Recall@3 on
/// 100,000 such vectors was 0.18 at ef 64 and 0.35 at ef 4,096 (hnswlib 0.23, faiss 0.59 at
/// ef 64).
///
/// The rule, measured (`docs/BENCHMARKS.md`, "Filling the neighbour lists"): a new node
/// keeps at least `m / 2` links of its own, and a list shrunk because it overflowed stays
/// full. Those vectors then give 0.63 at ef 64 and 0.84 at ef 256; minilm-384, synth-128 and
/// synth-384-cos give the same or better recall at every ef for about the same time.
/// Filling a new node's list to all `m` slots gives 0.70 there but costs low-dimensional
/// clustered data up to 0.13 of recall (its lists fill with close links, so reverse links
/// find no free slot); half costs it at most 0.013. The compaction's repair keeps the
/// heuristic alone.
pub(super) fn select_neighbors(
    g: &Graph,
    cands: &[Scored<u32>],
    max: usize,
    min_kept: usize,
    out: &mut Vec<u32>,
) {
    out.clear();
    if cands.len() <= max {
        out.extend(cands.iter().map(|c| c.item));
        return;
    }
    for c in cands {
        if out.len() >= max {
            return;
        }
        let cv = g.vector(c.item);
        if out.iter().all(|&r| g.dist(cv, g.vector(r)) >= c.dist) {
            out.push(c.item);
        }
    }
    let fill_to = min_kept.min(max);
    for c in cands {
        if out.len() >= fill_to {
            return;
        }
        if !out.contains(&c.item) {
            out.push(c.item);
        }
    }
}

/// Links the already-pushed node `q` into the graph.
///
/// `entry_lock` is held for the whole insertion when `q` may become the new entry point
/// (its level is above the current top, or the graph has no entry yet), as in hnswlib.
pub(super) fn link(
    g: &Graph,
    q: u32,
    ef_construction: usize,
    entry_lock: &Mutex<()>,
    s: &mut Scratch,
) {
    let level = g.levels[q as usize];
    let mut _guard = None;
    let needs_lock = g.entry().is_none_or(|(_, top)| level > top);
    if needs_lock {
        _guard = Some(entry_lock.lock());
    }
    let Some((ep, top)) = g.entry() else {
        g.set_entry(q, level);
        return;
    };
    let qv = g.vector(q);
    let mut cur = Scored {
        dist: g.dist(qv, g.vector(ep)),
        item: ep,
    };
    for l in (level.saturating_add(1)..=top).rev() {
        greedy(g, &Probe::Exact(qv), &mut cur, l, s);
    }
    let mut chosen = Vec::with_capacity(g.m0);
    let mut shrink = Vec::with_capacity(g.m0 + 1);
    let mut current = Vec::with_capacity(g.m0);
    let mut merged = Vec::with_capacity(g.m0 + g.m);
    for l in (0..=level.min(top)).rev() {
        search_layer(g, qv, cur, ef_construction, l, s);
        s.layer.retain(|c| c.item != q);
        if let Some(&best) = s.layer.first() {
            cur = best;
        }
        // A new node keeps at least half its slots (see `select_neighbors`).
        select_neighbors(g, &s.layer, g.m, g.m / 2, &mut chosen);
        {
            // A concurrent insert may already have linked itself into `q`'s list at this
            // level (it reached `q` through a level above): keep those links.
            let _l = g.link_locks[q as usize].lock();
            g.read_links(q, l, &mut current);
            merged.clear();
            merged.extend_from_slice(&chosen);
            merged.extend(current.iter().filter(|c| !chosen.contains(c)));
            if merged.len() > g.capacity(l) {
                shrink.clear();
                shrink.extend(merged.iter().map(|&c| Scored {
                    dist: g.dist(qv, g.vector(c)),
                    item: c,
                }));
                shrink.sort_unstable();
                select_neighbors(g, &shrink, g.capacity(l), g.capacity(l), &mut merged);
            }
            g.write_links(q, l, &merged);
        }
        for &n in &chosen {
            add_reverse_link(g, n, q, l, &mut current, &mut shrink);
        }
    }
    if level > top {
        g.set_entry(q, level);
    }
}

/// Adds `q` to the links of `n` at `level`, shrinking with the heuristic when full.
fn add_reverse_link(
    g: &Graph,
    n: u32,
    q: u32,
    level: u8,
    current: &mut Vec<u32>,
    shrink: &mut Vec<Scored<u32>>,
) {
    let _l = g.link_locks[n as usize].lock();
    g.read_links(n, level, current);
    if current.contains(&q) {
        return;
    }
    let cap = g.capacity(level);
    if current.len() < cap {
        current.push(q);
        g.write_links(n, level, current);
        return;
    }
    let nv = g.vector(n);
    shrink.clear();
    shrink.extend(current.iter().chain(std::iter::once(&q)).map(|&c| Scored {
        dist: g.dist(nv, g.vector(c)),
        item: c,
    }));
    shrink.sort_unstable();
    // A shrunk list stays full (see `select_neighbors`).
    select_neighbors(g, shrink, cap, cap, current);
    g.write_links(n, level, current);
}
