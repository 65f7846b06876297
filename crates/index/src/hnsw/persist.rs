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
//! Decoding reads the file once, front to back, straight into the graph's memory, checking
//! every length and count and, in the same pass, the graph's structure (see [`decode`]).

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use parking_lot::Mutex;
use quiverdb_types::RowId;

use super::graph::{Graph, MAX_LEVEL};
use crate::snapshot::{StreamReader, Writer};
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

/// Decodes and validates in one linear pass: every invariant of `Graph::check_integrity`
/// holds for the result (lengths, levels, link counts, link targets in bounds, not the node
/// itself and of a high enough level, tombstone count, entry point a top node, one live
/// node per row), so the loader needs no second walk over the graph.
/// The caller checks the end of the data and its checksum ([`StreamReader::finish`]).
pub(super) fn decode<R: std::io::Read>(
    config: &IndexConfig,
    r: &mut StreamReader<R>,
) -> Result<Graph, String> {
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
    let mut top = None::<u8>;
    for (s, rec) in r.take(n * 10, "node table")?.chunks_exact(10).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rec[..8]);
        let id = RowId(u64::from_le_bytes(b));
        let level = rec[8];
        if level > MAX_LEVEL {
            return Err(format!("node {s} has level {level}"));
        }
        top = top.max(Some(level));
        let deleted = match rec[9] {
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
        match g.slots.entry(id) {
            Entry::Occupied(mut o) => {
                let p = *o.get() as usize;
                if !g.deleted[p].load(Relaxed) {
                    if !deleted {
                        return Err(format!("row {id} is live twice"));
                    }
                } else {
                    o.insert(s as u32);
                }
            }
            Entry::Vacant(v) => {
                v.insert(s as u32);
            }
        }
    }
    g.vectors = r.f32s(n * config.dim, "vectors")?;
    if !g.vectors.iter().all(|x| x.is_finite()) {
        return Err("non-finite vector component".into());
    }
    let w0 = 1 + g.m0;
    let level0 = r.u32s(n * w0, "level-0 links")?;
    for (s, list) in level0.chunks_exact(w0).enumerate() {
        check_links(&g, s, 0, list)?;
    }
    g.level0 = level0.into_iter().map(AtomicU32::new).collect();
    let w = 1 + g.m;
    for s in 0..n {
        let level = usize::from(g.levels[s]);
        g.upper.push(if level == 0 {
            None
        } else {
            let words = r.u32s(level * w, "upper links")?;
            g.upper_words += words.len();
            for (l, list) in words.chunks_exact(w).enumerate() {
                check_links(&g, s, l + 1, list)?;
            }
            Some(words.into_iter().map(AtomicU32::new).collect())
        });
    }
    // No entry point: a graph whose nodes wait to be linked (deferred linking), so no
    // node may hold a link.
    let unlinked = entry == u64::MAX;
    let holds_links =
        |words: &[AtomicU32], w: usize| words.chunks_exact(w).any(|l| l[0].load(Relaxed) != 0);
    if unlinked
        && (holds_links(&g.level0, w0) || g.upper.iter().flatten().any(|u| holds_links(u, w)))
    {
        return Err("links in a graph with no entry point".into());
    }
    match top {
        _ if unlinked => {}
        Some(top) if entry >> 32 == u64::from(top) && (entry as u32 as usize) < n => {
            if g.levels[entry as u32 as usize] != top {
                return Err(format!("entry point {entry:#x} is not a top node"));
            }
        }
        _ => return Err(format!("entry point {entry:#x} with top level {top:?}")),
    }
    g.n_deleted.store(n_deleted, Relaxed);
    g.entry.store(entry, Relaxed);
    g.linked = !unlinked;
    // Codes are not stored: trained on every loaded vector and made here.
    g.set_quantize_from(g.quantize_from);
    Ok(g)
}

/// One stored list of node `s` at `level` (a count, then the links): the count fits, every
/// link is another node of at least that level.
fn check_links(g: &Graph, s: usize, level: usize, list: &[u32]) -> Result<(), String> {
    let (count, links) = list.split_first().ok_or("empty link list")?;
    let links = links
        .get(..*count as usize)
        .ok_or_else(|| format!("node {s} level {level}: {count} links > capacity"))?;
    for &t in links {
        match g.levels.get(t as usize) {
            None => return Err(format!("node {s} level {level}: link to missing node {t}")),
            Some(_) if t as usize == s => {
                return Err(format!("node {s} level {level}: links to itself"))
            }
            Some(&lt) if usize::from(lt) < level => {
                return Err(format!(
                    "node {s} level {level}: link to {t} of lower level"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
