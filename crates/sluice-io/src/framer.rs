//! Cuts a byte stream into lines and lines into batches, without copying the
//! lines: a source reads straight into the framer's buffer, and that buffer
//! becomes the batch's data. Only a trailing partial line is copied, into the
//! next buffer.
//!
//! Rules (the output contract depends on them):
//! * `\n` ends a line; a `\r` before it is part of the terminator.
//! * Empty lines carry nothing: they are skipped and counted
//!   (`empty_lines_total`); the next event says how many came just before
//!   it (`Event::blank_before`), so a stitched trace can keep them.
//! * A line longer than `max_line_bytes` keeps its first `max_line_bytes`
//!   bytes, is flagged truncated, and the rest up to its newline is
//!   discarded and counted (`lines_truncated_total`, `bytes_discarded_total`).
//! * At end of input a final line without `\n` is still a line.

use memchr::memchr_iter;
use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::event::FLAG_TRUNCATED;
use sluice_core::metric_names;
use sluice_core::{Batch, Counter, Event, Registry, Span};

/// Counters a framer keeps, labelled by source id.
#[derive(Debug, Clone)]
pub struct FramerCounters {
    /// Lines framed into events.
    pub events: Counter,
    /// Bytes read.
    pub bytes: Counter,
    /// Empty lines skipped.
    pub empty: Counter,
    /// Lines cut at `max_line_bytes`.
    pub truncated: Counter,
    /// Bytes thrown away from over-long lines.
    pub discarded: Counter,
}

impl FramerCounters {
    /// Register the counters of source `id`.
    pub fn new(registry: &Registry, id: &str) -> FramerCounters {
        let l = [("source", id)];
        let counters = FramerCounters {
            events: registry.counter(metric_names::EVENTS_IN_TOTAL, "Events read by a source.", &l),
            bytes: registry.counter(metric_names::BYTES_IN_TOTAL, "Bytes read by a source.", &l),
            empty: registry.counter(metric_names::EMPTY_LINES_TOTAL, "Empty lines skipped.", &l),
            truncated: registry.counter(
                metric_names::LINES_TRUNCATED_TOTAL,
                "Lines cut at max_line_bytes (kept, flagged sluice_truncated).",
                &l,
            ),
            discarded: registry.counter(
                "bytes_discarded_total",
                "Bytes beyond max_line_bytes that were dropped.",
                &l,
            ),
        };
        // Every framed event goes on to the chain.
        component_metrics::received_events(registry, ComponentKind::Source, id, &counters.events);
        component_metrics::sent_events(registry, ComponentKind::Source, id, &counters.events);
        component_metrics::received_bytes(registry, id, &counters.bytes);
        counters
    }
}

/// What a stopped [`LineFramer`] had not framed yet.
#[derive(Debug, Default)]
pub struct FramerCarry {
    partial: Vec<u8>,
    discarding: bool,
    blank_pending: u16,
}

/// See the module docs.
pub struct LineFramer {
    buf: Vec<u8>,
    batch_bytes: usize,
    max_line: usize,
    /// Inside an over-long line whose kept part was already emitted.
    discarding: bool,
    /// Empty lines skipped since the last event.
    blank_pending: u16,
    /// Length of `buf` before the current read target.
    committed: usize,
    counters: FramerCounters,
}

impl LineFramer {
    /// A framer cutting batches of about `batch_bytes`, lines of at most
    /// `max_line` bytes.
    pub fn new(batch_bytes: usize, max_line: usize, counters: FramerCounters) -> LineFramer {
        LineFramer {
            buf: Vec::with_capacity(batch_bytes + 64 * 1024),
            batch_bytes,
            max_line,
            discarding: false,
            blank_pending: 0,
            committed: 0,
            counters,
        }
    }

    /// Stop framing and keep what is not framed yet (the start of a line
    /// whose end has not arrived), for a framer that goes on reading the
    /// same input: stdin outlives a configuration reload.
    pub fn into_carry(self) -> FramerCarry {
        FramerCarry {
            partial: self.buf,
            discarding: self.discarding,
            blank_pending: self.blank_pending,
        }
    }

    /// Go on from where another framer of the same input stopped.
    pub fn resume(&mut self, carry: FramerCarry) {
        self.buf.extend_from_slice(&carry.partial);
        self.committed = self.buf.len();
        self.discarding = carry.discarding;
        self.blank_pending = carry.blank_pending;
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the buffer holds a full batch's worth of bytes.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.batch_bytes
    }

    /// Room to read into: a slice of at least `min` bytes at the end of the
    /// buffer. Call [`LineFramer::commit`] with the number of bytes read.
    pub fn read_target(&mut self, min: usize) -> &mut [u8] {
        let len = self.buf.len();
        self.committed = len;
        let want = self.batch_bytes.saturating_sub(len).max(min);
        self.buf.resize(len + want, 0);
        &mut self.buf[len..]
    }

    /// Keep `n` of the bytes just read into [`LineFramer::read_target`].
    pub fn commit(&mut self, n: usize) {
        self.buf.truncate(self.committed + n);
        self.committed = self.buf.len();
        self.counters.bytes.add(n as u64);
    }

    /// Frame a buffer of whole lines a source produced itself, without copying
    /// it when nothing is pending.
    pub fn frame_owned(&mut self, data: Vec<u8>) -> Option<Batch> {
        self.counters.bytes.add(data.len() as u64);
        if self.buf.is_empty() {
            self.buf = data;
        } else {
            self.buf.extend_from_slice(&data);
        }
        self.committed = self.buf.len();
        self.take_batch(false)
    }

    /// Append bytes (for sources that already hold them).
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.counters.bytes.add(bytes.len() as u64);
    }

    /// Frame every complete line into a batch (and, at `eof`, the final
    /// partial line). Returns `None` when there is no event to send.
    pub fn take_batch(&mut self, eof: bool) -> Option<Batch> {
        let mut events = Vec::with_capacity(self.buf.len() / 200 + 1);
        let mut tally = Tally {
            blank: self.blank_pending,
            ..Tally::default()
        };
        let mut start = 0;
        for nl in memchr_iter(b'\n', &self.buf) {
            if std::mem::take(&mut self.discarding) {
                tally.discarded += (nl - start) as u64;
            } else {
                self.push_line(&mut events, start, nl, false, &mut tally);
            }
            start = nl + 1;
        }
        let end = self.buf.len();
        let tail = end - start;
        let mut consumed = start;
        if tail > 0 {
            if self.discarding {
                tally.discarded += tail as u64;
                consumed = end;
            } else if eof || tail >= self.max_line {
                // The final line at end of input, or an over-long line cut
                // now so memory stays bounded (its rest is dropped later).
                let continues = !eof;
                self.push_line(&mut events, start, end, continues, &mut tally);
                consumed = end;
                self.discarding = continues;
            }
        }
        self.blank_pending = tally.blank;
        let c = &self.counters;
        c.empty.add(tally.empty);
        c.truncated.add(tally.truncated);
        c.discarded.add(tally.discarded);
        if events.is_empty() {
            self.buf.drain(..consumed);
            self.committed = self.buf.len();
            return None;
        }
        c.events.add(events.len() as u64);
        // The buffer becomes the batch; only the partial tail is copied.
        let mut next = Vec::with_capacity(self.batch_bytes + 64 * 1024);
        next.extend_from_slice(&self.buf[consumed..]);
        let mut data = std::mem::replace(&mut self.buf, next);
        data.truncate(consumed);
        self.committed = self.buf.len();
        Some(Batch::new(data, events))
    }

    /// Frame `buf[start..end]` (terminator excluded). `continues` says the
    /// line goes on past the buffer (an over-long line being cut).
    fn push_line(&self, events: &mut Vec<Event>, start: usize, end: usize, continues: bool, tally: &mut Tally) {
        let mut end = end;
        if !continues && end > start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let len = end - start;
        if len == 0 {
            tally.empty += 1;
            tally.blank = tally.blank.saturating_add(1);
            return;
        }
        let (kept, flags) = if len > self.max_line || continues {
            tally.truncated += 1;
            tally.discarded += len.saturating_sub(self.max_line) as u64;
            (len.min(self.max_line), FLAG_TRUNCATED)
        } else {
            (len, 0)
        };
        let mut e = Event::unparsed(Span::new(start, kept), flags, Event::NO_ORIGIN);
        e.blank_before = std::mem::take(&mut tally.blank);
        events.push(e);
    }
}

#[derive(Default)]
struct Tally {
    empty: u64,
    /// Empty lines since the last event (carried across calls).
    blank: u16,
    truncated: u64,
    discarded: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer(batch: usize, max_line: usize) -> (LineFramer, Registry) {
        let r = Registry::new();
        (LineFramer::new(batch, max_line, FramerCounters::new(&r, "t")), r)
    }

    fn lines(b: &Batch) -> Vec<(String, bool)> {
        b.events()
            .iter()
            .map(|e| (String::from_utf8_lossy(b.line(e)).into_owned(), e.is_truncated()))
            .collect()
    }

    fn feed(f: &mut LineFramer, bytes: &[u8]) {
        let t = f.read_target(bytes.len());
        t[..bytes.len()].copy_from_slice(bytes);
        f.commit(bytes.len());
    }

    #[test]
    fn each_event_says_how_many_empty_lines_came_just_before_it() {
        let (mut f, r) = framer(4096, 1024);
        feed(&mut f, b"a\n\n\r\nb\nc\n\n");
        let b = f.take_batch(false).unwrap();
        let blanks: Vec<u16> = b.events().iter().map(|e| e.blank_before).collect();
        assert_eq!(blanks, [0, 2, 0]);
        // Counted across batches: the empty line ending this one belongs to
        // the next line.
        feed(&mut f, b"\nd\n");
        let b = f.take_batch(false).unwrap();
        assert_eq!((lines(&b)[0].0.as_str(), b.events()[0].blank_before), ("d", 2));
        assert_eq!(r.value("empty_lines_total", &[("source", "t")]), Some(4));
    }

    #[test]
    fn a_framer_that_goes_on_from_a_carry_cuts_no_line_and_counts_no_byte_twice() {
        let (mut f, r) = framer(4096, 4);
        feed(&mut f, b"a\n\nbc");
        assert_eq!(lines(&f.take_batch(false).unwrap()), [("a".into(), false)]);
        let carry = f.into_carry();
        let (mut g, _) = framer(4096, 4);
        // Same registry series: the bytes of the carry were counted once.
        g.counters = FramerCounters::new(&r, "t");
        g.resume(carry);
        feed(&mut g, b"d\nefghij\nk\n");
        let b = g.take_batch(false).unwrap();
        assert_eq!(
            lines(&b),
            [("bcd".into(), false), ("efgh".into(), true), ("k".into(), false)]
        );
        assert_eq!(b.events()[0].blank_before, 1);
        assert_eq!(r.value("bytes_in_total", &[("source", "t")]), Some(16));
    }

    #[test]
    fn frames_lines_and_keeps_the_partial_tail() {
        let (mut f, r) = framer(4096, 1024);
        feed(&mut f, b"a\r\n\nbb\ncc");
        let b = f.take_batch(false).unwrap();
        assert_eq!(lines(&b), [("a".into(), false), ("bb".into(), false)]);
        assert_eq!(b.data(), b"a\r\n\nbb\n");
        assert_eq!(f.buffered(), 2);
        feed(&mut f, b"c\n");
        assert_eq!(lines(&f.take_batch(false).unwrap()), [("ccc".into(), false)]);
        feed(&mut f, b"last");
        assert!(f.take_batch(false).is_none());
        assert_eq!(lines(&f.take_batch(true).unwrap()), [("last".into(), false)]);
        assert_eq!(r.value("events_in_total", &[("source", "t")]), Some(4));
        assert_eq!(r.value("empty_lines_total", &[("source", "t")]), Some(1));
        assert_eq!(r.value("bytes_in_total", &[("source", "t")]), Some(15));
    }

    #[test]
    fn over_long_lines_are_cut_flagged_and_the_rest_discarded() {
        let (mut f, r) = framer(4096, 8);
        // A complete long line, then one that spans reads.
        feed(&mut f, b"0123456789AB\nok\n0123456789");
        let b = f.take_batch(false).unwrap();
        assert_eq!(
            lines(&b),
            [
                ("01234567".into(), true),
                ("ok".into(), false),
                ("01234567".into(), true)
            ]
        );
        feed(&mut f, b"still the same line");
        assert!(f.take_batch(false).is_none());
        feed(&mut f, b" end\nnext\n");
        assert_eq!(lines(&f.take_batch(false).unwrap()), [("next".into(), false)]);
        assert_eq!(r.value("lines_truncated_total", &[("source", "t")]), Some(2));
        assert_eq!(
            r.value("bytes_discarded_total", &[("source", "t")]),
            Some(4 + 2 + 19 + 4)
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn nul_bytes_and_broken_utf8_are_ordinary_bytes() {
        let (mut f, _) = framer(4096, 1024);
        feed(&mut f, b"a\0b\n\xff\xfe\n");
        let b = f.take_batch(true).unwrap();
        assert_eq!(b.line(&b.events()[0]), b"a\0b");
        assert_eq!(b.line(&b.events()[1]), b"\xff\xfe");
    }
}
