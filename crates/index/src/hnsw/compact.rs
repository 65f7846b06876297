//! Rebuilding the graph without its tombstones.
//!
//! Tombstones are walked by every search and never freed, so after many removes (every
//! update is one) the graph is slower and bigger than it needs to be. [`NativeHnsw::compact`]
//! builds a fresh graph from the live rows on the caller's pool while searches, inserts and
//! removes go on against the old one, then catches up with what changed meanwhile and swaps
//! the new graph in.

use std::sync::atomic::Ordering::Relaxed;

use quiverdb_types::RowId;

use super::graph::Graph;
use super::NativeHnsw;
use crate::{IndexError, VectorIndex};

/// Fraction of tombstoned nodes from which [`NativeHnsw::needs_compaction`] says yes.
pub const COMPACT_TOMBSTONE_FRACTION: f64 = 0.3;
/// Below this many nodes compaction is not worth it.
const COMPACT_MIN_NODES: usize = 1_000;

impl NativeHnsw {
    /// Whether tombstones make up at least [`COMPACT_TOMBSTONE_FRACTION`] of a graph of at
    /// least 1,000 nodes.
    pub fn needs_compaction(&self) -> bool {
        let g = self.graph.read();
        g.len() >= COMPACT_MIN_NODES
            && (g.len() - g.live()) as f64 >= COMPACT_TOMBSTONE_FRACTION * g.len() as f64
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
            tracing::debug!(freed, nodes = g.len(), "native HNSW compacted");
            return Ok(freed);
        }
    }
}
