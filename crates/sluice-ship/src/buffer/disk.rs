//! The disk buffer's files: append-only segments of checksummed frames and a
//! durable read position.
//!
//! Layout under the sink's buffer directory:
//! * `<id:020>.seg`: frames as `[magic "SLBF"][body length u32][crc32 u32][body]`;
//!   a run always starts a new segment, so a torn tail left by a crash is
//!   never appended to;
//! * `position.json`: the segment and offset of the first frame not yet
//!   delivered, replaced atomically (write + rename) after every delivered
//!   request;
//! * `quarantine/`: bytes that failed their checksum or framing, one file
//!   per damaged region, named after its segment and offset.
//!
//! A damaged region never blocks the queue: the reader scans forward to the
//! next frame whose header and checksum are valid (vector#18336 and #26198
//! stalled forever on one bad record).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frame::Frame;

const MAGIC: &[u8; 4] = b"SLBF";
const HEADER: u64 = 12;
/// A segment is closed once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;

/// Where the reader is: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// One frame read, and where reading continues after it.
#[derive(Debug)]
pub(crate) struct ReadFrame {
    pub frame: Frame,
    /// Bytes on disk this read consumed (the frame, and any damaged bytes
    /// skipped before it).
    pub consumed: u64,
    pub after: Position,
}

/// A damaged region moved to quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quarantined {
    pub path: PathBuf,
    pub bytes: u64,
}

struct SegmentWriter {
    id: u64,
    file: File,
    len: u64,
}

/// See the module docs.
pub(crate) struct DiskQueue {
    dir: PathBuf,
    /// Segment ids on disk, oldest first (the writer's is the last).
    segments: VecDeque<u64>,
    writer: Option<SegmentWriter>,
    /// Next byte to read (ahead of `durable` while a request is in flight).
    read: Position,
    durable: Position,
    /// Bytes on disk not yet delivered.
    pending: u64,
    /// Damaged regions found since the last call to `take_quarantined`.
    quarantined: Vec<Quarantined>,
    scratch: Vec<u8>,
    dirty: bool,
    /// An append found the volume full: once everything is delivered, the
    /// segments are freed at once instead of when they fill up.
    volume_was_full: bool,
}

impl DiskQueue {
    /// Open (or create) the queue in `dir`.
    pub fn open(dir: &Path) -> io::Result<DiskQueue> {
        sluice_state::create_dir(dir)?;
        let mut segments: Vec<u64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                segments.push(id);
            }
        }
        segments.sort_unstable();
        let saved: Option<Position> = fs::read(dir.join("position.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let first = segments.first().copied().unwrap_or(0);
        let durable = match saved {
            Some(p) if segments.contains(&p.segment) => p,
            // The saved segment was finished and deleted: start at the next.
            Some(p) => Position {
                segment: segments
                    .iter()
                    .copied()
                    .find(|&s| s > p.segment)
                    .unwrap_or(p.segment + 1),
                offset: 0,
            },
            None => Position {
                segment: first,
                offset: 0,
            },
        };
        let mut pending = 0;
        let mut kept = VecDeque::new();
        for id in segments {
            if id < durable.segment {
                fs::remove_file(segment_path(dir, id))?;
                continue;
            }
            let len = fs::metadata(segment_path(dir, id))?.len();
            pending += if id == durable.segment {
                len.saturating_sub(durable.offset)
            } else {
                len
            };
            kept.push_back(id);
        }
        Ok(DiskQueue {
            dir: dir.to_path_buf(),
            segments: kept,
            writer: None,
            read: durable,
            durable,
            pending,
            quarantined: Vec::new(),
            scratch: Vec::new(),
            dirty: false,
            volume_was_full: false,
        })
    }

    /// Bytes on disk not yet delivered.
    pub fn pending_bytes(&self) -> u64 {
        self.pending
    }

    /// Append a frame; returns the bytes it takes on disk. A process killed
    /// after this returns loses nothing (the bytes are in the kernel).
    pub fn append(&mut self, frame: &Frame) -> io::Result<u64> {
        if self.writer.as_ref().is_none_or(|w| w.len >= SEGMENT_BYTES) {
            self.roll()?;
        }
        let w = self.writer.as_mut().expect("rolled above");
        self.scratch.clear();
        self.scratch.extend_from_slice(MAGIC);
        self.scratch.extend_from_slice(&[0; 8]);
        frame.write_body(&mut self.scratch);
        let body_len = self.scratch.len() as u64 - HEADER;
        let body_len = u32::try_from(body_len).map_err(|_| io::Error::other("frame over 4 GiB"))?;
        let crc = crc32fast::hash(&self.scratch[HEADER as usize..]);
        self.scratch[4..8].copy_from_slice(&body_len.to_le_bytes());
        self.scratch[8..12].copy_from_slice(&crc.to_le_bytes());
        if let Err(e) = w.file.write_all(&self.scratch) {
            // A full volume may have taken part of the frame: cut it off,
            // so the retried frame follows whole frames, not a torn one.
            let _ = w.file.set_len(w.len);
            self.volume_was_full |= is_volume_full(&e);
            return Err(e);
        }
        w.len += self.scratch.len() as u64;
        self.pending += self.scratch.len() as u64;
        self.dirty = true;
        Ok(self.scratch.len() as u64)
    }

    fn roll(&mut self) -> io::Result<()> {
        if let Some(old) = self.writer.take() {
            old.file.sync_data()?;
        }
        let id = self.segments.back().map_or(self.read.segment, |&s| s + 1);
        let file = sluice_state::open_options()
            .create_new(true)
            .append(true)
            .open(segment_path(&self.dir, id))?;
        // The new name must survive a power loss too.
        File::open(&self.dir)?.sync_all()?;
        self.segments.push_back(id);
        self.writer = Some(SegmentWriter { id, file, len: 0 });
        Ok(())
    }

    /// fsync what was appended since the last call.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            if let Some(w) = &self.writer {
                w.file.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    fn segment_len(&self, id: u64) -> io::Result<u64> {
        match &self.writer {
            Some(w) if w.id == id => Ok(w.len),
            _ => Ok(fs::metadata(segment_path(&self.dir, id))?.len()),
        }
    }

    /// The next frame after the read position, or `None` when everything
    /// written has been read.
    pub fn read_next(&mut self) -> io::Result<Option<ReadFrame>> {
        let mut consumed = 0;
        loop {
            let Some(seg_index) = self.segments.iter().position(|&s| s == self.read.segment) else {
                // Not created yet (a fresh queue): nothing to read.
                return Ok(None);
            };
            let len = self.segment_len(self.read.segment)?;
            if self.read.offset >= len {
                let is_writer = self.writer.as_ref().is_some_and(|w| w.id == self.read.segment);
                match self.segments.get(seg_index + 1) {
                    Some(&next) if !is_writer => {
                        self.read = Position {
                            segment: next,
                            offset: 0,
                        };
                        continue;
                    }
                    _ => return Ok(None),
                }
            }
            let file = File::open(segment_path(&self.dir, self.read.segment))?;
            match read_frame_at(&file, self.read.offset, len)? {
                Some((frame, size)) => {
                    consumed += size;
                    self.read.offset += size;
                    return Ok(Some(ReadFrame {
                        frame,
                        consumed,
                        after: self.read,
                    }));
                }
                None => {
                    let skip = self.quarantine(&file, len)?;
                    consumed += skip;
                    self.read.offset += skip;
                }
            }
        }
    }

    /// Move the damaged bytes at the read position, up to the next valid
    /// frame (or the segment's end), to quarantine; returns how many.
    fn quarantine(&mut self, file: &File, len: u64) -> io::Result<u64> {
        let start = self.read.offset;
        let mut rest = vec![0; (len - start) as usize];
        file.read_exact_at(&mut rest, start)?;
        let mut next = rest.len();
        for candidate in memchr::memmem::find_iter(&rest[1..], MAGIC).map(|i| i + 1) {
            if parse_frame(&rest[candidate..]).is_some() {
                next = candidate;
                break;
            }
        }
        let qdir = self.dir.join("quarantine");
        sluice_state::create_dir(&qdir)?;
        let path = qdir.join(format!("{:020}-{start}.bin", self.read.segment));
        sluice_state::write_file(&path, &rest[..next])?;
        tracing::warn!(path = %path.display(), bytes = next, "damaged disk buffer region quarantined");
        self.quarantined.push(Quarantined {
            path,
            bytes: next as u64,
        });
        Ok(next as u64)
    }

    /// Damaged regions found since the last call.
    pub fn take_quarantined(&mut self) -> Vec<Quarantined> {
        std::mem::take(&mut self.quarantined)
    }

    /// Everything before `to` was delivered: persist it, delete finished
    /// segments, and release `consumed` bytes.
    pub fn commit(&mut self, to: Position, consumed: u64) -> io::Result<()> {
        self.pending = self.pending.saturating_sub(consumed);
        self.durable = to;
        if self.pending == 0 && self.read == to && self.volume_was_full {
            if let Some(&last) = self.segments.back() {
                self.volume_was_full = false;
                // Everything written was delivered: free every segment now
                // (on a full volume, the room the next frames wait for) and
                // write the next frame in a new one. Deleting first is safe:
                // a crash before the position is saved finds no segment at
                // the saved position and starts at the next.
                self.writer = None;
                for id in self.segments.drain(..) {
                    fs::remove_file(segment_path(&self.dir, id))?;
                }
                let next = Position {
                    segment: last + 1,
                    offset: 0,
                };
                self.durable = next;
                self.read = next;
                return self.save_position(next);
            }
        }
        self.save_position(to)?;
        while let Some(&oldest) = self.segments.front() {
            let is_writer = self.writer.as_ref().is_some_and(|w| w.id == oldest);
            if oldest >= to.segment || is_writer {
                break;
            }
            fs::remove_file(segment_path(&self.dir, oldest))?;
            self.segments.pop_front();
        }
        Ok(())
    }

    /// Persist the read position. It only bounds what a crash re-sends, so
    /// a volume too full for it is no error: the next commit tries again.
    fn save_position(&self, to: Position) -> io::Result<()> {
        let tmp = self.dir.join("position.json.tmp");
        let saved = sluice_state::write_file(&tmp, &serde_json::to_vec(&to).expect("a position serializes"))
            .and_then(|()| fs::rename(&tmp, self.dir.join("position.json")));
        match saved {
            Err(e) if is_volume_full(&e) => {
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            other => other,
        }
    }

    /// At a clean end: when everything was delivered, remove the segments
    /// and the position, so an idle sink leaves an empty directory.
    pub fn close_if_drained(&mut self) -> io::Result<bool> {
        if self.pending > 0 || self.read != self.durable {
            return Ok(false);
        }
        self.writer = None;
        for id in self.segments.drain(..) {
            fs::remove_file(segment_path(&self.dir, id))?;
        }
        match fs::remove_file(self.dir.join("position.json")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(true)
    }

    /// Forget reads since the last commit: they will be read again (a
    /// request that could not be delivered before shutdown).
    pub fn rewind(&mut self) {
        self.read = self.durable;
    }
}

/// Whether `e` says the volume (or the user's quota on it) is full.
pub(crate) fn is_volume_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The frame at `offset`, with its size on disk; `None` if the bytes there
/// are not a valid frame.
fn read_frame_at(file: &File, offset: u64, len: u64) -> io::Result<Option<(Frame, u64)>> {
    if len - offset < HEADER {
        return Ok(None);
    }
    let mut header = [0u8; HEADER as usize];
    file.read_exact_at(&mut header, offset)?;
    let body_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as u64;
    if &header[..4] != MAGIC || body_len > len - offset - HEADER {
        return Ok(None);
    }
    let mut record = vec![0u8; (HEADER + body_len) as usize];
    file.read_exact_at(&mut record, offset)?;
    Ok(parse_frame(&record).map(|f| (f, HEADER + body_len)))
}

/// A frame from bytes starting with its header; `None` unless the magic,
/// length, checksum and body all check out.
fn parse_frame(bytes: &[u8]) -> Option<Frame> {
    if bytes.len() < HEADER as usize || &bytes[..4] != MAGIC {
        return None;
    }
    let body_len = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let body = bytes.get(HEADER as usize..HEADER as usize + body_len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Frame::read_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(records: &[&str]) -> Frame {
        let mut f = Frame::default();
        for r in records {
            f.bytes.extend_from_slice(r.as_bytes());
            f.finish_record();
        }
        f
    }

    fn drain(q: &mut DiskQueue) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(r) = q.read_next().unwrap() {
            q.commit(r.after, r.consumed).unwrap();
            out.push(r.frame);
        }
        out
    }

    #[test]
    fn frames_survive_a_reopen_and_delivered_ones_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path()).unwrap();
        let (a, b, c) = (frame(&["a1", "a2"]), frame(&["b1"]), frame(&["c1"]));
        for f in [&a, &b, &c] {
            q.append(f).unwrap();
        }
        let first = q.read_next().unwrap().unwrap();
        assert_eq!(first.frame, a);
        q.commit(first.after, first.consumed).unwrap();
        // Read but not committed: comes back after a restart.
        assert_eq!(q.read_next().unwrap().unwrap().frame, b);
        drop(q);
        let mut q = DiskQueue::open(dir.path()).unwrap();
        assert_eq!(drain(&mut q), vec![b, c]);
        assert_eq!(q.pending_bytes(), 0);
        let d = frame(&["d1"]);
        q.append(&d).unwrap();
        assert_eq!(drain(&mut q), vec![d]);
        // Only the writer's segment is left, and a drained queue cleans up.
        let files = |p: &Path| fs::read_dir(p).unwrap().count();
        assert_eq!(files(dir.path()), 2, "the writer's segment and the position");
        assert!(q.close_if_drained().unwrap());
        assert_eq!(files(dir.path()), 0);
    }

    #[test]
    fn a_corrupt_frame_is_quarantined_and_the_rest_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path()).unwrap();
        let (a, b, c) = (frame(&["aaaa"]), frame(&["bbbb"]), frame(&["cccc"]));
        let size_a = q.append(&a).unwrap();
        q.append(&b).unwrap();
        q.append(&c).unwrap();
        drop(q);
        // Flip a byte inside b's body.
        let seg = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).unwrap();
        let pos = size_a as usize + HEADER as usize + 10;
        bytes[pos] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();

        let mut q = DiskQueue::open(dir.path()).unwrap();
        assert_eq!(drain(&mut q), vec![a, c]);
        let quarantined = q.take_quarantined();
        assert_eq!(quarantined.len(), 1);
        let saved = fs::read(&quarantined[0].path).unwrap();
        assert_eq!(saved.len() as u64, quarantined[0].bytes);
        assert_eq!(&saved[..4], MAGIC);
        assert_eq!(q.pending_bytes(), 0);
    }

    #[test]
    fn a_torn_tail_is_quarantined_and_the_next_run_writes_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path()).unwrap();
        let a = frame(&["whole"]);
        q.append(&a).unwrap();
        drop(q);
        let seg = segment_path(dir.path(), 0);
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"SLBF\x40\x00\x00\x00partial").unwrap();

        let mut q = DiskQueue::open(dir.path()).unwrap();
        let b = frame(&["after restart"]);
        q.append(&b).unwrap();
        assert_eq!(drain(&mut q), vec![a, b]);
        assert_eq!(q.take_quarantined()[0].bytes, 15);
    }
}
