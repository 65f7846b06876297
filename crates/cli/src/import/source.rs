//! Reading input files into raw records, one at a time, each tagged with its line (or, for
//! fvecs, its vector number). A malformed record is a [`Rejection`], not an error: the
//! import goes on. Only failures to read the file at all are errors.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use quiverdb::types::{metadata_from_json, Metadata, Value};
use serde_json::Value as Json;

use crate::cli::FormatArg;
use crate::error::{CliError, Result};

/// Largest vector dimension an fvecs header may claim (anything larger is a corrupt file).
const MAX_FVECS_DIM: usize = 1 << 16;

/// A record's id as written in the input, before it is checked against the collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawId {
    /// A string id.
    Str(String),
    /// An integer id (JSON numbers, fvecs row numbers).
    Int(i64),
}

/// One parsed, not yet validated, input record.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// 1-based line (JSON Lines, CSV) or vector number (fvecs).
    pub line: usize,
    /// The id, if the input gave one.
    pub id: Option<RawId>,
    /// The text (empty when absent).
    pub text: String,
    /// The metadata.
    pub metadata: Metadata,
    /// The vector, if the input gave one (else the text is embedded).
    pub vector: Option<Vec<f32>>,
}

/// A record that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line (JSON Lines, CSV) or vector number (fvecs).
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl Rejection {
    pub(crate) fn new(line: usize, reason: impl Into<String>) -> Self {
        Rejection {
            line,
            reason: reason.into(),
        }
    }
}

/// What the next read produced.
pub type Item = std::result::Result<RawRecord, Rejection>;

/// The format of `path`: `--format` if given, else by extension (`.csv`, `.fvecs`, else
/// JSON Lines).
pub fn detect_format(path: &Path, forced: Option<FormatArg>) -> FormatArg {
    forced.unwrap_or_else(|| {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => FormatArg::Csv,
            Some("fvecs") => FormatArg::Fvecs,
            _ => FormatArg::Jsonl,
        }
    })
}

/// A reader of one input file.
#[derive(Debug)]
pub enum Source {
    /// JSON Lines.
    Jsonl(JsonLines),
    /// CSV with a header row.
    Csv(CsvRows),
    /// fvecs.
    Fvecs(Fvecs),
}

impl Source {
    /// Opens `path` in `format`. CSV options name the text and id columns.
    pub fn open(
        path: &Path,
        format: FormatArg,
        text_column: &str,
        id_column: Option<&str>,
    ) -> Result<Source> {
        let file = File::open(path).map_err(|e| CliError::read(path, e))?;
        Ok(match format {
            FormatArg::Jsonl => Source::Jsonl(JsonLines {
                path: path.to_path_buf(),
                reader: BufReader::new(file),
                line: 0,
                bytes: 0,
                buf: String::new(),
            }),
            FormatArg::Csv => Source::Csv(CsvRows::new(path, file, text_column, id_column)?),
            FormatArg::Fvecs => Source::Fvecs(Fvecs {
                path: path.to_path_buf(),
                reader: BufReader::new(file),
                row: 0,
                bytes: 0,
                done: false,
            }),
        })
    }

    /// The next record, `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        match self {
            Source::Jsonl(s) => s.next_item(),
            Source::Csv(s) => s.next_item(),
            Source::Fvecs(s) => s.next_item(),
        }
    }

    /// Bytes consumed so far (for the progress bar).
    pub fn bytes_read(&self) -> u64 {
        match self {
            Source::Jsonl(s) => s.bytes,
            Source::Csv(s) => s.reader.position().byte(),
            Source::Fvecs(s) => s.bytes,
        }
    }
}

/// JSON Lines: `{"id": …, "text": …, "metadata": {…}, "vector": […]}` a line; every key
/// optional, other keys ignored (so search output with its `score` imports too).
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
    bytes: u64,
    buf: String,
}

impl JsonLines {
    fn next_item(&mut self) -> Result<Option<Item>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|e| CliError::read(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += n as u64;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(parse_json_line(self.line, text)));
        }
    }
}

/// Parses one JSON line into a record.
pub fn parse_json_line(line: usize, text: &str) -> Item {
    let reject = |reason: String| Rejection::new(line, reason);
    let value: Json =
        serde_json::from_str(text).map_err(|e| reject(format!("invalid JSON: {e}")))?;
    let Json::Object(mut o) = value else {
        return Err(reject("expected a JSON object".into()));
    };
    let id = match o.remove("id") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(RawId::Str(s)),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i) => Some(RawId::Int(i)),
            None => return Err(reject(format!("\"id\" {n} is not a 64-bit integer"))),
        },
        Some(other) => {
            return Err(reject(format!(
                "\"id\" must be a string or an integer, got {}",
                json_type(&other)
            )))
        }
    };
    let text = match o.remove("text") {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s,
        Some(other) => {
            return Err(reject(format!(
                "\"text\" must be a string, got {}",
                json_type(&other)
            )))
        }
    };
    let metadata = match o.remove("metadata") {
        None | Some(Json::Null) => Metadata::new(),
        Some(m) => metadata_from_json(m).map_err(|e| reject(format!("\"metadata\": {e}")))?,
    };
    let vector = match o.remove("vector") {
        None | Some(Json::Null) => None,
        Some(Json::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_f64()
                        .map(|f| f as f32)
                        .ok_or_else(|| reject(format!("\"vector\"[{i}] is not a number: {x}")))
                })
                .collect::<std::result::Result<Vec<f32>, _>>()?,
        ),
        Some(other) => {
            return Err(reject(format!(
                "\"vector\" must be an array of numbers, got {}",
                json_type(&other)
            )))
        }
    };
    Ok(RawRecord {
        line,
        id,
        text,
        metadata,
        vector,
    })
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// CSV with a header row: one text column, an optional id column, every other column a
/// string metadata entry named after its header.
#[derive(Debug)]
pub struct CsvRows {
    path: PathBuf,
    reader: csv::Reader<File>,
    headers: Vec<String>,
    text_col: usize,
    id_col: Option<usize>,
    row: usize,
    record: csv::StringRecord,
}

impl CsvRows {
    fn new(path: &Path, file: File, text_column: &str, id_column: Option<&str>) -> Result<Self> {
        let mut reader = csv::ReaderBuilder::new().from_reader(file);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| csv_fatal(path, e))?
            .iter()
            .map(str::to_owned)
            .collect();
        let find = |name: &str| headers.iter().position(|h| h == name);
        let columns = || {
            if headers.is_empty() {
                "none".to_owned()
            } else {
                headers.join(", ")
            }
        };
        let text_col = find(text_column).ok_or_else(|| {
            CliError::InvalidArgument(format!(
                "{}: no column {text_column:?} (columns: {}); name the text column with --text-column",
                path.display(),
                columns()
            ))
        })?;
        let id_col = match id_column {
            Some(name) => Some(find(name).ok_or_else(|| {
                CliError::InvalidArgument(format!(
                    "{}: no column {name:?} (columns: {})",
                    path.display(),
                    columns()
                ))
            })?),
            None => find("id"),
        };
        Ok(CsvRows {
            path: path.to_path_buf(),
            reader,
            headers,
            text_col,
            id_col,
            row: 0,
            record: csv::StringRecord::new(),
        })
    }

    fn next_item(&mut self) -> Result<Option<Item>> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map_or(self.row + 2, |p| p.line() as usize);
                let row = self.row;
                self.row += 1;
                let mut metadata = Metadata::new();
                let mut text = String::new();
                let mut id = None;
                for (i, field) in self.record.iter().enumerate() {
                    if i == self.text_col {
                        text = field.to_owned();
                    } else if Some(i) == self.id_col {
                        id = Some(RawId::Str(field.to_owned()));
                    } else {
                        metadata.insert(self.headers[i].clone(), Value::from(field));
                    }
                }
                // Without an id column the row number (0-based) is the id, as for fvecs.
                let id = id.or(Some(RawId::Int(row as i64)));
                Ok(Some(Ok(RawRecord {
                    line,
                    id,
                    text,
                    metadata,
                    vector: None,
                })))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                match (e.kind(), line) {
                    (csv::ErrorKind::Io(_), _) | (_, None) => Err(csv_fatal(&self.path, e)),
                    (_, Some(line)) => {
                        self.row += 1;
                        Ok(Some(Err(Rejection::new(line, csv_reason(&e)))))
                    }
                }
            }
        }
    }
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".into(),
        _ => e.to_string(),
    }
}

fn csv_fatal(path: &Path, e: csv::Error) -> CliError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => CliError::read(path, io),
        _ => CliError::InvalidArgument(format!("{}: {message}", path.display())),
    }
}

/// fvecs: per vector a little-endian `int32` dimension, then that many `f32`. Ids are
/// the 0-based row numbers; there is no text.
#[derive(Debug)]
pub struct Fvecs {
    path: PathBuf,
    reader: BufReader<File>,
    row: usize,
    bytes: u64,
    done: bool,
}

impl Fvecs {
    fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        let row = self.row;
        let number = row + 1;
        let mut head = [0u8; 4];
        match read_full(&mut self.reader, &mut head).map_err(|e| CliError::read(&self.path, e))? {
            0 => return Ok(None),
            4 => {}
            _ => return Ok(Some(Err(self.stop(number, "truncated dimension header")))),
        }
        let dim = i32::from_le_bytes(head);
        let Ok(dim) = usize::try_from(dim) else {
            return Ok(Some(Err(
                self.stop(number, format!("negative dimension {dim}"))
            )));
        };
        if dim == 0 || dim > MAX_FVECS_DIM {
            return Ok(Some(Err(self.stop(
                number,
                format!("dimension {dim} out of range 1..={MAX_FVECS_DIM} (not an fvecs file?)"),
            ))));
        }
        let mut body = vec![0u8; dim * 4];
        let got =
            read_full(&mut self.reader, &mut body).map_err(|e| CliError::read(&self.path, e))?;
        self.bytes += 4 + got as u64;
        if got < body.len() {
            return Ok(Some(Err(self.stop(
                number,
                format!("truncated vector: {got} of {} bytes", body.len()),
            ))));
        }
        self.row += 1;
        let vector = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Some(Ok(RawRecord {
            line: number,
            id: Some(RawId::Int(row as i64)),
            text: String::new(),
            metadata: Metadata::new(),
            vector: Some(vector),
        })))
    }

    /// A damaged header desynchronises the stream: report it and read no further.
    fn stop(&mut self, number: usize, reason: impl Into<String>) -> Rejection {
        self.done = true;
        Rejection::new(
            number,
            format!("{}; the rest of the file was skipped", reason.into()),
        )
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_with_every_field() {
        let r = parse_json_line(
            3,
            r#"{"id":"a","text":"hi","metadata":{"n":1},"vector":[1,2.5],"score":0.3}"#,
        )
        .unwrap();
        assert_eq!(r.line, 3);
        assert_eq!(r.id, Some(RawId::Str("a".into())));
        assert_eq!(r.text, "hi");
        assert_eq!(r.metadata["n"], Value::Int(1));
        assert_eq!(r.vector, Some(vec![1.0, 2.5]));
    }

    #[test]
    fn bad_json_lines_are_rejected_with_their_line() {
        for (text, want) in [
            ("{not json", "invalid JSON"),
            ("[1,2]", "expected a JSON object"),
            (r#"{"id":[1]}"#, "\"id\" must be a string or an integer"),
            (r#"{"text":3}"#, "\"text\" must be a string"),
            (r#"{"metadata":3}"#, "\"metadata\""),
            (r#"{"vector":[1,"x"]}"#, "\"vector\"[1] is not a number"),
            (r#"{"vector":"x"}"#, "\"vector\" must be an array"),
        ] {
            let e = parse_json_line(7, text).unwrap_err();
            assert_eq!(e.line, 7);
            assert!(e.reason.contains(want), "{text}: {}", e.reason);
        }
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(detect_format(Path::new("a.CSV"), None), FormatArg::Csv);
        assert_eq!(detect_format(Path::new("a.fvecs"), None), FormatArg::Fvecs);
        assert_eq!(detect_format(Path::new("a.jsonl"), None), FormatArg::Jsonl);
        assert_eq!(
            detect_format(Path::new("a.txt"), Some(FormatArg::Csv)),
            FormatArg::Csv
        );
    }

    fn write_tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn drain(mut s: Source) -> Vec<Item> {
        let mut v = Vec::new();
        while let Some(i) = s.next_item().unwrap() {
            v.push(i);
        }
        v
    }

    #[test]
    fn csv_rows_and_a_short_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_tmp(
            &dir,
            "a.csv",
            b"id,text,cat\nx,hello,a\ny,short\nz,\"multi\nline\",b\n",
        );
        let items = drain(Source::open(&p, FormatArg::Csv, "text", None).unwrap());
        assert_eq!(items.len(), 3);
        let first = items[0].as_ref().unwrap();
        assert_eq!((first.line, first.text.as_str()), (2, "hello"));
        assert_eq!(first.id, Some(RawId::Str("x".into())));
        assert_eq!(first.metadata["cat"], Value::from("a"));
        assert_eq!(items[1].as_ref().unwrap_err().line, 3);
        assert_eq!(items[2].as_ref().unwrap().text, "multi\nline");
        assert!(Source::open(&p, FormatArg::Csv, "body", None).is_err());
    }

    #[test]
    fn fvecs_rows_then_a_truncated_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for row in [[1.0f32, 2.0], [3.0, 4.0]] {
            bytes.extend(2i32.to_le_bytes());
            row.iter().for_each(|x| bytes.extend(x.to_le_bytes()));
        }
        bytes.extend(2i32.to_le_bytes());
        bytes.extend(5.0f32.to_le_bytes());
        let p = write_tmp(&dir, "a.fvecs", &bytes);
        let items = drain(Source::open(&p, FormatArg::Fvecs, "text", None).unwrap());
        assert_eq!(items.len(), 3);
        assert_eq!(items[1].as_ref().unwrap().vector, Some(vec![3.0, 4.0]));
        assert_eq!(items[1].as_ref().unwrap().id, Some(RawId::Int(1)));
        assert!(items[2].as_ref().unwrap_err().reason.contains("truncated"));
    }
}
