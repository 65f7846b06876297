//! A loaded collection: the storage handle plus the derived state that makes it fast (the
//! vector index and the in-memory rows that filters run against).
//!
//! # Invariants
//! * Storage is the source of truth. The index and [`Rows`] reflect exactly the storage
//!   batches with sequence numbers `<= applied_seq`, applied in sequence order.
//! * A batch of this store's writers is queued, with the data its writer holds, by the
//!   commit hook storage runs in sequence order as it settles the commit (`write.rs`),
//!   whether or not the writer still waits; the first drain after applies it. A batch
//!   this store did not queue (another handle's, or one whose data could not be paired) is
//!   read from storage's change log by whoever next finds a gap in the queue or
//!   `applied_seq < storage.last_seq()`. Applying is idempotent, so both paths can meet
//!   without harm.
//! * The collection's [`ChangePin`] sits at `applied_seq` (at 0 while loading): storage
//!   never prunes change-log entries this collection has yet to apply. Entries up to a
//!   written index snapshot are pruned after the snapshot is on disk.
//! * Should the log still have been pruned past `applied_seq` (`ChangesPruned`), the rows
//!   and the index are rebuilt from storage instead: no change is ever silently skipped.
//! * An index snapshot tagged `S` holds every batch `<= S` and possibly parts of later
//!   ones (it is written without the applier lock, `S` read before the index is encoded);
//!   a load replays the batches after `S` idempotently and checks the result against the
//!   rows.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiverdb_filter::Filter;
use quiverdb_index::planner::AllowSet;
use quiverdb_index::{
    load_snapshot, new_index, Engine, IndexConfig, Neighbor, SearchParams, VectorIndex,
};
use quiverdb_storage::{ChangePin, Collection, RowEntry};
use quiverdb_types::{Metric, PkKind, RowId};

use crate::bridge::CpuPool;
use crate::rows::{RowData, Rows};
use crate::{Error, Result};

/// A search's hits: the rows and their index neighbours, best first.
pub(crate) type Hits = Vec<(Arc<RowData>, Neighbor)>;

/// One row of a write that has been committed to storage, as the writer still holds it.
pub(crate) struct CommittedRow {
    pub row: RowId,
    pub data: Arc<RowData>,
    pub vector: Vec<f32>,
}

/// A committed storage batch, ready to be applied to the derived state.
pub(crate) struct CommittedBatch {
    pub seq: u64,
    pub inserted: Vec<CommittedRow>,
    pub removed: Vec<RowId>,
}

/// The applier lock, held. On release it drains the batches queued while it was held: an
/// async writer whose drain found the lock taken relies on the holder to apply its batch.
struct Applying<'a> {
    live: &'a LiveCollection,
    guard: Option<parking_lot::MutexGuard<'a, ()>>,
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.live.has_pending() {
            // Failures reach the waiting writers through the watch channel.
            let _ = self.live.drain_if_idle();
        }
    }
}

/// What async writers wait on: the applied sequence number, and the last drain failure.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    seq: u64,
    failed_upto: u64,
    error: String,
}

/// A collection with its index and rows loaded.
pub(crate) struct LiveCollection {
    pub coll: Collection,
    pub metric: Metric,
    /// The collection's key kind (fixed at creation; kept here so that every filter compile
    /// does not take storage's collection lock for it).
    pub pk_kind: PkKind,
    index_config: IndexConfig,
    index: RwLock<Option<Arc<dyn VectorIndex>>>,
    rows: RwLock<Rows>,
    /// Committed batches waiting to be applied, by sequence number.
    pending: Mutex<BTreeMap<u64, CommittedBatch>>,
    /// Serializes applying batches; holds nothing else.
    applier: Mutex<()>,
    applied_seq: AtomicU64,
    /// Publishes `applied_seq` (and drain failures) to async writers waiting for theirs.
    applied_tx: tokio::sync::watch::Sender<Applied>,
    pool: Arc<rayon::ThreadPool>,
    snapshot_dir: Option<PathBuf>,
    /// Rows inserted or removed since the last snapshot; past a threshold a new snapshot
    /// is written in the background, so a crash never means replaying much.
    changed_since_snapshot: AtomicUsize,
    /// The sequence number the snapshot on disk was taken at (restored or last written);
    /// `NO_SNAPSHOT` when there is none. A snapshot at the applied seq is not rewritten.
    snapshot_seq: AtomicU64,
    snapshot_running: AtomicBool,
    /// Held while a snapshot is written (they share the directory's files).
    snapshot_writer: Mutex<()>,
    snapshot_every: usize,
    compacting: AtomicBool,
    removed_since_compaction: AtomicUsize,
    /// Keeps storage from pruning change-log entries after `applied_seq`.
    pin: ChangePin,
}

/// `snapshot_seq` when no snapshot of the current index is on disk.
const NO_SNAPSHOT: u64 = u64::MAX;

/// Write a background snapshot once this many rows changed (or a tenth of the collection,
/// whichever is larger).
const SNAPSHOT_EVERY_ROWS: usize = 50_000;

impl std::fmt::Debug for LiveCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCollection")
            .field("name", &self.coll.name())
            .field("metric", &self.metric)
            .field("applied_seq", &self.applied_seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

pub(crate) fn engine_from_name(name: &str) -> Engine {
    match name {
        "flat" => Engine::Flat,
        "hnsw_rs" => Engine::HnswRs,
        _ => Engine::Native,
    }
}

impl LiveCollection {
    /// Loads a collection: rows from storage, the index from its snapshot when it can be
    /// trusted (then caught up from the change log), else rebuilt from storage.
    pub fn load(
        coll: Collection,
        pool: Arc<rayon::ThreadPool>,
        snapshot_dir: Option<PathBuf>,
    ) -> Result<LiveCollection> {
        let schema = coll.schema();
        let params = &schema.index;
        let mut index_config = IndexConfig::new(
            engine_from_name(&params.engine),
            schema.metric,
            schema.dimension.unwrap_or(1),
        );
        index_config.m = params.m;
        index_config.ef_construction = params.ef_construction;
        index_config.ef_search = params.ef_search;

        // Pinned at 0 until loaded: the snapshot's replay may need any entry.
        let pin = coll.pin_changes(0);
        // Read the sequence number before the scans: replaying changes a scan already saw
        // is harmless (idempotent), missing one would not be. Vectors are read only when
        // no snapshot can be used (see `restore_or_build_index`).
        let seq_before_scan = coll.last_seq();
        let rows = scan_rows(&coll)?;

        let live = LiveCollection {
            metric: schema.metric,
            pk_kind: schema.pk_kind,
            coll,
            index_config,
            index: RwLock::new(None),
            rows: RwLock::new(rows),
            pending: Mutex::new(BTreeMap::new()),
            applier: Mutex::new(()),
            applied_seq: AtomicU64::new(seq_before_scan),
            applied_tx: tokio::sync::watch::Sender::new(Applied {
                seq: seq_before_scan,
                failed_upto: 0,
                error: String::new(),
            }),
            pool,
            snapshot_dir,
            changed_since_snapshot: AtomicUsize::new(0),
            snapshot_seq: AtomicU64::new(NO_SNAPSHOT),
            snapshot_running: AtomicBool::new(false),
            snapshot_writer: Mutex::new(()),
            snapshot_every: SNAPSHOT_EVERY_ROWS,
            compacting: AtomicBool::new(false),
            removed_since_compaction: AtomicUsize::new(0),
            pin,
        };
        let index = match schema.dimension {
            None => None,
            Some(dim) => Some(live.restore_or_build_index(dim)?),
        };
        *live.index.write() = index;
        live.catch_up_wait()?;
        live.pin.advance(live.applied_seq.load(Ordering::SeqCst));
        Ok(live)
    }

    fn restore_or_build_index(&self, dim: usize) -> Result<Arc<dyn VectorIndex>> {
        if let Some(dir) = &self.snapshot_dir {
            match self.restore_snapshot(dir, dim) {
                Ok(Some(index)) => return Ok(index),
                Ok(None) => {}
                Err(reason) => tracing::warn!(
                    collection = self.coll.name(),
                    %reason,
                    "index snapshot not usable; rebuilding from storage"
                ),
            }
        }
        self.build_index(dim)
    }

    /// A new index over every vector in storage.
    fn build_index(&self, dim: usize) -> Result<Arc<dyn VectorIndex>> {
        let mut config = self.index_config.clone();
        config.dim = dim;
        let index = new_index(&config)?;
        let vectors = self
            .coll
            .scan_vectors()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let items: Vec<(RowId, &[f32])> = vectors.iter().map(|(r, v)| (*r, v.as_slice())).collect();
        index.insert_batch(&items, &self.pool)?;
        Ok(index)
    }

    /// A snapshot is used only if it matches the collection and covers a prefix of its
    /// change log; the changes after it are replayed and the result checked against the
    /// rows storage holds.
    fn restore_snapshot(
        &self,
        dir: &std::path::Path,
        dim: usize,
    ) -> std::result::Result<Option<Arc<dyn VectorIndex>>, String> {
        let Some((index, seq)) = load_snapshot(dir).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        if index.dim() != dim || index.metric() != self.metric {
            return Err(format!(
                "snapshot is {}-d {}, collection is {dim}-d {}",
                index.dim(),
                index.metric(),
                self.metric
            ));
        }
        let last = self.applied_seq.load(Ordering::SeqCst);
        if seq > last {
            return Err(format!(
                "snapshot seq {seq} is newer than storage seq {last}"
            ));
        }
        let changes = match self.coll.changes_since(seq) {
            Ok(changes) => changes,
            Err(quiverdb_storage::Error::ChangesPruned { pruned_upto, .. }) => {
                return Err(format!(
                    "snapshot seq {seq} is older than the change log, which was pruned up \
                     to {pruned_upto}"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        for change in changes.iter().filter(|c| c.seq <= last) {
            for (_, row) in &change.removed {
                index.remove(*row);
            }
            for (_, row) in &change.inserted {
                if index.contains(*row) {
                    continue;
                }
                // A row removed by a later change is gone from storage: skipping it is
                // what replaying that removal would do.
                if let Some(r) = self.coll.get_row(*row).map_err(|e| e.to_string())? {
                    index.insert(*row, &r.vector).map_err(|e| e.to_string())?;
                }
            }
        }
        let rows = self.rows.read();
        if index.len() != rows.len() || rows.row_ids().any(|r| !index.contains(r)) {
            return Err(format!(
                "snapshot holds {} live rows after catch-up, storage {}",
                index.len(),
                rows.len()
            ));
        }
        self.snapshot_seq.store(seq, Ordering::SeqCst);
        Ok(Some(index))
    }

    /// Writes an index snapshot, then prunes the change-log entries it covers.
    ///
    /// The snapshot is tagged with the applied sequence number read *before* the index is
    /// taken and encoded: it holds every batch up to that number, and maybe parts of later
    /// ones applied meanwhile, which a load replays idempotently (an insert of a row the
    /// snapshot holds is skipped, a removal repeated). So no applier lock is held and
    /// writers wait at most for the engine's own encode, not for the file write and fsync
    /// (at 100,000 documents, an upsert of 100 during a snapshot: 0.22 s with the applier
    /// held, 0.07 s now, 0.03 s with no snapshot running). Snapshot writers take turns
    /// (`snapshot_writer`), since they share the directory's files.
    pub fn save_snapshot(&self) -> Result<()> {
        let Some(dir) = &self.snapshot_dir else {
            return Ok(());
        };
        let written = {
            let _one_writer = self.snapshot_writer.lock();
            let changed = self.changed_since_snapshot.load(Ordering::SeqCst);
            let seq = self.applied_seq.load(Ordering::SeqCst);
            // Taken after `seq`: whatever index is current holds every batch up to it.
            let Some(index) = self.index() else {
                return Ok(());
            };
            if self.snapshot_seq.load(Ordering::SeqCst) == seq {
                None // the snapshot on disk already holds every applied change
            } else {
                index.save_snapshot(dir, seq)?;
                self.snapshot_seq.store(seq, Ordering::SeqCst);
                // Changes applied while it was written still count toward the next one.
                let _ = self.changed_since_snapshot.fetch_update(
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                    |c| Some(c.saturating_sub(changed)),
                );
                Some(seq)
            }
        };
        if let Some(seq) = written {
            self.prune_changes(seq);
        }
        Ok(())
    }

    /// Prunes the change-log entries up to `seq`, which a snapshot on disk covers. Runs
    /// after the applier is released (it takes no lock writers need either); storage keeps
    /// the entries that other live handles of the collection have yet to apply. A failure
    /// only leaves the log longer.
    fn prune_changes(&self, seq: u64) {
        match self.coll.prune_changes(seq) {
            Ok(removed) => tracing::debug!(
                collection = self.coll.name(),
                upto = seq,
                removed,
                "pruned the change log after a snapshot"
            ),
            Err(e) => tracing::warn!(
                collection = self.coll.name(),
                error = %e,
                "could not prune the change log"
            ),
        }
    }

    /// Background upkeep after a write: compacts the index once its tombstones pass the
    /// engine's threshold, and writes a snapshot once enough rows changed.
    pub fn maybe_maintain(self: &Arc<Self>) {
        if self.compaction_due() && !self.compacting.swap(true, Ordering::SeqCst) {
            let live = self.clone();
            self.pool.spawn(move || {
                if let Some(index) = live.index() {
                    match index.compact_if_needed(&live.pool) {
                        Ok(true) => tracing::debug!(collection = live.coll.name(), "index repaired or compacted"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(collection = live.coll.name(), error = %e, "index compaction failed"),
                    }
                }
                live.compacting.store(false, Ordering::SeqCst);
            });
        }
        self.maybe_snapshot();
    }

    /// A cheap pre-check on our own count of removals since the last attempt: a tenth of
    /// the rows (the native engine repairs its graph every 10% of new tombstones and
    /// compacts it from 30%); the engines decide for themselves in `compact_if_needed`.
    fn compaction_due(&self) -> bool {
        let removed = self.removed_since_compaction.load(Ordering::Relaxed);
        let live = self.rows.read().len();
        if removed >= 100 && removed * 10 >= live + removed {
            self.removed_since_compaction.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Starts a background snapshot when enough rows changed since the last one. Without
    /// a snapshot directory (a temporary database) no loader ever replays the log, so it is
    /// pruned up to what this handle applied instead.
    pub fn maybe_snapshot(self: &Arc<Self>) {
        let threshold = self.snapshot_every.max(self.rows.read().len() / 10);
        if self.changed_since_snapshot.load(Ordering::Relaxed) < threshold
            || self.snapshot_running.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let live = self.clone();
        // Its own thread, not the CPU pool: a large snapshot spends most of its time
        // writing and fsyncing, which would keep a pool thread from searches as long.
        let spawned = std::thread::Builder::new()
            .name("quiverdb-snapshot".into())
            .spawn(move || {
                if live.snapshot_dir.is_none() {
                    // No loader ever replays the log of a temporary database.
                    live.changed_since_snapshot.store(0, Ordering::SeqCst);
                    live.prune_changes(live.applied_seq.load(Ordering::SeqCst));
                } else if let Err(e) = live.save_snapshot() {
                    tracing::warn!(collection = live.coll.name(), error = %e, "background index snapshot failed");
                }
                live.snapshot_running.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(collection = self.coll.name(), error = %e, "could not start a background snapshot");
            self.snapshot_running.store(false, Ordering::SeqCst);
        }
    }

    pub fn index(&self) -> Option<Arc<dyn VectorIndex>> {
        self.index.read().clone()
    }

    pub fn rows(&self) -> parking_lot::RwLockReadGuard<'_, Rows> {
        self.rows.read()
    }

    /// Takes the applier lock. Whoever releases it drains batches queued meanwhile (see
    /// [`Applying`]), so a writer whose own drain found the lock taken is never forgotten.
    fn lock_applier(&self) -> Applying<'_> {
        Applying {
            live: self,
            guard: Some(self.applier.lock()),
        }
    }

    fn try_lock_applier(&self) -> Option<Applying<'_>> {
        self.applier.try_lock().map(|guard| Applying {
            live: self,
            guard: Some(guard),
        })
    }

    fn has_pending(&self) -> bool {
        let applied = self.applied_seq.load(Ordering::SeqCst);
        self.pending.lock().keys().any(|s| *s > applied)
    }

    /// Queues a committed batch for the next drain. The store's writers queue theirs from
    /// storage's commit hook, which runs in sequence order (`write.rs`), so their batches
    /// arrive without gaps, also those whose writer stopped waiting.
    pub(crate) fn submit(&self, batch: CommittedBatch) {
        if batch.seq > self.applied_seq.load(Ordering::SeqCst) {
            self.pending.lock().entry(batch.seq).or_insert(batch);
        }
    }

    /// Applies a committed batch (blocking): queues it, then drains the queue, waiting for
    /// a drain already running to finish first (tests; the store's writers queue theirs
    /// from the commit hook).
    #[cfg(test)]
    pub fn apply(&self, batch: CommittedBatch) -> Result<()> {
        let seq = batch.seq;
        self.submit(batch);
        self.apply_queued(seq)
    }

    /// Applies the queued batch `seq` (blocking): drains the queue, waiting for a drain
    /// already running to finish first.
    pub fn apply_queued(&self, seq: u64) -> Result<()> {
        let _apply = self.lock_applier();
        if self.applied_seq.load(Ordering::SeqCst) >= seq {
            return Ok(()); // another writer's drain took it
        }
        self.drain_locked()
    }

    /// Applies a committed batch from async code: queues it, makes sure a drain runs on the
    /// CPU pool, and waits until the batch is applied. Concurrent writers' batches are
    /// merged into one index update that the pool builds in parallel (tests, as `apply`).
    #[cfg(test)]
    pub async fn apply_async(
        self: &Arc<Self>,
        batch: CommittedBatch,
        pool: &CpuPool,
    ) -> Result<()> {
        let seq = batch.seq;
        self.submit(batch);
        self.apply_queued_async(seq, pool).await
    }

    /// Applies the queued batch `seq` from async code: makes sure a drain runs on the CPU
    /// pool, and waits until the batch is applied.
    pub async fn apply_queued_async(self: &Arc<Self>, seq: u64, pool: &CpuPool) -> Result<()> {
        let mut applied = self.applied_tx.subscribe();
        let live = self.clone();
        pool.run(move || live.drain_if_idle()).await?;
        let outcome = applied
            .wait_for(|a| a.seq >= seq || a.failed_upto >= seq)
            .await
            .map_err(|_| Error::Closed)?;
        if outcome.seq >= seq {
            Ok(())
        } else {
            Err(Error::Index(outcome.error.clone()))
        }
    }

    /// Drains the queue unless another thread is draining it. The holder re-checks the
    /// queue after releasing the lock, so a batch queued while it held the lock is drained
    /// either by it or by the caller that queued it.
    fn drain_if_idle(&self) -> Result<()> {
        loop {
            let Some(guard) = self.applier.try_lock() else {
                return Ok(());
            };
            let result = self.drain_locked();
            drop(guard);
            result?;
            let applied = self.applied_seq.load(Ordering::SeqCst);
            if !self.pending.lock().keys().any(|s| *s > applied) {
                return Ok(());
            }
        }
    }

    /// Applies every queued batch in sequence order as one merged update. A gap (a batch
    /// committed but not queued: another handle's, or one whose data could not be paired)
    /// is filled from storage's change log first.
    fn drain_locked(&self) -> Result<()> {
        let result = self.drain_queue();
        if let Err(e) = &result {
            // Drop what could not be applied; the next catch-up re-reads it from storage.
            let failed = self.pending.lock().keys().next_back().copied().unwrap_or(0);
            self.pending.lock().clear();
            let applied = self.applied_seq.load(Ordering::SeqCst);
            self.applied_tx.send_replace(Applied {
                seq: applied,
                failed_upto: failed.max(self.coll.last_seq()),
                error: e.to_string(),
            });
        }
        result
    }

    fn drain_queue(&self) -> Result<()> {
        loop {
            let applied = self.applied_seq.load(Ordering::SeqCst);
            let batches: Vec<CommittedBatch> = {
                let mut pending = self.pending.lock();
                while pending
                    .first_key_value()
                    .is_some_and(|(s, _)| *s <= applied)
                {
                    pending.pop_first();
                }
                match pending.first_key_value() {
                    None => return Ok(()),
                    Some((&first, _)) if first > applied + 1 => {
                        drop(pending);
                        self.catch_up_locked(first - 1)?;
                        continue;
                    }
                    Some(_) => {}
                }
                let mut next = applied + 1;
                let mut out = Vec::new();
                while let Some(b) = pending.remove(&next) {
                    out.push(b);
                    next += 1;
                }
                out
            };
            let last = batches.last().map_or(applied, |b| b.seq);
            let (inserted, removed) = merge(batches);
            self.apply_locked(inserted, &removed)?;
            self.publish(last);
        }
    }

    fn publish(&self, seq: u64) {
        self.applied_seq.store(seq, Ordering::SeqCst);
        self.pin.advance(seq);
        self.applied_tx.send_modify(|a| a.seq = seq);
    }

    /// For readers: applies every committed batch not yet applied, unless another thread
    /// is applying right now — then it returns at once. That is enough for every read to
    /// see every acknowledged write (a writer returns only once its batch is applied), and
    /// it keeps pool threads from blocking on the applier while its holder waits for the
    /// pool in `insert_batch` (which deadlocked once every pool thread was such a reader).
    pub fn catch_up(&self) -> Result<()> {
        if self.applied_seq.load(Ordering::SeqCst) >= self.coll.last_seq() {
            return Ok(());
        }
        let Some(_apply) = self.try_lock_applier() else {
            return Ok(());
        };
        self.catch_up_drained()
    }

    /// Like [`Self::catch_up`], but waits for a running drain: for writers whose own batch
    /// must be applied before they return.
    pub fn catch_up_wait(&self) -> Result<()> {
        if self.applied_seq.load(Ordering::SeqCst) >= self.coll.last_seq() {
            return Ok(());
        }
        let _apply = self.lock_applier();
        self.catch_up_drained()
    }

    /// With the applier lock held: applies the queued batches (this store's writes, queued
    /// by the commit hook before `last_seq` covers them), then reads from the change log
    /// only what is still missing (other handles' writes), which may wait for sled.
    fn catch_up_drained(&self) -> Result<()> {
        self.drain_locked()?;
        if self.applied_seq.load(Ordering::SeqCst) >= self.coll.last_seq() {
            return Ok(());
        }
        self.catch_up_locked(u64::MAX)
    }

    fn catch_up_locked(&self, upto: u64) -> Result<()> {
        let applied = self.applied_seq.load(Ordering::SeqCst);
        let changes = match self.coll.changes_since(applied) {
            Ok(changes) => changes,
            Err(quiverdb_storage::Error::ChangesPruned {
                requested,
                pruned_upto,
            }) => {
                tracing::warn!(
                    collection = self.coll.name(),
                    applied = requested,
                    pruned_upto,
                    "the change log was pruned past this handle's position; rebuilding its \
                     rows and index from storage"
                );
                self.rebuild_locked()?;
                // The pin now holds the log after the rebuilt position: no second gap.
                self.coll
                    .changes_since(self.applied_seq.load(Ordering::SeqCst))?
            }
            Err(e) => return Err(e.into()),
        };
        for change in changes {
            if change.seq > upto {
                break;
            }
            let mut inserted = Vec::with_capacity(change.inserted.len());
            for (_, row) in &change.inserted {
                // A row removed by a later batch is gone from storage; the later batch's
                // removal is then a no-op, so skipping it here is equivalent.
                if let Some(r) = self.coll.get_row(*row)? {
                    inserted.push(CommittedRow {
                        row: r.row,
                        data: Arc::new(RowData {
                            pk: r.pk,
                            text: r.text,
                            metadata: r.metadata,
                        }),
                        vector: r.vector,
                    });
                }
            }
            let removed: Vec<RowId> = change.removed.iter().map(|(_, r)| *r).collect();
            self.apply_locked(inserted, &removed)?;
            self.publish(change.seq);
        }
        Ok(())
    }

    /// Replaces the rows and the index with fresh ones read from storage, as `load` does
    /// without a snapshot, and moves `applied_seq` to the sequence number read before the
    /// scans (later batches are replayed by the caller; replaying is idempotent).
    fn rebuild_locked(&self) -> Result<()> {
        let seq = self.coll.last_seq();
        // Entries up to `seq` are no longer needed, those after it are (and stay pinned).
        self.pin.advance(seq);
        let rows = scan_rows(&self.coll)?;
        let index = match self.coll.schema().dimension {
            Some(dim) => Some(self.build_index(dim)?),
            None => None,
        };
        let live_rows = rows.len();
        // Rows before the index: a search holding the old index drops hits without a row.
        *self.rows.write() = rows;
        *self.index.write() = index;
        // The snapshot on disk predates the prune: the next upkeep writes a new one.
        self.snapshot_seq.store(NO_SNAPSHOT, Ordering::SeqCst);
        self.changed_since_snapshot
            .store(self.snapshot_every.max(live_rows / 10), Ordering::SeqCst);
        if seq > self.applied_seq.load(Ordering::SeqCst) {
            self.publish(seq);
        }
        Ok(())
    }

    fn apply_locked(&self, inserted: Vec<CommittedRow>, removed: &[RowId]) -> Result<()> {
        self.changed_since_snapshot
            .fetch_add(inserted.len() + removed.len(), Ordering::Relaxed);
        self.removed_since_compaction
            .fetch_add(removed.len(), Ordering::Relaxed);
        // Order matters to concurrent searches, which map index hits to rows and drop hits
        // without one: a removed row leaves the index before the rows, an inserted row joins
        // the rows before the index — so every hit a search can get has its row.
        let index = self.ensure_index(inserted.first().map(|r| r.vector.len()))?;
        if let Some(index) = &index {
            for row in removed {
                index.remove(*row);
            }
        }
        {
            let mut rows = self.rows.write();
            for row in removed {
                rows.remove(*row);
            }
            for r in &inserted {
                rows.insert(r.row, r.data.clone());
            }
        }
        if let Some(index) = &index {
            let fresh: Vec<(RowId, &[f32])> = inserted
                .iter()
                .filter(|r| !index.contains(r.row))
                .map(|r| (r.row, r.vector.as_slice()))
                .collect();
            match fresh.len() {
                0 => {}
                1 => index.insert(fresh[0].0, fresh[0].1)?,
                _ => index.insert_batch(&fresh, &self.pool)?,
            }
        }
        Ok(())
    }

    fn ensure_index(&self, dim: Option<usize>) -> Result<Option<Arc<dyn VectorIndex>>> {
        if let Some(index) = self.index() {
            return Ok(Some(index));
        }
        let Some(dim) = dim.or_else(|| self.coll.schema().dimension) else {
            return Ok(None);
        };
        let mut config = self.index_config.clone();
        config.dim = dim;
        let index = new_index(&config)?;
        *self.index.write() = Some(index.clone());
        Ok(Some(index))
    }

    /// Checks a query vector against the collection.
    pub fn check_query(&self, query: &[f32], dim: usize) -> Result<()> {
        if query.len() != dim {
            return Err(Error::WrongDimension {
                expected: dim,
                got: query.len(),
            });
        }
        if let Some((i, v)) = query.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteVector {
                row: 0,
                component: i,
                value: *v,
            });
        }
        if self.metric == Metric::Cosine && query.iter().all(|v| *v == 0.0) {
            return Err(Error::ZeroVector { row: 0 });
        }
        Ok(())
    }

    /// The `k` nearest live rows accepted by `filter`, best first, with engine distances.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        filter: Option<&Filter>,
    ) -> Result<Hits> {
        self.catch_up()?;
        let Some(index) = self.index() else {
            return Ok(Vec::new());
        };
        self.check_query(query, index.dim())?;
        let allow = match filter {
            Some(f) if !f.is_match_all() => {
                let ids = self.rows.read().matching(f);
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                Some(ids.into_iter().collect::<AllowSet>())
            }
            _ => None,
        };
        let live = index.len();
        if live == 0 {
            return Ok(Vec::new());
        }
        let hits = quiverdb_index::planner::search(
            index.as_ref(),
            query,
            self.search_params(k, ef, live),
            allow.as_ref(),
        )?;
        let rows = self.rows.read();
        Ok(hits
            .into_iter()
            .filter_map(|n| rows.get(n.id).map(|d| (d.clone(), n)))
            .collect())
    }

    /// The engine parameters of a search for `k` rows among `live`: never a `k` above the
    /// live rows (a huge `k` must not reach an engine's allocations), `ef` the caller's or
    /// the collection's, at least `k`.
    fn search_params(&self, k: usize, ef: Option<usize>, live: usize) -> SearchParams {
        let k = k.min(live);
        let ef = ef
            .unwrap_or(self.index_config.ef_search)
            .max(k)
            .min(live.max(1));
        SearchParams { k, ef }
    }

    /// Whether [`Self::search_batch`] costs less than its queries one by one right now.
    pub fn batch_searches_share_work(&self) -> bool {
        self.index()
            .is_some_and(|index| index.search_batch_shares_work())
    }

    /// Unfiltered [`Self::search`] of several queries with the same `k` and `ef`, the index
    /// searching them together ([`VectorIndex::search_batch`]); one answer per query, in
    /// order, each what `search` answers for it alone.
    pub fn search_batch(
        &self,
        queries: &[&[f32]],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<Result<Hits>>> {
        self.catch_up()?;
        let Some(index) = self.index() else {
            return Ok(queries.iter().map(|_| Ok(Vec::new())).collect());
        };
        let mut answers: Vec<Result<Hits>> = queries
            .iter()
            .map(|q| self.check_query(q, index.dim()).map(|()| Vec::new()))
            .collect();
        let live = index.len();
        if live == 0 {
            return Ok(answers);
        }
        let valid: Vec<&[f32]> = queries
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_ok())
            .map(|(q, _)| *q)
            .collect();
        let mut hits = index
            .search_batch(&valid, self.search_params(k, ef, live))
            .into_iter();
        let rows = self.rows.read();
        for answer in answers.iter_mut().filter(|a| a.is_ok()) {
            let found = hits.next().unwrap_or_else(|| Ok(Vec::new()));
            *answer = found.map_err(Error::from).map(|found| {
                found
                    .into_iter()
                    .filter_map(|n| rows.get(n.id).map(|d| (d.clone(), n)))
                    .collect()
            });
        }
        Ok(answers)
    }

    /// Stored (for cosine: normalized) vectors of rows, for MMR.
    pub fn vectors(&self, ids: &[RowId]) -> Vec<Option<Vec<f32>>> {
        match self.index() {
            Some(index) => ids.iter().map(|r| index.vector(*r)).collect(),
            None => vec![None; ids.len()],
        }
    }
}

/// Every stored row without its vector, read from storage.
fn scan_rows(coll: &Collection) -> Result<Rows> {
    let mut rows = Rows::default();
    for entry in coll.scan_rows() {
        let RowEntry {
            pk,
            row,
            text,
            metadata,
        } = entry?;
        rows.insert(row, Arc::new(RowData { pk, text, metadata }));
    }
    Ok(rows)
}

/// The net effect of consecutive batches: row ids are never reused, so a row both inserted
/// and removed within them is neither inserted nor removed.
fn merge(batches: Vec<CommittedBatch>) -> (Vec<CommittedRow>, Vec<RowId>) {
    let removed_all: HashSet<RowId> = batches
        .iter()
        .flat_map(|b| b.removed.iter().copied())
        .collect();
    let mut inserted_ids = HashSet::new();
    let mut inserted = Vec::new();
    for b in batches {
        for r in b.inserted {
            inserted_ids.insert(r.row);
            if !removed_all.contains(&r.row) {
                inserted.push(r);
            }
        }
    }
    let removed = removed_all
        .into_iter()
        .filter(|r| !inserted_ids.contains(r))
        .collect();
    (inserted, removed)
}

#[cfg(test)]
mod tests;
