//! The write-ahead log in front of sled: one `fdatasync` of a preallocated file per flush.
//!
//! sled 0.34 makes a transaction durable with two `pwrite` + `sync_file_range` round trips
//! (the rows, and the batch manifest sled seals in a log buffer of its own), and [`Kv`]'s
//! `fdatasync` of sled's log follows: three device waits in series for every acknowledged
//! write. With this log, a commit appends its write set here and applies it to sled in
//! memory; a flush is one `fdatasync` of this file. sled's own files are made durable only
//! at a *checkpoint* ([`Kv::checkpoint`]): when this log passes [`CHECKPOINT_BYTES`], when
//! a write bypassed it, when the database closes, and after every open.
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
//! * Sequence numbers grow by one per commit, across reopens: every sled transaction a
//!   commit makes also puts `meta.wal_seq` = its sequence number, so sled's state, which
//!   sled recovers as a prefix of its transactions, names the last commit it holds.
//! * Commits hold one lock across numbering, appending and applying, so sled's order is
//!   the log's order.
//! * Replay (at open) applies, in file order, the records of the header's epoch that
//!   continue `meta.wal_seq` without a gap, and stops at the first record that is torn,
//!   of another epoch, or out of sequence. A commit acknowledged by a flush is in the log
//!   (synced) or in sled (checkpointed), and every commit before it is too, so the replay
//!   restores all of them; an unacknowledged one may come back or not, whole.
//! * A checkpoint makes sled durable under the commit lock, then starts a new epoch (header
//!   written and synced) and appends from the start again: records of an older epoch left
//!   further on in the file can never be taken for new ones.
//! * sled's files never go back past a checkpoint: an open that finds `meta.wal_seq` below
//!   the header's checkpointed number (sled's log truncated, or replaced by an older copy)
//!   is refused as corrupted instead of opening an older database.
//! * A write set larger than [`BYPASS_BYTES`] is applied to sled without a record and the
//!   next flush is a checkpoint. Replay stops at its gap, so nothing committed after it can
//!   be replayed without it.
//!
//! [`Kv`]: crate::kv::Kv
//! [`Kv::checkpoint`]: crate::kv::Kv::checkpoint

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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
/// Environment variable that overrides [`CHECKPOINT_BYTES`] (bytes, at least 1), read when
/// a database opens. For tests that want checkpoints to happen often (the crash test kills
/// writers in the middle of them); not meant for tuning.
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

/// The open log; see the module docs.
#[derive(Debug)]
pub(crate) struct Wal {
    /// Synced without the lock, so commits go on appending while a flush waits.
    file: File,
    state: parking_lot::Mutex<State>,
    /// A write set bypassed the log since the last checkpoint.
    bypassed: AtomicBool,
    /// [`CHECKPOINT_BYTES`], or its override from [`CHECKPOINT_BYTES_ENV`].
    checkpoint_bytes: u64,
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
            bypassed: AtomicBool::new(false),
            checkpoint_bytes: std::env::var(CHECKPOINT_BYTES_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|&b: &u64| b > 0)
                .unwrap_or(CHECKPOINT_BYTES),
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

    /// Numbers `ws`, appends it (unless it is too large, see [`BYPASS_BYTES`]) and calls
    /// `apply` with its number, all under the commit lock. If `apply` fails, the record is
    /// taken back (its bytes are overwritten by the next one) and the number reused.
    pub(crate) fn commit(
        &self,
        ws: &WriteSet,
        apply: impl FnOnce(u64) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.state.lock();
        let seq = st.next_seq;
        let size = RECORD_HEADER_LEN + ws.encoded_len();
        if size > BYPASS_BYTES {
            apply(seq)?;
            st.next_seq += 1;
            self.bypassed.store(true, Ordering::SeqCst);
            return Ok(());
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
        appended?;
        match apply(seq) {
            Ok(()) => {
                st.tail = at + size as u64;
                st.next_seq += 1;
                Ok(())
            }
            Err(e) => {
                // Best effort: a zero length ends the replay here even if nothing
                // overwrites this record before a crash.
                let _ = self.write_at(at, &[0u8; 4]);
                Err(e)
            }
        }
    }

    /// Makes every record appended so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        Ok(self.file.sync_data()?)
    }

    /// Whether the next flush must be a checkpoint: a write set bypassed the log, or the
    /// log passed [`CHECKPOINT_BYTES`] (or its override).
    pub(crate) fn wants_checkpoint(&self) -> bool {
        // The size threshold is soft: a flush that finds a commit holding the lock does not
        // wait for it (the next flush looks again). A bypass always counts.
        self.bypassed.load(Ordering::SeqCst)
            || self
                .state
                .try_lock()
                .is_some_and(|st| st.tail > self.checkpoint_bytes)
    }

    /// Runs `make_durable` (which must make every commit so far durable in sled) with
    /// commits held off, then starts a new epoch at the start of the file.
    pub(crate) fn checkpoint(&self, make_durable: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut st = self.state.lock();
        make_durable()?;
        let epoch = st.epoch.wrapping_add(1);
        let checkpointed = st.next_seq - 1;
        self.write_header(&mut st, epoch, checkpointed)?;
        self.file.sync_data()?;
        st.tail = HEADER_LEN;
        self.bypassed.store(false, Ordering::SeqCst);
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
    use super::*;

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
        wal.commit(ws, |seq| {
            assert_eq!(seq, expected);
            Ok(())
        })
        .unwrap();
    }

    fn appended(dir: &Path, n: u32) -> Wal {
        let (wal, replayed) = Wal::open(dir, 0).unwrap();
        assert!(replayed.is_empty());
        for i in 1..=n {
            commit_as(&wal, &set(i), u64::from(i));
        }
        wal.sync().unwrap();
        wal
    }

    #[test]
    fn records_come_back_in_order_from_the_durable_point_on() {
        let dir = tempfile::tempdir().unwrap();
        drop(appended(dir.path(), 5));
        let (_, replayed) = Wal::open(dir.path(), 2).unwrap();
        let seqs: Vec<u64> = replayed.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
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
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 2);
        // Number 3 bypasses the log (as a huge write set does).
        let mut huge = WriteSet::default();
        huge.put(TreeId::Rows, b"big", vec![1u8; BYPASS_BYTES]);
        commit_as(&wal, &huge, 3);
        assert!(wal.wants_checkpoint());
        wal.commit(&set(4), |_| Ok(())).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        // Had sled kept number 3, number 4 follows it.
        let (_, replayed) = Wal::open(dir.path(), 3).unwrap();
        assert_eq!(replayed.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_checkpoint_retires_every_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 6);
        let mut ran = false;
        wal.checkpoint(|| {
            ran = true;
            Ok(())
        })
        .unwrap();
        assert!(ran);
        // Two shorter records of the new epoch overwrite the start; the old epoch's
        // records after them, although well formed, are not replayed.
        for i in 7..=8u32 {
            let mut ws = WriteSet::default();
            ws.put(TreeId::Rows, b"k", [i as u8]);
            commit_as(&wal, &ws, u64::from(i));
        }
        wal.sync().unwrap();
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 6).unwrap();
        assert_eq!(replayed.iter().map(|r| r.seq).collect::<Vec<_>>(), [7, 8]);
    }

    #[test]
    fn a_log_past_its_threshold_asks_for_a_checkpoint_until_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = appended(dir.path(), 2);
        wal.checkpoint_bytes = 1_000;
        assert!(
            !wal.wants_checkpoint(),
            "two small records are under 1,000 bytes"
        );
        for i in 3..=10 {
            commit_as(&wal, &set(i), u64::from(i));
        }
        assert!(wal.wants_checkpoint());
        wal.checkpoint(|| Ok(())).unwrap();
        assert!(!wal.wants_checkpoint());
    }

    #[test]
    fn a_failed_apply_takes_its_record_back() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 1);
        let err = wal.commit(&set(2), |_| Err(Error::Sled("disk on fire".into())));
        assert!(err.is_err());
        wal.sync().unwrap();
        drop(wal);
        let (wal, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 1);
        // The failed commit's number is reused.
        commit_as(&wal, &set(3), 2);
    }

    #[test]
    fn a_log_whose_creation_was_cut_short_is_made_again() {
        for left in [&[][..], &[0u8; 7][..], &[0u8; 4096][..]] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(WAL_FILE), left).unwrap();
            let (wal, replayed) = Wal::open(dir.path(), 4).unwrap();
            assert!(replayed.is_empty());
            commit_as(&wal, &set(1), 5);
            wal.sync().unwrap();
            drop(wal);
            let (_, replayed) = Wal::open(dir.path(), 4).unwrap();
            assert_eq!(replayed.len(), 1, "from {} bytes", left.len());
        }
    }

    #[test]
    fn sled_behind_its_last_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wal = appended(dir.path(), 5);
        wal.checkpoint(|| Ok(())).unwrap();
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
        wal.sync().unwrap();
        drop(wal);
        let (_, replayed) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replayed.len(), 53);
        assert_eq!(
            replayed[52].writes.get(TreeId::Rows, b"b\x02"),
            Some(Some(&vec![2u8; half][..]))
        );
    }
}
