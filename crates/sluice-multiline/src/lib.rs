//! The multiline stage: stitches a plain-text stack trace (Java, Python, Go,
//! Node.js, Ruby, .NET, or custom rules), written as many lines, back into
//! one event with the trace in `message` and `error_type`, `error_message`,
//! `multiline_lines` and the header's `ts` and `level` beside it. Lines are
//! grouped per stream (an origin's `stream_key`), never across streams. It
//! owns trace boundaries only: it never merges or rewrites a JSON event (it
//! only reads its `stacktrace` field to add a missing `error_type`), and it
//! must not drop a line: a trace too long is split, each part marked.
//!
//! A stitched event is placed where the trace's first line was (or, for a
//! trace that began in an earlier batch, before the first later line of its
//! stream), so lines keep their order per stream. An event still open when
//! a batch ends is held, with copies of its lines and the batch's
//! acknowledgement tokens, until its stream moves on, its flush timeout
//! passes, or the input ends.

mod describe;
pub mod detect;

use sluice_core::metric_names;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::{MultilineConfig, RegexPattern};
use sluice_core::added_fields;
use sluice_core::encode::write_json_string;
use sluice_core::event::{FLAG_STACK_TRACE, FLAG_TRUNCATED};
use sluice_core::{AckToken, Batch, Counter, Event, EventKind, Field, FieldValue, Origin, Registry, Span, Stage};

use detect::{Class, Detector, Langs, PatternError};

/// One stream's event being assembled.
struct Group {
    text: Vec<u8>,
    lines: u32,
    langs: Langs,
    /// The first line is a log header (`... ERROR ... Failed`).
    header: bool,
    /// Only the header so far: it becomes a trace if a start line follows.
    header_only: bool,
    /// Python's final exception line was seen: only a chaining sentence
    /// continues now.
    python_done: bool,
    /// Node's uncaught-error preamble: 1 after the location line (the
    /// source line comes next, whatever it says), 2 after the source line
    /// (a caret line must come), 3 after the caret (the thrown value comes
    /// next, whatever it looks like); 0 otherwise.
    node_phase: u8,
    truncated: bool,
    origin: Option<Arc<Origin>>,
    acks: Vec<AckToken>,
    last_line: Instant,
}

#[derive(Default)]
struct StreamState {
    group: Option<Group>,
    last_seen: Option<Instant>,
}

struct Counters {
    stitched: Counter,
    lines: Counter,
    split: Counter,
    timeouts: Counter,
    evicted: Counter,
}

/// See the crate docs.
pub struct MultilineStage {
    detector: Detector,
    flush_timeout: Duration,
    max_lines: u32,
    max_bytes: usize,
    max_streams: usize,
    streams: HashMap<u64, StreamState>,
    open_groups: usize,
    counters: Counters,
}

impl MultilineStage {
    /// Build the stage from its configuration.
    pub fn new(cfg: &MultilineConfig, registry: &Registry) -> Result<MultilineStage, PatternError> {
        let langs = cfg
            .languages
            .iter()
            .filter_map(|l| Langs::from_name(l))
            .fold(Langs::NONE, Langs::or);
        let detector = Detector::new(
            langs,
            cfg.start_pattern.as_ref().map(RegexPattern::as_str),
            cfg.continue_pattern.as_ref().map(RegexPattern::as_str),
        )?;
        Ok(MultilineStage {
            detector,
            flush_timeout: cfg.flush_timeout,
            max_lines: cfg.max_lines as u32,
            max_bytes: cfg.max_bytes.0 as usize,
            max_streams: cfg.max_streams,
            streams: HashMap::new(),
            open_groups: 0,
            counters: Counters {
                stitched: registry.counter(metric_names::MULTILINE_EVENTS_TOTAL, "Multi-line events stitched.", &[]),
                lines: registry.counter(
                    metric_names::MULTILINE_LINES_TOTAL,
                    "Lines that went into stitched events.",
                    &[],
                ),
                split: registry.counter(
                    metric_names::MULTILINE_SPLIT_TOTAL,
                    "Traces split at max_lines/max_bytes.",
                    &[],
                ),
                timeouts: registry.counter(
                    metric_names::MULTILINE_FLUSH_TIMEOUTS_TOTAL,
                    "Events emitted by the flush timeout.",
                    &[],
                ),
                evicted: registry.counter(
                    "multiline_streams_evicted_total",
                    "Stream states freed at max_streams.",
                    &[],
                ),
            },
        })
    }

    fn stream_key(batch: &Batch, e: &Event) -> u64 {
        batch.origin(e).map_or(0, |o| o.stream_key)
    }

    fn take_group(&mut self, key: u64) -> Option<Group> {
        let g = self.streams.get_mut(&key)?.group.take();
        if g.is_some() {
            self.open_groups -= 1;
        }
        g
    }

    fn put_group(&mut self, key: u64, g: Group, now: Instant) {
        let s = self.streams.entry(key).or_default();
        s.last_seen = Some(now);
        if s.group.replace(g).is_none() {
            self.open_groups += 1;
        }
    }

    fn new_group(&self, batch: &Batch, e: &Event, langs: Langs, header: bool, now: Instant) -> Group {
        let line = batch.line(e);
        // Room for a trace's usual length, never past what a group may
        // hold: a 16 MiB first line reserved 128 MiB.
        let mut text = Vec::with_capacity((line.len() * 8).min(self.max_bytes).max(line.len()));
        text.extend_from_slice(line);
        Group {
            text,
            lines: 1,
            langs,
            header,
            header_only: header,
            python_done: false,
            node_phase: 0,
            truncated: e.is_truncated(),
            origin: batch.origin_arc(e),
            acks: Vec::new(),
            last_line: now,
        }
    }

    /// Decide what `e` (a text line of stream `key`) does; returns the event
    /// to keep in place, if the line stays a line of its own.
    fn text_line(&mut self, batch: &mut Batch, e: Event, key: u64, now: Instant, kept: &mut Vec<Event>) {
        let mut group = self.take_group(key);
        loop {
            if let Some(mut g) = group.take_if(|g| g.node_phase > 0) {
                let line = batch.line(&e);
                let fits = match g.node_phase {
                    1 | 3 => e.blank_before == 0 || g.node_phase == 3,
                    _ => e.blank_before == 0 && detect::is_caret_line(line),
                };
                if fits {
                    g.node_phase = (g.node_phase + 1) % 4;
                    self.append(batch, g, &e, kept, key, now);
                    return;
                }
                // Not the preamble after all: the lines so far stand alone,
                // each an event of its own, as they came.
                self.emit_each_line(batch, g, kept);
                continue;
            }
            let open = group
                .as_ref()
                .map(|g| if g.header_only { Langs::NONE } else { g.langs });
            let class = self.detector.classify(batch.line(&e), open.filter(|l| !l.is_empty()));
            match (group.take(), class) {
                (Some(mut g), Class::Start(l)) if g.header_only => {
                    g.header_only = false;
                    g.langs = l;
                    if l.has(Langs::NODE) && self.detector.is_node_location(batch.line(&e)) {
                        g.langs = Langs::NODE;
                        g.node_phase = 1;
                    }
                    self.append(batch, g, &e, kept, key, now);
                    return;
                }
                (Some(g), _) if g.header_only => {
                    // The header introduced nothing: it is a line of its own.
                    kept.push(self.emit(batch, g));
                    continue;
                }
                (Some(mut g), Class::Continue(l)) if !g.python_done || chain_sentence(batch.line(&e)) => {
                    g.langs = l;
                    if l.has(Langs::PYTHON) {
                        let line = batch.line(&e);
                        g.python_done = self.detector.is_python_exception(line) || python_group_end(line);
                    }
                    self.append(batch, g, &e, kept, key, now);
                    return;
                }
                (Some(g), _) => {
                    kept.push(self.emit(batch, g));
                    continue;
                }
                (None, Class::Start(l)) => {
                    let mut g = self.new_group(batch, &e, l, false, now);
                    if l.has(Langs::NODE) && self.detector.is_node_location(batch.line(&e)) {
                        g.langs = Langs::NODE;
                        g.node_phase = 1;
                    }
                    self.put_group(key, g, now);
                    return;
                }
                (None, Class::Header) => {
                    let g = self.new_group(batch, &e, Langs::NONE, true, now);
                    self.put_group(key, g, now);
                    return;
                }
                (None, _) => {
                    kept.push(e);
                    return;
                }
            }
        }
    }

    /// Add a line to a group, splitting at the caps; the group stays open.
    fn append(&mut self, batch: &mut Batch, mut g: Group, e: &Event, kept: &mut Vec<Event>, key: u64, now: Instant) {
        let line = batch.line(e);
        let blanks = usize::from(e.blank_before);
        if g.lines + 1 + blanks as u32 > self.max_lines || g.text.len() + 1 + blanks + line.len() > self.max_bytes {
            // Cut here; the rest of the trace continues as a new, marked part.
            self.counters.split.inc();
            let mut rest = self.new_group(batch, e, g.langs, false, now);
            rest.truncated = true;
            rest.python_done = g.python_done;
            g.truncated = true;
            kept.push(self.emit(batch, g));
            g = rest;
        } else {
            // The empty lines the framer skipped inside the trace are part
            // of what the program printed.
            for _ in 0..=e.blank_before {
                g.text.push(b'\n');
            }
            g.text.extend_from_slice(line);
            g.lines += 1 + u32::from(e.blank_before);
            g.truncated |= e.is_truncated();
            g.last_line = now;
        }
        self.put_group(key, g, now);
    }

    /// Turn a finished group into an event of `batch` (its acknowledgement
    /// tokens move to the batch).
    fn emit(&mut self, batch: &mut Batch, g: Group) -> Event {
        for a in g.acks {
            batch.add_ack(a);
        }
        let origin = g.origin.map_or(Event::NO_ORIGIN, |o| batch.add_origin(o));
        let mut e = Event::unparsed(Span::EMPTY, if g.truncated { FLAG_TRUNCATED } else { 0 }, origin);
        e.kind = EventKind::Json;
        e.keys = 1;
        let mut json = Vec::with_capacity(g.text.len() + 128);
        json.extend_from_slice(b"{\"message\":");
        write_json_string(&g.text, &mut json);
        if g.header_only {
            // A header that introduced no trace: an ordinary text line.
            json.push(b'}');
            e.rewrite = Some(batch.push_arena(&json));
            return e;
        }
        // A trace of a known language; a custom rule's group may join any
        // multi-line record, which says nothing about an error.
        if g.lines > 1 && !g.langs.and(Langs::ALL_BUILTIN).is_empty() {
            e.flags |= FLAG_STACK_TRACE;
        }
        let text = String::from_utf8_lossy(&g.text);
        let lines: Vec<&str> = text.split('\n').collect();
        let info = describe::describe(&lines, g.langs, g.header);
        let mut fields: Vec<(Field, Span)> = Vec::new();
        for (name, field, value) in [
            (Field::ErrorType.name(), Some(Field::ErrorType), &info.error_type),
            (added_fields::ERROR_MESSAGE, None, &info.error_message),
            (Field::Ts.name(), Some(Field::Ts), &info.ts),
            (Field::Level.name(), Some(Field::Level), &info.level),
        ] {
            if let Some(v) = value {
                json.extend_from_slice(b",\"");
                json.extend_from_slice(name.as_bytes());
                json.extend_from_slice(b"\":");
                write_json_string(v.as_bytes(), &mut json);
                if let Some(f) = field {
                    fields.push((f, batch.push_arena(v.as_bytes())));
                }
            }
        }
        json.extend_from_slice(b",\"");
        json.extend_from_slice(added_fields::MULTILINE_LINES.as_bytes());
        json.extend_from_slice(b"\":");
        json.extend_from_slice(itoa::Buffer::new().format(g.lines).as_bytes());
        json.push(b'}');
        e.rewrite = Some(batch.push_arena(&json));
        for (f, span) in fields {
            e.fields[f as usize] = FieldValue::Decoded(span);
        }
        self.counters.stitched.inc();
        self.counters.lines.add(g.lines as u64);
        e
    }

    /// Emit a group that ends because its stream moved on, went quiet, or
    /// the input ended: an unfinished Node preamble was no trace, so its
    /// lines stand alone.
    fn close_group(&mut self, batch: &mut Batch, g: Group, out: &mut Vec<Event>) {
        if matches!(g.node_phase, 1 | 2) {
            self.emit_each_line(batch, g, out);
        } else {
            out.push(self.emit(batch, g));
        }
    }

    /// Emit a group's lines as separate plain events (a start that turned
    /// out not to be one).
    fn emit_each_line(&mut self, batch: &mut Batch, g: Group, kept: &mut Vec<Event>) {
        let Group {
            text,
            origin,
            acks,
            last_line,
            ..
        } = g;
        let mut acks = Some(acks);
        for line in text.split(|&b| b == b'\n') {
            let mut part = Self::plain_group(line, origin.clone(), last_line);
            part.acks = acks.take().unwrap_or_default();
            kept.push(self.emit(batch, part));
        }
    }

    fn plain_group(line: &[u8], origin: Option<Arc<Origin>>, last_line: Instant) -> Group {
        Group {
            text: line.to_vec(),
            lines: 1,
            langs: Langs::NONE,
            header: true,
            header_only: true,
            python_done: false,
            node_phase: 0,
            truncated: false,
            origin,
            acks: Vec::new(),
            last_line,
        }
    }

    /// A JSON record with a `stacktrace` but no `error_type` gets one.
    fn json_error_type(&self, batch: &mut Batch, index: usize) {
        let e = &batch.events()[index];
        if e.field(Field::ErrorType) != FieldValue::Absent {
            return;
        }
        let Some(trace) = batch.str_field(e, Field::Stacktrace) else {
            return;
        };
        let text = String::from_utf8_lossy(trace).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let Some(t) = describe::describe(&lines, Langs::ALL_BUILTIN, false).error_type else {
            return;
        };
        let mut quoted = Vec::with_capacity(t.len() + 2);
        write_json_string(t.as_bytes(), &mut quoted);
        batch.append_field(index, "error_type", &quoted);
        let span = batch.push_arena(t.as_bytes());
        batch.events_mut()[index].fields[Field::ErrorType as usize] = FieldValue::Decoded(span);
    }

    /// Emit every group matching `due` into one new batch.
    fn emit_where(&mut self, mut due: impl FnMut(&Group) -> bool, out: &mut Vec<Batch>) -> usize {
        let keys: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, s)| s.group.as_ref().is_some_and(&mut due))
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return 0;
        }
        let mut batch = Batch::new(Vec::new(), Vec::new());
        let mut events = Vec::with_capacity(keys.len());
        for k in &keys {
            if let Some(g) = self.take_group(*k) {
                self.close_group(&mut batch, g, &mut events);
            }
        }
        *batch.events_mut() = events;
        out.push(batch);
        keys.len()
    }
}

/// Python's line closing a top-level exception group: four spaces, `+`,
/// and dashes only (the separators between sub-exceptions carry numbers).
fn python_group_end(line: &[u8]) -> bool {
    line.strip_prefix(b"    +")
        .is_some_and(|rest| !rest.is_empty() && rest.iter().all(|&b| b == b'-'))
}

fn chain_sentence(line: &[u8]) -> bool {
    line.starts_with(b"During handling of the above exception")
        || line.starts_with(b"The above exception was the direct cause")
        || line.starts_with(b"Traceback (most recent call last):")
}

impl Stage for MultilineStage {
    fn name(&self) -> &'static str {
        "multiline"
    }

    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        let now = Instant::now();
        let events = std::mem::take(batch.events_mut());
        let mut kept = Vec::with_capacity(events.len());
        let mut json_with_trace = Vec::new();
        for e in events {
            if e.kind != EventKind::Text {
                if self.open_groups > 0 {
                    let key = Self::stream_key(&batch, &e);
                    if let Some(g) = self.take_group(key) {
                        self.close_group(&mut batch, g, &mut kept);
                    }
                }
                if e.field(Field::Stacktrace) != FieldValue::Absent {
                    json_with_trace.push(kept.len());
                }
                kept.push(e);
                continue;
            }
            let key = Self::stream_key(&batch, &e);
            self.text_line(&mut batch, e, key, now, &mut kept);
        }
        *batch.events_mut() = kept;
        for i in json_with_trace {
            self.json_error_type(&mut batch, i);
        }
        if self.open_groups > 0 {
            // Open events hold lines of this batch: its source must not hear
            // of its delivery before they are emitted.
            // (Clones straight from the batch: every clone is a claim that
            // must be released, so no temporary copies.)
            let tokens = batch.ack_tokens();
            for s in self.streams.values_mut() {
                if let Some(g) = &mut s.group {
                    if g.last_line == now {
                        g.acks.extend(tokens.iter().cloned());
                    }
                }
            }
        }
        out.push(batch);
        if self.streams.len() > self.max_streams {
            self.evict(out);
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Batch>) {
        if self.open_groups > 0 {
            let timeout = self.flush_timeout;
            let n = self.emit_where(|g| now.duration_since(g.last_line) >= timeout, out);
            self.counters.timeouts.add(n as u64);
        }
        // Streams without an open event and quiet for a minute are freed.
        self.streams.retain(|_, s| {
            s.group.is_some()
                || s.last_seen
                    .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        });
    }

    fn finish(&mut self, out: &mut Vec<Batch>) {
        self.emit_where(|_| true, out);
    }
}

impl MultilineStage {
    /// Free the least recently seen streams beyond `max_streams`.
    fn evict(&mut self, out: &mut Vec<Batch>) {
        let mut by_age: Vec<(Instant, u64)> = self
            .streams
            .iter()
            .map(|(k, s)| (s.last_seen.unwrap_or_else(Instant::now), *k))
            .collect();
        by_age.sort();
        let excess = self.streams.len() - self.max_streams;
        let victims: Vec<u64> = by_age.iter().take(excess).map(|(_, k)| *k).collect();
        let mut batch = Batch::new(Vec::new(), Vec::new());
        let mut events = Vec::new();
        for k in victims {
            if let Some(g) = self.take_group(k) {
                self.close_group(&mut batch, g, &mut events);
            }
            self.streams.remove(&k);
            self.counters.evicted.inc();
        }
        if !events.is_empty() {
            *batch.events_mut() = events;
            out.push(batch);
        }
    }
}

#[cfg(test)]
mod tests;
