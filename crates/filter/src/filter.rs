//! The compiled [`Filter`] and [`compile`], the crate's entry point.

use quiverdb_types::Pk;

use crate::compiled::{Pred, Tri};
use crate::error::FilterError;
use crate::planner::{self, IndexHint};
use crate::schema::{Params, Row, Schema};

/// A compiled filter: parsed, type-checked and lowered once, evaluated per row.
///
/// `Send + Sync`, cheap to clone relative to compiling again.
#[derive(Clone, Debug)]
pub struct Filter {
    pred: Pred,
}

/// Compiles a Milvus boolean expression against `schema`, filling `{name}` templates from
/// `params`. An empty or whitespace-only expression matches every row.
pub fn compile(expr: &str, schema: &Schema, params: &Params) -> Result<Filter, FilterError> {
    let pred = match crate::parser::parse(expr)? {
        None => Pred::Const(true),
        Some(root) => crate::check::lower(&root, schema, params)?,
    };
    Ok(Filter { pred })
}

impl Filter {
    /// A filter that matches every row (what an empty expression compiles to).
    pub fn match_all() -> Filter {
        Filter {
            pred: Pred::Const(true),
        }
    }

    /// Whether `row` satisfies the filter (SQL NULL outcomes do not match).
    ///
    /// Generic so a concrete row type is read without virtual calls; `&dyn Row` works too.
    #[inline]
    pub fn matches<R: Row + ?Sized>(&self, row: &R) -> bool {
        self.pred.eval(row) == Tri::True
    }

    /// Whether every row matches (empty filter, or one folded to true like `1 == 1`).
    pub fn is_match_all(&self) -> bool {
        matches!(self.pred, Pred::Const(true))
    }

    /// Whether no row can match (folded to false, like `true and false`).
    pub fn is_match_none(&self) -> bool {
        matches!(self.pred, Pred::Const(false))
    }

    /// `Some(pks)` when only rows whose pk is in the list can match (top-level `pk == c`,
    /// `pk in [..]`, an `and` containing one, or an `or` of such). Sorted, deduplicated.
    /// Callers still call [`Filter::matches`].
    pub fn pk_candidates(&self) -> Option<Vec<Pk>> {
        planner::pk_candidates(&self.pred)
    }

    /// A top-level conjunct `key == const` / `key in [consts]` on a top-level metadata key,
    /// for a scalar index. Callers still call [`Filter::matches`].
    pub fn index_hint(&self) -> Option<IndexHint> {
        planner::index_hint(&self.pred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldType;
    use proptest::prelude::*;
    use quiverdb_types::{Metadata, Value};

    struct R(Pk, String, Metadata);
    impl Row for R {
        fn pk(&self) -> &Pk {
            &self.0
        }
        fn text(&self) -> &str {
            &self.1
        }
        fn metadata(&self) -> &Metadata {
            &self.2
        }
    }

    fn schema() -> Schema {
        Schema::dynamic("pk", true, "text")
            .with_field("age", FieldType::Int64, true)
            .with_field("price", FieldType::Double, false)
            .with_field("meta", FieldType::Json, true)
            .with_field(
                "tags",
                FieldType::Array(crate::schema::ElementType::VarChar),
                true,
            )
    }

    fn rows() -> Vec<R> {
        let mut m = Metadata::new();
        m.insert("age".into(), Value::Int(3));
        m.insert("price".into(), Value::Float(2.5));
        m.insert(
            "a".into(),
            Value::List(vec![Value::Int(1), Value::from("x")]),
        );
        m.insert("tags".into(), Value::List(vec![Value::from("t")]));
        m.insert(
            "meta".into(),
            Value::Map([("k".to_string(), Value::Int(i64::MAX))].into()),
        );
        vec![
            R(Pk::Int(1), "doc".into(), m),
            R(Pk::Int(i64::MIN), String::new(), Metadata::new()),
        ]
    }

    /// Compiles and, when it compiles, evaluates: neither may panic.
    fn exercise(expr: &str) {
        let (s, mut p) = (schema(), Params::new());
        p.insert("t".into(), Value::List(vec![Value::Int(1)]));
        if let Ok(f) = compile(expr, &s, &p) {
            for r in rows() {
                let _ = f.matches(&r);
            }
            let _ = (f.pk_candidates(), f.index_hint());
        }
    }

    fn atom() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "pk",
            "age",
            "price",
            "text",
            "meta[\"k\"]",
            "$meta[\"a\"][0]",
            "a",
            "tags",
            "tags[0]",
            "b",
            "1",
            "-1",
            "0x10",
            "010",
            "1.5",
            "1e3",
            "'s'",
            "\"x\\n\"",
            "true",
            "False",
            "[1, 'a']",
            "[]",
            "{t}",
            "{u}",
            "null",
            "$meta",
            "9223372036854775807",
        ])
        .prop_map(str::to_owned)
    }

    fn expr() -> impl Strategy<Value = String> {
        let ops = prop::sample::select(vec![
            "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "and", "or", "&&",
            "||", "in", "not in", "like", "<<", "&", "AND", "Or",
        ]);
        atom().prop_recursive(6, 64, 4, move |inner| {
            prop_oneof![
                (inner.clone(), ops.clone(), inner.clone())
                    .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
                inner.clone().prop_map(|a| format!("({a})")),
                inner.clone().prop_map(|a| format!("not {a}")),
                inner.clone().prop_map(|a| format!("-{a}")),
                inner.clone().prop_map(|a| format!("exists {a}")),
                inner.clone().prop_map(|a| format!("{a} is not null")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} < {b} <= 3")),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| format!("json_contains_any({a}, {b})")),
                inner
                    .clone()
                    .prop_map(|a| format!("array_length({a}) == 1")),
                inner.clone().prop_map(|a| format!("{a} like 'x_%\\\\%'")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn token_soup_never_panics(s in "[a-z$\\[\\]\"'\\\\0-9 .eExXbB_%(){},!=<>&|^~*/+-]{0,40}") {
            exercise(&s);
        }

        #[test]
        fn grammar_shaped_expressions_never_panic(s in expr()) {
            exercise(&s);
        }
    }

    #[test]
    fn regressions_and_extremes() {
        for s in [
            "",
            "\u{0}",
            "'\\",
            "'\\u",
            "'\\U0011FFFF'",
            "'\\ud800'",
            "'\\é'",
            "a[",
            "a[0",
            "$meta[0]",
            "$metax",
            "0x",
            "0b",
            "0x1.p",
            "-9223372036854775808 < pk",
            "pk == -(-9223372036854775807 - 1)",
            "2 ** 64 == pk",
            "2 ** -1 == price",
            "pk % -1 == 0",
            "meta[\"k\"] + 1 == 0",
            "meta[\"k\"] * -1 < 0",
            "tags[18446744073709551615] == 'a'",
            "tags[99999999999999999999999] == 'a'",
            "((((((((((",
            "not",
            "exists",
            "a is",
            "a is not",
            "json_contains(",
            "array_length(a",
        ] {
            exercise(s);
        }
        let deep = format!("{}pk == 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(
            compile(&deep, &schema(), &Params::new()).unwrap_err().kind,
            crate::FilterErrorKind::TooDeep
        );
        let list = format!("pk in [{}1]", "[".repeat(100_000));
        assert!(compile(&list, &schema(), &Params::new()).is_err());
        let big = format!("text == '{}'", "x".repeat(1 << 20));
        let f = compile(&big, &schema(), &Params::new()).unwrap();
        assert!(!f.matches(&rows()[0]));
        let chain = vec!["pk != 0"; 50_000].join(" and ");
        assert!(compile(&chain, &schema(), &Params::new())
            .unwrap()
            .matches(&rows()[0]));
    }
}

#[cfg(test)]
mod equivalences {
    //! Properties that must hold between forms of the same question on JSON keys (no SQL
    //! NULL involved): `!=` is `not ==` (missing keys satisfy both), `in` is a chain of `or`,
    //! a range is two comparisons.
    use super::*;
    use proptest::prelude::*;
    use quiverdb_types::{Metadata, Value};

    struct R(Pk, Metadata);
    impl Row for R {
        fn pk(&self) -> &Pk {
            &self.0
        }
        fn text(&self) -> &str {
            ""
        }
        fn metadata(&self) -> &Metadata {
            &self.1
        }
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            (-3i64..4).prop_map(|i| Some(Value::Int(i))),
            (-6i64..8).prop_map(|i| Some(Value::Float(i as f64 / 2.0))),
            prop::sample::select(vec!["a", "b", ""]).prop_map(|s| Some(Value::from(s))),
            any::<bool>().prop_map(|b| Some(Value::Bool(b))),
            Just(Some(Value::List(vec![Value::Int(1)]))),
        ]
    }

    fn constant() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "-1", "0", "1", "2", "1.5", "'a'", "''", "true", "false",
        ])
        .prop_map(str::to_owned)
    }

    fn m(expr: &str, r: &R) -> bool {
        compile(expr, &Schema::dynamic("pk", true, "text"), &Params::new())
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .matches(r)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn forms_agree(v in value(), c1 in constant(), c2 in constant()) {
            let mut meta = Metadata::new();
            if let Some(v) = v {
                meta.insert("x".into(), v);
            }
            let r = R(Pk::Int(1), meta);
            prop_assert_eq!(m(&format!("x != {c1}"), &r), m(&format!("not (x == {c1})"), &r));
            prop_assert_eq!(m(&format!("x not in [{c1}]"), &r), m(&format!("x != {c1}"), &r));
            for op in ["==", "<", "<=", ">", ">="] {
                let flipped = match op { "<" => ">", "<=" => ">=", ">" => "<", ">=" => "<=", o => o };
                prop_assert_eq!(m(&format!("x {op} {c1}"), &r), m(&format!("{c1} {flipped} x"), &r));
            }
            let same_kind = |a: &str, b: &str| {
                let k = |s: &str| if s.starts_with('\'') { 1 } else if s == "true" || s == "false" { 2 } else { 0 };
                k(a) == k(b)
            };
            if same_kind(&c1, &c2) {
                prop_assert_eq!(
                    m(&format!("x in [{c1}, {c2}]"), &r),
                    m(&format!("x == {c1} or x == {c2}"), &r)
                );
            }
            let num = |s: &str| s.parse::<f64>().ok();
            if let (Some(a), Some(b)) = (num(&c1), num(&c2)) {
                if a < b {
                    prop_assert_eq!(
                        m(&format!("{c1} < x <= {c2}"), &r),
                        m(&format!("x > {c1} and x <= {c2}"), &r)
                    );
                }
            }
        }
    }
}
