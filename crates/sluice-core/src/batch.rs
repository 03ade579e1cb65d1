//! A batch: the raw bytes of many lines in one buffer, the events that view
//! them, a side arena for bytes stages create, the origins events came from,
//! and the acknowledgement tokens of the source data it carries.
//!
//! Stages see whole batches, so every per-event cost is a slice and an index;
//! the allocations are per batch.

use std::sync::Arc;

use crate::ack::AckToken;
use crate::event::{Event, Field, FieldValue, Span};

/// Where a group of events came from: attached once per file or stream, not
/// per event, and written into each event's output as a pre-serialized
/// fragment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// Stable key of the stream (file + stream name, for example); stages that
    /// keep per-stream state (multi-line stitching) group by it.
    pub stream_key: u64,
    /// Serialized `"key":"value"` pairs (comma-separated, no braces) added to
    /// every event of this origin; empty for none.
    pub fields_json: Box<str>,
    /// `service` for events of this origin whose record has none (from the
    /// source's mapping, e.g. the container name).
    pub default_service: Option<Box<str>>,
    /// The Kubernetes namespace of this origin's events (budget overrides
    /// match on it), when the source knows one.
    pub namespace: Option<Box<str>>,
}

/// Many events and the bytes behind them. See the module docs.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    events: Vec<Event>,
    arena: Vec<u8>,
    origins: Vec<Arc<Origin>>,
    acks: Vec<AckToken>,
}

impl Batch {
    /// A batch over `data` with `events` already framed on it.
    pub fn new(data: Vec<u8>, events: Vec<Event>) -> Batch {
        Batch {
            data,
            events,
            ..Batch::default()
        }
    }

    /// The raw input bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes created by stages (decoded strings, appended fields, rewrites).
    #[inline]
    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// The events, in input order.
    #[inline]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events, for a stage to edit, drop (`retain`) or reorder.
    #[inline]
    pub fn events_mut(&mut self) -> &mut Vec<Event> {
        &mut self.events
    }

    /// Split borrow for stages that read the input bytes while writing events
    /// and the arena (the parse stage).
    #[inline]
    pub fn parts_mut(&mut self) -> (&[u8], &mut Vec<Event>, &mut Vec<u8>) {
        (&self.data, &mut self.events, &mut self.arena)
    }

    /// Number of events.
    #[inline]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch holds no event.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes of input this batch carries.
    #[inline]
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// The line an event views.
    #[inline]
    pub fn line(&self, event: &Event) -> &[u8] {
        event.line.of(&self.data)
    }

    /// The bytes of a string field (decoded where it had escapes), or `None`
    /// when the field is absent or not a string.
    #[inline]
    pub fn str_field(&self, event: &Event, field: Field) -> Option<&[u8]> {
        match event.field(field) {
            FieldValue::Str(s) => Some(s.of(&self.data)),
            FieldValue::Decoded(s) => Some(s.of(&self.arena)),
            _ => None,
        }
    }

    /// The event's service: its record's `service` string, else its origin's
    /// default.
    #[inline]
    pub fn service<'a>(&'a self, event: &Event) -> Option<&'a [u8]> {
        self.str_field(event, Field::Service)
            .or_else(|| self.origin(event)?.default_service.as_deref().map(str::as_bytes))
    }

    /// A numeric field (numbers, or strings holding numbers).
    #[inline]
    pub fn num_field(&self, event: &Event, field: Field) -> Option<f64> {
        event.field(field).as_f64(&self.data, &self.arena)
    }

    /// The event's namespace: its record's `namespace` string, else its
    /// origin's.
    #[inline]
    pub fn namespace<'a>(&'a self, event: &Event) -> Option<&'a [u8]> {
        self.str_field(event, Field::Namespace)
            .or_else(|| self.origin(event)?.namespace.as_deref().map(str::as_bytes))
    }

    /// Register an origin and return the index events use to refer to it.
    pub fn add_origin(&mut self, origin: Arc<Origin>) -> u32 {
        if let Some(i) = self.origins.iter().position(|o| Arc::ptr_eq(o, &origin)) {
            return i as u32;
        }
        self.origins.push(origin);
        (self.origins.len() - 1) as u32
    }

    /// The origin of an event, if its source attached one.
    #[inline]
    pub fn origin(&self, event: &Event) -> Option<&Origin> {
        if event.origin == Event::NO_ORIGIN {
            None
        } else {
            self.origins.get(event.origin as usize).map(|o| &**o)
        }
    }

    /// Append a `"key":<raw JSON value>` pair to event `index`'s output.
    /// `raw_value` must already be valid JSON (a number, or a quoted string).
    pub fn append_field(&mut self, index: usize, key: &str, raw_value: &[u8]) {
        let extra = self.events[index].extra;
        let start = if extra.is_empty() {
            self.arena.len()
        } else if (extra.start + extra.len) as usize == self.arena.len() {
            self.arena.push(b',');
            extra.start as usize
        } else {
            // Not at the arena's end: move the earlier pairs there first so
            // the event's extras stay one contiguous span.
            let start = self.arena.len();
            self.arena
                .extend_from_within(extra.start as usize..(extra.start + extra.len) as usize);
            self.arena.push(b',');
            start
        };
        self.arena.push(b'"');
        self.arena.extend_from_slice(key.as_bytes());
        self.arena.extend_from_slice(b"\":");
        self.arena.extend_from_slice(raw_value);
        self.events[index].extra = Span::new(start, self.arena.len() - start);
    }

    /// Replace the value of event `index`'s top-level member `key` with
    /// `raw_value` (valid JSON), writing the changed object as the event's
    /// rewrite. Returns `false`, changing nothing, when the event is not a
    /// JSON object or has no such member. Costs a copy of the object: for
    /// the rare event whose record already holds a field a stage sets.
    pub fn replace_value(&mut self, index: usize, key: &str, raw_value: &[u8]) -> bool {
        let event = &self.events[index];
        if event.kind != crate::event::EventKind::Json {
            return false;
        }
        let (in_arena, object) = match event.rewrite {
            Some(span) => (true, span),
            None => (false, event.line),
        };
        let text = if in_arena { &self.arena } else { &self.data };
        let Some(value) = crate::json_scan::top_level_value(object.of(text), key.as_bytes()) else {
            return false;
        };
        let (from, to) = (object.start as usize, (object.start + object.len) as usize);
        let start = self.arena.len();
        if in_arena {
            self.arena.extend_from_within(from..from + value.start);
            self.arena.extend_from_slice(raw_value);
            self.arena.extend_from_within(from + value.end..to);
        } else {
            self.arena.extend_from_slice(&self.data[from..from + value.start]);
            self.arena.extend_from_slice(raw_value);
            self.arena.extend_from_slice(&self.data[from + value.end..to]);
        }
        self.events[index].rewrite = Some(Span::new(start, self.arena.len() - start));
        true
    }

    /// Make room for `additional` arena bytes: a stage that appends to many
    /// events knows how much it will add, and one growth beats many.
    pub fn reserve_arena(&mut self, additional: usize) {
        self.arena.reserve(additional);
    }

    /// Store bytes in the arena and return where they are.
    pub fn push_arena(&mut self, bytes: &[u8]) -> Span {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        Span::new(start, bytes.len())
    }

    /// Attach the acknowledgement of the source data this batch carries.
    pub fn add_ack(&mut self, token: AckToken) {
        self.acks.push(token);
    }

    /// Mark every carried acknowledgement as failed: the data did not reach
    /// a sink, and its source must not checkpoint past it. (Dropping the
    /// batch does the same; this says so where it matters.)
    pub fn fail_acks(&self) {
        for a in &self.acks {
            a.fail();
        }
    }

    /// The batch's journey ends here on purpose (every event sampled away):
    /// release its acknowledgements.
    pub fn release_acks(&mut self) {
        self.acks.drain(..).for_each(AckToken::release);
    }

    /// Move the acknowledgement tokens out (fan-out hands each sink its own
    /// clone of them, see [`SinkBatch`]).
    pub fn take_acks(&mut self) -> Vec<AckToken> {
        std::mem::take(&mut self.acks)
    }

    /// The acknowledgement tokens carried (a stage holding events past this
    /// batch clones them so the source is not told too early).
    pub fn ack_tokens(&self) -> &[AckToken] {
        &self.acks
    }

    /// The shared origin of an event, for a stage that moves the event into
    /// another batch.
    pub fn origin_arc(&self, event: &Event) -> Option<Arc<Origin>> {
        if event.origin == Event::NO_ORIGIN {
            None
        } else {
            self.origins.get(event.origin as usize).cloned()
        }
    }

    /// Number of acknowledgement tokens carried.
    pub fn ack_count(&self) -> usize {
        self.acks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(lines: &[&str]) -> Batch {
        let mut data = Vec::new();
        let mut events = Vec::new();
        for l in lines {
            events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
            data.extend_from_slice(l.as_bytes());
            data.push(b'\n');
        }
        Batch::new(data, events)
    }

    #[test]
    fn append_fields_stay_contiguous_per_event() {
        let mut b = batch_of(&["{}", "{\"a\":1}"]);
        b.append_field(0, "x", b"1");
        b.append_field(1, "y", b"\"two\"");
        b.append_field(0, "z", b"3");
        let e0 = b.events()[0].extra;
        let e1 = b.events()[1].extra;
        assert_eq!(e0.of(b.arena()), b"\"x\":1,\"z\":3");
        assert_eq!(e1.of(b.arena()), b"\"y\":\"two\"");
    }

    #[test]
    fn a_top_level_value_is_replaced_in_the_line_or_in_a_rewrite() {
        let mut b = batch_of(&[
            r#"{"a":{"sample_rate":9},"sample_rate":4,"b":1}"#,
            r#"{"a":1}"#,
            "not json",
            r#"{"x":"secret","sample_rate": 2 }"#,
        ]);
        for e in b.events_mut() {
            e.kind = crate::event::EventKind::Json;
            e.keys = 3;
        }
        b.events_mut()[2].kind = crate::event::EventKind::Text;
        // A stage rewrote the fourth record before.
        let rewrite = b.push_arena(br#"{"x":"****","sample_rate": 2 }"#);
        b.events_mut()[3].rewrite = Some(rewrite);
        assert!(b.replace_value(0, "sample_rate", b"40"));
        assert!(!b.replace_value(1, "sample_rate", b"40"));
        assert!(!b.replace_value(2, "sample_rate", b"40"));
        assert!(b.replace_value(3, "sample_rate", b"20.5"));
        let out = |b: &Batch, i: usize| {
            let mut v = Vec::new();
            crate::encode::write_event(b, &b.events()[i], &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(out(&b, 0), "{\"a\":{\"sample_rate\":9},\"sample_rate\":40,\"b\":1}\n");
        assert_eq!(out(&b, 1), "{\"a\":1}\n");
        assert_eq!(out(&b, 3), "{\"x\":\"****\",\"sample_rate\": 20.5 }\n");
    }

    #[test]
    fn origins_are_deduplicated_by_identity() {
        let mut b = batch_of(&["a"]);
        let o = Arc::new(Origin {
            stream_key: 1,
            fields_json: "\"pod\":\"p\"".into(),
            default_service: None,
            namespace: None,
        });
        assert_eq!(b.add_origin(o.clone()), 0);
        assert_eq!(b.add_origin(o), 0);
        let other = Arc::new(Origin {
            stream_key: 2,
            fields_json: "".into(),
            default_service: Some("web".into()),
            namespace: None,
        });
        assert_eq!(b.add_origin(other), 1);
        b.events_mut()[0].origin = 1;
        assert_eq!(b.origin(&b.events()[0]).unwrap().stream_key, 2);
        assert_eq!(b.service(&b.events()[0]), Some(&b"web"[..]));
    }
}

/// What a sink receives: the batch, shared with every other sink, and this
/// sink's own claim on each acknowledgement it carries. The sink calls
/// [`SinkBatch::delivered`] once its target or a durable buffer holds the
/// events; dropped any other way (a failed write, a closed channel, a
/// shutdown, a panic) the claim fails and the source must read the data
/// again.
#[derive(Debug)]
pub struct SinkBatch {
    batch: Arc<Batch>,
    acks: Vec<AckToken>,
}

impl SinkBatch {
    /// `batch` with the claims `acks`.
    pub fn new(batch: Arc<Batch>, acks: Vec<AckToken>) -> SinkBatch {
        SinkBatch { batch, acks }
    }

    /// A batch for one sink alone: its own tokens are the claims.
    pub fn sole(mut batch: Batch) -> SinkBatch {
        let acks = batch.take_acks();
        SinkBatch::new(Arc::new(batch), acks)
    }

    /// The events reached the target or a durable buffer: release the claims.
    pub fn delivered(self) {
        self.acks.into_iter().for_each(AckToken::release);
    }

    /// The claims alone, for a sink that keeps them until its target
    /// answers but no longer needs the events (they are encoded).
    pub fn into_acks(self) -> Vec<AckToken> {
        self.acks
    }

    /// Mark the claims failed (dropping them does the same).
    pub fn fail(&self) {
        self.acks.iter().for_each(AckToken::fail);
    }
}

impl std::ops::Deref for SinkBatch {
    type Target = Batch;

    fn deref(&self) -> &Batch {
        &self.batch
    }
}
