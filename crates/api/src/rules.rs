//! The input rules of the store surface, shared by every backend (the embedded store and
//! `quiverdb-milvus`), so that both accept and refuse the same input with the same errors.

use quiverdb_types::{Metadata, Pk, PkKind};

use crate::{Document, Error, MmrOptions, Result};

/// Checks count and kind of caller ids.
pub fn check_ids(kind: PkKind, ids: &[Pk], n: usize) -> Result<()> {
    if ids.len() != n {
        return Err(Error::LengthMismatch {
            what: "ids",
            expected: n,
            got: ids.len(),
        });
    }
    if let Some(bad) = ids.iter().find(|id| !kind.accepts(id)) {
        return Err(Error::WrongIdKind {
            expected: kind,
            id: bad.clone(),
        });
    }
    Ok(())
}

/// Parses a document id (always a string) into a key of the collection's kind.
pub fn parse_doc_id(kind: PkKind, id: &str) -> Result<Pk> {
    match kind {
        PkKind::Str => Ok(Pk::Str(id.to_owned())),
        PkKind::Int | PkKind::AutoInt => {
            id.parse::<i64>()
                .map(Pk::Int)
                .map_err(|_| Error::WrongIdKind {
                    expected: kind,
                    id: Pk::Str(id.to_owned()),
                })
        }
    }
}

/// The key kind a new collection gets when the first write carries these ids.
pub fn kind_for_new_collection(auto_id: bool, ids: Option<&[Pk]>) -> PkKind {
    if auto_id {
        return PkKind::AutoInt;
    }
    match ids.and_then(|ids| ids.first()) {
        Some(Pk::Int(_)) => PkKind::Int,
        Some(Pk::Str(_)) => PkKind::Str,
        None => {
            tracing::warn!(
                "no ids given for a new collection created with auto_id = false: \
                 creating it with auto ids, as the LangChain–Milvus store does"
            );
            PkKind::AutoInt
        }
    }
}

/// Document ids as keys of the collection's kind (`None` before it exists) when every
/// document has one; `None` when some lack one or the collection assigns its own ids.
pub fn ids_from_documents(
    kind: Option<PkKind>,
    auto_id: bool,
    doc_ids: Vec<Option<String>>,
) -> Result<Option<Vec<Pk>>> {
    let Some(doc_ids) = doc_ids.into_iter().collect::<Option<Vec<String>>>() else {
        return Ok(None);
    };
    let kind = match kind {
        Some(k) => k,
        None if auto_id => return Ok(None),
        None => PkKind::Str,
    };
    if kind == PkKind::AutoInt {
        return Ok(None);
    }
    doc_ids
        .iter()
        .map(|id| parse_doc_id(kind, id))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The texts, metadatas and keys of an upsert.
pub type UpsertInput = (Vec<String>, Vec<Metadata>, Vec<Pk>);

/// An upsert's input: the keys are `ids`, or else every document's own id as a key of the
/// collection's kind (`kind` is asked only then); `None` for no documents.
///
/// # Errors
/// [`Error::MissingIds`] when there are no `ids` and some document has no id (or the
/// collection assigns its own); [`Error::WrongIdKind`] for a document id of the wrong kind.
pub fn upsert_input(
    ids: Option<Vec<Pk>>,
    documents: Vec<Document>,
    auto_id: bool,
    kind: impl FnOnce() -> Result<Option<PkKind>>,
) -> Result<Option<UpsertInput>> {
    if documents.is_empty() {
        return Ok(None);
    }
    let (texts, metadatas, doc_ids) = split_documents(documents);
    let ids = match ids {
        Some(ids) => ids,
        None => {
            ids_from_documents(kind()?, auto_id, doc_ids)?.ok_or_else(|| Error::MissingIds {
                reason: "upsert needs ids, or an id on every document".into(),
            })?
        }
    };
    Ok(Some((texts, metadatas, ids)))
}

/// The texts, metadatas and ids of documents, in order.
pub fn split_documents(
    documents: Vec<Document>,
) -> (Vec<String>, Vec<Metadata>, Vec<Option<String>>) {
    let mut texts = Vec::with_capacity(documents.len());
    let mut metadatas = Vec::with_capacity(documents.len());
    let mut ids = Vec::with_capacity(documents.len());
    for d in documents {
        texts.push(d.page_content);
        metadatas.push(d.metadata);
        ids.push(d.id);
    }
    (texts, metadatas, ids)
}

/// A search asks for at least one hit.
pub fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidArgument("k must be at least 1".into()));
    }
    Ok(())
}

/// MMR options: `k >= 1` and `lambda_mult` in `[0, 1]`.
pub fn check_mmr(opts: &MmrOptions) -> Result<()> {
    check_k(opts.k)?;
    if !(0.0..=1.0).contains(&opts.lambda_mult) {
        return Err(Error::InvalidArgument(format!(
            "lambda_mult must be in [0, 1], got {}",
            opts.lambda_mult
        )));
    }
    Ok(())
}
