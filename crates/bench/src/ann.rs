//! The `ann` command: build one engine, then measure recall@k and single-thread QPS (one
//! query per call) per `ef`, optionally with filters (through the planner), after deletes,
//! and the planner's exact/filtered crossover. After the deletes the index is measured
//! beside a fresh build of the survivors (and, for the native engine, again after
//! `NativeHnsw::repair`), then after compaction. One JSON line per measurement.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hnsw_rs::prelude::{Distance, Hnsw};
use quiverdb_index::hnsw_rs_engine::HnswRsIndex;
use quiverdb_index::planner::{self, AllowSet, Strategy};
use quiverdb_index::{kernels, Engine, IndexConfig, NativeHnsw, RowId, SearchParams, VectorIndex};
use quiverdb_types::Metric;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::args::{AnnArgs, EngineArg, Source};
use crate::dataset::{self, Matrix};

/// The same kernel `HnswRsIndex` plugs in, for driving hnsw_rs directly.
#[derive(Debug, Clone, Copy, Default)]
struct DirectDistance {
    cosine: bool,
}

impl Distance<f32> for DirectDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let d = if self.cosine {
            (1.0 - kernels::dot(a, b)).clamp(0.0, 2.0)
        } else {
            kernels::l2_squared(a, b)
        };
        if d.is_nan() {
            f32::MAX
        } else {
            d
        }
    }
}

enum Target {
    HnswRs(HnswRsIndex),
    Native(Arc<NativeHnsw>),
    Index(Arc<dyn VectorIndex>),
    Direct(Hnsw<'static, f32, DirectDistance>),
}

impl Target {
    fn index(&self) -> Option<&dyn VectorIndex> {
        match self {
            Target::HnswRs(idx) => Some(idx),
            Target::Native(idx) => Some(idx.as_ref()),
            Target::Index(idx) => Some(idx.as_ref()),
            Target::Direct(_) => None,
        }
    }

    fn search(&self, q: &[f32], k: usize, ef: usize) -> Result<Vec<u32>, String> {
        match (self, self.index()) {
            (Target::Direct(h), _) => {
                Ok(h.search(q, k, ef).iter().map(|n| n.d_id as u32).collect())
            }
            (_, Some(idx)) => Ok(idx
                .search(q, SearchParams { k, ef }, None)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|n| n.id.0 as u32)
                .collect()),
            (_, None) => Err("no index".into()),
        }
    }
}

/// Rounds of alternate measurements where a ratio is reported (filtered vs unfiltered,
/// after deletes vs a fresh build); the medians are reported.
const ROUNDS: usize = 5;

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Resident set size of this process, from `/proc/self/statm` (0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// `quiverdb_index` engines other than hnsw_rs, through the crate's factory.
fn other_engine(config: &IndexConfig) -> Result<Arc<dyn VectorIndex>, String> {
    quiverdb_index::new_index(config).map_err(|e| e.to_string())
}

fn build(args: &AnnArgs, base: &Matrix, pool: &rayon::ThreadPool) -> Result<Target, String> {
    let dim = base.dim;
    let n = base.rows();
    if args.engine == EngineArg::HnswRsDirect {
        if args.metric == Metric::Ip {
            return Err("hnsw_rs needs non-negative distances: no IP".into());
        }
        let cosine = args.metric == Metric::Cosine;
        let data: Vec<f32> = if cosine {
            (0..n)
                .flat_map(|i| dataset::prepare(args.metric, base.row(i)))
                .collect()
        } else {
            base.data.clone()
        };
        let h = Hnsw::new(
            args.m,
            n,
            16,
            args.ef_construction,
            DirectDistance { cosine },
        );
        let items: Vec<(&[f32], usize)> = data.chunks_exact(dim).zip(0..).collect();
        pool.install(|| h.parallel_insert_slice(&items));
        return Ok(Target::Direct(h));
    }
    let engine = match args.engine {
        EngineArg::Native => Engine::Native,
        EngineArg::Flat => Engine::Flat,
        _ => Engine::HnswRs,
    };
    let mut config = IndexConfig::new(engine, args.metric, dim);
    config.m = args.m;
    config.ef_construction = args.ef_construction;
    config.seed = args.seed;
    let target = if engine == Engine::HnswRs {
        Target::HnswRs(HnswRsIndex::new(&config).map_err(|e| e.to_string())?)
    } else if engine == Engine::Native {
        let native = NativeHnsw::new(&config).map_err(|e| e.to_string())?;
        if let Some(from) = args.quantize_from {
            native.set_quantize_from(from);
        }
        Target::Native(Arc::new(native))
    } else {
        Target::Index(other_engine(&config)?)
    };
    let items: Vec<(RowId, &[f32])> = (0..n).map(|i| (RowId(i as u64), base.row(i))).collect();
    if let Some(idx) = target.index() {
        idx.insert_batch(&items, pool).map_err(|e| e.to_string())?;
    }
    Ok(target)
}

fn recall(got: &[u32], truth: &[u32], k: usize) -> f64 {
    let truth = &truth[..k.min(truth.len())];
    if truth.is_empty() {
        return 1.0;
    }
    got.iter().take(k).filter(|g| truth.contains(g)).count() as f64 / truth.len() as f64
}

/// Runs `search` for every query (after a short warm-up); returns (mean recall, QPS).
fn measure(
    queries: &Matrix,
    gt: &[Vec<u32>],
    k: usize,
    mut search: impl FnMut(&[f32]) -> Result<Vec<u32>, String>,
) -> Result<(f64, f64), String> {
    for i in 0..queries.rows().min(50) {
        search(queries.row(i))?;
    }
    let mut results = Vec::with_capacity(queries.rows());
    let t = Instant::now();
    for i in 0..queries.rows() {
        results.push(search(queries.row(i))?);
    }
    let secs = t.elapsed().as_secs_f64();
    let r = results
        .iter()
        .zip(gt)
        .map(|(got, truth)| recall(got, truth, k))
        .sum::<f64>()
        / queries.rows().max(1) as f64;
    Ok((r, queries.rows() as f64 / secs.max(1e-9)))
}

/// Base vectors, queries, and the ground truth when a file gives it.
type Loaded = (Matrix, Matrix, Option<Vec<Vec<u32>>>);

fn load(args: &AnnArgs) -> Result<Loaded, String> {
    match &args.source {
        Source::Synth { n, dim, nq } => {
            let (b, q) = dataset::synth(*n, *dim, *nq, args.metric, args.seed);
            Ok((b, q, None))
        }
        Source::Files { base, query, gt } => {
            let read = |p: &Path| dataset::read_fvecs(p).map_err(|e| e.to_string());
            let b = read(base)?;
            let q = read(query)?;
            if b.dim != q.dim {
                return Err(format!("base dim {} != query dim {}", b.dim, q.dim));
            }
            let gt = gt
                .as_deref()
                .map(|p| dataset::read_ivecs(p).map_err(|e| e.to_string()))
                .transpose()?;
            Ok((b, q, gt))
        }
    }
}

fn random_subset(n: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.shuffle(&mut StdRng::seed_from_u64(seed));
    all.truncate(count);
    all
}

/// Runs the `ann` command.
pub fn run(args: &AnnArgs) -> Result<(), String> {
    let (base, queries, file_gt) = load(args)?;
    let (n, dim) = (base.rows(), base.dim);

    if let Some(dir) = &args.write_synth {
        let gt = dataset::ground_truth(&base, &queries, args.metric, 100, &|_| true);
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let io = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
        io(dataset::write_fvecs(&dir.join("base.fvecs"), &base))?;
        io(dataset::write_fvecs(&dir.join("query.fvecs"), &queries))?;
        io(dataset::write_ivecs(&dir.join("groundtruth.ivecs"), &gt))?;
        println!(
            "{}",
            json!({"wrote": dir.display().to_string(), "n": n, "dim": dim, "nq": queries.rows()})
        );
        return Ok(());
    }

    let gt = match file_gt {
        Some(gt) if gt.len() == queries.rows() => gt,
        Some(gt) => {
            return Err(format!(
                "{} ground-truth rows for {} queries",
                gt.len(),
                queries.rows()
            ))
        }
        None => dataset::ground_truth(&base, &queries, args.metric, args.k, &|_| true),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .thread_name(|i| format!("bench-build-{i}"))
        .build()
        .map_err(|e| e.to_string())?;

    let rss0 = rss_bytes();
    let t = Instant::now();
    let target = build(args, &base, &pool)?;
    let build_s = t.elapsed().as_secs_f64();
    let rss_delta = rss_bytes().saturating_sub(rss0);
    let stats_bytes = target.index().map_or(0, |i| i.stats().memory_bytes as u64);
    let metric = format!("{:?}", args.metric).to_lowercase();
    let line = |extra: Value| {
        let mut v = json!({
            "engine": args.engine.name(), "dataset": args.dataset, "n": n, "dim": dim,
            "metric": metric, "build_s": (build_s * 1000.0).round() / 1000.0,
            "index_bytes": rss_delta, "stats_bytes": stats_bytes, "build_threads": args.threads,
        });
        if let Target::Native(h) = &target {
            v["quantized"] = json!(h.is_quantized());
        }
        if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
            a.extend(b);
        }
        println!("{v}");
    };
    let round = |x: f64, p: f64| (x * p).round() / p;

    for &ef in &args.efs {
        let mut passes = (0..args.rounds)
            .map(|_| measure(&queries, &gt, args.k, |q| target.search(q, args.k, ef)))
            .collect::<Result<Vec<_>, _>>()?;
        passes.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (r, qps) = passes[passes.len() / 2];
        line(json!({
            "mode": "plain", "ef": ef, "k": args.k, "rounds": passes.len(),
            "recall_at_10": round(r, 1e4), "qps": qps.round(),
        }));
    }

    let Some(idx) = target.index() else {
        return Ok(());
    };

    let allow_sets = |sels: &[f64], salt: u64| {
        sels.iter()
            .map(|&sel| {
                let count = ((sel * n as f64).round() as usize).max(1);
                let rows = random_subset(n, count, args.seed ^ salt ^ sel.to_bits());
                let mut mask = vec![false; n];
                rows.iter().for_each(|&r| mask[r] = true);
                let allow: AllowSet = rows.iter().map(|&r| RowId(r as u64)).collect();
                let gt = dataset::ground_truth(&base, &queries, args.metric, args.k, &|i| mask[i]);
                (sel, allow, gt)
            })
            .collect::<Vec<_>>()
    };

    for (sel, allow, fgt) in allow_sets(&args.filter_selectivity, 1) {
        let costs = planner::costs_for(idx.stats().engine);
        for &ef in &args.efs {
            let p = SearchParams { k: args.k, ef };
            let strategy = planner::choose(costs, idx.len(), Some(allow.len()), p);
            // Filtered and unfiltered alternately, so the ratio sees one machine load.
            let (mut fq, mut uq, mut r) = (Vec::new(), Vec::new(), 0.0);
            for _ in 0..ROUNDS {
                let (fr, qps) = measure(&queries, &fgt, args.k, |q| {
                    let p = SearchParams { k: args.k, ef };
                    let hits =
                        planner::search(idx, q, p, Some(&allow)).map_err(|e| e.to_string())?;
                    Ok(hits.iter().map(|h| h.id.0 as u32).collect())
                })?;
                r = fr;
                fq.push(qps);
                uq.push(measure(&queries, &gt, args.k, |q| target.search(q, args.k, ef))?.1);
            }
            let (f, u) = (median(&fq), median(&uq));
            let fallbacks = match &target {
                Target::Native(h) => json!(h.exact_fallbacks()),
                _ => Value::Null,
            };
            line(
                json!({"mode": "filtered", "selectivity": sel, "strategy": format!("{strategy:?}"),
                        "ef": ef, "recall_at_10": round(r, 1e4), "qps": f.round(),
                        "unfiltered_qps": u.round(), "qps_ratio": round(f / u, 1e3),
                        "engine_exact_fallbacks_so_far": fallbacks,
                        "rounds": ROUNDS, "qps_runs": fq.iter().map(|x| x.round()).collect::<Vec<_>>(),
                        "unfiltered_qps_runs": uq.iter().map(|x| x.round()).collect::<Vec<_>>()}),
            );
        }
    }

    for (sel, allow, fgt) in allow_sets(&args.planner_crossover, 2) {
        for strategy in [Strategy::Exact, Strategy::Filtered, Strategy::PostFilter] {
            let efs: &[usize] = if strategy == Strategy::Exact {
                &args.efs[..1]
            } else {
                &args.efs
            };
            for &ef in efs {
                let (r, qps) = measure(&queries, &fgt, args.k, |q| {
                    let p = SearchParams { k: args.k, ef };
                    let hits = planner::search_with(idx, q, p, Some(&allow), strategy)
                        .map_err(|e| e.to_string())?;
                    Ok(hits.iter().map(|h| h.id.0 as u32).collect())
                })?;
                line(
                    json!({"mode": "crossover", "selectivity": sel, "allowed": allow.len(),
                            "strategy": format!("{strategy:?}"), "ef": ef,
                            "recall_at_10": round(r, 1e4), "qps": qps.round()}),
                );
            }
        }
    }

    // Deletes are cumulative: each fraction removes a prefix of one seeded permutation, so
    // a larger fraction's dead rows include the smaller one's.
    let order = random_subset(n, n, args.seed ^ 3);
    let mut alive = vec![true; n];
    let mut removed = 0;
    let mut last_gt = None;
    for &frac in &args.delete_fractions {
        let upto = ((frac * n as f64).round() as usize).min(n);
        for &r in &order[removed.min(upto)..upto] {
            idx.remove(RowId(r as u64));
            alive[r] = false;
        }
        removed = removed.max(upto);
        let dgt = dataset::ground_truth(&base, &queries, args.metric, args.k, &|i| alive[i]);
        let all = |_: RowId| true;
        for &ef in &args.efs {
            let (r, qps) = measure(&queries, &dgt, args.k, |q| target.search(q, args.k, ef))?;
            line(json!({"mode": "deleted", "delete_fraction": frac, "ef": ef,
                        "recall_at_10": round(r, 1e4), "qps": qps.round()}));
            // The same, forced through the engine's filter hook (a caller filter admitting all).
            let (r, qps) = measure(&queries, &dgt, args.k, |q| {
                let p = SearchParams { k: args.k, ef };
                let hits = idx.search(q, p, Some(&all)).map_err(|e| e.to_string())?;
                Ok(hits.iter().map(|h| h.id.0 as u32).collect())
            })?;
            line(
                json!({"mode": "deleted_hook", "delete_fraction": frac, "ef": ef,
                        "recall_at_10": round(r, 1e4), "qps": qps.round()}),
            );
        }
        last_gt = Some((frac, dgt));
    }
    if let Some((frac, dgt)) = &last_gt {
        let repair = match &target {
            Target::Native(h) => Some(|| h.repair(&pool)),
            _ => None,
        };
        deleted_vs_fresh(
            args, &base, &queries, dgt, *frac, &alive, idx, &pool, &line, repair,
        )?;
    }
    if let Some((frac, dgt)) = last_gt {
        let t = Instant::now();
        match &target {
            Target::HnswRs(h) => {
                h.compact(&pool).map_err(|e| e.to_string())?;
            }
            _ => {
                // What the store does in the background once tombstones pass its threshold.
                if !idx.compact_if_needed(&pool).map_err(|e| e.to_string())? {
                    return Ok(());
                }
            }
        }
        let compact_s = t.elapsed().as_secs_f64();
        for &ef in &args.efs {
            let (r, qps) = measure(&queries, &dgt, args.k, |q| target.search(q, args.k, ef))?;
            line(
                json!({"mode": "deleted_compacted", "delete_fraction": frac, "ef": ef,
                        "compact_s": round(compact_s, 1e3),
                        "recall_at_10": round(r, 1e4), "qps": qps.round()}),
            );
        }
    }
    Ok(())
}

/// The index after deletes beside a fresh build of the survivors (same config, same pool,
/// same process): recall and QPS per `ef`, measured alternately `ROUNDS` times so
/// both see the same machine load; the medians and their ratio are reported
/// (`mode: "deleted_vs_fresh"`). With `repair` (the native engine) the same again after
/// relinking around the tombstones (`mode: "deleted_repaired_vs_fresh"`, with its time).
#[allow(clippy::too_many_arguments)]
fn deleted_vs_fresh(
    args: &AnnArgs,
    base: &Matrix,
    queries: &Matrix,
    dgt: &[Vec<u32>],
    frac: f64,
    alive: &[bool],
    idx: &dyn VectorIndex,
    pool: &rayon::ThreadPool,
    line: &dyn Fn(Value),
    repair: Option<impl Fn() -> usize>,
) -> Result<(), String> {
    let engine = match args.engine {
        EngineArg::Native => Engine::Native,
        EngineArg::Flat => Engine::Flat,
        _ => Engine::HnswRs,
    };
    let mut config = IndexConfig::new(engine, args.metric, base.dim);
    config.m = args.m;
    config.ef_construction = args.ef_construction;
    config.seed = args.seed;
    let fresh = other_engine(&config)?;
    let items: Vec<(RowId, &[f32])> = (0..base.rows())
        .filter(|&i| alive[i])
        .map(|i| (RowId(i as u64), base.row(i)))
        .collect();
    let t = Instant::now();
    fresh
        .insert_batch(&items, pool)
        .map_err(|e| e.to_string())?;
    let fresh_build_s = t.elapsed().as_secs_f64();
    let search = |index: &dyn VectorIndex, q: &[f32], ef: usize| -> Result<Vec<u32>, String> {
        let p = SearchParams { k: args.k, ef };
        Ok(index
            .search(q, p, None)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|n| n.id.0 as u32)
            .collect())
    };
    let mut extra = json!({});
    for stage in ["deleted_vs_fresh", "deleted_repaired_vs_fresh"] {
        if stage == "deleted_repaired_vs_fresh" {
            let Some(repair) = &repair else { break };
            let t = Instant::now();
            let lists = repair();
            extra = json!({"repair_s": (t.elapsed().as_secs_f64() * 1e3).round() / 1e3,
                           "repaired_lists": lists});
        }
        for &ef in &args.efs {
            let (mut dq, mut fq) = (Vec::new(), Vec::new());
            let (mut dr, mut fr) = (0.0, 0.0);
            for _ in 0..ROUNDS {
                let (r, qps) = measure(queries, dgt, args.k, |q| search(idx, q, ef))?;
                dq.push(qps);
                dr = r;
                let (r, qps) = measure(queries, dgt, args.k, |q| search(fresh.as_ref(), q, ef))?;
                fq.push(qps);
                fr = r;
            }
            let (d, f) = (median(&dq), median(&fq));
            let round = |x: f64, p: f64| (x * p).round() / p;
            let mut v = json!({"mode": stage, "delete_fraction": frac, "ef": ef,
                    "recall_at_10": round(dr, 1e4), "qps": d.round(),
                    "fresh_recall_at_10": round(fr, 1e4), "fresh_qps": f.round(),
                    "qps_ratio": round(d / f, 1e3), "rounds": ROUNDS,
                    "qps_runs": dq.iter().map(|x| x.round()).collect::<Vec<_>>(),
                    "fresh_qps_runs": fq.iter().map(|x| x.round()).collect::<Vec<_>>(),
                    "fresh_build_s": round(fresh_build_s, 1e3)});
            if let (Value::Object(a), Value::Object(b)) = (&mut v, &extra) {
                a.extend(b.clone());
            }
            line(v);
        }
    }
    Ok(())
}
