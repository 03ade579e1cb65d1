//! One tailed file: its identity, open handle, read position, the partial
//! runtime line carried between reads, and its decoder; and the builder that
//! gathers decoded lines of many files into one batch.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sluice_config::FileFormat;
use sluice_core::event::FLAG_TRUNCATED;
use sluice_core::{Batch, Event, Origin, Span};

use crate::checkpoint::{Fingerprint, FINGERPRINT_BYTES};
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

/// Gathers decoded lines of many files into one batch.
#[derive(Default)]
pub struct BatchBuilder {
    data: Vec<u8>,
    events: Vec<Event>,
    origins: Vec<Arc<Origin>>,
    /// (event index, span of its runtime timestamp in `data`).
    timestamps: Vec<(usize, Span)>,
    /// Per file, the offset a checkpoint may advance to once this batch is
    /// delivered.
    pub offsets: Vec<(FileId, u64)>,
    /// Lines kept raw because the runtime line did not parse.
    pub malformed: u64,
    /// Lines with no content, skipped.
    pub empty: u64,
}

impl BatchBuilder {
    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Events gathered so far.
    pub fn events_len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing (neither events nor offsets) was gathered.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.offsets.is_empty()
    }

    fn origin_index(&mut self, origin: &Arc<Origin>) -> u32 {
        match self.origins.iter().position(|o| Arc::ptr_eq(o, origin)) {
            Some(i) => i as u32,
            None => {
                self.origins.push(origin.clone());
                (self.origins.len() - 1) as u32
            }
        }
    }

    fn push(&mut self, d: &Decoded<'_>, origin: &Arc<Origin>) {
        if d.malformed {
            self.malformed += 1;
        }
        if d.content.is_empty() {
            self.empty += 1;
            return;
        }
        let start = self.data.len();
        self.data.extend_from_slice(&d.content);
        let flags = if d.truncated { FLAG_TRUNCATED } else { 0 };
        let origin = self.origin_index(origin);
        self.events
            .push(Event::unparsed(Span::new(start, d.content.len()), flags, origin));
        self.data.push(b'\n');
        if let Some(ts) = &d.runtime_ts {
            // Only timestamp characters: it is written into JSON unescaped.
            if ts.iter().all(|b| b.is_ascii_alphanumeric() || b":.+-".contains(b)) {
                let at = self.data.len();
                self.data.extend_from_slice(ts);
                self.timestamps.push((self.events.len() - 1, Span::new(at, ts.len())));
            }
        }
    }

    /// The batch, and the file offsets it completes. Resets the builder.
    pub fn finish(&mut self) -> (Batch, Vec<(FileId, u64)>) {
        let mut batch = Batch::new(std::mem::take(&mut self.data), std::mem::take(&mut self.events));
        for o in self.origins.drain(..) {
            batch.add_origin(o);
        }
        let mut quoted = Vec::with_capacity(48);
        for (index, span) in self.timestamps.drain(..) {
            quoted.clear();
            quoted.push(b'"');
            quoted.extend_from_slice(span.of(batch.data()));
            quoted.push(b'"');
            batch.append_field(index, "runtime_ts", &quoted);
        }
        self.malformed = 0;
        self.empty = 0;
        (batch, std::mem::take(&mut self.offsets))
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
            last_data: Instant::now(),
            gone_since: None,
            discarding: false,
            max_merged,
            after: None,
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
    pub fn read_into(
        &mut self,
        out: &mut BatchBuilder,
        scratch: &mut Vec<u8>,
        max: usize,
        max_line: usize,
    ) -> std::io::Result<usize> {
        scratch.clear();
        scratch.extend_from_slice(&self.carry);
        let carried = scratch.len();
        scratch.resize(carried + max, 0);
        let n = loop {
            match self.file.read(&mut scratch[carried..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        scratch.truncate(carried + n);
        if n == 0 {
            return Ok(0);
        }
        self.last_data = Instant::now();
        let base = self.read_offset - carried as u64;
        self.read_offset += n as u64;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', scratch) {
            let line = &scratch[start..nl];
            if std::mem::take(&mut self.discarding) {
                start = nl + 1;
                continue;
            }
            if let Some(d) = self.decoder.decode(line, base + start as u64) {
                let origin = &self.origins[d.stream as usize];
                out.push(&d, origin);
            }
            start = nl + 1;
        }
        self.carry.clear();
        let rest = &scratch[start..];
        if self.discarding {
            // Still inside an over-long line: drop it.
        } else if rest.len() > max_line {
            // A runtime line this long is not CRI or Docker (they split at
            // 16 KiB): keep its start as a raw, truncated line.
            let d = Decoded {
                content: std::borrow::Cow::Borrowed(&rest[..max_line]),
                stream: Stream::Stdout,
                runtime_ts: None,
                truncated: true,
                malformed: false,
            };
            out.push(&d, &self.origins[0]);
            self.discarding = true;
        } else {
            self.carry.extend_from_slice(rest);
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
        self.carry.clear();
        self.discarding = false;
        self.decoder = FileDecoder::new(self.decoder.format(), self.max_merged);
        use std::io::Seek;
        self.file.seek(std::io::SeekFrom::Start(0))?;
        self.head = head_of(&self.file)?;
        self.fingerprint = Fingerprint::of(&self.head);
        Ok(())
    }

    /// The file is gone for good: pieces still waiting become lines.
    pub fn drain_into(&mut self, out: &mut BatchBuilder) {
        for d in self.decoder.drain() {
            let origin = &self.origins[d.stream as usize];
            out.push(&d, origin);
        }
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            if let Some(d) = self.decoder.decode(&carry, self.read_offset - carry.len() as u64) {
                let origin = &self.origins[d.stream as usize];
                out.push(&d, origin);
            }
        }
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
