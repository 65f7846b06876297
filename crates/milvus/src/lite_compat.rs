//! Workarounds for the Milvus Lite 2.5.1 endpoint (the C++ server in the `milvus-lite`
//! wheel that CI runs), kept in this one module. Each is also correct against a real
//! Milvus 2.5/2.6 server, so there is no separate "server path" to drift:
//!
//! 1. **No expression templates.** Lite answers `{name}` placeholders with "expr type
//!    check failed" (and the SDK's `get(ids)` / `delete().ids()` send templates), so id
//!    lookups and deletes send literal `pk in [...]` filters built by [`pk_in_filter`], and
//!    caller [`Params`] are substituted client-side by [`substitute_params`]. Every value
//!    goes through [`literal`], which quotes and escapes strings for the server's
//!    lexer (Go `strconv.Unquote` rules); user text is never pasted into an expression.
//! 2. **Search hits are not readable as rows** (Lite leaves `primary_field_name` empty and
//!    the SDK's `rows()` refuses that): hits are read column-wise with `get_ids()`,
//!    `get_scores()` and `get_output_field()` in [`read_hits`].
//! 3. **`list_collections` fails once a collection exists** (no `collection_ids` in the
//!    answer): the store only ever asks `has_collection` / `describe_collection`.
//! 4. **No `GetVersion` / `CheckHealth`**: readiness is `ClientV2::new`'s own `Connect`
//!    retry loop, bounded by the connect timeout; neither call is made.
//! 5. **Index creation is not awaited server-side** (`sync(false)`): Lite 3.2.2 lacks the
//!    `AllocTimestamp` call the SDK's synchronous wait uses; `load_collection` waits.

use milvus::v2::prelude::{FieldData, Ids, SingleResult};
use quiverdb::types::{Metadata, Pk, Value};
use quiverdb::{Error, FilterParams as Params, Result};

/// A string as a Milvus string literal: double-quoted, with `"` and `\` escaped, CR and
/// LF written as `\r` / `\n` (the lexer refuses them raw), every other character as is.
///
/// Other control characters stay raw on purpose: the grammar allows them inside a
/// literal, and Milvus Lite 2.5.1 matches a raw tab but not the escape `\t` (observed;
/// it decodes only `\"` and `\\`). Consequence on Lite: a key containing CR or LF can
/// be stored and found by search or filter, but not looked up or deleted by key.
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A metadata value as a Milvus literal (numbers, booleans, strings, lists of those).
/// `null`, objects and non-finite floats have no literal form and are refused.
pub fn literal(v: &Value) -> Result<String> {
    Ok(match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => {
            // `{:?}` keeps a decimal point or exponent, so the server reads a float.
            format!("{f:?}")
        }
        Value::Float(f) => {
            return Err(Error::InvalidArgument(format!(
                "{f} has no Milvus literal (only finite floats)"
            )))
        }
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => quote_str(s),
        Value::List(items) => {
            let parts = items.iter().map(literal).collect::<Result<Vec<_>>>()?;
            format!("[{}]", parts.join(", "))
        }
        Value::Null | Value::Map(_) => {
            return Err(Error::InvalidArgument(format!(
                "a {} value has no Milvus literal",
                v.type_name()
            )))
        }
    })
}

/// A primary key as a Milvus literal.
pub fn pk_literal(pk: &Pk) -> String {
    match pk {
        Pk::Int(i) => i.to_string(),
        Pk::Str(s) => quote_str(s),
    }
}

/// `field in [k1, k2, ...]` with every key quoted and escaped.
pub fn pk_in_filter(field: &str, pks: &[Pk]) -> String {
    let mut out = String::with_capacity(field.len() + 8 + pks.len() * 8);
    out.push_str(field);
    out.push_str(" in [");
    for (i, pk) in pks.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&pk_literal(pk));
    }
    out.push(']');
    out
}

/// Whether `s` is a Milvus identifier (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `{name}` placeholder outside string literals with the literal of
/// `params[name]`. A placeholder without a value is an error (the server would fail on
/// it anyway, with a less helpful message); braces inside strings are left alone.
pub fn substitute_params(expr: &str, params: &Params) -> Result<String> {
    if !expr.contains('{') {
        return Ok(expr.to_owned());
    }
    let mut out = String::with_capacity(expr.len() + 16);
    let mut chars = expr.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' {
                    if let Some((_, next)) = chars.next() {
                        out.push(next);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '{' => {
                let rest = &expr[i + 1..];
                let name = rest.split('}').next().filter(|_| rest.contains('}'));
                match name.map(str::trim).filter(|n| is_identifier(n)) {
                    Some(name) => {
                        let value = params.get(name).ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "filter {expr:?} uses {{{name}}} but no value was given for it"
                            ))
                        })?;
                        out.push_str(&literal(value)?);
                        // Skip past the closing brace.
                        for (_, c) in chars.by_ref() {
                            if c == '}' {
                                break;
                            }
                        }
                    }
                    None => out.push(c),
                }
            }
            None => out.push(c),
        }
    }
    Ok(out)
}

/// One search hit read column-wise: its key, score, text and dynamic fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The primary key.
    pub pk: Pk,
    /// The metric's raw score.
    pub score: f32,
    /// The text field.
    pub text: String,
    /// The dynamic fields.
    pub metadata: Metadata,
}

/// The hits of one query vector, read through `get_ids()` / `get_scores()` /
/// `get_output_field()` (workaround 2).
pub fn read_hits(result: &SingleResult, text_field: &str) -> Result<Vec<Hit>> {
    let pks = ids_to_pks(result.get_ids())?;
    let scores = result.get_scores();
    if scores.len() != pks.len() {
        return Err(malformed(format!(
            "{} ids but {} scores in a search result",
            pks.len(),
            scores.len()
        )));
    }
    let texts = text_column(result.get_output_field(text_field), pks.len())?;
    let metas = meta_column(result.get_output_field(DYNAMIC_FIELD), pks.len())?;
    Ok(pks
        .into_iter()
        .zip(scores)
        .zip(texts)
        .zip(metas)
        .map(|(((pk, &score), text), metadata)| Hit {
            pk,
            score,
            text,
            metadata,
        })
        .collect())
}

/// Milvus's name of the dynamic-field JSON column.
pub const DYNAMIC_FIELD: &str = "$meta";

/// A result's ids as our keys.
pub fn ids_to_pks(ids: &Ids) -> Result<Vec<Pk>> {
    match ids {
        Ids::Int64(v) => Ok(v.iter().map(|&i| Pk::Int(i)).collect()),
        Ids::VarChar(v) => Ok(v.iter().map(|s| Pk::Str(s.clone())).collect()),
        other => Err(malformed(format!("unsupported id column {other:?}"))),
    }
}

/// A key column (int64 or varchar) as our keys.
pub fn pk_column(field: Option<&FieldData>, name: &str) -> Result<Vec<Pk>> {
    let field = field.ok_or_else(|| malformed(format!("no {name:?} column in the answer")))?;
    if let Some(v) = field.as_int64() {
        return Ok(v.iter().map(|&i| Pk::Int(i)).collect());
    }
    if let Some(v) = field.as_varchar() {
        return Ok(v.iter().map(|s| Pk::Str(s.clone())).collect());
    }
    Err(malformed(format!(
        "the {name:?} column is not int64 or varchar"
    )))
}

/// The text column, or empty texts when the server sent none.
pub fn text_column(field: Option<&FieldData>, n: usize) -> Result<Vec<String>> {
    match field {
        None => Ok(vec![String::new(); n]),
        Some(f) => {
            let v = f
                .as_varchar()
                .ok_or_else(|| malformed("the text column is not varchar".into()))?;
            check_len(v.len(), n, "text")?;
            Ok(v.to_vec())
        }
    }
}

/// The dynamic-field column as metadata, or empty metadata when the server sent none.
pub fn meta_column(field: Option<&FieldData>, n: usize) -> Result<Vec<Metadata>> {
    match field {
        None => Ok(vec![Metadata::new(); n]),
        Some(f) => {
            let v = f
                .as_json()
                .ok_or_else(|| malformed("the dynamic-field column is not JSON".into()))?;
            check_len(v.len(), n, "dynamic-field")?;
            Ok(v.iter().map(json_to_metadata).collect())
        }
    }
}

fn check_len(got: usize, want: usize, what: &str) -> Result<()> {
    if got != want {
        return Err(malformed(format!("{got} {what} values for {want} rows")));
    }
    Ok(())
}

/// A JSON object as metadata. Numbers that fit `i64` are ints, other numbers floats;
/// anything but an object is empty metadata.
pub fn json_to_metadata(v: &serde_json::Value) -> Metadata {
    match json_to_value(v) {
        Value::Map(m) => m,
        _ => Metadata::new(),
    }
}

fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::List(a.iter().map(json_to_value).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        ),
    }
}

pub(crate) fn malformed(message: String) -> Error {
    Error::Remote {
        code: -1,
        message: format!("malformed answer from the server: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(quote_str("plain"), r#""plain""#);
        assert_eq!(quote_str(r#"a"b"#), r#""a\"b""#);
        assert_eq!(quote_str(r"a\b"), r#""a\\b""#);
        assert_eq!(quote_str("it's"), r#""it's""#);
        assert_eq!(quote_str("l1\nl2\r\t"), "\"l1\\nl2\\r\t\"");
        assert_eq!(quote_str("\u{1}\u{1b}"), "\"\u{1}\u{1b}\"");
        assert_eq!(quote_str("日本 é 🎉"), "\"日本 é 🎉\"");
        // An injection attempt stays inside its literal.
        let evil = r#"x"] or pk != "y"#;
        assert_eq!(
            pk_in_filter("pk", &[Pk::from(evil)]),
            r#"pk in ["x\"] or pk != \"y"]"#
        );
        // A trailing backslash cannot escape the closing quote.
        assert_eq!(quote_str("a\\"), r#""a\\""#);
    }

    #[test]
    fn pk_filters() {
        assert_eq!(
            pk_in_filter("id", &[Pk::Int(1), Pk::Int(-2)]),
            "id in [1, -2]"
        );
        assert_eq!(pk_in_filter("pk", &[]), "pk in []");
        assert_eq!(
            pk_in_filter("pk", &[Pk::from("a"), Pk::from("b'c")]),
            r#"pk in ["a", "b'c"]"#
        );
    }

    #[test]
    fn literals() {
        assert_eq!(literal(&Value::Float(2.0)).unwrap(), "2.0");
        assert_eq!(literal(&Value::Float(1e-7)).unwrap(), "1e-7");
        assert_eq!(literal(&Value::Bool(true)).unwrap(), "true");
        assert_eq!(
            literal(&Value::List(vec![Value::Int(1), Value::from("x")])).unwrap(),
            r#"[1, "x"]"#
        );
        assert!(literal(&Value::Float(f64::NAN)).is_err());
        assert!(literal(&Value::Null).is_err());
    }

    #[test]
    fn placeholders_are_filled_outside_strings_only() {
        let mut p = Params::new();
        p.insert("cat".into(), Value::from(r#"a"b"#));
        p.insert(
            "ids".into(),
            Value::List(vec![Value::Int(1), Value::Int(2)]),
        );
        assert_eq!(
            substitute_params("category == {cat} and pk in {ids}", &p).unwrap(),
            r#"category == "a\"b" and pk in [1, 2]"#
        );
        // Braces inside a literal, escaped quotes inside a literal.
        assert_eq!(
            substitute_params(r#"t == "{cat}" and u == 'x\'{cat}'"#, &p).unwrap(),
            r#"t == "{cat}" and u == 'x\'{cat}'"#
        );
        assert_eq!(
            substitute_params("a == { cat }", &p).unwrap(),
            r#"a == "a\"b""#
        );
        assert!(matches!(
            substitute_params("a == {missing}", &p),
            Err(Error::InvalidArgument(_))
        ));
        // Not a placeholder: left for the server to judge.
        assert_eq!(substitute_params("a == {", &p).unwrap(), "a == {");
        assert_eq!(
            substitute_params("x == 1", &Params::new()).unwrap(),
            "x == 1"
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("pk"));
        assert!(is_identifier("_a1"));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("a b"));
    }

    #[test]
    fn json_metadata() {
        let m = json_to_metadata(
            &serde_json::json!({"a": 1, "b": 1.5, "c": [true, null], "d": {"e": "f"}, "big": 18446744073709551615u64}),
        );
        assert_eq!(m["a"], Value::Int(1));
        assert_eq!(m["b"], Value::Float(1.5));
        assert_eq!(m["c"], Value::List(vec![Value::Bool(true), Value::Null]));
        assert!(matches!(m["big"], Value::Float(_)));
        assert!(json_to_metadata(&serde_json::json!([1])).is_empty());
    }
}
