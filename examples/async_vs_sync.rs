//! The LangChain–Milvus "async vs sync" tutorial, on QuiverDB's embedded store.
//!
//! Adds, searches and deletes 10 and 100 documents one call at a time, first with one
//! async task per call (joined), then with the blocking calls one after another, plus MMR,
//! upsert, search_by_metadata and get_pks rows. Each row runs five times and reports the
//! median (`--rounds 1`: the tutorial's single run). The workload lives in
//! `quiverdb_cli::bench` (also run by `quiver bench`); this example only parses arguments.
//!
//! The async rows run on a tokio current-thread runtime by default, the counterpart of the
//! tutorial's asyncio event loop; `--runtime multi` runs them on a multi-thread one.
//!
//! ```text
//! cargo run --release --example async_vs_sync [-- --docs N] [--path DIR] [--rounds R] [--runtime current|multi]
//! ```

use quiverdb_cli::bench::{self, BenchOptions, RuntimeFlavor};

fn parse_args() -> BenchOptions {
    let mut opts = BenchOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--docs" => {
                opts.docs = it
                    .next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .unwrap_or_else(|| usage("--docs takes a number"))
            }
            "--path" => {
                opts.path = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--path takes a directory"))
                        .into(),
                )
            }
            "--rounds" => {
                opts.rounds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&r| r > 0)
                    .unwrap_or_else(|| usage("--rounds takes a count of at least 1"))
            }
            "--runtime" => {
                opts.runtime = match it.next().as_deref() {
                    Some("current") => RuntimeFlavor::Current,
                    Some("multi") => RuntimeFlavor::Multi,
                    _ => usage("--runtime takes current or multi"),
                }
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    opts
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!("usage: async_vs_sync [--docs N (default 1000)] [--path DIR (default: a temporary directory)] [--rounds R (default 5; the median is reported)] [--runtime current|multi (default current)]");
    std::process::exit(if msg.is_empty() { 0 } else { 2 });
}

fn main() -> std::process::ExitCode {
    let opts = parse_args();
    let runtime = match opts.runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(opts, &mut std::io::stdout())) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
