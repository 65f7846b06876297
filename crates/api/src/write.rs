//! The write path shared by the sync and async surfaces: prepare (validate, decide ids),
//! commit to storage (durable on return), then apply to the derived state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use quiverdb_storage::{Batch, CommitHook, NewRecord, WriteReceipt};
use quiverdb_types::{Metadata, Pk, PkKind};

use crate::live::{CommittedBatch, CommittedRow, LiveCollection};
use crate::rows::RowData;
use crate::rules::check_ids;
use crate::{Error, Result};

/// A validated write, not yet committed.
pub(crate) struct PreparedWrite {
    pub live: Arc<LiveCollection>,
    pub batch: Batch,
    /// Key (when the caller gave one), text, metadata and vector of each record, in input
    /// order.
    pub payload: Vec<Payload>,
}

impl PreparedWrite {
    pub fn insert(live: Arc<LiveCollection>, upsert: bool, records: Vec<NewRecord>) -> Self {
        let payload = records
            .iter()
            .map(|r| {
                (
                    r.pk.clone(),
                    r.text.clone(),
                    r.metadata.clone(),
                    r.vector.clone(),
                )
            })
            .collect();
        let batch = if upsert {
            Batch::Upsert(records)
        } else {
            Batch::Insert(records)
        };
        PreparedWrite {
            live,
            batch,
            payload,
        }
    }

    pub fn delete(live: Arc<LiveCollection>, pks: Vec<Pk>) -> Self {
        PreparedWrite {
            live,
            batch: Batch::Delete(pks),
            payload: Vec::new(),
        }
    }

    /// Commits and waits for durability on this thread.
    pub fn commit(self) -> Result<CommittedWrite> {
        let (live, batch, hook, submitted) = self.into_batch_and_hook();
        let receipt = live.coll.write(batch, Some(hook))?;
        Ok(CommittedWrite {
            live,
            receipt,
            submitted,
        })
    }

    /// Commits and awaits durability through storage's group commit.
    pub async fn acommit(self) -> Result<CommittedWrite> {
        let (live, batch, hook, submitted) = self.into_batch_and_hook();
        let receipt = live.coll.write_async(batch, Some(hook)).await?;
        Ok(CommittedWrite {
            live,
            receipt,
            submitted,
        })
    }

    /// The storage batch, and the hook that queues the committed batch, paired with the
    /// writer's data, for the derived state. Storage runs the hook in sequence order as it
    /// settles the commit, before the writer hears back and whether or not it still waits
    /// (a dropped future), so the queue gets this store's batches without gaps and none is
    /// lost. The flag says whether the hook queued one.
    fn into_batch_and_hook(self) -> (Arc<LiveCollection>, Batch, CommitHook, Arc<AtomicBool>) {
        let PreparedWrite {
            live,
            batch,
            payload,
        } = self;
        let submitted = Arc::new(AtomicBool::new(false));
        let (queue, flag) = (live.clone(), submitted.clone());
        let hook: CommitHook = Box::new(move |outcome| {
            let Ok(receipt) = outcome else { return };
            if let Some(committed) = pair(&queue, receipt, payload) {
                queue.submit(committed);
                flag.store(true, Ordering::Release);
            }
        });
        (live, batch, hook, submitted)
    }
}

/// What the writer keeps of one record to apply it after the commit.
pub(crate) type Payload = (Option<Pk>, String, Metadata, Vec<f32>);

/// A write that storage has made durable.
pub(crate) struct CommittedWrite {
    live: Arc<LiveCollection>,
    receipt: WriteReceipt,
    /// Whether the commit hook queued its batch for the derived state.
    submitted: Arc<AtomicBool>,
}

impl CommittedWrite {
    /// Applies the write to the index and rows (blocking); returns the receipt.
    pub fn apply(self) -> Result<WriteReceipt> {
        match self.todo() {
            ToApply::Nothing => return Ok(self.receipt),
            ToApply::Queued(seq) => self.live.apply_queued(seq)?,
            ToApply::FromLog => self.live.catch_up_wait()?,
        }
        self.live.maybe_maintain();
        Ok(self.receipt)
    }

    /// Applies the write from async code, merged with concurrent writers' batches.
    pub async fn apply_async(self, pool: &crate::bridge::CpuPool) -> Result<WriteReceipt> {
        let live = &self.live;
        match self.todo() {
            ToApply::Nothing => return Ok(self.receipt),
            ToApply::Queued(seq) => live.apply_queued_async(seq, pool).await?,
            ToApply::FromLog => {
                // Waits on the applier lock: never on a pool thread (its holder may be
                // waiting for the pool).
                let l = live.clone();
                tokio::task::spawn_blocking(move || l.catch_up_wait())
                    .await
                    .map_err(|e| Error::Panicked(e.to_string()))??;
            }
        }
        live.maybe_maintain();
        Ok(self.receipt)
    }

    fn todo(&self) -> ToApply {
        if self.receipt.inserted.is_empty() && self.receipt.removed.is_empty() {
            // Nothing was committed: the receipt's seq is someone else's.
            ToApply::Nothing
        } else if self.submitted.load(Ordering::Acquire) {
            ToApply::Queued(self.receipt.seq)
        } else {
            ToApply::FromLog
        }
    }
}

/// Pairs a receipt's rows with the data the writer holds: in input order, or by key when
/// storage kept only the last record of a key repeated in an upsert. `None` for a receipt
/// that wrote nothing, or one that cannot be paired (to be applied from the log).
fn pair(
    live: &LiveCollection,
    receipt: &WriteReceipt,
    mut payload: Vec<Payload>,
) -> Option<CommittedBatch> {
    if receipt.inserted.is_empty() && receipt.removed.is_empty() {
        return None;
    }
    if receipt.inserted.len() != payload.len() {
        let mut last: HashMap<Pk, Payload> = HashMap::new();
        for p in payload {
            if let Some(pk) = p.0.clone() {
                last.insert(pk, p);
            }
        }
        payload = receipt
            .inserted
            .iter()
            .filter_map(|(pk, _)| last.remove(pk))
            .collect();
        if payload.len() != receipt.inserted.len() {
            tracing::error!(
                collection = live.coll.name(),
                "storage reported rows this writer did not send; applying from the log"
            );
            return None;
        }
    }
    let inserted = receipt
        .inserted
        .iter()
        .zip(payload)
        .map(|((pk, row), (_, text, metadata, vector))| CommittedRow {
            row: *row,
            data: Arc::new(RowData {
                pk: pk.clone(),
                text,
                metadata,
            }),
            vector,
        })
        .collect();
    Some(CommittedBatch {
        seq: receipt.seq,
        inserted,
        removed: receipt.removed.iter().map(|(_, r)| *r).collect(),
    })
}

/// What a committed write leaves for the derived state.
enum ToApply {
    /// The write changed nothing.
    Nothing,
    /// Its batch (this sequence number) is queued, paired with the writer's data.
    Queued(u64),
    /// Apply it from storage's change log (the writer's data could not be paired).
    FromLog,
}

/// The ids of an insert, checked against the collection's key kind.
pub(crate) fn insert_ids(kind: PkKind, n: usize, ids: Option<Vec<Pk>>) -> Result<Vec<Option<Pk>>> {
    match (kind, ids) {
        (PkKind::AutoInt, None) => Ok(vec![None; n]),
        (PkKind::AutoInt, Some(_)) => Err(Error::InvalidArgument(
            "this collection assigns its own ids (auto_id); do not pass ids".into(),
        )),
        (_, None) => Err(Error::MissingIds {
            reason: format!(
                "the collection's primary key is a caller-supplied {kind}; pass one id per text"
            ),
        }),
        (kind, Some(ids)) => {
            check_ids(kind, &ids, n)?;
            Ok(ids.into_iter().map(Some).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{kind_for_new_collection, parse_doc_id};

    #[test]
    fn id_rules() {
        assert_eq!(
            insert_ids(PkKind::AutoInt, 2, None).unwrap(),
            vec![None, None]
        );
        assert!(matches!(
            insert_ids(PkKind::AutoInt, 1, Some(vec![Pk::Int(1)])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            insert_ids(PkKind::Str, 1, None),
            Err(Error::MissingIds { .. })
        ));
        assert!(matches!(
            insert_ids(PkKind::Str, 2, Some(vec![Pk::from("a")])),
            Err(Error::LengthMismatch {
                what: "ids",
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            insert_ids(PkKind::Str, 1, Some(vec![Pk::Int(1)])),
            Err(Error::WrongIdKind { .. })
        ));
        assert_eq!(parse_doc_id(PkKind::Int, "42").unwrap(), Pk::Int(42));
        assert!(parse_doc_id(PkKind::Int, "x").is_err());
        assert_eq!(
            kind_for_new_collection(false, Some(&[Pk::from("a")])),
            PkKind::Str
        );
        assert_eq!(kind_for_new_collection(false, None), PkKind::AutoInt);
    }
}
