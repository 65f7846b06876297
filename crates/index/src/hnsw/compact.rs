//! Rebuilding the graph without its tombstones.
//!
//! Tombstones are walked by every search and never freed, so after many removes (every
//! update is one) the graph is slower and bigger than it needs to be. [`NativeHnsw::compact`]
//! builds a fresh graph from the live rows on the caller's pool while searches, inserts and
//! removes go on against the old one, then catches up with what changed meanwhile and swaps
//! the new graph in.
//!
//! [`NativeHnsw::repair`] is the cheaper step before that: every live node that links to a
//! tombstone gets its list rebuilt from its live links and the live links of the tombstones
//! it linked to (after FreshDiskANN's delete consolidation): live links stay, the dead ones'
//! slots go to candidates that pass the same heuristic as at insertion. Searches then stop walking through the dead nodes; their slots stay until a
//! compaction.

use std::sync::atomic::Ordering::Relaxed;

use quiverdb_types::RowId;
use rayon::prelude::*;

use super::graph::Graph;
use super::NativeHnsw;
use crate::engine::Scored;
use crate::{IndexError, VectorIndex};

/// Fraction of tombstoned nodes from which [`NativeHnsw::needs_compaction`] says yes.
pub const COMPACT_TOMBSTONE_FRACTION: f64 = 0.3;
/// Fraction of nodes that must have been tombstoned since the last repair before
/// [`NativeHnsw::needs_repair`] says yes.
pub const REPAIR_TOMBSTONE_FRACTION: f64 = 0.1;
/// Below this many nodes compaction is not worth it.
const COMPACT_MIN_NODES: usize = 1_000;
/// Below this many nodes a repair is not worth it: searches are cheap with or without the
/// tombstones, and the repair itself costs about as much as a burst of writes.
const REPAIR_MIN_NODES: usize = 10_000;

impl NativeHnsw {
    /// Whether tombstones make up at least [`COMPACT_TOMBSTONE_FRACTION`] of a graph of at
    /// least 1,000 nodes.
    pub fn needs_compaction(&self) -> bool {
        let g = self.graph.read();
        g.len() >= COMPACT_MIN_NODES
            && (g.len() - g.live()) as f64 >= COMPACT_TOMBSTONE_FRACTION * g.len() as f64
    }

    /// Whether at least [`REPAIR_TOMBSTONE_FRACTION`] of a graph of at least 10,000 nodes
    /// was tombstoned since its last repair (or compaction).
    pub fn needs_repair(&self) -> bool {
        let g = self.graph.read();
        let new = (g.len() - g.live()).saturating_sub(self.repaired_at.load(Relaxed));
        g.len() >= REPAIR_MIN_NODES && new as f64 >= REPAIR_TOMBSTONE_FRACTION * g.len() as f64
    }

    /// Rebuilds the graph from the live rows; returns how many nodes (tombstones) it freed.
    ///
    /// The build runs on `pool` with no lock of `self` held, so searches, inserts and
    /// removes continue against the old graph. The final catch-up (rows inserted or removed
    /// during the build) and the swap hold the graph's write lock: searches wait for that
    /// part only. Results may differ slightly afterwards (a new graph), never in which rows
    /// exist.
    pub fn compact(&self, pool: &rayon::ThreadPool) -> Result<usize, IndexError> {
        // 1. What is live now.
        let (seen_nodes, live): (usize, Vec<(RowId, u32, Vec<f32>)>) = {
            let g = self.graph.read();
            let live = (0..g.len() as u32)
                .filter(|&s| !g.is_deleted(s))
                .map(|s| (g.ids[s as usize], s, g.vector(s).to_vec()))
                .collect();
            (g.len(), live)
        };
        // 2. The new graph, built without holding anything of ours.
        let fresh = NativeHnsw::new(&self.config)?;
        fresh
            .exact_scan_max_nodes
            .store(self.exact_scan_max_nodes(), Relaxed);
        let quantize_from = self.graph.read().quantize_from;
        fresh.graph.write().quantize_from = quantize_from;
        let items: Vec<(RowId, &[f32])> = live.iter().map(|(id, _, v)| (*id, &v[..])).collect();
        fresh.insert_batch(&items, pool)?;
        // 3. Catch up and swap, with no insert in flight: same protocol as a snapshot.
        loop {
            let _gate = self.gate.write();
            if self.pending.load(Relaxed) != 0 {
                drop(_gate);
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
            let mut g = self.graph.write();
            for (id, slot, _) in &live {
                if g.is_deleted(*slot) {
                    fresh.remove(*id);
                }
            }
            for s in seen_nodes as u32..g.len() as u32 {
                if !g.is_deleted(s) {
                    fresh.insert(g.ids[s as usize], g.vector(s))?;
                }
            }
            let old_nodes = g.len();
            let empty = Graph::new(
                self.config.dim,
                self.config.metric,
                self.config.m,
                crate::kernels::active(),
            );
            *g = std::mem::replace(&mut *fresh.graph.write(), empty);
            g.shrink_to_fit();
            let freed = old_nodes.saturating_sub(g.len());
            self.repaired_at.store(g.len() - g.live(), Relaxed);
            tracing::debug!(freed, nodes = g.len(), "native HNSW compacted");
            return Ok(freed);
        }
    }
}

/// Nodes handled per read guard by [`NativeHnsw::repair`].
const REPAIR_CHUNK: usize = 256;

impl NativeHnsw {
    /// Relinks every live node that links to a tombstone (at any level) around it; returns
    /// how many lists it rewrote. Runs on `pool`, concurrently with searches, inserts and
    /// removes (each list is rewritten under its node's link lock; a node removed meanwhile
    /// may stay linked until the next repair). Tombstones keep their own links, so a dead
    /// entry point still leads into the graph.
    pub fn repair(&self, pool: &rayon::ThreadPool) -> usize {
        let n = self.graph.read().len();
        let chunks: Vec<u32> = (0..n as u32).step_by(REPAIR_CHUNK).collect();
        pool.install(|| {
            chunks
                .par_iter()
                .map_init(RepairScratch::default, |s, &start| {
                    let _gate = self.gate.read();
                    let g = self.graph.read();
                    let end = (start as usize + REPAIR_CHUNK).min(g.len()) as u32;
                    (start..end).map(|p| repair_node(&g, p, s)).sum::<usize>()
                })
                .sum()
        })
    }
}

#[derive(Debug, Default)]
struct RepairScratch {
    links: Vec<u32>,
    hop: Vec<u32>,
    ids: Vec<u32>,
    cands: Vec<Scored<u32>>,
    kept: Vec<u32>,
}

/// Rebuilds the lists of live node `p` that hold a tombstone; returns how many it rewrote.
fn repair_node(g: &Graph, p: u32, s: &mut RepairScratch) -> usize {
    if g.is_deleted(p) {
        return 0;
    }
    let mut rewritten = 0;
    let pv = g.vector(p);
    for level in 0..=g.levels[p as usize] {
        let _lock = g.link_locks[p as usize].lock();
        g.read_links(p, level, &mut s.links);
        if !s.links.iter().any(|&x| g.is_deleted(x)) {
            continue;
        }
        // Live links stay (they carry the reverse links other inserts made); the slots of
        // the dead ones go to the dead nodes' live links, closest first, each kept only if
        // it passes the insertion heuristic against what is kept already.
        s.kept.clear();
        s.ids.clear();
        for &x in &s.links {
            if !g.is_deleted(x) {
                s.kept.push(x);
                continue;
            }
            g.read_links(x, level, &mut s.hop);
            s.ids.extend(
                s.hop
                    .iter()
                    .filter(|&&y| y != p && !g.is_deleted(y) && !s.links.contains(&y)),
            );
        }
        s.ids.sort_unstable();
        s.ids.dedup();
        s.cands.clear();
        s.cands.extend(s.ids.iter().map(|&c| Scored {
            dist: g.dist(pv, g.vector(c)),
            item: c,
        }));
        s.cands.sort_unstable();
        let cap = g.capacity(level);
        for c in &s.cands {
            if s.kept.len() >= cap {
                break;
            }
            let cv = g.vector(c.item);
            if s.kept.iter().all(|&r| g.dist(cv, g.vector(r)) >= c.dist) {
                s.kept.push(c.item);
            }
        }
        g.write_links(p, level, &s.kept);
        rewritten += 1;
    }
    rewritten
}
