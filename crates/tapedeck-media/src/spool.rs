//! The spool: an append-only log of every frame the timeline accepted, in its
//! original encoding, with its output timestamp.
//!
//! Written as frames arrive and synced about once a second, so a crash loses at
//! most that second. Record layout (little endian):
//! `b"TDFR" | out_us: i64 | len: u32 | crc32(payload): u32 | payload`.
//! A torn or corrupt tail ends reading; everything before it is kept.
//! Own format because a record must be self-checking and the payloads are
//! JPEG/PNG/WebP mixed, which no single container track carries.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

const FILE_MAGIC: &[u8; 8] = b"TDSPOOL1";
const RECORD_MAGIC: &[u8; 4] = b"TDFR";
/// Records larger than this are corrupt by definition.
pub const MAX_RECORD: u32 = 64 * 1024 * 1024;

/// Appends records to a spool file.
pub struct SpoolWriter {
    file: BufWriter<File>,
    bytes: u64,
}

impl SpoolWriter {
    /// Creates (or appends to) the spool at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        if len == 0 {
            w.write_all(FILE_MAGIC)?;
        }
        Ok(Self {
            file: w,
            bytes: len.max(8),
        })
    }

    /// Appends one frame.
    pub fn append(&mut self, out_us: i64, payload: &[u8]) -> io::Result<()> {
        let mut head = [0u8; 20];
        head[0..4].copy_from_slice(RECORD_MAGIC);
        head[4..12].copy_from_slice(&out_us.to_le_bytes());
        head[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[16..20].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.file.write_all(&head)?;
        self.file.write_all(payload)?;
        self.bytes += 20 + payload.len() as u64;
        Ok(())
    }

    /// Flushes and syncs the data to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Bytes in the spool.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// No records yet.
    pub fn is_empty(&self) -> bool {
        self.bytes <= 8
    }
}

/// One spooled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Output timestamp.
    pub out_us: i64,
    /// The frame as received.
    pub payload: Vec<u8>,
}

/// Reads records until the end or the first damaged one.
pub struct SpoolReader<R> {
    input: R,
    /// Set when reading stopped at a damaged or torn record.
    pub damaged: bool,
}

impl SpoolReader<BufReader<File>> {
    /// Opens a spool file; errors when it is not a spool.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> SpoolReader<R> {
    /// Reads from any byte source (for tests and fuzzing).
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != FILE_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a tapedeck spool",
            ));
        }
        Ok(Self {
            input,
            damaged: false,
        })
    }
}

impl<R: Read> Iterator for SpoolReader<R> {
    type Item = SpoolRecord;
    fn next(&mut self) -> Option<SpoolRecord> {
        if self.damaged {
            return None;
        }
        let mut head = [0u8; 20];
        match read_full(&mut self.input, &mut head) {
            Ok(0) => return None,
            Ok(20) => {}
            _ => {
                self.damaged = true;
                return None;
            }
        }
        let len = u32::from_le_bytes(head[12..16].try_into().ok()?);
        if &head[0..4] != RECORD_MAGIC || len > MAX_RECORD {
            self.damaged = true;
            return None;
        }
        let mut payload = vec![0u8; len as usize];
        if read_full(&mut self.input, &mut payload).ok() != Some(len as usize)
            || crc32fast::hash(&payload).to_le_bytes() != head[16..20]
        {
            self.damaged = true;
            return None;
        }
        Some(SpoolRecord {
            out_us: i64::from_le_bytes(head[4..12].try_into().ok()?),
            payload,
        })
    }
}

/// How a [`Tail`] ends: when its writer says the spool is whole, or when
/// its reader is no longer wanted.
#[derive(Debug, Default)]
pub struct TailEnd {
    whole: std::sync::atomic::AtomicBool,
    cancelled: std::sync::atomic::AtomicBool,
}

impl TailEnd {
    /// The writer synced its last record: the reader ends at the file's end.
    pub fn whole(&self) {
        self.whole.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The reader stops at its next read.
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A spool file read while it is still written: at its end a read waits
/// for more until [`TailEnd::whole`] (then it ends) or
/// [`TailEnd::cancel`] (then it fails). Wrapped in a [`SpoolReader`], a
/// record torn by a write in progress is waited for, not taken as damage.
pub struct Tail {
    file: File,
    end: std::sync::Arc<TailEnd>,
}

impl Tail {
    /// Follows the spool at `path`.
    pub fn open(path: &Path, end: std::sync::Arc<TailEnd>) -> io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            end,
        })
    }
}

impl Read for Tail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::sync::atomic::Ordering;
        loop {
            // Whole is read before the file: a read after it sees every byte.
            let whole = self.end.whole.load(Ordering::Acquire);
            let n = self.file.read(buf)?;
            if n > 0 || whole || buf.is_empty() {
                return Ok(n);
            }
            if self.end.cancelled.load(Ordering::Acquire) {
                return Err(io::Error::other("no longer wanted"));
            }
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
    }
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn torn_tail_keeps_everything_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut w = SpoolWriter::open(&path).unwrap();
        for i in 0..5 {
            w.append(i * 1000, &vec![i as u8; 100 + i as usize])
                .unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 7]).unwrap();
        let mut r = SpoolReader::open(&path).unwrap();
        let got: Vec<_> = r.by_ref().collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].out_us, 3000);
        assert!(r.damaged);
        // Appending after reopening continues the same file.
        let mut w = SpoolWriter::open(&path).unwrap();
        assert!(!w.is_empty());
        w.sync().unwrap();
    }

    #[test]
    fn a_tail_reads_records_as_they_are_written_and_ends_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let mut w = SpoolWriter::open(&path).unwrap();
        w.sync().unwrap();
        let end = std::sync::Arc::new(TailEnd::default());
        let (e, p) = (end.clone(), path.clone());
        let reader = std::thread::spawn(move || {
            let mut r = SpoolReader::new(Tail::open(&p, e).unwrap()).unwrap();
            let got: Vec<i64> = r.by_ref().map(|rec| rec.out_us).collect();
            (got, r.damaged)
        });
        for i in 0..20 {
            w.append(i * 1000, &vec![i as u8; 5000]).unwrap();
            // Records reach the file in bursts: the reader waits between.
            if i % 3 == 0 {
                w.sync().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        }
        w.sync().unwrap();
        end.whole();
        let (got, damaged) = reader.join().unwrap();
        assert_eq!(got, (0..20).map(|i| i * 1000).collect::<Vec<_>>());
        assert!(!damaged);
        // Cancelled, a reader waiting at the end stops.
        let end = std::sync::Arc::new(TailEnd::default());
        let mut r = SpoolReader::new(Tail::open(&path, end.clone()).unwrap()).unwrap();
        assert_eq!(r.by_ref().take(20).count(), 20);
        end.cancel();
        assert!(r.next().is_none());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if bytes.len() > 8 { bytes[..8].copy_from_slice(FILE_MAGIC); }
            if let Ok(r) = SpoolReader::new(&bytes[..]) { let _ = r.count(); }
        }
    }
}
