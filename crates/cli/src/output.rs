//! How results are shown: aligned text for people, JSON for scripts. Records use the
//! import format (`{"id", "text", "metadata", "vector"}`) so that exports import again.

use std::io::Write;
use std::time::SystemTime;

use quiverdb::types::{metadata_to_json, Metadata, PkKind, Value};
use quiverdb::{CollectionInfo, Document, IntegrityReport};
use serde_json::{json, Value as Json};

use crate::error::{CliError, Result};
use crate::import::ImportSummary;

/// The name of the primary-key entry the store adds to returned metadata.
const PK_FIELD: &str = "pk";

/// Longest text shown in human output before it is cut with `…`.
const TEXT_WIDTH: usize = 72;

/// Writes one line to `out`, mapping a write failure to [`CliError::Output`].
pub fn line(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<()> {
    writeln!(out, "{text}").map_err(CliError::Output)
}

/// A record line in the import format: `{"id", "text", "metadata"[, "score"][, "vector"]}`.
#[derive(Debug, serde::Serialize)]
struct RecordLine<'a> {
    id: Json,
    text: &'a str,
    metadata: Json,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vector: Option<&'a [f32]>,
}

/// A returned document as one import-format JSON line: the typed id (an integer for auto
/// ids) taken out of `metadata["pk"]`, the text, the rest of the metadata, and optionally
/// a score and the vector. Floats are written as `f32` (shortest form that reads back
/// exactly).
pub fn record_json(doc: Document, score: Option<f32>, vector: Option<&[f32]>) -> String {
    let (id, metadata) = split_pk(doc.id, doc.metadata);
    let rec = RecordLine {
        id,
        text: &doc.page_content,
        metadata: metadata_to_json(metadata),
        score,
        vector,
    };
    // Serializing plain data into a string cannot fail; fall back to `null` all the same.
    serde_json::to_string(&rec).unwrap_or_else(|_| "null".into())
}

/// The typed id and the metadata without the store's `pk` entry.
fn split_pk(id: Option<String>, mut metadata: Metadata) -> (Json, Metadata) {
    let id = match metadata.remove(PK_FIELD) {
        Some(Value::Int(i)) => json!(i),
        Some(Value::Str(s)) => Json::String(s),
        Some(other) => Json::from(other),
        None => id.map_or(Json::Null, Json::String),
    };
    (id, metadata)
}

/// Shows documents (search hits with scores, query results without), ranked.
pub fn documents(
    out: &mut dyn Write,
    docs: Vec<(Document, Option<f32>)>,
    as_json: bool,
) -> Result<()> {
    if as_json {
        for (d, score) in docs {
            line(out, record_json(d, score, None))?;
        }
        return Ok(());
    }
    if docs.is_empty() {
        return line(out, "no results");
    }
    for (rank, (d, score)) in docs.into_iter().enumerate() {
        let (id, metadata) = split_pk(d.id, d.metadata);
        let id = match id {
            Json::String(s) => s,
            other => other.to_string(),
        };
        let score = score.map_or(String::new(), |s| format!("{s:>9.4}  "));
        line(
            out,
            format_args!(
                "{:>3}. {score}{id}  {}{}",
                rank + 1,
                shorten(&d.page_content),
                if metadata.is_empty() {
                    String::new()
                } else {
                    format!("  {}", metadata_to_json(metadata))
                }
            ),
        )?;
    }
    Ok(())
}

/// `text` on one line, cut to [`TEXT_WIDTH`] characters.
fn shorten(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= TEXT_WIDTH {
        return format!("{flat:?}");
    }
    let cut: String = flat.chars().take(TEXT_WIDTH - 1).collect();
    format!("{:?}", format!("{cut}…"))
}

/// A collection's description as JSON.
pub fn info_json(info: &CollectionInfo) -> Json {
    json!({
        "name": info.name,
        "dimension": info.dimension,
        "metric": info.metric.as_str(),
        "ids": ids_name(info.pk_kind),
        "records": info.records,
        "index": {
            "engine": info.index.engine,
            "m": info.index.m,
            "ef_construction": info.index.ef_construction,
            "ef_search": info.index.ef_search,
        },
        "index_state": info.index_stats.as_ref().map(|s| json!({
            "engine": s.engine,
            "live": s.live,
            "tombstones": s.tombstones,
            "memory_bytes": s.memory_bytes,
        })),
        "last_seq": info.last_seq,
        "snapshot_age_secs": snapshot_age(info).map(|d| d.as_secs_f64()),
    })
}

fn ids_name(kind: PkKind) -> &'static str {
    match kind {
        PkKind::AutoInt => "auto",
        PkKind::Int => "int",
        PkKind::Str => "string",
    }
}

fn snapshot_age(info: &CollectionInfo) -> Option<std::time::Duration> {
    info.snapshot_modified
        .and_then(|t| SystemTime::now().duration_since(t).ok())
}

fn index_state(info: &CollectionInfo) -> String {
    match &info.index_stats {
        Some(s) => format!(
            "{} ({} live, {} tombstones)",
            s.engine, s.live, s.tombstones
        ),
        None => "empty".into(),
    }
}

fn index_params(info: &CollectionInfo) -> String {
    let ix = &info.index;
    format!(
        "{} (m {}, ef_construction {}, ef_search {})",
        ix.engine, ix.m, ix.ef_construction, ix.ef_search
    )
}

fn dimension(info: &CollectionInfo) -> String {
    info.dimension.map_or("-".into(), |d| d.to_string())
}

/// The `collections` listing (index parameters, not index state: the listing does not
/// load indexes; `stats` and `describe` do).
pub fn collections(out: &mut dyn Write, infos: &[CollectionInfo], as_json: bool) -> Result<()> {
    if as_json {
        let listed = infos.iter().map(|i| {
            let mut j = info_json(i);
            if let Some(fields) = j.as_object_mut() {
                fields.remove("index_state");
            }
            j
        });
        return line(out, Json::Array(listed.collect()));
    }
    if infos.is_empty() {
        return line(out, "no collections");
    }
    let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    line(
        out,
        format_args!(
            "{:<width$}  {:>9}  {:>5}  {:<6}  {:<6}  INDEX",
            "NAME", "RECORDS", "DIM", "METRIC", "IDS"
        ),
    )?;
    for i in infos {
        line(
            out,
            format_args!(
                "{:<width$}  {:>9}  {:>5}  {:<6}  {:<6}  {}",
                i.name,
                i.records,
                dimension(i),
                i.metric.as_str(),
                ids_name(i.pk_kind),
                index_params(i)
            ),
        )?;
    }
    Ok(())
}

/// The `describe` output.
pub fn describe(out: &mut dyn Write, info: &CollectionInfo, as_json: bool) -> Result<()> {
    if as_json {
        return line(out, info_json(info));
    }
    for (k, v) in [
        ("collection", info.name.clone()),
        ("records", info.records.to_string()),
        ("dimension", dimension(info)),
        ("metric", info.metric.as_str().to_owned()),
        ("ids", ids_name(info.pk_kind).to_owned()),
        ("index", index_params(info)),
        ("index state", index_state(info)),
    ] {
        line(out, format_args!("{k:<12} {v}"))?;
    }
    Ok(())
}

/// The `stats` output.
pub fn stats(out: &mut dyn Write, info: &CollectionInfo, as_json: bool) -> Result<()> {
    let st = info.index_stats.as_ref();
    let age = snapshot_age(info);
    if as_json {
        return line(
            out,
            json!({
                "name": info.name,
                "records": info.records,
                "indexed": st.map_or(0, |s| s.live),
                "tombstones": st.map_or(0, |s| s.tombstones),
                "index_bytes": st.map_or(0, |s| s.memory_bytes),
                "engine": st.map_or(info.index.engine.as_str(), |s| s.engine.as_str()),
                "last_seq": info.last_seq,
                "snapshot_age_secs": age.map(|d| d.as_secs_f64()),
            }),
        );
    }
    for (k, v) in [
        ("collection", info.name.clone()),
        ("records", info.records.to_string()),
        ("indexed", st.map_or(0, |s| s.live).to_string()),
        ("tombstones", st.map_or(0, |s| s.tombstones).to_string()),
        ("index size", human_bytes(st.map_or(0, |s| s.memory_bytes))),
        ("last seq", info.last_seq.to_string()),
        (
            "snapshot age",
            age.map_or("no snapshot".into(), |d| human_duration(d.as_secs())),
        ),
    ] {
        line(out, format_args!("{k:<13} {v}"))?;
    }
    Ok(())
}

/// `check` output for one collection.
pub fn integrity(
    out: &mut dyn Write,
    name: &str,
    r: &IntegrityReport,
    as_json: bool,
) -> Result<()> {
    if as_json {
        return line(
            out,
            json!({"collection": name, "ok": r.is_ok(), "records": r.records,
                   "indexed": r.indexed, "problems": r.problems}),
        );
    }
    let verdict = if r.is_ok() { "ok" } else { "PROBLEMS" };
    line(
        out,
        format_args!(
            "{name}: {verdict} ({} records, {} indexed)",
            r.records, r.indexed
        ),
    )?;
    for p in &r.problems {
        line(out, format_args!("  - {p}"))?;
    }
    Ok(())
}

/// How many rejected lines a human import summary lists (JSON lists them all).
const REJECTIONS_SHOWN: usize = 20;

/// The `import` summary: counts, then each rejected line with its reason.
pub fn import_summary(out: &mut dyn Write, s: &ImportSummary, as_json: bool) -> Result<()> {
    if as_json {
        return line(
            out,
            json!({
                "collection": s.collection,
                "file": s.file,
                "created": s.created,
                "dimension": s.dimension,
                "added": s.added,
                "rejected": s.rejected.iter()
                    .map(|r| json!({"line": r.line, "reason": r.reason}))
                    .collect::<Vec<_>>(),
                "seconds": s.elapsed.as_secs_f64(),
            }),
        );
    }
    let secs = s.elapsed.as_secs_f64();
    line(
        out,
        format_args!(
            "imported {} record(s) into {}{:?} (dimension {}), {} rejected, in {secs:.2} s ({:.0} records/s)",
            s.added,
            if s.created { "new collection " } else { "" },
            s.collection,
            s.dimension,
            s.rejected.len(),
            s.added as f64 / secs.max(1e-9),
        ),
    )?;
    for r in s.rejected.iter().take(REJECTIONS_SHOWN) {
        line(out, format_args!("  line {}: {}", r.line, r.reason))?;
    }
    if s.rejected.len() > REJECTIONS_SHOWN {
        line(
            out,
            format_args!(
                "  ... and {} more (use --json to list all)",
                s.rejected.len() - REJECTIONS_SHOWN
            ),
        )?;
    }
    Ok(())
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `3h 02m`-style ages.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_json_moves_the_typed_pk_into_id() {
        let mut m = Metadata::new();
        m.insert("pk".into(), Value::Int(7));
        m.insert("a".into(), Value::from("x"));
        let d = Document::new("hello").with_metadata(m).with_id("7");
        let j = record_json(d, Some(0.5), Some(&[1.0, 0.1]));
        assert_eq!(
            j,
            r#"{"id":7,"text":"hello","metadata":{"a":"x"},"score":0.5,"vector":[1.0,0.1]}"#
        );
    }

    #[test]
    fn shorten_cuts_long_text_and_flattens_newlines() {
        assert_eq!(shorten("a\nb"), "\"a b\"");
        let long = "x".repeat(200);
        assert_eq!(shorten(&long).chars().count(), TEXT_WIDTH + 2);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(3725), "1h 02m");
    }
}
