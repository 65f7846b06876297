//! Workspace-level tests, benches and examples for QuiverDB live beside this file; see README.md.
