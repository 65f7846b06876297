//! The write-ahead log in front of sled: commits share `fdatasync`s of a preallocated file,
//! and sled is written without transactions.
//!
//! sled 0.34 makes a transaction durable with two `pwrite` + `sync_file_range` round trips
//! (the rows, and the batch manifest sled seals in a log buffer of its own), and even a
//! transaction that is never flushed makes sled write two log buffers (`pin_log` rolls one
//! before and seals one after). With this log, a commit appends its write set here, syncs
//! it (one `fdatasync` for every commit appended meanwhile, whatever their collections),
//! and only then applies it to sled in memory with plain inserts and removes, which
//! sled writes out in full buffers of its own accord. sled's files are made durable only at
//! a *checkpoint* ([`Kv::checkpoint`]): when this log passes [`CHECKPOINT_BYTES`], around a
//! write set larger than [`BYPASS_BYTES`], when the database closes, and after every open.
//!
//! # Format (`wal` in the database directory; little-endian)
//! * Header, [`HEADER_LEN`] bytes: the magic `QVDBWAL1`, the *epoch* `u64`, and the
//!   sequence number sled's files held at the last checkpoint `u64`.
//! * Records from offset [`HEADER_LEN`] on: `len u32` (payload bytes), `crc u32` (CRC-32 of
//!   epoch, seq and payload), `epoch u64`, `seq u64`, payload. The payload is the write set:
//!   per entry `tree u8`, `op u8` (1 put, 0 remove), `key len u32`, key, and for a put
//!   `value len u32`, value.
//! * The file is preallocated with zeros in [`GROW_BYTES`] steps, so an append overwrites
//!   blocks the file already has and its `fdatasync` does not wait for the file system's
//!   journal (measured here: 93 µs against 148 µs for a growing file).
//!
//! # Invariants
//! * Sequence numbers grow by one per commit, across reopens. sled's `meta.wal_seq` holds
//!   the number of the last commit its files hold *whole*: a checkpoint writes it before
//!   it makes sled durable, and so does the one transaction of a bulk write set.
//! * A commit's record is durable before any of its writes reach sled, so sled's files
//!   never hold a write the log could lose. Commits hold one lock across numbering and
//!   appending; the `fdatasync` is shared (one committer syncs every record appended so
//!   far, the others wait for it), and the apply follows it outside the lock. Commits that
//!   run at once touch disjoint keys (a collection's commits are serialized by its own
//!   lock), so sled ends in the state the log's order gives.
//! * A checkpoint holds the commit lock and first waits until every appended commit has
//!   reached sled, so it never retires a record whose writes sled lacks.
//! * Between checkpoints sled's files hold the last checkpoint's state plus any part of
//!   the commits after it (sled writes its buffers when they fill, or every 500 ms).
//!   Replay (at open) applies, in file order, the records of the header's epoch that
//!   continue `meta.wal_seq` without a gap, and stops at the first record that is torn,
//!   of another epoch, or out of sequence. Every write is a put or remove of a whole
//!   value, so replaying the records after the checkpoint over such a state leaves every
//!   key they touch with its last value: each commit acknowledged (synced) is restored
//!   whole, and one whose record did not reach the disk left nothing in sled either.
//! * A checkpoint makes sled durable under the commit lock, then starts a new epoch (header
//!   written and synced) and appends from the start again: records of an older epoch left
//!   further on in the file can never be taken for new ones.
//! * sled's files never go back past a checkpoint: an open that finds `meta.wal_seq` below
//!   the header's checkpointed number (sled's log truncated, or replaced by an older copy)
//!   is refused as corrupted instead of opening an older database.
//! * A write set larger than [`BYPASS_BYTES`] is applied to sled as one transaction
//!   between two checkpoints, without a record: the first leaves no older record a replay
//!   could apply over it, the second makes it durable before the commit returns.
//! * Once a record may be durable, its commit cannot be taken back: if the sync or sled's
//!   apply fails, the log stops ([`Error::WritesStopped`]) and refuses commits and
//!   checkpoints until the database is reopened, whose replay completes the commit.
//!
//! [`Kv`]: crate::kv::Kv
//! [`Kv::checkpoint`]: crate::kv::Kv::checkpoint

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::kv::{TreeId, WriteSet};

/// The log's file name in the database directory.
pub(crate) const WAL_FILE: &str = "wal";
const MAGIC: &[u8; 8] = b"QVDBWAL1";
/// Magic, epoch, checkpointed sequence number.
pub(crate) const HEADER_LEN: u64 = 24;
/// `len`, `crc`, `epoch`, `seq`.
const RECORD_HEADER_LEN: usize = 24;
/// A checkpoint runs at the first flush after the log grows past this.
pub(crate) const CHECKPOINT_BYTES: u64 = 32 << 20;
/// Environment variable that overrides the log size that asks for a checkpoint (32 MiB;
/// bytes, at least 1), read when a database opens. For tests that want checkpoints to
/// happen often (the crash test kills writers in the middle of them); not meant for tuning.
pub const CHECKPOINT_BYTES_ENV: &str = "QUIVERDB_WAL_CHECKPOINT_BYTES";
/// The preallocation step.
pub(crate) const GROW_BYTES: u64 = 1 << 20;
/// Write sets larger than this go to sled directly, made durable by a checkpoint: a bulk
/// write gains nothing from being written twice (log and sled), and through the log it
/// leaves sled's write-back of it to the small writes after it. The demo's delete rows
/// (after a 1,000-document add in one call) did not show a clear difference: async delete
/// 100 at 1 MiB vs 16 MiB, 4.0 vs 4.4 ms median over 7 alternations, then 4.9–5.6 vs
/// 4.9–5.4 ms over 3 more (`docs/BENCHMARKS.md`).
pub(crate) const BYPASS_BYTES: usize = 1 << 20;

/// One record read back at open.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) seq: u64,
    pub(crate) writes: WriteSet,
}

/// What the log needs from the store behind it (sled, through [`Kv`]).
///
/// [`Kv`]: crate::kv::Kv
pub(crate) trait Store {
    /// Applies a write set whose record is already durable in the log. Need not be atomic:
    /// the replay completes a write set a crash cut short.
    fn apply_logged(&self, ws: &WriteSet) -> Result<()>;
    /// Applies a write set that bypasses the log, atomically (all or nothing, also across a
    /// crash), recording `seq` as the last commit the store holds.
    fn apply_bulk(&self, ws: &WriteSet, seq: u64) -> Result<()>;
    /// Makes every write applied so far durable in the store's own files, with `seq` (the
    /// last commit) recorded in them as the checkpointed sequence number.
    fn make_durable(&self, seq: u64) -> Result<()>;
}

/// The open log; see the module docs.
#[derive(Debug)]
pub(crate) struct Wal {
    file: File,
    /// Numbering and appending (and checkpoints, which hold it throughout).
    state: parking_lot::Mutex<State>,
    /// The number of the last record whose append completed.
    appended_seq: AtomicU64,
    /// The group sync: one committer at a time runs `fdatasync` for every record appended
    /// so far; the others wait for it.
    sync: parking_lot::Mutex<SyncState>,
    synced: parking_lot::Condvar,
    /// Commits appended and not yet applied to the store: a checkpoint waits for none.
    applying: parking_lot::Mutex<usize>,
    applied: parking_lot::Condvar,
    /// `fdatasync` calls made for commits (not for checkpoints), for tests and benchmarks.
    syncs: AtomicU64,
    /// Why the log stopped accepting commits, once it has (see [`Wal::commit`]).
    stopped: OnceLock<String>,
    /// [`CHECKPOINT_BYTES`], or its override from [`CHECKPOINT_BYTES_ENV`].
    checkpoint_bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every record up to this number is durable.
    synced_seq: u64,
    /// A committer is running the `fdatasync`.
    syncing: bool,
}

#[derive(Debug)]
struct State {
    epoch: u64,
    /// Where the next record goes.
    tail: u64,
    /// The file's length (all of it written, zeros past `tail`).
    allocated: u64,
    next_seq: u64,
    buf: Vec<u8>,
}

/// A commit whose record is durable and which the store may not have applied yet (see
/// [`Wal::log`]).
#[must_use = "a logged commit must be applied: a checkpoint waits for it"]
#[derive(Debug)]
pub(crate) struct Logged {
    seq: u64,
    /// A bulk write set, applied by `log` itself.
    applied: bool,
}

impl Logged {
    /// Whether `log` applied the write set itself (a bulk write set).
    pub(crate) fn is_applied(&self) -> bool {
        self.applied
    }
}

/// Counts a logged commit off [`Wal::applying`] when dropped.
struct AppliedOne<'a>(&'a Wal);

impl Drop for AppliedOne<'_> {
    fn drop(&mut self) {
        self.0.applied_one();
    }
}

impl Wal {
    /// Opens the log in `dir` (creating it if absent) and returns the records to replay on
    /// top of a sled state whose last commit is `durable_seq`, in order. The caller applies
    /// them, then runs a checkpoint before the first new commit.
    pub(crate) fn open(dir: &Path, durable_seq: u64) -> Result<(Wal, Vec<Replayed>)> {
        let path = dir.join(WAL_FILE);
        let corrupted = |detail: String| Error::Corrupted {
            path: dir.to_path_buf(),
            detail,
        };
        let (file, bytes) = match File::options().read(true).write(true).open(&path) {
            Ok(file) => {
                let bytes = std::fs::read(&path)?;
                // A log whose creation a crash cut short (header not written yet): no
                // record can exist, since none is appended before the header is synced.
                let unborn = bytes.iter().take(HEADER_LEN as usize).all(|&b| b == 0);
                (file, (!unborn).then_some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                (file, None)
            }
            Err(e) => return Err(e.into()),
        };
        let (epoch, replayed, allocated) = match &bytes {
            None => (0, Vec::new(), 0),
            Some(bytes) => {
                if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
                    return Err(corrupted(format!(
                        "{} is not a QuiverDB write-ahead log (bad header)",
                        path.display()
                    )));
                }
                let epoch = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
                let checkpointed = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
                if durable_seq < checkpointed {
                    return Err(corrupted(format!(
                        "sled's log ends at transaction {durable_seq}, but transaction \
                         {checkpointed} was checkpointed into it: the log was truncated or \
                         replaced by an older copy"
                    )));
                }
                let replayed = read_records(bytes, epoch, durable_seq).map_err(corrupted)?;
                (epoch, replayed, bytes.len() as u64)
            }
        };
        let next_seq = replayed.last().map_or(durable_seq, |r| r.seq) + 1;
        let wal = Wal {
            file,
            state: parking_lot::Mutex::new(State {
                epoch,
                tail: HEADER_LEN,
                allocated,
                next_seq,
                buf: Vec::new(),
            }),
            appended_seq: AtomicU64::new(next_seq - 1),
            sync: parking_lot::Mutex::new(SyncState {
                synced_seq: next_seq - 1,
                syncing: false,
            }),
            synced: parking_lot::Condvar::new(),
            applying: parking_lot::Mutex::new(0),
            applied: parking_lot::Condvar::new(),
            syncs: AtomicU64::new(0),
            stopped: OnceLock::new(),
            checkpoint_bytes: AtomicU64::new(
                std::env::var(CHECKPOINT_BYTES_ENV)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .filter(|&b: &u64| b > 0)
                    .unwrap_or(CHECKPOINT_BYTES),
            ),
        };
        if bytes.is_none() {
            let mut st = wal.state.lock();
            wal.write_header(&mut st, 0, 0)?;
            wal.grow(&mut st, HEADER_LEN)?;
            wal.file.sync_all()?;
            crate::kv::sync_dir(dir)?;
        }
        Ok((wal, replayed))
    }

    /// Numbers `ws` and appends it under the commit lock, then makes it durable with a
    /// group `fdatasync` shared with every commit appended meanwhile, then applies it to
    /// `store`: [`Wal::log`] then [`Wal::apply`]. A write set larger than [`BYPASS_BYTES`]
    /// is applied atomically between two checkpoints instead (see the module docs).
    ///
    /// Commits that run at once must touch disjoint keys (the storage layer's locks see to
    /// it: a collection's commits are serialized, and collections' keys are disjoint), so
    /// the order in which they reach the store does not matter; the replay's order is the
    /// log's.
    ///
    /// A commit that fails before its record is written changes nothing, and its number is
    /// reused. Once the record may be durable, a failure [stops](Error::WritesStopped) the
    /// log: a replay would apply the record, so it cannot be taken back, and sled may hold
    /// part of it; the next open repairs that from the log. Returns the commit's sequence
    /// number.
    #[cfg(test)]
    pub(crate) fn commit(&self, ws: &WriteSet, store: &impl Store) -> Result<u64> {
        let logged = self.log(ws, store)?;
        self.apply(logged, ws, store)
    }

    /// The first half of a commit: numbers `ws`, appends it and makes it durable. The
    /// returned [`Logged`] must reach [`Wal::apply`] (a checkpoint waits for it), after
    /// every earlier commit touching the same keys has been applied. A bulk write set is
    /// applied (and made durable) here already.
    pub(crate) fn log(&self, ws: &WriteSet, store: &impl Store) -> Result<Logged> {
        let seq = {
            let mut st = self.state.lock();
            self.check_writable()?;
            let seq = st.next_seq;
            let size = RECORD_HEADER_LEN + ws.encoded_len();
            if size > BYPASS_BYTES {
                return self
                    .commit_bulk(&mut st, ws, seq, store)
                    .map(|seq| Logged { seq, applied: true });
            }
            let epoch = st.epoch;
            let mut buf = std::mem::take(&mut st.buf);
            encode_record(&mut buf, epoch, seq, ws);
            debug_assert_eq!(buf.len(), size);
            let at = st.tail;
            let appended = self.append(&mut st, at, &buf);
            // Kept for the next record, unless a big one grew it (up to `BYPASS_BYTES`).
            if buf.capacity() <= GROW_BYTES as usize {
                st.buf = buf;
            }
            if let Err(e) = appended {
                // Not synced and not applied: the next record overwrites it. Best effort: a
                // zero length ends the replay here even if nothing overwrites it first.
                let _ = self.write_at(at, &[0u8; 4]);
                return Err(e);
            }
            st.tail = at + size as u64;
            st.next_seq += 1;
            self.appended_seq.store(seq, Ordering::SeqCst);
            // Counted before the lock is released, so a checkpoint (which holds it) waits
            // for this commit to reach the store.
            *self.applying.lock() += 1;
            seq
        };
        if let Err(e) = self.sync_through(seq) {
            self.applied_one();
            return Err(e);
        }
        Ok(Logged {
            seq,
            applied: false,
        })
    }

    /// The second half of a commit: applies a logged write set to `store`; returns its
    /// sequence number. Refused once the log has stopped (an earlier commit's apply may
    /// have failed; the next open's replay applies them all in order).
    pub(crate) fn apply(&self, logged: Logged, ws: &WriteSet, store: &impl Store) -> Result<u64> {
        let Logged { seq, applied } = logged;
        if applied {
            return Ok(seq);
        }
        // Counted off even if the store panics, or a checkpoint would wait for ever.
        let _done = AppliedOne(self);
        self.check_writable()?;
        store
            .apply_logged(ws)
            .map_err(|e| self.stop(format!("applying commit {seq} failed: {e}")))?;
        Ok(seq)
    }

    fn applied_one(&self) {
        let mut applying = self.applying.lock();
        *applying -= 1;
        if *applying == 0 {
            self.applied.notify_all();
        }
    }

    /// Returns once record `seq` is durable: runs one `fdatasync` for every record appended
    /// so far, or waits for the one running to cover it.
    fn sync_through(&self, seq: u64) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            self.check_writable()?;
            if s.synced_seq >= seq {
                return Ok(());
            }
            if s.syncing {
                self.synced.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let target = self.appended_seq.load(Ordering::SeqCst);
            let synced = parking_lot::MutexGuard::unlocked(&mut s, || self.file.sync_data());
            self.syncs.fetch_add(1, Ordering::Relaxed);
            s.syncing = false;
            match synced {
                Ok(()) => s.synced_seq = s.synced_seq.max(target),
                Err(e) => {
                    self.stop(format!("syncing the write-ahead log failed: {e}"));
                }
            }
            self.synced.notify_all();
        }
    }

    /// Sets the size past which the log wants a checkpoint (tests).
    #[cfg(test)]
    pub(crate) fn set_checkpoint_bytes(&self, bytes: u64) {
        self.checkpoint_bytes.store(bytes, Ordering::Relaxed);
    }

    /// `fdatasync` calls made for commits so far.
    pub(crate) fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// A write set too large for the log: a checkpoint first, so the log holds no record
    /// older than it (a replay cannot put their values back over it), then one atomic sled
    /// transaction, then a checkpoint that makes it durable.
    fn commit_bulk(
        &self,
        st: &mut State,
        ws: &WriteSet,
        seq: u64,
        store: &impl Store,
    ) -> Result<u64> {
        self.checkpoint_locked(st, store)?;
        store.apply_bulk(ws, seq)?;
        st.next_seq += 1;
        self.checkpoint_locked(st, store).map_err(|e| {
            self.stop(format!(
                "commit {seq} (written to sled directly) could not be made durable: {e}"
            ))
        })?;
        Ok(seq)
    }

    /// Records why writes stopped and returns the error that says so.
    fn stop(&self, detail: String) -> Error {
        tracing::error!(%detail, "the write-ahead log stops accepting commits");
        let detail = self.stopped.get_or_init(|| detail).clone();
        Error::WritesStopped { detail }
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match self.stopped.get() {
            Some(detail) => Err(Error::WritesStopped {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether the log has passed [`CHECKPOINT_BYTES`] (or its override), so the next flush
    /// should be a checkpoint.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        // The threshold is soft: a flush that finds a commit holding the lock does not wait
        // for it (the next flush looks again).
        self.state
            .try_lock()
            .is_some_and(|st| st.tail > self.checkpoint_bytes.load(Ordering::Relaxed))
    }

    /// Makes sled durable with commits held off ([`Store::make_durable`]), then starts a
    /// new epoch at the start of the file. Refused once the log has stopped: sled may hold
    /// part of a commit that only the log's replay can complete.
    pub(crate) fn checkpoint(&self, store: &impl Store) -> Result<()> {
        let mut st = self.state.lock();
        self.checkpoint_locked(&mut st, store)
    }

    fn checkpoint_locked(&self, st: &mut State, store: &impl Store) -> Result<()> {
        // Commits appended before the lock was taken may still be on their way to the
        // store; new ones wait for the lock.
        let mut applying = self.applying.lock();
        while *applying > 0 {
            self.applied.wait(&mut applying);
        }
        drop(applying);
        self.check_writable()?;
        let checkpointed = st.next_seq - 1;
        store.make_durable(checkpointed)?;
        let epoch = st.epoch.wrapping_add(1);
        self.write_header(st, epoch, checkpointed)?;
        self.file.sync_data()?;
        st.tail = HEADER_LEN;
        Ok(())
    }

    fn write_header(&self, st: &mut State, epoch: u64, checkpointed: u64) -> Result<()> {
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&epoch.to_le_bytes());
        header[16..].copy_from_slice(&checkpointed.to_le_bytes());
        self.write_at(0, &header)?;
        st.epoch = epoch;
        st.allocated = st.allocated.max(HEADER_LEN);
        Ok(())
    }

    /// Writes `bytes` at `at`, first growing the file with zeros if they would pass its end.
    fn append(&self, st: &mut State, at: u64, bytes: &[u8]) -> Result<()> {
        let end = at + bytes.len() as u64;
        if end > st.allocated {
            self.grow(st, end)?;
        }
        self.write_at(at, bytes)
    }

    /// Extends the file with zeros to at least `end`, and by at least [`GROW_BYTES`], to a
    /// multiple of 4 KiB.
    fn grow(&self, st: &mut State, end: u64) -> Result<()> {
        let target = end.max(st.allocated + GROW_BYTES).next_multiple_of(4096);
        let zeros = vec![0u8; GROW_BYTES as usize];
        let mut at = st.allocated;
        while at < target {
            let n = (target - at).min(GROW_BYTES);
            self.write_at(at, &zeros[..n as usize])?;
            at += n;
        }
        st.allocated = at;
        Ok(())
    }

    fn write_at(&self, at: u64, bytes: &[u8]) -> Result<()> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(at))?;
        f.write_all(bytes)?;
        Ok(())
    }
}

fn tree_from_u8(b: u8) -> Option<TreeId> {
    TreeId::ALL.get(usize::from(b)).copied()
}

fn encode_record(buf: &mut Vec<u8>, epoch: u64, seq: u64, ws: &WriteSet) {
    buf.clear();
    buf.extend_from_slice(&[0u8; 8]);
    buf.extend_from_slice(&epoch.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    for (tree, key, value) in ws.entries() {
        buf.push(tree as u8);
        buf.push(u8::from(value.is_some()));
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key);
        if let Some(v) = value {
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
    }
    let len = (buf.len() - RECORD_HEADER_LEN) as u32;
    let crc = crc32fast::hash(&buf[8..]);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The records of `epoch` continuing `durable_seq` (see the module docs). A record whose
/// checksum holds but whose payload does not decode is corruption, not a torn tail.
fn read_records(
    bytes: &[u8],
    epoch: u64,
    durable_seq: u64,
) -> std::result::Result<Vec<Replayed>, String> {
    let mut out = Vec::new();
    let mut expected = durable_seq + 1;
    let mut at = HEADER_LEN as usize;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER_LEN) {
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let long = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        let (len, crc, rec_epoch, seq) = (word(0) as usize, word(4), long(8), long(16));
        if len == 0 || rec_epoch != epoch {
            break;
        }
        let Some(payload) = bytes.get(at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[8..]);
        hasher.update(payload);
        if hasher.finalize() != crc {
            break;
        }
        if seq > expected {
            break;
        }
        if seq == expected {
            let writes = decode_payload(payload)
                .ok_or_else(|| format!("write-ahead log record {seq} does not decode"))?;
            out.push(Replayed { seq, writes });
            expected += 1;
        }
        at += RECORD_HEADER_LEN + len;
    }
    Ok(out)
}

fn decode_payload(mut p: &[u8]) -> Option<WriteSet> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = p.split_at_checked(n)?;
        *p = rest;
        Some(head)
    }
    fn len(p: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(p, 4)?.try_into().ok()?) as usize)
    }
    let mut ws = WriteSet::default();
    while !p.is_empty() {
        let tag = take(&mut p, 2)?;
        let tree = tree_from_u8(tag[0])?;
        let n = len(&mut p)?;
        let key = take(&mut p, n)?;
        match tag[1] {
            1 => {
                let n = len(&mut p)?;
                ws.put(tree, key, take(&mut p, n)?);
            }
            0 => ws.remove(tree, key),
            _ => return None,
        }
    }
    Some(ws)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::path::PathBuf;

    use super::*;

    /// What the log asked of the store.
    #[derive(Debug, PartialEq)]
    enum Call {
        /// A logged write set, by its number of entries.
        Logged(usize),
        Bulk(u64),
        Durable(u64),
    }

    /// A store that records the log's calls.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<Call>>,
        fail_apply: Cell<bool>,
        /// When set, every logged apply first reads this file and checks that the write
        /// set's record is already in it.
        log_file: Option<PathBuf>,
    }

    impl Store for Recorder {
        fn apply_logged(&self, ws: &WriteSet) -> Result<()> {
            if let Some(path) = &self.log_file {
                let bytes = std::fs::read(path).unwrap();
                let epoch = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                let records = read_records(&bytes, epoch, 0).unwrap();
                let wanted: Vec<_> = ws.entries().collect();
                assert!(
                    records
                        .iter()
                        .any(|r| r.writes.entries().collect::<Vec<_>>() == wanted),
                    "applied before its record was written"
                );
            }
            if self.fail_apply.get() {
                return Err(Error::Sled("disk on fire".into()));
            }
            self.calls
                .borrow_mut()
                .push(Call::Logged(ws.entries().count()));
            Ok(())
        }

        fn apply_bulk(&self, _: &WriteSet, seq: u64) -> Result<()> {
            self.calls.borrow_mut().push(Call::Bulk(seq));
            Ok(())
        }

        fn make_durable(&self, seq: u64) -> Result<()> {
            self.calls.borrow_mut().push(Call::Durable(seq));
            Ok(())
        }
    }

    fn set(i: u32) -> WriteSet {
        let mut ws = WriteSet::default();
        ws.put(
            TreeId::Rows,
            i.to_be_bytes(),
            vec![i as u8; 100 + i as usize],
        );
        ws.remove(TreeId::PkIndex, b"gone");
        ws
    }

    /// Commits `ws`, checking the sequence number it gets.
    fn commit_as(wal: &Wal, ws: &WriteSet, expected: u64) {
        assert_eq!(wal.commit(ws, &Recorder::default()).unwrap(), expected);
    }

    fn appended(dir: &Path, n: u32) -> Wal {
        let (wal, replayed) = Wal::open(dir, 0).unwrap();
        assert!(replayed.is_empty());
        for i in 1..=n {
            commit_as(&wal, &set(i), u64::from(i));
        }
        wal
    }

    fn seqs(replayed: &[Replayed]) -> Vec<u64> {
        replayed.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn records_come_back_in_order_from_the_durable_point_on() {
        let dir = tempfile::tempdir().unwrap();
        drop(appended(dir.path(), 5));
        let (_, replayed) = Wal::open(dir.path(), 2).unwrap();
        assert_eq!(seqs(&replayed), [3, 4, 5]);
        let expected = set(4);
        assert_eq!(
            replayed[1].writes.entries().collect::<Vec<_>>(),
            expected.entries().collect::<Vec<_>>()
        );
        // sled ahead of the log: nothing to replay, numbering goes on after sled's.
        let (wal, replayed) = Wal::open(dir.path(), 9).unwrap();
        assert!(replayed.is_empty());
        commit_as(&wal, &set(1), 10);
    }

    #[test]
    fn a_commit_is_in_the_log_file_before_the_store_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 3);
        let store = Recorder {
            log_file: Some(dir.path().join(WAL_FILE)),
            ..Recorder::default()
        };
        for i in 4..=6 {
            assert_eq!(wal.commit(&set(i), &store).unwrap(), u64::from(i));
        }
        assert_eq!(*store.calls.borrow(), [2, 2, 2].map(Call::Logged));
    }

    /// A store for several threads: counts applies, and can hold them until released.
    #[derive(Default)]
    struct Shared {
        applied: std::sync::Mutex<Vec<usize>>,
        durable: std::sync::Mutex<Vec<u64>>,
        /// While set, applies wait for it to be cleared.
        hold: std::sync::Mutex<bool>,
        released: std::sync::Condvar,
    }

    impl Store for Shared {
        fn apply_logged(&self, ws: &WriteSet) -> Result<()> {
            let mut hold = self.hold.lock().unwrap();
            while *hold {
                hold = self.released.wait(hold).unwrap();
            }
            self.applied.lock().unwrap().push(ws.entries().count());
            Ok(())
        }

        fn apply_bulk(&self, _: &WriteSet, _: u64) -> Result<()> {
            unreachable!("no bulk write sets here")
        }

        fn make_durable(&self, seq: u64) -> Result<()> {
            self.durable.lock().unwrap().push(seq);
            Ok(())
        }
    }

    #[test]
    fn concurrent_commits_share_syncs_and_all_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0).unwrap();
        let store = Shared::default();
        const THREADS: u32 = 8;
        const EACH: u32 = 40;
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (wal, store) = (&wal, &store);
                scope.spawn(move || {
                    for i in 0..EACH {
                        wal.commit(&set(t * EACH + i), store).unwrap();
                    }
                });
            }
        });
        let commits = u64::from(THREADS * EACH);
        assert_eq!(store.applied.lock().unwrap().len() as u64, commits);
        let syncs = wal.sync_count();
        assert!(syncs < commits, "{syncs} syncs for {commits} commits");
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(seqs(&replayed), (1..=commits).collect::<Vec<_>>());
    }

    #[test]
    fn a_checkpoint_waits_for_commits_on_their_way_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), 0).unwrap();
        let store = Shared::default();
        *store.hold.lock().unwrap() = true;
        std::thread::scope(|scope| {
            let committer = scope.spawn(|| wal.commit(&set(1), &store).unwrap());
            // The commit is appended (and synced) but held before the store.
            while wal.appended_seq.load(Ordering::SeqCst) < 1 {
                std::thread::yield_now();
            }
            let checkpointer = scope.spawn(|| wal.checkpoint(&store).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(100));
            let early = store.durable.lock().unwrap().clone();
            *store.hold.lock().unwrap() = false;
            store.released.notify_all();
            assert_eq!(committer.join().unwrap(), 1);
            checkpointer.join().unwrap();
            assert!(
                early.is_empty(),
                "checkpointed while a commit had not reached the store"
            );
        });
        assert_eq!(*store.durable.lock().unwrap(), [1]);
        assert_eq!(*store.applied.lock().unwrap(), [2]);
    }

    #[test]
    fn a_torn_or_flipped_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        drop(appended(dir.path(), 4));
        let path = dir.path().join(WAL_FILE);
        let clean = std::fs::read(&path).unwrap();
        // Record 3 starts after records 1 and 2.
        let third = HEADER_LEN as usize
            + (1..=2)
                .map(|i| RECORD_HEADER_LEN + set(i).encoded_len())
                .sum::<usize>();
        for flip in [third + 5, third + 30, third + RECORD_HEADER_LEN + 50] {
            let mut bytes = clean.clone();
            bytes[flip] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
            assert_eq!(replayed.len(), 2, "flipped byte {flip}");
        }
        std::fs::write(&path, &clean[..third + 40]).unwrap();
        let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 2);
    }

    #[test]
    fn a_gap_in_the_numbers_ends_the_replay() {
        let mut bytes = vec![0u8; HEADER_LEN as usize];
        let mut record = Vec::new();
        for seq in [1, 2, 4, 5] {
            encode_record(&mut record, 7, seq, &set(seq as u32));
            bytes.extend_from_slice(&record);
        }
        assert_eq!(seqs(&read_records(&bytes, 7, 0).unwrap()), [1, 2]);
        // Had sled's files held number 3, the records after it follow.
        assert_eq!(seqs(&read_records(&bytes, 7, 3).unwrap()), [4, 5]);
        // Records of another epoch are not this log's.
        assert!(read_records(&bytes, 8, 0).unwrap().is_empty());
    }

    #[test]
    fn a_bulk_write_set_is_applied_between_two_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 2);
        let mut huge = WriteSet::default();
        huge.put(TreeId::Rows, b"big", vec![1u8; BYPASS_BYTES]);
        let store = Recorder::default();
        assert_eq!(wal.commit(&huge, &store).unwrap(), 3);
        assert_eq!(
            *store.calls.borrow(),
            [Call::Durable(2), Call::Bulk(3), Call::Durable(3)]
        );
        commit_as(&wal, &set(4), 4);
        drop(wal);
        // Records 1 and 2 were retired by the first checkpoint; 4 follows the second.
        let (_, replayed) = Wal::open(dir.path(), 3).unwrap();
        assert_eq!(seqs(&replayed), [4]);
    }

    #[test]
    fn a_checkpoint_retires_every_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 6);
        let store = Recorder::default();
        wal.checkpoint(&store).unwrap();
        assert_eq!(*store.calls.borrow(), [Call::Durable(6)]);
        // Two shorter records of the new epoch overwrite the start; the old epoch's
        // records after them, although well formed, are not replayed.
        for i in 7..=8u32 {
            let mut ws = WriteSet::default();
            ws.put(TreeId::Rows, b"k", [i as u8]);
            commit_as(&wal, &ws, u64::from(i));
        }
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 6).unwrap();
        assert_eq!(seqs(&replayed), [7, 8]);
    }

    #[test]
    fn a_log_past_its_threshold_asks_for_a_checkpoint_until_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 2);
        wal.set_checkpoint_bytes(1_000);
        assert!(
            !wal.wants_checkpoint(),
            "two small records are under 1,000 bytes"
        );
        for i in 3..=10 {
            commit_as(&wal, &set(i), u64::from(i));
        }
        assert!(wal.wants_checkpoint());
        wal.checkpoint(&Recorder::default()).unwrap();
        assert!(!wal.wants_checkpoint());
    }

    #[test]
    fn a_failed_apply_stops_the_log_and_the_replay_completes_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 1);
        let failing = Recorder::default();
        failing.fail_apply.set(true);
        let stopped = |r: Result<u64>| match r {
            Err(Error::WritesStopped { detail }) => {
                assert!(detail.contains("commit 2"), "{detail}")
            }
            other => panic!("{other:?}"),
        };
        stopped(wal.commit(&set(2), &failing));
        // Later commits and checkpoints are refused with the first failure's reason.
        stopped(wal.commit(&set(3), &Recorder::default()));
        let store = Recorder::default();
        stopped(wal.checkpoint(&store).map(|()| 0));
        assert!(
            store.calls.borrow().is_empty(),
            "a stopped log checkpointed"
        );
        drop(wal);
        let (wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(seqs(&replayed), [1, 2]);
        commit_as(&wal, &set(3), 3);
    }

    #[test]
    fn a_log_whose_creation_was_cut_short_is_made_again() {
        for left in [&[][..], &[0u8; 7][..], &[0u8; 4096][..]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(WAL_FILE), left).unwrap();
            let (wal, replayed) = Wal::open(dir.path(), 4).unwrap();
            assert!(replayed.is_empty());
            commit_as(&wal, &set(1), 5);
            drop(wal);
            let (_, replayed) = Wal::open(dir.path(), 4).unwrap();
            assert_eq!(replayed.len(), 1, "from {} bytes", left.len());
        }
    }

    #[test]
    fn sled_behind_its_last_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 5);
        wal.checkpoint(&Recorder::default()).unwrap();
        drop(wal);
        // sled's files hold number 5 or later: fine; anything earlier lost a checkpoint.
        assert!(Wal::open(dir.path(), 5).is_ok());
        assert!(Wal::open(dir.path(), 9).is_ok());
        match Wal::open(dir.path(), 4) {
            Err(Error::Corrupted { detail, .. }) => {
                assert!(detail.contains("truncated"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(WAL_FILE), b"garbage, not a log at all").unwrap();
        assert!(matches!(
            Wal::open(dir.path(), 0),
            Err(Error::Corrupted { .. })
        ));
    }

    #[test]
    fn appends_overwrite_the_preallocated_zeros_and_grow_it_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 50);
        let created = (HEADER_LEN + GROW_BYTES).next_multiple_of(4096);
        assert_eq!(
            std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len(),
            created
        );
        // Three records of half the step (each under `BYPASS_BYTES`) pass the end.
        let half = GROW_BYTES as usize / 2;
        for i in 0..3u8 {
            let mut big = WriteSet::default();
            big.put(TreeId::Rows, [b'b', i], vec![i; half]);
            commit_as(&wal, &big, 51 + u64::from(i));
        }
        let grown = std::fs::metadata(dir.path().join(WAL_FILE)).unwrap().len();
        assert!(grown >= created + GROW_BYTES, "{grown}");
        assert_eq!(grown % 4096, 0);
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 53);
        assert_eq!(
            replayed[52].writes.get(TreeId::Rows, b"b\x02"),
            Some(Some(&vec![2u8; half][..]))
        );
    }
}
