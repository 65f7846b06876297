//! The in-memory view of a collection's rows that filters are evaluated against.
//!
//! Storage is the source of truth; this map is rebuilt from it on open and kept in step
//! with it by [`crate::live::LiveCollection`]'s applier (in storage sequence order).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
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

/// A metadata value as an equality key, with Milvus's numeric equality: `Int(2)` and
/// `Float(2.0)` are the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum ScalarKey {
    Num(u64),
    Str(String),
    Bool(bool),
}

impl ScalarKey {
    fn of(v: &Value) -> Option<ScalarKey> {
        match v {
            Value::Int(i) => Some(ScalarKey::num(*i as f64)),
            Value::Float(f) => Some(ScalarKey::num(*f)),
            Value::Str(s) => Some(ScalarKey::Str(s.clone())),
            Value::Bool(b) => Some(ScalarKey::Bool(*b)),
            _ => None,
        }
    }

    fn num(f: f64) -> ScalarKey {
        // -0.0 == 0.0; ints beyond 2^53 may share a key, which only widens a candidate set
        // that the filter then checks row by row.
        ScalarKey::Num(if f == 0.0 { 0 } else { f.to_bits() })
    }
}

/// Equality index of one top-level metadata key: value → rows holding it, in row order.
type KeyIndex = HashMap<ScalarKey, Vec<RowId>>;

/// Adds `row` to a posting list kept in row order (rows mostly arrive in increasing order).
fn insert_sorted(rows: &mut Vec<RowId>, row: RowId) {
    match rows.last() {
        Some(last) if *last > row => {
            if let Err(at) = rows.binary_search(&row) {
                rows.insert(at, row);
            }
        }
        Some(last) if *last == row => {}
        _ => rows.push(row),
    }
}

/// Live rows by row id and by primary key, plus equality indexes on the metadata keys that
/// filters have asked about (built on first use, then kept up to date).
///
/// # Invariants
/// * `by_pk[p] == (r, d)` iff `by_row[r] == d` and `d.pk == p`; both maps hold exactly the
///   live rows (`by_pk` in key order, for queries that want the first rows by key).
/// * For every indexed key `k`, `scalar[k][v]` holds exactly the live rows whose
///   `metadata[k]` has equality key `v`.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    by_row: HashMap<RowId, Arc<RowData>>,
    by_pk: BTreeMap<Pk, (RowId, Arc<RowData>)>,
    scalar: RwLock<HashMap<String, KeyIndex>>,
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
        if let Some((old, _)) = self.by_pk.insert(data.pk.clone(), (row, data.clone())) {
            // A newer version replaces an older one that was not removed explicitly.
            if let Some(old_data) = self.by_row.remove(&old) {
                self.unindex(old, &old_data);
            }
        }
        for (key, index) in self.scalar.get_mut().iter_mut() {
            if let Some(k) = data.metadata.get(key).and_then(ScalarKey::of) {
                insert_sorted(index.entry(k).or_default(), row);
            }
        }
        self.by_row.insert(row, data);
        true
    }

    fn unindex(&mut self, row: RowId, data: &RowData) {
        for (key, index) in self.scalar.get_mut().iter_mut() {
            if let Some(k) = data.metadata.get(key).and_then(ScalarKey::of) {
                if let Some(rows) = index.get_mut(&k) {
                    if let Ok(at) = rows.binary_search(&row) {
                        rows.remove(at);
                    }
                    if rows.is_empty() {
                        index.remove(&k);
                    }
                }
            }
        }
    }

    /// Removes a row if it is live; returns whether it was.
    pub fn remove(&mut self, row: RowId) -> bool {
        match self.by_row.remove(&row) {
            Some(data) => {
                if self.by_pk.get(&data.pk).map(|e| e.0) == Some(row) {
                    self.by_pk.remove(&data.pk);
                }
                self.unindex(row, &data);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, row: RowId) -> Option<&Arc<RowData>> {
        self.by_row.get(&row)
    }

    pub fn row_of(&self, pk: &Pk) -> Option<RowId> {
        self.by_pk.get(pk).map(|e| e.0)
    }

    pub fn row_ids(&self) -> impl Iterator<Item = RowId> + '_ {
        self.by_row.keys().copied()
    }

    /// Row ids whose rows match `filter`: candidates from the pk map or an equality index
    /// when the filter allows, else every row; each candidate is checked by the filter.
    pub fn matching(&self, filter: &Filter) -> Vec<RowId> {
        let candidates: Option<Vec<RowId>> = if let Some(pks) = filter.pk_candidates() {
            Some(
                pks.iter()
                    .filter_map(|pk| self.by_pk.get(pk).map(|e| e.0))
                    .collect(),
            )
        } else if let Some(hint) = filter.index_hint() {
            let rows = self.lookup(&hint.key, &hint.values);
            if hint.exact {
                return rows; // the index answers the whole filter
            }
            Some(rows)
        } else {
            None
        };
        if let Some(mut out) = candidates {
            out.sort_unstable();
            out.dedup();
            out.retain(|r| filter.matches(self.by_row[r].as_ref()));
            return out;
        }
        self.by_row
            .iter()
            .filter(|(_, d)| filter.matches(d.as_ref()))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Rows whose `metadata[key]` equals one of `values`, in row order without repeats,
    /// building the key's index on first use.
    fn lookup(&self, key: &str, values: &[Value]) -> Vec<RowId> {
        let mut keys: Vec<ScalarKey> = values.iter().filter_map(ScalarKey::of).collect();
        keys.sort_unstable();
        keys.dedup();
        let collect = |index: &KeyIndex| -> Vec<RowId> {
            let mut lists = keys.iter().filter_map(|k| index.get(k));
            match (lists.next(), lists.next()) {
                (None, _) => Vec::new(),
                (Some(only), None) => only.clone(),
                (Some(a), Some(b)) => {
                    // Distinct keys hold disjoint rows: concatenate, then restore row order.
                    let mut out: Vec<RowId> = a.iter().chain(b).copied().collect();
                    lists.for_each(|l| out.extend_from_slice(l));
                    out.sort_unstable();
                    out
                }
            }
        };
        self.with_key_index(key, collect)
    }

    /// Runs `f` on the equality index of `key`, building it first if no filter asked for
    /// that key before.
    fn with_key_index<R>(&self, key: &str, f: impl FnOnce(&KeyIndex) -> R) -> R {
        if let Some(index) = self.scalar.read().get(key) {
            return f(index);
        }
        let mut scalar = self.scalar.write();
        let index = scalar.entry(key.to_owned()).or_insert_with(|| {
            let mut index = KeyIndex::new();
            for (row, data) in &self.by_row {
                if let Some(k) = data.metadata.get(key).and_then(ScalarKey::of) {
                    index.entry(k).or_default().push(*row);
                }
            }
            for rows in index.values_mut() {
                rows.sort_unstable();
            }
            index
        });
        f(index)
    }

    /// Whether walking rows in key order to find the first `limit` matches should check
    /// fewer rows than collecting all candidates: a walk checks about `limit * live /
    /// candidates` rows when matches are spread over the keys (at worst every row, as a
    /// filter without an index does anyway). Never for a pk list (a few direct lookups).
    fn key_order_walk_pays(&self, filter: &Filter, limit: usize) -> bool {
        let live = self.len();
        if limit >= live || filter.pk_candidates().is_some() {
            return false;
        }
        let candidates = match filter.index_hint() {
            Some(hint) => self.with_key_index(&hint.key, |index| {
                let mut keys: Vec<ScalarKey> =
                    hint.values.iter().filter_map(ScalarKey::of).collect();
                keys.sort_unstable();
                keys.dedup();
                keys.iter().filter_map(|k| index.get(k)).map(Vec::len).sum()
            }),
            None => live,
        };
        candidates > 0 && limit.saturating_mul(live) / candidates <= candidates
    }

    /// Matching rows in primary-key order (deterministic output for queries).
    pub fn matching_sorted(&self, filter: &Filter) -> Vec<Arc<RowData>> {
        self.matching_first(filter, usize::MAX)
    }

    /// The first `limit` matching rows in primary-key order: by walking the rows in key
    /// order until `limit` match when that is expected to check fewer rows than there are
    /// candidates ([`Rows::key_order_walk_pays`]), else by collecting every candidate and
    /// selecting the first `limit` without sorting the rest.
    pub fn matching_first(&self, filter: &Filter, limit: usize) -> Vec<Arc<RowData>> {
        if limit == 0 {
            return Vec::new();
        }
        if self.key_order_walk_pays(filter, limit) {
            return self
                .by_pk
                .values()
                .filter(|(_, d)| filter.matches(d.as_ref()))
                .take(limit)
                .map(|(_, d)| d.clone())
                .collect();
        }
        let mut rows: Vec<&Arc<RowData>> = self
            .matching(filter)
            .into_iter()
            .map(|r| &self.by_row[&r])
            .collect();
        let by_pk = |a: &&Arc<RowData>, b: &&Arc<RowData>| a.pk.cmp(&b.pk);
        if limit < rows.len() {
            if limit == 0 {
                return Vec::new();
            }
            rows.select_nth_unstable_by(limit - 1, by_pk);
            rows.truncate(limit);
        }
        rows.sort_unstable_by(by_pk);
        rows.into_iter().cloned().collect()
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

    fn tagged(pk: i64, tag: Value) -> Arc<RowData> {
        let mut metadata = Metadata::new();
        metadata.insert("tag".into(), tag);
        Arc::new(RowData {
            pk: Pk::Int(pk),
            text: String::new(),
            metadata,
        })
    }

    fn compile(expr: &str) -> Filter {
        let schema = quiverdb_filter::Schema::dynamic("pk", true, "text");
        quiverdb_filter::compile(expr, &schema, &Default::default()).unwrap()
    }

    #[test]
    fn equality_index_agrees_with_a_full_scan_through_updates() {
        let mut rows = Rows::default();
        for i in 0..50 {
            let tag = match i % 4 {
                0 => Value::Int(i % 3),
                1 => Value::Float((i % 3) as f64),
                2 => Value::from(format!("s{}", i % 3)),
                _ => Value::Null,
            };
            rows.insert(RowId(i as u64), tagged(i, tag));
        }
        let scan = |rows: &Rows, f: &Filter| {
            let mut all: Vec<RowId> = rows
                .by_row
                .iter()
                .filter(|(_, d)| f.matches(d.as_ref()))
                .map(|(r, _)| *r)
                .collect();
            all.sort_unstable();
            all
        };
        for expr in [
            "tag == 2",
            "tag in [1, 2]",
            "tag in ['s0', 's2']",
            "tag == 's1'",
            "tag == 2.0 and pk > 10",
        ] {
            let f = compile(expr);
            assert!(f.index_hint().is_some(), "{expr} should use the index");
            let mut got = rows.matching(&f);
            got.sort_unstable();
            assert_eq!(got, scan(&rows, &f), "{expr}");
        }
        // The index, now built, follows inserts, replacements and removals.
        rows.insert(RowId(100), tagged(1000, Value::Int(2)));
        rows.insert(RowId(101), tagged(2, Value::from("s2"))); // replaces pk 2's row
        rows.remove(RowId(4));
        for expr in ["tag == 2", "tag in [1, 2]", "tag in ['s0', 's2']"] {
            let f = compile(expr);
            let mut got = rows.matching(&f);
            got.sort_unstable();
            assert_eq!(got, scan(&rows, &f), "{expr} after updates");
        }
        // String equalities are answered by the index alone, in row order, also after a
        // row arrives out of order.
        rows.insert(RowId(60), tagged(600, Value::from("s2")));
        rows.remove(RowId(101));
        for expr in ["tag in ['s2', 's0', 's2']", "tag == 's1'", "tag == 'none'"] {
            let f = compile(expr);
            assert!(f.index_hint().is_some_and(|h| h.exact), "{expr}");
            assert_eq!(rows.matching(&f), scan(&rows, &f), "{expr} (unsorted)");
        }
    }

    #[test]
    fn first_rows_by_key_without_a_full_sort() {
        let mut rows = Rows::default();
        for i in [9i64, 3, 7, 1, 5, 8, 2] {
            rows.insert(RowId(i as u64), tagged(i, Value::Int(i % 2)));
        }
        let odd = compile("tag == 1");
        let pks = |v: Vec<Arc<RowData>>| v.iter().map(|r| r.pk.clone()).collect::<Vec<_>>();
        assert_eq!(
            pks(rows.matching_first(&odd, 2)),
            vec![Pk::Int(1), Pk::Int(3)]
        );
        assert_eq!(pks(rows.matching_first(&odd, 0)), vec![]);
        assert_eq!(rows.matching_first(&odd, 99).len(), 5);
        assert_eq!(
            pks(rows.matching_sorted(&odd)),
            pks(rows.matching_first(&odd, 5))
        );
    }

    /// Both ways of finding the first rows by key (the key-order walk and select-then-sort)
    /// answer as sorting every match would, for filters with and without an index, many
    /// and few matches, string keys whose order is not the rows' order, and replaced rows.
    #[test]
    fn first_rows_by_key_agree_with_sorting_every_match() {
        let mut rows = Rows::default();
        let row_data = |pk: String, i: i64| {
            let mut metadata = Metadata::new();
            metadata.insert("cat".into(), Value::from(format!("c{}", i % 5)));
            metadata.insert(
                "rare".into(),
                Value::from(if i % 97 == 0 { "y" } else { "n" }),
            );
            metadata.insert("n".into(), Value::Int(i));
            Arc::new(RowData {
                pk: Pk::Str(pk),
                text: String::new(),
                metadata,
            })
        };
        for i in 0..600i64 {
            // Keys in an order unrelated to the row ids.
            let pk = format!("k{:04}", (i * 7919) % 1000);
            rows.insert(RowId(i as u64), row_data(pk, i));
        }
        // Replacements: the same keys on new rows, with new metadata.
        for i in 0..40i64 {
            let pk = format!("k{:04}", (i * 7919) % 1000);
            rows.insert(RowId(1_000 + i as u64), row_data(pk, i + 3));
        }
        let reference = |f: &Filter, limit: usize| {
            let mut all: Vec<Pk> = rows
                .by_row
                .values()
                .filter(|d| f.matches(d.as_ref()))
                .map(|d| d.pk.clone())
                .collect();
            all.sort();
            all.truncate(limit);
            all
        };
        let compile = |expr: &str| {
            let schema = quiverdb_filter::Schema::dynamic("pk", false, "text");
            quiverdb_filter::compile(expr, &schema, &Default::default()).unwrap()
        };
        let mut walked = 0;
        for expr in [
            "cat == 'c1'",
            "cat in ['c1', 'c3']",
            "rare == 'y'",
            "cat == 'c2' and n > 300",
            "n > 550",
            "n < 0",
            "pk in ['k0000', 'k0919', 'k9999']",
        ] {
            let f = compile(expr);
            for limit in [1, 3, 10, 100, 599, 600, 10_000] {
                walked += usize::from(rows.key_order_walk_pays(&f, limit));
                let got: Vec<Pk> = rows
                    .matching_first(&f, limit)
                    .iter()
                    .map(|d| d.pk.clone())
                    .collect();
                assert_eq!(got, reference(&f, limit), "{expr}, limit {limit}");
            }
        }
        assert!(
            walked > 0 && walked < 49,
            "both paths ran ({walked} walks of 49)"
        );
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
