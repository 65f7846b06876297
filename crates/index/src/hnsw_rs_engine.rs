//! HNSW on the `hnsw_rs` crate behind [`crate::VectorIndex`]. (Stub: filled in by issue 3.)
