//! Measures the native HNSW engine on an fvecs/ivecs dataset (the format of
//! `shared/peers/make_datasets.py`): build time on N threads, recall@10 against the
//! dataset's ground truth, single-thread QPS with one query per call, memory.
//!
//! ```text
//! cargo run --release -p quiverdb-index --example native_ann -- DATA_DIR \
//!     [--metric l2|ip|cosine] [--threads 2] [--m 16] [--ef-construction 200] \
//!     [--ef 16,32,64,128,256] [--engine native|flat] [--runs 3] [--cache DIR]
//! ```
//! With `--cache DIR` the index is loaded from the snapshot in DIR when there is one
//! (reporting the load time), and otherwise built and saved there.
//! Prints one JSON line per ef, then a Markdown table row per ef.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quiverdb_index::{new_index, Engine, IndexConfig, Metric, RowId, SearchParams};

fn read_vecs(path: &Path) -> Result<(usize, Vec<u32>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 4 {
        return Err(format!("{}: empty", path.display()));
    }
    let dim = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let row = 4 * (dim + 1);
    if dim == 0 || bytes.len() % row != 0 {
        return Err(format!("{}: not an fvecs/ivecs file", path.display()));
    }
    let mut out = Vec::with_capacity(bytes.len() / row * dim);
    for r in bytes.chunks_exact(row) {
        out.extend(
            r[4..]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok((dim, out))
}

fn fvecs(path: &Path) -> Result<(usize, Vec<f32>), String> {
    let (d, w) = read_vecs(path)?;
    Ok((d, w.into_iter().map(f32::from_bits).collect()))
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Args {
    dir: PathBuf,
    metric: Metric,
    threads: usize,
    m: usize,
    ef_construction: usize,
    efs: Vec<usize>,
    engine: Engine,
    runs: usize,
    cache: Option<PathBuf>,
    filters: Vec<f64>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        dir: PathBuf::from(it.next().ok_or("usage: native_ann DATA_DIR [options]")?),
        metric: Metric::L2,
        threads: 2,
        m: 16,
        ef_construction: 200,
        efs: vec![16, 32, 64, 128, 256],
        engine: Engine::Native,
        runs: 3,
        cache: None,
        filters: Vec::new(),
    };
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--metric" => a.metric = v.parse().map_err(|e| format!("{e}"))?,
            "--threads" => a.threads = num(&v)?,
            "--m" => a.m = num(&v)?,
            "--ef-construction" => a.ef_construction = num(&v)?,
            "--filter" => {
                a.filters = v
                    .split(',')
                    .map(|x| x.parse::<f64>().map_err(|e| format!("--filter: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--cache" => a.cache = Some(PathBuf::from(v)),
            "--runs" => a.runs = num(&v)?.max(1),
            "--ef" => a.efs = v.split(',').map(num).collect::<Result<_, _>>()?,
            "--engine" => {
                a.engine = match v.as_str() {
                    "native" => Engine::Native,
                    "flat" => Engine::Flat,
                    e => return Err(format!("unknown engine {e}")),
                }
            }
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

fn main() -> Result<(), String> {
    let a = parse()?;
    let (dim, base) = fvecs(&a.dir.join("base.fvecs"))?;
    let (qdim, queries) = fvecs(&a.dir.join("query.fvecs"))?;
    let (gk, gt) = read_vecs(&a.dir.join("groundtruth.ivecs"))?;
    if qdim != dim || gk < 10 {
        return Err("query dim or ground truth k does not fit".into());
    }
    let n = base.len() / dim;
    let nq = queries.len() / dim;
    let mut config = IndexConfig::new(a.engine, a.metric, dim);
    config.m = a.m;
    config.ef_construction = a.ef_construction;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .map_err(|e| e.to_string())?;
    let items: Vec<(RowId, &[f32])> = base
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (RowId(i as u64), v))
        .collect();
    let rss0 = rss_bytes();
    let t = Instant::now();
    let cached = match &a.cache {
        Some(dir) => quiverdb_index::load_snapshot(dir).map_err(|e| e.to_string())?,
        None => None,
    };
    let index = if let Some((index, _)) = cached {
        println!("loaded snapshot in {:.2} s", t.elapsed().as_secs_f64());
        index
    } else {
        let index = new_index(&config).map_err(|e| e.to_string())?;
        index
            .insert_batch(&items, &pool)
            .map_err(|e| e.to_string())?;
        if let Some(dir) = &a.cache {
            let t = Instant::now();
            index.save_snapshot(dir, 0).map_err(|e| e.to_string())?;
            println!("saved snapshot in {:.2} s", t.elapsed().as_secs_f64());
        }
        index
    };
    let build_s = t.elapsed().as_secs_f64();
    let rss_mib = (rss_bytes().saturating_sub(rss0)) as f64 / 1048576.0;
    let stats = index.stats();
    let name = a
        .dir
        .file_name()
        .map_or("data".into(), |s| s.to_string_lossy().into_owned());
    let mut rows = Vec::new();
    for &ef in &a.efs {
        let p = SearchParams { k: 10, ef };
        let mut best = f64::INFINITY;
        let mut hits = 0usize;
        for run in 0..a.runs {
            let t = Instant::now();
            let mut h = 0;
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                let res = index.search(q, p, None).map_err(|e| e.to_string())?;
                if run == 0 {
                    let truth = &gt[qi * gk..qi * gk + 10];
                    h += res
                        .iter()
                        .filter(|r| truth.contains(&(r.id.0 as u32)))
                        .count();
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
            if run == 0 {
                hits = h;
            }
        }
        let recall = hits as f64 / (10 * nq) as f64;
        let qps = nq as f64 / best;
        println!(
            "{{\"engine\":\"{}\",\"dataset\":\"{name}\",\"n\":{n},\"dim\":{dim},\"metric\":\"{}\",\"ef\":{ef},\"recall_at_10\":{recall:.4},\"qps\":{qps:.0},\"build_s\":{build_s:.2},\"build_threads\":{},\"index_bytes\":{},\"rss_delta_mib\":{rss_mib:.0},\"kernels\":\"{}\"}}",
            stats.engine,
            a.metric,
            a.threads,
            stats.memory_bytes,
            quiverdb_index::kernels::active().name()
        );
        rows.push(format!("| {ef} | {recall:.3} | {qps:.0} |"));
    }
    // Filtered search: a hashed allow-set of the given selectivity, exact filtered truth
    // from the flat engine.
    if !a.filters.is_empty() {
        let mut fc = config.clone();
        fc.engine = Engine::Flat;
        let flat = new_index(&fc).map_err(|e| e.to_string())?;
        flat.insert_batch(&items, &pool)
            .map_err(|e| e.to_string())?;
        for &sel in &a.filters {
            let cut = (sel * 1_000_000.0) as u64;
            let allow = move |id: RowId| id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1_000_000 < cut;
            // The store's path: the allow-set the planner gets from a metadata filter.
            let allow_set: quiverdb_index::planner::AllowSet = items
                .iter()
                .map(|(id, _)| *id)
                .filter(|&id| allow(id))
                .collect();
            for &ef in &a.efs {
                let p = SearchParams { k: 10, ef };
                // Truth first: the flat scans would evict the graph from the caches.
                let truths = queries
                    .chunks_exact(dim)
                    .map(|q| flat.search(q, p, Some(&allow)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                let gots = queries
                    .chunks_exact(dim)
                    .map(|q| index.search_allowed(q, p, &allow_set))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let secs = t.elapsed().as_secs_f64();
                let (mut hits, mut total) = (0usize, 0usize);
                for (got, truth) in gots.iter().zip(&truths) {
                    assert!(got.iter().all(|n| allow(n.id)));
                    hits += got
                        .iter()
                        .filter(|n| truth.iter().any(|t| t.id == n.id))
                        .count();
                    total += truth.len();
                }
                println!(
                    "{{\"engine\":\"{}\",\"filter_selectivity\":{sel},\"ef\":{ef},\"recall_at_10\":{:.4},\"qps\":{:.0}}}",
                    stats.engine,
                    hits as f64 / total.max(1) as f64,
                    nq as f64 / secs
                );
            }
        }
    }
    println!(
        "\nbuild {build_s:.2} s ({} threads), index {:.0} MiB, RSS delta {rss_mib:.0} MiB",
        a.threads,
        stats.memory_bytes as f64 / 1048576.0
    );
    println!("| ef | recall@10 | QPS (1 thread, 1 query/call) |\n|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}
