//! `check_integrity`: a full cross-check of one collection's trees and counters.

use std::collections::HashSet;

use quiverdb_types::{Metric, Pk, PkKind, RowId};

use crate::codec::{self, pk_key, row_key};
use crate::database::DbInner;
use crate::error::Result;
use crate::kv::TreeId;
use crate::schema::CollectionState;

/// Problems listed in a report before the rest are only counted.
const MAX_LISTED: usize = 100;

/// What [`Collection::check_integrity`](crate::Collection::check_integrity) found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntegrityReport {
    /// Entries in the row tree.
    pub rows: usize,
    /// Entries in the primary-key index.
    pub pks: usize,
    /// Stored vectors.
    pub vectors: usize,
    /// Change-log entries.
    pub changes: usize,
    /// The live count recorded in the collection state.
    pub recorded_count: usize,
    /// Human-readable descriptions of every inconsistency (at most 100 listed).
    pub problems: Vec<String>,
    /// Total number of inconsistencies, listed or not.
    pub problem_count: usize,
}

impl IntegrityReport {
    /// Whether no inconsistency was found.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, p: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        }
    }
}

pub(crate) fn check(db: &DbInner, st: &CollectionState) -> Result<IntegrityReport> {
    let cid = st.id;
    let prefix = cid.prefix();
    let mut rep = IntegrityReport {
        recorded_count: st.live as usize,
        ..IntegrityReport::default()
    };
    let dim = st.dimension.map(|d| d as usize);

    // pk -> row: every key points at a live row that names it back.
    let mut max_int_pk = None;
    for item in db.kv.scan_prefix(TreeId::PkIndex, &prefix) {
        let (k, v) = item?;
        rep.pks += 1;
        let pk = match codec::decode_pk_key(&k) {
            Ok(pk) => pk,
            Err(e) => {
                rep.problem(format!("undecodable key-index key: {}", e.0));
                continue;
            }
        };
        if !st.pk_kind.accepts(&pk) {
            rep.problem(format!("key {pk} is not a {} key", st.pk_kind));
        }
        if let Pk::Int(i) = pk {
            max_int_pk = max_int_pk.max(Some(i));
        }
        let row = match codec::decode_u64(&v) {
            Ok(r) => RowId(r),
            Err(e) => {
                rep.problem(format!("key {pk}: undecodable row id: {}", e.0));
                continue;
            }
        };
        match db.kv.get(TreeId::Rows, row_key(cid, row))? {
            None => rep.problem(format!("key {pk} points at missing row {row}")),
            Some(raw) => match codec::decode_row(&raw) {
                Ok(r) if r.pk != pk => rep.problem(format!(
                    "key {pk} points at row {row} which holds key {}",
                    r.pk
                )),
                Ok(_) => {}
                Err(_) => {} // reported by the row pass
            },
        }
    }

    // row -> pk, and each row's vector.
    let mut rows = HashSet::new();
    for item in db.kv.scan_prefix(TreeId::Rows, &prefix) {
        let (k, v) = item?;
        rep.rows += 1;
        let Ok(row) = codec::decode_id_key(&k).map(RowId) else {
            rep.problem(format!("malformed row key {k:?}"));
            continue;
        };
        rows.insert(row);
        if row.0 >= st.next_row {
            rep.problem(format!(
                "row {row} is not below next row id {}",
                st.next_row
            ));
        }
        match codec::decode_row(&v) {
            Err(e) => rep.problem(format!("row {row} does not decode: {}", e.0)),
            Ok(r) => {
                let back = db
                    .kv
                    .get(TreeId::PkIndex, pk_key(cid, &r.pk))?
                    .and_then(|v| codec::decode_u64(&v).ok());
                if back != Some(row.0) {
                    rep.problem(format!(
                        "row {row} holds key {} but the key index says {back:?}",
                        r.pk
                    ));
                }
            }
        }
        match db.kv.get(TreeId::Vectors, row_key(cid, row))? {
            None => rep.problem(format!("row {row} has no vector")),
            Some(raw) => match codec::decode_vector(&raw) {
                Err(e) => rep.problem(format!("vector of row {row} does not decode: {}", e.0)),
                Ok(vec) => check_vector(&mut rep, row, &vec, dim, st.metric),
            },
        }
    }

    for item in db.kv.scan_prefix(TreeId::Vectors, &prefix) {
        let (k, _) = item?;
        rep.vectors += 1;
        match codec::decode_id_key(&k) {
            Ok(r) if !rows.contains(&RowId(r)) => rep.problem(format!("vector #{r} has no row")),
            Ok(_) => {}
            Err(e) => rep.problem(format!("malformed vector key: {}", e.0)),
        }
    }

    let pruned_upto = match db.kv.get(TreeId::Meta, codec::pruned_key(cid))? {
        Some(v) => match codec::decode_u64(&v) {
            Ok(n) => n,
            Err(e) => {
                rep.problem(format!("undecodable change-log watermark: {}", e.0));
                0
            }
        },
        None => 0,
    };
    if pruned_upto > st.last_seq {
        rep.problem(format!(
            "change log pruned up to {pruned_upto}, past the last sequence number {}",
            st.last_seq
        ));
    }
    for item in db.kv.scan_prefix(TreeId::Changes, &prefix) {
        let (k, v) = item?;
        rep.changes += 1;
        let seq = codec::decode_id_key(&k).unwrap_or(u64::MAX);
        if seq != 0 && seq <= pruned_upto {
            rep.problem(format!(
                "change {seq} survived the prune up to {pruned_upto}"
            ));
        }
        if seq == 0 || seq > st.last_seq {
            rep.problem(format!(
                "change {seq} outside 1..={} (last sequence number)",
                st.last_seq
            ));
        }
        if let Err(e) = codec::decode_serde::<crate::record::StoredChange>(&v) {
            rep.problem(format!("change {seq} does not decode: {}", e.0));
        }
    }

    if rep.rows != rep.pks || rep.rows != rep.recorded_count || rep.vectors != rep.rows {
        rep.problem(format!(
            "counts disagree: {} rows, {} keys, {} vectors, recorded count {}",
            rep.rows, rep.pks, rep.vectors, rep.recorded_count
        ));
    }
    if st.pk_kind == PkKind::AutoInt {
        if let Some(max) = max_int_pk {
            if max != i64::MAX && max >= st.next_auto_pk {
                rep.problem(format!(
                    "key {max} is not below the next auto id {}",
                    st.next_auto_pk
                ));
            }
        }
    }
    Ok(rep)
}

fn check_vector(rep: &mut IntegrityReport, row: RowId, v: &[f32], dim: Option<usize>, m: Metric) {
    match dim {
        None => rep.problem(format!("row {row} has a vector but the dimension is unset")),
        Some(d) if d != v.len() => rep.problem(format!(
            "vector of row {row} has {} components, the dimension is {d}",
            v.len()
        )),
        Some(_) => {}
    }
    if v.iter().any(|x| !x.is_finite()) {
        rep.problem(format!("vector of row {row} is not finite"));
    }
    if m == Metric::Cosine {
        let norm: f64 = v
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if (norm - 1.0).abs() > 1e-3 {
            rep.problem(format!("cosine vector of row {row} has norm {norm}"));
        }
    }
}
