//! Collection handles: writes (validated, atomic, durable on return) and reads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};
use quiverdb_types::{Pk, RowId};
use tokio::sync::oneshot;

use crate::codec::{self, pk_key, row_key, CollectionId};
use crate::database::DbInner;
use crate::error::{Error, Result};
use crate::integrity::{self, IntegrityReport};
use crate::kv::{TreeId, WriteSet};
use crate::record::{NewRecord, Record, RowEntry, WriteReceipt};
use crate::schema::{CollectionState, Schema};
use crate::write::{self, Earlier, Plan};

/// How often a point read retries when a concurrent write moves the row it was reading.
const READ_RETRIES: usize = 8;

/// A handle on one collection. Cheap to clone, `Send + Sync`; all handles of a collection in
/// a process share one write lock and one in-memory copy of its state.
#[derive(Clone, Debug)]
pub struct Collection {
    inner: Arc<CollInner>,
}

/// # Invariants
/// * `state.stored` equals the collection's record in the `collections` tree once every
///   write set in `unapplied` is applied: it is replaced only after the commit that wrote it
///   is durable, under the same lock.
/// * `unapplied` holds the write sets of this collection's commits that are durable but not
///   yet applied to sled, in commit order; they are applied in that order. Only the
///   flusher's commits leave any (pushed under `state`), so whoever holds `state` and finds
///   it empty knows sled holds every commit.
/// * `sled_seq <= last_seq`. A flusher's commit is pushed to `unapplied`, then its commit
///   hooks run, then `last_seq` covers it, then its writers hear back (durable is enough
///   for them); the applier
///   raises `sled_seq` past it before it takes it off `unapplied`. Every read of sled first
///   waits until `sled_seq` reaches the `last_seq` it found ([`CollInner::wait_readable`]),
///   so it sees every write whose call has returned.
/// * `pruned_upto` is at least the stored change-log watermark, and no change-log entry at or
///   below the stored watermark exists (see `change_log.rs`).
#[derive(Debug)]
pub(crate) struct CollInner {
    pub(crate) db: Arc<DbInner>,
    pub(crate) id: CollectionId,
    pub(crate) name: String,
    /// Held for the whole of a write's validation and commit (which, on disk, syncs the
    /// write-ahead log before it applies the write set to sled).
    pub(crate) state: Mutex<CollState>,
    /// Set by `drop_collection` while it holds `state`; every later call fails with
    /// `UnknownCollection`. An atomic, so readers need not wait for a commit holding
    /// `state` (commits sync the write-ahead log under it).
    pub(crate) dropped: AtomicBool,
    /// Batches waiting to be committed (write combining), and whether a blocking writer is
    /// committing them.
    pub(crate) queue: Mutex<CommitQueue>,
    /// The last durable commit, acknowledged or about to be (`state.stored.last_seq` once
    /// its commit is durable), readable without the lock (readers poll it on every search).
    pub(crate) last_seq: AtomicU64,
    /// The last commit sled holds (`last_seq` once `unapplied` is empty).
    pub(crate) sled_seq: AtomicU64,
    /// Durable write sets not yet applied to sled, oldest first (see the invariants).
    pub(crate) unapplied: Mutex<VecDeque<Arc<WriteSet>>>,
    /// Signalled each time one of `unapplied` is applied.
    applied: Condvar,
    /// Change-log entries up to this sequence number may be gone. Raised before a prune's
    /// transaction commits, so a reader that checks it after reading the log notices every
    /// entry the prune removed under it.
    pub(crate) pruned_upto: AtomicU64,
    /// The positions of registered change-log readers ([`crate::ChangePin`]). Held for a
    /// whole prune, so a prune and a registration never interleave.
    pub(crate) readers: Mutex<Vec<Weak<AtomicU64>>>,
}

/// Plans one batch against the collection state and the writes in front of sled (the
/// batches planned before it in the same commit, and the commits not yet applied).
pub(crate) type PlanFn =
    Box<dyn FnOnce(&DbInner, &CollectionState, &Earlier<'_>) -> Result<Option<Plan>> + Send>;

/// Runs with a batch's outcome on the thread that settles its commit, in commit order
/// (the order of the batches' sequence numbers), just before its writer hears back, and
/// also when that writer has stopped waiting (a dropped future). For code that derives
/// state from every committed batch in order, such as the store's index (see
/// [`Collection::write`]). It runs with the collection's write lock held: keep it short,
/// and do not call the collection from it. A panic in it is logged and ignored.
pub type CommitHook = Box<dyn FnOnce(&Result<WriteReceipt>) + Send>;

/// One batch of writes to a collection, for [`Collection::write`] and
/// [`Collection::write_async`].
#[derive(Debug, Clone)]
pub enum Batch {
    /// New records ([`Collection::insert`]).
    Insert(Vec<NewRecord>),
    /// Records inserted or replaced by key ([`Collection::upsert`]).
    Upsert(Vec<NewRecord>),
    /// Keys to delete ([`Collection::delete`]).
    Delete(Vec<Pk>),
}

impl Batch {
    fn plan(self) -> PlanFn {
        match self {
            Batch::Insert(rows) => {
                Box::new(move |db, st, ws| write::plan_put(db, st, ws, rows, false))
            }
            Batch::Upsert(rows) => {
                Box::new(move |db, st, ws| write::plan_put(db, st, ws, rows, true))
            }
            Batch::Delete(pks) => Box::new(move |db, st, ws| write::plan_delete(db, st, ws, &pks)),
        }
    }
}

/// A batch queued for commit, with where its outcome goes.
pub(crate) struct Queued {
    plan: PlanFn,
    reply: Reply,
}

/// Where a queued batch's outcome goes: its hook, if any, then its writer.
struct Reply {
    to: ReplyTo,
    on_committed: Option<CommitHook>,
}

/// A blocking writer waits on a std channel (usable inside or outside a tokio runtime), an
/// async one on a tokio `oneshot`.
enum ReplyTo {
    Blocking(std::sync::mpsc::SyncSender<Result<WriteReceipt>>),
    Async(oneshot::Sender<Result<WriteReceipt>>),
}

impl Reply {
    fn send(self, outcome: Result<WriteReceipt>) {
        self.hook(&outcome).reply(outcome);
    }

    /// Runs the hook, if any (see [`CommitHook`]); then the writer may hear back.
    fn hook(mut self, outcome: &Result<WriteReceipt>) -> Self {
        if let Some(hook) = self.on_committed.take() {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(outcome)));
            if ran.is_err() {
                tracing::error!("a commit hook panicked; its writer is answered all the same");
            }
        }
        self
    }

    fn reply(self, outcome: Result<WriteReceipt>) {
        // A receiver that is gone stopped waiting (a dropped future); nothing to do.
        let _ = match self.to {
            ReplyTo::Blocking(tx) => tx.send(outcome).map_err(drop),
            ReplyTo::Async(tx) => tx.send(outcome).map_err(drop),
        };
    }
}

/// The batches queued on a collection.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    batches: Vec<Queued>,
    /// A blocking writer is committing queued batches (see [`Collection::commit`]): a
    /// blocking writer that queues meanwhile waits for its outcome instead of for the lock.
    committing: bool,
}

/// How many rounds a blocking writer commits before it hands the rest of the queue to the
/// flusher thread: the first holds its own batch (unless a committer took it already), the
/// second the batches queued while the first synced.
const LEAD_ROUNDS: usize = 2;

/// Where a commit's write set is applied to sled (see [`Collection::commit_queued`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Apply {
    /// On the committing thread.
    Now,
    /// On the database's applier thread.
    Later,
}

/// The batch outcome for each writer once the commit is settled: `failure` (the commit's
/// error, if any) for those that wrote; `seq` stands in the empty receipts of those that
/// did not.
fn answer(
    outcomes: Vec<(Reply, Result<Option<WriteReceipt>>, u64)>,
    failure: Option<Error>,
    seq: u64,
) {
    answer_after(outcomes, failure, seq, || ());
}

/// [`answer`], with `between` run after every hook and before any writer hears back.
fn answer_after(
    outcomes: Vec<(Reply, Result<Option<WriteReceipt>>, u64)>,
    failure: Option<Error>,
    seq: u64,
    between: impl FnOnce(),
) {
    let hooked: Vec<_> = outcomes
        .into_iter()
        .map(|(reply, outcome, planned_seq)| {
            let answer = match (outcome, &failure) {
                (Ok(Some(_)), Some(e)) => Err(e.for_another_writer()),
                (Ok(Some(receipt)), None) => Ok(receipt),
                (Ok(None), _) => Ok(WriteReceipt {
                    seq: if failure.is_some() { seq } else { planned_seq },
                    ..WriteReceipt::default()
                }),
                (Err(e), _) => Err(e),
            };
            (reply.hook(&answer), answer)
        })
        .collect();
    between();
    for (reply, answer) in hooked {
        reply.reply(answer);
    }
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

#[derive(Debug)]
pub(crate) struct CollState {
    pub(crate) stored: CollectionState,
}

impl CollInner {
    pub(crate) fn new(
        db: Arc<DbInner>,
        stored: CollectionState,
        pruned_upto: u64,
    ) -> Arc<CollInner> {
        let last_seq = stored.last_seq;
        Arc::new(CollInner {
            db,
            id: stored.id,
            name: stored.name.clone(),
            state: Mutex::new(CollState { stored }),
            dropped: AtomicBool::new(false),
            queue: Mutex::new(CommitQueue::default()),
            last_seq: AtomicU64::new(last_seq),
            sled_seq: AtomicU64::new(last_seq),
            unapplied: Mutex::new(VecDeque::new()),
            applied: Condvar::new(),
            pruned_upto: AtomicU64::new(pruned_upto),
            readers: Mutex::new(Vec::new()),
        })
    }
}

impl CollInner {
    /// Waits until sled holds every commit of this collection. Called with `state` held,
    /// which keeps new unapplied commits out.
    pub(crate) fn wait_applied(&self) {
        let mut unapplied = self.unapplied.lock();
        while !unapplied.is_empty() {
            self.applied.wait(&mut unapplied);
        }
    }

    /// Waits until sled holds every commit of this collection acknowledged so far, so that
    /// a read of sled that follows sees every write whose call has returned. Returns at
    /// once unless the applier thread is behind.
    ///
    /// # Errors
    /// [`Error::WritesStopped`] when the applier failed to apply a commit: sled will not
    /// get it before the database is reopened (whose replay applies it).
    pub(crate) fn wait_readable(&self) -> Result<()> {
        let target = self.last_seq.load(Ordering::Acquire);
        if self.sled_seq.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut unapplied = self.unapplied.lock();
        // An empty list with `sled_seq` still short: an apply failed (its guard took it
        // off without raising `sled_seq`).
        while self.sled_seq.load(Ordering::Acquire) < target && !unapplied.is_empty() {
            self.applied.wait(&mut unapplied);
        }
        if self.sled_seq.load(Ordering::Acquire) >= target {
            Ok(())
        } else {
            Err(self.db.kv.writes_stopped().unwrap_or_else(|| {
                Error::Sled(format!(
                    "commit {target} of collection {:?} did not reach sled",
                    self.name
                ))
            }))
        }
    }

    /// Records that sled holds every commit up to `seq`, which is durable: for commits
    /// applied on the committing thread, whose writers hear back after this.
    fn applied_through(&self, seq: u64) {
        self.sled_seq.fetch_max(seq, Ordering::AcqRel);
        self.last_seq.fetch_max(seq, Ordering::AcqRel);
    }
}

/// Takes the oldest unapplied write set off its collection's list when dropped, so that a
/// panicking apply job still lets the waiters of [`CollInner::wait_applied`] go.
struct AppliedOne<'a>(&'a CollInner);

impl Drop for AppliedOne<'_> {
    fn drop(&mut self) {
        self.0.unapplied.lock().pop_front();
        self.0.applied.notify_all();
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

    pub(crate) fn inner(&self) -> &CollInner {
        &self.inner
    }

    pub(crate) fn check_live(&self) -> Result<()> {
        if self.inner.dropped.load(Ordering::SeqCst) {
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

    /// Validates, plans and commits a batch, durably; returns the receipt.
    ///
    /// Write combining: the batch is queued. A blocking writer that finds no committer at
    /// work becomes the committer: under the collection lock it commits *every* queued
    /// batch — each planned in order against the state and writes of the ones before it —
    /// as one write set (one log record, one sync), for up to [`LEAD_ROUNDS`] rounds, and
    /// hands a queue still not empty to the flusher thread. Writers that queue while a
    /// committer is at work wait for their outcome on a channel, not for the lock (64
    /// threads waking one by one through the lock made `group_commit`'s 64-thread case
    /// half as fast). A batch that fails validation is answered with its error and left
    /// out; the others are unaffected.
    fn commit(&self, plan: PlanFn, on_committed: Option<CommitHook>) -> Result<WriteReceipt> {
        let (reply, outcome) = std::sync::mpsc::sync_channel(1);
        let lead = {
            let mut q = self.inner.queue.lock();
            q.batches.push(Queued {
                plan,
                reply: Reply {
                    to: ReplyTo::Blocking(reply),
                    on_committed,
                },
            });
            !std::mem::replace(&mut q.committing, true)
        };
        if lead {
            self.lead_commits();
        }
        outcome
            .recv()
            .unwrap_or_else(|_| Err(Error::Sled("the write was not committed".to_owned())))
    }

    /// Commits queued batches for up to [`LEAD_ROUNDS`] rounds, as the collection's
    /// committer; a queue still not empty then goes to the flusher thread. The committer
    /// flag is cleared only with the queue lock held and the queue empty or handed over,
    /// so no batch is left without someone to commit it.
    fn lead_commits(&self) {
        for _ in 0..LEAD_ROUNDS {
            let queued = {
                let mut q = self.inner.queue.lock();
                if q.batches.is_empty() {
                    q.committing = false;
                    return;
                }
                std::mem::take(&mut q.batches)
            };
            let mut st = self.inner.state.lock();
            self.commit_queued(&mut st, queued, Apply::Now);
        }
        let more = {
            let mut q = self.inner.queue.lock();
            q.committing = false;
            !q.batches.is_empty()
        };
        if more {
            let coll = self.clone();
            self.inner
                .db
                .group
                .schedule(Box::new(move || coll.commit_pending()));
        }
    }

    /// [`Self::commit`] without blocking: queues the batch and leaves the commit to the
    /// database's flusher thread (or to a sync writer that takes the lock first).
    async fn commit_async(
        &self,
        plan: PlanFn,
        on_committed: Option<CommitHook>,
    ) -> Result<WriteReceipt> {
        let (reply, outcome) = oneshot::channel();
        self.inner.queue.lock().batches.push(Queued {
            plan,
            reply: Reply {
                to: ReplyTo::Async(reply),
                on_committed,
            },
        });
        let coll = self.clone();
        self.inner
            .db
            .group
            .schedule(Box::new(move || coll.commit_pending()));
        outcome
            .await
            .unwrap_or_else(|_| Err(Error::Sled("the write was not committed".to_owned())))
    }

    /// Commits every queued batch (a commit job of the flusher thread). A later job finds
    /// the queue already taken and does nothing.
    fn commit_pending(&self) {
        let mut st = self.inner.state.lock();
        let queued = std::mem::take(&mut self.inner.queue.lock().batches);
        if !queued.is_empty() {
            self.commit_queued(&mut st, queued, Apply::Later);
        }
    }

    /// Plans the queued batches in order, each against the state and writes of the ones
    /// before it, and commits them as one write set. With [`Apply::Now`] (a blocking
    /// committer) the write set is applied to sled on this thread, after every unapplied
    /// commit of the collection, and the writers are answered here. With [`Apply::Later`]
    /// (the flusher thread) the writers are answered once it is durable and it is applied by
    /// the database's applier thread: the flusher plans, logs and syncs the next commit
    /// meanwhile, planning against the unapplied write sets in front of sled.
    fn commit_queued(&self, st: &mut CollState, queued: Vec<Queued>, apply: Apply) {
        if self.inner.dropped.load(Ordering::SeqCst) {
            for q in queued {
                q.reply.send(Err(self.unknown()));
            }
            return;
        }
        if apply == Apply::Now {
            self.inner.wait_applied();
        }
        let db = &self.inner.db;
        let unapplied: Vec<Arc<WriteSet>> = self.inner.unapplied.lock().iter().cloned().collect();
        let mut state = st.stored.clone();
        let mut ws = WriteSet::default();
        let mut outcomes = Vec::with_capacity(queued.len());
        for q in queued {
            let earlier = Earlier {
                own: &ws,
                unapplied: &unapplied,
            };
            let outcome = match (q.plan)(db, &state, &earlier) {
                Ok(Some(plan)) => {
                    ws.merge(plan.ws);
                    state = plan.state;
                    Ok(Some(plan.receipt))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            outcomes.push((q.reply, outcome, state.last_seq));
        }
        let wrote = outcomes.iter().any(|(_, o, _)| matches!(o, Ok(Some(_))));
        if !wrote {
            return answer(outcomes, None, st.stored.last_seq);
        }
        let last = state.last_seq;
        let logged = match db.log(&ws) {
            Ok(logged) => logged,
            Err(e) => return answer(outcomes, Some(e), st.stored.last_seq),
        };
        // `last_seq` and `sled_seq` only grow (`fetch_max`): the applier thread raises
        // `sled_seq` for commits that were logged before this one.
        let Some(logged) = logged else {
            // Applied already (a temporary store).
            self.inner.applied_through(last);
            st.stored = state;
            return answer(outcomes, None, last);
        };
        if apply == Apply::Now {
            let applied = db.apply(logged, &ws);
            if applied.is_ok() {
                self.inner.applied_through(last);
                st.stored = state;
            }
            return answer(outcomes, applied.err(), st.stored.last_seq);
        }
        // Durable: later plans build on it, through `unapplied` until sled has it, and its
        // writers hear back now. Reads of sled wait for the applier (`wait_readable`).
        st.stored = state;
        let ws = Arc::new(ws);
        self.inner.unapplied.lock().push_back(Arc::clone(&ws));
        // The hooks first: a reader that finds `last_seq` covering these batches finds them
        // wherever the hooks put them (the store's queue), without waiting for sled.
        answer_after(outcomes, None, last, || {
            self.inner.last_seq.fetch_max(last, Ordering::AcqRel);
        });
        let coll = self.clone();
        db.group.apply_later(Box::new(move || {
            let inner = &coll.inner;
            let _done = AppliedOne(inner);
            // A failure stops the log (`Error::WritesStopped`): later commits and reads
            // that wait for this one get that error, and the next open's replay applies it.
            if inner.db.apply(logged, &ws).is_ok() {
                inner.sled_seq.fetch_max(last, Ordering::AcqRel);
            }
        }));
    }

    /// Inserts new records; durable when it returns `Ok`.
    ///
    /// # Errors
    /// Any stored or repeated key is [`Error::DuplicatePk`]; keys and vectors are validated
    /// (see [`Error`]). A rejected batch writes nothing.
    pub fn insert(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        self.write(Batch::Insert(rows), None)
    }

    /// Inserts or replaces whole records (each gets a new row id; replaced ones are reported
    /// in `removed`). When a key repeats in the batch, its last record wins.
    pub fn upsert(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        self.write(Batch::Upsert(rows), None)
    }

    /// Deletes records by key; unknown keys (and keys of the wrong kind) are ignored.
    pub fn delete(&self, pks: &[Pk]) -> Result<WriteReceipt> {
        self.write(Batch::Delete(pks.to_vec()), None)
    }

    /// Commits `batch` as [`insert`](Self::insert), [`upsert`](Self::upsert) or
    /// [`delete`](Self::delete) do, running `on_committed` with its outcome first (see
    /// [`CommitHook`]): whoever derives state from the collection gets every batch of its
    /// own writers there, in sequence order, even those whose caller stopped waiting.
    pub fn write(&self, batch: Batch, on_committed: Option<CommitHook>) -> Result<WriteReceipt> {
        self.commit(batch.plan(), on_committed)
    }

    /// [`write`](Self::write) for async callers, committed as
    /// [`insert_async`](Self::insert_async) is.
    pub async fn write_async(
        &self,
        batch: Batch,
        on_committed: Option<CommitHook>,
    ) -> Result<WriteReceipt> {
        self.commit_async(batch.plan(), on_committed).await
    }

    /// [`insert`](Self::insert) for async callers: the batch is committed (and made durable)
    /// by the database's flusher thread together with every batch queued meanwhile; no
    /// executor thread blocks.
    ///
    /// Cancellation: the batch is queued on the first poll; dropping the future after that
    /// only stops waiting (the batch is still committed and becomes durable).
    pub async fn insert_async(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        self.write_async(Batch::Insert(rows), None).await
    }

    /// [`upsert`](Self::upsert) for async callers.
    pub async fn upsert_async(&self, rows: Vec<NewRecord>) -> Result<WriteReceipt> {
        self.write_async(Batch::Upsert(rows), None).await
    }

    /// [`delete`](Self::delete) for async callers.
    pub async fn delete_async(&self, pks: Vec<Pk>) -> Result<WriteReceipt> {
        self.write_async(Batch::Delete(pks), None).await
    }

    /// The records stored under `pks`, in the same order (`None` where there is none).
    pub fn get(&self, pks: &[Pk]) -> Result<Vec<Option<Record>>> {
        self.check_live()?;
        self.inner.wait_readable()?;
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
        self.inner.wait_readable()?;
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
        if self.inner.dropped.load(Ordering::SeqCst) {
            return Err(self.unknown());
        }
        self.inner.wait_applied();
        Ok(st.stored.live as usize)
    }

    /// Every stored record, in **row-id order** (the order of writing; an upserted record
    /// moves to the end). Not a snapshot: records written during the scan may or may not be
    /// seen, records removed during it are skipped.
    pub fn scan(&self) -> impl Iterator<Item = Result<Record>> + '_ {
        // `assemble` says `None` for a row removed since the rows tree was read: skipped.
        self.scan_tree(TreeId::Rows, move |_, row, v| self.assemble(row, v))
            .filter_map(Result::transpose)
    }

    /// Every stored record without its vector, in row-id order: one pass over the rows
    /// tree, no vector reads (for a loader whose vectors come from an index snapshot). Not a
    /// snapshot, like [`Self::scan`].
    pub fn scan_rows(&self) -> impl Iterator<Item = Result<RowEntry>> + '_ {
        self.scan_tree(TreeId::Rows, |db, row, v| {
            let stored = db.decoded(codec::decode_row(v))?;
            Ok(RowEntry {
                pk: stored.pk,
                row,
                text: stored.text,
                metadata: stored.metadata,
            })
        })
    }

    /// Every stored vector with its row id, in row-id order: one pass over the vectors
    /// tree. Not a snapshot, like [`Self::scan`].
    pub fn scan_vectors(&self) -> impl Iterator<Item = Result<(RowId, Vec<f32>)>> + '_ {
        self.scan_tree(TreeId::Vectors, |db, row, v| {
            Ok((row, db.decoded(codec::decode_vector(v))?))
        })
    }

    /// Decodes every entry of this collection in `tree`, in row-id order.
    fn scan_tree<'a, T: 'a>(
        &'a self,
        tree: TreeId,
        decode: impl Fn(&DbInner, RowId, &[u8]) -> Result<T> + 'a,
    ) -> impl Iterator<Item = Result<T>> + 'a {
        let dropped = self
            .check_live()
            .and_then(|()| self.inner.wait_readable())
            .err()
            .map(Err);
        let entries = self.inner.db.kv.scan_prefix(tree, &self.inner.id.prefix());
        let entries = dropped.is_none().then_some(entries).into_iter().flatten();
        dropped.into_iter().chain(entries.map(move |item| {
            let (k, v) = item?;
            let db = &self.inner.db;
            let row = RowId(db.decoded(codec::decode_id_key(&k))?);
            decode(db, row, &v)
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
    /// committed once its write set is durable, just before its writer returns; reads wait
    /// until sled holds it.
    pub fn last_seq(&self) -> u64 {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// Verifies the whole collection: the key index and the rows agree both ways, every row
    /// and vector decodes with the schema's dimension, and the counters match what is stored.
    /// Blocks writers of this collection while it runs.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        let st = self.inner.state.lock();
        if self.inner.dropped.load(Ordering::SeqCst) {
            return Err(self.unknown());
        }
        self.inner.wait_applied();
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

    fn rec(pk: &str, x: f32) -> NewRecord {
        NewRecord {
            pk: Some(Pk::Str(pk.to_owned())),
            text: format!("text of {pk}"),
            metadata: Metadata::new(),
            vector: vec![x, 1.0],
        }
    }

    /// Queues batches as concurrent writers would and commits them as one group, applied
    /// as `apply` says; returns the writers' receivers.
    fn commit_queued_as(
        c: &Collection,
        plans: Vec<PlanFn>,
        apply: Apply,
    ) -> Vec<oneshot::Receiver<Result<WriteReceipt>>> {
        let hooked = plans.into_iter().map(|plan| (plan, None)).collect();
        commit_hooked_as(c, hooked, apply)
    }

    /// [`commit_queued_as`], each batch with its commit hook.
    fn commit_hooked_as(
        c: &Collection,
        plans: Vec<(PlanFn, Option<CommitHook>)>,
        apply: Apply,
    ) -> Vec<oneshot::Receiver<Result<WriteReceipt>>> {
        let mut receivers = Vec::new();
        let queued = plans
            .into_iter()
            .map(|(plan, on_committed)| {
                let (reply, rx) = oneshot::channel();
                receivers.push(rx);
                Queued {
                    plan,
                    reply: Reply {
                        to: ReplyTo::Async(reply),
                        on_committed,
                    },
                }
            })
            .collect();
        c.commit_queued(&mut c.inner.state.lock(), queued, apply);
        receivers
    }

    /// [`commit_queued_as`] applied on this thread: the outcomes are there on return.
    fn commit_group(c: &Collection, plans: Vec<PlanFn>) -> Vec<Result<WriteReceipt>> {
        commit_queued_as(c, plans, Apply::Now)
            .into_iter()
            .map(|mut rx| rx.try_recv().unwrap())
            .collect()
    }

    /// [`commit_queued_as`] as the flusher does: applied by the applier thread.
    fn commit_later(
        c: &Collection,
        plans: Vec<PlanFn>,
    ) -> Vec<oneshot::Receiver<Result<WriteReceipt>>> {
        commit_queued_as(c, plans, Apply::Later)
    }

    /// An empty collection `c` in a new on-disk database (with a write-ahead log, so the
    /// flusher's commits can be on their way to sled).
    fn on_disk() -> (tempfile::TempDir, Database, Collection) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db
            .create_collection("c", CollectionConfig::default())
            .unwrap();
        (dir, db, c)
    }

    /// Blocks the database's applier thread until the returned sender is dropped.
    fn hold_applier(c: &Collection) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        c.inner.db.group.apply_later(Box::new(move || {
            let _ = rx.recv();
        }));
        tx
    }

    fn wait(mut rx: oneshot::Receiver<Result<WriteReceipt>>) -> WriteReceipt {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match rx.try_recv() {
                Ok(outcome) => return outcome.unwrap(),
                Err(oneshot::error::TryRecvError::Empty)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("no outcome: {e}"),
            }
        }
    }

    /// The flusher's commits are durable before sled has them: their writers hear back and
    /// `last_seq` moves at once, later plans see them through `unapplied` (a delete finds a
    /// key inserted, and the new row of a key upserted, by a commit sled does not hold yet),
    /// and a blocking commit waits for them, so sled gets every commit in log order. A
    /// reopen finds the same records.
    #[test]
    fn commits_not_yet_in_sled_are_seen_by_plans_and_applied_in_order() {
        let (dir, db, c) = on_disk();
        let rows = |pks: &[&str]| pks.iter().map(|p| rec(p, 1.0)).collect::<Vec<_>>();
        c.insert(rows(&["k0", "k1", "k2"])).unwrap();
        let before = c.last_seq();
        let release = hold_applier(&c);
        let put = |rows: Vec<NewRecord>, upsert: bool| -> PlanFn {
            Box::new(move |db, st, ws| write::plan_put(db, st, ws, rows, upsert))
        };
        let del = |pks: &[&str]| -> PlanFn {
            let pks: Vec<Pk> = pks.iter().map(|p| Pk::Str((*p).to_owned())).collect();
            Box::new(move |db, st, ws| write::plan_delete(db, st, ws, &pks))
        };
        let first = commit_later(
            &c,
            vec![put(rows(&["x1"]), false), put(rows(&["k1"]), true)],
        );
        assert_eq!(c.inner.unapplied.lock().len(), 1);
        assert!(
            !in_sled(&c, "x1"),
            "sled has it already: the applier was not held"
        );
        let mut first: Vec<WriteReceipt> = first.into_iter().map(wait).collect();
        assert_eq!(
            c.last_seq(),
            before + 2,
            "last_seq missed an acknowledged commit"
        );
        let second = commit_later(&c, vec![del(&["x1", "k1"])]);
        assert_eq!(c.inner.unapplied.lock().len(), 2);
        // A blocking writer waits for both.
        let blocking = std::thread::spawn({
            let c = c.clone();
            move || c.insert(vec![rec("y", 2.0)]).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !blocking.is_finished(),
            "a blocking commit overtook unapplied ones"
        );
        let second = wait(second.into_iter().next().unwrap());
        drop(release);
        let upserted = first.pop().unwrap();
        let inserted = first.pop().unwrap();
        assert_eq!(upserted.removed.len(), 1, "the upsert replaced k1");
        let mut want = vec![inserted.inserted[0].clone(), upserted.inserted[0].clone()];
        want.sort();
        let mut got = second.removed.clone();
        got.sort();
        assert_eq!(got, want, "the delete saw the unapplied rows");
        blocking.join().unwrap();
        assert!(c.inner.unapplied.lock().is_empty());
        assert_eq!(c.last_seq(), before + 4);
        let present = |c: &Collection| -> Vec<bool> {
            ["k0", "k1", "k2", "x1", "y"]
                .iter()
                .map(|p| c.get(&[Pk::Str((*p).into())]).unwrap()[0].is_some())
                .collect()
        };
        assert_eq!(present(&c), [true, false, true, false, true]);
        assert_eq!(c.count().unwrap(), 3);
        c.check_integrity().unwrap();
        drop((c, db));
        let db = Database::open(dir.path()).unwrap();
        let c = db.open_collection("c").unwrap();
        assert_eq!(present(&c), [true, false, true, false, true]);
        c.check_integrity().unwrap();
    }

    /// Commit hooks run in sequence order, once per batch, before the writer hears back,
    /// also for writers that stopped waiting and for batches a blocking writer committed;
    /// a panicking hook does not keep its writer from hearing back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commit_hooks_see_every_batch_in_sequence_order() {
        let (_dir, _db, c) = on_disk();
        let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
        let hook = |seen: &Arc<Mutex<Vec<u64>>>| -> Option<CommitHook> {
            let seen = seen.clone();
            Some(Box::new(move |outcome: &Result<WriteReceipt>| {
                seen.lock().push(outcome.as_ref().expect("committed").seq)
            }))
        };
        let mut writers = Vec::new();
        for i in 0..60 {
            let (c, seen, hook) = (c.clone(), seen.clone(), hook(&seen));
            let batch = Batch::Insert(vec![rec(&format!("k{i}"), i as f32)]);
            writers.push(tokio::spawn(async move {
                if i % 3 == 0 {
                    // Queued by the first poll, then dropped: the batch still commits.
                    let gave_up =
                        tokio::time::timeout(std::time::Duration::ZERO, c.write_async(batch, hook))
                            .await
                            .is_err();
                    return gave_up.then_some(0);
                }
                let receipt = if i % 5 == 0 {
                    let c = c.clone();
                    tokio::task::spawn_blocking(move || c.write(batch, hook))
                        .await
                        .unwrap()
                } else {
                    c.write_async(batch, hook).await
                }
                .unwrap();
                assert!(
                    seen.lock().contains(&receipt.seq),
                    "writer of {} heard back before its hook ran",
                    receipt.seq
                );
                Some(receipt.seq)
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        // The dropped writers' batches commit on their own: wait for all 60.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while c.count().unwrap() < 60 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(c.count().unwrap(), 60);
        let seen = seen.lock().clone();
        let first = seen[0];
        assert_eq!(
            seen,
            (first..first + 60).collect::<Vec<_>>(),
            "hooks out of order"
        );
        // A panicking hook: logged, and the writer hears back all the same.
        let receipt = c
            .write_async(
                Batch::Delete(vec![Pk::Str("k1".into())]),
                Some(Box::new(|_: &Result<WriteReceipt>| panic!("hook fails"))),
            )
            .await
            .unwrap();
        assert_eq!(receipt.removed.len(), 1);
    }

    /// On the flusher's path the hooks of a commit run before `last_seq` covers it, so a
    /// reader that sees `last_seq` finds what the hooks queued; its writers hear back after.
    #[test]
    fn hooks_run_before_last_seq_covers_their_commit() {
        let (_dir, _db, c) = on_disk();
        c.insert(vec![rec("k0", 1.0)]).unwrap();
        let before = c.last_seq();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let plans = (0..3)
            .map(|i| {
                let (c, seen) = (c.clone(), seen.clone());
                let hook: CommitHook = Box::new(move |outcome: &Result<WriteReceipt>| {
                    seen.lock()
                        .push((outcome.as_ref().unwrap().seq, c.last_seq()));
                });
                let rows = vec![rec(&format!("h{i}"), 2.0)];
                let plan: PlanFn =
                    Box::new(move |db, st, ws| write::plan_put(db, st, ws, rows, false));
                (plan, Some(hook))
            })
            .collect();
        let receivers = commit_hooked_as(&c, plans, Apply::Later);
        assert_eq!(
            *seen.lock(),
            vec![
                (before + 1, before),
                (before + 2, before),
                (before + 3, before)
            ],
            "a hook ran after last_seq covered its commit"
        );
        for rx in receivers {
            assert!(wait(rx).seq <= c.last_seq());
        }
    }

    /// Whether sled itself holds key `pk` of `c` (no waiting for the applier).
    fn in_sled(c: &Collection, pk: &str) -> bool {
        let key = pk_key(c.inner.id, &Pk::Str(pk.to_owned()));
        c.inner.db.kv.get(TreeId::PkIndex, key).unwrap().is_some()
    }

    /// A commit acknowledged before sled has it is seen by every read that starts after its
    /// writer heard back: point reads, scans and the change log wait for the applier.
    #[test]
    fn reads_wait_until_sled_has_every_acknowledged_commit() {
        let (_dir, _db, c) = on_disk();
        c.insert(vec![rec("k0", 1.0)]).unwrap();
        let before = c.last_seq();
        let release = hold_applier(&c);
        let pending = commit_later(
            &c,
            vec![Box::new(|db, st, ws| {
                write::plan_put(db, st, ws, vec![rec("x1", 2.0)], false)
            })],
        );
        let receipt = wait(pending.into_iter().next().unwrap());
        assert_eq!(c.last_seq(), receipt.seq);
        assert!(!in_sled(&c, "x1"), "the applier was not held");
        let reader = std::thread::spawn({
            let c = c.clone();
            move || {
                let got = c.get(&[Pk::Str("x1".into())]).unwrap().remove(0);
                let scanned = c.scan().count();
                let changes = c.changes_since(before).unwrap();
                (got, scanned, changes)
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!reader.is_finished(), "a read did not wait for sled");
        drop(release);
        let (got, scanned, changes) = reader.join().unwrap();
        assert_eq!(got.expect("x1 acknowledged").row, receipt.inserted[0].1);
        assert_eq!(scanned, 2);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].seq, receipt.seq);
        assert!(
            c.prune_changes(u64::MAX).unwrap() >= 1,
            "prune stopped short of what sled holds"
        );
    }

    /// An apply that failed leaves `sled_seq` short of `last_seq` with nothing left to
    /// apply: a read fails at once instead of waiting for ever.
    #[test]
    fn a_read_fails_rather_than_waits_for_a_commit_that_never_reaches_sled() {
        let (_dir, _db, c) = on_disk();
        c.insert(vec![rec("k0", 1.0)]).unwrap();
        // What a failed apply leaves (its guard took the write set off `unapplied`).
        c.inner.last_seq.fetch_add(1, Ordering::SeqCst);
        let err = c.get(&[Pk::Str("k0".into())]).unwrap_err();
        assert!(
            err.to_string().contains("did not reach sled"),
            "unexpected error: {err}"
        );
    }

    /// A drop waits for the collection's commits on their way to sled, so its purge leaves
    /// none of their keys behind.
    #[test]
    fn a_drop_waits_for_unapplied_commits_before_purging() {
        let (_dir, db, c) = on_disk();
        c.insert(vec![rec("k0", 1.0)]).unwrap();
        let cid = c.inner.id;
        let release = hold_applier(&c);
        let rows: Vec<NewRecord> = (0..50).map(|i| rec(&format!("x{i}"), i as f32)).collect();
        let pending = commit_later(
            &c,
            vec![Box::new(move |db, st, ws| {
                write::plan_put(db, st, ws, rows, false)
            })],
        );
        let dropper = std::thread::spawn({
            let db = db.clone();
            move || db.drop_collection("c").unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!dropper.is_finished(), "the drop did not wait");
        drop(release);
        wait(pending.into_iter().next().unwrap());
        assert!(dropper.join().unwrap());
        for tree in [
            TreeId::Rows,
            TreeId::Vectors,
            TreeId::PkIndex,
            TreeId::Changes,
        ] {
            let left = c.inner.db.kv.scan_prefix(tree, &cid.prefix()).count();
            assert_eq!(left, 0, "{tree:?}: keys of the dropped collection left");
        }
    }

    #[test]
    fn combined_batches_see_each_other_and_fail_alone() {
        let (db, c) = filled();
        let put = |rows: Vec<NewRecord>, upsert: bool| -> PlanFn {
            Box::new(move |db, st, ws| write::plan_put(db, st, ws, rows, upsert))
        };
        let del = |pks: Vec<Pk>| -> PlanFn {
            Box::new(move |db, st, ws| write::plan_delete(db, st, ws, &pks))
        };
        let commits = db.commit_count();
        let out = commit_group(
            &c,
            vec![
                put(vec![rec("new", 1.0)], false),
                // Sees "new" from the batch before it in the same write set.
                put(vec![rec("new", 2.0)], false),
                put(vec![rec("new", 3.0)], true),
                del(vec![Pk::Str("k0".into())]),
                put(vec![rec("k9", f32::NAN)], false),
                put(vec![rec("k0", 4.0)], false), // k0 was deleted just before: allowed
            ],
        );
        assert!(matches!(out[1], Err(Error::DuplicatePk { .. })));
        assert!(matches!(out[4], Err(Error::NonFiniteVector { .. })));
        let ok: Vec<&WriteReceipt> = out.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(ok.len(), 4);
        // Consecutive sequence numbers, one commit for the whole group.
        let seqs: Vec<u64> = ok.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert_eq!(db.commit_count(), commits + 1);
        // The upsert replaced the row the first batch inserted.
        assert_eq!(
            ok[1].removed,
            vec![(Pk::Str("new".into()), ok[0].inserted[0].1)]
        );
        let got = c
            .get(&[Pk::Str("new".into()), Pk::Str("k0".into())])
            .unwrap();
        assert_eq!(got[0].as_ref().unwrap().vector, vec![3.0, 1.0]);
        assert_eq!(got[1].as_ref().unwrap().vector, vec![4.0, 1.0]);
        assert_eq!(c.count().unwrap(), 6);
        assert_eq!(c.changes_since(1).unwrap().len(), 4);
        assert!(c.check_integrity().unwrap().is_ok());
    }

    #[test]
    fn racing_inserts_of_one_key_admit_exactly_one() {
        let (_db, c) = filled();
        for round in 0..20 {
            let key = format!("race{round}");
            let wins: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let (c, key) = (c.clone(), key.clone());
                        s.spawn(move || usize::from(c.insert(vec![rec(&key, i as f32)]).is_ok()))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(wins, 1, "round {round}");
        }
        assert_eq!(c.count().unwrap(), 25);
        assert!(c.check_integrity().unwrap().is_ok());
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
