//! One tailed file: its identity, open handle, read position, the partial
//! runtime line carried between reads, and its decoder. What it decodes goes
//! into a [`BatchBuilder`].

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sluice_config::FileFormat;
use sluice_core::Origin;

use crate::batch_builder::{BatchBuilder, Located};
use crate::checkpoint::{Fingerprint, FINGERPRINT_BYTES, MARK_BYTES};
use crate::decode::{Decoded, FileDecoder, Stream};

/// Device and inode: who a file is, whatever it is called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl FileId {
    /// The identity of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// One tailed file. See the module docs.
pub struct TrackedFile {
    /// Identity.
    pub id: FileId,
    /// The path it was found under.
    pub path: PathBuf,
    file: File,
    /// Content identity (grows to [`FINGERPRINT_BYTES`]).
    pub fingerprint: Fingerprint,
    /// The bytes the fingerprint covers (to recognise a copy of this file
    /// even while the copy is still being written).
    pub head: Vec<u8>,
    /// Bytes consumed from the file (decoded or carried).
    pub read_offset: u64,
    carry: Vec<u8>,
    decoder: FileDecoder,
    origins: [Arc<Origin>; 2],
    /// Per stream, empty lines skipped since its last line.
    blanks: [u16; 2],
    /// Last time a read returned bytes.
    pub last_data: Instant,
    /// Since when the path no longer leads to this file (rotated or deleted).
    pub gone_since: Option<Instant>,
    /// Inside an over-long runtime line whose start was already emitted.
    discarding: bool,
    max_merged: usize,
    /// A file holding this stream's earlier lines (the predecessor of a
    /// rename, the copy of a copytruncate): read only after it is drained,
    /// so lines stay in order across a rotation.
    pub after: Option<FileId>,
    /// A copytruncate copy of this file was found before this file was seen
    /// truncated: it reads nothing more until the truncation shows (its old
    /// bytes past the copy's start are the copy's to deliver), or until the
    /// copy has been quiet for `rotate_wait` (a copy without a truncation).
    pub copied_away: bool,
    /// Opened at an offset past its end: a copytruncate copy still being
    /// written (its original was read further than the copy has reached).
    /// Its size below the read offset is the copy catching up, not a
    /// truncation. Holds the size last seen and when it last changed.
    pub filling: Option<(u64, Instant)>,
    /// The fingerprint of the bytes just before `read_offset`, checked
    /// whenever the file grows: size alone cannot tell a file that was
    /// truncated and rewritten past the offset.
    mark: Option<Fingerprint>,
    /// Set when a read found the bytes before its offset changed: the file
    /// was truncated and regrew. Holds its first bytes and safe offset
    /// from before (a copytruncate copy continues from there); reading
    /// restarted at 0.
    pub regrown: Option<(Vec<u8>, u64)>,
}

impl TrackedFile {
    /// Start tracking an opened file at `offset`.
    pub fn new(
        id: FileId,
        path: PathBuf,
        file: File,
        offset: u64,
        format: FileFormat,
        max_merged: usize,
        origins: [Arc<Origin>; 2],
    ) -> std::io::Result<TrackedFile> {
        let head = head_of(&file)?;
        let mark = mark_before(&file, offset);
        Ok(TrackedFile {
            id,
            path,
            file,
            fingerprint: Fingerprint::of(&head),
            head,
            read_offset: offset,
            carry: Vec::new(),
            decoder: FileDecoder::new(format, max_merged),
            origins,
            blanks: [0; 2],
            last_data: Instant::now(),
            gone_since: None,
            discarding: false,
            max_merged,
            after: None,
            copied_away: false,
            filling: None,
            mark,
            regrown: None,
        })
    }

    /// The offset a checkpoint may hold for this file now: before any piece
    /// still waiting to be joined and any partial runtime line.
    pub fn safe_offset(&self) -> u64 {
        let framed = self.read_offset - self.carry.len() as u64;
        self.decoder.oldest_pending().map_or(framed, |p| p.min(framed))
    }

    /// Current size of the open file.
    pub fn size(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Read up to `max` new bytes, decode complete lines into `out`. Returns
    /// the number of bytes read.
    ///
    /// The bytes are read straight into the batch's data and the events
    /// point into them (past the runtime's prefix): a CRI line's content is
    /// never copied. Only joined partials and Docker's unescaped strings are
    /// new bytes, appended after.
    pub fn read_into(&mut self, out: &mut BatchBuilder, max: usize, max_line: usize) -> std::io::Result<usize> {
        // A regular file's size says how much there is to read: an idle
        // file costs one fstat, not a read into a cleared buffer of `max`
        // bytes (1,000 idle files polled ten times a second cleared
        // gigabytes a second, 9% of a core). A shrunk file is for the
        // rotation check to judge.
        let meta = self.file.metadata()?;
        let max = if meta.is_file() {
            match meta.len().saturating_sub(self.read_offset) {
                0 => return Ok(0),
                available => max.min(usize::try_from(available).unwrap_or(usize::MAX)),
            }
        } else {
            max
        };
        let region = out.data.len();
        out.data.extend_from_slice(&self.carry);
        let carried = self.carry.len();
        let at = region + carried;
        out.data.resize(at + max, 0);
        // One read call: a copytruncate between two reads of one round would
        // splice the new file's bytes onto the old one's offsets.
        let n = loop {
            match self.file.read(&mut out.data[at..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.data.truncate(region);
                    return Err(e);
                }
            }
        };
        out.data.truncate(at + n);
        if n == 0 {
            out.data.truncate(region);
            return Ok(0);
        }
        if let Some(m) = self.mark {
            if !matches_before(&self.file, self.read_offset, m) {
                // Truncated and rewritten past our offset: what was just
                // read is the middle of new content. Start it over.
                out.data.truncate(region);
                let before = (self.head.clone(), self.safe_offset());
                self.restart_after_truncation()?;
                self.regrown = Some(before);
                return Ok(0);
            }
        }
        self.last_data = Instant::now();
        let base = self.read_offset - carried as u64;
        self.read_offset += n as u64;
        let read = &out.data[region..at + n];
        self.mark = Some(Fingerprint::of(&read[read.len().saturating_sub(MARK_BYTES as usize)..]));
        // Complete runtime lines end at the last newline; the rest is carried
        // to the next read (or, when over-long, cut here).
        let end = out.data.len();
        let complete = memchr::memrchr(b'\n', &out.data[region..end]).map_or(region, |i| region + i + 1);
        self.carry.clear();
        let mut over_long = None;
        if self.discarding && complete == region {
            // Still inside an over-long line: drop what was read of it.
        } else if end - complete > max_line {
            // A runtime line this long is not CRI or Docker (they split at
            // 16 KiB): keep its start as a raw, truncated line.
            over_long = Some(out.data[complete..complete + max_line].to_vec());
        } else {
            self.carry.extend_from_slice(&out.data[complete..end]);
        }
        out.data.truncate(complete);
        let mut start = region;
        while start < complete {
            let nl =
                start + memchr::memchr(b'\n', &out.data[start..complete]).expect("complete lines end in a newline");
            if std::mem::take(&mut self.discarding) {
                start = nl + 1;
                continue;
            }
            // Decoded while `data` is borrowed; placed once the borrow ends.
            let decoded = {
                let data = &out.data;
                self.decoder
                    .decode(&data[start..nl], base + (start - region) as u64)
                    .map(|d| {
                        let content = Located::of(d.content, data);
                        let ts = d.runtime_ts.map(|t| Located::of(t, data));
                        (content, ts, d.stream, d.truncated, d.malformed)
                    })
            };
            if let Some((content, ts, stream, truncated, malformed)) = decoded {
                let s = stream as usize;
                out.push_located(content, ts, truncated, malformed, &self.origins[s], &mut self.blanks[s]);
            }
            start = nl + 1;
        }
        if let Some(head) = over_long {
            let d = Decoded {
                content: std::borrow::Cow::Owned(head),
                stream: Stream::Stdout,
                runtime_ts: None,
                truncated: true,
                malformed: false,
            };
            out.push(&d, &self.origins[0], &mut self.blanks[0]);
            self.discarding = true;
        }
        if self.head.len() < FINGERPRINT_BYTES && self.read_offset > self.head.len() as u64 {
            self.head = head_of(&self.file)?;
            self.fingerprint = Fingerprint::of(&self.head);
        }
        Ok(n)
    }

    /// The file shrank below what was read (copytruncate): start over at 0.
    pub fn restart_after_truncation(&mut self) -> std::io::Result<()> {
        self.read_offset = 0;
        self.mark = None;
        self.carry.clear();
        self.discarding = false;
        self.decoder = FileDecoder::new(self.decoder.format(), self.max_merged);
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.head = head_of(&self.file)?;
        self.fingerprint = Fingerprint::of(&self.head);
        Ok(())
    }

    /// Continue at `offset` (at or before the read position's file end): a
    /// copy that stopped short of where its original was read to has
    /// nothing of its own to deliver.
    pub fn skip_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.read_offset = offset;
        self.mark = mark_before(&self.file, offset);
        self.carry.clear();
        self.seek_to_offset()
    }

    /// The file is gone for good: pieces still waiting become lines.
    pub fn drain_into(&mut self, out: &mut BatchBuilder) {
        for d in self.decoder.drain() {
            let s = d.stream as usize;
            out.push(&d, &self.origins[s], &mut self.blanks[s]);
        }
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            if let Some(d) = self.decoder.decode(&carry, self.read_offset - carry.len() as u64) {
                let s = d.stream as usize;
                out.push(&d, &self.origins[s], &mut self.blanks[s]);
            }
        }
    }

    /// The mark of the bytes before `offset` in this file.
    pub fn mark_at(&self, offset: u64) -> Option<Fingerprint> {
        mark_before(&self.file, offset)
    }

    /// Whether a partial line waits for its end.
    pub fn has_pending(&self) -> bool {
        self.decoder.oldest_pending().is_some()
    }

    /// Emit the partial lines that waited longer than `timeout` for their
    /// end; returns how many.
    pub fn flush_stale_partials(&mut self, out: &mut BatchBuilder, timeout: std::time::Duration) -> u64 {
        let Some(cutoff) = Instant::now().checked_sub(timeout) else {
            return 0;
        };
        let stale = self.decoder.drain_older_than(cutoff);
        for d in &stale {
            let s = d.stream as usize;
            out.push(d, &self.origins[s], &mut self.blanks[s]);
        }
        stale.len() as u64
    }

    /// Position the file at `read_offset` (after opening at a checkpoint).
    pub fn seek_to_offset(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::Start(self.read_offset))?;
        Ok(())
    }

    /// Whether `path` still leads to this file.
    pub fn path_leads_here(&self, path: &Path) -> bool {
        std::fs::metadata(path)
            .map(|m| FileId::of(&m) == self.id)
            .unwrap_or(false)
    }
}

/// The fingerprint of the up to [`MARK_BYTES`] bytes before `offset`.
pub fn mark_before(file: &File, offset: u64) -> Option<Fingerprint> {
    let len = offset.min(MARK_BYTES) as usize;
    let bytes = read_exact_at(file, offset - len as u64, len)?;
    Some(Fingerprint::of(&bytes))
}

/// Whether the bytes before `offset` still have fingerprint `mark`.
pub fn matches_before(file: &File, offset: u64, mark: Fingerprint) -> bool {
    let len = u64::from(mark.len);
    offset >= len
        && read_exact_at(file, offset - len, len as usize).is_some_and(|bytes| Fingerprint::of(&bytes) == mark)
}

fn read_exact_at(file: &File, at: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match file.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => return None,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    Some(buf)
}

/// An open file's first bytes (up to [`FINGERPRINT_BYTES`]).
pub fn head_of(file: &File) -> std::io::Result<Vec<u8>> {
    let mut head = [0u8; FINGERPRINT_BYTES];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(head[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> [Arc<Origin>; 2] {
        let o = |k| {
            Arc::new(Origin {
                stream_key: k,
                ..Origin::default()
            })
        };
        [o(0), o(1)]
    }

    #[test]
    fn a_file_read_to_its_end_costs_no_read_buffer() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2026-11-25T00:00:00.1Z stdout F {\"a\":1}\n").unwrap();
        let file = File::open(&path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let mut t = TrackedFile::new(id, path.clone(), file, 0, FileFormat::Cri, 1 << 20, origins()).unwrap();
        let mut b = BatchBuilder::default();
        // A 256 KiB read asks only for the 40 bytes there are.
        assert_eq!(t.read_into(&mut b, 256 << 10, 1 << 20).unwrap(), 40);
        assert!(b.data.capacity() < 4096, "{}", b.data.capacity());
        // Nothing new: nothing read, and no room made for it.
        let before = b.data.capacity();
        assert_eq!(t.read_into(&mut b, 256 << 10, 1 << 20).unwrap(), 0);
        assert_eq!(b.data.capacity(), before);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2026-11-25T00:00:00.2Z stdout F {\"b\":2}\n")
            .unwrap();
        assert_eq!(t.read_into(&mut b, 256 << 10, 1 << 20).unwrap(), 40);
        assert_eq!(b.events_len(), 2);
    }

    #[test]
    fn lines_read_in_place_across_tiny_reads_with_partials_and_an_over_long_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let text = format!(
            "{}{}{}{}{}\n{}",
            "2026-11-25T00:00:00.1Z stdout F {\"a\":1}\n",
            "2026-11-25T00:00:00.2Z stderr P part1-\n",
            "2026-11-25T00:00:00.3Z stdout F second\n",
            "2026-11-25T00:00:00.4Z stderr F part2\n",
            "x".repeat(100),
            "2026-11-25T00:00:00.5Z stdout F after\n",
        );
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        let id = FileId::of(&file.metadata().unwrap());
        let mut t = TrackedFile::new(id, path, file, 0, FileFormat::Cri, 1 << 20, origins()).unwrap();
        let mut b = BatchBuilder::default();
        let mut total = 0;
        // 7-byte reads: every line spans reads; lines over 40 bytes are cut.
        loop {
            let n = t.read_into(&mut b, 7, 40).unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, text.len());
        assert_eq!(t.safe_offset(), text.len() as u64);
        let (batch, _) = b.finish();
        let got: Vec<(String, bool, String)> = batch
            .events()
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(batch.line(e)).into_owned(),
                    e.is_truncated(),
                    String::from_utf8_lossy(e.extra.of(batch.arena())).into_owned(),
                )
            })
            .collect();
        let ts = |t: &str| format!("\"runtime_ts\":\"2026-11-25T00:00:00.{t}Z\"");
        assert_eq!(
            got,
            vec![
                ("{\"a\":1}".to_string(), false, ts("1")),
                ("second".to_string(), false, ts("3")),
                ("part1-part2".to_string(), false, ts("4")),
                ("x".repeat(40), true, String::new()),
                ("after".to_string(), false, ts("5")),
            ]
        );
        assert_eq!(batch.events()[2].origin, 1, "the joined line is stderr's");
    }
}
