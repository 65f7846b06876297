//! Vectors for the benchmark: fvecs/ivecs files (little-endian: per row an `i32` dimension
//! then the values), seeded clustered synthetic data, and exact ground truth by brute force
//! with our kernels, in parallel.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use quiverdb_index::kernels;
use quiverdb_types::Metric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Row-major vectors.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

fn parse_vecs(bytes: &[u8], what: &str) -> io::Result<(usize, Vec<[u8; 4]>)> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {m}"));
    if bytes.len() < 4 {
        return Err(bad("empty file".into()));
    }
    let dim = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if dim <= 0 {
        return Err(bad(format!("bad dimension {dim}")));
    }
    let dim = dim as usize;
    let row = 4 * (dim + 1);
    if bytes.len() % row != 0 {
        return Err(bad(format!(
            "{} bytes is not a multiple of the row size {row}",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(bytes.len() / row * dim);
    for (r, chunk) in bytes.chunks_exact(row).enumerate() {
        if chunk[..4] != bytes[..4] {
            return Err(bad(format!("row {r} has another dimension")));
        }
        out.extend(chunk[4..].chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]));
    }
    Ok((dim, out))
}

pub fn read_fvecs(path: &Path) -> io::Result<Matrix> {
    let (dim, words) = parse_vecs(&fs::read(path)?, &path.display().to_string())?;
    Ok(Matrix {
        dim,
        data: words.into_iter().map(f32::from_le_bytes).collect(),
    })
}

/// Rows of ids.
pub fn read_ivecs(path: &Path) -> io::Result<Vec<Vec<u32>>> {
    let (dim, words) = parse_vecs(&fs::read(path)?, &path.display().to_string())?;
    Ok(words
        .chunks_exact(dim)
        .map(|r| r.iter().map(|w| i32::from_le_bytes(*w) as u32).collect())
        .collect())
}

pub fn write_fvecs(path: &Path, m: &Matrix) -> io::Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(path)?);
    for i in 0..m.rows() {
        w.write_all(&(m.dim as i32).to_le_bytes())?;
        for x in m.row(i) {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    w.flush()
}

pub fn write_ivecs(path: &Path, rows: &[Vec<u32>]) -> io::Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(path)?);
    for r in rows {
        w.write_all(&(r.len() as i32).to_le_bytes())?;
        for x in r {
            w.write_all(&(*x as i32).to_le_bytes())?;
        }
    }
    w.flush()
}

/// Standard normal by Box–Muller (keeps `rand_distr` out of the workspace).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Base and query vectors from one anisotropic Gaussian mixture: 100 centres `N(0, 1)`,
/// within-cluster std `i^-0.25` along axis `i` (1-based), as in the peers'
/// `make_datasets.py` but without the per-cluster rotations; unit-normalized for cosine.
pub fn synth(n: usize, dim: usize, nq: usize, metric: Metric, seed: u64) -> (Matrix, Matrix) {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..dim).map(|_| normal(&mut rng)).collect())
        .collect();
    let spectrum: Vec<f32> = (1..=dim).map(|i| (i as f32).powf(-0.25)).collect();
    let mut gen = |count: usize| {
        let mut data = Vec::with_capacity(count * dim);
        for _ in 0..count {
            let c = &centres[rng.gen_range(0..centres.len())];
            let start = data.len();
            data.extend(
                c.iter()
                    .zip(&spectrum)
                    .map(|(x, s)| x + s * normal(&mut rng)),
            );
            if metric == Metric::Cosine {
                kernels::normalize(&mut data[start..]);
            }
        }
        Matrix { dim, data }
    };
    let base = gen(n);
    let queries = gen(nq);
    (base, queries)
}

/// Distance under `metric`, normalizing for cosine (the engines store normalized vectors).
pub fn prepare(metric: Metric, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    if metric == Metric::Cosine {
        kernels::normalize(&mut v);
    }
    v
}

/// Exact top-`k` row numbers of every query among the rows `keep` accepts, in parallel.
pub fn ground_truth(
    base: &Matrix,
    queries: &Matrix,
    metric: Metric,
    k: usize,
    keep: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<Vec<u32>> {
    let normalized;
    let base = if metric == Metric::Cosine {
        let mut data = base.data.clone();
        data.par_chunks_mut(base.dim).for_each(|r| {
            kernels::normalize(r);
        });
        normalized = Matrix {
            dim: base.dim,
            data,
        };
        &normalized
    } else {
        base
    };
    let allowed: Vec<usize> = (0..base.rows()).filter(|&i| keep(i)).collect();
    (0..queries.rows())
        .into_par_iter()
        .map(|qi| {
            let q = prepare(metric, queries.row(qi));
            let mut d: Vec<(f32, u32)> = allowed
                .iter()
                .map(|&i| (kernels::distance(metric, &q, base.row(i)), i as u32))
                .collect();
            let k = k.min(d.len());
            if k > 0 {
                d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            }
            d.truncate(k);
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vecs_round_trip_and_ground_truth_finds_self() {
        let dir = std::env::temp_dir().join(format!("qvbench-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (b, q) = synth(200, 8, 5, Metric::L2, 1);
        write_fvecs(&dir.join("b.fvecs"), &b).unwrap();
        let back = read_fvecs(&dir.join("b.fvecs")).unwrap();
        assert_eq!(back.data, b.data);
        let gt = ground_truth(&b, &b, Metric::L2, 3, &|_| true);
        assert!(gt.iter().enumerate().all(|(i, r)| r[0] == i as u32));
        write_ivecs(&dir.join("g.ivecs"), &gt).unwrap();
        assert_eq!(read_ivecs(&dir.join("g.ivecs")).unwrap(), gt);
        let only_even = ground_truth(&b, &q, Metric::L2, 3, &|i| i % 2 == 0);
        assert!(only_even.iter().flatten().all(|i| i % 2 == 0));
        fs::write(dir.join("bad.fvecs"), [1, 0, 0, 0, 1]).unwrap();
        assert!(read_fvecs(&dir.join("bad.fvecs")).is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
