//! [`NativeHnsw`]: QuiverDB's own HNSW (Malkov & Yashunin), laid out for the cache.
//!
//! * Memory: all vectors in one arena; level-0 links in fixed slots of `1 + 2M` words next
//!   to each other; upper levels (about 1 node in `M`) in one small boxed slice per node.
//!   Level 0 costs no allocation per node.
//! * Build: levels drawn as `floor(-ln(u) / ln(M))` from a hash of `(seed, row id)`;
//!   neighbours chosen with the paper's heuristic at insertion and when an overfull list
//!   is shrunk, then filled with the closest pruned candidates: a new node keeps at least
//!   `M / 2` links, a shrunk list stays full (`keepPrunedConnections`; without it, vectors
//!   whose distances crowd together, as the hashing embedder's vectors of some templated
//!   texts do, leave most nodes with no link in); level-0 degree `2M`, upper `M`.
//! * Deferred linking: while the graph is small enough to be scanned (below), inserts only
//!   append their nodes; no search walks it, so no link is made. The insert that takes it
//!   past the limit links every node in slot order (on its pool), as sequential inserts
//!   would have, and from then on each insert links its own nodes. A collection that stays
//!   small never pays for a graph (HNSW linking was about half the CPU of a small durable
//!   insert through the store); the one that outgrows it pays once, about 20–40 ms for
//!   1,024 nodes at 384-d.
//! * Search: a graph of at most [`EXACT_SCAN_MAX_NODES`] nodes whose vectors take at most
//!   [`EXACT_SCAN_MAX_BYTES`] is scanned exactly (exact, mostly faster than the walk there,
//!   and shared by a batch of queries), and so is one still linking its backlog. Otherwise greedy descent, then a beam of
//!   `max(ef, k)` at level 0 with a pooled, generation-stamped visited set and prefetch
//!   of the next neighbour's vector and of the next candidate's links. Once the vectors take [`QUANTIZE_FROM_BYTES`], the graph also
//!   keeps 8-bit codes of them (`crate::quant`, trained on the data, again each time the
//!   node count has doubled — that re-training codes every node outside the write lock, see
//!   [`NativeHnsw::codes_trained_at`]); searches walk on the codes — a quarter of the memory per
//!   node — and re-rank their `ef` final candidates by the exact f32 distance, so answers
//!   carry exact distances in exact order. Builds always use the f32 vectors. The codes
//!   are not stored in snapshots: a load makes them (in parallel) from the vectors.
//! * Deletes are tombstones: walked through (scored, kept as candidates), never returned;
//!   [`NativeHnsw::repair`] relinks live nodes around them. With a filter the level-0 walk
//!   scores admitted (live and allowed) nodes only and looks through rejected neighbours to
//!   their admitted neighbours (two hops, ACORN-1), so the beam of `ef` holds admitted nodes
//!   and exits early as an unfiltered search does. A filtered search answers by an exact
//!   scan of the admitted rows instead when fewer than 1 in 50 of its first filter checks
//!   pass, when the walk finds fewer than `k` admitted nodes, or when
//!   [`FILTER_BUDGET_PER_EF`]` * ef` nodes are scored before `ef` admitted ones are found.
//! * Tombstones are freed by [`NativeHnsw::compact`] (a rebuild from the live rows on the
//!   caller's pool, concurrent with everything but its short catch-up-and-swap step);
//!   [`NativeHnsw::needs_compaction`] says when it pays.
//!
//! # Concurrency
//! `graph` is a `RwLock`: appending nodes takes it for writing (briefly: a copy of the
//! vector); linking, searching and removing take it for reading. Re-training the codes
//! reads it a chunk at a time and writes it only to swap the code arrays. Links are atomics written
//! under a per-node mutex, so a search may read a list while it is being rewritten (it then
//! sees old and new links, all valid). `gate` is shared by inserts and exclusive for
//! `save_snapshot`, so a snapshot never holds a half-linked node (or a half-linked
//! backlog: its linker holds a token in `pending`). A snapshot of a graph not linked yet
//! stores no links and no entry point, and loads as one not linked yet. No guard is held
//! across a call into rayon: each parallel item takes its own read guard.
//!
//! # Determinism
//! Levels depend only on the seed and the row id. Sequential inserts (or `insert_batch` on
//! a one-thread pool) give the same graph, and so the same results, for the same input.

mod build;
mod compact;
mod graph;
mod persist;
mod search;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use quiverdb_types::{Metric, RowId};
use rayon::prelude::*;

use crate::engine::{check_batch, check_vector, prepare_vector};
use crate::planner::AllowSet;
use crate::{
    kernels, IndexConfig, IndexError, IndexStats, Neighbor, RowFilter, SearchParams, VectorIndex,
};
pub use compact::{COMPACT_TOMBSTONE_FRACTION, REPAIR_TOMBSTONE_FRACTION};
pub use graph::QUANTIZE_FROM_BYTES;
use graph::{level_for, Graph};
use search::{Outcome, Probe, Scratch};

/// Nodes scored per unit of `ef`, while the result list is not yet full, before a
/// filtered (or tombstone-heavy) search gives up walking and scans exactly (a safety net:
/// the two-hop walk scores admitted nodes only, so it rarely gets near it).
pub const FILTER_BUDGET_PER_EF: usize = 24;
/// The budget is never below this many nodes.
const FILTER_BUDGET_MIN: usize = 1_500;

/// A graph is searched by an exact scan, not walked, while it has at most this many nodes
/// (tombstones included) *and* its vectors take at most [`EXACT_SCAN_MAX_BYTES`]. The scan
/// is exact, and a burst of searches can share it ([`VectorIndex::search_batch`]).
///
/// Whether a lone scan beats the walk depends on the data: the scan reads every vector
/// (about 20 ns a row at 384-d), the walk's cost is the nodes it visits. Measured with
/// `quiverdb-bench ann --k 3 --ef 64 --threads 1`, walk vs scan QPS: minilm-384 (cosine)
/// 32,019 vs 46,671 at 1,000 rows, 22,469 vs 27,194 at 2,000, 25,761 vs 19,035 at 3,000;
/// synthetic 384-d 28,078 vs 51,744 at 1,000, 31,327 vs 25,213 at 2,000; synthetic
/// 128-d 45,950 vs 59,302 at 2,000, 46,768 vs 26,374 at 4,000. But on 1,000 hashing
/// embeddings of distinct short texts (`search_scaling 1000`) the walk visits so few nodes
/// that it is 2.3x faster than the scan. The byte bound keeps that worst case to one scan
/// of an L2-sized block (1,024 nodes at 384-d; see `docs/BENCHMARKS.md`).
pub const EXACT_SCAN_MAX_NODES: usize = 2_048;
/// See [`EXACT_SCAN_MAX_NODES`]: 1.5 MiB, most of one core's L2 cache here.
pub const EXACT_SCAN_MAX_BYTES: usize = 3 << 19;

/// Nodes coded per hold of the read lock while the codes are trained again
/// ([`NativeHnsw::retrain_codes_if_due`]): a few milliseconds of coding at 384-d, so a
/// writer (and, the lock being fair, the searches queued behind it) waits at most that.
const RETRAIN_CHUNK_NODES: usize = 8_192;

/// The default scan limit, in nodes, for vectors of `dim` components.
fn default_exact_scan_max_nodes(dim: usize) -> usize {
    EXACT_SCAN_MAX_NODES.min(EXACT_SCAN_MAX_BYTES / (4 * dim.max(1)))
}

/// The native HNSW engine.
#[derive(Debug)]
pub struct NativeHnsw {
    config: IndexConfig,
    graph: RwLock<Graph>,
    entry_lock: Mutex<()>,
    gate: RwLock<()>,
    /// Nodes some insert is about to link, plus one while a backlog is being linked
    /// ([`NativeHnsw::link_backlog_if_due`]); a snapshot or a compaction's swap waits for
    /// zero, so neither sees a half-linked graph.
    pending: AtomicUsize,
    /// Held by the one thread linking the backlog of a graph that outgrew the exact scan.
    backlog_lock: Mutex<()>,
    /// Searches answered by the exact fallback (see [`FILTER_BUDGET_PER_EF`]).
    exact_fallbacks: AtomicUsize,
    /// Graphs of at most this many nodes are scanned exactly (see [`EXACT_SCAN_MAX_NODES`]).
    exact_scan_max_nodes: AtomicUsize,
    /// Tombstones in the graph when it was last repaired (see [`NativeHnsw::needs_repair`]).
    repaired_at: AtomicUsize,
    /// A thread is training the codes again ([`NativeHnsw::retrain_codes_if_due`]).
    retraining: AtomicBool,
    scratch: Mutex<Vec<Scratch>>,
}

impl NativeHnsw {
    /// An empty index (the config is validated).
    pub fn new(config: &IndexConfig) -> Result<Self, IndexError> {
        config.validate()?;
        Ok(Self::with_graph(
            config,
            Graph::new(config.dim, config.metric, config.m, kernels::active()),
        ))
    }

    fn with_graph(config: &IndexConfig, graph: Graph) -> Self {
        NativeHnsw {
            config: config.clone(),
            graph: RwLock::new(graph),
            entry_lock: Mutex::new(()),
            gate: RwLock::new(()),
            pending: AtomicUsize::new(0),
            backlog_lock: Mutex::new(()),
            exact_fallbacks: AtomicUsize::new(0),
            exact_scan_max_nodes: AtomicUsize::new(default_exact_scan_max_nodes(config.dim)),
            repaired_at: AtomicUsize::new(0),
            retraining: AtomicBool::new(false),
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// The config it was built with.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Verifies the graph's invariants (links in bounds, no self or dangling links, levels
    /// consistent, entry point valid, id map consistent); `Err` names the first violation.
    /// Meant for a quiescent index (tests, after loading a snapshot).
    pub fn check_integrity(&self) -> Result<(), String> {
        self.graph.read().check_integrity()
    }

    /// Up to how many nodes (tombstones included) searches scan every vector instead of
    /// walking the graph; default [`EXACT_SCAN_MAX_NODES`] or fewer, so that the vectors
    /// take at most [`EXACT_SCAN_MAX_BYTES`]; `0`: always walk. Kept through compactions;
    /// not stored in snapshots.
    /// Lowering it below the node count of a graph not linked yet links it, on the
    /// calling thread.
    pub fn set_exact_scan_max_nodes(&self, nodes: usize) {
        self.exact_scan_max_nodes.store(nodes, Relaxed);
        self.link_backlog_if_due(None);
    }

    /// Whether the graph is linked: nodes are linked as they are inserted once the graph
    /// has outgrown the exact scan; before, they are only appended (see the module docs).
    pub fn is_linked(&self) -> bool {
        self.graph.read().linked
    }

    /// The current scan limit (see [`NativeHnsw::set_exact_scan_max_nodes`]).
    pub fn exact_scan_max_nodes(&self) -> usize {
        self.exact_scan_max_nodes.load(Relaxed)
    }

    /// From how many nodes searches walk on 8-bit codes of the vectors (re-ranking their
    /// final candidates exactly); `None`: never. The default is the node count whose
    /// vectors take [`QUANTIZE_FROM_BYTES`]. Takes effect at once (coding or dropping
    /// the codes under the write lock), and is kept through compactions; not stored in
    /// snapshots.
    pub fn set_quantize_from(&self, nodes: Option<usize>) {
        self.graph
            .write()
            .set_quantize_from(nodes.unwrap_or(usize::MAX));
    }

    /// Whether searches currently walk on 8-bit codes.
    pub fn is_quantized(&self) -> bool {
        self.graph.read().sq8.is_some()
    }

    /// How many nodes the current 8-bit quantizer was trained on (`None`: no codes). It is
    /// trained again by the first insert that finds the graph at twice that size.
    pub fn codes_trained_at(&self) -> Option<usize> {
        let g = self.graph.read();
        g.sq8.as_ref().map(|_| g.trained_at)
    }

    /// How many searches so far hit the work bound and were answered by an exact scan.
    pub fn exact_fallbacks(&self) -> usize {
        self.exact_fallbacks.load(Relaxed)
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch.lock().pop().unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        let mut pool = self.scratch.lock();
        if pool.len() < 64 {
            pool.push(s);
        }
    }

    /// Appends nodes for checked vectors (one write lock), normalizing them in the arena
    /// for cosine; returns their slots and whether the caller must link them (the graph is
    /// linked; otherwise they join the backlog, see [`NativeHnsw::link_backlog_if_due`]).
    fn append(&self, items: &[(RowId, &[f32])]) -> Result<(Vec<u32>, bool), IndexError> {
        let mut g = self.graph.write();
        let mut seen = HashSet::with_capacity(items.len());
        for (id, _) in items {
            let live = g.slots.get(id).is_some_and(|&s| !g.is_deleted(s));
            if live || !seen.insert(*id) {
                return Err(IndexError::DuplicateRow(*id));
            }
        }
        if g.len() + items.len() > u32::MAX as usize - 1 {
            return Err(IndexError::InvalidParameter(
                "native HNSW holds at most 2^32 - 2 nodes".into(),
            ));
        }
        g.reserve(items.len());
        if g.linked {
            self.pending.fetch_add(items.len(), Relaxed);
        }
        let slots = items
            .iter()
            .map(|(id, v)| {
                let level = level_for(self.config.seed, *id, self.config.m);
                g.push(*id, v, level, self.config.metric == Metric::Cosine)
            })
            .collect();
        Ok((slots, g.linked))
    }

    /// Links every node of a graph not linked yet once it has more nodes than the exact
    /// scan takes (the nodes were only appended so far: the scan needs no links, so a small
    /// collection never pays for a graph it does not search), on `pool` or else on the
    /// calling thread; then marks the graph linked, so that later inserts link their own
    /// nodes. Searches scan exactly until then.
    ///
    /// One thread links; it goes on until no appended node is left unlinked, so an insert
    /// that finds it busy returns at once (its nodes are scanned meanwhile). Its token in
    /// `pending` keeps snapshots and compaction swaps off the half-linked graph.
    fn link_backlog_if_due(&self, pool: Option<&rayon::ThreadPool>) {
        {
            let g = self.graph.read();
            if g.linked || g.len() <= self.exact_scan_max_nodes.load(Relaxed) {
                return;
            }
        }
        let Some(_one) = self.backlog_lock.try_lock() else {
            return;
        };
        {
            let _gate = self.gate.read();
            if self.graph.read().linked {
                return;
            }
            self.pending.fetch_add(1, Relaxed);
        }
        let mut linked_upto = 0;
        loop {
            let upto = {
                let mut g = self.graph.write();
                if g.len() == linked_upto {
                    g.linked = true;
                    break;
                }
                g.len()
            };
            self.pending.fetch_add(upto - linked_upto, Relaxed);
            let slots: Vec<u32> = (linked_upto as u32..upto as u32).collect();
            self.link_slots(&slots, pool);
            linked_upto = upto;
        }
        self.pending.fetch_sub(1, Relaxed);
        tracing::debug!(nodes = linked_upto, "native HNSW linked its backlog");
    }

    /// Links appended nodes, in parallel on `pool`, else in order on the calling thread.
    fn link_slots(&self, slots: &[u32], pool: Option<&rayon::ThreadPool>) {
        match pool {
            Some(pool) => pool.install(|| {
                slots
                    .par_iter()
                    .for_each_init(|| self.take_scratch(), |s, &slot| self.link_slot(slot, s))
            }),
            None => {
                let mut s = self.take_scratch();
                slots.iter().for_each(|&slot| self.link_slot(slot, &mut s));
                self.put_scratch(s);
            }
        }
    }

    /// Whether searches scan every vector instead of walking: a graph small enough, or one
    /// whose nodes are not all linked yet.
    fn scans(&self, g: &Graph) -> bool {
        !g.linked || g.len() <= self.exact_scan_max_nodes.load(Relaxed)
    }

    /// Trains the 8-bit quantizer again once the graph has doubled since the last training
    /// ([`Graph::retrain_due`]); called by inserts after their nodes are linked.
    ///
    /// Coding a million 384-d vectors takes about a quarter of a second, so it is not done
    /// under the write lock (which would stall every search and insert that long): the
    /// ranges are learned and the existing nodes coded into a new array a chunk at a time,
    /// each under a short read lock, while searches keep walking on the old codes; the write
    /// lock is taken only to code the nodes pushed meanwhile and swap the arrays. The gate
    /// is held throughout, so no compaction swaps the graph in between; one thread does it
    /// at a time (others go on at once).
    fn retrain_codes_if_due(&self) {
        if !self.graph.read().retrain_due() || self.retraining.swap(true, Relaxed) {
            return;
        }
        let _gate = self.gate.read();
        // Another thread may have re-trained between the check above and the flag.
        let (due, n, dim, trained_at) = {
            let g = self.graph.read();
            (g.retrain_due(), g.len(), g.dim, g.trained_at)
        };
        if due && n > 0 {
            let stride = crate::quant::Sq8::train_stride(n);
            let mut ranges = crate::quant::Sq8Ranges::new(dim);
            for start in (0..n).step_by(RETRAIN_CHUNK_NODES) {
                let g = self.graph.read();
                let first = start.next_multiple_of(stride);
                for s in (first..n.min(start + RETRAIN_CHUNK_NODES)).step_by(stride) {
                    ranges.observe(g.vector(s as u32));
                }
            }
            let q = ranges.finish();
            // Room for the nodes to come, as `Graph::quantize` makes it.
            let mut codes = Vec::with_capacity(self.graph.read().vectors.capacity());
            codes.resize(n * dim, 0);
            self.code_in_chunks(&q, &mut codes);
            let replaced = self.graph.write().install_codes(trained_at, q, codes);
            // The old codes (or the refused new ones) are freed here, not under the lock.
            if replaced.is_err() {
                tracing::debug!("codes changed during re-training; the new ones are dropped");
            }
        }
        self.retraining.store(false, Relaxed);
    }

    /// Codes the first `codes.len() / dim` nodes with `q` into `codes`, on one scoped
    /// thread per core from [`graph::PARALLEL_CODING_FROM`] nodes (as `Graph::quantize`
    /// does; not on rayon: an insert may run inside a rayon job), each taking the read lock
    /// for one chunk of [`RETRAIN_CHUNK_NODES`] at a time.
    fn code_in_chunks(&self, q: &crate::quant::Sq8, codes: &mut [u8]) {
        let dim = self.config.dim;
        let chunk = RETRAIN_CHUNK_NODES * dim;
        let threads = if codes.len() / dim.max(1) >= graph::PARALLEL_CODING_FROM {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            1
        };
        let per_thread = codes.len().div_ceil(chunk).div_ceil(threads).max(1) * chunk;
        let code_part = |first_node: usize, part: &mut [u8]| {
            for (c, piece) in part.chunks_mut(chunk).enumerate() {
                let g = self.graph.read();
                let first = first_node + c * RETRAIN_CHUNK_NODES;
                for (j, code) in piece.chunks_exact_mut(dim).enumerate() {
                    q.encode(g.vector((first + j) as u32), code);
                }
            }
        };
        std::thread::scope(|scope| {
            let mut parts = codes.chunks_mut(per_thread).enumerate();
            let mine = parts.next();
            for (t, part) in parts {
                scope.spawn(move || code_part(t * per_thread / dim, part));
            }
            if let Some((_, part)) = mine {
                code_part(0, part);
            }
        });
    }

    fn link_slot(&self, slot: u32, s: &mut Scratch) {
        let _gate = self.gate.read();
        let g = self.graph.read();
        build::link(&g, slot, self.config.ef_construction, &self.entry_lock, s);
        self.pending.fetch_sub(1, Relaxed);
    }
}

impl VectorIndex for NativeHnsw {
    /// Compacts past [`COMPACT_TOMBSTONE_FRACTION`] tombstones; below that, repairs once
    /// every [`REPAIR_TOMBSTONE_FRACTION`] of new ones (a repaired graph searches at about
    /// 0.9 of a fresh build's speed, an unrepaired one at 0.6–0.7 after 30% deletes).
    fn compact_if_needed(&self, pool: &rayon::ThreadPool) -> Result<bool, IndexError> {
        if self.needs_compaction() {
            return self.compact(pool).map(|_| true);
        }
        if self.needs_repair() {
            let tombstones = {
                let g = self.graph.read();
                g.len() - g.live()
            };
            self.repair(pool);
            self.repaired_at.store(tombstones, Relaxed);
            return Ok(true);
        }
        Ok(false)
    }

    fn dim(&self) -> usize {
        self.config.dim
    }

    fn metric(&self) -> Metric {
        self.config.metric
    }

    fn len(&self) -> usize {
        self.graph.read().live()
    }

    fn insert(&self, id: RowId, vector: &[f32]) -> Result<(), IndexError> {
        check_vector(self.config.dim, self.config.metric, vector)?;
        let (slots, link) = {
            let _gate = self.gate.read();
            self.append(&[(id, vector)])?
        };
        if link {
            self.link_slots(&slots, None);
        } else {
            self.link_backlog_if_due(None);
        }
        self.retrain_codes_if_due();
        Ok(())
    }

    fn insert_batch(
        &self,
        items: &[(RowId, &[f32])],
        pool: &rayon::ThreadPool,
    ) -> Result<(), IndexError> {
        let (dim, metric) = (self.config.dim, self.config.metric);
        // Check everything first (all or nothing); cosine rows are normalized in the arena,
        // so no copy of the batch is made.
        check_batch(dim, metric, items, pool)?;
        let (slots, link) = {
            let _gate = self.gate.read();
            self.append(items)?
        };
        if link {
            self.link_slots(&slots, Some(pool));
        } else {
            self.link_backlog_if_due(Some(pool));
        }
        self.retrain_codes_if_due();
        Ok(())
    }

    fn remove(&self, id: RowId) -> bool {
        let g = self.graph.read();
        let Some(&slot) = g.slots.get(&id) else {
            return false;
        };
        let was_live = !g.deleted[slot as usize].swap(true, Relaxed);
        if was_live {
            g.n_deleted.fetch_add(1, Relaxed);
        }
        was_live
    }

    fn contains(&self, id: RowId) -> bool {
        let g = self.graph.read();
        g.slots.get(&id).is_some_and(|&s| !g.is_deleted(s))
    }

    fn vector(&self, id: RowId) -> Option<Vec<f32>> {
        let g = self.graph.read();
        let &s = g.slots.get(&id)?;
        (!g.is_deleted(s)).then(|| g.vector(s).to_vec())
    }

    fn search(
        &self,
        query: &[f32],
        params: SearchParams,
        filter: Option<RowFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search_filtered(query, params, filter)
    }

    fn search_allowed(
        &self,
        query: &[f32],
        params: SearchParams,
        allow: &AllowSet,
    ) -> Result<Vec<Neighbor>, IndexError> {
        self.search_filtered(query, params, Some(&|id| allow.contains(id)))
    }

    /// While the graph is scanned ([`NativeHnsw::exact_scan_max_nodes`]).
    fn search_batch_shares_work(&self) -> bool {
        self.scans(&self.graph.read())
    }

    /// A graph small enough to be scanned is scanned once per four queries
    /// (`engine::Rows::top_k_batch`).
    fn search_batch(
        &self,
        queries: &[&[f32]],
        params: SearchParams,
    ) -> Vec<Result<Vec<Neighbor>, IndexError>> {
        let walk = |q: &[f32]| self.search_filtered(q, params, None::<RowFilter<'_>>);
        let g = self.graph.read();
        if !self.scans(&g) || params.k == 0 {
            drop(g); // search_filtered takes its own read guard
            return queries.iter().map(|q| walk(q)).collect();
        }
        let (dim, metric) = (self.config.dim, self.config.metric);
        crate::engine::search_prepared(dim, metric, queries, |prepared| {
            search::rows(&g).top_k_batch(g.kernels, g.metric, prepared, params.k)
        })
    }

    fn search_among(
        &self,
        query: &[f32],
        k: usize,
        ids: &[RowId],
    ) -> Result<Vec<Neighbor>, IndexError> {
        let q = prepare_vector(self.config.dim, self.config.metric, query)?;
        let g = self.graph.read();
        let mut top = crate::engine::TopK::new(k);
        let mut seen = HashSet::with_capacity(ids.len());
        for id in ids {
            if let Some(&s) = g.slots.get(id) {
                if !g.is_deleted(s) && seen.insert(*id) {
                    top.push(g.dist(&q, g.vector(s)), *id);
                }
            }
        }
        Ok(top.into_sorted())
    }

    fn stats(&self) -> IndexStats {
        let g = self.graph.read();
        IndexStats {
            engine: "native-hnsw",
            live: g.live(),
            tombstones: g.len() - g.live(),
            memory_bytes: g.memory_bytes(),
        }
    }

    fn save_snapshot(&self, dir: &Path, seq: u64) -> Result<(), IndexError> {
        // Wait until every appended node is linked; the gate keeps new ones out meanwhile.
        let bytes = loop {
            {
                let _gate = self.gate.write();
                if self.pending.load(Relaxed) == 0 {
                    let g = self.graph.read();
                    break persist::encode(&g);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        crate::snapshot::write_with_manifest(dir, "native-hnsw", &self.config, seq, &bytes)
    }
}

impl NativeHnsw {
    /// The search behind [`VectorIndex::search`] and [`VectorIndex::search_allowed`], its
    /// filter a type parameter so that the walk's membership test can be inlined.
    fn search_filtered<F>(
        &self,
        query: &[f32],
        params: SearchParams,
        filter: Option<&F>,
    ) -> Result<Vec<Neighbor>, IndexError>
    where
        F: Fn(RowId) -> bool + ?Sized,
    {
        let q = prepare_vector(self.config.dim, self.config.metric, query)?;
        if params.k == 0 {
            return Ok(Vec::new());
        }
        let g = self.graph.read();
        if self.scans(&g) {
            return Ok(search::exact_scan(&g, &q, params.k, filter));
        }
        let ef = params.ef.max(params.k);
        let budget = FILTER_BUDGET_PER_EF
            .saturating_mul(ef)
            .max(FILTER_BUDGET_MIN);
        let mut s = self.take_scratch();
        let mut out = Vec::with_capacity(params.k.min(1024));
        let mut prepared = std::mem::take(&mut s.sq8_query);
        let probe = match &g.sq8 {
            Some(sq) => {
                sq.prepare(self.config.metric, &q, &mut prepared);
                Probe::Codes(sq, &prepared)
            }
            None => Probe::Exact(&q),
        };
        let outcome = search::search_query(
            &g, &q, &probe, params.k, ef, budget, filter, &mut s, &mut out,
        );
        s.sq8_query = prepared;
        if outcome == Outcome::Exhausted {
            self.exact_fallbacks.fetch_add(1, Relaxed);
            out = search::exact_scan(&g, &q, params.k, filter);
        }
        drop(g);
        self.put_scratch(s);
        Ok(out)
    }

    /// Loads a snapshot written by [`VectorIndex::save_snapshot`] of this engine; returns
    /// it with the sequence number it covers. Anything untrustworthy is an
    /// [`IndexError::Snapshot`].
    pub fn load(dir: &Path) -> Result<(Self, u64), IndexError> {
        let m = crate::snapshot::read_own_manifest(dir, crate::Engine::Native)?;
        Ok((Self::from_manifest(&m, dir)?, m.seq))
    }

    /// Loads the data file `m` names, decoding it as it is read (no copy of the whole
    /// file in memory; the checksum is checked after the last byte).
    pub(crate) fn from_manifest(
        m: &crate::snapshot::Manifest,
        dir: &Path,
    ) -> Result<Self, IndexError> {
        m.config.validate()?;
        let graph = m.decode_data(dir, |r| {
            persist::decode(&m.config, r).map_err(|d| format!("native HNSW data: {d}"))
        })?;
        debug_assert_eq!(graph.check_integrity(), Ok(()));
        Ok(Self::with_graph(&m.config, graph))
    }
}

#[cfg(test)]
mod tests;
