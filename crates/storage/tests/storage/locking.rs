use super::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "QUIVERDB_STORAGE_LOCK_HELPER";

/// In a child process (selected by the env var): tries to open the path and reports.
#[test]
fn child_helper() {
    let Ok(path) = std::env::var(HELPER_ENV) else {
        return; // not the child: nothing to do
    };
    match Database::open(&path) {
        Err(Error::Locked { .. }) => println!("HELPER-RESULT: locked"),
        Err(e) => println!("HELPER-RESULT: error {e}"),
        Ok(_) => println!("HELPER-RESULT: opened"),
    }
}

#[test]
fn a_second_process_gets_locked_immediately() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "locking::child_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the second process hung on the lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("HELPER-RESULT: locked"),
        "child said: {stdout}"
    );
    drop(db);
}
