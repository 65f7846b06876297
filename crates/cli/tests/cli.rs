//! End-to-end tests of the `quiver` binary: a real process per command, a temporary
//! database directory per test.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

/// The output of one `quiver` run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "quiver failed: {self:?}");
        self
    }

    #[track_caller]
    fn fails(self) -> Self {
        assert_ne!(self.code, 0, "quiver should have failed: {self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        self
    }

    /// Every stdout line as JSON.
    fn json_lines(&self) -> Vec<Json> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn json(&self) -> Json {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// The single `error: ` line of a failure.
    #[track_caller]
    fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0]
    }
}

struct Quiver {
    dir: tempfile::TempDir,
}

impl Quiver {
    fn new() -> Self {
        Quiver {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).expect("write input");
        p
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_remove("QUIVER_DB")
            .output()
            .expect("run quiver");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn ids(records: &[Json]) -> Vec<String> {
    records
        .iter()
        .map(|r| match &r["id"] {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

const DOCS: &str = r#"{"id":"a","text":"apples and pears","metadata":{"category":"fruit","n":1}}
{"id":"b","text":"rust and vectors","metadata":{"category":"tech","n":2}}
{"id":"bad","text":"wrong length","vector":[1.0, 2.0]}

{"id":"c","text":"pears are sweet in autumn","metadata":{"category":"fruit","n":3}}
{"id":"d","text":"an embedded vector database in rust","metadata":{"category":"tech","n":4}}
{"id":"e","text":"cherry cake recipe","metadata":{"category":"food","n":5}}
"#;

mod workflow {
    use super::*;

    #[test]
    fn create_import_search_filter_delete_export_reopen_check() {
        let q = Quiver::new();
        q.run(&["create", "docs", "--dim", "64", "--metric", "cosine"])
            .ok();
        let input = q.file("docs.jsonl", DOCS);

        let imported = q.run(&["import", "docs", s(&input)]).ok();
        assert!(
            imported.stdout.contains("imported 5 record(s)"),
            "{imported:?}"
        );
        assert!(
            imported.stdout.contains("line 3: vector has 2 components"),
            "{imported:?}"
        );
        assert!(
            imported.stderr.is_empty(),
            "no progress bar off a terminal: {imported:?}"
        );

        let hits = q
            .run(&[
                "--json",
                "search",
                "docs",
                "--text",
                "sweet pears",
                "-k",
                "2",
            ])
            .ok();
        let hits = hits.json_lines();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0]["id"], "c");
        assert!(hits[0]["score"].as_f64().is_some());

        let tech = q
            .run(&[
                "--json",
                "search",
                "docs",
                "--text",
                "pears",
                "--filter",
                "category == 'tech'",
            ])
            .ok();
        let mut tech = ids(&tech.json_lines());
        tech.sort();
        assert_eq!(tech, ["b", "d"]);

        let mmr = q
            .run(&[
                "--json", "search", "docs", "--text", "rust", "--mmr", "-k", "3",
            ])
            .ok();
        assert_eq!(mmr.json_lines().len(), 3);

        let query = q
            .run(&[
                "--json", "query", "docs", "--filter", "n >= 3", "--limit", "2",
            ])
            .ok();
        assert_eq!(ids(&query.json_lines()), ["c", "d"]);

        let deleted = q
            .run(&["--json", "delete", "docs", "--filter", "category == 'tech'"])
            .ok();
        assert_eq!(deleted.json()["deleted"], 2);
        q.run(&["delete", "docs", "--ids", "e"]).ok();

        let out = q.dir.path().join("export.jsonl");
        q.run(&["export", "docs", s(&out)]).ok();
        let exported: Vec<Json> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ids(&exported), ["a", "c"]);
        assert_eq!(exported[0]["vector"].as_array().unwrap().len(), 64);
        assert_eq!(exported[1]["metadata"]["category"], "fruit");
        let piped = q.run(&["export", "docs", "-"]).ok();
        assert_eq!(
            piped.json_lines(),
            exported,
            "stdout export is the file export"
        );

        // A new process sees what the earlier ones wrote.
        let stats = q.run(&["--json", "stats", "docs"]).ok().json();
        assert_eq!(stats["records"], 2);
        let got = q.run(&["--json", "get", "docs", "a", "b"]).ok();
        assert_eq!(ids(&got.json_lines()), ["a"]);
        let got = q.run(&["get", "docs", "a", "b"]).ok();
        assert!(got.stdout.contains("not found: \"b\""), "{got:?}");

        // The export imports again, vectors and all, into a new collection.
        let copy = q
            .run(&["--json", "import", "copy", s(&out), "--metric", "cosine"])
            .ok();
        let copy = copy.json();
        assert_eq!(
            (copy["added"].as_u64(), copy["dimension"].as_u64()),
            (Some(2), Some(64))
        );
        let again = q
            .run(&[
                "--json",
                "search",
                "copy",
                "--text",
                "sweet pears",
                "-k",
                "1",
            ])
            .ok();
        assert_eq!(again.json_lines()[0]["id"], "c");

        let check = q.run(&["check"]).ok();
        assert!(
            check.stdout.contains("docs: ok (2 records, 2 indexed)"),
            "{check:?}"
        );
        assert!(check.stdout.contains("copy: ok"), "{check:?}");

        let listed = q.run(&["--json", "collections"]).ok().json();
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["copy", "docs"]);
        // The listing reads storage only: counts and index parameters, no index state.
        let docs = &listed[1];
        assert_eq!(
            (docs["records"].as_u64(), docs["dimension"].as_u64()),
            (Some(2), Some(64))
        );
        assert_eq!(docs["index"]["engine"], "native");
        assert!(docs.get("index_state").is_none(), "{docs}");
        assert_eq!(listed[0]["metric"], "COSINE");
        let table = q.run(&["collections"]).ok().stdout;
        assert!(
            table.contains("native (m 16, ef_construction 200, ef_search 64)"),
            "{table}"
        );
        q.run(&["drop", "copy"]).ok();
        assert!(!q.run(&["collections"]).ok().stdout.contains("copy"));
    }

    #[test]
    fn import_creates_an_auto_id_collection_from_vectors() {
        let q = Quiver::new();
        let input = q.file(
            "v.jsonl",
            "{\"vector\":[1,0,0]}\n{\"vector\":[0,1,0],\"id\":\"ignored\"}\n{\"text\":\"embedded at dim 3\"}\n",
        );
        let r = q
            .run(&["--json", "import", "vecs", s(&input), "--auto-id"])
            .ok()
            .json();
        assert_eq!(
            (r["added"].as_u64(), r["dimension"].as_u64()),
            (Some(3), Some(3))
        );
        let hits = q
            .run(&[
                "--json",
                "search",
                "vecs",
                "--vector",
                "[0, 1, 0.1]",
                "-k",
                "1",
            ])
            .ok();
        let hit = &hits.json_lines()[0];
        assert!(hit["id"].is_i64(), "auto ids are integers: {hit}");
        let id = hit["id"].to_string();
        assert_eq!(
            q.run(&["--json", "get", "vecs", &id])
                .ok()
                .json_lines()
                .len(),
            1
        );
        let described = q.run(&["--json", "describe", "vecs"]).ok().json();
        assert_eq!(described["ids"], "auto");
    }

    #[test]
    fn csv_and_fvecs_imports() {
        let q = Quiver::new();
        let csv = q.file(
            "notes.csv",
            "id,body,lang\nn1,rust vectors,en\nn2,\"quoted, with comma\",fr\nn3,short\n",
        );
        let r = q
            .run(&[
                "--json",
                "import",
                "notes",
                s(&csv),
                "--text-column",
                "body",
                "--dim",
                "32",
            ])
            .ok()
            .json();
        assert_eq!(r["added"], 2);
        assert_eq!(r["rejected"][0]["line"], 4);
        let fr = q
            .run(&["--json", "query", "notes", "--filter", "lang == 'fr'"])
            .ok();
        assert_eq!(fr.json_lines()[0]["text"], "quoted, with comma");

        let mut bytes = Vec::new();
        for row in 0..5 {
            bytes.extend(4i32.to_le_bytes());
            for c in 0..4 {
                bytes.extend(((row * 4 + c) as f32).to_le_bytes());
            }
        }
        let fvecs = q.file("base.fvecs", &bytes);
        let r = q.run(&["--json", "import", "base", s(&fvecs)]).ok().json();
        assert_eq!(
            (r["added"].as_u64(), r["dimension"].as_u64()),
            (Some(5), Some(4))
        );
        let near = q
            .run(&[
                "--json",
                "search",
                "base",
                "--vector",
                "[8, 9, 10, 11]",
                "-k",
                "1",
            ])
            .ok();
        assert_eq!(near.json_lines()[0]["id"], "2");
    }

    #[test]
    fn a_stored_id_is_rejected_on_reimport_without_touching_the_rest() {
        let q = Quiver::new();
        let first = q.file("a.jsonl", "{\"id\":\"x\",\"text\":\"one\"}\n");
        q.run(&["import", "c", s(&first)]).ok();
        let second = q.file(
            "b.jsonl",
            "{\"id\":\"y\",\"text\":\"two\"}\n{\"id\":\"x\",\"text\":\"again\"}\n{\"id\":\"z\",\"text\":\"three\"}\n",
        );
        let r = q.run(&["--json", "import", "c", s(&second)]).ok().json();
        assert_eq!(r["added"], 2);
        assert_eq!(r["rejected"][0]["line"], 2);
        assert!(r["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("duplicate id"));
        assert_eq!(q.run(&["--json", "stats", "c"]).ok().json()["records"], 3);
        assert!(q
            .run(&["check"])
            .ok()
            .stdout
            .contains("c: ok (3 records, 3 indexed)"));
    }
}

mod errors {
    use super::*;

    fn with_docs() -> Quiver {
        let q = Quiver::new();
        let input = q.file("docs.jsonl", DOCS);
        q.run(&["import", "docs", s(&input), "--dim", "64"]).ok();
        q
    }

    #[test]
    fn unknown_collection_is_one_line() {
        let q = with_docs();
        for args in [
            &["search", "nope", "--text", "x"][..],
            &["stats", "nope"],
            &["drop", "nope"],
            &["export", "nope", "out.jsonl"],
        ] {
            let r = q.run(args).fails();
            assert_eq!(r.code, 1);
            assert_eq!(
                r.error_line(),
                "error: unknown collection \"nope\" (collections: docs)"
            );
        }
    }

    #[test]
    fn malformed_filter_names_the_position() {
        let q = with_docs();
        let r = q
            .run(&["search", "docs", "--text", "x", "--filter", "category == "])
            .fails();
        assert!(r.error_line().contains("at 12"), "{r:?}");
        let r = q.run(&["delete", "docs", "--filter", "n >>> 2"]).fails();
        assert!(
            r.error_line().contains("invalid filter expression"),
            "{r:?}"
        );
        assert_eq!(
            q.run(&["--json", "stats", "docs"]).ok().json()["records"],
            5
        );
    }

    #[test]
    fn bad_arguments_are_readable() {
        let q = with_docs();
        let r = q.run(&["search", "docs", "--vector", "[1, 2]"]).fails();
        assert!(r.error_line().contains("wrong vector dimension"), "{r:?}");
        let r = q.run(&["search", "docs", "--vector", "1,2"]).fails();
        assert!(r.error_line().contains("JSON array"), "{r:?}");
        let r = q.run(&["search", "docs", "--text", "x", "-k", "0"]).fails();
        assert!(r.error_line().contains("k must be at least 1"), "{r:?}");
        let r = q.run(&["create", "docs", "--dim", "8"]).fails();
        assert!(r.error_line().contains("already exists"), "{r:?}");
        let r = q.run(&["import", "docs", "missing.jsonl"]).fails();
        assert!(r.error_line().contains("cannot read"), "{r:?}");
        // clap's usage errors exit with 2.
        assert_eq!(q.run(&["delete", "docs"]).fails().code, 2);
    }

    #[test]
    fn read_commands_do_not_create_a_database() {
        let q = Quiver::new();
        let r = q.run(&["collections"]).fails();
        assert!(r.error_line().contains("does not exist"), "{r:?}");
        assert!(!q.db().exists());
    }

    #[test]
    fn check_fails_on_a_damaged_database() {
        let q = with_docs();
        let file = q.db().join("db");
        let mut bytes = std::fs::read(&file).expect("the database file");
        bytes.iter_mut().step_by(7).for_each(|b| *b ^= 0xff);
        std::fs::write(&file, bytes).unwrap();
        let r = q.run(&["check"]).fails();
        assert_eq!(r.code, 1);
        assert!(r.error_line().contains("corrupted"), "{r:?}");
    }
}
