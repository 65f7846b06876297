//! Little-endian byte writer / bounds-checked reader, and the snapshot checksum.

/// 64-bit checksum of `bytes`: FNV-1a over 8-byte little-endian words (then the tail
/// bytes), with the length mixed in. Not cryptographic; it catches torn writes, truncation
/// and flipped bits (each step is a bijection of the state, so any single changed word
/// changes the result).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut c = Checksum::new(bytes.len() as u64);
    c.update(bytes);
    c.finish()
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// [`checksum`] computed over data that arrives in pieces (its length known up front).
#[derive(Debug, Clone)]
pub(crate) struct Checksum {
    h: u64,
    /// Bytes of an incomplete word, carried to the next piece.
    carry: [u8; 8],
    carried: usize,
}

impl Checksum {
    pub(crate) fn new(len: u64) -> Self {
        Checksum {
            h: 0xcbf2_9ce4_8422_2325 ^ len,
            carry: [0; 8],
            carried: 0,
        }
    }

    fn word(&mut self, w: [u8; 8]) {
        self.h = (self.h ^ u64::from_le_bytes(w)).wrapping_mul(FNV_PRIME);
        self.h ^= self.h >> 29;
    }

    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        if self.carried > 0 {
            let n = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + n].copy_from_slice(&bytes[..n]);
            self.carried += n;
            bytes = &bytes[n..];
            if self.carried < 8 {
                return;
            }
            self.word(self.carry);
            self.carried = 0;
        }
        let words = bytes.chunks_exact(8);
        let tail = words.remainder();
        for w in words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.word(b);
        }
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carried = tail.len();
    }

    /// The checksum; the bytes of a last incomplete word are mixed in one by one.
    pub(crate) fn finish(mut self) -> u64 {
        for i in 0..self.carried {
            self.h = (self.h ^ u64::from(self.carry[i])).wrapping_mul(FNV_PRIME);
        }
        self.h ^ (self.h >> 32)
    }
}

/// Appends little-endian values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    pub(crate) fn u32s(&mut self, v: impl IntoIterator<Item = u32>) {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Reads little-endian values from a data file of known length in one sequential pass,
/// through a small reused buffer, checksumming as it goes: a large snapshot is decoded
/// straight into the index's own memory instead of first into a copy of the whole file.
/// Every read is bounds-checked against the declared length; [`StreamReader::finish`]
/// checks that the data ended there and that its checksum is the expected one.
pub(crate) struct StreamReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// `buf[start..end]` is read but not yet consumed.
    start: usize,
    end: usize,
    /// Bytes consumed so far, and the declared total.
    pos: u64,
    len: u64,
    sum: Checksum,
}

/// Bytes read from the file per system call.
const STREAM_CHUNK: usize = 1 << 20;

impl<R: std::io::Read> StreamReader<R> {
    pub(crate) fn new(inner: R, len: u64) -> Self {
        StreamReader {
            inner,
            buf: vec![0; STREAM_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
            len,
            sum: Checksum::new(len),
        }
    }

    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    /// Refills the buffer when it is empty; fails at the declared end or a short file.
    fn fill(&mut self, what: &str) -> Result<(), String> {
        if self.start < self.end {
            return Ok(());
        }
        let want = (self.remaining().min(self.buf.len() as u64)) as usize;
        if want == 0 {
            return Err(format!(
                "truncated while reading {what} at byte {}",
                self.pos
            ));
        }
        let got = loop {
            match self.inner.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(format!(
                        "file ends at byte {} while reading {what}, {} expected",
                        self.pos, self.len
                    ))
                }
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading {what}: {e}")),
            }
        };
        self.sum.update(&self.buf[..got]);
        self.start = 0;
        self.end = got;
        Ok(())
    }

    /// Fails unless `n` more bytes are declared.
    fn need(&self, n: u64, what: &str) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated while reading {what} at byte {}",
                self.pos
            ));
        }
        Ok(())
    }

    /// Hands the next `n` bytes to `f`, in pieces as they come through the buffer.
    fn each_piece(&mut self, n: usize, what: &str, mut f: impl FnMut(&[u8])) -> Result<(), String> {
        self.need(n as u64, what)?;
        let mut left = n;
        while left > 0 {
            self.fill(what)?;
            let k = left.min(self.end - self.start);
            f(&self.buf[self.start..self.start + k]);
            self.start += k;
            self.pos += k as u64;
            left -= k;
        }
        Ok(())
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<Vec<u8>, String> {
        self.need(n as u64, what)?;
        let mut out = Vec::with_capacity(n);
        self.each_piece(n, what, |p| out.extend_from_slice(p))?;
        Ok(out)
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, String> {
        let mut b = [0u8; 8];
        let mut at = 0;
        self.each_piece(8, what, |p| {
            b[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        })?;
        Ok(u64::from_le_bytes(b))
    }

    /// A count that must fit in the file: at most what the remaining bytes can hold at
    /// `unit` bytes per item.
    pub(crate) fn count(&mut self, unit: usize, what: &str) -> Result<usize, String> {
        let n = self.u64(what)?;
        let left = self.remaining();
        if n.saturating_mul(unit.max(1) as u64) > left {
            return Err(format!("{what} = {n} exceeds the remaining {left} bytes"));
        }
        usize::try_from(n).map_err(|_| format!("{what} = {n} does not fit in memory"))
    }

    /// `n` little-endian 4-byte words, each turned into a `T` by `from`.
    fn words<T>(
        &mut self,
        n: usize,
        what: &str,
        from: impl Fn([u8; 4]) -> T,
    ) -> Result<Vec<T>, String> {
        let bytes = n.checked_mul(4).ok_or("overflow")?;
        self.need(bytes as u64, what)?;
        let mut out = Vec::with_capacity(n);
        // A word may straddle two buffer fills.
        let (mut part, mut have) = ([0u8; 4], 0usize);
        self.each_piece(bytes, what, |mut p| {
            if have > 0 {
                let k = (4 - have).min(p.len());
                part[have..have + k].copy_from_slice(&p[..k]);
                have += k;
                p = &p[k..];
                if have < 4 {
                    return;
                }
                out.push(from(part));
                have = 0;
            }
            let words = p.chunks_exact(4);
            let tail = words.remainder();
            out.extend(words.map(|c| from([c[0], c[1], c[2], c[3]])));
            part[..tail.len()].copy_from_slice(tail);
            have = tail.len();
        })?;
        Ok(out)
    }

    pub(crate) fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, String> {
        self.words(n, what, f32::from_le_bytes)
    }

    pub(crate) fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>, String> {
        self.words(n, what, u32::from_le_bytes)
    }

    /// Consumes whatever is left of the declared length (after a decoding error, so that
    /// [`StreamReader::finish`] can still tell whether the bytes were damaged). Stops
    /// quietly at a read error or a short file; `finish` then reports it.
    pub(crate) fn skip_rest(&mut self) {
        while self.remaining() > 0 && self.fill("the rest").is_ok() {
            self.pos += (self.end - self.start) as u64;
            self.start = self.end;
        }
    }

    /// Checks that every declared byte was consumed and returns the data's checksum.
    pub(crate) fn finish(self) -> Result<u64, String> {
        if self.pos != self.len || self.start != self.end {
            return Err(format!("{} unexpected trailing bytes", self.len - self.pos));
        }
        Ok(self.sum.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed checksum equals the one-shot one however the data is cut.
    #[test]
    fn checksum_in_pieces_matches_checksum_at_once() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 131 % 251) as u8).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 999, 1000] {
            let data = &data[..len];
            for piece in [1, 3, 5, 8, 13, 64] {
                let mut c = Checksum::new(len as u64);
                data.chunks(piece).for_each(|p| c.update(p));
                assert_eq!(c.finish(), checksum(data), "len {len}, pieces of {piece}");
            }
        }
    }

    /// The stream reader decodes what the writer wrote, across buffer refills (words
    /// straddling them), checks declared lengths, and reports the checksum.
    #[test]
    fn stream_reader_reads_back_the_writer_across_refills() {
        let mut w = Writer::default();
        w.bytes(b"MAGIC!");
        w.u64(3);
        let floats: Vec<f32> = (0..700_000).map(|i| i as f32 * 0.5 - 7.25).collect();
        w.f32s(&floats);
        w.u32s((0..300_001u32).map(|i| i.wrapping_mul(2_654_435_761)));
        let data = w.buf;
        let mut r = StreamReader::new(&data[..], data.len() as u64);
        assert_eq!(r.take(6, "magic").unwrap(), b"MAGIC!");
        assert_eq!(r.count(8, "n").unwrap(), 3);
        assert_eq!(r.f32s(floats.len(), "floats").unwrap(), floats);
        let words = r.u32s(300_001, "words").unwrap();
        assert!(words
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u32).wrapping_mul(2_654_435_761)));
        assert_eq!(r.finish().unwrap(), checksum(&data));

        // Declared longer than the file: a typed error, no panic, no huge allocation.
        let mut short = StreamReader::new(&data[..100], data.len() as u64);
        short.take(6, "magic").unwrap();
        short.u64("n").unwrap();
        assert!(short
            .f32s(floats.len(), "floats")
            .unwrap_err()
            .contains("file ends"));
        // A count beyond the declared length is refused before allocating.
        let mut r = StreamReader::new(&data[..], data.len() as u64);
        r.take(6, "magic").unwrap();
        assert!(r.count(1 << 40, "n").unwrap_err().contains("exceeds"));
        // Trailing bytes are an error.
        let mut r = StreamReader::new(&data[..], data.len() as u64);
        r.take(6, "magic").unwrap();
        assert!(r.finish().unwrap_err().contains("trailing"));
    }

    #[test]
    fn checksum_sees_single_bit_flips_and_truncation() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let c = checksum(&data);
        for i in [0, 7, 8, 500, 999] {
            let mut d = data.clone();
            d[i] ^= 0x10;
            assert_ne!(checksum(&d), c, "flip at {i}");
        }
        assert_ne!(checksum(&data[..999]), c);
    }

    #[test]
    fn reader_rejects_overlong_counts_and_truncation() {
        let mut w = Writer::default();
        w.u64(1 << 40);
        w.u32s([7]);
        let len = w.buf.len() as u64;
        let mut r = StreamReader::new(&w.buf[..], len);
        assert!(r.count(4, "n").is_err());
        // Declared 3 bytes: an 8-byte read is refused before reading.
        let mut r = StreamReader::new(&w.buf[..3], 3);
        assert!(r.u64("x").unwrap_err().contains("truncated"));
        // Declared 12 but the file has 3: the read fails when the file ends.
        let mut r = StreamReader::new(&w.buf[..3], len);
        assert!(r.u64("x").unwrap_err().contains("file ends"));
    }
}
