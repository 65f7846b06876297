//! Snapshots of the flat and native engines: a manifest plus one data file per engine.
//!
//! ```text
//! DIR/MANIFEST                 "QVIDXMF1", format u32, body length u64, body, checksum u64
//!                              body = bincode(Manifest): engine, config, seq, files
//! DIR/<engine>-<seq>.bin       the engine's data file (little-endian, see its module)
//! ```
//!
//! Writing: the data file first (temp file, fsync, rename, fsync dir), then the manifest
//! the same way, then older data files of ours are removed. A crash at any point leaves the
//! previous manifest pointing at a complete previous data file, or the new pair.
//!
//! Reading trusts nothing: the manifest's magic, format version, length and checksum are
//! checked before its body is interpreted. The data file is decoded as it is read, in one
//! pass through a small buffer (`StreamReader`): its length must match the manifest, every
//! read is bounds-checked against it, the decoder validates what it builds (for the native
//! engine, every invariant of its `check_integrity`), and the checksum is compared after the
//! last byte; an engine decoded from bytes that fail it is dropped, never returned. Anything
//! wrong is an [`crate::IndexError::Snapshot`], never a panic.
//!
//! The hnsw_rs engine writes its own manifest under the same name `MANIFEST` (magic
//! `QVHNSWM1`); [`crate::load_snapshot`] tells the two apart by the magic.

mod codec;
mod manifest;

pub use codec::checksum;
pub(crate) use codec::{StreamReader, Writer};
pub(crate) use manifest::{
    read_manifest, read_own_manifest, snapshot_error, write_with_manifest, Manifest, ManifestKind,
};
