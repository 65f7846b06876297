//! The native engine's data file (all little-endian):
//!
//! ```text
//! "QVNHSW01"
//! dim u64, m u64, nodes u64, entry u64 (u64::MAX = none: else level << 32 | slot)
//! per node: row id u64, level u8, deleted u8
//! vectors: nodes * dim f32
//! level-0 links: nodes * (1 + 2m) u32 (count, then links; unused words are 0)
//! upper links, for each node with level > 0 in slot order: level * (1 + m) u32
//! ```
//! Decoding checks every length and count; structural checks are left to
//! `Graph::check_integrity`, which the loader runs next.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use parking_lot::Mutex;
use quiverdb_types::RowId;

use super::graph::{Graph, MAX_LEVEL};
use crate::snapshot::{Reader, Writer};
use crate::{kernels, IndexConfig};

const MAGIC: &[u8; 8] = b"QVNHSW01";

pub(super) fn encode(g: &Graph) -> Vec<u8> {
    let n = g.len();
    let mut w = Writer::with_capacity(40 + n * (10 + 4 * g.dim + 4 * (1 + g.m0)));
    w.bytes(MAGIC);
    w.u64(g.dim as u64);
    w.u64(g.m as u64);
    w.u64(n as u64);
    w.u64(g.raw_entry());
    for s in 0..n {
        w.u64(g.ids[s].0);
        w.u8(g.levels[s]);
        w.u8(u8::from(g.is_deleted(s as u32)));
    }
    w.f32s(&g.vectors);
    w.u32s(g.level0.iter().map(|x| x.load(Relaxed)));
    for u in g.upper.iter().flatten() {
        w.u32s(u.iter().map(|x| x.load(Relaxed)));
    }
    w.buf
}

pub(super) fn decode(config: &IndexConfig, data: &[u8]) -> Result<Graph, String> {
    let mut r = Reader::new(data);
    if r.take(8, "magic")? != MAGIC {
        return Err("bad magic (not a native HNSW data file, or another format version)".into());
    }
    let dim = r.u64("dim")?;
    let m = r.u64("m")?;
    if dim != config.dim as u64 || m != config.m as u64 {
        return Err(format!(
            "dim {dim} / m {m} disagree with the manifest ({} / {})",
            config.dim, config.m
        ));
    }
    let n = r.count(10 + 4 * config.dim, "nodes")?;
    if n >= u32::MAX as usize {
        return Err("too many nodes".into());
    }
    let entry = r.u64("entry")?;
    let mut g = Graph::new(config.dim, config.metric, config.m, kernels::active());
    g.reserve(n);
    let mut n_deleted = 0;
    for s in 0..n {
        let id = RowId(r.u64("row id")?);
        let level = r.u8("level")?;
        if level > MAX_LEVEL {
            return Err(format!("node {s} has level {level}"));
        }
        let deleted = match r.u8("deleted flag")? {
            0 => false,
            1 => true,
            x => return Err(format!("node {s}: deleted flag {x}")),
        };
        g.ids.push(id);
        g.levels.push(level);
        g.deleted.push(AtomicBool::new(deleted));
        g.link_locks.push(Mutex::new(()));
        n_deleted += usize::from(deleted);
        // The live node of a row wins; otherwise the newest tombstone.
        match g.slots.get(&id) {
            Some(&p) if !g.deleted[p as usize].load(Relaxed) => {
                if !deleted {
                    return Err(format!("row {id} is live twice"));
                }
            }
            _ => {
                g.slots.insert(id, s as u32);
            }
        }
    }
    g.vectors = r.f32s(n * config.dim, "vectors")?;
    if let Some(x) = g.vectors.iter().find(|x| !x.is_finite()) {
        return Err(format!("non-finite vector component {x}"));
    }
    g.level0 = r
        .u32s(n * (1 + g.m0), "level-0 links")?
        .into_iter()
        .map(AtomicU32::new)
        .collect();
    for s in 0..n {
        let level = usize::from(g.levels[s]);
        g.upper.push(if level == 0 {
            None
        } else {
            let words = r.u32s(level * (1 + g.m), "upper links")?;
            Some(words.into_iter().map(AtomicU32::new).collect())
        });
    }
    r.finish()?;
    g.n_deleted.store(n_deleted, Relaxed);
    g.entry.store(entry, Relaxed);
    Ok(g)
}
