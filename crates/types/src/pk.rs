use std::fmt;

use serde::{Deserialize, Serialize};

/// A record's primary key, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Pk {
    /// An integer key: auto ids, or caller-supplied `i64` keys.
    Int(i64),
    /// A caller-supplied string key.
    Str(String),
}

impl Pk {
    /// The kind of key this is (`Int` keys report [`PkKind::Int`]).
    pub fn kind(&self) -> PkKind {
        match self {
            Pk::Int(_) => PkKind::Int,
            Pk::Str(_) => PkKind::Str,
        }
    }

    /// The key as a string, the way the LangChain store returns ids (`"42"`, `"doc_1"`).
    pub fn to_id_string(&self) -> String {
        match self {
            Pk::Int(i) => i.to_string(),
            Pk::Str(s) => s.clone(),
        }
    }
}

impl fmt::Display for Pk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pk::Int(i) => write!(f, "{i}"),
            Pk::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for Pk {
    fn from(v: i64) -> Self {
        Pk::Int(v)
    }
}

impl From<&str> for Pk {
    fn from(v: &str) -> Self {
        Pk::Str(v.to_owned())
    }
}

impl From<String> for Pk {
    fn from(v: String) -> Self {
        Pk::Str(v)
    }
}

/// What primary keys a collection accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PkKind {
    /// The store assigns monotonic `i64` ids, never reused.
    AutoInt,
    /// The caller supplies `i64` ids.
    Int,
    /// The caller supplies string ids (the LangChain–Milvus default, VARCHAR pk).
    Str,
}

impl PkKind {
    /// Whether a key of kind `pk` may be stored in a collection of this kind.
    pub fn accepts(self, pk: &Pk) -> bool {
        matches!(
            (self, pk),
            (PkKind::AutoInt | PkKind::Int, Pk::Int(_)) | (PkKind::Str, Pk::Str(_))
        )
    }
}

impl fmt::Display for PkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PkKind::AutoInt => "auto int64",
            PkKind::Int => "int64",
            PkKind::Str => "string",
        })
    }
}

/// The internal id of one version of a record.
///
/// # Invariants
/// Handed out by storage, strictly increasing within a collection, never reused — not after
/// a delete, an upsert, or a reopen. The vector index is keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowId(pub u64);

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
