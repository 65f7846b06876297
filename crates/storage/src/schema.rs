//! Collection configuration, the persisted schema, and name rules.

use quiverdb_types::{Metric, PkKind};
use serde::{Deserialize, Serialize};

use crate::codec::CollectionId;
use crate::error::{Error, Result};

/// The on-disk format version recorded in every schema and in the database's `meta` tree.
pub const FORMAT_VERSION: u32 = 1;

/// Longest collection name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Vector-index parameters, stored with the schema for the index crate to read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexParams {
    /// Index engine name (`"native"` by default).
    pub engine: String,
    /// HNSW links per node.
    pub m: usize,
    /// HNSW build-time candidate list size.
    pub ef_construction: usize,
    /// HNSW search-time candidate list size.
    pub ef_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams {
            engine: "native".to_owned(),
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

/// What `Database::create_collection` is asked to create.
#[derive(Clone, Debug)]
pub struct CollectionConfig {
    /// Vector dimension; `None` fixes it from the first vector written.
    pub dimension: Option<usize>,
    /// Distance metric; `Cosine` collections store unit-length vectors.
    pub metric: Metric,
    /// What primary keys the collection accepts.
    pub pk_kind: PkKind,
    /// Vector-index parameters (stored, not interpreted here).
    pub index: IndexParams,
    /// Drop an existing collection of the same name instead of failing.
    pub drop_old: bool,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            dimension: None,
            metric: Metric::L2,
            pk_kind: PkKind::Str,
            index: IndexParams::default(),
            drop_old: false,
        }
    }
}

/// A collection's persisted schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// The collection name.
    pub name: String,
    /// Vector dimension; `None` until the first vector is written.
    pub dimension: Option<usize>,
    /// Distance metric.
    pub metric: Metric,
    /// Primary-key kind.
    pub pk_kind: PkKind,
    /// Vector-index parameters.
    pub index: IndexParams,
    /// On-disk format version the collection was written with.
    pub format_version: u32,
}

/// The persisted state of one collection: its schema plus its counters.
///
/// # Invariants
/// `next_row` is greater than every row id ever handed out, `last_seq` is the sequence number
/// of the last committed batch, `live` is the number of stored records, and for `AutoInt`
/// collections `next_auto_pk` is greater than every integer key ever stored. All of these are
/// rewritten in the same transaction as the batch that changes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CollectionState {
    pub(crate) id: CollectionId,
    pub(crate) name: String,
    pub(crate) dimension: Option<u64>,
    pub(crate) metric: Metric,
    pub(crate) pk_kind: PkKind,
    pub(crate) index: IndexParams,
    pub(crate) format_version: u32,
    pub(crate) next_row: u64,
    pub(crate) next_auto_pk: i64,
    pub(crate) last_seq: u64,
    pub(crate) live: u64,
}

impl CollectionState {
    pub(crate) fn new(id: CollectionId, name: &str, config: &CollectionConfig) -> Self {
        CollectionState {
            id,
            name: name.to_owned(),
            dimension: config.dimension.map(|d| d as u64),
            metric: config.metric,
            pk_kind: config.pk_kind,
            index: config.index.clone(),
            format_version: FORMAT_VERSION,
            next_row: 1,
            next_auto_pk: 1,
            last_seq: 0,
            live: 0,
        }
    }

    pub(crate) fn schema(&self) -> Schema {
        Schema {
            name: self.name.clone(),
            dimension: self.dimension.map(|d| d as usize),
            metric: self.metric,
            pk_kind: self.pk_kind,
            index: self.index.clone(),
            format_version: self.format_version,
        }
    }
}

/// Checks `[A-Za-z_][A-Za-z0-9_]*`, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("the name is empty".to_owned()));
    };
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "the name is {} bytes long, at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(invalid(format!(
            "the name must start with a letter or '_', not {first:?}"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(invalid(format!(
            "the name may contain only ASCII letters, digits and '_', not {bad:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_identifier_rule() {
        for ok in ["a", "_", "Docs_2", "x".repeat(255).as_str()] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "a-b", "a b", "é", "x".repeat(256).as_str()] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_defaults_match_the_contract() {
        let c = CollectionConfig::default();
        assert_eq!(c.dimension, None);
        assert_eq!(c.metric, Metric::L2);
        assert_eq!(c.pk_kind, PkKind::Str);
        assert!(!c.drop_old);
        assert_eq!(
            c.index,
            IndexParams {
                engine: "native".into(),
                m: 16,
                ef_construction: 200,
                ef_search: 64
            }
        );
    }
}
