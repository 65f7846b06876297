//! The compiled form of a filter and its evaluation over one row.
//!
//! Names are resolved and literals cast at compile time; evaluating a row only reads the
//! values it needs by reference, so it never parses or allocates. Results are three-valued:
//! `Unknown` comes only from SQL NULL in nullable typed fields (Kleene logic, so `not`
//! keeps NULL rows out); JSON keys that are missing or of another type are plain `false`
//! (`!=` is `true`), as in the Milvus executor.

use std::cmp::Ordering;

use quiverdb_types::{Metadata, Pk, Value};

use crate::ast::{ArithOp, CmpOp};
use crate::like::LikePattern;
use crate::schema::{FieldType, Row};

/// A constant after folding and casting.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lit {
    Int(i64),
    Float(f64),
    Str(Box<str>),
    Bool(bool),
    List(Box<[Lit]>),
}

impl Lit {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Lit::Int(_) => "integer",
            Lit::Float(_) => "float",
            Lit::Str(_) => "string",
            Lit::Bool(_) => "bool",
            Lit::List(_) => "list",
        }
    }

    fn cell(&self) -> Cell<'_> {
        match self {
            Lit::Int(i) => Cell::Int(*i),
            Lit::Float(f) => Cell::Float(*f),
            Lit::Str(s) => Cell::Str(s),
            Lit::Bool(b) => Cell::Bool(*b),
            Lit::List(_) => Cell::Other,
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Lit::Int(i) => Value::Int(*i),
            Lit::Float(f) => Value::Float(*f),
            Lit::Str(s) => Value::Str(s.to_string()),
            Lit::Bool(b) => Value::Bool(*b),
            Lit::List(l) => Value::List(l.iter().map(Lit::to_value).collect()),
        }
    }
}

/// One step of a JSON key path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    Key(Box<str>),
    Index(usize),
}

/// Where a value comes from in a row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Acc {
    Pk,
    Text,
    /// A declared scalar or ARRAY field, `metadata()[key]`; absent, `Null` or of another
    /// type = SQL NULL.
    Typed {
        key: Box<str>,
        ty: FieldType,
    },
    /// A JSON path: `metadata()[key]` then `path`. `null_root`: the key is a declared
    /// nullable JSON field, so an absent/`Null` root is SQL NULL rather than "missing".
    Json {
        key: Box<str>,
        path: Box<[Step]>,
        null_root: bool,
    },
    /// Element `index` of a declared ARRAY field; out of range = no match (NULL).
    Elem {
        key: Box<str>,
        index: usize,
    },
}

/// What is tested on the value an [`Acc`] reads.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    Cmp(CmpOp, Lit),
    Range {
        lo: Lit,
        lo_incl: bool,
        hi: Lit,
        hi_incl: bool,
    },
    In(Box<[Lit]>),
    Like(LikePattern),
    Arith {
        op: ArithOp,
        k: Lit,
        cmp: CmpOp,
        rhs: Lit,
    },
    Contains(Contains, Box<[Lit]>),
    ArrayLen(CmpOp, i64),
    Exists,
    IsNull,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contains {
    One,
    All,
    Any,
}

/// A compiled predicate.
#[derive(Clone, Debug)]
pub(crate) enum Pred {
    Const(bool),
    And(Box<[Pred]>),
    Or(Box<[Pred]>),
    Not(Box<Pred>),
    Test(Acc, Test),
    /// Two typed scalar fields compared with each other.
    Fields(Acc, CmpOp, Acc),
}

/// Three-valued truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    False,
    True,
    Unknown,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

/// A borrowed view of one value.
#[derive(Clone, Copy, Debug)]
enum Cell<'a> {
    /// SQL NULL of a typed field.
    Unknown,
    /// JSON key absent, or JSON `null`.
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    List(&'a [Value]),
    /// A JSON object, or anything no operator compares.
    Other,
}

fn json_cell(v: &Value) -> Cell<'_> {
    match v {
        Value::Null => Cell::Missing,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Int(i) => Cell::Int(*i),
        Value::Float(f) => Cell::Float(*f),
        Value::Str(s) => Cell::Str(s),
        Value::List(l) => Cell::List(l),
        Value::Map(_) => Cell::Other,
    }
}

fn typed_cell(v: Option<&Value>, ty: FieldType) -> Cell<'_> {
    match (ty, v) {
        (FieldType::Bool, Some(Value::Bool(b))) => Cell::Bool(*b),
        (FieldType::Int64, Some(Value::Int(i))) => Cell::Int(*i),
        (FieldType::Double, Some(Value::Float(f))) => Cell::Float(*f),
        (FieldType::Double, Some(Value::Int(i))) => Cell::Float(*i as f64),
        (FieldType::VarChar, Some(Value::Str(s))) => Cell::Str(s),
        (FieldType::Array(_), Some(Value::List(l))) => Cell::List(l),
        (FieldType::Json, Some(v)) if !matches!(v, Value::Null) => json_cell(v),
        _ => Cell::Unknown,
    }
}

/// Short keys compared byte by byte: cheaper than a `memcmp` call for the handful of bytes
/// metadata keys usually have.
#[inline]
fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// `meta.get(key)`, by a linear scan with length-first equality for small maps (the common
/// case: a few metadata keys), where the ordered `memcmp` of the B-tree search dominates.
#[inline]
fn lookup<'r>(meta: &'r Metadata, key: &str) -> Option<&'r Value> {
    if meta.len() <= 12 {
        meta.iter().find(|(k, _)| key_eq(k, key)).map(|(_, v)| v)
    } else {
        meta.get(key)
    }
}

#[inline(always)]
fn fetch<'r, R: Row + ?Sized>(acc: &Acc, row: &'r R) -> Cell<'r> {
    match acc {
        Acc::Pk => match row.pk() {
            Pk::Int(i) => Cell::Int(*i),
            Pk::Str(s) => Cell::Str(s),
        },
        Acc::Text => Cell::Str(row.text()),
        Acc::Typed { key, ty } => typed_cell(lookup(row.metadata(), key), *ty),
        Acc::Json {
            key,
            path,
            null_root,
        } => {
            let mut cur = match lookup(row.metadata(), key) {
                None | Some(Value::Null) if *null_root => return Cell::Unknown,
                None => return Cell::Missing,
                Some(v) => v,
            };
            for step in path.iter() {
                cur = match (step, cur) {
                    (Step::Key(k), Value::Map(m)) => match m.get(&**k) {
                        Some(v) => v,
                        None => return Cell::Missing,
                    },
                    (Step::Index(i), Value::List(l)) => match l.get(*i) {
                        Some(v) => v,
                        None => return Cell::Missing,
                    },
                    _ => return Cell::Missing,
                };
            }
            json_cell(cur)
        }
        Acc::Elem { key, index } => match lookup(row.metadata(), key) {
            Some(Value::List(l)) => match l.get(*index) {
                Some(v) if !matches!(v, Value::Null) => json_cell(v),
                _ => Cell::Unknown,
            },
            _ => Cell::Unknown,
        },
    }
}

/// Orders two scalars of comparable types; `None` when the types differ.
fn order(a: Cell<'_>, b: Cell<'_>) -> Option<Ordering> {
    match (a, b) {
        (Cell::Int(x), Cell::Int(y)) => Some(x.cmp(&y)),
        (Cell::Int(x), Cell::Float(y)) => (x as f64).partial_cmp(&y),
        (Cell::Float(x), Cell::Int(y)) => x.partial_cmp(&(y as f64)),
        (Cell::Float(x), Cell::Float(y)) => x.partial_cmp(&y),
        (Cell::Str(x), Cell::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Cell::Bool(x), Cell::Bool(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// JSON equality of a stored value and a literal: numbers by value, lists element-wise.
fn value_eq(v: &Value, lit: &Lit) -> bool {
    match (v, lit) {
        (Value::List(a), Lit::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| value_eq(x, y))
        }
        (_, Lit::List(_)) => false,
        _ => order(json_cell(v), lit.cell()) == Some(Ordering::Equal),
    }
}

fn cell_eq(c: Cell<'_>, lit: &Lit) -> bool {
    match (c, lit) {
        (Cell::List(a), Lit::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| value_eq(x, y))
        }
        (_, Lit::List(_)) => false,
        _ => order(c, lit.cell()) == Some(Ordering::Equal),
    }
}

fn arith(op: ArithOp, x: Cell<'_>, k: &Lit) -> Option<Cell<'static>> {
    match (x, k) {
        (Cell::Int(a), Lit::Int(b)) => {
            let b = *b;
            let r = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div => a.checked_div(b),
                ArithOp::Mod => a.checked_rem(b),
                ArithOp::Pow => None,
            };
            r.map(Cell::Int)
        }
        (Cell::Int(_) | Cell::Float(_), Lit::Int(_) | Lit::Float(_)) => {
            let a = match x {
                Cell::Int(i) => i as f64,
                Cell::Float(f) => f,
                _ => return None,
            };
            let b = match k {
                Lit::Int(i) => *i as f64,
                Lit::Float(f) => *f,
                _ => return None,
            };
            let r = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
                ArithOp::Pow => return None,
            };
            Some(Cell::Float(r))
        }
        _ => None,
    }
}

#[inline(always)]
fn test(cell: Cell<'_>, t: &Test) -> Tri {
    if let Cell::Unknown = cell {
        return if matches!(t, Test::IsNull) {
            Tri::True
        } else {
            Tri::Unknown
        };
    }
    let b = match t {
        Test::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), Lit::Str(s)) => match cell {
            Cell::Str(x) => key_eq(x, s) == (*op == CmpOp::Eq),
            _ => *op == CmpOp::Ne,
        },
        Test::Cmp(op, lit) => match lit {
            Lit::List(_) => cell_eq(cell, lit) == (*op == CmpOp::Eq),
            _ => match order(cell, lit.cell()) {
                Some(o) => op.holds(o),
                None => *op == CmpOp::Ne,
            },
        },
        Test::Range {
            lo,
            lo_incl,
            hi,
            hi_incl,
        } => {
            let above = match order(cell, lo.cell()) {
                Some(Ordering::Greater) => true,
                Some(Ordering::Equal) => *lo_incl,
                _ => false,
            };
            above
                && match order(cell, hi.cell()) {
                    Some(Ordering::Less) => true,
                    Some(Ordering::Equal) => *hi_incl,
                    _ => false,
                }
        }
        Test::In(set) => set.iter().any(|l| cell_eq(cell, l)),
        Test::Like(p) => matches!(cell, Cell::Str(s) if p.matches(s)),
        Test::Arith { op, k, cmp, rhs } => match arith(*op, cell, k) {
            Some(r) => order(r, rhs.cell()).is_some_and(|o| cmp.holds(o)),
            None => false,
        },
        Test::Contains(mode, lits) => match cell {
            Cell::List(items) => {
                let has = |l: &Lit| items.iter().any(|v| value_eq(v, l));
                match mode {
                    Contains::One | Contains::Any => lits.iter().any(has),
                    Contains::All => lits.iter().all(has),
                }
            }
            _ => false,
        },
        Test::ArrayLen(op, n) => {
            let len = match cell {
                Cell::List(l) => l.len() as i64,
                _ => 0,
            };
            op.holds(len.cmp(n))
        }
        Test::Exists => !matches!(cell, Cell::Missing),
        Test::IsNull => matches!(cell, Cell::Missing),
    };
    Tri::from(b)
}

impl Pred {
    pub(crate) fn eval<R: Row + ?Sized>(&self, row: &R) -> Tri {
        match self {
            Pred::Const(b) => Tri::from(*b),
            Pred::And(ps) => {
                let mut unknown = false;
                for p in ps.iter() {
                    match p.eval(row) {
                        Tri::False => return Tri::False,
                        Tri::Unknown => unknown = true,
                        Tri::True => {}
                    }
                }
                if unknown {
                    Tri::Unknown
                } else {
                    Tri::True
                }
            }
            Pred::Or(ps) => {
                let mut unknown = false;
                for p in ps.iter() {
                    match p.eval(row) {
                        Tri::True => return Tri::True,
                        Tri::Unknown => unknown = true,
                        Tri::False => {}
                    }
                }
                if unknown {
                    Tri::Unknown
                } else {
                    Tri::False
                }
            }
            Pred::Not(p) => match p.eval(row) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Unknown => Tri::Unknown,
            },
            Pred::Test(acc, t) => test(fetch(acc, row), t),
            Pred::Fields(a, op, b) => {
                let (x, y) = (fetch(a, row), fetch(b, row));
                if matches!(x, Cell::Unknown) || matches!(y, Cell::Unknown) {
                    return Tri::Unknown;
                }
                Tri::from(order(x, y).is_some_and(|o| op.holds(o)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_compare_by_value_and_mismatches_only_satisfy_ne() {
        let v = Value::Float(2.0);
        let c = json_cell(&v);
        assert_eq!(test(c, &Test::Cmp(CmpOp::Eq, Lit::Int(2))), Tri::True);
        assert_eq!(
            test(c, &Test::Cmp(CmpOp::Eq, Lit::Str("2".into()))),
            Tri::False
        );
        assert_eq!(
            test(c, &Test::Cmp(CmpOp::Ne, Lit::Str("2".into()))),
            Tri::True
        );
        assert_eq!(
            test(Cell::Missing, &Test::Cmp(CmpOp::Ne, Lit::Int(1))),
            Tri::True
        );
        assert_eq!(
            test(Cell::Missing, &Test::Cmp(CmpOp::Lt, Lit::Int(1))),
            Tri::False
        );
        assert_eq!(
            test(Cell::Unknown, &Test::Cmp(CmpOp::Ne, Lit::Int(1))),
            Tri::Unknown
        );
        assert_eq!(test(Cell::Unknown, &Test::IsNull), Tri::True);
    }

    #[test]
    fn arithmetic_on_missing_values_never_matches() {
        let t = Test::Arith {
            op: ArithOp::Add,
            k: Lit::Int(1),
            cmp: CmpOp::Ne,
            rhs: Lit::Int(5),
        };
        assert_eq!(test(Cell::Missing, &t), Tri::False);
        assert_eq!(test(Cell::Int(3), &t), Tri::True);
        assert_eq!(test(Cell::Int(4), &t), Tri::False);
        let overflow = Test::Arith {
            op: ArithOp::Add,
            k: Lit::Int(1),
            cmp: CmpOp::Ne,
            rhs: Lit::Int(0),
        };
        assert_eq!(test(Cell::Int(i64::MAX), &overflow), Tri::False);
    }
}
