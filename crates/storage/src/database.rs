//! The database handle: one sled store per path per process, and its collection catalog.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::codec::{self, CollectionId, DecodeError, VALUE_VERSION};
use crate::collection::{CollInner, Collection};
use crate::error::{Error, Result};
use crate::group_commit::GroupCommit;
use crate::kv::{Kv, TreeId, WriteSet};
use crate::schema::{validate_name, CollectionConfig, CollectionState, FORMAT_VERSION};
use crate::wal::Logged;

/// Every database open in this process, by canonical path. Entries whose database was dropped
/// are dead `Weak`s, cleaned up by the next `open`.
static REGISTRY: Mutex<BTreeMap<PathBuf, Weak<DbInner>>> =
    parking_lot::const_mutex(BTreeMap::new());

/// How long `open` keeps retrying the file lock while this process is still closing the same
/// database (its last handle was dropped, sled is shutting down).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

const KEY_FORMAT: &[u8] = b"format_version";

/// A file beside sled's, written by QuiverDB: it tells a directory that holds (or held) a
/// database from an empty one or a foreign one, which sled alone cannot — an emptied log
/// would otherwise open as a fresh, empty database.
const MARKER: &str = "QUIVERDB";
/// Marker content while a new database is being created (no user data can exist yet).
const MARKER_CREATING: &[u8] = b"quiverdb database: creating\n";
/// Marker content once the database exists.
const MARKER_READY: &[u8] = b"quiverdb database: format 1\n";
const KEY_NEXT_COLLECTION: &[u8] = b"next_collection_id";
const KEY_DROPPED: &[u8] = b"dropped/";

/// A QuiverDB database: a directory holding any number of collections.
///
/// Cheap to clone (`Arc` inside), `Send + Sync`. Opening the same path twice in one process
/// returns the same database; another process gets [`Error::Locked`].
#[derive(Clone, Debug)]
pub struct Database {
    inner: Arc<DbInner>,
}

#[derive(Debug)]
pub(crate) struct DbInner {
    // Field order matters: the flusher thread stops (after its last jobs) before the store
    // is dropped.
    pub(crate) group: GroupCommit,
    pub(crate) kv: Kv,
    path: Option<PathBuf>,
    /// Open collection handles by name; also serializes catalog changes.
    collections: Mutex<HashMap<String, Weak<CollInner>>>,
}

impl DbInner {
    pub(crate) fn corrupted(&self, detail: impl std::fmt::Display) -> Error {
        Error::Corrupted {
            path: self.path.clone().unwrap_or_default(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn decoded<T>(&self, r: std::result::Result<T, DecodeError>) -> Result<T> {
        r.map_err(|DecodeError(d)| self.corrupted(d))
    }

    /// Commits `ws`: durable when it returns (see `kv`). When the write-ahead log has grown
    /// past its threshold, asks the flusher thread for a checkpoint, so no writer's call
    /// runs a whole sled flush itself.
    pub(crate) fn commit(&self, ws: &WriteSet) -> Result<()> {
        match self.log(ws)? {
            Some(logged) => self.apply(logged, ws),
            None => Ok(()),
        }
    }

    /// The first half of [`DbInner::commit`]: `ws` is durable when it returns `Ok`; `Some`
    /// when sled has yet to see it, through [`DbInner::apply`] (see [`Kv::log`]).
    pub(crate) fn log(&self, ws: &WriteSet) -> Result<Option<Logged>> {
        let logged = self.kv.log(ws)?;
        self.group.committed_one();
        if self.kv.wants_checkpoint() {
            self.group.request_checkpoint();
        }
        Ok(logged)
    }

    /// Applies a logged write set to sled (see [`Kv::apply`]).
    pub(crate) fn apply(&self, logged: Logged, ws: &WriteSet) -> Result<()> {
        self.kv.apply(logged, ws)
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        if let Err(e) = self.kv.checkpoint() {
            tracing::error!(error = %e, "final checkpoint of the database failed");
        }
    }
}

/// Refuses a `meta.format_version` record other than this build's.
fn check_format(value: &[u8], path: Option<&Path>) -> Result<()> {
    let corrupted = |detail: String| Error::Corrupted {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        detail,
    };
    let version = codec::decode_u64(value).map_err(|DecodeError(d)| corrupted(d))?;
    if version != u64::from(FORMAT_VERSION) {
        return Err(corrupted(format!(
            "format version {version}, this build reads {FORMAT_VERSION}"
        )));
    }
    Ok(())
}

/// Replaces the marker atomically (temp file, fsync, rename, fsync the directory).
fn write_marker(dir: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".{MARKER}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(MARKER))?;
    crate::kv::sync_dir(dir)?;
    Ok(())
}

fn dropped_key(cid: CollectionId) -> Vec<u8> {
    [KEY_DROPPED, &cid.prefix()].concat()
}

impl Database {
    /// Opens the database in `path`, creating the directory if it is missing.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process has it open, [`Error::Corrupted`] when the files
    /// are not a readable QuiverDB database, [`Error::Io`] for other IO failures.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        let canonical = path.canonicalize()?;
        let mut registry = REGISTRY.lock();
        let closing = match registry.get(&canonical) {
            Some(weak) => match weak.upgrade() {
                Some(inner) => return Ok(Database { inner }),
                None => true,
            },
            None => false,
        };
        registry.retain(|_, w| w.strong_count() > 0);
        let had_data = std::fs::metadata(canonical.join("db")).is_ok_and(|m| m.len() > 0);
        let marker_path = canonical.join(MARKER);
        let marker = match std::fs::read(&marker_path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let expect_database = match &marker {
            // Refused before sled opens (and rewrites) anything.
            None if had_data => {
                return Err(Error::Corrupted {
                    path: canonical,
                    detail: format!(
                        "the directory holds a `db` file but no {MARKER} marker: \
                         not a QuiverDB database"
                    ),
                })
            }
            None => {
                write_marker(&canonical, MARKER_CREATING)?;
                false
            }
            Some(m) => m.as_slice() != MARKER_CREATING,
        };
        if expect_database && !had_data {
            return Err(Error::Corrupted {
                path: canonical,
                detail: "the database's log (`db`) is empty or missing: its files were \
                         emptied or deleted"
                    .to_owned(),
            });
        }
        let started = Instant::now();
        let kv = loop {
            match Kv::open(&canonical) {
                Err(Error::Locked { .. }) if closing && started.elapsed() < CLOSE_GRACE => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        // Only a finished creation (marker past "creating") promises a format record: sled
        // writes its own files before ours is committed, so a creation killed in between
        // leaves a non-empty log without one, and is simply finished now.
        let inner = Self::start(kv, Some(canonical.clone()), expect_database)?;
        if marker.as_deref() != Some(MARKER_READY) {
            write_marker(&canonical, MARKER_READY)?;
        }
        registry.insert(canonical, Arc::downgrade(&inner));
        tracing::debug!(path = ?inner.path, "opened database");
        Ok(Database { inner })
    }

    /// A database in a temporary location, removed when its last handle drops. For tests.
    pub fn temporary() -> Result<Database> {
        let inner = Self::start(Kv::temporary()?, None, false)?;
        Ok(Database { inner })
    }

    fn start(mut kv: Kv, path: Option<PathBuf>, had_data: bool) -> Result<Arc<DbInner>> {
        // A format this build does not read is refused before the write-ahead log is
        // replayed (or created), so the files are left as they were.
        if let Some(v) = kv.get(TreeId::Meta, KEY_FORMAT)? {
            check_format(&v, path.as_deref())?;
        }
        kv.recover()?;
        let inner = Arc::new(DbInner {
            group: GroupCommit::start(kv.clone())?,
            kv,
            path,
            collections: Mutex::new(HashMap::new()),
        });
        match inner.kv.get(TreeId::Meta, KEY_FORMAT)? {
            Some(v) => check_format(&v, inner.path.as_deref())?,
            None if had_data => {
                return Err(inner.corrupted(
                    "the database holds no QuiverDB format record: its files were emptied, \
                     truncated or replaced",
                ));
            }
            None => {
                let mut ws = WriteSet::default();
                ws.put(
                    TreeId::Meta,
                    KEY_FORMAT,
                    codec::encode_u64(FORMAT_VERSION.into()),
                );
                inner.commit(&ws)?;
                // In sled's own files before the marker says "ready" (see `open`): an open
                // checks the record there before it replays the log.
                inner.kv.checkpoint()?;
            }
        }
        // Finish purging collections dropped before a crash.
        let pending: Vec<_> = inner
            .kv
            .scan_prefix(TreeId::Meta, KEY_DROPPED)
            .collect::<Result<_>>()?;
        for (key, _) in pending {
            let raw: [u8; 4] = key[KEY_DROPPED.len()..]
                .try_into()
                .map_err(|_| inner.corrupted("malformed dropped-collection key"))?;
            purge(&inner, CollectionId(u32::from_be_bytes(raw)))?;
        }
        Ok(inner)
    }

    /// The database directory (canonical), or `None` for a temporary database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn lookup(&self, name: &str) -> Result<Option<CollectionId>> {
        self.inner
            .kv
            .get(TreeId::Catalog, name.as_bytes())?
            .map(|v| {
                let id = self.inner.decoded(codec::decode_u64(&v))?;
                u32::try_from(id).map(CollectionId).map_err(|_| {
                    self.inner
                        .corrupted(format!("collection id {id} out of range"))
                })
            })
            .transpose()
    }

    /// Creates a collection. With `config.drop_old`, an existing one is dropped first.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::CollectionExists`], [`Error::InvalidConfig`].
    pub fn create_collection(&self, name: &str, config: CollectionConfig) -> Result<Collection> {
        validate_name(name)?;
        if config.dimension == Some(0) {
            return Err(Error::InvalidConfig {
                reason: "dimension must be at least 1".to_owned(),
            });
        }
        let mut open = self.inner.collections.lock();
        if let Some(cid) = self.lookup(name)? {
            if !config.drop_old {
                return Err(Error::CollectionExists {
                    name: name.to_owned(),
                });
            }
            self.drop_locked(&mut open, name, cid)?;
        }
        let next = match self.inner.kv.get(TreeId::Meta, KEY_NEXT_COLLECTION)? {
            Some(v) => self.inner.decoded(codec::decode_u64(&v))?,
            None => 1,
        };
        let cid = u32::try_from(next)
            .map(CollectionId)
            .map_err(|_| Error::InvalidConfig {
                reason: "collection ids are exhausted".to_owned(),
            })?;
        let state = CollectionState::new(cid, name, &config);
        let mut ws = WriteSet::default();
        ws.put(TreeId::Catalog, name.as_bytes(), codec::encode_u64(next));
        ws.put(
            TreeId::Collections,
            cid.prefix(),
            codec::encode_serde(&state)?,
        );
        ws.put(
            TreeId::Meta,
            KEY_NEXT_COLLECTION,
            codec::encode_u64(next + 1),
        );
        self.inner.commit(&ws)?;
        tracing::debug!(name, id = cid.0, "created collection");
        let coll = CollInner::new(Arc::clone(&self.inner), state, 0);
        open.insert(name.to_owned(), Arc::downgrade(&coll));
        Ok(Collection::from_inner(coll))
    }

    /// Opens an existing collection.
    ///
    /// # Errors
    /// [`Error::UnknownCollection`] when it does not exist.
    pub fn open_collection(&self, name: &str) -> Result<Collection> {
        let mut open = self.inner.collections.lock();
        if let Some(coll) = open.get(name).and_then(Weak::upgrade) {
            return Ok(Collection::from_inner(coll));
        }
        let unknown = || Error::UnknownCollection {
            name: name.to_owned(),
        };
        let cid = self.lookup(name)?.ok_or_else(unknown)?;
        let raw = self
            .inner
            .kv
            .get(TreeId::Collections, cid.prefix())?
            .ok_or_else(|| {
                self.inner
                    .corrupted(format!("collection {name:?} has no schema"))
            })?;
        let state: CollectionState = self.inner.decoded(codec::decode_serde(&raw))?;
        if state.id != cid || state.name != name {
            return Err(self.inner.corrupted(format!(
                "catalog entry {name:?} points at collection {:?} (id {})",
                state.name, state.id.0
            )));
        }
        let pruned_upto = match self.inner.kv.get(TreeId::Meta, codec::pruned_key(cid))? {
            Some(v) => self.inner.decoded(codec::decode_u64(&v))?,
            None => 0, // never pruned (or written before pruning existed)
        };
        let coll = CollInner::new(Arc::clone(&self.inner), state, pruned_upto);
        open.insert(name.to_owned(), Arc::downgrade(&coll));
        Ok(Collection::from_inner(coll))
    }

    /// Whether a collection of that name exists.
    pub fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(self.lookup(name)?.is_some())
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        let mut names = self
            .inner
            .kv
            .scan_prefix(TreeId::Catalog, &[])
            .map(|kv| {
                let (k, _) = kv?;
                String::from_utf8(k.to_vec())
                    .map_err(|_| self.inner.corrupted("catalog name is not UTF-8"))
            })
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    /// Drops a collection and all its records; `false` if it did not exist. Handles still
    /// held on it return [`Error::UnknownCollection`] from then on.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        let mut open = self.inner.collections.lock();
        match self.lookup(name)? {
            Some(cid) => {
                self.drop_locked(&mut open, name, cid)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn drop_locked(
        &self,
        open: &mut HashMap<String, Weak<CollInner>>,
        name: &str,
        cid: CollectionId,
    ) -> Result<()> {
        let live = open.remove(name).and_then(|w| w.upgrade());
        // Holding the handle's state lock waits for an in-flight write and keeps new ones out.
        let guard = live.as_ref().map(|c| c.state.lock());
        // ... and for its commits still on their way to sled, which the purge must follow.
        if let Some(c) = &live {
            c.wait_applied();
        }
        let mut ws = WriteSet::default();
        ws.remove(TreeId::Catalog, name.as_bytes());
        ws.remove(TreeId::Collections, cid.prefix());
        ws.put(TreeId::Meta, dropped_key(cid), [VALUE_VERSION]);
        self.inner.commit(&ws)?;
        if let Some(c) = &live {
            c.dropped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        drop(guard);
        purge(&self.inner, cid)?;
        tracing::debug!(name, id = cid.0, "dropped collection");
        Ok(())
    }

    /// Makes sled's own files hold every write (a checkpoint), so the next open has nothing
    /// to replay. Writes are durable when they return `Ok` anyway (in the write-ahead log);
    /// this only saves reopen time.
    pub fn flush(&self) -> Result<()> {
        self.inner.kv.checkpoint()
    }

    /// How many checkpoints the flusher thread has run since the database was opened (one
    /// each time the write-ahead log passed its threshold; for tests and benchmarks).
    pub fn checkpoint_count(&self) -> u64 {
        self.inner.group.checkpoints()
    }

    /// How many commits have been made since the database was opened (writes, catalog
    /// changes and change-log prunes; combined batches count once; for tests and benchmarks).
    pub fn commit_count(&self) -> u64 {
        self.inner.group.committed()
    }

    /// How many `fdatasync` calls of the write-ahead log commits have made since the
    /// database was opened: concurrent commits share them (for tests and benchmarks; 0 for
    /// a temporary database, which has no log).
    pub fn log_sync_count(&self) -> u64 {
        self.inner.kv.log_sync_count()
    }
}

/// Deletes every record, key and change of a dropped collection, then its change-log
/// watermark and its `dropped/` marker.
fn purge(inner: &DbInner, cid: CollectionId) -> Result<()> {
    for tree in [
        TreeId::Rows,
        TreeId::Vectors,
        TreeId::PkIndex,
        TreeId::Changes,
    ] {
        inner.kv.remove_prefix(tree, &cid.prefix())?;
    }
    // Durable before the marker goes: otherwise, after a crash, the replay of the
    // collection's last writes could bring rows back with no marker left to purge them.
    inner.kv.checkpoint()?;
    let mut ws = WriteSet::default();
    ws.remove(TreeId::Meta, codec::pruned_key(cid));
    ws.remove(TreeId::Meta, dropped_key(cid));
    inner.commit(&ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits never run a checkpoint themselves: one that finds the log past its threshold
    /// asks the flusher thread, which runs it; the log then starts over, and everything is
    /// still there after a reopen.
    #[test]
    fn a_log_past_its_threshold_is_checkpointed_by_the_flusher() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            db.inner.kv.set_checkpoint_bytes(4_096);
            let config = crate::CollectionConfig {
                pk_kind: crate::PkKind::AutoInt,
                ..crate::CollectionConfig::default()
            };
            let c = db.create_collection("c", config).unwrap();
            for i in 0..200u32 {
                c.insert(vec![crate::NewRecord {
                    pk: None,
                    text: format!("record {i} with some text to fill the log"),
                    metadata: crate::Metadata::new(),
                    vector: vec![i as f32, 1.0, 2.0, 3.0],
                }])
                .unwrap();
            }
            let t = std::time::Instant::now();
            while db.checkpoint_count() == 0 {
                assert!(t.elapsed().as_secs() < 30, "no checkpoint ran");
                std::thread::yield_now();
            }
            assert!(db.checkpoint_count() < 200, "{}", db.checkpoint_count());
        }
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(db.open_collection("c").unwrap().count().unwrap(), 200);
    }

    /// Every commit goes through `DbInner::commit`, a change-log prune too: one made while
    /// the log is past its threshold asks for the checkpoint like any write.
    #[test]
    fn a_prune_past_the_threshold_asks_for_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let config = crate::CollectionConfig {
            pk_kind: crate::PkKind::AutoInt,
            ..crate::CollectionConfig::default()
        };
        let c = db.create_collection("c", config).unwrap();
        for i in 0..50u32 {
            c.insert(vec![crate::NewRecord {
                pk: None,
                text: format!("record {i}"),
                metadata: crate::Metadata::new(),
                vector: vec![i as f32, 1.0],
            }])
            .unwrap();
        }
        // Past the threshold now, with no write after it asking yet.
        db.inner.kv.set_checkpoint_bytes(HEADER_BYTES_FOR_TESTS);
        let before = db.checkpoint_count();
        assert_eq!(c.prune_changes(c.last_seq()).unwrap(), 50);
        let t = std::time::Instant::now();
        while db.checkpoint_count() == before {
            assert!(
                t.elapsed().as_secs() < 30,
                "the prune asked for no checkpoint"
            );
            std::thread::yield_now();
        }
    }

    /// A threshold every log passes once it holds a record.
    const HEADER_BYTES_FOR_TESTS: u64 = 64;

    /// A creation killed after sled wrote its files but before the format record was
    /// committed (the marker still says "creating") is finished on the next open, not
    /// reported as corrupted.
    #[test]
    fn an_interrupted_creation_is_finished_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        write_marker(dir.path(), MARKER_CREATING).unwrap();
        {
            let kv = Kv::open(dir.path()).unwrap();
            let mut ws = WriteSet::default();
            ws.put(TreeId::Meta, b"zz-unrelated", b"x");
            kv.commit(&ws).unwrap();
            kv.checkpoint().unwrap();
        }
        assert!(
            std::fs::metadata(dir.path().join("db")).unwrap().len() > 0,
            "the precondition: sled's log is not empty"
        );
        let db = Database::open(dir.path()).unwrap();
        assert!(db.list_collections().unwrap().is_empty());
        drop(db);
        assert_eq!(
            std::fs::read(dir.path().join(MARKER)).unwrap(),
            MARKER_READY
        );
        // A finished database without its format record is still refused.
        let dir2 = tempfile::tempdir().unwrap();
        write_marker(dir2.path(), MARKER_READY).unwrap();
        {
            let kv = Kv::open(dir2.path()).unwrap();
            let mut ws = WriteSet::default();
            ws.put(TreeId::Meta, b"zz-unrelated", b"x");
            kv.commit(&ws).unwrap();
            kv.checkpoint().unwrap();
        }
        assert!(matches!(
            Database::open(dir2.path()),
            Err(Error::Corrupted { .. })
        ));
    }
}
