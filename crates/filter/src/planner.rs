//! What a compiled filter tells a caller about where matching rows can be: a pk list for
//! the primary-key index, or an equality on a metadata key for a scalar index.

use quiverdb_types::{Pk, Value};

use crate::ast::CmpOp;
use crate::compiled::{Acc, Lit, Pred, Test};
use crate::schema::FieldType;

/// A top-level conjunct `key == const` or `key in [consts]` on a top-level metadata key.
///
/// Rows that match the filter have `metadata()[key]` equal to one of `values`. Numbers
/// follow Milvus: for a dynamic (JSON) key an integer also matches the equal float, so
/// both spellings are listed (`Int(2)` and `Float(2.0)`). Callers still call
/// [`Filter::matches`](crate::Filter::matches) unless the hint is `exact`.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexHint {
    /// The metadata key.
    pub key: String,
    /// The values the key must hold (any of them).
    pub values: Vec<Value>,
    /// The whole filter is this one test on strings (`key == 's'`, `key in ['a', 'b']`):
    /// a row matches exactly when `metadata()[key]` is one of `values`, so the caller need
    /// not call [`Filter::matches`](crate::Filter::matches). Never set for numbers (their
    /// cross-type equality is subtler) or when other conditions are `and`-ed in.
    pub exact: bool,
}

fn pk_of(l: &Lit) -> Option<Pk> {
    match l {
        Lit::Int(i) => Some(Pk::Int(*i)),
        Lit::Str(s) => Some(Pk::Str(s.to_string())),
        _ => None,
    }
}

pub(crate) fn pk_candidates(p: &Pred) -> Option<Vec<Pk>> {
    match p {
        Pred::Const(false) => Some(Vec::new()),
        Pred::Test(Acc::Pk, Test::Cmp(CmpOp::Eq, l)) => pk_of(l).map(|k| vec![k]),
        Pred::Test(Acc::Pk, Test::In(set)) => {
            let mut v: Vec<Pk> = set.iter().filter_map(pk_of).collect();
            v.sort();
            v.dedup();
            Some(v)
        }
        Pred::And(ps) => ps.iter().filter_map(pk_candidates).min_by_key(Vec::len),
        Pred::Or(ps) => {
            let mut all = Vec::new();
            for p in ps.iter() {
                all.extend(pk_candidates(p)?);
            }
            all.sort();
            all.dedup();
            Some(all)
        }
        _ => None,
    }
}

fn twins(l: &Lit, numeric_twins: bool, out: &mut Vec<Value>) {
    out.push(l.to_value());
    if !numeric_twins {
        return;
    }
    match l {
        Lit::Int(i) => out.push(Value::Float(*i as f64)),
        Lit::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => out.push(Value::Int(*f as i64)),
        _ => {}
    }
}

fn hint_of(p: &Pred) -> Option<IndexHint> {
    let Pred::Test(acc, test) = p else {
        return None;
    };
    let (key, json) = match acc {
        // A DOUBLE field also reads stored integers (see `typed_cell`), so list both.
        Acc::Typed { key, ty } => (key, *ty == FieldType::Double),
        Acc::Json { key, path, .. } if path.is_empty() => (key, true),
        _ => return None,
    };
    let mut values = Vec::new();
    match test {
        Test::Cmp(CmpOp::Eq, l) if !matches!(l, Lit::List(_)) => twins(l, json, &mut values),
        Test::In(set) => set.iter().for_each(|l| twins(l, json, &mut values)),
        _ => return None,
    }
    Some(IndexHint {
        key: key.to_string(),
        values,
        exact: false,
    })
}

pub(crate) fn index_hint(p: &Pred) -> Option<IndexHint> {
    match p {
        Pred::And(ps) => ps.iter().filter_map(hint_of).min_by_key(|h| h.values.len()),
        p => hint_of(p).map(|mut h| {
            h.exact = h.values.iter().all(|v| matches!(v, Value::Str(_)));
            h
        }),
    }
}
