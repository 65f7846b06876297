//! The key-value engine behind storage: sled 0.34, wrapped so nothing else touches it.
//!
//! Everything sled-specific (opening, error mapping, cross-tree transactions, flushing,
//! prefix scans) lives here, so swapping the engine (e.g. for redb) stays local to this file.
//! Values handed out are [`Bytes`], which callers only use as `&[u8]`.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use sled::transaction::{TransactionError, Transactional};

use crate::error::{Error, Result};

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
}

/// A handle on the open store; cheap to clone.
#[derive(Clone)]
pub(crate) struct Kv {
    db: sled::Db,
    trees: Vec<sled::Tree>,
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
        let config = sled::Config::new().path(path).flush_every_ms(Some(500));
        Self::open_config(config, path.to_path_buf())
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
            Ok(Kv { db, trees })
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

    /// Applies `ws` atomically: one transaction over every tree it touches.
    pub(crate) fn commit(&self, ws: &WriteSet) -> Result<()> {
        if ws.is_empty() {
            return Ok(());
        }
        let (trees, batches): (Vec<sled::Tree>, Vec<sled::Batch>) = ws
            .trees
            .iter()
            .enumerate()
            .filter(|(_, writes)| !writes.is_empty())
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

    /// Removes every key starting with `prefix` (not atomic; used to purge dropped data).
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

    /// Makes every write before this call durable (fsync).
    pub(crate) fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(engine)
    }
}
