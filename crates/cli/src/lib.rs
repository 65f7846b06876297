//! `quiver`: a command-line dev store over a QuiverDB database directory.
//!
//! The binary lists, creates, describes and drops collections; imports JSON Lines, CSV and
//! fvecs files (validated line by line, added in batches, with a progress bar); searches by
//! text or vector with filters and MMR; queries, gets, deletes and exports records; shows
//! index statistics; checks the integrity of every collection; and runs the async-vs-sync
//! demo workload (`quiver bench`, also behind `cargo run --example async_vs_sync`).
//!
//! ```text
//! quiver --db ./data create docs --dim 384 --metric cosine
//! quiver --db ./data import docs docs.jsonl
//! quiver --db ./data search docs --text "rust vector database" -k 3 --filter "lang == 'en'"
//! quiver --db ./data export docs backup.jsonl
//! quiver --db ./data check
//! ```
//!
//! The library is the binary's body, so commands can also be run in-process:
//!
//! ```
//! use clap::Parser;
//! use quiverdb_cli::{run, Cli};
//!
//! let dir = tempfile::tempdir()?;
//! let db = dir.path().join("data");
//! let db = db.to_str().unwrap();
//! let mut out = Vec::new();
//! run(Cli::parse_from(["quiver", "--db", db, "create", "docs", "--dim", "8"]), &mut out)?;
//! run(Cli::parse_from(["quiver", "--db", db, "--json", "stats", "docs"]), &mut out)?;
//! assert!(String::from_utf8(out)?.contains(r#""records":0"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Model
//! Every command opens the database directory, does one thing through the public
//! [`quiverdb`] API and exits; there is no server. Texts are embedded with the built-in
//! [`quiverdb::HashingEmbeddings`] at the collection's dimension, so text search works on
//! collections filled by `import` (a collection filled with a real model's vectors should
//! be searched with `--vector`). Output is aligned text by default and JSON with `--json`
//! (records in the import format, so an export imports again).
//!
//! # Errors
//! A failure is one line on stderr (`error: …`, printed by the binary from
//! [`CliError`]'s `Display`) and exit code 1; clap's usage errors exit
//! with 2. A bad input line is not a failure: `import` reports it by line number and goes
//! on, and what was imported stays.
//!
//! # Durability
//! Every write the store acknowledges is fsynced; commands that write close the store, so
//! the index snapshot is saved and the next open is fast.
#![forbid(unsafe_code)]

pub mod bench;
mod cli;
mod commands;
mod error;
pub mod import;
mod output;

pub use cli::{
    BenchArgs, Cli, Command, CreateArgs, DeleteArgs, EngineArg, FormatArg, ImportArgs, MetricArg,
    SchemaArgs, SearchArgs,
};
pub use commands::run;
pub use error::{CliError, Result};
pub use import::{import, ImportSummary, Rejection};
