//! The in-memory view of a collection's rows that filters are evaluated against.
//!
//! Storage is the source of truth; this map is rebuilt from it on open and kept in step
//! with it by [`crate::live::LiveCollection`]'s applier (in storage sequence order).

use std::collections::HashMap;
use std::sync::Arc;

use quiverdb_filter::{Filter, Row};
use quiverdb_types::{Metadata, Pk, RowId, Value};

use crate::Document;

/// What a search returns for one row, without its vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowData {
    pub pk: Pk,
    pub text: String,
    pub metadata: Metadata,
}

impl Row for RowData {
    fn pk(&self) -> &Pk {
        &self.pk
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}

impl RowData {
    /// The LangChain document of this row: pk in `id` and in `metadata[pk_field]`.
    pub fn to_document(&self, pk_field: &str, fields: Option<&[String]>) -> Document {
        let mut metadata = match fields {
            None => self.metadata.clone(),
            Some(keep) => self
                .metadata
                .iter()
                .filter(|(k, _)| keep.iter().any(|f| f == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let pk_value = match &self.pk {
            Pk::Int(i) => Value::Int(*i),
            Pk::Str(s) => Value::Str(s.clone()),
        };
        metadata.insert(pk_field.to_owned(), pk_value);
        Document {
            id: Some(self.pk.to_id_string()),
            page_content: self.text.clone(),
            metadata,
        }
    }
}

/// Live rows by row id and by primary key.
///
/// # Invariants
/// `by_pk[p] == r` iff `by_row[r].pk == p`; both maps hold exactly the live rows.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    by_row: HashMap<RowId, Arc<RowData>>,
    by_pk: HashMap<Pk, RowId>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.by_row.len()
    }

    /// Adds a row; a row id already present is left alone (idempotent replays).
    pub fn insert(&mut self, row: RowId, data: Arc<RowData>) -> bool {
        if self.by_row.contains_key(&row) {
            return false;
        }
        if let Some(old) = self.by_pk.insert(data.pk.clone(), row) {
            // A newer version replaces an older one that was not removed explicitly.
            self.by_row.remove(&old);
        }
        self.by_row.insert(row, data);
        true
    }

    /// Removes a row if it is live; returns whether it was.
    pub fn remove(&mut self, row: RowId) -> bool {
        match self.by_row.remove(&row) {
            Some(data) => {
                if self.by_pk.get(&data.pk) == Some(&row) {
                    self.by_pk.remove(&data.pk);
                }
                true
            }
            None => false,
        }
    }

    pub fn get(&self, row: RowId) -> Option<&Arc<RowData>> {
        self.by_row.get(&row)
    }

    pub fn row_of(&self, pk: &Pk) -> Option<RowId> {
        self.by_pk.get(pk).copied()
    }

    pub fn row_ids(&self) -> impl Iterator<Item = RowId> + '_ {
        self.by_row.keys().copied()
    }

    /// Row ids whose rows match `filter`, using the pk map when the filter names pks.
    pub fn matching(&self, filter: &Filter) -> Vec<RowId> {
        if let Some(pks) = filter.pk_candidates() {
            let mut out: Vec<RowId> = pks
                .iter()
                .filter_map(|pk| self.by_pk.get(pk))
                .filter(|r| filter.matches(self.by_row[*r].as_ref()))
                .copied()
                .collect();
            out.sort_unstable();
            out.dedup();
            return out;
        }
        self.by_row
            .iter()
            .filter(|(_, d)| filter.matches(d.as_ref()))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Matching rows in primary-key order (deterministic output for queries).
    pub fn matching_sorted(&self, filter: &Filter) -> Vec<Arc<RowData>> {
        let mut rows: Vec<Arc<RowData>> = self
            .matching(filter)
            .into_iter()
            .map(|r| self.by_row[&r].clone())
            .collect();
        rows.sort_by(|a, b| a.pk.cmp(&b.pk));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pk: i64) -> Arc<RowData> {
        Arc::new(RowData {
            pk: Pk::Int(pk),
            text: format!("t{pk}"),
            metadata: Metadata::new(),
        })
    }

    #[test]
    fn maps_stay_in_step_under_replays_and_replacements() {
        let mut rows = Rows::default();
        assert!(rows.insert(RowId(1), data(7)));
        assert!(!rows.insert(RowId(1), data(7)), "replay is a no-op");
        assert!(rows.insert(RowId(2), data(7)), "new version of pk 7");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows.row_of(&Pk::Int(7)), Some(RowId(2)));
        assert!(!rows.remove(RowId(1)), "old version already gone");
        assert!(rows.remove(RowId(2)));
        assert_eq!(rows.row_of(&Pk::Int(7)), None);
        assert_eq!(rows.len(), 0);
    }

    #[test]
    fn documents_carry_pk_in_id_and_metadata() {
        let mut m = Metadata::new();
        m.insert("source".into(), Value::from("a.pdf"));
        let d = RowData {
            pk: Pk::Int(3),
            text: "hello".into(),
            metadata: m,
        }
        .to_document("pk", None);
        assert_eq!(d.id.as_deref(), Some("3"));
        assert_eq!(d.metadata["pk"], Value::Int(3));
        assert_eq!(d.metadata["source"], Value::from("a.pdf"));
    }
}
