//! The batch the file source sends: decoded lines of many files gathered
//! into one buffer (in place where a file was read into it, copied
//! otherwise), each line's origin, runtime timestamp and the empty lines
//! before it, and per file the offset a checkpoint may reach once the
//! batch is delivered. It decodes nothing and reads no file.

use std::sync::Arc;

use sluice_core::event::FLAG_TRUNCATED;
use sluice_core::{Batch, Event, Origin, Span};

use crate::decode::Decoded;
use crate::tracked::FileId;

/// Gathers decoded lines of many files into one batch.
#[derive(Default)]
pub struct BatchBuilder {
    /// The batch's bytes; a tracked file reads straight into its end.
    pub(crate) data: Vec<u8>,
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
    /// Lines cut (over-long, or joined partials past `max_merged_line_bytes`).
    pub truncated: u64,
    /// Data bytes each batch starts with room for.
    room: usize,
}

impl BatchBuilder {
    /// A builder whose batches start with room for `bytes` of data.
    pub fn with_room(bytes: usize) -> BatchBuilder {
        BatchBuilder {
            data: Vec::with_capacity(bytes),
            room: bytes,
            ..BatchBuilder::default()
        }
    }

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

    /// Add a decoded line, copying its bytes (lines decoded from outside
    /// `data`: a drained file's held pieces and carry).
    pub(crate) fn push(&mut self, d: &Decoded<'_>, origin: &Arc<Origin>, blank: &mut u16) {
        let content = Located::Copy(d.content.to_vec());
        let ts = d.runtime_ts.as_ref().map(|t| Located::Copy(t.to_vec()));
        self.push_located(content, ts, d.truncated, d.malformed, origin, blank);
    }

    /// Add a line; `content` and `ts` are either already in `data` (read
    /// there and decoded in place: no copy) or copied in now.
    pub(crate) fn push_located(
        &mut self,
        content: Located,
        ts: Option<Located>,
        truncated: bool,
        malformed: bool,
        origin: &Arc<Origin>,
        blank: &mut u16,
    ) {
        if malformed {
            self.malformed += 1;
        }
        if content.is_empty() {
            self.empty += 1;
            *blank = blank.saturating_add(1);
            return;
        }
        let span = self.place(content);
        self.truncated += u64::from(truncated);
        let flags = if truncated { FLAG_TRUNCATED } else { 0 };
        let origin = self.origin_index(origin);
        let mut e = Event::unparsed(span, flags, origin);
        e.blank_before = std::mem::take(blank);
        self.events.push(e);
        if let Some(ts) = ts {
            let span = self.place(ts);
            // Only timestamp characters: it is written into JSON unescaped.
            if span
                .of(&self.data)
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b":.+-".contains(b))
            {
                self.timestamps.push((self.events.len() - 1, span));
            }
        }
    }

    fn place(&mut self, bytes: Located) -> Span {
        match bytes {
            Located::InData(span) => span,
            Located::Copy(v) => {
                let start = self.data.len();
                self.data.extend_from_slice(&v);
                self.data.push(b'\n');
                Span::new(start, v.len())
            }
        }
    }

    /// The batch, and the file offsets it completes. Resets the builder.
    pub fn finish(&mut self) -> (Batch, Vec<(FileId, u64)>) {
        // The next batch starts with the configured room, and room for as
        // many events as this one had: growing from empty would
        // realloc-and-copy several times per batch, each time into freshly
        // faulted pages. Not this batch's capacity: one over-long line must
        // not make every later batch as big.
        let events_room = self.events.len() + self.events.len() / 8;
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(self.room));
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(events_room));
        let mut batch = Batch::new(data, events);
        // `,"runtime_ts":"<stamp>"` per stamped event.
        let stamps: usize = self.timestamps.iter().map(|(_, s)| s.len as usize + 16).sum();
        batch.reserve_arena(stamps);
        for o in self.origins.drain(..) {
            batch.add_origin(o);
        }
        let mut quoted = Vec::with_capacity(48);
        for (index, span) in self.timestamps.drain(..) {
            quoted.clear();
            quoted.push(b'"');
            quoted.extend_from_slice(span.of(batch.data()));
            quoted.push(b'"');
            batch.append_field(index, sluice_core::added_fields::RUNTIME_TS, &quoted);
        }
        self.malformed = 0;
        self.empty = 0;
        self.truncated = 0;
        (batch, std::mem::take(&mut self.offsets))
    }
}

/// Where a decoded line's bytes are: a span of the builder's data (it was
/// read there), or bytes to copy in.
pub(crate) enum Located {
    InData(Span),
    Copy(Vec<u8>),
}

impl Located {
    fn is_empty(&self) -> bool {
        match self {
            Located::InData(span) => span.is_empty(),
            Located::Copy(v) => v.is_empty(),
        }
    }

    /// `piece` of a decoded line: a span when it borrows from `data` (the
    /// line read there), else the bytes the decoder made (joined partials,
    /// unescaped strings), moved rather than copied.
    pub(crate) fn of(piece: std::borrow::Cow<'_, [u8]>, data: &[u8]) -> Located {
        match piece {
            std::borrow::Cow::Borrowed(b) => {
                let offset = (b.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
                if offset <= data.len() && b.len() <= data.len() - offset {
                    Located::InData(Span::new(offset, b.len()))
                } else {
                    Located::Copy(b.to_vec())
                }
            }
            std::borrow::Cow::Owned(v) => Located::Copy(v),
        }
    }
}
