//! The spill: where records go when the writer's in-memory queue is full, so a slow or
//! unreachable database never stops cards. An append-only run of segment files on local
//! disk, bounded in bytes, drained by the writer once the database takes writes again and
//! read first after a restart.
//!
//! Format: files `spill-{seq:016}.log` in the spill directory, oldest first. Each record is
//! `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload: the record as JSON]`.
//! A record is appended with one `write` while the lock is held, so within one process a
//! reader never sees half a record; a crash (or power loss) can leave a torn record at the
//! end of a segment, which the length or the checksum gives away. The records before it are
//! written; the segment is then kept as `spill-….torn` instead of deleted, so nothing is
//! removed unseen. Records read but not yet committed when the process dies are read again
//! on the next start: writes are idempotent (see `sql.rs`).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Record;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
/// Length and checksum before each payload.
const HEADER: u64 = 8;
/// Largest segment file; a drained segment is deleted, so disk use follows the backlog.
const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// One segment file.
#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Bytes of whole records in the file (a torn tail, once found, is not counted).
    len: u64,
    /// A torn or corrupt record was found at `len`.
    torn: bool,
}

/// Records read from the oldest segment, and where the next read starts once they are
/// written ([`Spill::consume`]).
#[derive(Debug)]
pub(super) struct Chunk {
    pub records: Vec<Record>,
    seq: u64,
    end: u64,
}

/// The spill directory's segments and the position of the oldest unwritten record.
#[derive(Debug)]
pub(super) struct Spill {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first. The last one is appended to while `file` is open.
    segments: VecDeque<Segment>,
    /// Append handle of the newest segment (segments of an earlier run are never appended
    /// to: their tail may be torn).
    file: Option<File>,
    next_seq: u64,
    /// Bytes of the oldest segment already written to the database.
    read_offset: u64,
}

impl Spill {
    /// Opens (creating) the directory and takes over the segments an earlier run left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spill> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_prefix("spill-"))
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push(Segment {
                seq,
                len: entry.metadata()?.len(),
                torn: false,
            });
        }
        segments.sort_by_key(|s| s.seq);
        let next_seq = segments.last().map_or(0, |s| s.seq + 1);
        Ok(Spill {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 4).clamp(4096, MAX_SEGMENT_BYTES),
            segments: segments.into(),
            file: None,
            next_seq,
            read_offset: 0,
        })
    }

    fn path(&self, seq: u64, ext: &str) -> PathBuf {
        self.dir.join(format!("spill-{seq:016}.{ext}"))
    }

    /// Bytes spilled and not yet written to the database.
    pub fn pending_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() - self.read_offset
    }

    /// Nothing waits in the spill: new records may use the in-memory queue again.
    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    /// Appends a record; `Ok(false)` when it does not fit in `max_bytes` (a record always
    /// fits in an empty spill, so an oversized one cannot wait forever).
    pub fn append(&mut self, record: &Record) -> io::Result<bool> {
        let payload = serde_json::to_vec(record).map_err(io::Error::other)?;
        let size = HEADER + payload.len() as u64;
        let pending = self.pending_bytes();
        if pending > 0 && pending + size > self.max_bytes {
            return Ok(false);
        }
        let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
        let rotate = match (self.file.is_some(), self.segments.back()) {
            (true, Some(last)) => last.len + size > self.segment_bytes,
            _ => true,
        };
        if rotate {
            let seq = self.next_seq;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(seq, "log"))?;
            self.next_seq += 1;
            self.file = Some(file);
            self.segments.push_back(Segment {
                seq,
                len: 0,
                torn: false,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&CRC.checksum(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let (Some(file), Some(last)) = (self.file.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no spill segment open"));
        };
        match file.write_all(&bytes) {
            Ok(()) => {
                last.len += size;
                Ok(true)
            }
            Err(error) => {
                // A partial write (disk full) would tear the segment: cut it back to its
                // whole records and stop appending to it.
                let _ = file.set_len(last.len);
                self.file = None;
                Err(error)
            }
        }
    }

    /// Reads up to `max` records from the oldest segment, from the first one not yet
    /// written. A torn or corrupt record ends the segment there (logged).
    pub fn read(&mut self, max: usize) -> io::Result<Chunk> {
        self.drop_drained()?;
        let Some(segment) = self.segments.front_mut() else {
            return Ok(Chunk {
                records: Vec::new(),
                seq: 0,
                end: 0,
            });
        };
        let path = self.dir.join(format!("spill-{:016}.log", segment.seq));
        let mut file = io::BufReader::new(File::open(&path)?);
        file.seek(SeekFrom::Start(self.read_offset))?;
        let mut records = Vec::new();
        let mut at = self.read_offset;
        while records.len() < max && at < segment.len {
            match read_record(&mut file, segment.len - at) {
                Ok((record, size)) => {
                    records.push(record);
                    at += size;
                }
                Err(why) => {
                    tracing::warn!(
                        file = %path.display(),
                        offset = at,
                        skipped_bytes = segment.len - at,
                        %why,
                        "torn or corrupt record in the spill; the segment ends here and is kept as .torn"
                    );
                    segment.len = at;
                    segment.torn = true;
                    break;
                }
            }
        }
        Ok(Chunk {
            records,
            seq: segment.seq,
            end: at,
        })
    }

    /// Marks the chunk's records as written and deletes segments fully written.
    pub fn consume(&mut self, chunk: &Chunk) -> io::Result<()> {
        if self.segments.front().is_some_and(|s| s.seq == chunk.seq) {
            self.read_offset = chunk.end;
        }
        self.drop_drained()
    }

    /// Deletes (or, when torn, renames) the oldest segments whose records are all written.
    fn drop_drained(&mut self) -> io::Result<()> {
        while let Some(front) = self.segments.front() {
            if self.read_offset < front.len {
                break;
            }
            let appending = self.segments.len() == 1 && self.file.is_some();
            if appending {
                self.file = None;
            }
            let path = self.path(front.seq, "log");
            if front.torn {
                std::fs::rename(&path, self.path(front.seq, "torn"))?;
            } else {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            self.segments.pop_front();
            self.read_offset = 0;
        }
        Ok(())
    }
}

/// Reads one record with at most `left` bytes remaining in the segment; the error says why
/// the bytes are not a whole, intact record.
fn read_record(file: &mut impl Read, left: u64) -> Result<(Record, u64), String> {
    if left < HEADER {
        return Err(format!("{left} bytes left, less than a record header"));
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if HEADER + len > left {
        return Err(format!(
            "a {len}-byte record with {} bytes left",
            left - HEADER
        ));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload).map_err(|e| e.to_string())?;
    if CRC.checksum(&payload) != crc {
        return Err("checksum mismatch".to_string());
    }
    let record = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
    Ok((record, HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;

    fn ended(call_id: &str) -> Record {
        Record::CallEnded {
            call_id: call_id.to_string(),
            ended_at: Timestamp::parse("2026-11-23T10:00:00.000Z").expect("timestamp"),
        }
    }

    fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        files
    }

    /// Spills three records in one process, then "crashes" by damaging the file the way
    /// `damage` does; the next open reads the records before the damage and keeps the rest.
    fn after_damage(damage: impl FnOnce(&Path, u64)) -> (tempfile::TempDir, Vec<Record>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spill = Spill::open(dir.path(), 1 << 20).expect("open");
        for call in ["c-1", "c-2", "c-3"] {
            assert!(spill.append(&ended(call)).expect("append"));
        }
        let record_len = spill.pending_bytes() / 3;
        drop(spill);
        let files = segment_files(dir.path(), "log");
        assert_eq!(files.len(), 1);
        damage(&files[0], record_len);

        let mut spill = Spill::open(dir.path(), 1 << 20).expect("reopen");
        assert!(!spill.is_empty(), "the spill survives a restart");
        let chunk = spill.read(100).expect("read");
        spill.consume(&chunk).expect("consume");
        assert!(spill.is_empty());
        (dir, chunk.records)
    }

    #[test]
    fn a_torn_tail_after_a_crash_is_detected_and_skipped() {
        let (dir, records) = after_damage(|file, record_len| {
            // The third record was half written when the process died.
            let f = OpenOptions::new().write(true).open(file).expect("open");
            f.set_len(2 * record_len + record_len / 2)
                .expect("truncate");
        });
        assert_eq!(records, vec![ended("c-1"), ended("c-2")]);
        assert!(segment_files(dir.path(), "log").is_empty());
        assert_eq!(
            segment_files(dir.path(), "torn").len(),
            1,
            "kept, not deleted"
        );
    }

    #[test]
    fn a_record_whose_checksum_does_not_match_ends_the_segment() {
        let (_dir, records) = after_damage(|file, record_len| {
            let mut bytes = std::fs::read(file).expect("read");
            let i = (record_len + HEADER + 3) as usize; // in the second record's payload
            bytes[i] ^= 0x20;
            std::fs::write(file, bytes).expect("write");
        });
        assert_eq!(records, vec![ended("c-1")]);
    }

    #[test]
    fn the_spill_is_bounded_and_drained_segments_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = {
            let mut probe = Spill::open(&dir.path().join("probe"), 1 << 20).expect("open");
            probe.append(&ended("c-00")).expect("append");
            probe.pending_bytes()
        };
        // Room for 10 records; segments of 4 KiB (the smallest).
        let mut spill = Spill::open(&dir.path().join("s"), 10 * one).expect("open");
        let mut appended = 0;
        while spill
            .append(&ended(&format!("c-{appended:02}")))
            .expect("append")
        {
            appended += 1;
        }
        assert_eq!(appended, 10);
        assert_eq!(spill.pending_bytes(), 10 * one);
        let mut read = Vec::new();
        while !spill.is_empty() {
            let chunk = spill.read(3).expect("read");
            read.extend(chunk.records.iter().cloned());
            spill.consume(&chunk).expect("consume");
        }
        let expected: Vec<_> = (0..10).map(|i| ended(&format!("c-{i:02}"))).collect();
        assert_eq!(read, expected);
        assert!(segment_files(&dir.path().join("s"), "log").is_empty());
        // Room again once drained.
        assert!(spill.append(&ended("c-10")).expect("append"));
    }
}
