//! Records to Milvus columns and back, and the input checks the embedded store makes
//! (same rules and the same typed errors, so both backends refuse the same input).

use quiverdb::types::{Metadata, Metric, Pk, PkKind, Value};
// The embedded store's input rules, shared so both backends accept the same input.
pub(crate) use quiverdb::rules::{
    check_ids, ids_from_documents, kind_for_new_collection, split_documents,
};
use quiverdb::{Document, Error, Result};

/// The ids of an insert: `None` for server-assigned ones.
pub(crate) fn insert_ids(kind: PkKind, n: usize, ids: Option<Vec<Pk>>) -> Result<Option<Vec<Pk>>> {
    match (kind, ids) {
        (PkKind::AutoInt, None) => Ok(None),
        (PkKind::AutoInt, Some(_)) => Err(Error::InvalidArgument(
            "this collection assigns its own ids (auto_id); do not pass ids".into(),
        )),
        (_, None) => Err(Error::MissingIds {
            reason: format!(
                "the collection's primary key is a caller-supplied {kind}; pass one id per text"
            ),
        }),
        (kind, Some(ids)) => {
            check_ids(kind, &ids, n)?;
            Ok(Some(ids))
        }
    }
}

/// Keys for updates and lookups: auto-id collections take int keys.
pub(crate) fn lookup_kind(kind: PkKind) -> PkKind {
    if kind == PkKind::AutoInt {
        PkKind::Int
    } else {
        kind
    }
}

/// Vector checks in the embedded store's order and with its errors.
pub(crate) fn check_vectors(vectors: &[Vec<f32>], dim: usize, metric: Metric) -> Result<()> {
    for (row, v) in vectors.iter().enumerate() {
        check_vector(row, v, dim, metric)?;
    }
    Ok(())
}

pub(crate) fn check_vector(row: usize, v: &[f32], dim: usize, metric: Metric) -> Result<()> {
    if v.is_empty() {
        return Err(Error::EmptyVector { row });
    }
    if v.len() != dim {
        return Err(Error::WrongDimension {
            expected: dim,
            got: v.len(),
        });
    }
    if let Some((component, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::NonFiniteVector {
            row,
            component,
            value,
        });
    }
    if metric == Metric::Cosine && v.iter().all(|&x| x == 0.0) {
        return Err(Error::ZeroVector { row });
    }
    Ok(())
}

/// Texts longer than a Milvus VARCHAR holds are refused before the server sees them.
pub(crate) fn check_texts(texts: &[String]) -> Result<()> {
    let max = crate::store::MAX_VARCHAR as usize;
    if let Some((i, t)) = texts.iter().enumerate().find(|(_, t)| t.len() > max) {
        return Err(Error::InvalidArgument(format!(
            "text {i} is {} bytes; a Milvus VARCHAR field holds at most {max}",
            t.len()
        )));
    }
    Ok(())
}

/// Caller ids must be unique within one call.
pub(crate) fn check_unique(ids: &[Pk]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id) {
            return Err(Error::DuplicateId { id: id.clone() });
        }
    }
    Ok(())
}

/// Metadata as the dynamic-field JSON object, without keys that would shadow a field.
pub(crate) fn dynamic_json(meta: Metadata, reserved: &[&str]) -> serde_json::Value {
    let map = meta
        .into_iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()) && !k.starts_with('$'))
        .map(|(k, v)| (k, serde_json::Value::from(v)))
        .collect();
    serde_json::Value::Object(map)
}

/// A stored record as a `Document`: the key in `id` and in `metadata[pk_field]`, as the
/// embedded store returns it; `fields` keeps only those metadata keys.
pub(crate) fn to_document(
    pk: Pk,
    text: String,
    mut metadata: Metadata,
    pk_field: &str,
    fields: Option<&[String]>,
) -> Document {
    if let Some(keep) = fields {
        metadata.retain(|k, _| keep.iter().any(|f| f == k));
    }
    let value = match &pk {
        Pk::Int(i) => Value::Int(*i),
        Pk::Str(s) => Value::Str(s.clone()),
    };
    metadata.insert(pk_field.to_owned(), value);
    Document {
        id: Some(pk.to_id_string()),
        page_content: text,
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiverdb::rules::parse_doc_id;

    #[test]
    fn vector_checks_match_the_embedded_errors() {
        assert!(check_vectors(&[vec![1.0, 0.0]], 2, Metric::L2).is_ok());
        assert!(matches!(
            check_vectors(&[vec![1.0]], 2, Metric::L2),
            Err(Error::WrongDimension {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            check_vectors(&[vec![1.0, 0.0], vec![]], 2, Metric::L2),
            Err(Error::EmptyVector { row: 1 })
        ));
        assert!(matches!(
            check_vectors(&[vec![1.0, f32::NAN]], 2, Metric::L2),
            Err(Error::NonFiniteVector {
                row: 0,
                component: 1,
                ..
            })
        ));
        assert!(matches!(
            check_vectors(&[vec![0.0, 0.0]], 2, Metric::Cosine),
            Err(Error::ZeroVector { row: 0 })
        ));
        assert!(check_vectors(&[vec![0.0, 0.0]], 2, Metric::L2).is_ok());
    }

    #[test]
    fn id_rules() {
        assert_eq!(
            kind_for_new_collection(false, Some(&[Pk::from("a")])),
            PkKind::Str
        );
        assert_eq!(
            kind_for_new_collection(false, Some(&[Pk::Int(1)])),
            PkKind::Int
        );
        assert_eq!(kind_for_new_collection(false, None), PkKind::AutoInt);
        assert_eq!(
            kind_for_new_collection(true, Some(&[Pk::Int(1)])),
            PkKind::AutoInt
        );
        assert!(matches!(
            insert_ids(PkKind::Str, 2, Some(vec![Pk::from("a")])),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            insert_ids(PkKind::Str, 1, Some(vec![Pk::Int(1)])),
            Err(Error::WrongIdKind { .. })
        ));
        assert!(matches!(
            insert_ids(PkKind::AutoInt, 1, Some(vec![Pk::Int(1)])),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            insert_ids(PkKind::Int, 1, None),
            Err(Error::MissingIds { .. })
        ));
        assert!(matches!(
            check_unique(&[Pk::from("a"), Pk::from("a")]),
            Err(Error::DuplicateId { .. })
        ));
        assert!(matches!(
            parse_doc_id(PkKind::Int, "x"),
            Err(Error::WrongIdKind { .. })
        ));
        assert_eq!(parse_doc_id(PkKind::Int, "7").unwrap(), Pk::Int(7));
    }

    #[test]
    fn dynamic_fields_drop_reserved_keys() {
        let mut m = Metadata::new();
        m.insert("pk".into(), Value::from("x"));
        m.insert("$meta".into(), Value::Int(1));
        m.insert("category".into(), Value::from("a"));
        m.insert("bad".into(), Value::Float(f64::INFINITY));
        let j = dynamic_json(m, &["pk", "text", "vector"]);
        assert_eq!(j, serde_json::json!({"category": "a", "bad": null}));
    }

    #[test]
    fn documents_carry_the_key_twice() {
        let d = to_document(Pk::Int(5), "t".into(), Metadata::new(), "pk", None);
        assert_eq!(d.id.as_deref(), Some("5"));
        assert_eq!(d.metadata["pk"], Value::Int(5));
    }
}
