//! Constants: folding arithmetic between literals and casting a literal to what a field of a
//! given type is compared with (Milvus `castValue`: an INT64 field never takes a float).

use std::cmp::Ordering;

use crate::ast::ArithOp;
use crate::compiled::Lit;
use crate::error::{type_err, FilterError, FilterErrorKind, Result};
use crate::resolve::{FieldRef, Ty};
use crate::schema::ElementType;

pub(crate) fn is_num(l: &Lit) -> bool {
    matches!(l, Lit::Int(_) | Lit::Float(_))
}

pub(crate) fn as_f64(l: &Lit) -> f64 {
    match l {
        Lit::Int(i) => *i as f64,
        Lit::Float(f) => *f,
        _ => f64::NAN,
    }
}

pub(crate) fn lit_order(a: &Lit, b: &Lit) -> Option<Ordering> {
    match (a, b) {
        (Lit::Int(x), Lit::Int(y)) => Some(x.cmp(y)),
        (x, y) if is_num(x) && is_num(y) => as_f64(x).partial_cmp(&as_f64(y)),
        (Lit::Str(x), Lit::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Lit::Bool(x), Lit::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Casts a constant to what a field of type `ty` is compared with.
pub(crate) fn cast(f: &FieldRef, lit: Lit, at: usize, allow_list: bool) -> Result<Lit> {
    let bad = |lit: &Lit| {
        type_err(
            at,
            format!(
                "cannot compare {} field '{}' with a {}",
                f.ty.name(),
                f.name,
                lit.type_name()
            ),
        )
    };
    match (f.ty, lit) {
        (Ty::Int, l @ Lit::Int(_)) => Ok(l),
        (Ty::Int, l @ Lit::Float(_)) => Err(bad(&l).hint(format!(
            "Milvus does not cast floats to INT64; compare '{}' with an integer",
            f.name
        ))),
        (Ty::Float, Lit::Int(i)) => Ok(Lit::Float(i as f64)),
        (Ty::Float, l @ Lit::Float(_)) => Ok(l),
        (Ty::Str, l @ Lit::Str(_)) => Ok(l),
        (Ty::Bool, l @ Lit::Bool(_)) => Ok(l),
        (Ty::Json, Lit::List(items)) if allow_list => Ok(Lit::List(items)),
        (Ty::Json, l @ Lit::List(_)) => Err(bad(&l)),
        (Ty::Json, l) => Ok(l),
        (Ty::JsonRoot, _) => Err(whole_json(f)),
        (Ty::Array(_), _) => Err(type_err(
            f.at,
            format!("ARRAY field '{}' cannot be compared directly", f.name),
        )
        .hint(format!(
            "compare an element like {}[0], or use array_contains",
            f.name
        ))),
        (_, l) => Err(bad(&l)),
    }
}

pub(crate) fn whole_json(f: &FieldRef) -> FilterError {
    type_err(
        f.at,
        format!("cannot filter on the whole JSON field '{}'", f.name),
    )
    .hint(format!("name a key, like {}[\"key\"]", f.name))
}

pub(crate) fn elem_cast(e: ElementType, lit: Lit, at: usize, fname: &str) -> Result<Lit> {
    match (e, lit) {
        (ElementType::Int64, l @ Lit::Int(_)) => Ok(l),
        (ElementType::Double, l) if is_num(&l) => Ok(Lit::Float(as_f64(&l))),
        (ElementType::VarChar, l @ Lit::Str(_)) => Ok(l),
        (ElementType::Bool, l @ Lit::Bool(_)) => Ok(l),
        (e, l) => Err(type_err(
            at,
            format!(
                "ARRAY field '{fname}' holds {e:?} elements, not a {}",
                l.type_name()
            ),
        )),
    }
}

pub(crate) fn fold_arith(op: ArithOp, a: Lit, b: Lit, at: usize) -> Result<Lit> {
    let overflow = || {
        FilterError::new(
            FilterErrorKind::Literal,
            at,
            "integer overflow in a constant expression",
        )
    };
    match (a, b) {
        (Lit::Int(x), Lit::Int(y)) => {
            if matches!(op, ArithOp::Div | ArithOp::Mod) && y == 0 {
                return Err(type_err(at, "division by zero"));
            }
            let r = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div => x.checked_div(y),
                ArithOp::Mod => x.checked_rem(y),
                ArithOp::Pow => {
                    if y < 0 {
                        return Ok(Lit::Float((x as f64).powf(y as f64)));
                    }
                    u32::try_from(y).ok().and_then(|e| x.checked_pow(e))
                }
            };
            r.map(Lit::Int).ok_or_else(overflow)
        }
        (x, y) if is_num(&x) && is_num(&y) => {
            let (x, y) = (as_f64(&x), as_f64(&y));
            Ok(Lit::Float(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if y == 0.0 => return Err(type_err(at, "division by zero")),
                ArithOp::Div => x / y,
                ArithOp::Mod => return Err(type_err(at, "'%' only applies to integers")),
                ArithOp::Pow => x.powf(y),
            }))
        }
        (x, y) => Err(type_err(
            at,
            format!(
                "cannot apply '{}' to a {} and a {}",
                op.symbol(),
                x.type_name(),
                y.type_name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_checked() {
        assert_eq!(
            fold_arith(ArithOp::Add, Lit::Int(2), Lit::Int(3), 0).unwrap(),
            Lit::Int(5)
        );
        assert_eq!(
            fold_arith(ArithOp::Pow, Lit::Int(2), Lit::Int(10), 0).unwrap(),
            Lit::Int(1024)
        );
        assert_eq!(
            fold_arith(ArithOp::Div, Lit::Int(7), Lit::Float(2.0), 0).unwrap(),
            Lit::Float(3.5)
        );
        assert!(fold_arith(ArithOp::Mul, Lit::Int(i64::MAX), Lit::Int(2), 0).is_err());
        assert!(fold_arith(ArithOp::Div, Lit::Int(1), Lit::Int(0), 0).is_err());
        assert!(fold_arith(ArithOp::Mod, Lit::Float(1.0), Lit::Int(2), 0).is_err());
        assert!(fold_arith(ArithOp::Add, Lit::Str("a".into()), Lit::Int(2), 0).is_err());
    }

    #[test]
    fn literals_order_across_numeric_types_only() {
        assert_eq!(
            lit_order(&Lit::Int(2), &Lit::Float(2.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            lit_order(&Lit::Str("a".into()), &Lit::Str("b".into())),
            Some(Ordering::Less)
        );
        assert_eq!(lit_order(&Lit::Int(1), &Lit::Str("1".into())), None);
    }
}
