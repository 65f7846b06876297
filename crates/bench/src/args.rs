//! Dependency-free parsing of `--flag value` arguments.

use std::collections::HashMap;
use std::path::PathBuf;

use quiverdb_types::Metric;

/// Which index is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    /// `HnswRsIndex` through the `VectorIndex` trait.
    HnswRs,
    /// hnsw_rs's `Hnsw` driven directly with the same kernel (no wrapper).
    HnswRsDirect,
    /// The native HNSW through `quiverdb_index::new_index`.
    Native,
    /// The exact flat engine through `quiverdb_index::new_index`.
    Flat,
}

impl EngineArg {
    pub fn name(self) -> &'static str {
        match self {
            EngineArg::HnswRs => "hnsw_rs",
            EngineArg::HnswRsDirect => "hnsw_rs_direct",
            EngineArg::Native => "native",
            EngineArg::Flat => "flat",
        }
    }
}

/// Where the vectors come from.
#[derive(Debug, Clone)]
pub enum Source {
    Files {
        base: PathBuf,
        query: PathBuf,
        gt: Option<PathBuf>,
    },
    Synth {
        n: usize,
        dim: usize,
        nq: usize,
    },
}

/// Options of the `ann` command.
#[derive(Debug, Clone)]
pub struct AnnArgs {
    pub source: Source,
    pub dataset: String,
    pub metric: Metric,
    pub m: usize,
    pub ef_construction: usize,
    pub efs: Vec<usize>,
    pub threads: usize,
    pub engine: EngineArg,
    pub filter_selectivity: Vec<f64>,
    pub delete_fractions: Vec<f64>,
    pub write_synth: Option<PathBuf>,
    pub planner_crossover: Vec<f64>,
    pub seed: u64,
    pub k: usize,
    /// Timed passes over the queries per `ef` (unfiltered); the median QPS is reported.
    pub rounds: usize,
    /// Native engine: walk on 8-bit codes from this many nodes (`None`: never); unset,
    /// the engine's default.
    pub quantize_from: Option<Option<usize>>,
}

pub const USAGE: &str = "\
usage: quiverdb-bench ann (--base B.fvecs --query Q.fvecs [--gt G.ivecs] | --synth N,DIM,NQ)
         [--metric l2|ip|cosine] [--m 16] [--ef-construction 200] [--ef 16,32,64,128,256]
         [--threads 1] [--engine hnsw_rs|hnsw_rs_direct|native|flat] [--dataset NAME]
         [--filter-selectivity 0.5,0.1,0.01,0.001] [--delete-fraction 0.1,0.3 (cumulative)]
         [--quantize-from NODES|never (native: walk on 8-bit codes from NODES nodes)]
         [--planner-crossover 0.001,0.01,0.1] [--write-synth DIR] [--seed 42] [--k 10]
         [--rounds 1 (timed passes per ef, unfiltered; median QPS)]
Prints one JSON line per measurement on stdout.";

fn list<T: std::str::FromStr>(flag: &str, s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| format!("{flag}: cannot parse {x:?}"))
        })
        .collect()
}

fn one<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{flag}: cannot parse {s:?}"))
}

fn take<'a>(k: &str, kv: &mut HashMap<&str, &'a str>) -> Option<&'a str> {
    kv.remove(k)
}

/// Parses the arguments after `ann`.
pub fn parse_ann(args: &[String]) -> Result<AnnArgs, String> {
    let mut kv: HashMap<&str, &str> = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument {flag:?}"));
        };
        let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
        if kv.insert(name, value).is_some() {
            return Err(format!("--{name} given twice"));
        }
    }
    let source = match (
        take("synth", &mut kv),
        take("base", &mut kv),
        take("query", &mut kv),
    ) {
        (Some(s), None, None) => {
            let v: Vec<usize> = list("--synth", s)?;
            let [n, dim, nq] = v[..] else {
                return Err("--synth wants N,DIM,NQ".into());
            };
            if n == 0 || dim == 0 || nq == 0 {
                return Err("--synth values must be positive".into());
            }
            Source::Synth { n, dim, nq }
        }
        (None, Some(b), Some(q)) => Source::Files {
            base: b.into(),
            query: q.into(),
            gt: take("gt", &mut kv).map(PathBuf::from),
        },
        _ => return Err("give either --synth N,DIM,NQ or --base and --query".into()),
    };
    let metric = match take("metric", &mut kv).unwrap_or("l2") {
        "l2" => Metric::L2,
        "ip" => Metric::Ip,
        "cosine" | "cos" => Metric::Cosine,
        m => return Err(format!("--metric: unknown {m:?}")),
    };
    let engine = match take("engine", &mut kv).unwrap_or("hnsw_rs") {
        "hnsw_rs" => EngineArg::HnswRs,
        "hnsw_rs_direct" => EngineArg::HnswRsDirect,
        "native" => EngineArg::Native,
        "flat" => EngineArg::Flat,
        e => return Err(format!("--engine: unknown {e:?}")),
    };
    let dataset = take("dataset", &mut kv)
        .map(str::to_string)
        .unwrap_or_else(|| match &source {
            Source::Synth { n, dim, .. } => format!("synth-{n}x{dim}"),
            Source::Files { base, .. } => base
                .parent()
                .and_then(|p| p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "files".into()),
        });
    let parsed = AnnArgs {
        source,
        dataset,
        metric,
        m: one("--m", take("m", &mut kv).unwrap_or("16"))?,
        ef_construction: one(
            "--ef-construction",
            take("ef-construction", &mut kv).unwrap_or("200"),
        )?,
        efs: list("--ef", take("ef", &mut kv).unwrap_or("16,32,64,128,256"))?,
        threads: one("--threads", take("threads", &mut kv).unwrap_or("1"))?,
        engine,
        filter_selectivity: list(
            "--filter-selectivity",
            take("filter-selectivity", &mut kv).unwrap_or(""),
        )?,
        delete_fractions: list(
            "--delete-fraction",
            take("delete-fraction", &mut kv).unwrap_or(""),
        )?,
        write_synth: take("write-synth", &mut kv).map(PathBuf::from),
        planner_crossover: list(
            "--planner-crossover",
            take("planner-crossover", &mut kv).unwrap_or(""),
        )?,
        seed: one("--seed", take("seed", &mut kv).unwrap_or("42"))?,
        k: one("--k", take("k", &mut kv).unwrap_or("10"))?,
        rounds: one("--rounds", take("rounds", &mut kv).unwrap_or("1"))?,
        quantize_from: match take("quantize-from", &mut kv) {
            None => None,
            Some("never") => Some(None),
            Some(n) => Some(Some(one("--quantize-from", n)?)),
        },
    };
    if let Some(flag) = kv.keys().next() {
        return Err(format!("unknown flag --{flag}"));
    }
    if parsed.threads == 0 || parsed.k == 0 || parsed.rounds == 0 || parsed.efs.is_empty() {
        return Err("--threads, --k, --rounds and --ef must be positive".into());
    }
    let bad_fraction = |f: &f64| !(*f > 0.0 && *f <= 1.0);
    if parsed.filter_selectivity.iter().any(bad_fraction)
        || parsed.planner_crossover.iter().any(bad_fraction)
        || parsed
            .delete_fractions
            .iter()
            .any(|f| !(0.0..1.0).contains(f))
    {
        return Err("selectivities must be in (0, 1], --delete-fraction in [0, 1)".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_synth_and_lists() {
        let a = parse_ann(&s(&[
            "--synth",
            "1000,8,10",
            "--ef",
            "16,32",
            "--metric",
            "cosine",
        ]))
        .unwrap();
        assert!(matches!(
            a.source,
            Source::Synth {
                n: 1000,
                dim: 8,
                nq: 10
            }
        ));
        assert_eq!(a.efs, vec![16, 32]);
        assert_eq!(a.metric, Metric::Cosine);
        assert_eq!(a.dataset, "synth-1000x8");
        assert_eq!(a.rounds, 1);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_ann(&s(&["--synth", "1000,8"])).is_err());
        assert!(parse_ann(&s(&["--synth", "1,1,1", "--bogus", "1"])).is_err());
        assert!(parse_ann(&s(&["--synth", "1,1,1", "--delete-fraction", "1.5"])).is_err());
        assert!(parse_ann(&s(&["--base", "b"])).is_err());
        assert!(parse_ann(&s(&["--synth", "1,1,1", "--rounds", "0"])).is_err());
        assert_eq!(
            parse_ann(&s(&["--synth", "1,1,1", "--rounds", "5"])).map(|a| a.rounds),
            Ok(5)
        );
    }
}
