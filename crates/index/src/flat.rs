//! [`FlatIndex`]: exact search over one contiguous arena. Ground truth for tests and the
//! engine for small collections.
//!
//! Removal moves the last row into the freed slot (swap-remove), so the arena holds only
//! live rows and a scan never skips tombstones.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::RwLock;
use quiverdb_types::{Metric, RowId};

use crate::engine::{check_batch, prepare_vector, Rows, TopK};
use crate::snapshot::{snapshot_error, write_with_manifest, StreamReader, Writer};
use crate::{
    kernels, IndexConfig, IndexError, IndexStats, Neighbor, RowFilter, SearchParams, VectorIndex,
};

const MAGIC: &[u8; 8] = b"QVFLAT01";

/// Exact (brute-force) index.
///
/// # Invariants
/// `vectors.len() == ids.len() * dim`; `slots[ids[s]] == s` for every slot `s`, and
/// `slots` has no other entries.
#[derive(Debug)]
pub struct FlatIndex {
    config: IndexConfig,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    vectors: Vec<f32>,
    ids: Vec<RowId>,
    slots: HashMap<RowId, usize>,
}

impl Inner {
    /// Every row, as a scan reads them (none is skipped: a removal moves the last row
    /// into the hole).
    fn rows(&self, dim: usize) -> Rows<'_, impl Fn(usize) -> bool> {
        Rows {
            ids: &self.ids,
            vectors: &self.vectors,
            dim,
            skip: |_| false,
        }
    }
}

impl FlatIndex {
    /// An empty index (the config is validated).
    pub fn new(config: &IndexConfig) -> Result<Self, IndexError> {
        config.validate()?;
        Ok(FlatIndex {
            config: config.clone(),
            inner: RwLock::new(Inner::default()),
        })
    }

    /// The config it was built with.
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Verifies the invariants; `Err` describes the first violation.
    pub fn check_integrity(&self) -> Result<(), String> {
        let g = self.inner.read();
        if g.vectors.len() != g.ids.len() * self.config.dim {
            return Err("arena length is not rows * dim".into());
        }
        if g.slots.len() != g.ids.len() {
            return Err(format!(
                "{} map entries for {} rows",
                g.slots.len(),
                g.ids.len()
            ));
        }
        for (s, id) in g.ids.iter().enumerate() {
            if g.slots.get(id) != Some(&s) {
                return Err(format!("row {id} at slot {s} is not mapped to it"));
            }
        }
        Ok(())
    }

    /// Loads a snapshot written by [`VectorIndex::save_snapshot`] of this engine; returns
    /// it with the sequence number it covers.
    pub fn load(dir: &Path) -> Result<(Self, u64), IndexError> {
        let m = crate::snapshot::read_own_manifest(dir, crate::Engine::Flat)?;
        Ok((Self::from_manifest(&m, dir)?, m.seq))
    }

    /// Loads the data file `m` names, decoding it as it is read (see
    /// [`crate::snapshot::Manifest`]'s `decode_data`).
    pub(crate) fn from_manifest(
        m: &crate::snapshot::Manifest,
        dir: &Path,
    ) -> Result<Self, IndexError> {
        let (ids, vectors) = m.decode_data(dir, |r| {
            decode(&m.config, r).map_err(|d| format!("flat data: {d}"))
        })?;
        let bad = |d: String| snapshot_error(dir, format!("flat data: {d}"));
        let mut slots = HashMap::with_capacity(ids.len());
        for (s, &id) in ids.iter().enumerate() {
            if slots.insert(id, s).is_some() {
                return Err(bad(format!("row {id} twice")));
            }
        }
        if let Some(x) = vectors.iter().find(|x| !x.is_finite()) {
            return Err(bad(format!("non-finite component {x}")));
        }
        let idx = FlatIndex::new(&m.config)?;
        *idx.inner.write() = Inner {
            vectors,
            ids,
            slots,
        };
        Ok(idx)
    }
}

/// The row ids and vectors of a flat data file (its end and checksum are the caller's).
fn decode<R: std::io::Read>(
    config: &IndexConfig,
    r: &mut StreamReader<R>,
) -> Result<(Vec<RowId>, Vec<f32>), String> {
    if r.take(8, "magic")? != MAGIC {
        return Err("bad magic".into());
    }
    let dim = r.u64("dim")?;
    if dim != config.dim as u64 {
        return Err(format!("dim {dim}, manifest says {}", config.dim));
    }
    let n = r.count(8 + 4 * config.dim, "rows")?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(RowId(r.u64("row id")?));
    }
    let vectors = r.f32s(n * config.dim, "vectors")?;
    Ok((ids, vectors))
}

impl VectorIndex for FlatIndex {
    fn dim(&self) -> usize {
        self.config.dim
    }

    fn metric(&self) -> Metric {
        self.config.metric
    }

    fn len(&self) -> usize {
        self.inner.read().ids.len()
    }

    fn insert(&self, id: RowId, vector: &[f32]) -> Result<(), IndexError> {
        let v = prepare_vector(self.config.dim, self.config.metric, vector)?;
        let mut g = self.inner.write();
        if g.slots.contains_key(&id) {
            return Err(IndexError::DuplicateRow(id));
        }
        let slot = g.ids.len();
        g.ids.push(id);
        g.vectors.extend_from_slice(&v);
        g.slots.insert(id, slot);
        Ok(())
    }

    fn insert_batch(
        &self,
        items: &[(RowId, &[f32])],
        pool: &rayon::ThreadPool,
    ) -> Result<(), IndexError> {
        let (dim, metric) = (self.config.dim, self.config.metric);
        check_batch(dim, metric, items, pool)?;
        let mut g = self.inner.write();
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for (id, _) in items {
            if g.slots.contains_key(id) || !seen.insert(*id) {
                return Err(IndexError::DuplicateRow(*id));
            }
        }
        g.vectors.reserve(items.len() * dim);
        for (id, v) in items {
            let slot = g.ids.len();
            g.ids.push(*id);
            g.vectors.extend_from_slice(v);
            if metric == Metric::Cosine {
                let ok = kernels::normalize(&mut g.vectors[slot * dim..]);
                debug_assert!(ok, "zero vectors were rejected above");
            }
            g.slots.insert(*id, slot);
        }
        Ok(())
    }

    fn remove(&self, id: RowId) -> bool {
        let mut g = self.inner.write();
        let Some(slot) = g.slots.remove(&id) else {
            return false;
        };
        let dim = self.config.dim;
        let last = g.ids.len() - 1;
        if slot != last {
            let moved = g.ids[last];
            g.ids[slot] = moved;
            g.vectors
                .copy_within(last * dim..(last + 1) * dim, slot * dim);
            g.slots.insert(moved, slot);
        }
        g.ids.pop();
        g.vectors.truncate(last * dim);
        true
    }

    fn contains(&self, id: RowId) -> bool {
        self.inner.read().slots.contains_key(&id)
    }

    fn vector(&self, id: RowId) -> Option<Vec<f32>> {
        let g = self.inner.read();
        let s = *g.slots.get(&id)?;
        let dim = self.config.dim;
        Some(g.vectors[s * dim..(s + 1) * dim].to_vec())
    }

    fn search(
        &self,
        query: &[f32],
        params: SearchParams,
        filter: Option<RowFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        let q = prepare_vector(self.config.dim, self.config.metric, query)?;
        let g = self.inner.read();
        let ks = kernels::active();
        if params.k == 0 {
            return Ok(Vec::new());
        }
        Ok(g.rows(self.config.dim)
            .top_k(ks, self.config.metric, &q, params.k, filter))
    }

    /// Every row is scanned once per four queries (`engine::Rows::top_k_batch`).
    fn search_batch(
        &self,
        queries: &[&[f32]],
        params: SearchParams,
    ) -> Vec<Result<Vec<Neighbor>, IndexError>> {
        let (dim, metric) = (self.config.dim, self.config.metric);
        crate::engine::search_prepared(dim, metric, queries, |prepared| {
            if params.k == 0 {
                return vec![Vec::new(); prepared.len()];
            }
            let g = self.inner.read();
            g.rows(dim)
                .top_k_batch(kernels::active(), metric, prepared, params.k)
        })
    }

    fn search_batch_shares_work(&self) -> bool {
        true
    }

    fn search_among(
        &self,
        query: &[f32],
        k: usize,
        ids: &[RowId],
    ) -> Result<Vec<Neighbor>, IndexError> {
        let q = prepare_vector(self.config.dim, self.config.metric, query)?;
        let g = self.inner.read();
        let ks = kernels::active();
        let dim = self.config.dim;
        let mut top = TopK::new(k);
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            if let Some(&s) = g.slots.get(id) {
                if seen.insert(*id) {
                    let d = ks.distance(self.config.metric, &q, &g.vectors[s * dim..(s + 1) * dim]);
                    top.push(d, *id);
                }
            }
        }
        Ok(top.into_sorted())
    }

    fn stats(&self) -> IndexStats {
        let g = self.inner.read();
        IndexStats {
            engine: "flat",
            live: g.ids.len(),
            tombstones: 0,
            memory_bytes: g.vectors.capacity() * 4
                + g.ids.capacity() * 8
                + g.slots.capacity() * (8 + 8 + 1),
        }
    }

    fn save_snapshot(&self, dir: &Path, seq: u64) -> Result<(), IndexError> {
        let bytes = {
            let g = self.inner.read();
            let mut w = Writer::with_capacity(16 + g.ids.len() * 8 + g.vectors.len() * 4);
            w.bytes(MAGIC);
            w.u64(self.config.dim as u64);
            w.u64(g.ids.len() as u64);
            for id in &g.ids {
                w.u64(id.0);
            }
            w.f32s(&g.vectors);
            w.buf
        };
        write_with_manifest(dir, "flat", &self.config, seq, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    fn idx(metric: Metric) -> FlatIndex {
        FlatIndex::new(&IndexConfig::new(Engine::Flat, metric, 2)).unwrap()
    }

    fn p(k: usize) -> SearchParams {
        SearchParams { k, ef: 16 }
    }

    #[test]
    fn exact_order_filter_and_swap_remove() {
        let f = idx(Metric::L2);
        for i in 0..10u64 {
            f.insert(RowId(i), &[i as f32, 0.0]).unwrap();
        }
        assert!(matches!(
            f.insert(RowId(3), &[0.0, 0.0]),
            Err(IndexError::DuplicateRow(_))
        ));
        let hits = f.search(&[2.2, 0.0], p(3), None).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.id.0).collect::<Vec<_>>(),
            vec![2, 3, 1]
        );
        let even = |id: RowId| id.0.is_multiple_of(2);
        let hits = f.search(&[2.9, 0.0], p(2), Some(&even)).unwrap();
        assert_eq!(hits.iter().map(|h| h.id.0).collect::<Vec<_>>(), vec![2, 4]);
        assert!(f.remove(RowId(2)));
        assert!(!f.remove(RowId(2)));
        assert!(!f.contains(RowId(2)));
        assert_eq!(f.vector(RowId(9)), Some(vec![9.0, 0.0]));
        let hits = f.search(&[2.2, 0.0], p(2), None).unwrap();
        assert_eq!(hits.iter().map(|h| h.id.0).collect::<Vec<_>>(), vec![3, 1]);
        assert_eq!(f.len(), 9);
        f.check_integrity().unwrap();
    }

    #[test]
    fn cosine_normalizes_and_ip_prefers_large_dot() {
        let c = idx(Metric::Cosine);
        c.insert(RowId(1), &[10.0, 0.0]).unwrap();
        c.insert(RowId(2), &[1.0, 1.0]).unwrap();
        assert_eq!(c.vector(RowId(1)), Some(vec![1.0, 0.0]));
        let h = c.search(&[3.0, 0.1], p(1), None).unwrap();
        assert_eq!(h[0].id, RowId(1));
        let ip = idx(Metric::Ip);
        ip.insert(RowId(1), &[1.0, 0.0]).unwrap();
        ip.insert(RowId(2), &[5.0, 0.0]).unwrap();
        let h = ip.search(&[1.0, 0.0], p(2), None).unwrap();
        assert_eq!(h[0].id, RowId(2));
        assert_eq!(h[0].distance, -5.0);
    }

    #[test]
    fn batch_is_all_or_nothing_on_duplicates() {
        let f = idx(Metric::L2);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let a = [1.0f32, 2.0];
        let items = [(RowId(1), &a[..]), (RowId(1), &a[..])];
        assert!(f.insert_batch(&items, &pool).is_err());
        assert_eq!(f.len(), 0);
        let bad = [(RowId(1), &a[..1])];
        assert!(f.insert_batch(&bad, &pool).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let f = idx(Metric::L2);
        for i in 0..50u64 {
            f.insert(RowId(i * 3), &[i as f32, -(i as f32)]).unwrap();
        }
        f.remove(RowId(3));
        let dir = tempfile::tempdir().unwrap();
        f.save_snapshot(dir.path(), 77).unwrap();
        let (g, seq) = crate::load_snapshot(dir.path()).unwrap().unwrap();
        assert_eq!(seq, 77);
        assert_eq!(g.len(), 49);
        let q = [10.5f32, -10.0];
        assert_eq!(
            g.search(&q, p(5), None).unwrap(),
            f.search(&q, p(5), None).unwrap()
        );
        let data = dir.path().join("flat-77.bin");
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&data, &bytes).unwrap();
        assert!(matches!(
            crate::load_snapshot(dir.path()),
            Err(IndexError::Snapshot { .. })
        ));
    }
}
