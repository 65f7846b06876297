//! `quiver import`: input records validated one by one, added in batches, with progress.
//!
//! Every record is checked against the collection (id kind, vector length, finite
//! components, a direction for cosine) before it joins a batch, so a bad line costs only
//! itself. If the store still refuses a whole batch (an id that is already stored), the
//! batch is split and retried, down to single records, to find the culprits. A refused call changes
//! nothing stored, so what was imported before a bad line stays, and nothing half-written
//! is left behind.

mod source;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quiverdb::types::{Metadata, Metric, Pk, PkKind};
use quiverdb::{Database, HashingEmbeddings, IndexOptions, VectorStore};

use crate::cli::ImportArgs;
use crate::error::{CliError, Result};
pub use source::{detect_format, parse_json_line, RawId, RawRecord, Rejection, Source};

/// Dimension of a new collection when neither `--dim` nor any vector in the input says.
pub const DEFAULT_DIM: usize = 384;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The collection.
    pub collection: String,
    /// The input file.
    pub file: PathBuf,
    /// Whether the import created the collection.
    pub created: bool,
    /// The collection's dimension.
    pub dimension: usize,
    /// Records added.
    pub added: usize,
    /// Records not added, by line, with the reason.
    pub rejected: Vec<Rejection>,
    /// Wall time.
    pub elapsed: Duration,
}

/// A validated record, ready for `add_embeddings`.
#[derive(Debug, Clone, PartialEq)]
struct Ready {
    line: usize,
    id: Option<Pk>,
    text: String,
    metadata: Metadata,
    vector: Vec<f32>,
}

/// What the records must fit.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    dim: usize,
    metric: Metric,
    pk_kind: PkKind,
    embedder: HashingEmbeddings,
}

impl Target {
    fn validate(&self, r: RawRecord) -> std::result::Result<Ready, Rejection> {
        let reject = |reason: String| Rejection::new(r.line, reason);
        let id = match (self.pk_kind, r.id.clone()) {
            (PkKind::AutoInt, _) => None,
            (PkKind::Str, Some(RawId::Str(s))) if s.is_empty() => {
                return Err(reject("empty \"id\"".into()))
            }
            (PkKind::Str, Some(RawId::Str(s))) => Some(Pk::Str(s)),
            (PkKind::Str, Some(RawId::Int(i))) => Some(Pk::Str(i.to_string())),
            (PkKind::Int, Some(RawId::Int(i))) => Some(Pk::Int(i)),
            (PkKind::Int, Some(RawId::Str(s))) => match s.trim().parse() {
                Ok(i) => Some(Pk::Int(i)),
                Err(_) => {
                    return Err(reject(format!(
                        "id {s:?} is not an integer (the collection has int64 ids)"
                    )))
                }
            },
            (_, None) => {
                return Err(reject(format!(
                    "missing \"id\": collection {:?} takes caller ids (create it with --auto-id to have ids assigned)",
                    self.name
                )))
            }
        };
        let vector = match r.vector {
            Some(v) => {
                if v.len() != self.dim {
                    return Err(reject(format!(
                        "vector has {} components, the collection's dimension is {}",
                        v.len(),
                        self.dim
                    )));
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(reject(format!("vector[{i}] is not finite ({})", v[i])));
                }
                if self.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
                    return Err(reject(
                        "zero vector: cosine similarity needs a direction".into(),
                    ));
                }
                v
            }
            None if r.text.is_empty() => {
                return Err(reject("neither \"text\" nor \"vector\" given".into()))
            }
            None => self.embedder.embed(&r.text),
        };
        Ok(Ready {
            line: r.line,
            id,
            text: r.text,
            metadata: r.metadata,
            vector,
        })
    }
}

/// Runs an import of `args.file` into `args.name` (created if missing), showing a progress
/// bar on stderr when `progress` is set.
pub fn import(db: &Database, args: &ImportArgs, progress: bool) -> Result<ImportSummary> {
    let started = Instant::now();
    if args.batch_size == 0 {
        return Err(CliError::InvalidArgument(
            "--batch-size must be at least 1".into(),
        ));
    }
    let format = detect_format(&args.file, args.format);
    let mut source = Source::open(
        &args.file,
        format,
        &args.text_column,
        args.id_column.as_deref(),
    )?;
    let total_bytes = std::fs::metadata(&args.file).map_or(0, |m| m.len());

    let exists = db.has_collection(&args.name)?;
    let known_dim = if exists {
        let store = db.store(&args.name).open()?;
        let dim = store.describe()?.and_then(|i| i.dimension);
        store.close()?;
        if let (Some(want), Some(have)) = (args.dim, dim) {
            if want != have {
                return Err(CliError::InvalidArgument(format!(
                    "collection {:?} has dimension {have}, --dim says {want}",
                    args.name
                )));
            }
        }
        dim
    } else {
        None
    };
    // Records read ahead to learn the dimension; they are imported first.
    let mut pending: VecDeque<source::Item> = VecDeque::new();
    let dim = match known_dim.or(args.dim) {
        Some(d) => d,
        None => peek_dimension(&mut source, &mut pending, args.batch_size)?.unwrap_or(DEFAULT_DIM),
    };
    if !exists {
        let index = IndexOptions {
            engine: args.schema.engine.as_str().to_owned(),
            ..IndexOptions::default()
        };
        db.create_collection(
            &args.name,
            Some(dim),
            args.schema.metric.into(),
            args.schema.auto_id,
            index,
            false,
        )?;
    }
    let store = db.store(&args.name).open()?;
    let info = store
        .describe()?
        .ok_or_else(|| quiverdb::Error::UnknownCollection {
            name: args.name.clone(),
        })?;
    let target = Target {
        name: args.name.clone(),
        dim,
        metric: info.metric,
        pk_kind: info.pk_kind,
        embedder: HashingEmbeddings::new(dim),
    };

    let bar = progress_bar(progress, total_bytes);
    let mut summary = ImportSummary {
        collection: args.name.clone(),
        file: args.file.clone(),
        created: !exists,
        dimension: dim,
        added: 0,
        rejected: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut batch: Vec<Ready> = Vec::with_capacity(args.batch_size);
    let mut batch_ids: HashMap<Pk, usize> = HashMap::new();
    let mut seen = 0usize;
    loop {
        let item = match pending.pop_front() {
            Some(item) => item,
            None => match source.next_item()? {
                Some(item) => item,
                None => break,
            },
        };
        seen += 1;
        match item.and_then(|raw| target.validate(raw)) {
            Ok(ready) => {
                if let Some(id) = &ready.id {
                    if let Some(first) = batch_ids.get(id) {
                        summary.rejected.push(Rejection::new(
                            ready.line,
                            format!("duplicate id {id} (first on line {first})"),
                        ));
                        continue;
                    }
                    batch_ids.insert(id.clone(), ready.line);
                }
                batch.push(ready);
            }
            Err(rejection) => summary.rejected.push(rejection),
        }
        if batch.len() >= args.batch_size {
            flush(&store, &mut batch, &mut summary)?;
            batch_ids.clear();
        }
        if seen % 256 == 0 {
            tick(&bar, &source, &summary);
        }
    }
    flush(&store, &mut batch, &mut summary)?;
    tick(&bar, &source, &summary);
    bar.finish_and_clear();
    // Data is durable already; closing writes the index snapshot so the next open is fast.
    store.close()?;
    summary.rejected.sort_by_key(|r| r.line);
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads ahead until a record with a vector (its length is the dimension), a full batch,
/// or the end of the input; everything read is kept in `pending`.
fn peek_dimension(
    source: &mut Source,
    pending: &mut VecDeque<source::Item>,
    limit: usize,
) -> Result<Option<usize>> {
    while pending.len() < limit {
        let Some(item) = source.next_item()? else {
            break;
        };
        let dim = item
            .as_ref()
            .ok()
            .and_then(|r| r.vector.as_ref())
            .map(Vec::len);
        pending.push_back(item);
        if let Some(d) = dim.filter(|d| *d > 0) {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// Errors that belong to a record rather than to the store or the disk.
fn is_record_error(e: &quiverdb::Error) -> bool {
    use quiverdb::Error as E;
    matches!(
        e,
        E::DuplicateId { .. }
            | E::WrongDimension { .. }
            | E::NonFiniteVector { .. }
            | E::ZeroVector { .. }
            | E::EmptyVector { .. }
            | E::WrongIdKind { .. }
            | E::MissingIds { .. }
            | E::InvalidArgument(_)
    )
}

/// Adds `batch` in one call; if the store refuses it for a record's sake, splits it in
/// halves and tries again, down to single records, so only the bad ones are rejected
/// (a few bad records in a batch of 1,000 cost a few dozen calls, not 1,000 fsyncs).
fn flush(store: &VectorStore, batch: &mut Vec<Ready>, summary: &mut ImportSummary) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    add_isolating(store, std::mem::take(batch), summary)
}

fn add_isolating(
    store: &VectorStore,
    records: Vec<Ready>,
    summary: &mut ImportSummary,
) -> Result<()> {
    let n = records.len();
    let first_line = records.first().map_or(0, |r| r.line);
    match add(store, records.clone()) {
        Ok(()) => {
            summary.added += n;
            Ok(())
        }
        Err(e) if is_record_error(&e) && n == 1 => {
            summary
                .rejected
                .push(Rejection::new(first_line, e.to_string()));
            Ok(())
        }
        Err(e) if is_record_error(&e) => {
            tracing::debug!(error = %e, records = n, "batch refused, splitting it");
            let mut left = records;
            let right = left.split_off(n / 2);
            add_isolating(store, left, summary)?;
            add_isolating(store, right, summary)
        }
        Err(e) => Err(e.into()),
    }
}

fn add(store: &VectorStore, records: Vec<Ready>) -> quiverdb::Result<()> {
    let with_ids = records.iter().all(|r| r.id.is_some());
    let mut texts = Vec::with_capacity(records.len());
    let mut vectors = Vec::with_capacity(records.len());
    let mut metadatas = Vec::with_capacity(records.len());
    let mut ids = Vec::with_capacity(records.len());
    for r in records {
        texts.push(r.text);
        vectors.push(r.vector);
        metadatas.push(r.metadata);
        ids.extend(r.id);
    }
    store.add_embeddings(texts, vectors, Some(metadatas), with_ids.then_some(ids))?;
    Ok(())
}

fn progress_bar(show: bool, total_bytes: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn tick(bar: &ProgressBar, source: &Source, summary: &ImportSummary) {
    bar.set_position(source.bytes_read());
    bar.set_message(format!(
        "{} added, {} rejected",
        summary.added,
        summary.rejected.len()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: PkKind, metric: Metric) -> Target {
        Target {
            name: "c".into(),
            dim: 3,
            metric,
            pk_kind: kind,
            embedder: HashingEmbeddings::new(3),
        }
    }

    fn raw(id: Option<RawId>, text: &str, vector: Option<Vec<f32>>) -> RawRecord {
        RawRecord {
            line: 5,
            id,
            text: text.into(),
            metadata: Metadata::new(),
            vector,
        }
    }

    #[test]
    fn validation_checks_ids_vectors_and_text() {
        let t = target(PkKind::Str, Metric::Cosine);
        let ok = t.validate(raw(Some(RawId::Int(4)), "hello", None)).unwrap();
        assert_eq!(ok.id, Some(Pk::Str("4".into())));
        assert_eq!(ok.vector.len(), 3);
        for (r, want) in [
            (raw(None, "x", None), "missing \"id\""),
            (raw(Some(RawId::Str("a".into())), "", None), "neither"),
            (
                raw(Some(RawId::Str("a".into())), "", Some(vec![1.0])),
                "dimension is 3",
            ),
            (
                raw(
                    Some(RawId::Str("a".into())),
                    "",
                    Some(vec![1.0, f32::INFINITY, 0.0]),
                ),
                "vector[1] is not finite",
            ),
            (
                raw(Some(RawId::Str("a".into())), "", Some(vec![0.0; 3])),
                "zero vector",
            ),
        ] {
            let e = t.validate(r).unwrap_err();
            assert_eq!(e.line, 5);
            assert!(e.reason.contains(want), "{}", e.reason);
        }
        let auto = target(PkKind::AutoInt, Metric::L2);
        let r = auto
            .validate(raw(
                Some(RawId::Str("ignored".into())),
                "",
                Some(vec![0.0; 3]),
            ))
            .unwrap();
        assert_eq!(r.id, None);
    }

    #[test]
    fn a_batch_with_a_stored_id_is_retried_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        db.create_collection(
            "c",
            Some(3),
            Metric::L2,
            false,
            IndexOptions::default(),
            false,
        )
        .unwrap();
        let store = db.store("c").open().unwrap();
        let t = target(PkKind::Str, Metric::L2);
        let rec = |line: usize, id: &str| {
            let mut r = t
                .validate(raw(
                    Some(RawId::Str(id.into())),
                    "t",
                    Some(vec![1.0, 2.0, 3.0]),
                ))
                .unwrap();
            r.line = line;
            r
        };
        let mut summary = ImportSummary {
            collection: "c".into(),
            file: PathBuf::new(),
            created: false,
            dimension: 3,
            added: 0,
            rejected: Vec::new(),
            elapsed: Duration::ZERO,
        };
        flush(&store, &mut vec![rec(1, "a")], &mut summary).unwrap();
        flush(
            &store,
            &mut vec![rec(2, "b"), rec(3, "a"), rec(4, "c")],
            &mut summary,
        )
        .unwrap();
        assert_eq!(summary.added, 3);
        assert_eq!(summary.rejected.len(), 1);
        assert_eq!(summary.rejected[0].line, 3);
        assert!(summary.rejected[0].reason.contains("duplicate id"));
        assert_eq!(store.count().unwrap(), 3);
    }
}
