//! One event: a view into its batch's bytes plus the routing fields the parse
//! stage pulled out of it. Nothing here owns heap memory, so a batch of
//! thousands of events is a handful of allocations.

/// A byte range inside one of a batch's buffers. `u32` keeps an [`Event`]
/// small; a batch never holds 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Span {
    /// The empty span.
    pub const EMPTY: Span = Span { start: 0, len: 0 };

    /// A span from a start offset and a length.
    #[inline]
    pub fn new(start: usize, len: usize) -> Span {
        debug_assert!(start + len <= u32::MAX as usize);
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    /// The bytes this span covers in `buf`.
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        // Summed as `usize`: the end cannot wrap, so one bounds check
        // remains (in `u32` the slice must also check start <= end).
        let start = self.start as usize;
        &buf[start..start + self.len as usize]
    }

    /// Whether the span covers nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What kind of record an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Framed but not yet parsed.
    Unparsed,
    /// A valid JSON object; its bytes are written out as they came in unless
    /// a stage rewrote it.
    Json,
    /// Anything else (invalid JSON, a JSON scalar or array, broken UTF-8):
    /// written as `{"message": "<the line, lossily decoded>"}`.
    Text,
}

macro_rules! fields {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The top-level fields the pipeline routes on (see the field guide's
        /// minimum schema). Only these are extracted; everything else in a
        /// record rides along untouched in the raw bytes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Field { $(#[doc = concat!("The `", $name, "` field.")] $variant),* }

        impl Field {
            /// Every routing field, in slot order.
            pub const ALL: [Field; FIELD_COUNT] = [$(Field::$variant),*];

            /// The JSON key of this field.
            pub const fn name(self) -> &'static str {
                match self { $(Field::$variant => $name),* }
            }
        }
    };
}

fields! {
    Ts => "ts",
    Level => "level",
    Service => "service",
    Env => "env",
    TraceId => "trace_id",
    RequestId => "request_id",
    Status => "status",
    DurationMs => "duration_ms",
    Route => "route",
    Path => "path",
    Msg => "msg",
    ErrorType => "error_type",
    Event => "event",
    Stacktrace => "stacktrace",
    Namespace => "namespace",
    SampleRate => "sample_rate",
}

impl Field {
    /// The routing field a JSON key names, if any. Byte-string patterns let
    /// the compiler dispatch on length first: this runs for every key of
    /// every record. (`field_names_round_trip` keeps it in step with `name`.)
    #[inline]
    pub fn from_key(key: &[u8]) -> Option<Field> {
        Some(match key {
            b"ts" => Field::Ts,
            b"level" => Field::Level,
            b"service" => Field::Service,
            b"env" => Field::Env,
            b"trace_id" => Field::TraceId,
            b"request_id" => Field::RequestId,
            b"status" => Field::Status,
            b"duration_ms" => Field::DurationMs,
            b"route" => Field::Route,
            b"path" => Field::Path,
            b"msg" => Field::Msg,
            b"error_type" => Field::ErrorType,
            b"event" => Field::Event,
            b"stacktrace" => Field::Stacktrace,
            b"namespace" => Field::Namespace,
            b"sample_rate" => Field::SampleRate,
            _ => return None,
        })
    }
}

/// Number of routing fields (slots per event).
pub const FIELD_COUNT: usize = 16;

/// A routing field's value, located rather than copied.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FieldValue {
    /// The record does not have this field.
    #[default]
    Absent,
    /// A string without escapes: its bytes are `span` of the batch's data.
    Str(Span),
    /// A string that had escapes: its decoded bytes are `span` of the
    /// batch's arena.
    Decoded(Span),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// JSON `null`.
    Null,
    /// An object or array (not extracted).
    Composite,
}

impl FieldValue {
    /// The value as a number, when it is one (or a string holding one:
    /// some loggers quote their numbers).
    pub fn as_f64(&self, data: &[u8], arena: &[u8]) -> Option<f64> {
        match *self {
            FieldValue::Int(i) => Some(i as f64),
            FieldValue::Float(f) => Some(f),
            FieldValue::Str(s) => std::str::from_utf8(s.of(data)).ok()?.trim().parse().ok(),
            FieldValue::Decoded(s) => std::str::from_utf8(s.of(arena)).ok()?.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Flag: the line was cut at the framer's `max_line_bytes`.
pub const FLAG_TRUNCATED: u8 = 1;
/// Flag: the line was not valid UTF-8 (it became a text event).
pub const FLAG_INVALID_UTF8: u8 = 2;
/// Flag: the event is a stack trace of a known language stitched from
/// several lines (an error to the budget even when no exception type could
/// be read from it; a custom multiline rule's groups are not flagged).
pub const FLAG_STACK_TRACE: u8 = 4;

/// One record: where its bytes are, what it is, and its routing fields.
#[derive(Debug, Clone)]
pub struct Event {
    /// The record's bytes (without the line terminator) in the batch's data.
    pub line: Span,
    /// JSON object, text, or not yet parsed.
    pub kind: EventKind,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Empty lines the framer skipped on this event's stream just before
    /// it (saturating). They carry nothing alone, but inside a stack trace
    /// they are part of what the program printed: the multiline stage puts
    /// them back when it stitches this line to the one before.
    pub blank_before: u16,
    /// Number of top-level keys of a JSON object (decides the comma when
    /// fields are appended).
    pub keys: u32,
    /// Index into the batch's origins, or [`Event::NO_ORIGIN`].
    pub origin: u32,
    /// Serialized `"key":value` pairs a stage appended, in the batch's arena.
    pub extra: Span,
    /// A whole replacement JSON object in the batch's arena, written instead
    /// of `line` (a stage that removed or changed fields).
    pub rewrite: Option<Span>,
    /// The routing fields, indexed by `Field as usize`.
    pub fields: [FieldValue; FIELD_COUNT],
}

impl Event {
    /// `origin` value of an event whose source attaches no metadata.
    pub const NO_ORIGIN: u32 = u32::MAX;

    /// A freshly framed, unparsed event.
    #[inline]
    pub fn unparsed(line: Span, flags: u8, origin: u32) -> Event {
        Event {
            line,
            kind: EventKind::Unparsed,
            flags,
            blank_before: 0,
            keys: 0,
            origin,
            extra: Span::EMPTY,
            rewrite: None,
            fields: [FieldValue::Absent; FIELD_COUNT],
        }
    }

    /// The value of one routing field.
    #[inline]
    pub fn field(&self, f: Field) -> FieldValue {
        self.fields[f as usize]
    }

    /// Whether the framer cut this line.
    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.flags & FLAG_TRUNCATED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_key(f.name().as_bytes()), Some(f));
        }
        assert_eq!(Field::from_key(b"message"), None);
        assert_eq!(Field::from_key(b"Level"), None);
        assert_eq!(Field::ALL.len(), FIELD_COUNT);
    }

    #[test]
    fn numbers_from_strings_and_numbers() {
        let data = b" 12.5 x";
        assert_eq!(FieldValue::Int(7).as_f64(data, b""), Some(7.0));
        assert_eq!(FieldValue::Str(Span::new(0, 5)).as_f64(data, b""), Some(12.5));
        assert_eq!(FieldValue::Str(Span::new(5, 2)).as_f64(data, b""), None);
        assert_eq!(FieldValue::Null.as_f64(data, b""), None);
    }

    #[test]
    fn event_stays_small() {
        // 16 slots of 16 bytes plus the header: a batch of 4096 events is ~1.2 MiB.
        assert!(std::mem::size_of::<Event>() <= 296, "{}", std::mem::size_of::<Event>());
    }
}
