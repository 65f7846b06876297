use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How vectors are compared. Scores follow Milvus:
///
/// | metric | score returned to users | better is |
/// |---|---|---|
/// | `L2` | squared Euclidean distance | smaller |
/// | `Ip` | inner product | larger |
/// | `Cosine` | cosine similarity | larger |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Metric {
    /// Squared Euclidean distance (Milvus `L2`, the LangChain–Milvus default).
    #[default]
    L2,
    /// Inner product (Milvus `IP`).
    Ip,
    /// Cosine similarity (Milvus `COSINE`); vectors are normalized when stored.
    Cosine,
}

impl Metric {
    /// Whether a larger score is better (IP and cosine) or a smaller one (L2).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// The LangChain relevance score in `[0, 1]` for a raw score of this metric:
    /// `1 - d/4` for L2 (unit vectors), `(s + 1) / 2` for IP and cosine.
    pub fn relevance(self, score: f32) -> f32 {
        match self {
            Metric::L2 => 1.0 - score / 4.0,
            Metric::Ip | Metric::Cosine => (score + 1.0) / 2.0,
        }
    }

    /// Milvus's name of the metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown metric name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}: expected L2, IP or COSINE")]
pub struct UnknownMetric(pub String);

impl FromStr for Metric {
    type Err = UnknownMetric;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "L2" => Ok(Metric::L2),
            "IP" => Ok(Metric::Ip),
            "COSINE" | "COS" => Ok(Metric::Cosine),
            _ => Err(UnknownMetric(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance_follows_langchain() {
        assert_eq!(Metric::L2.relevance(0.0), 1.0);
        assert_eq!(Metric::L2.relevance(4.0), 0.0);
        assert_eq!(Metric::Cosine.relevance(1.0), 1.0);
        assert_eq!(Metric::Ip.relevance(-1.0), 0.0);
    }

    #[test]
    fn parses_names() {
        assert_eq!("cosine".parse::<Metric>().unwrap(), Metric::Cosine);
        assert_eq!("ip".parse::<Metric>().unwrap(), Metric::Ip);
        assert!("hamming".parse::<Metric>().is_err());
    }
}
