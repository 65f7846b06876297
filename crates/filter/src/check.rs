//! Type checking and lowering: parse tree → compiled [`Pred`], with Milvus's parse-time rules.
//!
//! Constants are folded, literals cast to the field type (an INT64 field never takes a
//! float), and every construct Milvus rejects is rejected here with a positioned message.

use std::cmp::Ordering;

use crate::ast::{ArithOp, CmpOp, Func, Kind, Node, UnOp};
use crate::compiled::{Contains, Lit, Pred, Test};
use crate::constants::{as_f64, cast, elem_cast, fold_arith, is_num, lit_order, whole_json};
use crate::error::{type_err, unsupported, FilterError, FilterErrorKind, Result};
use crate::like::LikePattern;
use crate::resolve::{resolve, template, FieldRef, Ty};
use crate::schema::{Params, Schema};

/// A lowered operand.
enum Val {
    /// `folded`: produced by constant folding (`1 == 1`), not written as a literal.
    Const {
        lit: Lit,
        template: bool,
        folded: bool,
        at: usize,
    },
    Field(FieldRef),
    Arith {
        field: FieldRef,
        op: ArithOp,
        k: Lit,
    },
    Len(FieldRef),
    Pred(Pred),
}

/// The boolean meaning of a node.
enum Bool {
    Pred(Pred),
    Const {
        value: bool,
        literal: bool,
        at: usize,
    },
}

pub(crate) fn lower(root: &Node, schema: &Schema, params: &Params) -> Result<Pred> {
    let cx = Cx { schema, params };
    match cx.boolean(root)? {
        Bool::Pred(p) => Ok(p),
        Bool::Const {
            value,
            literal: false,
            ..
        } => Ok(Pred::Const(value)),
        Bool::Const { at, .. } => Err(type_err(at, "predicate is not a boolean expression")
            .hint("a bare true/false is not a filter; use an empty filter to match every row")),
    }
}

struct Cx<'a> {
    schema: &'a Schema,
    params: &'a Params,
}

fn describe(v: &Val) -> String {
    match v {
        Val::Const { lit, .. } => format!("a {} constant", lit.type_name()),
        Val::Field(f) => format!("field '{}'", f.name),
        Val::Arith { field, .. } => format!("arithmetic on '{}'", field.name),
        Val::Len(f) => format!("array_length({})", f.name),
        Val::Pred(_) => "a boolean expression".to_owned(),
    }
}

impl Cx<'_> {
    fn boolean(&self, n: &Node) -> Result<Bool> {
        match self.value(n)? {
            Val::Pred(p) => Ok(Bool::Pred(p)),
            Val::Const {
                lit: Lit::Bool(b),
                folded,
                at,
                ..
            } => Ok(Bool::Const {
                value: b,
                literal: !folded,
                at,
            }),
            Val::Field(f) => {
                let mut e = type_err(f.at, format!("'{}' is not a boolean expression", f.name));
                e = if f.ty == Ty::Bool || f.ty == Ty::Json {
                    e.hint(format!("compare it: {} == true", f.name))
                } else {
                    e.hint("a filter needs a comparison, like x > 1")
                };
                Err(e)
            }
            other => Err(type_err(
                n.at,
                format!("{} is not a boolean expression", describe(&other)),
            )
            .hint("a filter needs a comparison, like x > 1")),
        }
    }

    fn field(&self, n: &Node, what: &str) -> Result<FieldRef> {
        match self.value(n)? {
            Val::Field(f) => Ok(f),
            other => Err(type_err(
                n.at,
                format!("{what} needs a field, got {}", describe(&other)),
            )),
        }
    }

    fn constant(&self, n: &Node, what: &str) -> Result<Lit> {
        match self.value(n)? {
            Val::Const { lit, .. } => Ok(lit),
            other => Err(type_err(
                n.at,
                format!("{what} needs a constant, got {}", describe(&other)),
            )),
        }
    }

    fn value(&self, n: &Node) -> Result<Val> {
        let at = n.at;
        let c = |lit| {
            Ok(Val::Const {
                lit,
                template: false,
                folded: false,
                at,
            })
        };
        match &n.kind {
            Kind::Int(i) => c(Lit::Int(*i)),
            Kind::Float(f) => c(Lit::Float(*f)),
            Kind::Str(s) => c(Lit::Str(s.as_str().into())),
            Kind::Bool(b) => c(Lit::Bool(*b)),
            Kind::Template(name) => Ok(Val::Const {
                lit: template(self.params, name, at)?,
                template: true,
                folded: false,
                at,
            }),
            Kind::List(items) => {
                let lits = items
                    .iter()
                    .map(|i| self.constant(i, "a list element"))
                    .collect::<Result<Vec<_>>>()?;
                c(Lit::List(lits.into_boxed_slice()))
            }
            Kind::Field { name, path } => {
                if path.is_empty() && (name == "null" || name == "NULL") {
                    return Err(
                        type_err(at, "null is not a value").hint("test for null with 'x is null'")
                    );
                }
                Ok(Val::Field(resolve(self.schema, name, path, at)?))
            }
            Kind::Unary(UnOp::Not, x) => match self.boolean(x)? {
                Bool::Pred(p) => Ok(Val::Pred(Pred::Not(Box::new(p)))),
                Bool::Const { value, .. } => Ok(Val::Const {
                    lit: Lit::Bool(!value),
                    template: false,
                    folded: true,
                    at,
                }),
            },
            Kind::Unary(UnOp::BitNot, _) => {
                Err(unsupported(at, "bitwise operator '~' is not supported")
                    .hint("Milvus 2.x parses but rejects bitwise operators"))
            }
            Kind::Bitwise(op) => Err(unsupported(
                at,
                format!("bitwise operator '{op}' is not supported"),
            )
            .hint("Milvus 2.x parses but rejects shifts and bitwise operators")),
            Kind::Unary(op, x) => match self.value(x)? {
                Val::Const { lit, template, .. } => {
                    let lit = match (op, lit) {
                        (UnOp::Pos, l) if is_num(&l) => l,
                        (UnOp::Neg, Lit::Int(i)) => Lit::Int(i.checked_neg().ok_or_else(|| {
                            FilterError::new(FilterErrorKind::Literal, at, "integer overflow")
                        })?),
                        (UnOp::Neg, Lit::Float(f)) => Lit::Float(-f),
                        (_, l) => {
                            return Err(type_err(
                                at,
                                format!("unary sign cannot apply to a {}", l.type_name()),
                            ))
                        }
                    };
                    Ok(Val::Const {
                        lit,
                        template,
                        folded: true,
                        at,
                    })
                }
                other => Err(unsupported(
                    at,
                    format!("unary sign cannot apply to {}", describe(&other)),
                )
                .hint("signs only apply to constants: write 'x < 3' instead of '-x > -3'")),
            },
            Kind::Arith(op, a, b) => self.arith(*op, a, b, at),
            Kind::Cmp(op, a, b) => self.compare(*op, a, b, at),
            Kind::Range {
                lo,
                lo_incl,
                field,
                hi_incl,
                hi,
            } => self.range(lo, *lo_incl, field, *hi_incl, hi, at),
            Kind::In { lhs, rhs, negated } => {
                let p = self.membership(lhs, rhs, at)?;
                Ok(Val::Pred(if *negated { Pred::Not(Box::new(p)) } else { p }))
            }
            Kind::Like { lhs, pattern } => {
                let f = self.field(lhs, "like")?;
                if !matches!(f.ty, Ty::Str | Ty::Json) {
                    return Err(type_err(
                        at,
                        format!("like cannot apply to {} field '{}'", f.ty.name(), f.name),
                    )
                    .hint("like works on VARCHAR fields and JSON strings"));
                }
                Ok(Val::Pred(Pred::Test(
                    f.acc,
                    Test::Like(LikePattern::compile(pattern)),
                )))
            }
            Kind::And(items) | Kind::Or(items) => {
                let is_and = matches!(n.kind, Kind::And(_));
                self.logic(items, is_and, at)
            }
            Kind::Exists(x) => {
                let f = self.field(x, "exists")?;
                match f.ty {
                    Ty::Json => Ok(Val::Pred(Pred::Test(f.acc, Test::Exists))),
                    Ty::JsonRoot => Err(type_err(f.at, "exists needs a key path")
                        .hint(format!("write exists {}[\"key\"]", f.name))),
                    _ => Err(type_err(
                        f.at,
                        format!(
                            "exists only applies to JSON keys, '{}' is {}",
                            f.name,
                            f.ty.name()
                        ),
                    )),
                }
            }
            Kind::IsNull { field, negated } => {
                let f = self.field(field, "is null")?;
                let p = match f.ty {
                    Ty::JsonRoot => return Err(whole_json(&f)),
                    _ if f.nullable || f.ty == Ty::Json => Pred::Test(f.acc, Test::IsNull),
                    _ => Pred::Const(false),
                };
                Ok(Val::Pred(if *negated { negate(p) } else { p }))
            }
            Kind::Call(func, args) => self.call(*func, args, at),
        }
    }

    fn logic(&self, items: &[Node], is_and: bool, at: usize) -> Result<Val> {
        let word = if is_and { "and" } else { "or" };
        let mut preds = Vec::new();
        let mut consts = Vec::new();
        for i in items {
            match self.boolean(i)? {
                Bool::Pred(p) => preds.push(p),
                Bool::Const { value, at, .. } => consts.push((value, at)),
            }
        }
        if preds.is_empty() {
            let v = if is_and {
                consts.iter().all(|c| c.0)
            } else {
                consts.iter().any(|c| c.0)
            };
            return Ok(Val::Const {
                lit: Lit::Bool(v),
                template: false,
                folded: true,
                at,
            });
        }
        if let Some((_, cat)) = consts.first() {
            return Err(type_err(
                *cat,
                format!("'{word}' needs a condition on both sides, not a constant"),
            )
            .hint("remove the constant true/false"));
        }
        Ok(Val::Pred(if is_and {
            Pred::And(preds.into())
        } else {
            Pred::Or(preds.into())
        }))
    }

    fn arith(&self, op: ArithOp, a: &Node, b: &Node, at: usize) -> Result<Val> {
        let (va, vb) = (self.value(a)?, self.value(b)?);
        match (va, vb) {
            (
                Val::Const {
                    lit: x,
                    template: t1,
                    ..
                },
                Val::Const {
                    lit: y,
                    template: t2,
                    ..
                },
            ) => {
                if t1 || t2 {
                    return Err(FilterError::new(
                        FilterErrorKind::Template,
                        at,
                        "a template cannot be combined with another constant",
                    ));
                }
                Ok(Val::Const {
                    lit: fold_arith(op, x, y, at)?,
                    template: false,
                    folded: true,
                    at,
                })
            }
            (Val::Field(f), Val::Const { lit, .. }) => self.field_arith(f, op, lit, at),
            (Val::Const { lit, .. }, Val::Field(f)) => match op {
                ArithOp::Add | ArithOp::Mul => self.field_arith(f, op, lit, at),
                ArithOp::Pow => Err(unsupported(at, "power can only apply on constants")),
                _ => Err(unsupported(
                    at,
                    format!("'constant {} field' is not supported", op.symbol()),
                )
                .hint(format!(
                    "rewrite it with the field on the left, like {} {} c",
                    f.name,
                    op.symbol()
                ))),
            },
            (x, y) => Err(unsupported(
                at,
                format!(
                    "arithmetic between {} and {} is not supported",
                    describe(&x),
                    describe(&y)
                ),
            )
            .hint("use one field and constants, like a + 1 > 3")),
        }
    }

    fn field_arith(&self, f: FieldRef, op: ArithOp, k: Lit, at: usize) -> Result<Val> {
        if op == ArithOp::Pow {
            return Err(unsupported(at, "power can only apply on constants"));
        }
        let k = match (f.ty, k) {
            (Ty::Int, l @ Lit::Int(_)) => l,
            (Ty::Float, l) if is_num(&l) && op != ArithOp::Mod => Lit::Float(as_f64(&l)),
            (Ty::Json, l) if is_num(&l) => l,
            (Ty::Int | Ty::Float | Ty::Json, l) => {
                return Err(type_err(
                    at,
                    format!(
                        "cannot apply '{}' to {} field '{}' and a {}",
                        op.symbol(),
                        f.ty.name(),
                        f.name,
                        l.type_name()
                    ),
                ))
            }
            (_, _) => {
                return Err(type_err(
                    at,
                    format!(
                        "arithmetic needs a numeric field, '{}' is {}",
                        f.name,
                        f.ty.name()
                    ),
                ))
            }
        };
        if matches!(op, ArithOp::Div | ArithOp::Mod) && as_f64(&k) == 0.0 {
            return Err(type_err(at, "division by zero"));
        }
        if op == ArithOp::Mod && matches!(k, Lit::Float(_)) {
            return Err(type_err(at, "'%' only applies to integers"));
        }
        Ok(Val::Arith { field: f, op, k })
    }

    fn compare(&self, op: CmpOp, a: &Node, b: &Node, at: usize) -> Result<Val> {
        let (va, vb) = (self.value(a)?, self.value(b)?);
        let (lhs, op, rhs) = match (&va, &vb) {
            (Val::Const { .. }, Val::Const { .. }) => (va, op, vb),
            (Val::Const { .. }, _) => (vb, op.flip(), va),
            _ => (va, op, vb),
        };
        let p = match (lhs, rhs) {
            (Val::Const { lit: x, .. }, Val::Const { lit: y, .. }) => {
                let o = lit_order(&x, &y).ok_or_else(|| {
                    type_err(
                        at,
                        format!(
                            "cannot compare a {} with a {}",
                            x.type_name(),
                            y.type_name()
                        ),
                    )
                })?;
                return Ok(Val::Const {
                    lit: Lit::Bool(op.holds(o)),
                    template: false,
                    folded: true,
                    at,
                });
            }
            (Val::Field(f), Val::Const { lit, at: cat, .. }) => {
                if matches!(f.ty, Ty::Json)
                    && matches!(lit, Lit::List(_))
                    && !matches!(op, CmpOp::Eq | CmpOp::Ne)
                {
                    return Err(type_err(
                        at,
                        format!("'{}' cannot compare with a list", op.symbol()),
                    ));
                }
                let lit = cast(&f, lit, cat, true)?;
                Pred::Test(f.acc, Test::Cmp(op, lit))
            }
            (
                Val::Arith {
                    field, op: aop, k, ..
                },
                Val::Const { lit, at: cat, .. },
            ) => {
                let rhs = match (field.ty, lit) {
                    (Ty::Int, l @ Lit::Int(_)) => l,
                    (Ty::Float, l) if is_num(&l) => Lit::Float(as_f64(&l)),
                    (Ty::Json, l) if is_num(&l) => l,
                    (_, l) => {
                        return Err(type_err(
                            cat,
                            format!(
                                "cannot compare arithmetic on {} field '{}' with a {}",
                                field.ty.name(),
                                field.name,
                                l.type_name()
                            ),
                        ))
                    }
                };
                Pred::Test(
                    field.acc,
                    Test::Arith {
                        op: aop,
                        k,
                        cmp: op,
                        rhs,
                    },
                )
            }
            (
                Val::Len(f),
                Val::Const {
                    lit: Lit::Int(n), ..
                },
            ) => Pred::Test(f.acc, Test::ArrayLen(op, n)),
            (Val::Len(_), Val::Const { lit, at: cat, .. }) => {
                return Err(type_err(
                    cat,
                    format!(
                        "array_length is an integer, not comparable with a {}",
                        lit.type_name()
                    ),
                ))
            }
            (Val::Field(x), Val::Field(y)) => {
                let scalar = |t: Ty| matches!(t, Ty::Int | Ty::Float | Ty::Str | Ty::Bool);
                let compatible = match (x.ty, y.ty) {
                    (Ty::Int | Ty::Float, Ty::Int | Ty::Float) => true,
                    (a, b) => a == b && scalar(a),
                };
                if !compatible {
                    let mut e = type_err(
                        at,
                        format!(
                            "cannot compare {} field '{}' with {} field '{}'",
                            x.ty.name(),
                            x.name,
                            y.ty.name(),
                            y.name
                        ),
                    );
                    let miscased = [&x.name, &y.name]
                        .into_iter()
                        .find(|n| matches!(n.to_ascii_lowercase().as_str(), "true" | "false"));
                    e = match miscased {
                        Some(n) => e.hint(format!("'{n}' is a field name; booleans are spelled true, True, TRUE, false, False or FALSE")),
                        None if x.ty == Ty::Json || y.ty == Ty::Json => e.hint("JSON keys can only be compared with constants"),
                        None => e,
                    };
                    return Err(e);
                }
                Pred::Fields(x.acc, op, y.acc)
            }
            (x, y) => {
                return Err(type_err(
                    at,
                    format!("cannot compare {} with {}", describe(&x), describe(&y)),
                )
                .hint("combine conditions with and / or; compare fields with constants"))
            }
        };
        Ok(Val::Pred(p))
    }

    fn range(
        &self,
        lo: &Node,
        lo_incl: bool,
        field: &Node,
        hi_incl: bool,
        hi: &Node,
        at: usize,
    ) -> Result<Val> {
        let f = self.field(field, "a range")?;
        let lo_l = self.constant(lo, "a range bound")?;
        let hi_l = self.constant(hi, "a range bound")?;
        let (lo_l, hi_l) = match f.ty {
            Ty::Bool => {
                return Err(type_err(
                    at,
                    format!("range operations do not apply to BOOL field '{}'", f.name),
                ))
            }
            Ty::Json => {
                let same = (is_num(&lo_l) && is_num(&hi_l))
                    || (matches!(lo_l, Lit::Str(_)) && matches!(hi_l, Lit::Str(_)));
                if !same {
                    return Err(type_err(
                        at,
                        "range bounds must both be numbers or both be strings",
                    ));
                }
                (lo_l, hi_l)
            }
            _ => (cast(&f, lo_l, lo.at, false)?, cast(&f, hi_l, hi.at, false)?),
        };
        let ok = match lit_order(&lo_l, &hi_l) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => lo_incl && hi_incl,
            _ => false,
        };
        if !ok {
            return Err(type_err(
                at,
                "invalid range: the lower bound is not below the upper bound",
            )
            .hint("an empty range matches nothing; check the bounds"));
        }
        Ok(Val::Pred(Pred::Test(
            f.acc,
            Test::Range {
                lo: lo_l,
                lo_incl,
                hi: hi_l,
                hi_incl,
            },
        )))
    }

    fn membership(&self, lhs: &Node, rhs: &Node, at: usize) -> Result<Pred> {
        let f = self.field(lhs, "in")?;
        let items = match self.value(rhs)? {
            Val::Const {
                lit: Lit::List(items),
                ..
            } => items,
            other => {
                return Err(type_err(
                    rhs.at,
                    format!(
                        "the right side of 'in' must be a list, got {}",
                        describe(&other)
                    ),
                )
                .hint("write x in [1, 2, 3]"))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.into_vec() {
            if matches!(item, Lit::List(_)) {
                return Err(type_err(rhs.at, "'in' lists cannot contain lists"));
            }
            out.push(cast(&f, item, rhs.at, false)?);
        }
        if f.ty == Ty::Json {
            let class = |l: &Lit| match l {
                Lit::Int(_) | Lit::Float(_) => 0,
                Lit::Str(_) => 1,
                _ => 2,
            };
            if out.windows(2).any(|w| class(&w[0]) != class(&w[1])) {
                return Err(
                    type_err(rhs.at, "'in' on a JSON key needs list elements of one type")
                        .hint("split it: (x in [1, 2]) or (x in ['a'])"),
                );
            }
        }
        let _ = at;
        Ok(Pred::Test(f.acc, Test::In(out.into_boxed_slice())))
    }

    fn call(&self, func: Func, args: &[Node], at: usize) -> Result<Val> {
        let (Some(first), second) = (args.first(), args.get(1)) else {
            return Err(type_err(at, format!("{} needs arguments", func.name())));
        };
        let f = self.field(first, func.name())?;
        let elem = match f.ty {
            Ty::Json => None,
            Ty::Array(e) => Some(e),
            Ty::JsonRoot => return Err(whole_json(&f)),
            _ => {
                return Err(type_err(
                    f.at,
                    format!(
                        "{} needs a JSON key or an ARRAY field, '{}' is {}",
                        func.name(),
                        f.name,
                        f.ty.name()
                    ),
                ))
            }
        };
        if func == Func::ArrayLength {
            return Ok(Val::Len(f));
        }
        let Some(arg) = second else {
            return Err(type_err(at, format!("{} needs two arguments", func.name())));
        };
        let lit = self.constant(arg, func.name())?;
        let cast_elem = |l: Lit| match elem {
            Some(e) => elem_cast(e, l, arg.at, &f.name),
            None => Ok(l),
        };
        let (mode, lits) = match func {
            Func::JsonContains | Func::ArrayContains => (Contains::One, vec![cast_elem(lit)?]),
            _ => {
                let mode = if matches!(func, Func::JsonContainsAll | Func::ArrayContainsAll) {
                    Contains::All
                } else {
                    Contains::Any
                };
                let Lit::List(items) = lit else {
                    return Err(type_err(
                        arg.at,
                        format!("{} needs a list of values", func.name()),
                    )
                    .hint(format!(
                        "write {}({}, [v1, v2])",
                        func.name(),
                        f.name
                    )));
                };
                if items.is_empty() {
                    return Err(type_err(
                        arg.at,
                        format!("{} needs a non-empty list", func.name()),
                    ));
                }
                (
                    mode,
                    items
                        .into_vec()
                        .into_iter()
                        .map(cast_elem)
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        let _ = at;
        Ok(Val::Pred(Pred::Test(
            f.acc,
            Test::Contains(mode, lits.into_boxed_slice()),
        )))
    }
}

fn negate(p: Pred) -> Pred {
    match p {
        Pred::Const(b) => Pred::Const(!b),
        p => Pred::Not(Box::new(p)),
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::{FieldType, Params, Schema};
    use crate::{compile, FilterErrorKind};

    fn schema() -> Schema {
        Schema::dynamic("pk", true, "text")
            .with_field("age", FieldType::Int64, true)
            .with_field("flag", FieldType::Bool, false)
            .with_field("js", FieldType::Json, true)
    }

    fn kind(expr: &str) -> Option<FilterErrorKind> {
        compile(expr, &schema(), &Params::new())
            .err()
            .map(|e| e.kind)
    }

    #[test]
    fn milvus_parse_time_rules_are_enforced() {
        let rejected = [
            "pk < 3 and true",
            "true",
            "flag",
            "not flag",
            "js == 1",
            "exists js",
            "js is null",
            "exists age",
            "x in [1, 'a']",
            "x in [[1]]",
            "x in 5",
            "10 < pk < 5",
            "3 < pk <= 3",
            "1 < flag < 2",
            "1 < x < 'a'",
            "x > [1]",
            "x == y",
            "age + 1.5 > 2",
            "age % 2.0 == 0",
            "text + 1 == 2",
            "json_contains(age, 1)",
            "array_length(age) == 1",
            "array_length(x) == 'a'",
            "x like 'a' and 1",
            "age == flag",
            "x % 2.5 == 1",
        ];
        for e in rejected {
            assert!(kind(e).is_some(), "{e} must be rejected");
        }
        let accepted = [
            "1 == 1",
            "true and false",
            "not (1 > 2)",
            "pk is null",
            "text is not null",
            "3 <= pk <= 3",
            "x == [1, 'a']",
            "x in []",
            "flag != flag",
            "age < pk",
            "js[\"a\"][0] > 1",
            "exists $meta[\"k\"]",
            "x % 2 == 1",
        ];
        for e in accepted {
            assert_eq!(kind(e), None, "{e} must compile");
        }
        assert_eq!(kind("pk == 1.0"), Some(FilterErrorKind::Type));
        assert_eq!(kind("pk == {p}"), Some(FilterErrorKind::Template));
        assert_eq!(kind("a ^ 1 == 2"), Some(FilterErrorKind::Unsupported));
    }

    #[test]
    fn constant_predicates_fold() {
        let c = |e: &str| compile(e, &schema(), &Params::new()).unwrap();
        assert!(c("1 == 1").is_match_all());
        assert!(c("true and false").is_match_none());
        assert!(c("pk is null").is_match_none());
        assert!(c("pk is not null").is_match_all());
    }
}
