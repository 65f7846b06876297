//! Runs a filter conformance corpus and prints every disagreement.
//!
//! `cargo run --release -p quiverdb-filter --example conformance -- PATH`
//! Ends with the line `N passed, M failed`. For a file of unsettled cases it also prints,
//! per case, our answer and which Milvus build(s) it agrees with.

use std::path::PathBuf;
use std::process::ExitCode;

use quiverdb_filter::conformance::{self, Expected};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: conformance PATH");
        return ExitCode::from(2);
    };
    let corpus = match conformance::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let report = conformance::run(&corpus);
    for r in &report.results {
        match &r.case.expected {
            Expected::Milvus(want) => {
                if !r.passed {
                    println!(
                        "DISAGREE {:?}\n  milvus: {want}\n  ours:   {}",
                        r.case.expr, r.ours
                    );
                }
            }
            Expected::Unsettled {
                lite_3_2_2,
                lite_2_5_1,
            } => {
                let with = if r.agrees_with.is_empty() {
                    "neither".to_owned()
                } else {
                    r.agrees_with.join(" + ")
                };
                let tag = if r.passed { "unsettled" } else { "DISAGREE" };
                println!(
                    "{tag} {:?}: agrees with {with}\n  ours:       {}\n  lite 3.2.2: {lite_3_2_2}\n  lite 2.5.1: {lite_2_5_1}",
                    r.case.expr, r.ours
                );
            }
        }
    }
    println!("{}", report.summary());
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
