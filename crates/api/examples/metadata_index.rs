//! Filter queries through the store's indexes on a large collection: equality and `in` on a
//! metadata key (equality index, built on first use), `pk in [...]` (key map), and a
//! residual filter that scans every row. Prints one JSON line per measurement.
//!
//! ```text
//! cargo run --release -p quiverdb --example metadata_index [-- ROWS]   # default 1,000,000
//! ```

use std::time::Instant;

use quiverdb::types::{Metadata, Value};
use quiverdb::{IndexOptions, QueryOptions, VectorStore};

fn median_ms(mut f: impl FnMut() -> usize, runs: usize) -> (f64, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], n)
}

fn main() -> Result<(), quiverdb::Error> {
    let rows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let store = VectorStore::builder()
        .index(IndexOptions {
            engine: "flat".into(),
            ..IndexOptions::default()
        })
        .auto_id(true)
        .open()?;
    let t = Instant::now();
    for start in (0..rows).step_by(50_000) {
        let n = 50_000.min(rows - start);
        let texts: Vec<String> = (start..start + n).map(|i| format!("doc {i}")).collect();
        let vectors: Vec<Vec<f32>> = (start..start + n)
            .map(|i| vec![(i % 97) as f32, (i % 89) as f32, 1.0, 0.5])
            .collect();
        let metas: Vec<Metadata> = (start..start + n)
            .map(|i| {
                let mut m = Metadata::new();
                m.insert("id".into(), Value::from(format!("doc_{i}")));
                m.insert("category".into(), Value::from(format!("cat_{}", i % 5)));
                m.insert("score".into(), Value::Float((i % 1000) as f64 / 1000.0));
                m
            })
            .collect();
        store.add_embeddings(texts, vectors, Some(metas), None)?;
    }
    println!(
        "{{\"rows\":{rows},\"load_s\":{:.1}}}",
        t.elapsed().as_secs_f64()
    );
    let probe = rows / 2;
    let eq = format!("id == 'doc_{probe}'");
    let list: Vec<String> = (0..10)
        .map(|j| format!("'doc_{}'", probe + j * 7))
        .collect();
    let within = format!("id in [{}]", list.join(", "));
    let pks = format!(
        "pk in [{}]",
        (1..=10)
            .map(|i| (i * 1000).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let residual = "score > 0.5 and category == 'cat_1' and text like 'doc 1%'".to_owned();
    // The first query on a key builds its index: time it separately.
    let t = Instant::now();
    let first = store.get_pks(&eq)?.len();
    println!(
        "{{\"query\":\"first {eq} (builds the index on id)\",\"ms\":{:.3},\"matches\":{first}}}",
        t.elapsed().as_secs_f64() * 1e3
    );
    for (expr, runs) in [(eq, 51), (within, 51), (pks, 51), (residual, 5)] {
        let (ms, n) = median_ms(|| store.get_pks(&expr).map(|p| p.len()).unwrap_or(0), runs);
        println!("{{\"query\":\"{expr}\",\"median_ms\":{ms:.3},\"matches\":{n}}}");
    }
    // A 20%-selective equality, as the demo's search_by_metadata (limit 10) and get_pks rows.
    let category = "category == 'cat_1'";
    store.get_pks(category)?; // builds the index on category
    let (ms, n) = median_ms(|| store.get_pks(category).map(|p| p.len()).unwrap_or(0), 11);
    println!("{{\"query\":\"get_pks {category}\",\"median_ms\":{ms:.3},\"matches\":{n}}}");
    let limit10 = QueryOptions::default();
    let (ms, n) = median_ms(
        || {
            store
                .search_by_metadata(category, &limit10)
                .map(|d| d.len())
                .unwrap_or(0)
        },
        51,
    );
    println!(
        "{{\"query\":\"search_by_metadata {category} limit 10\",\"median_ms\":{ms:.3},\"matches\":{n}}}"
    );
    Ok(())
}
