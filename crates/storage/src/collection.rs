//! Collection handles: writes (validated, atomic, durable on return) and reads.

use std::sync::Arc;

use parking_lot::Mutex;
use quiverdb_types::{Pk, RowId};

use crate::codec::{self, id_key, pk_key, row_key, CollectionId};
use crate::database::DbInner;
use crate::error::{Error, Result};
use crate::integrity::{self, IntegrityReport};
use crate::kv::TreeId;
use crate::record::{Change, NewRecord, Record, StoredChange, WriteReceipt};
use crate::schema::{CollectionState, Schema};
use crate::write::{self, Plan};

/// How often a point read retries when a concurrent write moves the row it was reading.
const READ_RETRIES: usize = 8;

/// A handle on one collection. Cheap to clone, `Send + Sync`; all handles of a collection in
/// a process share one write lock and one in-memory copy of its state.
#[derive(Clone, Debug)]
pub struct Collection {
    inner: Arc<CollInner>,
}

/// # Invariants
/// `state.stored` equals the collection's record in the `collections` tree: it is replaced
/// only after the transaction that wrote it committed, under the same lock.
#[derive(Debug)]
pub(crate) struct CollInner {
    pub(crate) db: Arc<DbInner>,
    pub(crate) id: CollectionId,
    pub(crate) name: String,
    /// Held for the whole of a write's validation and commit (not its durability wait).
    pub(crate) state: Mutex<CollState>,
}

#[derive(Debug)]
pub(crate) struct CollState {
    pub(crate) stored: CollectionState,
    /// Set by `drop_collection`; every later call fails with `UnknownCollection`.
    pub(crate) dropped: bool,
}

impl CollInner {
    pub(crate) fn new(db: Arc<DbInner>, stored: CollectionState) -> Arc<CollInner> {
        Arc::new(CollInner {
            db,
            id: stored.id,
            name: stored.name.clone(),
            state: Mutex::new(CollState {
                stored,
                dropped: false,
            }),
        })
    }
}

impl Collection {
    pub(crate) fn from_inner(inner: Arc<CollInner>) -> Collection {
        Collection { inner }
    }

    fn unknown(&self) -> Error {
        Error::UnknownCollection {
            name: self.inner.name.clone(),
        }
    }

    fn check_live(&self) -> Result<()> {
        if self.inner.state.lock().dropped {
            return Err(self.unknown());
        }
        Ok(())
    }

    /// The collection name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current schema (its dimension is fixed by the first write when it was `None`).
    pub fn schema(&self) -> Schema {
        self.inner.state.lock().stored.schema()
    }

    /// Validates, plans and commits a batch in memory; returns the receipt and, when
    /// something was committed, the group-commit ticket to wait for.
    fn commit(
        &self,
        plan: impl FnOnce(&DbInner, &CollectionState) -> Result<Option<Plan>>,
    ) -> Result<(WriteReceipt, Option<u64>)> {
        let mut st = self.inner.state.lock();
        if st.dropped {
            return Err(self.unknown());
        }
        let Some(plan) = plan(&self.inner.db, &st.stored)? else {
            let receipt = WriteReceipt {
                seq: st.stored.last_seq,
                ..WriteReceipt::default()
            };
            return Ok((receipt, None));
        };
        self.inner.db.kv.commit(&plan.ws)?;
        st.stored = plan.state;
        Ok((plan.receipt, Some(self.inner.db.group.ticket())))
    }

    fn durable(&self, (receipt, ticket): (WriteReceipt, Option<u64>)) -> Result<WriteReceipt> {
        if let Some(t) = ticket {
            self.inner.db.group.wait(t)?;
        }
        Ok(receipt)
    }

    async fn durable_async(
        &self,
        (receipt, ticket): (WriteReceipt, Option<u64>),
    ) -> Result<WriteReceipt> {
        if let Some(t) = ticket {
            self.inner.db.group.wait_async(t).await?;
        }
        Ok(receipt)
    }

    /// Inserts new records; durable when it returns `Ok`.
    ///
    /// # Errors
    /// Any stored or repeated key is [`Error::DuplicatePk`]; keys and vectors are validated
    /// (see [`Error`]). A rejected batch writes nothing.
    pub fn insert(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_put(db, st, rows, false))?;
        self.durable(committed)
    }

    /// Inserts or replaces whole records (each gets a new row id; replaced ones are reported
    /// in `removed`). When a key repeats in the batch, its last record wins.
    pub fn upsert(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_put(db, st, rows, true))?;
        self.durable(committed)
    }

    /// Deletes records by key; unknown keys (and keys of the wrong kind) are ignored.
    pub fn delete(&self, pks: &[Pk]) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_delete(db, st, pks))?;
        self.durable(committed)
    }

    /// [`insert`](Self::insert) for async callers: the commit runs inline, the durability
    /// wait is awaited (shared with every concurrent writer) without blocking the executor.
    ///
    /// Cancellation: the batch is committed before the first `.await`; dropping the future
    /// after that only stops waiting for the flush (the batch still becomes durable).
    pub async fn insert_async(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_put(db, st, rows, false))?;
        self.durable_async(committed).await
    }

    /// [`upsert`](Self::upsert) for async callers.
    pub async fn upsert_async(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_put(db, st, rows, true))?;
        self.durable_async(committed).await
    }

    /// [`delete`](Self::delete) for async callers.
    pub async fn delete_async(&self, pks: Vec<Pk>) -> Result<WriteReceipt> {
        let committed = self.commit(|db, st| write::plan_delete(db, st, &pks))?;
        self.durable_async(committed).await
    }

    /// The records stored under `pks`, in the same order (`None` where there is none).
    pub fn get(&self, pks: &[Pk]) -> Result<Vec<Option<Record>>> {
        self.check_live()?;
        let db = &self.inner.db;
        pks.iter()
            .map(|pk| {
                let key = pk_key(self.inner.id, pk);
                for _ in 0..READ_RETRIES {
                    let Some(v) = db.kv.get(TreeId::PkIndex, &key)? else {
                        return Ok(None);
                    };
                    let row = RowId(db.decoded(codec::decode_u64(&v))?);
                    // `None` here means an upsert or delete moved the key after we read it.
                    if let Some(rec) = self.read_row(row)? {
                        return Ok(Some(rec));
                    }
                }
                Err(Error::Sled(format!(
                    "key {pk} kept moving under concurrent writes"
                )))
            })
            .collect()
    }

    /// The record version stored under `row`, if it is still live.
    pub fn get_row(&self, row: RowId) -> Result<Option<Record>> {
        self.check_live()?;
        self.read_row(row)
    }

    fn read_row(&self, row: RowId) -> Result<Option<Record>> {
        let db = &self.inner.db;
        let key = row_key(self.inner.id, row);
        let Some(raw) = db.kv.get(TreeId::Rows, key)? else {
            return Ok(None);
        };
        self.assemble(row, &raw)
    }

    /// Decodes a row value and fetches its vector; `None` when the row was removed meanwhile.
    fn assemble(&self, row: RowId, raw: &[u8]) -> Result<Option<Record>> {
        let db = &self.inner.db;
        let key = row_key(self.inner.id, row);
        let stored = db.decoded(codec::decode_row(raw))?;
        let Some(vec) = db.kv.get(TreeId::Vectors, key)? else {
            if db.kv.get(TreeId::Rows, key)?.is_none() {
                return Ok(None);
            }
            return Err(db.corrupted(format!(
                "row {row} of collection {:?} has no vector",
                self.inner.name
            )));
        };
        Ok(Some(Record {
            pk: stored.pk,
            row,
            text: stored.text,
            metadata: stored.metadata,
            vector: db.decoded(codec::decode_vector(&vec))?,
        }))
    }

    /// Number of stored records.
    pub fn count(&self) -> Result<usize> {
        let st = self.inner.state.lock();
        if st.dropped {
            return Err(self.unknown());
        }
        Ok(st.stored.live as usize)
    }

    /// Every stored record, in **row-id order** (the order of writing; an upserted record
    /// moves to the end). Not a snapshot: records written during the scan may or may not be
    /// seen, records removed during it are skipped.
    pub fn scan(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        let dropped = self.check_live().err().map(Err);
        let rows = self
            .inner
            .db
            .kv
            .scan_prefix(TreeId::Rows, &self.inner.id.prefix());
        let rows = dropped.is_none().then_some(rows).into_iter().flatten();
        dropped.into_iter().chain(rows.filter_map(move |item| {
            let record = (|| {
                let (k, v) = item?;
                let row = RowId(self.inner.db.decoded(codec::decode_id_key(&k))?);
                self.assemble(row, &v)
            })();
            record.transpose()
        }))
    }

    /// The stored records for which `pred` holds, in row-id order.
    pub fn scan_filter(&self, pred: impl Fn(&Record) -> bool) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for r in self.scan() {
            let r = r?;
            if pred(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Sequence number of the last committed batch (0 before the first). A batch counts as
    /// committed as soon as its transaction is applied, possibly just before it is durable.
    pub fn last_seq(&self) -> u64 {
        self.inner.state.lock().stored.last_seq
    }

    /// Every committed batch with a sequence number greater than `seq`, oldest first.
    pub fn changes_since(&self, seq: u64) -> Result<Vec<Change>> {
        self.check_live()?;
        let Some(first) = seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let db = &self.inner.db;
        db.kv
            .range(
                TreeId::Changes,
                &id_key(self.inner.id, first),
                &id_key(self.inner.id, u64::MAX),
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
            .collect()
    }

    /// Removes change-log entries with sequence numbers `<= upto` (e.g. once the index has a
    /// snapshot covering them). Returns how many were removed.
    pub fn prune_changes(&self, upto: u64) -> Result<usize> {
        self.check_live()?;
        let db = &self.inner.db;
        let keys: Vec<_> = db
            .kv
            .range(
                TreeId::Changes,
                &id_key(self.inner.id, 0),
                &id_key(self.inner.id, upto.saturating_add(1)),
            )
            .map(|item| item.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        let mut ws = crate::kv::WriteSet::default();
        for k in &keys {
            ws.remove(TreeId::Changes, k);
        }
        db.kv.commit(&ws)?;
        Ok(keys.len())
    }

    /// Verifies the whole collection: the key index and the rows agree both ways, every row
    /// and vector decodes with the schema's dimension, and the counters match what is stored.
    /// Blocks writers of this collection while it runs.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let st = self.inner.state.lock();
        if st.dropped {
            return Err(self.unknown());
        }
        integrity::check(&self.inner.db, &st.stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CollectionConfig, Database};
    use quiverdb_types::Metadata;

    fn filled() -> (Database, Collection) {
        let db = Database::temporary().unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        let rows = (0..5)
            .map(|i| NewRecord {
                pk: Some(Pk::Str(format!("k{i}"))),
                text: String::new(),
                metadata: Metadata::new(),
                vector: vec![i as f32, 1.0],
            })
            .collect();
        c.insert(rows).unwrap();
        (db, c)
    }

    fn tamper(c: &Collection, f: impl FnOnce(&mut crate::kv::WriteSet, CollectionId)) {
        let mut ws = crate::kv::WriteSet::default();
        f(&mut ws, c.inner.id);
        c.inner.db.kv.commit(&ws).unwrap();
    }

    #[test]
    fn integrity_is_clean_after_normal_writes() {
        let (_db, c) = filled();
        c.delete(&[Pk::from("k1")]).unwrap();
        let rep = c.check_integrity().unwrap();
        assert!(rep.is_ok(), "{:?}", rep.problems);
        assert_eq!((rep.rows, rep.pks, rep.vectors, rep.changes), (4, 4, 4, 2));
    }

    #[test]
    fn integrity_finds_a_missing_vector() {
        let (_db, c) = filled();
        tamper(&c, |ws, cid| {
            ws.remove(TreeId::Vectors, row_key(cid, RowId(2)))
        });
        let rep = c.check_integrity().unwrap();
        assert!(!rep.is_ok());
        assert!(
            rep.problems.iter().any(|p| p.contains("has no vector")),
            "{:?}",
            rep.problems
        );
        // A read of that row is a corruption error, not a panic.
        assert!(matches!(c.get_row(RowId(2)), Err(Error::Corrupted { .. })));
    }

    #[test]
    fn integrity_finds_a_dangling_key_and_a_bad_row() {
        let (_db, c) = filled();
        tamper(&c, |ws, cid| {
            ws.put(
                TreeId::PkIndex,
                pk_key(cid, &Pk::from("ghost")),
                codec::encode_u64(99),
            );
            ws.put(
                TreeId::Rows,
                row_key(cid, RowId(3)),
                [codec::VALUE_VERSION, 0, 0],
            );
        });
        let rep = c.check_integrity().unwrap();
        let all = rep.problems.join("\n");
        assert!(all.contains("missing row #99"), "{all}");
        assert!(all.contains("row #3 does not decode"), "{all}");
        assert!(all.contains("counts disagree"), "{all}");
    }

    #[test]
    fn integrity_finds_a_wrong_dimension() {
        let (_db, c) = filled();
        tamper(&c, |ws, cid| {
            ws.put(
                TreeId::Vectors,
                row_key(cid, RowId(1)),
                codec::encode_vector(&[1.0]),
            )
        });
        let rep = c.check_integrity().unwrap();
        assert!(
            rep.problems.iter().any(|p| p.contains("1 components")),
            "{:?}",
            rep.problems
        );
    }
}
