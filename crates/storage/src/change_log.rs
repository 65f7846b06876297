//! The per-collection change log: reading it, pruning it, and the pins that keep entries a
//! reader still needs.
//!
//! # Invariants
//! * Every committed batch has an entry `changes[cid + seq]` until a prune removes it.
//! * A prune removes the entries up to a watermark and stores the watermark
//!   (`meta."changes_pruned/" + cid`) in the same transaction; the watermark only grows.
//! * [`Collection::changes_since`] never returns a list with a pruned hole: when `seq` is
//!   below the watermark it fails with [`Error::ChangesPruned`].
//! * A prune never passes the position of a live [`ChangePin`] of the collection in this
//!   process, nor the last committed sequence number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::codec::{self, id_key};
use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::kv::{TreeId, WriteSet};
use crate::record::{Change, StoredChange};

/// A registered reader of a collection's change log: [`Collection::prune_changes`] keeps
/// every entry after the pin's position while the pin is alive. Dropping it unregisters.
///
/// A reader that derives state from the log (the index, say) registers a pin before it
/// reads anything and [advances](ChangePin::advance) it as it applies changes.
#[derive(Debug)]
pub struct ChangePin {
    position: Arc<AtomicU64>,
}

impl ChangePin {
    /// Declares that the reader no longer needs entries up to `seq`. Positions only grow:
    /// a lower `seq` than the current position is ignored.
    pub fn advance(&self, seq: u64) {
        self.position.fetch_max(seq, Ordering::SeqCst);
    }

    /// The pin's position: entries after it are kept.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::SeqCst)
    }
}

impl Collection {
    /// Every committed batch with a sequence number greater than `seq`, oldest first.
    ///
    /// # Errors
    /// [`Error::ChangesPruned`] when entries after `seq` were pruned (`seq` is below the
    /// collection's [watermark](Self::changes_pruned_upto)): the log can no longer say what
    /// changed since `seq`, and the caller must rebuild from the rows.
    pub fn changes_since(&self, seq: u64) -> Result<Vec<Change>> {
        self.check_live()?;
        self.check_not_pruned(seq)?;
        self.inner().wait_readable()?;
        let Some(first) = seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let inner = self.inner();
        let db = &inner.db;
        let changes = db
            .kv
            .range(
                TreeId::Changes,
                &id_key(inner.id, first),
                &id_key(inner.id, u64::MAX),
            )
            .map(|item| {
                let (k, v) = item?;
                let body: StoredChange = db.decoded(codec::decode_serde(&v))?;
                Ok(Change {
                    seq: db.decoded(codec::decode_id_key(&k))?,
                    inserted: body.inserted,
                    removed: body.removed,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // A prune that ran during the range read raised the watermark before removing
        // anything, so checking again after the read catches every entry it took away.
        self.check_not_pruned(seq)?;
        Ok(changes)
    }

    fn check_not_pruned(&self, seq: u64) -> Result<()> {
        let pruned_upto = self.changes_pruned_upto();
        if seq < pruned_upto {
            return Err(Error::ChangesPruned {
                requested: seq,
                pruned_upto,
            });
        }
        Ok(())
    }

    /// The change-log watermark: entries with sequence numbers up to it may have been
    /// pruned, so [`Self::changes_since`] accepts only `seq >=` it (0 = never pruned).
    pub fn changes_pruned_upto(&self) -> u64 {
        self.inner().pruned_upto.load(Ordering::SeqCst)
    }

    /// Registers a change-log reader positioned at `seq` (it still needs the entries after
    /// `seq`). See [`ChangePin`].
    pub fn pin_changes(&self, seq: u64) -> ChangePin {
        let position = Arc::new(AtomicU64::new(seq));
        let mut readers = self.inner().readers.lock();
        readers.retain(|r| r.strong_count() > 0);
        readers.push(Arc::downgrade(&position));
        ChangePin { position }
    }

    /// Removes the change-log entries with sequence numbers `<= upto` (once an index
    /// snapshot covers them), but never past a live [`ChangePin`] of this collection nor
    /// past the last committed batch. Stores the new watermark in the same transaction.
    /// Returns how many entries were removed.
    ///
    /// Takes no lock that writers need: writers may commit while it runs (their entries
    /// are above the watermark).
    pub fn prune_changes(&self, upto: u64) -> Result<usize> {
        self.check_live()?;
        let inner = self.inner();
        let db = &inner.db;
        // Held throughout: a reader registering now is either counted or registers after
        // the watermark is raised (and then gets `ChangesPruned` rather than a hole).
        let mut readers = inner.readers.lock();
        readers.retain(|r| r.strong_count() > 0);
        let pinned = readers
            .iter()
            .filter_map(|r| r.upgrade())
            .map(|p| p.load(Ordering::SeqCst))
            .min()
            .unwrap_or(u64::MAX);
        // Entries past `sled_seq` may not be in sled yet: pruning stops short of them.
        let upto = upto.min(pinned).min(inner.sled_seq.load(Ordering::Acquire));
        let old = inner.pruned_upto.load(Ordering::SeqCst);
        if upto == 0 || upto < old {
            return Ok(0);
        }
        let keys: Vec<_> = db
            .kv
            .range(
                TreeId::Changes,
                &id_key(inner.id, 0),
                &id_key(inner.id, upto.saturating_add(1)),
            )
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        if keys.is_empty() && upto == old {
            return Ok(0);
        }
        let mut ws = WriteSet::default();
        for k in &keys {
            ws.remove(TreeId::Changes, k);
        }
        ws.put(
            TreeId::Meta,
            codec::pruned_key(inner.id),
            codec::encode_u64(upto),
        );
        // Raised first (see `CollInner::pruned_upto`); if the commit fails it stays raised,
        // which only makes readers rebuild earlier than they had to.
        inner.pruned_upto.fetch_max(upto, Ordering::SeqCst);
        db.commit(&ws)?;
        drop(readers);
        tracing::debug!(
            collection = self.name(),
            upto,
            removed = keys.len(),
            "pruned change log"
        );
        Ok(keys.len())
    }
}
