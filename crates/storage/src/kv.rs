//! The key-value engine behind storage: sled 0.34, wrapped so nothing else touches it.
//!
//! Everything sled-specific (opening, error mapping, cross-tree transactions, flushing,
//! prefix scans) lives here, so swapping the engine (e.g. for redb) stays local to this file.
//! Values handed out are [`Bytes`], which callers only use as `&[u8]`.
//!
//! # Durability
//! A commit is appended to the write-ahead log (`wal`), synced, and then applied to sled in
//! memory with plain inserts and removes (sled's transactions each write two log buffers);
//! it is durable when [`Kv::commit`] returns. sled's own files are made durable only at a
//! [checkpoint](Kv::checkpoint) (the `wal` module says when), which then retires the log's
//! records. At open, the records after the last checkpoint are replayed, then a checkpoint
//! runs. A temporary store has no log: its commits are sled transactions.
//!
//! A checkpoint cannot rely on sled alone. sled 0.34's `flush()` is documented to "call
//! fsync", but on Linux it writes each log buffer with `pwrite` + `sync_file_range`, which
//! neither commits the file's metadata (its size, its new blocks) nor flushes the drive's
//! write cache: a power cut can lose writes it acknowledged (`man 2 sync_file_range`:
//! "there are no guarantees that the data will be available after a crash"). Values too
//! large for a log segment (over 128 KiB with sled's default 512 KiB segments: big
//! documents, big tree nodes) go to files of their own under `blobs/`, which sled never
//! syncs at all. A checkpoint therefore follows sled's flush with an `fdatasync` of sled's
//! log file (`db` in the store directory) through a handle of its own (Linux syncs the
//! file, whichever descriptor wrote it), and an `fsync` of every blob file it has not
//! synced yet and of `blobs/`.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sled::transaction::{TransactionError, Transactional};

use crate::error::{Error, Result};
use crate::wal::{Logged, Wal};

/// An owned value read from the store; callers only rely on `Deref<Target = [u8]>`.
pub(crate) type Bytes = sled::IVec;

/// The trees of the store. See `docs/FORMAT.md` for every key and value layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeId {
    Meta = 0,
    Catalog = 1,
    Collections = 2,
    Rows = 3,
    Vectors = 4,
    PkIndex = 5,
    Changes = 6,
}

impl TreeId {
    /// Every tree, indexed by its number.
    pub(crate) const ALL: [TreeId; 7] = [
        TreeId::Meta,
        TreeId::Catalog,
        TreeId::Collections,
        TreeId::Rows,
        TreeId::Vectors,
        TreeId::PkIndex,
        TreeId::Changes,
    ];
}

const TREE_NAMES: [&str; 7] = [
    "meta",
    "catalog",
    "collections",
    "rows",
    "vectors",
    "pk_index",
    "changes",
];

/// A set of puts and removes over several trees, committed atomically by [`Kv::commit`].
///
/// Later writes to a key replace earlier ones, so write sets of consecutive batches can be
/// [merged](WriteSet::merge) into one transaction, and a batch being planned can see what
/// the batches before it in the same transaction wrote ([`WriteSet::get`]).
#[derive(Debug, Default)]
pub(crate) struct WriteSet {
    trees: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; 7],
}

impl WriteSet {
    pub(crate) fn put(&mut self, tree: TreeId, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.trees[tree as usize].insert(key.as_ref().to_vec(), Some(value.as_ref().to_vec()));
    }

    pub(crate) fn remove(&mut self, tree: TreeId, key: impl AsRef<[u8]>) {
        self.trees[tree as usize].insert(key.as_ref().to_vec(), None);
    }

    /// What this set writes to `key`: `Some(Some(v))` a put, `Some(None)` a removal,
    /// `None` nothing.
    pub(crate) fn get(&self, tree: TreeId, key: &[u8]) -> Option<Option<&[u8]>> {
        self.trees[tree as usize].get(key).map(|v| v.as_deref())
    }

    /// Appends `later`'s writes; on a shared key, `later` wins.
    pub(crate) fn merge(&mut self, later: WriteSet) {
        for (mine, theirs) in self.trees.iter_mut().zip(later.trees) {
            mine.extend(theirs);
        }
    }

    fn is_empty(&self) -> bool {
        self.trees.iter().all(BTreeMap::is_empty)
    }

    /// Every write, tree by tree, in key order: `Some(value)` a put, `None` a removal.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (TreeId, &[u8], Option<&[u8]>)> {
        TreeId::ALL
            .iter()
            .zip(&self.trees)
            .flat_map(|(&tree, writes)| {
                writes
                    .iter()
                    .map(move |(k, v)| (tree, k.as_slice(), v.as_deref()))
            })
    }

    /// The size of this set as a write-ahead log payload (see `wal`).
    pub(crate) fn encoded_len(&self) -> usize {
        self.entries()
            .map(|(_, k, v)| 6 + k.len() + v.map_or(0, |v| 4 + v.len()))
            .sum()
    }
}

/// `meta` key of the sequence number of the last commit sled's files hold whole (see `wal`).
const KEY_WAL_SEQ: &[u8] = b"wal_seq";

/// The order in which a logged commit's puts reach sled (its removes go in reverse): what
/// a reader finds first (a collection's name, a key's index entry) is put last and removed
/// first. See [`Kv::apply_in_order`].
const PUT_ORDER: [TreeId; 7] = [
    TreeId::Vectors,
    TreeId::Rows,
    TreeId::PkIndex,
    TreeId::Changes,
    TreeId::Collections,
    TreeId::Catalog,
    TreeId::Meta,
];

/// The writes of `ws` in the order a logged commit applies them to sled, which keeps what a
/// concurrent reader sees whole one key at a time: every put in [`PUT_ORDER`], then every
/// remove in the reverse order. So a key's index entry appears after its row, a row after
/// its vector, a collection's catalog name after its schema, and removals go the other way.
fn ordered_writes(ws: &WriteSet) -> impl Iterator<Item = (TreeId, &[u8], Option<&[u8]>)> {
    let puts = PUT_ORDER.into_iter().flat_map(move |tree| {
        ws.trees[tree as usize]
            .iter()
            .filter_map(move |(k, v)| Some((tree, k.as_slice(), Some(v.as_ref()?.as_slice()))))
    });
    let removes = PUT_ORDER.into_iter().rev().flat_map(move |tree| {
        ws.trees[tree as usize]
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(move |(k, _)| (tree, k.as_slice(), None))
    });
    puts.chain(removes)
}

/// The file in a store directory where sled 0.34 keeps its log (`Config::db_path`).
pub(crate) const SLED_LOG_FILE: &str = "db";
/// The directory in a store directory where sled 0.34 writes oversized values
/// (`Config::blob_path`).
pub(crate) const SLED_BLOB_DIR: &str = "blobs";

/// The files of an on-disk store that sled writes but does not make durable itself.
#[derive(Debug)]
struct SledFiles {
    dir: PathBuf,
    /// sled's log; write access because some systems refuse to sync a read-only handle.
    /// Nothing is written through it.
    log: File,
    /// The blob files synced so far, and when `blobs/` must be listed again.
    blobs: parking_lot::Mutex<BlobsSeen>,
}

/// How long after a change of `blobs/` is first seen its listing keeps being redone at each
/// flush: longer than the coarsest timestamp granularity of common file systems (2 s on
/// FAT), so that a file created in the same clock tick as the change, which leaves the
/// directory's mtime as it was, is still listed once.
const BLOBS_SETTLE: Duration = Duration::from_secs(3);

/// What [`SledFiles::sync`] knows of `blobs/`. Listing it costs about 1 ms per 5,000 files,
/// too much for every flush of a store with many blobs, so it is listed only while its
/// mtime may hide a new file:
/// * whenever the mtime differs from the last one seen;
/// * at every flush during [`BLOBS_SETTLE`] after a new mtime is first seen, and at the
///   first flush after that ("settled"). A file created after that listing comes more
///   than the granularity after the change that set this mtime, so it changes the mtime.
///
/// Only intervals of this process's monotonic clock are compared, never the file
/// system's clock with ours (a network file system's may be off).
#[derive(Debug, Default)]
struct BlobsSeen {
    /// Blob files already synced (blobs are written once, then only removed).
    synced: HashSet<OsString>,
    /// The mtime of `blobs/` and when it was first seen.
    mtime: Option<(SystemTime, Instant)>,
    /// A listing was made at least [`BLOBS_SETTLE`] after `mtime` was first seen.
    settled: bool,
}

impl BlobsSeen {
    /// Whether `blobs/`, seen now with `mtime`, must be listed (see the type's docs).
    fn must_list(&mut self, mtime: SystemTime, now: Instant) -> bool {
        match self.mtime {
            Some((m, _)) if m == mtime => !self.settled,
            _ => {
                self.mtime = Some((mtime, now));
                self.settled = false;
                true
            }
        }
    }

    /// Records a listing that started at `now` (after the `must_list` call that asked
    /// for it).
    fn listed(&mut self, now: Instant) {
        if let Some((_, first_seen)) = self.mtime {
            self.settled = now.duration_since(first_seen) >= BLOBS_SETTLE;
        }
    }
}

impl SledFiles {
    fn open(dir: &Path) -> std::io::Result<SledFiles> {
        let log = File::options()
            .read(true)
            .write(true)
            .open(dir.join(SLED_LOG_FILE))?;
        // sled created or opened its log while opening: make its directory entry durable.
        sync_dir(dir)?;
        Ok(SledFiles {
            dir: dir.to_path_buf(),
            log,
            blobs: parking_lot::Mutex::new(BlobsSeen::default()),
        })
    }

    /// Syncs the log, then every blob not synced yet and, if there was one, `blobs/`.
    fn sync(&self) -> std::io::Result<()> {
        self.log.sync_data()?;
        let blobs = self.dir.join(SLED_BLOB_DIR);
        let mtime = match std::fs::metadata(&blobs) {
            Ok(meta) => meta.modified()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut seen = self.blobs.lock();
        let now = Instant::now();
        if !seen.must_list(mtime, now) {
            return Ok(());
        }
        let synced = &mut seen.synced;
        let mut present = HashSet::with_capacity(synced.len());
        let mut new = false;
        for entry in std::fs::read_dir(&blobs)? {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(blobs.join(&name)) {
                    Ok(f) => f.sync_all()?,
                    // sled removed it meanwhile (its segment was cleaned).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            sync_dir(&blobs)?;
            if synced.is_empty() {
                // `blobs/` itself may be new.
                sync_dir(&self.dir)?;
            }
        }
        *synced = present;
        seen.listed(now);
        Ok(())
    }
}

/// Makes the entries of directory `dir` durable (a no-op where directories cannot be
/// opened as files).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Kv {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Synced at every checkpoint (see the module docs); `None` for a temporary store.
    files: Option<Arc<SledFiles>>,
    /// The write-ahead log; `None` for a temporary store.
    wal: Option<Arc<Wal>>,
}

impl std::fmt::Debug for Kv {
    // sled's own `Debug` walks and prints every node of every tree.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("engine", &"sled 0.34")
            .field("trees", &TREE_NAMES)
            .finish()
    }
}

fn engine(e: sled::Error) -> Error {
    Error::Sled(e.to_string())
}

impl Kv {
    /// Opens (or creates) the store in `path`, mapping sled's lock error to
    /// [`Error::Locked`] and unreadable files (or a sled panic) to [`Error::Corrupted`].
    pub(crate) fn open(path: &Path) -> Result<Kv> {
        Self::open_flushing_every(path, Some(500))
    }

    /// [`Kv::open`] with sled's background flush every `ms` milliseconds (`None`: only
    /// when its buffers fill, and at checkpoints).
    fn open_flushing_every(path: &Path, ms: Option<u64>) -> Result<Kv> {
        let config = sled::Config::new().path(path).flush_every_ms(ms);
        let mut kv = Self::open_config(config, path.to_path_buf())?;
        kv.files = Some(Arc::new(SledFiles::open(path)?));
        Ok(kv)
    }

    /// Opens the write-ahead log of an on-disk store (creating it if absent), replays the
    /// records sled's files lack, and checkpoints. Until this runs, the store reads sled's
    /// files as they are and writes nothing to the log; the caller validates them first,
    /// so a database it refuses is left as it was. A no-op for a temporary store.
    pub(crate) fn recover(&mut self) -> Result<()> {
        let Some(files) = &self.files else {
            return Ok(());
        };
        if self.wal.is_some() {
            return Ok(());
        }
        let dir = files.dir.clone();
        let durable_seq = match self.get(TreeId::Meta, KEY_WAL_SEQ)? {
            Some(v) => crate::codec::decode_u64(&v).map_err(|e| Error::Corrupted {
                path: dir.clone(),
                detail: format!("meta.wal_seq: {}", e.0),
            })?,
            None => 0,
        };
        let (wal, replayed) = Wal::open(&dir, durable_seq)?;
        if !replayed.is_empty() {
            tracing::info!(
                records = replayed.len(),
                last = replayed.last().map(|r| r.seq),
                "replaying the write-ahead log"
            );
        }
        for r in &replayed {
            self.apply_in_order(&r.writes)?;
        }
        self.wal = Some(Arc::new(wal));
        // Makes the replay durable in sled and starts a new epoch: the log's old records
        // are never read again.
        self.checkpoint()
    }

    /// A store in a temporary location, deleted when the last handle drops.
    pub(crate) fn temporary() -> Result<Kv> {
        Self::open_config(sled::Config::new().temporary(true), PathBuf::new())
    }

    fn open_config(config: sled::Config, path: PathBuf) -> Result<Kv> {
        let corrupted = |detail: String| Error::Corrupted {
            path: path.clone(),
            detail,
        };
        let opened = catch_unwind(AssertUnwindSafe(|| -> sled::Result<Kv> {
            let db = config.open()?;
            let trees = TREE_NAMES
                .iter()
                .map(|name| db.open_tree(name))
                .collect::<sled::Result<Vec<_>>>()?;
            Ok(Kv {
                db,
                trees,
                files: None,
                wal: None,
            })
        }));
        match opened {
            Ok(Ok(kv)) => Ok(kv),
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                Err(Error::Locked { path })
            }
            Ok(Err(sled::Error::Io(e)))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Err(corrupted(e.to_string()))
            }
            Ok(Err(sled::Error::Io(e))) => Err(Error::Io(e)),
            Ok(Err(e)) => Err(corrupted(e.to_string())),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Err(corrupted(format!(
                    "the storage engine panicked while opening: {msg}"
                )))
            }
        }
    }

    fn tree(&self, tree: TreeId) -> &sled::Tree {
        &self.trees[tree as usize]
    }

    pub(crate) fn get(&self, tree: TreeId, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.tree(tree).get(key).map_err(engine)
    }

    /// All entries whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(
        &self,
        tree: TreeId,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + use<> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|r| r.map_err(engine))
    }

    /// Entries with `start <= key < end`, in key order.
    pub(crate) fn range(
        &self,
        tree: TreeId,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + use<> {
        self.tree(tree)
            .range(start.to_vec()..end.to_vec())
            .map(|r| r.map_err(engine))
    }

    /// Applies `ws`. In an on-disk store: logged, synced, then applied to sled (see the
    /// `wal` module), so it is durable when this returns. In a temporary store: one sled
    /// transaction.
    #[cfg(test)]
    pub(crate) fn commit(&self, ws: &WriteSet) -> Result<()> {
        if ws.is_empty() {
            return Ok(());
        }
        match &self.wal {
            Some(wal) => wal.commit(ws, self).map(drop),
            None => self.apply_atomically(ws, None),
        }
    }

    /// Commits `ws` up to durability: in an on-disk store logged and synced (see the `wal`
    /// module), returning the [`Logged`] commit for [`Kv::apply`] to finish (a bulk write
    /// set is applied here already, and `apply` has nothing left to do); `None` when
    /// nothing is left: an empty set, or a temporary store (one sled transaction here).
    pub(crate) fn log(&self, ws: &WriteSet) -> Result<Option<Logged>> {
        if ws.is_empty() {
            return Ok(None);
        }
        match &self.wal {
            Some(wal) => {
                let logged = wal.log(ws, self)?;
                if logged.is_applied() {
                    // A bulk write set: sled replaced many pages at once.
                    free_deferred_garbage();
                }
                Ok(Some(logged))
            }
            None => self.apply_atomically(ws, None).map(|()| None),
        }
    }

    /// Applies a write set [`Kv::log`] made durable (see `Wal::apply`).
    pub(crate) fn apply(&self, logged: Logged, ws: &WriteSet) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.apply(logged, ws, self).map(drop),
            // Only a log makes `Logged` values.
            None => self.apply_atomically(ws, None),
        }
    }

    /// One sled transaction writing `ws` and, with a log sequence number, `meta.wal_seq`.
    fn apply_atomically(&self, ws: &WriteSet, seq: Option<u64>) -> Result<()> {
        let (trees, mut batches): (Vec<sled::Tree>, Vec<sled::Batch>) = ws
            .trees
            .iter()
            .enumerate()
            .filter(|(i, writes)| {
                !writes.is_empty() || (seq.is_some() && *i == TreeId::Meta as usize)
            })
            .map(|(i, writes)| {
                let mut batch = sled::Batch::default();
                for (k, v) in writes {
                    match v {
                        Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                        None => batch.remove(k.as_slice()),
                    }
                }
                (self.trees[i].clone(), batch)
            })
            .unzip();
        if let Some(seq) = seq {
            // `Meta` is tree 0: its batch, kept above even if `ws` has no write there, is
            // the first.
            batches[0].insert(KEY_WAL_SEQ, &crate::codec::encode_u64(seq)[..]);
        }
        trees[..]
            .transaction(|txs| {
                for (tx, batch) in txs.iter().zip(&batches) {
                    tx.apply_batch(batch)?;
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => Error::Sled("transaction aborted".to_owned()),
                TransactionError::Storage(e) => engine(e),
            })
    }

    /// Applies `ws` with plain inserts and removes (no transaction: see the `wal` module),
    /// in the order of [`ordered_writes`].
    fn apply_in_order(&self, ws: &WriteSet) -> Result<()> {
        for (tree, key, value) in ordered_writes(ws) {
            let t = self.tree(tree);
            match value {
                Some(v) => t.insert(key, v).map(drop),
                None => t.remove(key).map(drop),
            }
            .map_err(engine)?;
        }
        Ok(())
    }

    /// sled's flush, then an `fdatasync` of its log and an `fsync` of its new blob files
    /// (see the module docs); with `seq`, `meta.wal_seq` is written first.
    fn make_sled_durable(&self, seq: Option<u64>) -> Result<()> {
        if let Some(seq) = seq {
            self.tree(TreeId::Meta)
                .insert(KEY_WAL_SEQ, &crate::codec::encode_u64(seq)[..])
                .map_err(engine)?;
        }
        self.db.flush().map_err(engine)?;
        if let Some(files) = &self.files {
            files.sync()?;
        }
        Ok(())
    }

    /// Removes every key starting with `prefix` (not atomic; used to purge dropped data).
    ///
    /// These removals bypass the write-ahead log: the caller must [checkpoint](Kv::checkpoint)
    /// before it commits anything that assumes them durable (a replay of earlier records
    /// could otherwise put keys back after the commit that says they are gone).
    pub(crate) fn remove_prefix(&self, tree: TreeId, prefix: &[u8]) -> Result<usize> {
        let t = self.tree(tree);
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        for item in t.scan_prefix(prefix).keys() {
            batch.remove(item.map_err(engine)?);
            removed += 1;
            if removed % 4096 == 0 {
                t.apply_batch(std::mem::take(&mut batch)).map_err(engine)?;
            }
        }
        t.apply_batch(batch).map_err(engine)?;
        Ok(removed)
    }

    /// The error that stopped the write-ahead log, if it stopped (see `Wal::stop`).
    pub(crate) fn writes_stopped(&self) -> Option<Error> {
        self.wal.as_ref().and_then(|w| w.check_writable().err())
    }

    /// `fdatasync` calls of the write-ahead log made for commits (0 without a log).
    pub(crate) fn log_sync_count(&self) -> u64 {
        self.wal.as_ref().map_or(0, |w| w.sync_count())
    }

    /// Sets the log size that asks for a checkpoint (tests).
    #[cfg(test)]
    pub(crate) fn set_checkpoint_bytes(&self, bytes: u64) {
        if let Some(w) = &self.wal {
            w.set_checkpoint_bytes(bytes);
        }
    }

    /// Whether the write-ahead log has grown past its threshold and wants a checkpoint.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| w.wants_checkpoint())
    }

    /// Makes sled's own files hold every commit so far (sled's flush, then an `fdatasync` of
    /// its log and an `fsync` of its new blob files, see the module docs) and retires the
    /// write-ahead log's records. Commits wait meanwhile.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        match &self.wal {
            Some(wal) => wal.checkpoint(self),
            None => self.make_sled_durable(None),
        }?;
        free_deferred_garbage();
        Ok(())
    }
}

/// How long [`free_deferred_garbage`] keeps collecting, at most.
const GARBAGE_BUDGET: Duration = Duration::from_millis(20);
/// A collection step quicker than this is taken to have freed nothing.
const IDLE_STEP: Duration = Duration::from_micros(2);
/// [`free_deferred_garbage`] stops after this many idle steps in a row.
const IDLE_STEPS: u32 = 8;

/// Runs the frees sled deferred so far, here and now, instead of in the threads that pin
/// the epoch next.
///
/// sled frees the pages and values a write replaced through `crossbeam_epoch`'s global
/// collector, and that collector runs them eight bags of 64 at a time in whatever thread
/// pins an epoch next: the applier, the flusher, and the CPU pool's rayon workers (whose
/// deques use the same collector). After a bulk write set or a checkpoint that is
/// thousands of frees, and without this the small calls that follow paid for them: the
/// demo's async delete burst of 100 after a 1,000-document add spent about 2 ms of its
/// CPU there (docs/BENCHMARKS.md). Called after the log's locks are released; it stops
/// once [`IDLE_STEPS`] collection steps in a row freed nothing (another thread pinned in
/// an older epoch also makes them idle: the rest is then left to the collector as before),
/// or after [`GARBAGE_BUDGET`].
fn free_deferred_garbage() {
    #[cfg(test)]
    tests::GARBAGE_RUNS.with(|runs| runs.set(runs.get() + 1));
    collect_until_idle(crossbeam_epoch::pin);
}

/// Collects through the guards `pin` returns until the collector is idle (see
/// [`free_deferred_garbage`]).
fn collect_until_idle(pin: impl Fn() -> crossbeam_epoch::Guard) {
    let start = Instant::now();
    let mut idle = 0;
    while idle < IDLE_STEPS && start.elapsed() < GARBAGE_BUDGET {
        let step = Instant::now();
        // Pushes this thread's bag, advances the epoch if it can, and frees up to eight
        // expired bags.
        pin().flush();
        if step.elapsed() < IDLE_STEP {
            idle += 1;
        } else {
            idle = 0;
        }
    }
}

impl crate::wal::Store for Kv {
    fn apply_logged(&self, ws: &WriteSet) -> Result<()> {
        self.apply_in_order(ws)
    }

    fn apply_bulk(&self, ws: &WriteSet, seq: u64) -> Result<()> {
        self.apply_atomically(ws, Some(seq))
    }

    fn make_durable(&self, seq: u64) -> Result<()> {
        self.make_sled_durable(Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    thread_local! {
        /// Calls of [`free_deferred_garbage`] on this thread.
        pub(super) static GARBAGE_RUNS: Cell<u64> = const { Cell::new(0) };
    }

    fn garbage_runs() -> u64 {
        GARBAGE_RUNS.with(Cell::get)
    }

    #[test]
    fn collecting_until_idle_runs_every_deferred_free() {
        // A collector of its own, so no other test's guard holds its epoch back.
        let collector = crossbeam_epoch::Collector::new();
        let handle = collector.register();
        let freed = Arc::new(AtomicUsize::new(0));
        // Twenty bags' worth, as sled's frees of a bulk write set would be.
        for _ in 0..20 * 64 {
            let freed = Arc::clone(&freed);
            handle
                .pin()
                .defer(move || freed.fetch_add(1, Ordering::Relaxed));
        }
        assert!(
            freed.load(Ordering::Relaxed) < 20 * 64,
            "the collector ran every free before it was asked to"
        );
        // How many steps it takes depends on timing (a preempted step does not count as
        // idle), so only what it freed is checked.
        collect_until_idle(|| handle.pin());
        assert_eq!(freed.load(Ordering::Relaxed), 20 * 64);
    }

    #[test]
    fn bulk_writes_and_checkpoints_free_sleds_garbage_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let kv = recovered(dir.path());
        let mut small = WriteSet::default();
        small.put(TreeId::Rows, b"small", b"v");
        let before = garbage_runs();
        let logged = kv.log(&small).unwrap().expect("on disk");
        kv.apply(logged, &small).unwrap();
        assert_eq!(
            garbage_runs(),
            before,
            "a logged commit leaves sled's frees alone"
        );
        let mut bulk = WriteSet::default();
        bulk.put(TreeId::Rows, b"big", vec![7u8; crate::wal::BYPASS_BYTES]);
        let logged = kv.log(&bulk).unwrap().expect("on disk");
        assert!(logged.is_applied(), "a bulk write set");
        assert!(
            garbage_runs() > before,
            "the bulk write set left its frees behind"
        );
        let before = garbage_runs();
        kv.checkpoint().unwrap();
        assert!(
            garbage_runs() > before,
            "the checkpoint left its frees behind"
        );
    }

    fn recovered(dir: &Path) -> Kv {
        let mut kv = Kv::open(dir).unwrap();
        kv.recover().unwrap();
        kv
    }

    /// The handle a checkpoint syncs must be sled's log: if sled kept its log elsewhere,
    /// every checkpoint would sync the wrong file, then retire log records whose writes
    /// could die with the power.
    #[test]
    fn checkpoint_syncs_the_file_sled_writes_its_log_to() {
        let dir = tempfile::tempdir().unwrap();
        let kv = recovered(dir.path());
        let files = kv.files.clone().expect("an on-disk store keeps its files");
        let mut ws = WriteSet::default();
        for i in 0..2_000u32 {
            ws.put(TreeId::Rows, i.to_be_bytes(), [7u8; 100]);
        }
        kv.commit(&ws).unwrap();
        kv.checkpoint().unwrap();
        let ours = files.log.metadata().unwrap();
        let on_disk = std::fs::metadata(dir.path().join(SLED_LOG_FILE)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!((ours.dev(), ours.ino()), (on_disk.dev(), on_disk.ino()));
        }
        // The log holds what was just flushed (200 KB of values).
        assert!(ours.len() >= 200_000, "log is {} bytes", ours.len());
        assert_eq!(ours.len(), on_disk.len());
    }

    /// What a crash leaves when sled's own files hold the last checkpoint plus *part* of
    /// the commits after it (sled writes its buffers when it likes): every commit comes
    /// back, whole, each key with its last value, and numbering goes on after the last one.
    #[test]
    fn a_crash_with_sled_partly_behind_the_log_loses_no_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = Kv::open_flushing_every(dir.path(), None).unwrap();
        kv.recover().unwrap();
        for i in 0..300u32 {
            let mut ws = WriteSet::default();
            ws.put(TreeId::Rows, i.to_be_bytes(), [i as u8; 50]);
            if i % 3 == 2 {
                ws.remove(TreeId::Rows, (i - 1).to_be_bytes());
            }
            // Rewritten by every commit, so a stale copy in sled's files shows.
            ws.put(TreeId::Meta, b"count", i.to_be_bytes());
            kv.commit(&ws).unwrap();
            if i == 150 {
                // sled writes what it holds, without a checkpoint.
                kv.db.flush().unwrap();
            }
        }
        // The files as a power cut would leave them (taken while the store is open).
        let crashed = |to: &Path| {
            for name in [SLED_LOG_FILE, "conf", crate::wal::WAL_FILE] {
                std::fs::copy(dir.path().join(name), to.join(name)).unwrap();
            }
        };
        let raw = tempfile::tempdir().unwrap();
        crashed(raw.path());
        let copy = tempfile::tempdir().unwrap();
        crashed(copy.path());
        drop(kv);
        {
            // The precondition: sled's files hold commits after the open's checkpoint, but
            // not all of them.
            let sled_only = sled::Config::new().path(raw.path()).open().unwrap();
            let count = sled_only.open_tree("meta").unwrap().get(b"count").unwrap();
            assert_eq!(count.as_deref(), Some(&150u32.to_be_bytes()[..]));
            let rows = sled_only.open_tree("rows").unwrap();
            assert!(rows.get(299u32.to_be_bytes()).unwrap().is_none());
        }
        let kv = recovered(copy.path());
        for i in 0..300u32 {
            let got = kv.get(TreeId::Rows, i.to_be_bytes()).unwrap();
            let removed = i % 3 == 1 && i < 299;
            assert_eq!(got.is_none(), removed, "row {i}");
            if let Some(v) = got {
                assert_eq!(&v[..], &[i as u8; 50][..]);
            }
        }
        let count = kv.get(TreeId::Meta, b"count").unwrap().unwrap();
        assert_eq!(&count[..], &299u32.to_be_bytes()[..]);
        // The open checkpointed the replay.
        let seq = kv.get(TreeId::Meta, KEY_WAL_SEQ).unwrap().unwrap();
        assert_eq!(crate::codec::decode_u64(&seq).unwrap(), 300);
        let mut ws = WriteSet::default();
        ws.put(TreeId::Rows, b"after", b"x");
        kv.commit(&ws).unwrap();
        kv.checkpoint().unwrap();
        let seq = kv.get(TreeId::Meta, KEY_WAL_SEQ).unwrap().unwrap();
        assert_eq!(crate::codec::decode_u64(&seq).unwrap(), 301);
    }

    /// Every tree has its place in the order a logged commit's writes reach sled.
    #[test]
    fn the_put_order_names_every_tree_once() {
        let mut named: Vec<usize> = PUT_ORDER.iter().map(|&t| t as usize).collect();
        named.sort_unstable();
        assert_eq!(named, (0..TreeId::ALL.len()).collect::<Vec<_>>());
    }

    /// An upsert moving a key from row 1 to row 2, as `write::plan_put` plans it: a reader
    /// that finds the key's index entry finds its row, and one that finds a row finds its
    /// vector (`Collection::get` calls a row without one corruption).
    #[test]
    fn writes_reach_sled_in_an_order_readers_can_follow() {
        let mut ws = WriteSet::default();
        ws.remove(TreeId::Rows, b"r1");
        ws.remove(TreeId::Vectors, b"r1");
        ws.put(TreeId::Rows, b"r2", b"row");
        ws.put(TreeId::Vectors, b"r2", b"vec");
        ws.put(TreeId::PkIndex, b"pk", b"r2");
        ws.put(TreeId::Changes, b"seq", b"moved");
        let order: Vec<(TreeId, &[u8], bool)> = ordered_writes(&ws)
            .map(|(tree, key, value)| (tree, key, value.is_some()))
            .collect();
        assert_eq!(
            order,
            [
                (TreeId::Vectors, &b"r2"[..], true),
                (TreeId::Rows, b"r2", true),
                (TreeId::PkIndex, b"pk", true),
                (TreeId::Changes, b"seq", true),
                (TreeId::Rows, b"r1", false),
                (TreeId::Vectors, b"r1", false),
            ]
        );
    }

    /// A value too large for a log segment goes to a blob file, which sled never syncs:
    /// a checkpoint must find and sync it, once, and forget it when sled removes it.
    #[test]
    fn checkpoint_syncs_new_blob_files() {
        let dir = tempfile::tempdir().unwrap();
        let kv = recovered(dir.path());
        let files = kv.files.clone().unwrap();
        let mut ws = WriteSet::default();
        ws.put(TreeId::Rows, b"big", vec![42u8; 300_000]);
        kv.commit(&ws).unwrap();
        kv.checkpoint().unwrap();
        let on_disk: HashSet<OsString> = std::fs::read_dir(dir.path().join(SLED_BLOB_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!on_disk.is_empty(), "sled wrote no blob for a 300 KB value");
        assert_eq!(files.blobs.lock().synced, on_disk);
        // A blob that disappears is dropped from the set at the next listing (the
        // directory changed just now, so the next flush lists it again).
        let gone = on_disk.iter().next().unwrap().clone();
        let removed = OsString::from("removed-by-sled");
        files.blobs.lock().synced.insert(removed.clone());
        kv.checkpoint().unwrap();
        assert!(!files.blobs.lock().synced.contains(&removed));
        assert!(files.blobs.lock().synced.contains(&gone));
    }

    /// `blobs/` is listed while its mtime may hide a new file, then no more until the
    /// mtime changes.
    #[test]
    fn blobs_are_listed_until_their_directory_settles() {
        let t0 = Instant::now();
        let m1 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let m2 = m1 + Duration::from_millis(1);
        let mut seen = BlobsSeen::default();
        let mut check = |mtime, at: Duration| {
            let now = t0 + at;
            let list = seen.must_list(mtime, now);
            if list {
                seen.listed(now);
            }
            list
        };
        assert!(check(m1, Duration::ZERO), "first sight");
        assert!(
            check(m1, Duration::from_secs(1)),
            "the same tick may hide a file"
        );
        assert!(check(m1, Duration::from_secs(4)), "the settling listing");
        assert!(!check(m1, Duration::from_secs(5)), "settled");
        assert!(!check(m1, Duration::from_secs(60)));
        assert!(check(m2, Duration::from_secs(61)), "a new mtime");
        assert!(check(m2, Duration::from_secs(62)));
        assert!(check(m2, Duration::from_secs(64)));
        assert!(!check(m2, Duration::from_secs(65)));
    }

    #[test]
    fn a_temporary_store_has_no_log_to_sync() {
        let kv = Kv::temporary().unwrap();
        assert!(kv.files.is_none());
        kv.checkpoint().unwrap();
    }
}
