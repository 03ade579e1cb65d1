//! The parse stage: turns framed lines into JSON events with their routing
//! fields located (not copied), or into text events when a line is not a JSON
//! object. It owns the decision "JSON or text" and the `parse_errors_total`
//! counter; it must never drop a line, never change the input bytes (simd-json
//! works on a scratch copy), and never allocate per event: the scratch buffer,
//! simd-json's buffers and the tape are reused for every line.
//!
//! A flat record (top-level strings without escapes, numbers, booleans,
//! nulls: most log lines) is validated and located in one walk over its own
//! bytes (`flat`); anything else goes through simd-json's tape, which is the
//! reference the fast path is tested against.
//!
//! A string value without escapes is recorded as a span of the original line;
//! one with escapes is decoded into the batch's arena (the only copy, and rare
//! in logs).

use simd_json::{Buffers, Node, StaticNode, Tape, INPUT_PADDING};
use sluice_core::event::FLAG_INVALID_UTF8;
use sluice_core::metric_names;
use sluice_core::{Batch, EventKind, Field, FieldValue, Registry, Span, Stage};
use sluice_core::{Counter, Event};

mod flat;

/// Why a line became a text event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextReason {
    /// Not valid JSON.
    InvalidJson,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Valid JSON, but a scalar or an array rather than an object.
    NotObject,
}

impl TextReason {
    /// The `reason` label of `parse_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            TextReason::InvalidJson => "invalid_json",
            TextReason::InvalidUtf8 => "invalid_utf8",
            TextReason::NotObject => "not_object",
        }
    }
}

/// Counters the parse stage keeps.
#[derive(Debug, Clone)]
struct ParseCounters {
    json: Counter,
    invalid_json: Counter,
    invalid_utf8: Counter,
    not_object: Counter,
}

impl ParseCounters {
    fn new(registry: &Registry) -> ParseCounters {
        const HELP: &str = "Lines that were not a JSON object and were kept as text events.";
        let err = |reason: TextReason| {
            registry.counter(metric_names::PARSE_ERRORS_TOTAL, HELP, &[("reason", reason.label())])
        };
        ParseCounters {
            json: registry.counter(
                metric_names::PARSE_JSON_EVENTS_TOTAL,
                "Lines parsed as JSON objects.",
                &[],
            ),
            invalid_json: err(TextReason::InvalidJson),
            invalid_utf8: err(TextReason::InvalidUtf8),
            not_object: err(TextReason::NotObject),
        }
    }
}

/// Parses JSON lines with simd-json and extracts the routing fields.
pub struct JsonFieldExtractor {
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
}

impl Default for JsonFieldExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonFieldExtractor {
    /// An extractor with buffers sized for typical log lines; they grow to the
    /// longest line seen and are reused.
    pub fn new() -> JsonFieldExtractor {
        JsonFieldExtractor {
            scratch: Vec::with_capacity(4096 + INPUT_PADDING),
            buffers: Buffers::new(4096),
            tape: Tape(Vec::with_capacity(256)),
        }
    }

    /// Parse `data[event.line]` and fill the event's kind, key count and
    /// fields; decoded strings go to `arena`. Returns why the line became
    /// text, if it did.
    #[inline]
    pub fn extract(&mut self, data: &[u8], event: &mut Event, arena: &mut Vec<u8>) -> Option<TextReason> {
        self.extract_via(data, event, arena, true)
    }

    /// [`Self::extract`], with or without the flat fast path (the tests
    /// compare the two).
    #[inline]
    fn extract_via(&mut self, data: &[u8], event: &mut Event, arena: &mut Vec<u8>, flat: bool) -> Option<TextReason> {
        let line_start = event.line.start as usize;
        let line = event.line.of(data);
        // The common non-JSON line (plain text, a stack frame) is rejected
        // without touching simd-json.
        let first = line.iter().position(|b| !b.is_ascii_whitespace());
        if first.is_none_or(|i| line[i] != b'{') {
            return Some(self.text(event, line, TextReason::NotObject));
        }
        if let Some(keys) = flat.then(|| flat::extract_flat(line, line_start, event)).flatten() {
            event.kind = EventKind::Json;
            event.keys = keys;
            return None;
        }
        self.extract_with_tape(data, event, arena)
    }

    /// The reference path: simd-json's tape, for any line.
    fn extract_with_tape(&mut self, data: &[u8], event: &mut Event, arena: &mut Vec<u8>) -> Option<TextReason> {
        let line_start = event.line.start as usize;
        let line = event.line.of(data);
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        self.scratch.resize(line.len() + INPUT_PADDING, 0);

        let tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let mut tape = tape;
        let scratch_ptr = self.scratch.as_ptr() as usize;
        let result = simd_json::fill_tape_padded(&mut self.scratch, line.len(), &mut self.buffers, &mut tape);
        let outcome = match result {
            Err(_) => Err(TextReason::InvalidJson),
            Ok(()) => match tape.0.first() {
                Some(Node::Object { len, .. }) => {
                    let keys = *len;
                    record_fields(&tape.0, keys, scratch_ptr, line, line_start, event, arena);
                    Ok(keys)
                }
                _ => Err(TextReason::NotObject),
            },
        };
        self.tape = tape.reset();
        match outcome {
            Ok(keys) => {
                event.kind = EventKind::Json;
                event.keys = keys as u32;
                None
            }
            Err(reason) => Some(self.text(event, line, reason)),
        }
    }

    fn text(&self, event: &mut Event, line: &[u8], reason: TextReason) -> TextReason {
        event.kind = EventKind::Text;
        // Only a failed line pays for the UTF-8 check that names its reason.
        if std::str::from_utf8(line).is_err() {
            event.flags |= FLAG_INVALID_UTF8;
            return TextReason::InvalidUtf8;
        }
        reason
    }
}

/// Walk the top level of a parsed object and locate the routing fields.
fn record_fields(
    nodes: &[Node<'_>],
    keys: usize,
    scratch_ptr: usize,
    line: &[u8],
    line_start: usize,
    event: &mut Event,
    arena: &mut Vec<u8>,
) {
    let mut i = 1;
    for _ in 0..keys {
        let Some(Node::String(key)) = nodes.get(i) else { return };
        let value = nodes.get(i + 1);
        let width = match value {
            Some(Node::Object { count, .. } | Node::Array { count, .. }) => count + 1,
            _ => 1,
        };
        if let (Some(field), Some(value)) = (Field::from_key(key.as_bytes()), value) {
            event.fields[field as usize] = match *value {
                Node::String(s) => locate_str(s, scratch_ptr, line, line_start, arena),
                Node::Static(StaticNode::I64(n)) => FieldValue::Int(n),
                Node::Static(StaticNode::U64(n)) => {
                    i64::try_from(n).map_or(FieldValue::Float(n as f64), FieldValue::Int)
                }
                Node::Static(StaticNode::F64(f)) => FieldValue::Float(f),
                Node::Static(StaticNode::Bool(b)) => FieldValue::Bool(b),
                Node::Static(StaticNode::Null) => FieldValue::Null,
                Node::Object { .. } | Node::Array { .. } => FieldValue::Composite,
            };
        }
        i += 1 + width;
    }
}

/// A string from the tape as a span of the original line when it had no
/// escapes (simd-json leaves such strings where they were in the scratch
/// copy), else decoded into the arena.
#[inline]
fn locate_str(s: &str, scratch_ptr: usize, line: &[u8], line_start: usize, arena: &mut Vec<u8>) -> FieldValue {
    let offset = (s.as_ptr() as usize).wrapping_sub(scratch_ptr);
    let end = offset.wrapping_add(s.len());
    if end < line.len() && line[end] == b'"' && &line[offset..end] == s.as_bytes() {
        return FieldValue::Str(Span::new(line_start + offset, s.len()));
    }
    let start = arena.len();
    arena.extend_from_slice(s.as_bytes());
    FieldValue::Decoded(Span::new(start, s.len()))
}

/// The pipeline stage around [`JsonFieldExtractor`].
pub struct ParseStage {
    extractor: JsonFieldExtractor,
    counters: ParseCounters,
}

impl ParseStage {
    /// A parse stage counting into `registry`.
    pub fn new(registry: &Registry) -> ParseStage {
        ParseStage {
            extractor: JsonFieldExtractor::new(),
            counters: ParseCounters::new(registry),
        }
    }

    /// Parse every unparsed event of `batch` in place.
    pub fn parse_batch(&mut self, batch: &mut Batch) {
        let (data, events, arena) = batch.parts_mut();
        // Counted locally and published once per batch: no shared atomic
        // traffic per event.
        let mut counts = [0u64; 4];
        for event in events.iter_mut() {
            if event.kind != EventKind::Unparsed {
                continue;
            }
            let slot = match self.extractor.extract(data, event, arena) {
                None => 0,
                Some(TextReason::InvalidJson) => 1,
                Some(TextReason::InvalidUtf8) => 2,
                Some(TextReason::NotObject) => 3,
            };
            counts[slot] += 1;
        }
        let c = &self.counters;
        for (n, counter) in counts
            .iter()
            .zip([&c.json, &c.invalid_json, &c.invalid_utf8, &c.not_object])
        {
            if *n > 0 {
                counter.add(*n);
            }
        }
    }
}

impl Stage for ParseStage {
    fn name(&self) -> &'static str {
        "parse"
    }

    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        self.parse_batch(&mut batch);
        out.push(batch);
    }
}

#[cfg(test)]
mod tests;
