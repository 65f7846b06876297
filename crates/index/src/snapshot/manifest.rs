//! The manifest: which engine, its config, the covered sequence number, and the data files
//! with their lengths and checksums.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{checksum, StreamReader};
use crate::atomic_file::{sync_dir, write_atomic};
use crate::{Engine, IndexConfig, IndexError};

/// File name of the manifest (shared with the hnsw_rs engine, told apart by magic).
pub(crate) const MANIFEST: &str = "MANIFEST";
const MAGIC: &[u8; 8] = b"QVIDXMF1";
/// Magic of the hnsw_rs engine's manifest.
const HNSW_RS_MAGIC: &[u8; 8] = b"QVHNSWM1";
const FORMAT: u32 = 1;

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) checksum: u64,
}

/// What a snapshot directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) engine: Engine,
    pub(crate) config: IndexConfig,
    pub(crate) seq: u64,
    pub(crate) files: Vec<FileEntry>,
}

/// Whose manifest a directory holds.
#[derive(Debug)]
pub(crate) enum ManifestKind {
    /// No manifest: no snapshot.
    Absent,
    /// Ours (flat / native).
    Ours(Manifest),
    /// The hnsw_rs engine's.
    HnswRs,
}

pub(crate) fn snapshot_error(path: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::Snapshot {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Writes `data` as `DIR/<prefix>-<seq>.bin`, then the manifest, then removes older
/// `<prefix>-*.bin` files.
pub(crate) fn write_with_manifest(
    dir: &Path,
    prefix: &str,
    config: &IndexConfig,
    seq: u64,
    data: &[u8],
) -> Result<(), IndexError> {
    let name = format!("{prefix}-{seq}.bin");
    write_atomic(dir, &name, data)?;
    let manifest = Manifest {
        engine: config.engine,
        config: config.clone(),
        seq,
        files: vec![FileEntry {
            name: name.clone(),
            len: data.len() as u64,
            checksum: checksum(data),
        }],
    };
    let body = bincode::serde::encode_to_vec(&manifest, bincode::config::standard())
        .map_err(|e| snapshot_error(dir, format!("encoding manifest: {e}")))?;
    let mut bytes = Vec::with_capacity(body.len() + 28);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&checksum(&body).to_le_bytes());
    write_atomic(dir, MANIFEST, &bytes)?;
    // Old generations are garbage now; failing to remove one is harmless.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n != name && n.starts_with(&format!("{prefix}-")) && n.ends_with(".bin") {
                let _ = fs::remove_file(e.path());
            }
        }
        let _ = sync_dir(dir);
    }
    Ok(())
}

/// Reads and verifies `DIR/MANIFEST`.
pub(crate) fn read_manifest(dir: &Path) -> Result<ManifestKind, IndexError> {
    let path = dir.join(MANIFEST);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ManifestKind::Absent),
        Err(e) => return Err(e.into()),
    };
    let bad = |d: String| snapshot_error(&path, d);
    if bytes.len() >= 8 && &bytes[..8] == HNSW_RS_MAGIC {
        return Ok(ManifestKind::HnswRs);
    }
    if bytes.len() < 28 || &bytes[..8] != MAGIC {
        return Err(bad(
            "not a QuiverDB index manifest (bad magic or too short)".into(),
        ));
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format != FORMAT {
        return Err(bad(format!("manifest format {format}, expected {FORMAT}")));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&bytes[12..20]);
    let body_len = u64::from_le_bytes(l);
    if body_len != (bytes.len() - 28) as u64 {
        return Err(bad(format!(
            "manifest body length {body_len} does not match the file ({} bytes)",
            bytes.len()
        )));
    }
    let body = &bytes[20..bytes.len() - 8];
    l.copy_from_slice(&bytes[bytes.len() - 8..]);
    if u64::from_le_bytes(l) != checksum(body) {
        return Err(bad("manifest checksum mismatch".into()));
    }
    let (m, used): (Manifest, usize) =
        bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map_err(|e| bad(format!("decoding manifest: {e}")))?;
    if used != body.len() {
        return Err(bad("trailing bytes in manifest body".into()));
    }
    m.config
        .validate()
        .map_err(|e| bad(format!("manifest config: {e}")))?;
    if m.engine != m.config.engine {
        return Err(bad("manifest engine disagrees with its config".into()));
    }
    Ok(ManifestKind::Ours(m))
}

impl Manifest {
    /// The single data file, its length checked, to be decoded in one streaming pass;
    /// `decode` reads it and returns the engine, and the data's checksum is checked after
    /// the last byte (an engine built from bad bytes is dropped, never returned).
    pub(crate) fn decode_data<T>(
        &self,
        dir: &Path,
        decode: impl FnOnce(&mut StreamReader<fs::File>) -> Result<T, String>,
    ) -> Result<T, IndexError> {
        let (entry, path) = self.data_file(dir)?;
        let file =
            fs::File::open(&path).map_err(|e| snapshot_error(&path, format!("reading: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| snapshot_error(&path, format!("reading: {e}")))?
            .len();
        if len != entry.len {
            return Err(snapshot_error(
                &path,
                format!("length {len} but the manifest says {}", entry.len),
            ));
        }
        let mut r = StreamReader::new(file, len);
        let decoded = decode(&mut r);
        if decoded.is_err() {
            // Read the rest so that damaged bytes are reported as such (a checksum
            // mismatch) rather than as whatever structure they happened to break.
            r.skip_rest();
        }
        match (decoded, r.finish()) {
            (_, Ok(sum)) if sum != entry.checksum => {
                Err(snapshot_error(&path, "checksum mismatch"))
            }
            (Ok(t), Ok(_)) => Ok(t),
            (Err(d), _) | (Ok(_), Err(d)) => Err(snapshot_error(&path, d)),
        }
    }

    fn data_file(&self, dir: &Path) -> Result<(&FileEntry, std::path::PathBuf), IndexError> {
        let [entry] = self.files.as_slice() else {
            return Err(snapshot_error(
                dir,
                "manifest must list exactly one data file",
            ));
        };
        if entry.name.contains(['/', '\\']) || entry.name.starts_with('.') {
            return Err(snapshot_error(
                dir,
                format!("bad data file name {:?}", entry.name),
            ));
        }
        Ok((entry, dir.join(&entry.name)))
    }
}

/// Reads the manifest of a snapshot that `engine` must have written.
pub(crate) fn read_own_manifest(dir: &Path, engine: Engine) -> Result<Manifest, IndexError> {
    match read_manifest(dir)? {
        ManifestKind::Ours(m) if m.engine == engine => Ok(m),
        ManifestKind::Ours(m) => Err(snapshot_error(
            dir,
            format!("snapshot of engine {:?}, expected {engine:?}", m.engine),
        )),
        ManifestKind::HnswRs => Err(snapshot_error(
            dir,
            format!("snapshot of engine HnswRs, expected {engine:?}"),
        )),
        ManifestKind::Absent => Err(snapshot_error(dir, "no snapshot (no MANIFEST)")),
    }
}
