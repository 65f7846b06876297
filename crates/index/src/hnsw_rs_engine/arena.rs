//! The engine's own copy of its rows: one contiguous vector arena indexed by slot, the
//! `RowId -> slot` map and the tombstones. hnsw_rs keeps a second copy of every vector
//! inside its graph, but reading it back clones (`get_point_data`), so `vector()`,
//! `search_among` and rebuilds read from here.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use quiverdb_types::RowId;

/// A hasher for `RowId`s: they are handed out in increasing order, so a multiplicative
/// mix is enough and much cheaper than SipHash inside the graph walk.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RowIdHasher(u64);

impl Hasher for RowIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, x: u64) {
        let h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// `RowId -> slot` map with the cheap hasher.
pub(crate) type SlotMap = HashMap<RowId, u32, BuildHasherDefault<RowIdHasher>>;

/// Rows of one graph generation.
///
/// # Invariants
/// * `vectors.len() == row_ids.len() * dim` and `live.len() == row_ids.len()`.
/// * `slot_of[row_ids[s]] == s` for every slot `s` (tombstoned rows keep their slot: the
///   graph still holds them, and a row id is never inserted twice).
/// * `dead == live.iter().filter(|l| !l).count()`.
#[derive(Debug, Clone)]
pub(crate) struct Arena {
    dim: usize,
    vectors: Vec<f32>,
    row_ids: Vec<RowId>,
    live: Vec<bool>,
    slot_of: SlotMap,
    dead: usize,
}

impl Arena {
    pub(crate) fn new(dim: usize) -> Self {
        Arena {
            dim,
            vectors: Vec::new(),
            row_ids: Vec::new(),
            live: Vec::new(),
            slot_of: SlotMap::default(),
            dead: 0,
        }
    }

    /// Whether `id` was ever added (live or tombstoned).
    pub(crate) fn knows(&self, id: RowId) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// Appends a live row; the caller checked `knows(id) == false` and the length.
    pub(crate) fn push(&mut self, id: RowId, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        debug_assert!(!self.knows(id));
        let slot = self.row_ids.len() as u32;
        self.vectors.extend_from_slice(v);
        self.row_ids.push(id);
        self.live.push(true);
        self.slot_of.insert(id, slot);
    }

    /// Tombstones `id`; returns whether it was live.
    pub(crate) fn remove(&mut self, id: RowId) -> bool {
        match self.slot_of.get(&id) {
            Some(&s) if self.live[s as usize] => {
                self.live[s as usize] = false;
                self.dead += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn is_live(&self, id: RowId) -> bool {
        matches!(self.slot_of.get(&id), Some(&s) if self.live[s as usize])
    }

    /// The vector of a live row.
    pub(crate) fn get(&self, id: RowId) -> Option<&[f32]> {
        let s = *self.slot_of.get(&id)? as usize;
        self.live[s].then(|| &self.vectors[s * self.dim..(s + 1) * self.dim])
    }

    /// Rows ever added (live + tombstoned) — the number of graph nodes.
    pub(crate) fn total(&self) -> usize {
        self.row_ids.len()
    }

    pub(crate) fn tombstones(&self) -> usize {
        self.dead
    }

    pub(crate) fn live_count(&self) -> usize {
        self.row_ids.len() - self.dead
    }

    /// Rows from slot `from` on, live or not, in slot order.
    pub(crate) fn rows_from(&self, from: usize) -> impl Iterator<Item = (RowId, bool, &[f32])> {
        let dim = self.dim;
        (from..self.row_ids.len()).map(move |s| {
            (
                self.row_ids[s],
                self.live[s],
                &self.vectors[s * dim..(s + 1) * dim],
            )
        })
    }

    /// Bytes held (vectors, ids, flags, the map).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.vectors.capacity() * 4
            + self.row_ids.capacity() * 8
            + self.live.capacity()
            + self.slot_of.capacity() * 16
    }

    /// Checks the invariants; `Err` names the first one broken.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.vectors.len() != self.row_ids.len() * self.dim
            || self.live.len() != self.row_ids.len()
        {
            return Err("arena lengths disagree".into());
        }
        if self.slot_of.len() != self.row_ids.len() {
            return Err("duplicate row id in arena".into());
        }
        for (s, id) in self.row_ids.iter().enumerate() {
            if self.slot_of.get(id) != Some(&(s as u32)) {
                return Err(format!("row {id} not mapped to its slot {s}"));
            }
        }
        if self.dead != self.live.iter().filter(|l| !**l).count() {
            return Err("tombstone count is wrong".into());
        }
        Ok(())
    }

    /// Little-endian encoding: magic, dim (u32), count (u64), then per row id (u64) and
    /// live flag (u8), then all vectors (f32).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let n = self.row_ids.len();
        let mut out = Vec::with_capacity(20 + n * 9 + self.vectors.len() * 4);
        out.extend_from_slice(ROWS_MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        for (id, live) in self.row_ids.iter().zip(&self.live) {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.push(u8::from(*live));
        }
        for x in &self.vectors {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Inverse of [`Arena::encode`]; `Err` says what is wrong.
    pub(crate) fn decode(bytes: &[u8], dim: usize) -> Result<Arena, String> {
        let head = ROWS_MAGIC.len() + 12;
        if bytes.len() < head || &bytes[..ROWS_MAGIC.len()] != ROWS_MAGIC {
            return Err("rows file has no valid header".into());
        }
        let m = ROWS_MAGIC.len();
        let file_dim = u32::from_le_bytes(bytes[m..m + 4].try_into().unwrap_or_default()) as usize;
        let n = u64::from_le_bytes(bytes[m + 4..m + 12].try_into().unwrap_or_default());
        if file_dim != dim {
            return Err(format!(
                "rows file has dimension {file_dim}, manifest says {dim}"
            ));
        }
        let n = usize::try_from(n).map_err(|_| "row count overflows".to_string())?;
        let expected = n
            .checked_mul(9 + dim * 4)
            .and_then(|b| b.checked_add(head))
            .ok_or("row count overflows")?;
        if bytes.len() != expected {
            return Err(format!(
                "rows file is {} bytes, expected {expected}",
                bytes.len()
            ));
        }
        let mut arena = Arena::new(dim);
        arena.row_ids.reserve(n);
        let mut at = head;
        for _ in 0..n {
            let id = RowId(u64::from_le_bytes(
                bytes[at..at + 8].try_into().unwrap_or_default(),
            ));
            let live = match bytes[at + 8] {
                0 => false,
                1 => true,
                b => return Err(format!("bad live flag {b}")),
            };
            if arena
                .slot_of
                .insert(id, arena.row_ids.len() as u32)
                .is_some()
            {
                return Err(format!("row {id} appears twice"));
            }
            arena.row_ids.push(id);
            arena.live.push(live);
            arena.dead += usize::from(!live);
            at += 9;
        }
        arena.vectors = bytes[at..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = arena.vectors.iter().position(|x| !x.is_finite()) {
            return Err(format!("non-finite vector component at {i}"));
        }
        Ok(arena)
    }
}

const ROWS_MAGIC: &[u8; 8] = b"QVROWS01";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_remove_get_and_round_trip() {
        let mut a = Arena::new(2);
        a.push(RowId(7), &[1.0, 2.0]);
        a.push(RowId(9), &[3.0, 4.0]);
        assert!(a.remove(RowId(7)));
        assert!(!a.remove(RowId(7)));
        assert!(a.knows(RowId(7)) && !a.is_live(RowId(7)));
        assert_eq!(a.get(RowId(9)), Some(&[3.0, 4.0][..]));
        assert_eq!(a.get(RowId(7)), None);
        assert_eq!((a.total(), a.live_count(), a.tombstones()), (2, 1, 1));
        a.check().unwrap();
        let b = Arena::decode(&a.encode(), 2).unwrap();
        b.check().unwrap();
        assert_eq!(b.get(RowId(9)), a.get(RowId(9)));
        assert!(!b.is_live(RowId(7)));
        let mut bad = a.encode();
        bad.pop();
        assert!(Arena::decode(&bad, 2).is_err());
        assert!(Arena::decode(&a.encode(), 3).is_err());
    }
}
