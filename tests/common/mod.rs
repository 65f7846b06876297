//! Helpers shared by the workspace's integration tests.

use std::path::Path;
use std::time::{Duration, Instant};

/// Opens a database directory with sled directly, behind QuiverDB's back (to read or damage
/// its trees), once this process has let go of it: sled releases its file lock only after
/// its background threads finish shutting down, a moment after the last handle is dropped.
/// `quiverdb_storage::Database::open` waits the same way (`CLOSE_GRACE`, 5 s).
pub fn sled_open_released(path: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened.unwrap(),
        }
    }
}
