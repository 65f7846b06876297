//! Name resolution: which value a field name or key path reads, and its static type.
//!
//! Order, as Milvus with the dynamic field enabled: the pk field, the text field, declared
//! fields, then (dynamic only) a key of the dynamic field: `a` ≡ `$meta["a"]`.

use quiverdb_types::Value;

use crate::compiled::{Acc, Lit, Step};
use crate::error::{FilterError, FilterErrorKind, Result};
use crate::lexer::Sel;
use crate::schema::{ElementType, FieldType, Params, Schema};

/// The static type of a resolved field reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Int,
    Float,
    Str,
    Bool,
    /// A JSON key path (dynamic key or declared JSON field with a path): typed per row.
    Json,
    /// A whole JSON column (`$meta`, or a declared JSON field without a path).
    JsonRoot,
    /// A whole ARRAY field.
    Array(ElementType),
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Int => "INT64",
            Ty::Float => "DOUBLE",
            Ty::Str => "VARCHAR",
            Ty::Bool => "BOOL",
            Ty::Json => "JSON",
            Ty::JsonRoot => "JSON",
            Ty::Array(_) => "ARRAY",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct FieldRef {
    pub acc: Acc,
    pub ty: Ty,
    /// Whether SQL NULL is possible (nullable typed field or nullable JSON root).
    pub nullable: bool,
    /// The name as written, for messages.
    pub name: String,
    pub at: usize,
}

fn elem_ty(e: ElementType) -> Ty {
    match e {
        ElementType::Bool => Ty::Bool,
        ElementType::Int64 => Ty::Int,
        ElementType::Double => Ty::Float,
        ElementType::VarChar => Ty::Str,
    }
}

fn steps(path: &[Sel]) -> Box<[Step]> {
    path.iter()
        .map(|s| match s {
            Sel::Key(k) => Step::Key(k.as_str().into()),
            Sel::Index(i) => Step::Index(*i),
        })
        .collect()
}

fn no_path(name: &str, path: &[Sel], at: usize, ty: &str) -> Result<()> {
    if path.is_empty() {
        Ok(())
    } else {
        Err(FilterError::new(
            FilterErrorKind::Type,
            at,
            format!("field '{name}' is {ty}: key paths only apply to JSON and ARRAY fields"),
        ))
    }
}

pub(crate) fn resolve(schema: &Schema, name: &str, path: &[Sel], at: usize) -> Result<FieldRef> {
    let shown = name.to_owned();
    let fr = |acc, ty, nullable| {
        Ok(FieldRef {
            acc,
            ty,
            nullable,
            name: shown.clone(),
            at,
        })
    };
    if name == "$meta" {
        if !schema.dynamic {
            return Err(FilterError::new(
                FilterErrorKind::UnknownField,
                at,
                "$meta is not available: the collection has no dynamic field",
            ));
        }
        return match path.split_first() {
            None => fr(
                Acc::Json {
                    key: "".into(),
                    path: Box::new([]),
                    null_root: false,
                },
                Ty::JsonRoot,
                false,
            ),
            Some((Sel::Key(k), rest)) => fr(
                Acc::Json {
                    key: k.as_str().into(),
                    path: steps(rest),
                    null_root: false,
                },
                Ty::Json,
                false,
            ),
            Some((Sel::Index(_), _)) => Err(FilterError::new(
                FilterErrorKind::Type,
                at,
                "$meta must be followed by a key, not an index",
            )
            .hint("write $meta[\"key\"]")),
        };
    }
    if name == schema.pk_field {
        no_path(name, path, at, "the primary key")?;
        return fr(
            Acc::Pk,
            if schema.pk_is_int { Ty::Int } else { Ty::Str },
            false,
        );
    }
    if name == schema.text_field {
        no_path(name, path, at, "VARCHAR")?;
        return fr(Acc::Text, Ty::Str, false);
    }
    if let Some(f) = schema.field(name) {
        let key: Box<str> = name.into();
        let typed = |ty: FieldType| Acc::Typed {
            key: key.clone(),
            ty,
        };
        return match f.ty {
            FieldType::Bool => {
                no_path(name, path, at, "BOOL").and_then(|_| fr(typed(f.ty), Ty::Bool, f.nullable))
            }
            FieldType::Int64 => {
                no_path(name, path, at, "INT64").and_then(|_| fr(typed(f.ty), Ty::Int, f.nullable))
            }
            FieldType::Double => no_path(name, path, at, "DOUBLE")
                .and_then(|_| fr(typed(f.ty), Ty::Float, f.nullable)),
            FieldType::VarChar => no_path(name, path, at, "VARCHAR")
                .and_then(|_| fr(typed(f.ty), Ty::Str, f.nullable)),
            FieldType::Vector => Err(FilterError::new(
                FilterErrorKind::Type,
                at,
                format!("vector field '{name}' cannot be filtered"),
            )),
            FieldType::Json => {
                let acc = Acc::Json {
                    key,
                    path: steps(path),
                    null_root: f.nullable,
                };
                fr(
                    acc,
                    if path.is_empty() {
                        Ty::JsonRoot
                    } else {
                        Ty::Json
                    },
                    f.nullable,
                )
            }
            FieldType::Array(e) => match path {
                [] => fr(typed(f.ty), Ty::Array(e), f.nullable),
                [Sel::Index(i)] => fr(Acc::Elem { key, index: *i }, elem_ty(e), true),
                _ => Err(FilterError::new(
                    FilterErrorKind::Type,
                    at,
                    format!("ARRAY field '{name}' takes exactly one integer index, like {name}[0]"),
                )),
            },
        };
    }
    if schema.dynamic {
        return fr(
            Acc::Json {
                key: name.into(),
                path: steps(path),
                null_root: false,
            },
            Ty::Json,
            false,
        );
    }
    Err(FilterError::new(
        FilterErrorKind::UnknownField,
        at,
        format!("field '{name}' does not exist"),
    )
    .hint("the collection has no dynamic field, so only declared fields can be filtered"))
}

/// The value of a `{name}` template as a literal.
pub(crate) fn template(params: &Params, name: &str, at: usize) -> Result<Lit> {
    let v = params.get(name).ok_or_else(|| {
        FilterError::new(
            FilterErrorKind::Template,
            at,
            format!("template {{{name}}} has no value"),
        )
        .hint(format!("pass a value for \"{name}\" in the filter params"))
    })?;
    value_lit(v).ok_or_else(|| {
        FilterError::new(
            FilterErrorKind::Template,
            at,
            format!(
                "template {{{name}}} holds a {}, which is not a filter constant",
                v.type_name()
            ),
        )
        .hint("use a bool, number, string or a list of those")
    })
}

fn value_lit(v: &Value) -> Option<Lit> {
    Some(match v {
        Value::Bool(b) => Lit::Bool(*b),
        Value::Int(i) => Lit::Int(*i),
        Value::Float(f) => Lit::Float(*f),
        Value::Str(s) => Lit::Str(s.as_str().into()),
        Value::List(l) => Lit::List(l.iter().map(value_lit).collect::<Option<_>>()?),
        Value::Null | Value::Map(_) => return None,
    })
}
