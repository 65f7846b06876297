//! The conformance harness: runs a corpus of filter cases with Milvus's answers.
//!
//! Corpus format (see `shared/conformance/README.md`): `schema` (Milvus fields and
//! `enable_dynamic_field`), `rows`, and `cases`, each `{expr, pks}` (the sorted primary keys
//! Milvus returned) or `{expr, error}` (Milvus rejected it). A file of *unsettled* cases
//! (`{expr, lite_3_2_2, lite_2_5_1}` answers, or `..._pks`) without its own schema/rows
//! borrows them from `expr_cases.json` in the same directory; such a case counts as passed
//! when our outcome equals one of the two answers.
//!
//! Used by `examples/conformance.rs` and by the crate's integration test.

use std::fmt;
use std::path::{Path, PathBuf};

use quiverdb_types::{Metadata, Pk, Value};
use serde_json::Value as Json;

use crate::schema::{ElementType, FieldDef, FieldType, Params, Row, Schema};

/// Why a corpus could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The JSON does not have the corpus shape.
    #[error("{path}: {what}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// What a filter produced (or Milvus answered) for a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sorted primary keys of the matching rows.
    Pks(Vec<Pk>),
    /// The expression was rejected, with the first line of the message.
    Error(String),
}

impl Outcome {
    /// Whether two outcomes agree: same rows, or both rejections (wording may differ).
    pub fn agrees(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Pks(a), Outcome::Pks(b)) => a == b,
            (Outcome::Error(_), Outcome::Error(_)) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Error(e) => write!(f, "error: {}", e.lines().next().unwrap_or("")),
            Outcome::Pks(p) => {
                let shown: Vec<String> = p.iter().map(|k| k.to_id_string()).collect();
                if shown.len() > 24 {
                    write!(f, "{} rows [{} ...]", shown.len(), shown[..24].join(", "))
                } else {
                    write!(f, "[{}]", shown.join(", "))
                }
            }
        }
    }
}

/// The answer a case expects.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// Milvus's answer.
    Milvus(Outcome),
    /// Two Milvus builds disagree: the answer of each.
    Unsettled {
        /// Milvus Lite 3.2.2.
        lite_3_2_2: Outcome,
        /// Milvus Lite 2.5.1 (C++ executor).
        lite_2_5_1: Outcome,
    },
}

/// One case of a corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// The case's group, when given.
    pub group: Option<String>,
    /// The filter expression.
    pub expr: String,
    /// What it should produce.
    pub expected: Expected,
}

/// One stored row of a corpus.
#[derive(Clone, Debug)]
pub struct CorpusRow {
    /// Primary key.
    pub pk: Pk,
    /// Text field.
    pub text: String,
    /// Every other key of the row.
    pub metadata: Metadata,
}

impl Row for CorpusRow {
    fn pk(&self) -> &Pk {
        &self.pk
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}

/// A loaded corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The collection schema.
    pub schema: Schema,
    /// The stored rows.
    pub rows: Vec<CorpusRow>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// What QuiverDB produced.
    pub ours: Outcome,
    /// Whether it agrees with the expected answer (for unsettled: with either build).
    pub passed: bool,
    /// For unsettled cases: which builds we agree with.
    pub agrees_with: Vec<&'static str>,
}

/// The result of a whole corpus.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every case, in corpus order.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// Number of agreeing cases.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }
    /// Number of disagreeing cases.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
    /// The closing line: `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed(), self.failed())
    }
}

fn shape(path: &Path, what: impl Into<String>) -> CorpusError {
    CorpusError::Shape {
        path: path.to_owned(),
        what: what.into(),
    }
}

fn read_json(path: &Path) -> Result<Json, CorpusError> {
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CorpusError::Json {
        path: path.to_owned(),
        source,
    })
}

fn field_type(ty: &str, elem: Option<&str>) -> Option<FieldType> {
    Some(match ty {
        "BOOL" => FieldType::Bool,
        "INT8" | "INT16" | "INT32" | "INT64" => FieldType::Int64,
        "FLOAT" | "DOUBLE" => FieldType::Double,
        "VARCHAR" | "STRING" => FieldType::VarChar,
        "JSON" => FieldType::Json,
        "ARRAY" => FieldType::Array(match elem? {
            "BOOL" => ElementType::Bool,
            "INT8" | "INT16" | "INT32" | "INT64" => ElementType::Int64,
            "FLOAT" | "DOUBLE" => ElementType::Double,
            "VARCHAR" | "STRING" => ElementType::VarChar,
            _ => return None,
        }),
        t if t.contains("VECTOR") => FieldType::Vector,
        _ => return None,
    })
}

fn schema_of(path: &Path, s: &Json) -> Result<Schema, CorpusError> {
    let fields = s["fields"]
        .as_array()
        .ok_or_else(|| shape(path, "schema.fields is not a list"))?;
    let varchar =
        |f: &&Json| f["type"].as_str() == Some("VARCHAR") && f["primary"].as_bool() != Some(true);
    let text = fields
        .iter()
        .filter(varchar)
        .find(|f| f["name"].as_str() == Some("text"))
        .or_else(|| fields.iter().find(varchar))
        .and_then(|f| f["name"].as_str())
        .map(str::to_owned);
    let mut pk = None;
    let mut defs = Vec::new();
    for f in fields {
        let name = f["name"]
            .as_str()
            .ok_or_else(|| shape(path, "a field has no name"))?;
        let ty = f["type"].as_str().unwrap_or("");
        if f["primary"].as_bool() == Some(true) {
            pk = Some((name.to_owned(), ty != "VARCHAR"));
            continue;
        }
        if text.as_deref() == Some(name) {
            continue;
        }
        let ft = field_type(ty, f["element_type"].as_str())
            .ok_or_else(|| shape(path, format!("field {name}: unknown type {ty}")))?;
        defs.push(FieldDef {
            name: name.to_owned(),
            ty: ft,
            nullable: f["nullable"].as_bool() == Some(true),
        });
    }
    let (pk_field, pk_is_int) = pk.ok_or_else(|| shape(path, "schema has no primary field"))?;
    Ok(Schema {
        pk_field,
        pk_is_int,
        text_field: text.unwrap_or_default(),
        fields: defs,
        dynamic: s["enable_dynamic_field"].as_bool() == Some(true),
    })
}

fn pk_of(v: &Json) -> Option<Pk> {
    match v {
        Json::Number(n) => n.as_i64().map(Pk::Int),
        Json::String(s) => Some(Pk::Str(s.clone())),
        _ => None,
    }
}

fn outcome_of(path: &Path, v: &Json) -> Result<Outcome, CorpusError> {
    match v {
        Json::Array(items) => {
            let mut pks = items
                .iter()
                .map(|p| pk_of(p).ok_or_else(|| shape(path, "a pk is neither int nor string")))
                .collect::<Result<Vec<_>, _>>()?;
            pks.sort();
            Ok(Outcome::Pks(pks))
        }
        Json::String(s) => Ok(Outcome::Error(
            s.strip_prefix("error: ").unwrap_or(s).to_owned(),
        )),
        _ => Err(shape(
            path,
            "an answer is neither a pk list nor an error string",
        )),
    }
}

fn case_of(path: &Path, c: &Json) -> Result<Case, CorpusError> {
    let expr = c["expr"]
        .as_str()
        .ok_or_else(|| shape(path, "a case has no expr"))?
        .to_owned();
    let group = c["group"].as_str().map(str::to_owned);
    let expected = if let Some(p) = c.get("pks") {
        Expected::Milvus(outcome_of(path, p)?)
    } else if let Some(e) = c.get("error") {
        Expected::Milvus(Outcome::Error(e.as_str().unwrap_or("").to_owned()))
    } else {
        let pick = |a: &str| c.get(a).or_else(|| c.get(format!("{a}_pks").as_str()));
        match (pick("lite_3_2_2"), pick("lite_2_5_1")) {
            (Some(a), Some(b)) => Expected::Unsettled {
                lite_3_2_2: outcome_of(path, a)?,
                lite_2_5_1: outcome_of(path, b)?,
            },
            _ => return Err(shape(path, format!("case {expr:?} has no answer"))),
        }
    };
    Ok(Case {
        group,
        expr,
        expected,
    })
}

/// Loads a corpus file (borrowing schema and rows from a sibling `expr_cases.json` when
/// the file has none).
pub fn load(path: &Path) -> Result<Corpus, CorpusError> {
    let doc = read_json(path)?;
    let base = if doc.get("rows").is_some() && doc.get("schema").is_some() {
        doc.clone()
    } else {
        let sibling = path.with_file_name("expr_cases.json");
        read_json(&sibling)?
    };
    let schema = schema_of(path, &base["schema"])?;
    let rows_json = base["rows"]
        .as_array()
        .ok_or_else(|| shape(path, "rows is not a list"))?;
    let mut rows = Vec::with_capacity(rows_json.len());
    for r in rows_json {
        let obj = r
            .as_object()
            .ok_or_else(|| shape(path, "a row is not an object"))?;
        let pk = obj
            .get(&schema.pk_field)
            .and_then(pk_of)
            .ok_or_else(|| shape(path, "a row has no pk"))?;
        let text = obj
            .get(&schema.text_field)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned();
        let mut metadata = Metadata::new();
        for (k, v) in obj {
            if *k == schema.pk_field || *k == schema.text_field {
                continue;
            }
            let v = Value::try_from(v.clone())
                .map_err(|e| shape(path, format!("row value {k}: {e}")))?;
            metadata.insert(k.clone(), v);
        }
        rows.push(CorpusRow { pk, text, metadata });
    }
    let cases = doc["cases"]
        .as_array()
        .ok_or_else(|| shape(path, "cases is not a list"))?
        .iter()
        .map(|c| case_of(path, c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Corpus {
        schema,
        rows,
        cases,
    })
}

/// What QuiverDB answers for `expr` over the corpus rows.
pub fn evaluate(corpus: &Corpus, expr: &str) -> Outcome {
    match crate::compile(expr, &corpus.schema, &Params::new()) {
        Err(e) => Outcome::Error(e.to_string()),
        Ok(f) => {
            let mut pks: Vec<Pk> = corpus
                .rows
                .iter()
                .filter(|r| f.matches(*r))
                .map(|r| r.pk.clone())
                .collect();
            pks.sort();
            Outcome::Pks(pks)
        }
    }
}

/// Runs every case of the corpus.
pub fn run(corpus: &Corpus) -> Report {
    let results = corpus
        .cases
        .iter()
        .map(|case| {
            let ours = evaluate(corpus, &case.expr);
            let (passed, agrees_with) = match &case.expected {
                Expected::Milvus(o) => (ours.agrees(o), Vec::new()),
                Expected::Unsettled {
                    lite_3_2_2,
                    lite_2_5_1,
                } => {
                    let mut w = Vec::new();
                    if ours.agrees(lite_3_2_2) {
                        w.push("lite 3.2.2");
                    }
                    if ours.agrees(lite_2_5_1) {
                        w.push("lite 2.5.1");
                    }
                    (!w.is_empty(), w)
                }
            };
            CaseResult {
                case: case.clone(),
                ours,
                passed,
                agrees_with,
            }
        })
        .collect();
    Report { results }
}
