//! `quiverdb-bench`: QuiverDB's benchmark harness. Long measurements live here, not in
//! timed unit tests; every measurement is one JSON line on stdout.
//!
//! ```text
//! quiverdb-bench ann --synth 100000,128,1000 --metric l2 --ef 16,32,64,128,256 --threads 1
//! quiverdb-bench ann --base B.fvecs --query Q.fvecs --gt G.ivecs --metric cosine --engine hnsw_rs_direct
//! quiverdb-bench ann --synth 100000,128,1000 --write-synth DIR   # fvecs/ivecs for other libraries
//! ```
//!
//! See `scripts/bench_ann.sh` for the full comparison with hnswlib, and
//! `docs/BENCHMARKS.md` (`## ANN`) for recorded figures.

mod ann;
mod args;
mod dataset;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("ann") => args::parse_ann(&argv[1..]).and_then(|a| ann::run(&a)),
        Some("-h" | "--help") | None => {
            println!("{}", args::USAGE);
            return;
        }
        Some(other) => Err(format!("unknown command {other:?}\n{}", args::USAGE)),
    };
    if let Err(e) = result {
        eprintln!("quiverdb-bench: {e}");
        std::process::exit(2);
    }
}
