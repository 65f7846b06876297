//! Turning a batch into a [`Plan`]: validation, key assignment and the write set.
//!
//! Planning is pure except for point reads of the primary-key index; it runs under the
//! collection's write lock, so those reads cannot go stale before the commit, and it reads
//! through the write set of the batches planned before it in the same transaction (write
//! combining, see `collection.rs`). A batch that fails validation anywhere returns an error
//! before anything is written.

use std::collections::HashSet;
use std::sync::Arc;

use quiverdb_types::{Metric, Pk, PkKind, RowId};

use crate::codec::{self, id_key, pk_key, row_key};
use crate::database::DbInner;
use crate::error::{Error, Result};
use crate::kv::{TreeId, WriteSet};
use crate::record::{NewRecord, StoredChange, WriteReceipt};
use crate::schema::CollectionState;

/// A validated batch, ready to commit in one transaction.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) ws: WriteSet,
    /// The collection state after the batch.
    pub(crate) state: CollectionState,
    pub(crate) receipt: WriteReceipt,
}

/// Checks one vector and normalizes it for cosine; fixes `dim` from the first vector.
pub(crate) fn validate_vector(
    row: usize,
    v: &mut [f32],
    dim: &mut Option<usize>,
    metric: Metric,
) -> Result<()> {
    if v.is_empty() {
        return Err(Error::EmptyVector { row });
    }
    match *dim {
        Some(d) if d != v.len() => {
            return Err(Error::WrongDimension {
                expected: d,
                got: v.len(),
            })
        }
        Some(_) => {}
        None => *dim = Some(v.len()),
    }
    if let Some((component, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::NonFiniteVector {
            row,
            component,
            value,
        });
    }
    if metric == Metric::Cosine {
        let norm = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(Error::ZeroVector { row });
        }
        for x in v.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    Ok(())
}

/// The key a record is stored under, assigning auto ids and checking kinds.
fn resolve_pk(state: &mut CollectionState, row: usize, pk: Option<Pk>, upsert: bool) -> Result<Pk> {
    match (state.pk_kind, pk) {
        (PkKind::AutoInt, None) if !upsert => {
            let id = state.next_auto_pk;
            // `i64::MAX` is never handed out, so an upserted `i64::MAX` cannot collide.
            if id == i64::MAX {
                return Err(Error::AutoIdExhausted);
            }
            state.next_auto_pk = id + 1;
            Ok(Pk::Int(id))
        }
        (PkKind::AutoInt, Some(pk)) if !upsert => Err(Error::WrongPkKind {
            expected: PkKind::AutoInt,
            got: pk,
        }),
        (_, None) => Err(Error::MissingPk { row }),
        (kind, Some(pk)) if !kind.accepts(&pk) => Err(Error::WrongPkKind {
            expected: kind,
            got: pk,
        }),
        (kind, Some(pk)) => {
            if let (PkKind::AutoInt, Pk::Int(i)) = (kind, &pk) {
                if *i >= state.next_auto_pk {
                    state.next_auto_pk = i.saturating_add(1);
                }
            }
            Ok(pk)
        }
    }
}

/// What a plan sees in front of sled: the write set of the batches planned before it in
/// the same commit, then the write sets of earlier commits that are durable but not yet
/// applied to sled (the flusher's, see `Collection::commit_queued`), newest first.
pub(crate) struct Earlier<'a> {
    pub(crate) own: &'a WriteSet,
    pub(crate) unapplied: &'a [Arc<WriteSet>],
}

impl Earlier<'_> {
    /// What these write sets leave at `key`: `Some(Some(v))` a put, `Some(None)` a
    /// removal, `None` nothing (sled's value stands).
    pub(crate) fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<&[u8]>> {
        self.own
            .get(tree, key)
            .or_else(|| self.unapplied.iter().rev().find_map(|ws| ws.get(tree, key)))
    }
}

/// The row a key points at, as seen after `earlier` (the write set of the batches committed
/// in the same transaction before this one).
fn stored_row(db: &DbInner, earlier: &Earlier<'_>, key: &[u8]) -> Result<Option<RowId>> {
    match earlier.get(TreeId::PkIndex, key) {
        Some(Some(v)) => db.decoded(codec::decode_u64(v)).map(|r| Some(RowId(r))),
        Some(None) => Ok(None),
        None => db
            .kv
            .get(TreeId::PkIndex, key)?
            .map(|v| db.decoded(codec::decode_u64(&v)).map(RowId))
            .transpose(),
    }
}

/// Plans an insert (`upsert == false`: new keys only) or an upsert (last occurrence of a
/// key in the batch wins). `None` for an empty batch.
pub(crate) fn plan_put(
    db: &DbInner,
    current: &CollectionState,
    earlier: &Earlier<'_>,
    rows: Vec<NewRecord>,
    upsert: bool,
) -> Result<Option<Plan>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut state = current.clone();
    let mut dim = state.dimension.map(|d| d as usize);
    let mut records = Vec::with_capacity(rows.len());
    for (i, mut r) in rows.into_iter().enumerate() {
        let pk = resolve_pk(&mut state, i, r.pk.take(), upsert)?;
        validate_vector(i, &mut r.vector, &mut dim, state.metric)?;
        records.push((pk, r));
    }
    state.dimension = dim.map(|d| d as u64);

    let mut seen = HashSet::with_capacity(records.len());
    let mut keep = vec![true; records.len()];
    // Walk backwards so that for upserts the last occurrence of a key is the one kept.
    for (i, (pk, _)) in records.iter().enumerate().rev() {
        if !seen.insert(pk) {
            if !upsert {
                return Err(Error::DuplicatePk { pk: pk.clone() });
            }
            keep[i] = false;
        }
    }

    let cid = state.id;
    let mut ws = WriteSet::default();
    let mut receipt = WriteReceipt::default();
    for ((pk, r), keep) in records.into_iter().zip(keep) {
        if !keep {
            continue;
        }
        let key = pk_key(cid, &pk);
        match stored_row(db, earlier, &key)? {
            Some(_) if !upsert => return Err(Error::DuplicatePk { pk }),
            Some(old) => {
                ws.remove(TreeId::Rows, row_key(cid, old));
                ws.remove(TreeId::Vectors, row_key(cid, old));
                receipt.removed.push((pk.clone(), old));
            }
            None => state.live += 1,
        }
        let row = RowId(state.next_row);
        state.next_row += 1;
        ws.put(
            TreeId::Rows,
            row_key(cid, row),
            codec::encode_row(&pk, &r.metadata, &r.text)?,
        );
        ws.put(
            TreeId::Vectors,
            row_key(cid, row),
            codec::encode_vector(&r.vector),
        );
        ws.put(TreeId::PkIndex, key, codec::encode_u64(row.0));
        receipt.inserted.push((pk, row));
    }
    finish(state, ws, receipt).map(Some)
}

/// Plans a delete. Keys that are not stored (or cannot be, being of the wrong kind) are
/// ignored; `None` when nothing would be removed.
pub(crate) fn plan_delete(
    db: &DbInner,
    current: &CollectionState,
    earlier: &Earlier<'_>,
    pks: &[Pk],
) -> Result<Option<Plan>> {
    let mut state = current.clone();
    let cid = state.id;
    let mut ws = WriteSet::default();
    let mut receipt = WriteReceipt::default();
    let mut seen = HashSet::new();
    for pk in pks {
        if !state.pk_kind.accepts(pk) || !seen.insert(pk) {
            continue;
        }
        let key = pk_key(cid, pk);
        if let Some(old) = stored_row(db, earlier, &key)? {
            ws.remove(TreeId::PkIndex, key);
            ws.remove(TreeId::Rows, row_key(cid, old));
            ws.remove(TreeId::Vectors, row_key(cid, old));
            receipt.removed.push((pk.clone(), old));
            state.live -= 1;
        }
    }
    if receipt.removed.is_empty() {
        return Ok(None);
    }
    finish(state, ws, receipt).map(Some)
}

/// Adds the change-log entry and the new collection state to the write set.
fn finish(mut state: CollectionState, mut ws: WriteSet, mut receipt: WriteReceipt) -> Result<Plan> {
    state.last_seq += 1;
    receipt.seq = state.last_seq;
    let change = StoredChange {
        inserted: receipt.inserted.clone(),
        removed: receipt.removed.clone(),
    };
    ws.put(
        TreeId::Changes,
        id_key(state.id, state.last_seq),
        codec::encode_serde(&change)?,
    );
    ws.put(
        TreeId::Collections,
        state.id.prefix(),
        codec::encode_serde(&state)?,
    );
    Ok(Plan { ws, state, receipt })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_vectors_are_normalized() {
        let mut v = vec![3.0, 4.0];
        let mut dim = None;
        validate_vector(0, &mut v, &mut dim, Metric::Cosine).unwrap();
        assert_eq!(dim, Some(2));
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
    }

    #[test]
    fn bad_vectors_get_typed_errors() {
        let mut dim = Some(3);
        let check = |v: &mut Vec<f32>, dim: &mut Option<usize>, m| validate_vector(4, v, dim, m);
        assert!(matches!(
            check(&mut vec![], &mut dim, Metric::L2),
            Err(Error::EmptyVector { row: 4 })
        ));
        assert!(matches!(
            check(&mut vec![1.0, 2.0], &mut dim, Metric::L2),
            Err(Error::WrongDimension {
                expected: 3,
                got: 2
            })
        ));
        assert!(matches!(
            check(&mut vec![1.0, f32::NAN, 2.0], &mut dim, Metric::L2),
            Err(Error::NonFiniteVector {
                row: 4,
                component: 1,
                ..
            })
        ));
        assert!(matches!(
            check(&mut vec![0.0; 3], &mut dim, Metric::Cosine),
            Err(Error::ZeroVector { row: 4 })
        ));
        // A zero vector is fine under L2 and IP.
        assert!(check(&mut vec![0.0; 3], &mut dim, Metric::Ip).is_ok());
    }
}
