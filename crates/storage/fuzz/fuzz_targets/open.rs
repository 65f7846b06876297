//! Fuzzes storage decoding end to end: a database directory whose files come from the
//! fuzz input is opened, and whatever opens is listed, scanned and integrity-checked.
//!
//! Input: the first byte picks the mode.
//! * even: raw files — `conf` and `db` are the input split at the next two bytes' offset;
//! * odd: patches on a healthy database built once per process — every following 5 bytes
//!   are (offset u32 LE, xor byte) applied to its `db` file (offsets wrap), so the fuzzer
//!   reaches the record decoders instead of stopping at sled's header checks.
//!
//! Nothing may panic: errors must be `Error::Corrupted` (or I/O).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quiverdb_storage::{CollectionConfig, Database, Metadata, NewRecord, Pk, Value};

struct Baseline {
    files: Vec<(String, Vec<u8>)>,
}

fn baseline() -> &'static Baseline {
    static B: OnceLock<Baseline> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db
                .create_collection("c", CollectionConfig::default())
                .unwrap();
            let records = (0..12)
                .map(|i| {
                    let mut m = Metadata::new();
                    m.insert("n".into(), Value::Int(i));
                    NewRecord {
                        pk: Some(Pk::from(format!("k{i}"))),
                        text: format!("text {i}"),
                        metadata: m,
                        vector: vec![i as f32 + 0.5, 1.0, -2.0],
                    }
                })
                .collect();
            c.insert(records).unwrap();
            c.delete(&[Pk::from("k3")]).unwrap();
        }
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                files.push((
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
        Baseline { files }
    })
}

fn exercise(dir: &Path) {
    let Ok(db) = Database::open(dir) else {
        return;
    };
    let Ok(names) = db.list_collections() else {
        return;
    };
    for name in names {
        let Ok(c) = db.open_collection(&name) else {
            continue;
        };
        for r in c.scan().take(1000) {
            if r.is_err() {
                break;
            }
        }
        let _ = c.check_integrity();
        let _ = c.changes_since(0);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    if mode % 2 == 0 {
        let (cut, body) = match rest {
            [a, b, body @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), body),
            _ => (0, rest),
        };
        let cut = cut.min(body.len());
        std::fs::write(dir.path().join("conf"), &body[..cut]).unwrap();
        std::fs::write(dir.path().join("db"), &body[cut..]).unwrap();
    } else {
        for (name, bytes) in &baseline().files {
            let mut bytes = bytes.clone();
            if name == "db" && !bytes.is_empty() {
                for p in rest.chunks_exact(5) {
                    let off = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                    let len = bytes.len();
                    bytes[off % len] ^= p[4];
                }
            }
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    }
    exercise(dir.path());
});
