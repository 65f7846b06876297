use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, the return type of the async embedding calls.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors from an embedding model, as text: models come from anywhere.
pub type EmbeddingResult<T> = Result<T, String>;

/// An embedding model: text in, vectors out.
///
/// Implement `embed_documents` (batch-friendly); the other methods have defaults. The async
/// methods default to `None`, which tells the store to run the blocking method on its CPU
/// pool, so the caller's executor is never blocked; a model that does its own async I/O (an
/// HTTP client) overrides them.
pub trait Embeddings: Send + Sync + 'static {
    /// Embeds a batch of documents, one vector per text, in order.
    fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>>;

    /// Embeds a search query (some models embed queries differently from documents).
    fn embed_query(&self, text: &str) -> EmbeddingResult<Vec<f32>> {
        let mut v = self.embed_documents(&[text.to_owned()])?;
        v.pop()
            .ok_or_else(|| "the model returned no vector for the query".to_owned())
    }

    /// Async batch embedding; `None` means "run `embed_documents` on the store's pool".
    fn aembed_documents<'a>(
        &'a self,
        texts: &'a [String],
    ) -> Option<BoxFuture<'a, EmbeddingResult<Vec<Vec<f32>>>>> {
        let _ = texts;
        None
    }

    /// Async query embedding; `None` means "run `embed_query` on the store's pool".
    fn aembed_query<'a>(
        &'a self,
        text: &'a str,
    ) -> Option<BoxFuture<'a, EmbeddingResult<Vec<f32>>>> {
        let _ = text;
        None
    }
}

/// A fast, deterministic, offline embedder: hashed word unigrams and bigrams plus character
/// trigrams, signed feature hashing into `dim` buckets, L2-normalized.
///
/// It is **lexical, not semantic**: texts that share words and spellings land close
/// together, synonyms do not. It needs no model files and no network, which makes it the
/// embedder of the demo and the tests; plug in a real model for semantic search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingEmbeddings {
    dim: usize,
}

impl Default for HashingEmbeddings {
    /// 384 dimensions, the size of MiniLM embeddings.
    fn default() -> Self {
        HashingEmbeddings { dim: 384 }
    }
}

impl HashingEmbeddings {
    /// An embedder producing `dim`-dimensional vectors (`dim` is raised to at least 1).
    pub fn new(dim: usize) -> Self {
        HashingEmbeddings { dim: dim.max(1) }
    }

    /// The output dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds one text.
    ///
    /// Features: each word (lowercased, split on non-alphanumeric characters), each
    /// character trigram of the word padded with one space each side, and each pair of
    /// neighbouring words joined by a space; hashed with their UTF-8 bytes, without
    /// building a string per feature.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut padded = String::new();
        let mut starts = Vec::new();
        for w in &words {
            self.add(&mut v, fnv1a(0x9e37, &[w.as_bytes()]), 1.0);
            // Character trigrams of the padded word catch shared stems and typos.
            padded.clear();
            padded.push(' ');
            padded.push_str(w);
            padded.push(' ');
            starts.clear();
            starts.extend(padded.char_indices().map(|(i, _)| i));
            starts.push(padded.len());
            for t in starts.windows(4) {
                let tri = &padded.as_bytes()[t[0]..t[3]];
                self.add(&mut v, fnv1a(0x7f4a, &[tri]), 0.5);
            }
        }
        for pair in words.windows(2) {
            let h = fnv1a(0x2545, &[pair[0].as_bytes(), b" ", pair[1].as_bytes()]);
            self.add(&mut v, h, 0.7);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            // An empty text still gets a valid unit vector (cosine collections reject zeros).
            v[0] = 1.0;
        }
        v
    }

    fn add(&self, v: &mut [f32], h: u64, weight: f32) {
        let bucket = (h % self.dim as u64) as usize;
        let sign = if (h >> 63) & 1 == 1 { -1.0 } else { 1.0 };
        v[bucket] += sign * weight;
    }
}

/// FNV-1a over the concatenation of `parts`, salted, with a final avalanche.
fn fnv1a(salt: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for &b in parts.iter().copied().flatten() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Final avalanche so that the high bit (the sign) is well mixed.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

impl Embeddings for HashingEmbeddings {
    fn embed_documents(&self, texts: &[String]) -> EmbeddingResult<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed(t)).collect())
    }

    fn embed_query(&self, text: &str) -> EmbeddingResult<Vec<f32>> {
        Ok(self.embed(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_and_normalized() {
        let e = HashingEmbeddings::new(64);
        let a = e.embed("The quick brown fox");
        assert_eq!(a, e.embed("The quick brown fox"));
        assert_eq!(a.len(), 64);
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let empty = e.embed("");
        assert!((cos(&empty, &empty) - 1.0).abs() < 1e-5);
    }

    /// The embedder as first written (a string per feature). Stored vectors were made by
    /// it, so the allocation-free one must give the very same bits, or queries would stop
    /// matching existing collections.
    fn reference_embed(dim: usize, text: &str) -> Vec<f32> {
        let add = |v: &mut [f32], salt: u64, bytes: &[u8], weight: f32| {
            let h = fnv1a(salt, &[bytes]);
            let sign = if (h >> 63) & 1 == 1 { -1.0 } else { 1.0 };
            v[(h % dim as u64) as usize] += sign * weight;
        };
        let mut v = vec![0f32; dim];
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        for w in &words {
            add(&mut v, 0x9e37, w.as_bytes(), 1.0);
            let padded: Vec<char> = format!(" {w} ").chars().collect();
            for tri in padded.windows(3) {
                let s: String = tri.iter().collect();
                add(&mut v, 0x7f4a, s.as_bytes(), 0.5);
            }
        }
        for pair in words.windows(2) {
            let s = format!("{} {}", pair[0], pair[1]);
            add(&mut v, 0x2545, s.as_bytes(), 0.7);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        } else {
            v[0] = 1.0;
        }
        v
    }

    #[test]
    fn embeddings_are_bit_for_bit_those_of_the_first_version() {
        let texts = [
            "",
            "a",
            "This is test document 17 with some random content: 0.4181",
            "The quick brown fox -- jumps over; the lazy dog!!",
            "Ünïcödé wörds: naïve café, 東京タワー and Ελληνικά ok",
            "x1 y22 z333 4444 five-five six_six",
            "  leading and trailing   spaces  ",
        ];
        for dim in [1, 7, 384] {
            let e = HashingEmbeddings::new(dim);
            for t in texts {
                let (got, want) = (e.embed(t), reference_embed(dim, t));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "dim {dim}: {t:?}");
            }
        }
    }

    #[test]
    fn shared_words_are_closer_than_unrelated_text() {
        let e = HashingEmbeddings::default();
        let q = e.embed("rust vector database");
        let near = e.embed("an embedded vector database written in rust");
        let far = e.embed("chocolate cake recipe with cherries");
        assert!(cos(&q, &near) > cos(&q, &far) + 0.2);
    }
}
