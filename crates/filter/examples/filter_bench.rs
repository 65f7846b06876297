//! Filter micro-benchmark (no criterion): compile cost and a residual-filter scan.
//!
//! `cargo run --release -p quiverdb-filter --example filter_bench`
//!
//! Prints the median parse+compile time of a typical expression, and the time to run a
//! 3-clause residual filter over 1,000,000 in-memory records on one thread (median and best
//! of 15), next to a hand-written closure doing the same three tests (the floor set by the
//! `BTreeMap` metadata layout).

use std::hint::black_box;
use std::time::{Duration, Instant};

use quiverdb_filter::{compile, Params, Row, Schema};
use quiverdb_types::{Metadata, Pk, Value};

struct Rec {
    pk: Pk,
    text: String,
    meta: Metadata,
}

impl Row for Rec {
    fn pk(&self) -> &Pk {
        &self.pk
    }
    fn text(&self) -> &str {
        &self.text
    }
    fn metadata(&self) -> &Metadata {
        &self.meta
    }
}

/// Scan repetitions; the median and the best are reported (the machine is shared).
const REPS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let schema = Schema::dynamic("pk", true, "text");
    let params = Params::new();
    let typical = "category == 'cat_1' and score > 0.5 and name like 'doc_1%'";
    let complex = "(source in ['a.pdf', 'b.pdf', 'c.pdf'] or page >= 10) and not (tags[0] == 'x') \
                   and meta[\"author\"][\"name\"] like '%smith%' and 1 < size < 10";

    for (label, expr) in [("typical", typical), ("complex", complex)] {
        let iters = 20_000;
        let mut samples = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(compile(black_box(expr), &schema, &params).unwrap());
            }
            samples.push(t.elapsed() / iters);
        }
        println!(
            "compile[{label}]: {:.2} us median  ({expr})",
            median(samples).as_secs_f64() * 1e6
        );
    }

    let t = Instant::now();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let recs: Vec<Rec> = (0..n)
        .map(|i| {
            let mut meta = Metadata::new();
            meta.insert("category".into(), Value::Str(format!("cat_{}", rnd() % 10)));
            meta.insert(
                "score".into(),
                Value::Float((rnd() % 10_000) as f64 / 10_000.0),
            );
            meta.insert("name".into(), Value::Str(format!("doc_{i}")));
            meta.insert("page".into(), Value::Int((rnd() % 50) as i64));
            Rec {
                pk: Pk::Int(i as i64),
                text: format!("text of {i}"),
                meta,
            }
        })
        .collect();
    println!("built {n} records in {:.2} s", t.elapsed().as_secs_f64());

    let f = compile(typical, &schema, &params).unwrap();
    let mut samples = Vec::new();
    let mut hits = 0;
    for _ in 0..REPS {
        let t = Instant::now();
        hits = recs.iter().filter(|r| f.matches(*r)).count();
        samples.push(t.elapsed());
    }
    let best = *samples.iter().min().unwrap();
    let med = median(samples);
    println!(
        "scan[{typical}]: {n} records, {hits} hits, median {:.1} ms, best {:.1} ms ({:.1} ns/record)",
        med.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        med.as_secs_f64() * 1e9 / n as f64
    );

    // Baseline: the same three tests hand-written against the BTreeMap, no filter engine.
    let mut samples = Vec::new();
    let mut base_hits = 0;
    for _ in 0..REPS {
        let t = Instant::now();
        base_hits = recs
            .iter()
            .filter(|r| {
                let m = black_box(&r.meta);
                m.get("category").and_then(Value::as_str) == Some("cat_1")
                    && m.get("score")
                        .and_then(Value::as_f64)
                        .is_some_and(|s| s > 0.5)
                    && m.get("name").and_then(Value::as_str).is_some_and(|s| {
                        s.len() >= 5 && s.starts_with("doc") && s[4..].starts_with('1')
                    })
            })
            .count();
        samples.push(t.elapsed());
    }
    let base_best = *samples.iter().min().unwrap();
    let base = median(samples);
    assert_eq!(base_hits, hits, "baseline and filter must agree");
    println!(
        "baseline[hand-written closure]: median {:.1} ms, best {:.1} ms; filter/baseline = {:.2} (median), {:.2} (best)",
        base.as_secs_f64() * 1e3,
        base_best.as_secs_f64() * 1e3,
        med.as_secs_f64() / base.as_secs_f64(),
        best.as_secs_f64() / base_best.as_secs_f64()
    );
}
