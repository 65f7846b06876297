//! Maximal marginal relevance reranking, exactly as LangChain's
//! `maximal_marginal_relevance` (langchain-core / langchain-milvus):
//!
//! * similarities are **cosine** whatever the index metric; a zero-norm (or non-finite)
//!   row gives similarity 0, as numpy's `nan -> 0` does there;
//! * the first pick is `argmax(sim_q)` (first index on ties);
//! * then, until `min(k, n)` are picked, each unpicked `i` scores
//!   `lambda * sim_q[i] - (1 - lambda) * max_j sim(v_i, v_j)` over the picked `j`, and the
//!   strictly greatest score wins (ties go to the lowest index).
//!
//! `lambda_mult = 1` gives relevance order, `0` maximum diversity.
//!
//! ```
//! use quiverdb_index::mmr::maximal_marginal_relevance;
//! let q = [1.0, 0.0];
//! let a = [1.0, 0.0];
//! let a2 = [0.99, 0.01];
//! let b = [0.6, 0.8];
//! let picks = maximal_marginal_relevance(&q, &[&a[..], &a2[..], &b[..]], 2, 0.3);
//! assert_eq!(picks, vec![0, 2]); // the near-duplicate of `a` is passed over
//! ```

use crate::kernels;

/// Cosine similarity given precomputed norms; 0 when undefined.
fn cosine(a: &[f32], na: f32, b: &[f32], nb: f32) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let s = kernels::dot(a, b) / (na * nb);
    if s.is_finite() {
        s
    } else {
        0.0
    }
}

fn norm(v: &[f32]) -> f32 {
    kernels::dot(v, v).sqrt()
}

/// Indexes into `candidates` in MMR pick order, `min(k, candidates.len())` of them.
///
/// Rows whose length differs from the query's are treated like zero-norm rows
/// (similarity 0 to everything); no input panics.
pub fn maximal_marginal_relevance(
    query: &[f32],
    candidates: &[&[f32]],
    k: usize,
    lambda_mult: f32,
) -> Vec<usize> {
    let want = k.min(candidates.len());
    if want == 0 {
        return Vec::new();
    }
    let qn = norm(query);
    let norms: Vec<f32> = candidates.iter().map(|v| norm(v)).collect();
    let sim_q: Vec<f32> = candidates
        .iter()
        .zip(&norms)
        .map(|(v, &n)| cosine(query, qn, v, n))
        .collect();

    let mut first = 0;
    for (i, &s) in sim_q.iter().enumerate() {
        if s > sim_q[first] {
            first = i;
        }
    }
    let mut picked = Vec::with_capacity(want);
    let mut is_picked = vec![false; candidates.len()];
    // max similarity of each candidate to the picked set, updated after every pick.
    let mut redundancy = vec![f32::NEG_INFINITY; candidates.len()];
    let mut last = first;
    picked.push(first);
    is_picked[first] = true;

    while picked.len() < want {
        let (lv, ln) = (candidates[last], norms[last]);
        for (i, v) in candidates.iter().enumerate() {
            if !is_picked[i] {
                redundancy[i] = redundancy[i].max(cosine(v, norms[i], lv, ln));
            }
        }
        let mut best: Option<(usize, f32)> = None;
        for i in (0..candidates.len()).filter(|&i| !is_picked[i]) {
            let score = lambda_mult * sim_q[i] - (1.0 - lambda_mult) * redundancy[i];
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i, score));
            }
        }
        let Some((i, _)) = best else { break };
        picked.push(i);
        is_picked[i] = true;
        last = i;
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_zero_k() {
        let a = [1.0f32, 0.0];
        assert!(maximal_marginal_relevance(&a, &[], 3, 0.5).is_empty());
        assert!(maximal_marginal_relevance(&a, &[&a[..]], 0, 0.5).is_empty());
    }

    #[test]
    fn zero_norm_rows_have_zero_similarity() {
        let q = [1.0f32, 0.0];
        let z = [0.0f32, 0.0];
        let neg = [-1.0f32, 0.0];
        // sim_q = [0, -1]: the zero row wins the first pick.
        assert_eq!(
            maximal_marginal_relevance(&q, &[&neg[..], &z[..]], 1, 0.5),
            vec![1]
        );
    }
}
