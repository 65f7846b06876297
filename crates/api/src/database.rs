use std::path::Path;

use crate::store::remove_snapshot;
use crate::{Result, StoreBuilder};

/// A QuiverDB database directory: the collection life cycle (list, exists, drop) and a
/// builder for stores on its collections.
///
/// Opening the same path twice in one process shares one database; another process
/// gets [`crate::Error::Locked`].
#[derive(Clone, Debug)]
pub struct Database {
    db: quiverdb_storage::Database,
    path: std::path::PathBuf,
}

impl Database {
    /// Opens (creating if missing) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        let path = path.as_ref().to_path_buf();
        Ok(Database {
            db: quiverdb_storage::Database::open(&path)?,
            path,
        })
    }

    /// The collections, sorted by name.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        Ok(self.db.list_collections()?)
    }

    /// A collection's schema, record count, last sequence number and snapshot time, read
    /// from storage alone: its rows and its index are not loaded, so this is fast at any
    /// size (`quiver collections` lists with it). `index_stats` is `None`; the index
    /// counters need the loaded index ([`crate::VectorStore::describe`]).
    ///
    /// # Errors
    /// [`crate::Error::UnknownCollection`] when it does not exist.
    pub fn collection_info(&self, name: &str) -> Result<crate::CollectionInfo> {
        let coll = self.db.open_collection(name)?;
        crate::store::stored_info(&self.db, &coll)
    }

    /// Whether a collection exists.
    pub fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(self.db.has_collection(name)?)
    }

    /// Drops a collection and its index snapshot; returns whether it existed. Stores open
    /// on it see an empty collection afterwards.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        let existed = self.db.drop_collection(name)?;
        remove_snapshot(&self.db, name);
        Ok(existed)
    }

    /// Creates a collection up front (stores otherwise create theirs on the first write).
    /// `dimension: None` fixes it from the first vector.
    pub fn create_collection(
        &self,
        name: &str,
        dimension: Option<usize>,
        metric: quiverdb_types::Metric,
        auto_id: bool,
        index: crate::IndexOptions,
        drop_old: bool,
    ) -> Result<()> {
        crate::store::validate_index_options(&index, dimension.unwrap_or(1), metric)?;
        if drop_old {
            remove_snapshot(&self.db, name);
        }
        self.db.create_collection(
            name,
            quiverdb_storage::CollectionConfig {
                dimension,
                metric,
                pk_kind: if auto_id {
                    quiverdb_types::PkKind::AutoInt
                } else {
                    quiverdb_types::PkKind::Str
                },
                index: crate::store::index_params(&index),
                drop_old,
            },
        )?;
        Ok(())
    }

    /// A store builder on collection `name` of this database.
    pub fn store(&self, name: &str) -> StoreBuilder {
        StoreBuilder::default()
            .path(self.path.clone())
            .collection_name(name)
    }
}
