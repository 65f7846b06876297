//! What each command does: open the database, call the store, hand results to `output`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use quiverdb::types::{Pk, PkKind};
use quiverdb::{
    CollectionInfo, Database, EmbeddingResult, Embeddings, HashingEmbeddings, IndexOptions,
    MmrOptions, QueryOptions, SearchOptions, VectorStore,
};

use crate::cli::{Cli, Command, DeleteArgs, SearchArgs};
use crate::error::{CliError, Result};
use crate::output::{self, line};

/// Runs one parsed command line, writing its output to `out` (progress bars and notes go
/// to stderr). `bench` starts a multi-threaded tokio runtime of its own; nothing else
/// needs one.
pub fn run<W: Write + Send>(cli: Cli, out: &mut W) -> Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Collections => collections(&open_db(&cli, false)?, json, out),
        Command::Create(a) => {
            if a.dim == 0 {
                return Err(CliError::InvalidArgument("--dim must be at least 1".into()));
            }
            let db = open_db(&cli, true)?;
            let index = IndexOptions {
                engine: a.schema.engine.as_str().to_owned(),
                ..IndexOptions::default()
            };
            db.create_collection(
                &a.name,
                Some(a.dim),
                a.schema.metric.into(),
                a.schema.auto_id,
                index,
                false,
            )?;
            let (store, info) = open_collection(&db, &a.name)?;
            store.close()?;
            if json {
                line(out, output::info_json(&info))
            } else {
                line(
                    out,
                    format_args!(
                        "created collection {:?} (dimension {}, {}, {} index)",
                        a.name, a.dim, info.metric, info.index.engine
                    ),
                )
            }
        }
        Command::Drop { name } => {
            let db = open_db(&cli, false)?;
            require_collection(&db, name)?;
            db.drop_collection(name)?;
            if json {
                line(out, serde_json::json!({"dropped": name}))
            } else {
                line(out, format_args!("dropped collection {name:?}"))
            }
        }
        Command::Describe { name } => {
            let (_, info) = open_collection(&open_db(&cli, false)?, name)?;
            output::describe(out, &info, json)
        }
        Command::Stats { name } => {
            let (_, info) = open_collection(&open_db(&cli, false)?, name)?;
            output::stats(out, &info, json)
        }
        Command::Import(a) => {
            let db = open_db(&cli, true)?;
            let progress = !cli.quiet && std::io::stderr().is_terminal();
            let summary = crate::import::import(&db, a, progress)?;
            output::import_summary(out, &summary, json)
        }
        Command::Search(a) => search(&open_db(&cli, false)?, a, json, out),
        Command::Query {
            name,
            filter,
            limit,
        } => {
            let (store, _) = open_collection(&open_db(&cli, false)?, name)?;
            let opts = QueryOptions {
                limit: *limit,
                ..QueryOptions::default()
            };
            let docs = store.search_by_metadata(filter, &opts)?;
            output::documents(out, docs.into_iter().map(|d| (d, None)).collect(), json)
        }
        Command::Get { name, ids } => {
            let (store, info) = open_collection(&open_db(&cli, false)?, name)?;
            let pks = ids
                .iter()
                .map(|s| parse_id(s, info.pk_kind))
                .collect::<Result<Vec<_>>>()?;
            let docs = store.get_by_ids(&pks)?;
            let found: std::collections::HashSet<String> =
                docs.iter().filter_map(|d| d.id.clone()).collect();
            output::documents(out, docs.into_iter().map(|d| (d, None)).collect(), json)?;
            if !json {
                for pk in pks.iter().filter(|pk| !found.contains(&pk.to_id_string())) {
                    line(out, format_args!("not found: {pk}"))?;
                }
            }
            Ok(())
        }
        Command::Delete(a) => delete(&open_db(&cli, false)?, a, json, out),
        Command::Export { name, file } => export(&open_db(&cli, false)?, name, file, json, out),
        Command::Check => check(&open_db(&cli, false)?, json, out),
        Command::Bench(a) => {
            let runtime = a
                .runtime
                .build()
                .map_err(|e| CliError::Task(format!("cannot start the async runtime: {e}")))?;
            let opts = crate::bench::BenchOptions {
                docs: a.docs,
                path: a.path.clone(),
                rounds: a.rounds,
                runtime: a.runtime,
            };
            runtime.block_on(crate::bench::run(opts, out))?;
            Ok(())
        }
    }
}

/// The database of `--db`; read-only commands refuse a directory that does not exist
/// (opening would create an empty database there).
fn open_db(cli: &Cli, create: bool) -> Result<Database> {
    let path = cli.db.as_ref().ok_or_else(|| {
        CliError::InvalidArgument("no database directory: pass --db DIR (or set QUIVER_DB)".into())
    })?;
    if !create && !path.exists() {
        return Err(CliError::NoDatabase { path: path.clone() });
    }
    Ok(Database::open(path)?)
}

fn require_collection(db: &Database, name: &str) -> Result<()> {
    if db.has_collection(name)? {
        return Ok(());
    }
    let names = db.list_collections()?;
    Err(CliError::UnknownCollection {
        name: name.to_owned(),
        available: if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        },
    })
}

/// The built-in hashing embedder at a dimension set once the collection is described, so
/// a collection is opened once and text queries still match its dimension.
#[derive(Debug, Clone, Default)]
struct CollectionEmbeddings {
    dim: Arc<AtomicUsize>,
}

impl CollectionEmbeddings {
    fn embedder(&self) -> HashingEmbeddings {
        HashingEmbeddings::new(self.dim.load(Ordering::Relaxed))
    }
}

impl Embeddings for CollectionEmbeddings {
    fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>> {
        let e = self.embedder();
        Ok(texts.iter().map(|t| e.embed(t)).collect())
    }

    fn embed_query(&self, text: &str) -> EmbeddingResult<Vec<f32>> {
        Ok(self.embedder().embed(text))
    }
}

/// Opens an existing collection with an embedder of its dimension.
fn open_collection(db: &Database, name: &str) -> Result<(VectorStore, CollectionInfo)> {
    require_collection(db, name)?;
    let embeddings = CollectionEmbeddings::default();
    let store = db.store(name).embeddings(embeddings.clone()).open()?;
    let info = store
        .describe()?
        .ok_or_else(|| quiverdb::Error::UnknownCollection {
            name: name.to_owned(),
        })?;
    embeddings.dim.store(
        info.dimension.unwrap_or(crate::import::DEFAULT_DIM),
        Ordering::Relaxed,
    );
    Ok((store, info))
}

/// Lists from storage alone (`Database::collection_info`): no collection's rows or index
/// are loaded, so listing stays fast beside a large collection.
fn collections(db: &Database, json: bool, out: &mut dyn Write) -> Result<()> {
    let infos = db
        .list_collections()?
        .iter()
        .map(|name| db.collection_info(name))
        .collect::<quiverdb::Result<Vec<_>>>()?;
    output::collections(out, &infos, json)
}

/// An id as the collection's key kind wants it.
fn parse_id(s: &str, kind: PkKind) -> Result<Pk> {
    match kind {
        PkKind::Str => Ok(Pk::Str(s.to_owned())),
        PkKind::Int | PkKind::AutoInt => s.trim().parse().map(Pk::Int).map_err(|_| {
            CliError::InvalidArgument(format!(
                "id {s:?} is not an integer (the collection has {kind} ids)"
            ))
        }),
    }
}

/// A `--vector` argument: a JSON array of numbers.
fn parse_vector(s: &str) -> Result<Vec<f32>> {
    let v: Vec<f64> = serde_json::from_str(s).map_err(|e| {
        CliError::InvalidArgument(format!(
            "--vector must be a JSON array of numbers like [0.1, 0.2]: {e}"
        ))
    })?;
    Ok(v.into_iter().map(|x| x as f32).collect())
}

fn search(db: &Database, a: &SearchArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let (store, _) = open_collection(db, &a.name)?;
    let vector = a.vector.as_deref().map(parse_vector).transpose()?;
    let text = a.text.as_deref().unwrap_or_default();
    let hits: Vec<_> = if a.mmr {
        let opts = MmrOptions {
            k: a.k,
            fetch_k: a.fetch_k.max(a.k),
            lambda_mult: a.lambda,
            filter: a.filter.clone(),
            ..MmrOptions::default()
        };
        let docs = match &vector {
            Some(v) => store.max_marginal_relevance_search_by_vector(v, &opts)?,
            None => store.max_marginal_relevance_search(text, &opts)?,
        };
        docs.into_iter().map(|d| (d, None)).collect()
    } else {
        let mut opts = SearchOptions::k(a.k);
        opts.filter = a.filter.clone();
        let hits = match &vector {
            Some(v) => store.similarity_search_with_score_by_vector(v, &opts)?,
            None => store.similarity_search_with_score(text, &opts)?,
        };
        hits.into_iter().map(|(d, s)| (d, Some(s))).collect()
    };
    output::documents(out, hits, json)
}

fn delete(db: &Database, a: &DeleteArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let (store, info) = open_collection(db, &a.name)?;
    let deleted = if a.ids.is_empty() {
        store.delete(None, a.filter.as_deref())?
    } else {
        let ids = a
            .ids
            .iter()
            .map(|s| parse_id(s, info.pk_kind))
            .collect::<Result<Vec<_>>>()?;
        store.delete(Some(ids), None)?
    };
    store.close()?;
    if json {
        line(out, serde_json::json!({"deleted": deleted}))
    } else {
        line(
            out,
            format_args!("deleted {deleted} record(s) from {:?}", a.name),
        )
    }
}

fn export(db: &Database, name: &str, file: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let (store, _) = open_collection(db, name)?;
    let records = store.export_records()?;
    let n = records.len();
    let to_stdout = file == Path::new("-");
    if to_stdout {
        for (doc, vector) in records {
            line(out, output::record_json(doc, None, Some(&vector)))?;
        }
        return out.flush().map_err(CliError::Output);
    }
    write_records(file, records)?;
    if json {
        line(out, serde_json::json!({"exported": n, "file": file}))
    } else {
        line(
            out,
            format_args!("exported {n} record(s) from {name:?} to {}", file.display()),
        )
    }
}

/// Writes JSON Lines to a temporary file beside `file`, then renames it into place, so a
/// failed export never leaves a half-written file under the final name.
fn write_records(file: &Path, records: Vec<(quiverdb::Document, Vec<f32>)>) -> Result<()> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| CliError::write(file, e))?;
    let mut w = std::io::BufWriter::new(tmp);
    for (doc, vector) in records {
        writeln!(w, "{}", output::record_json(doc, None, Some(&vector)))
            .map_err(|e| CliError::write(file, e))?;
    }
    let tmp = w
        .into_inner()
        .map_err(|e| CliError::write(file, e.into_error()))?;
    tmp.as_file()
        .sync_data()
        .map_err(|e| CliError::write(file, e))?;
    tmp.persist(file)
        .map_err(|e| CliError::write(file, e.error))?;
    Ok(())
}

fn check(db: &Database, json: bool, out: &mut dyn Write) -> Result<()> {
    let (mut problems, mut bad) = (0, 0);
    let names = db.list_collections()?;
    for name in &names {
        let report = match open_collection(db, name).and_then(|(s, _)| Ok(s.check_integrity()?)) {
            Ok(r) => r,
            Err(e) => quiverdb::IntegrityReport {
                problems: vec![format!("cannot open: {e}")],
                ..Default::default()
            },
        };
        if !report.is_ok() {
            problems += report.problems.len();
            bad += 1;
        }
        output::integrity(out, name, &report, json)?;
    }
    if !json && names.is_empty() {
        line(out, "no collections")?;
    }
    if problems > 0 {
        return Err(CliError::IntegrityProblems {
            problems,
            collections: bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_key_kind() {
        assert_eq!(parse_id("7", PkKind::AutoInt).unwrap(), Pk::Int(7));
        assert_eq!(parse_id("7", PkKind::Str).unwrap(), Pk::Str("7".into()));
        let e = parse_id("x", PkKind::AutoInt).unwrap_err().to_string();
        assert!(e.contains("not an integer"), "{e}");
    }

    #[test]
    fn vectors_parse_from_json() {
        assert_eq!(parse_vector("[1, 2.5]").unwrap(), vec![1.0, 2.5]);
        assert!(parse_vector("1,2").is_err());
    }
}
