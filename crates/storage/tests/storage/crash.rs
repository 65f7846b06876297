//! A child process writes and acknowledges batches, then gets killed; every acknowledged
//! batch must be there after reopening.
use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const HELPER_ENV: &str = "QUIVERDB_STORAGE_CRASH_HELPER";

/// In the child (selected by the env var): writes until killed, printing an ack per batch.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(HELPER_ENV) else {
        return;
    };
    let db = Database::open(&path).unwrap();
    let c = db
        .create_collection("c", cfg(PkKind::AutoInt, Metric::L2))
        .unwrap();
    for i in 0..100_000u32 {
        let r = c
            .insert(vec![
                rec(None, &format!("{i}"), vec![i as f32]),
                rec(None, "pair", vec![0.5]),
            ])
            .unwrap();
        println!("ACK {}", r.seq);
    }
}

#[test]
fn acknowledged_batches_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ACK ") {
            acked = n.trim().parse().unwrap();
            if acked >= 40 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked >= 40, "the child stopped early");
    let db = open(dir.path());
    let c = db.open_collection("c").unwrap();
    assert!(c.last_seq() >= acked);
    assert_eq!(c.count().unwrap() as u64, 2 * c.last_seq());
    assert!(c.check_integrity().unwrap().is_ok());
    // Batches are whole: each seq's pair of records is present.
    for ch in c.changes_since(0).unwrap() {
        assert_eq!(ch.inserted.len(), 2);
    }
}
