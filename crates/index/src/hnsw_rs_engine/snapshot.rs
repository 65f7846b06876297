//! The hnsw_rs engine's snapshot layout. hnsw_rs's own dump has no fsync, no rename and
//! panics on some read errors, so it is only a cache behind our manifest:
//!
//! ```text
//! DIR/MANIFEST              magic, checksum, bincode(Manifest)   — replaced atomically
//! DIR/gen-<N>/rows.bin      our arena (row ids, tombstones, vectors), little-endian
//! DIR/gen-<N>/<base>.hnsw.graph, <base>.hnsw.data   hnsw_rs's dump (absent when empty)
//! ```
//!
//! A save writes a fresh `gen-<N+1>`, fsyncs its files and the directory, then replaces
//! `MANIFEST`; older generations are removed afterwards. A load trusts only what the
//! manifest lists, with lengths and checksums checked before hnsw_rs reads a byte.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::arena::Arena;
use crate::atomic_file::{sync_dir, write_atomic};
use crate::{Engine, IndexConfig, IndexError};

const MANIFEST: &str = "MANIFEST";
const MANIFEST_MAGIC: &[u8; 8] = b"QVHNSWM1";
const FORMAT: u32 = 1;
const ROWS: &str = "rows.bin";
/// Basename handed to hnsw_rs's `file_dump`.
pub(crate) const GRAPH_BASENAME: &str = "graph";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileSum {
    name: String,
    len: u64,
    checksum: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    generation: u64,
    seq: u64,
    config: IndexConfig,
    /// The basename hnsw_rs actually used; `None` records an empty graph (hnsw_rs cannot
    /// dump one).
    graph_basename: Option<String>,
    files: Vec<FileSum>,
}

/// What a load found: the config, the sequence number, the rows, and the generation
/// directory plus basename to hand to hnsw_rs (`None` when the graph is empty).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: IndexConfig,
    pub(crate) seq: u64,
    pub(crate) arena: Arena,
    pub(crate) graph: Option<(PathBuf, String)>,
}

fn snap_err(path: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::Snapshot {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// 64-bit FNV-1a over 8-byte words (corruption detection, not an adversary).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ bytes.len() as u64
}

fn generation_dir(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation}"))
}

fn existing_generations(dir: &Path) -> Vec<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_prefix("gen-")?.parse().ok()
        })
        .collect()
}

/// Writes hnsw_rs's dump into the given directory; returns the basename used.
pub(crate) type DumpFn<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

/// Writes one snapshot. `dump` writes hnsw_rs's files into the directory it is given and
/// returns the basename used; it is not called for an empty graph.
pub(crate) fn save(
    dir: &Path,
    seq: u64,
    config: &IndexConfig,
    arena: &Arena,
    dump: Option<DumpFn<'_>>,
) -> Result<(), IndexError> {
    fs::create_dir_all(dir)?;
    let generation = existing_generations(dir)
        .into_iter()
        .max()
        .map_or(1, |g| g + 1);
    let gen_dir = generation_dir(dir, generation);
    fs::create_dir_all(&gen_dir)?;

    let rows = arena.encode();
    {
        let mut f = fs::File::create(gen_dir.join(ROWS))?;
        f.write_all(&rows)?;
        f.sync_all()?;
    }
    let mut files = vec![FileSum {
        name: ROWS.into(),
        len: rows.len() as u64,
        checksum: checksum(&rows),
    }];
    drop(rows);

    let graph_basename = match dump {
        None => None,
        Some(dump) => {
            let base = dump(&gen_dir)
                .map_err(|e| snap_err(&gen_dir, format!("hnsw_rs dump failed: {e}")))?;
            for ext in ["hnsw.graph", "hnsw.data"] {
                let name = format!("{base}.{ext}");
                let path = gen_dir.join(&name);
                let bytes = fs::read(&path)?;
                fs::File::open(&path)?.sync_all()?;
                files.push(FileSum {
                    name,
                    len: bytes.len() as u64,
                    checksum: checksum(&bytes),
                });
            }
            Some(base)
        }
    };
    sync_dir(&gen_dir)?;
    sync_dir(dir)?;

    let manifest = Manifest {
        format: FORMAT,
        generation,
        seq,
        config: config.clone(),
        graph_basename,
        files,
    };
    let body = bincode::serde::encode_to_vec(&manifest, bincode::config::standard())
        .map_err(|e| snap_err(dir, format!("cannot encode manifest: {e}")))?;
    let mut bytes = Vec::with_capacity(body.len() + 16);
    bytes.extend_from_slice(MANIFEST_MAGIC);
    bytes.extend_from_slice(&checksum(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    write_atomic(dir, MANIFEST, &bytes)?;

    for old in existing_generations(dir) {
        if old != generation {
            if let Err(e) = fs::remove_dir_all(generation_dir(dir, old)) {
                tracing::warn!(dir = %dir.display(), old, error = %e, "cannot remove old index generation");
            }
        }
    }
    tracing::debug!(dir = %dir.display(), generation, seq, "hnsw_rs snapshot written");
    Ok(())
}

/// Reads and verifies a snapshot (everything but hnsw_rs's own parsing).
pub(crate) fn load(dir: &Path) -> Result<Loaded, IndexError> {
    let mpath = dir.join(MANIFEST);
    let bytes =
        fs::read(&mpath).map_err(|e| snap_err(&mpath, format!("cannot read manifest: {e}")))?;
    if bytes.len() < 16 || &bytes[..8] != MANIFEST_MAGIC {
        return Err(snap_err(&mpath, "not an hnsw_rs index manifest"));
    }
    let body = &bytes[16..];
    let sum = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    if sum != checksum(body) {
        return Err(snap_err(&mpath, "manifest checksum mismatch"));
    }
    let cfg = bincode::config::standard().with_limit::<{ 1 << 20 }>();
    let (manifest, _): (Manifest, usize) = bincode::serde::decode_from_slice(body, cfg)
        .map_err(|e| snap_err(&mpath, format!("cannot decode manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(snap_err(
            &mpath,
            format!("unknown format {}", manifest.format),
        ));
    }
    manifest
        .config
        .validate()
        .map_err(|e| snap_err(&mpath, format!("manifest config: {e}")))?;
    if manifest.config.engine != Engine::HnswRs {
        return Err(snap_err(
            &mpath,
            format!("snapshot is for engine {:?}", manifest.config.engine),
        ));
    }

    let gen_dir = generation_dir(dir, manifest.generation);
    let mut rows = None;
    for f in &manifest.files {
        if f.name.contains('/') || f.name.contains('\\') || f.name.starts_with('.') {
            return Err(snap_err(&mpath, format!("bad file name {:?}", f.name)));
        }
        let path = gen_dir.join(&f.name);
        let data = fs::read(&path).map_err(|e| snap_err(&path, format!("cannot read: {e}")))?;
        if data.len() as u64 != f.len || checksum(&data) != f.checksum {
            return Err(snap_err(&path, "length or checksum mismatch"));
        }
        if f.name == ROWS {
            rows = Some(data);
        }
    }
    let rows = rows.ok_or_else(|| snap_err(&mpath, "manifest lists no rows file"))?;
    let arena =
        Arena::decode(&rows, manifest.config.dim).map_err(|e| snap_err(&gen_dir.join(ROWS), e))?;
    let graph = match manifest.graph_basename {
        Some(base) => {
            for ext in ["hnsw.graph", "hnsw.data"] {
                if !manifest
                    .files
                    .iter()
                    .any(|f| f.name == format!("{base}.{ext}"))
                {
                    return Err(snap_err(
                        &mpath,
                        format!("manifest does not list {base}.{ext}"),
                    ));
                }
            }
            Some((gen_dir, base))
        }
        None if arena.total() == 0 => None,
        None => return Err(snap_err(&mpath, "rows present but no graph recorded")),
    };
    Ok(Loaded {
        config: manifest.config,
        seq: manifest.seq,
        arena,
        graph,
    })
}
