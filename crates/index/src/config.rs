use quiverdb_types::Metric;
use serde::{Deserialize, Serialize};

use crate::IndexError;

/// Which graph engine backs a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Engine {
    /// Exact search over a contiguous arena (small collections, ground truth).
    Flat,
    /// QuiverDB's own HNSW (issue 4).
    #[default]
    Native,
    /// HNSW on the `hnsw_rs` crate.
    HnswRs,
}

/// Everything needed to build an empty index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexConfig {
    /// Graph engine.
    pub engine: Engine,
    /// Metric.
    pub metric: Metric,
    /// Vector dimension (1..=65,536).
    pub dim: usize,
    /// HNSW links per node on upper layers (level 0 keeps `2 * m`); 2..=128.
    pub m: usize,
    /// Candidate list size while building; `>= m`, at most 4,096.
    pub ef_construction: usize,
    /// Default candidate list size while searching; engines use `max(ef, k)`.
    pub ef_search: usize,
    /// Seed for level assignment (deterministic builds).
    pub seed: u64,
}

impl IndexConfig {
    /// Defaults matching Milvus AUTOINDEX on Lite (M=16, efConstruction=200, ef=64).
    pub fn new(engine: Engine, metric: Metric, dim: usize) -> Self {
        IndexConfig {
            engine,
            metric,
            dim,
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: 0x5eed,
        }
    }

    /// Checks every parameter before any engine (or dependency) sees it.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |m: String| Err(IndexError::InvalidParameter(m));
        if self.dim == 0 || self.dim > 65_536 {
            return bad(format!("dimension {} is outside 1..=65536", self.dim));
        }
        if !(2..=128).contains(&self.m) {
            return bad(format!("m = {} is outside 2..=128", self.m));
        }
        if self.ef_construction < self.m || self.ef_construction > 4096 {
            return bad(format!(
                "ef_construction = {} must be in m..=4096 (m = {})",
                self.ef_construction, self.m
            ));
        }
        if self.ef_search == 0 || self.ef_search > 32_768 {
            return bad(format!(
                "ef_search = {} is outside 1..=32768",
                self.ef_search
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_parameter() {
        let mut c = IndexConfig::new(Engine::Native, Metric::L2, 8);
        assert!(c.validate().is_ok());
        c.m = 300;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("m = 300"), "{e}");
        c.m = 16;
        c.dim = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dimension 0"));
    }
}
