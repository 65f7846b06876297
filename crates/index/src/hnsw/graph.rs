//! The graph's memory: one vector arena, level-0 link slots side by side, sparse upper
//! levels, per-node link locks and tombstones.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;
use quiverdb_types::{Metric, RowId};

use crate::hnsw_rs_engine::RowIdHasher;
use crate::kernels::KernelSet;
use crate::quant::Sq8;

/// Size of the f32 vectors from which a native HNSW graph keeps 8-bit codes of them for
/// searches to walk on: below it the vectors mostly sit in cache and the codes'
/// conversions cost more than the memory they save (1,000 × 384-d: 1.20 vs 1.32 ms per
/// 100 searches in `search_scaling`).
pub const QUANTIZE_FROM_BYTES: usize = 16 << 20;

/// The default node count for [`QUANTIZE_FROM_BYTES`] at `dim`.
pub(super) fn quantize_from(dim: usize) -> usize {
    (QUANTIZE_FROM_BYTES / (4 * dim.max(1))).max(1)
}

/// Nodes from which the codes of a whole graph are made on one thread per core (below, on
/// the calling thread).
pub(super) const PARALLEL_CODING_FROM: usize = 50_000;

/// Highest level a node may get (levels are `0..=MAX_LEVEL`).
pub(super) const MAX_LEVEL: u8 = 15;
const NO_ENTRY: u64 = u64::MAX;

/// `RowId -> slot` with the cheap multiplicative hasher (row ids are mostly sequential).
pub(super) type SlotMap = HashMap<RowId, u32, BuildHasherDefault<RowIdHasher>>;

/// Graph storage, behind the index's `RwLock`: nodes are appended under the write lock;
/// links, tombstones and the entry point change under the read lock through atomics and
/// the per-node `link_locks`.
///
/// # Invariants
/// * Node `s` owns `vectors[s*dim..(s+1)*dim]`, `ids[s]`, `levels[s]`, `deleted[s]`,
///   `link_locks[s]`, `level0[s*(1+m0)..(s+1)*(1+m0)]` (a count, then up to `m0` links)
///   and, when `levels[s] > 0`, `upper[s]` with `levels[s]` lists of `1 + m` words.
/// * Every stored link is `< ids.len()` and never the node itself; a link at level `l`
///   points to a node whose level is `>= l`.
/// * `slots[id]` is the newest node of `id`; a row id has at most one live node.
/// * `entry` is `NO_ENTRY` iff no node has been linked yet; otherwise it packs
///   `(level << 32) | slot` of a node at the highest level linked so far.
/// * While `linked` is false no node has a link and `entry` is `NO_ENTRY`: the graph is
///   searched by an exact scan only (`NativeHnsw`'s deferred linking). It turns true, under
///   the write lock, once every node appended so far is linked, and never back.
/// * `codes` is empty while `sq8` is `None`; after, `codes[s*dim..(s+1)*dim]` is the code
///   of node `s`'s (stored, so normalized for cosine) vector.
#[derive(Debug)]
pub(super) struct Graph {
    pub(super) dim: usize,
    pub(super) metric: Metric,
    pub(super) kernels: KernelSet,
    /// Upper-level degree.
    pub(super) m: usize,
    /// Level-0 degree (`2 * m`).
    pub(super) m0: usize,
    pub(super) vectors: Vec<f32>,
    pub(super) ids: Vec<RowId>,
    pub(super) levels: Vec<u8>,
    pub(super) level0: Vec<AtomicU32>,
    pub(super) upper: Vec<Option<Box<[AtomicU32]>>>,
    /// Words in all of `upper` (so `memory_bytes`, called by the planner on every
    /// filtered search, is O(1)).
    pub(super) upper_words: usize,
    pub(super) link_locks: Vec<Mutex<()>>,
    pub(super) deleted: Vec<AtomicBool>,
    pub(super) slots: SlotMap,
    pub(super) entry: AtomicU64,
    /// Whether nodes are linked as they are appended (see the invariants).
    pub(super) linked: bool,
    pub(super) n_deleted: AtomicUsize,
    /// The quantizer of `codes`, set once the graph reaches `quantize_from` nodes and
    /// trained again once the node count has doubled past `trained_at` (so the ranges
    /// follow the data; values outside them are clamped meanwhile). The first training
    /// happens in [`Graph::push`]; later ones are due ([`Graph::retrain_due`]) until the
    /// index re-trains outside the write lock (`NativeHnsw::retrain_codes_if_due`).
    pub(super) sq8: Option<Sq8>,
    pub(super) codes: Vec<u8>,
    pub(super) quantize_from: usize,
    pub(super) trained_at: usize,
}

impl Graph {
    pub(super) fn new(dim: usize, metric: Metric, m: usize, kernels: KernelSet) -> Self {
        Graph {
            dim,
            metric,
            kernels,
            m,
            m0: 2 * m,
            vectors: Vec::new(),
            ids: Vec::new(),
            levels: Vec::new(),
            level0: Vec::new(),
            upper: Vec::new(),
            upper_words: 0,
            link_locks: Vec::new(),
            deleted: Vec::new(),
            slots: SlotMap::default(),
            entry: AtomicU64::new(NO_ENTRY),
            linked: false,
            n_deleted: AtomicUsize::new(0),
            sq8: None,
            codes: Vec::new(),
            quantize_from: quantize_from(dim),
            trained_at: 0,
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(super) fn reserve(&mut self, n: usize) {
        self.vectors.reserve(n * self.dim);
        if self.sq8.is_some() {
            self.codes.reserve(n * self.dim);
        }
        self.ids.reserve(n);
        self.levels.reserve(n);
        self.level0.reserve(n * (1 + self.m0));
        self.upper.reserve(n);
        self.link_locks.reserve(n);
        self.deleted.reserve(n);
        self.slots.reserve(n);
    }

    pub(super) fn shrink_to_fit(&mut self) {
        self.vectors.shrink_to_fit();
        self.codes.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.levels.shrink_to_fit();
        self.level0.shrink_to_fit();
        self.upper.shrink_to_fit();
        self.link_locks.shrink_to_fit();
        self.deleted.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    /// Appends an unlinked node; returns its slot. The caller checked `v` (length, finite,
    /// non-zero when `normalize`).
    pub(super) fn push(&mut self, id: RowId, v: &[f32], level: u8, normalize: bool) -> u32 {
        let slot = self.ids.len() as u32;
        let start = self.vectors.len();
        self.vectors.extend_from_slice(v);
        if normalize {
            let ok = crate::kernels::normalize(&mut self.vectors[start..]);
            debug_assert!(ok, "zero vectors are rejected before push");
        }
        self.ids.push(id);
        self.levels.push(level);
        self.level0
            .extend((0..1 + self.m0).map(|_| AtomicU32::new(0)));
        self.upper_words += usize::from(level) * (1 + self.m);
        self.upper.push((level > 0).then(|| {
            (0..usize::from(level) * (1 + self.m))
                .map(|_| AtomicU32::new(0))
                .collect()
        }));
        self.link_locks.push(Mutex::new(()));
        self.deleted.push(AtomicBool::new(false));
        self.slots.insert(id, slot);
        match &self.sq8 {
            Some(q) => q.encode_into(&self.vectors[start..], &mut self.codes),
            None if self.len() >= self.quantize_from => self.quantize(),
            None => {}
        }
        slot
    }

    /// Whether the node count has doubled since the codes were trained: the quantizer
    /// should learn the ranges again (see [`Graph::install_codes`]).
    pub(super) fn retrain_due(&self) -> bool {
        self.sq8.is_some() && self.len() >= 2 * self.trained_at
    }

    /// Replaces the quantizer by `q`, trained on the first `n` nodes, with `codes` the
    /// codes of those `n` nodes under `q`; codes the nodes pushed since, and returns the
    /// old codes (for the caller to free outside the lock). Refused (`Err(codes)`, nothing
    /// changes) if the codes changed meanwhile (another training, or
    /// [`Graph::set_quantize_from`]), i.e. unless they are still the ones trained at
    /// `trained_at`.
    pub(super) fn install_codes(
        &mut self,
        trained_at: usize,
        q: Sq8,
        mut codes: Vec<u8>,
    ) -> Result<Vec<u8>, Vec<u8>> {
        let n = codes.len() / self.dim.max(1);
        if self.sq8.is_none() || self.trained_at != trained_at || n > self.len() {
            return Err(codes);
        }
        codes.reserve(self.vectors.len() - codes.len());
        for v in self.vectors[n * self.dim..].chunks_exact(self.dim) {
            q.encode_into(v, &mut codes);
        }
        self.sq8 = Some(q);
        self.trained_at = n;
        Ok(std::mem::replace(&mut self.codes, codes))
    }

    /// Trains an 8-bit quantizer on the vectors and codes every node (from then on, new
    /// nodes are coded as they are pushed). Searches then walk on the codes and re-rank
    /// their final candidates exactly (see `search::Probe`); builds keep using the
    /// vectors.
    ///
    /// Large graphs are coded on scoped threads of their own, one per core, not on rayon:
    /// this runs under the graph's write lock, and a thread waiting in a rayon call may
    /// run another rayon job meanwhile — one that could be waiting for this very lock.
    pub(super) fn quantize(&mut self) {
        let q = Sq8::train(self.dim, &self.vectors);
        // As much room as the vectors have (pushes then grow both alike).
        let mut codes = Vec::with_capacity(self.vectors.capacity());
        codes.resize(self.vectors.len(), 0);
        let threads = if self.len() >= PARALLEL_CODING_FROM {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            1
        };
        let per_thread = self.len().div_ceil(threads).max(1) * self.dim;
        let code_all = |codes: &mut [u8], vectors: &[f32]| {
            for (c, v) in codes
                .chunks_exact_mut(self.dim)
                .zip(vectors.chunks_exact(self.dim))
            {
                q.encode(v, c);
            }
        };
        std::thread::scope(|scope| {
            let mut parts = codes
                .chunks_mut(per_thread)
                .zip(self.vectors.chunks(per_thread));
            let mine = parts.next();
            for (c, v) in parts {
                scope.spawn(move || code_all(c, v));
            }
            if let Some((c, v)) = mine {
                code_all(c, v);
            }
        });
        self.codes = codes;
        self.sq8 = Some(q);
        self.trained_at = self.len();
    }

    /// Sets how many nodes the graph needs before it keeps codes (`usize::MAX`: never);
    /// quantizes at once if it has that many, drops the codes if it now has too few.
    pub(super) fn set_quantize_from(&mut self, nodes: usize) {
        self.quantize_from = nodes;
        if self.len() < nodes {
            self.sq8 = None;
            self.codes = Vec::new();
            self.trained_at = 0;
        } else if self.sq8.is_none() && self.len() > 0 {
            self.quantize();
        }
    }

    /// The 8-bit code of `slot` (empty before [`Graph::quantize`]).
    #[inline]
    pub(super) fn code(&self, slot: u32) -> &[u8] {
        let s = slot as usize * self.dim;
        self.codes.get(s..s + self.dim).unwrap_or(&[])
    }

    #[inline]
    pub(super) fn vector(&self, slot: u32) -> &[f32] {
        let s = slot as usize * self.dim;
        &self.vectors[s..s + self.dim]
    }

    #[inline]
    pub(super) fn dist(&self, a: &[f32], b: &[f32]) -> f32 {
        self.kernels.distance(self.metric, a, b)
    }

    /// The link list of `slot` at `level`: word 0 is the count, then the links.
    #[inline]
    pub(super) fn link_slot(&self, slot: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let w = 1 + self.m0;
            let s = slot as usize * w;
            &self.level0[s..s + w]
        } else {
            let w = 1 + self.m;
            let s = (usize::from(level) - 1) * w;
            match &self.upper[slot as usize] {
                Some(u) if s + w <= u.len() => &u[s..s + w],
                _ => &[],
            }
        }
    }

    /// Copies the links of `slot` at `level` into `out` (a racy but always in-bounds read).
    #[inline]
    pub(super) fn read_links(&self, slot: u32, level: u8, out: &mut Vec<u32>) {
        out.clear();
        let l = self.link_slot(slot, level);
        if let Some((count, links)) = l.split_first() {
            let n = (count.load(Relaxed) as usize).min(links.len());
            out.extend(links[..n].iter().map(|x| x.load(Relaxed)));
        }
    }

    /// Replaces the links of `slot` at `level`; the caller holds `link_locks[slot]`.
    pub(super) fn write_links(&self, slot: u32, level: u8, links: &[u32]) {
        let l = self.link_slot(slot, level);
        if let Some((count, cells)) = l.split_first() {
            let n = links.len().min(cells.len());
            for (c, &v) in cells.iter().zip(&links[..n]) {
                c.store(v, Relaxed);
            }
            count.store(n as u32, Relaxed);
        }
    }

    #[inline]
    pub(super) fn capacity(&self, level: u8) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    pub(super) fn entry(&self) -> Option<(u32, u8)> {
        let e = self.entry.load(Relaxed);
        (e != NO_ENTRY).then_some((e as u32, (e >> 32) as u8))
    }

    pub(super) fn set_entry(&self, slot: u32, level: u8) {
        self.entry
            .store((u64::from(level) << 32) | u64::from(slot), Relaxed);
    }

    pub(super) fn raw_entry(&self) -> u64 {
        self.entry.load(Relaxed)
    }

    #[inline]
    pub(super) fn is_deleted(&self, slot: u32) -> bool {
        self.deleted[slot as usize].load(Relaxed)
    }

    pub(super) fn live(&self) -> usize {
        self.len() - self.n_deleted.load(Relaxed)
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.vectors.capacity() * 4
            + self.codes.capacity()
            + self.ids.capacity() * 8
            + self.levels.capacity()
            + self.level0.capacity() * 4
            + self.upper.capacity() * std::mem::size_of::<Option<Box<[AtomicU32]>>>()
            + self.upper_words * 4
            + self.link_locks.capacity() * std::mem::size_of::<Mutex<()>>()
            + self.deleted.capacity()
            + self.slots.capacity() * (std::mem::size_of::<(RowId, u32)>() + 1)
    }

    /// Verifies the invariants on a quiescent graph; `Err` names the first violation.
    pub(super) fn check_integrity(&self) -> Result<(), String> {
        let n = self.len();
        if self.vectors.len() != n * self.dim
            || self.levels.len() != n
            || self.level0.len() != n * (1 + self.m0)
            || self.upper.len() != n
            || self.link_locks.len() != n
            || self.deleted.len() != n
        {
            return Err("per-node arrays disagree in length".into());
        }
        let coded = if self.sq8.is_some() { n * self.dim } else { 0 };
        if self.codes.len() != coded {
            return Err(format!("{} code bytes for {n} nodes", self.codes.len()));
        }
        if let Some(q) = &self.sq8 {
            let mut code = vec![0u8; self.dim];
            for s in 0..n as u32 {
                q.encode(self.vector(s), &mut code);
                if code != self.code(s) {
                    return Err(format!("node {s}: its code is not its vector's"));
                }
            }
        }
        let mut links = Vec::new();
        let mut max_level = None::<u8>;
        let mut n_deleted = 0;
        let mut any_link = false;
        for s in 0..n as u32 {
            let level = self.levels[s as usize];
            if level > MAX_LEVEL {
                return Err(format!("node {s} has level {level} > {MAX_LEVEL}"));
            }
            max_level = max_level.max(Some(level));
            let want = usize::from(level) * (1 + self.m);
            match &self.upper[s as usize] {
                None if level == 0 => {}
                Some(u) if u.len() == want && level > 0 => {}
                _ => return Err(format!("node {s}: upper links do not match level {level}")),
            }
            n_deleted += usize::from(self.is_deleted(s));
            for l in 0..=level {
                let slot = self.link_slot(s, l);
                let count = slot[0].load(Relaxed) as usize;
                if count > self.capacity(l) {
                    return Err(format!("node {s} level {l}: {count} links > capacity"));
                }
                self.read_links(s, l, &mut links);
                any_link |= !links.is_empty();
                for &t in &links {
                    if t as usize >= n {
                        return Err(format!("node {s} level {l}: link to missing node {t}"));
                    }
                    if t == s {
                        return Err(format!("node {s} level {l}: links to itself"));
                    }
                    if self.levels[t as usize] < l {
                        return Err(format!("node {s} level {l}: link to {t} of lower level"));
                    }
                }
            }
        }
        let words: usize = self.upper.iter().flatten().map(|u| u.len()).sum();
        if words != self.upper_words {
            return Err("upper link word count is off".into());
        }
        if n_deleted != self.n_deleted.load(Relaxed) {
            return Err("tombstone count is off".into());
        }
        if !self.linked {
            if any_link || self.entry().is_some() {
                return Err("a graph not linked yet has links or an entry point".into());
            }
        } else if self.entry().is_none() && n > 0 {
            return Err("a linked graph without an entry point".into());
        }
        match (self.entry(), max_level) {
            (None, _) if !self.linked => {}
            (None, None) => {}
            (Some((e, l)), Some(max)) => {
                if e as usize >= n || self.levels[e as usize] != l || l != max {
                    return Err(format!("entry point {e} (level {l}) is not a top node"));
                }
            }
            (e, m) => return Err(format!("entry point {e:?} with max level {m:?}")),
        }
        for (id, &s) in &self.slots {
            if self.ids.get(s as usize) != Some(id) {
                return Err(format!("row {id} maps to slot {s} of another row"));
            }
        }
        let mut live_ids = std::collections::HashSet::new();
        for s in 0..n as u32 {
            if !self.is_deleted(s) {
                let id = self.ids[s as usize];
                if !live_ids.insert(id) || self.slots.get(&id) != Some(&s) {
                    return Err(format!("live node {s} of row {id} is not the mapped one"));
                }
            }
        }
        Ok(())
    }
}

/// The level of a new node: `floor(-ln(u) / ln(m))` with `u` uniform in `(0, 1]` drawn
/// from a hash of `(seed, id)`, so it does not depend on insertion order or threads.
pub(super) fn level_for(seed: u64, id: RowId, m: usize) -> u8 {
    let mut z = seed ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let mult = 1.0 / (m as f64).ln();
    let l = (-u.ln() * mult).floor();
    if l >= f64::from(MAX_LEVEL) {
        MAX_LEVEL
    } else {
        l as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_geometric_law() {
        let n = 100_000u64;
        let at_least_1 = (0..n).filter(|&i| level_for(7, RowId(i), 16) >= 1).count();
        // P(level >= 1) = 1/m = 1/16.
        let f = at_least_1 as f64 / n as f64;
        assert!((f - 1.0 / 16.0).abs() < 0.005, "{f}");
        assert_eq!(level_for(7, RowId(5), 16), level_for(7, RowId(5), 16));
    }
}
