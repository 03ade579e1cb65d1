//! The output contract: one JSON object per event per line (NDJSON).
//!
//! * A JSON event nobody changed is written byte-for-byte as it came in.
//! * A JSON event with appended fields (source metadata, `sample_rate`, ...)
//!   is its original bytes up to the closing brace, then `,"k":v...}`: the
//!   original bytes are still untouched.
//! * A rewritten event (a stage removed or changed fields) is its rewrite.
//! * A text event is `{"message":"<line, lossily decoded>"}` plus appended
//!   fields.
//! * A line the framer cut carries `"sluice_truncated":true`.
//! * An event whose origin names a default service and whose record has no
//!   `service` gets `"service":"<default>"`.

use crate::batch::Batch;
use crate::event::{Event, EventKind, Field, FieldValue, FLAG_TRUNCATED};

/// The field added to events whose line was cut at `max_line_bytes`.
pub const TRUNCATED_FIELD: &str = crate::added_fields::TRUNCATED;

/// Append every event of `batch` to `out`, one line each.
pub fn write_batch(batch: &Batch, out: &mut Vec<u8>) {
    out.reserve(batch.data_len() + batch.arena().len() + batch.len());
    for event in batch.events() {
        write_event(batch, event, out);
    }
}

/// The pairs written after an event's own fields.
struct Additions<'a> {
    service: Option<&'a str>,
    origin: &'a [u8],
    extra: &'a [u8],
    truncated: bool,
}

impl Additions<'_> {
    fn is_empty(&self) -> bool {
        self.service.is_none() && self.origin.is_empty() && self.extra.is_empty() && !self.truncated
    }

    fn write(&self, mut comma: bool, out: &mut Vec<u8>) {
        let mut sep = |out: &mut Vec<u8>| {
            if comma {
                out.push(b',');
            }
            comma = true;
        };
        if let Some(s) = self.service {
            sep(out);
            out.extend_from_slice(b"\"service\":");
            write_json_string(s.as_bytes(), out);
        }
        for frag in [self.origin, self.extra] {
            if !frag.is_empty() {
                sep(out);
                out.extend_from_slice(frag);
            }
        }
        if self.truncated {
            sep(out);
            out.extend_from_slice(b"\"sluice_truncated\":true");
        }
    }
}

/// Append one event and its newline to `out`.
pub fn write_event(batch: &Batch, event: &Event, out: &mut Vec<u8>) {
    let origin = batch.origin(event);
    let adds = Additions {
        service: match (
            origin.and_then(|o| o.default_service.as_deref()),
            event.field(Field::Service),
        ) {
            (Some(s), FieldValue::Absent) => Some(s),
            _ => None,
        },
        origin: origin.map(|o| o.fields_json.as_bytes()).unwrap_or(b""),
        extra: event.extra.of(batch.arena()),
        truncated: event.flags & FLAG_TRUNCATED != 0,
    };
    match (event.kind, event.rewrite) {
        (_, Some(rewrite)) => write_object_with(rewrite.of(batch.arena()), &adds, out),
        (EventKind::Json, None) if adds.is_empty() => out.extend_from_slice(batch.line(event)),
        (EventKind::Json, None) => write_object_with(batch.line(event), &adds, out),
        (EventKind::Text | EventKind::Unparsed, None) => {
            out.extend_from_slice(b"{\"message\":");
            write_json_string(batch.line(event), out);
            adds.write(true, out);
            out.push(b'}');
        }
    }
    out.push(b'\n');
}

/// Write a JSON object's bytes with more pairs spliced in before its closing
/// brace. `object` must end (after optional whitespace) with `}`. Whether a
/// comma goes first is read from the bytes themselves, not from what a
/// stage believes it wrote: an object every member was removed from is
/// `{}`, and `{,"k":v}` must never come out.
fn write_object_with(object: &[u8], adds: &Additions<'_>, out: &mut Vec<u8>) {
    let close = object.iter().rposition(|&b| b == b'}').unwrap_or(object.len());
    let has_members = object[..close]
        .iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b != b'{');
    out.extend_from_slice(&object[..close]);
    adds.write(has_members, out);
    out.push(b'}');
}

/// Write `bytes` as a JSON string literal, replacing invalid UTF-8 with
/// U+FFFD (the only allocation, and only for broken input). The escapes are
/// serde_json's: `\"`, `\\`, `\b \f \n \r \t`, other control bytes as
/// `\u00xx`.
pub fn write_json_string(bytes: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(bytes) {
        Ok(_) => escape_into(bytes, out),
        Err(_) => escape_into(String::from_utf8_lossy(bytes).as_bytes(), out),
    }
}

/// Whether any byte of `w` is a control byte, `"` or `\\` (eight bytes per
/// step, so the runs between escapes are copied, not inspected one by one).
#[inline]
fn needs_escape(w: u64) -> bool {
    crate::json_scan::stop_bytes(w, crate::json_scan::Stops::NEEDS_ESCAPE) != 0
}

/// The short escape of `c` (`n` for a newline), 0 when it needs none, 1
/// when it needs `\u00xx`.
const SHORT_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = 1;
        c += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

fn escape_into(b: &[u8], out: &mut Vec<u8>) {
    // Fast path: write into room for the worst case of two-byte escapes
    // (JSON text escapes a quote every few bytes, so per-run copies would
    // cost more than the bytes); a rare `\u00xx` control byte falls back.
    let base = out.len();
    out.resize(base + 2 * b.len() + 2, 0);
    let buf = &mut out[base..];
    buf[0] = b'"';
    let mut j = 1;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let chunk: &[u8; 8] = chunk.try_into().expect("8 bytes");
        if !needs_escape(u64::from_le_bytes(*chunk)) {
            buf[j..j + 8].copy_from_slice(chunk);
            j += 8;
            continue;
        }
        // Something in these eight needs escaping: do all eight by table.
        for &c in chunk {
            if !put_escaped(c, buf, &mut j) {
                out.truncate(base);
                return escape_slow(b, out);
            }
        }
    }
    for &c in chunks.remainder() {
        if !put_escaped(c, buf, &mut j) {
            out.truncate(base);
            return escape_slow(b, out);
        }
    }
    buf[j] = b'"';
    out.truncate(base + j + 1);
}

/// Write `c` at `buf[*j]`, escaped if it must be; `false` for a control
/// byte that needs the long `\u00xx` form.
#[inline(always)]
fn put_escaped(c: u8, buf: &mut [u8], j: &mut usize) -> bool {
    match SHORT_ESCAPE[c as usize] {
        0 => {
            buf[*j] = c;
            *j += 1;
        }
        1 => return false,
        e => {
            buf[*j] = b'\\';
            buf[*j + 1] = e;
            *j += 2;
        }
    }
    true
}

fn escape_slow(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() + 2);
    out.push(b'"');
    for &c in b {
        match SHORT_ESCAPE[c as usize] {
            0 => out.push(c),
            1 => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]),
            e => out.extend_from_slice(&[b'\\', e]),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #[test]
    fn strings_escape_exactly_as_serde_json_does() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"plain ascii, long enough for several words".to_vec(),
            b"q\"uote and back\\slash\n\r\t\x08\x0c\x01\x1f\x7f end".to_vec(),
            "한국어 🎉 \u{2028}".as_bytes().to_vec(),
            b"".to_vec(),
        ];
        samples.extend((0u8..=255).map(|c| vec![b'a', c, b'b', b'c', b'd', b'e', b'f', b'g', b'h', c]));
        for s in samples {
            let mut ours = Vec::new();
            super::write_json_string(&s, &mut ours);
            let text = String::from_utf8_lossy(&s);
            assert_eq!(ours, serde_json::to_vec(text.as_ref()).unwrap(), "{s:?}");
        }
    }

    use super::*;
    use crate::batch::Origin;
    use crate::event::{Span, FLAG_TRUNCATED};
    use std::sync::Arc;

    fn one(line: &[u8], kind: EventKind, keys: u32) -> Batch {
        let mut e = Event::unparsed(Span::new(0, line.len()), 0, Event::NO_ORIGIN);
        e.kind = kind;
        e.keys = keys;
        Batch::new(line.to_vec(), vec![e])
    }

    fn encoded(b: &Batch) -> String {
        let mut out = Vec::new();
        write_batch(b, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn untouched_json_is_byte_identical() {
        let line = br#"{ "b":1,  "a" : "x\u0041" }"#;
        assert_eq!(
            encoded(&one(line, EventKind::Json, 2)).as_bytes(),
            [&line[..], b"\n"].concat()
        );
    }

    #[test]
    fn appended_fields_splice_before_the_brace() {
        let mut b = one(br#"{"a":1}  "#, EventKind::Json, 1);
        b.append_field(0, "sample_rate", b"20");
        assert_eq!(encoded(&b), "{\"a\":1,\"sample_rate\":20}\n");

        let mut empty = one(b"{ }", EventKind::Json, 0);
        empty.append_field(0, "k", b"true");
        assert_eq!(encoded(&empty), "{ \"k\":true}\n");
    }

    #[test]
    fn text_events_are_wrapped_and_escaped() {
        let b = one(b"bad \"x\"\0\t\xff end", EventKind::Text, 0);
        assert_eq!(encoded(&b), "{\"message\":\"bad \\\"x\\\"\\u0000\\t\u{fffd} end\"}\n");
    }

    #[test]
    fn origin_and_truncation_are_added() {
        let mut b = one(b"plain", EventKind::Text, 0);
        let o = b.add_origin(Arc::new(Origin {
            stream_key: 9,
            fields_json: "\"pod\":\"web-1\"".into(),
            default_service: Some("web".into()),
            namespace: None,
        }));
        b.events_mut()[0].origin = o;
        b.events_mut()[0].flags |= FLAG_TRUNCATED;
        assert_eq!(
            encoded(&b),
            "{\"message\":\"plain\",\"service\":\"web\",\"pod\":\"web-1\",\"sluice_truncated\":true}\n"
        );
    }

    #[test]
    fn rewrite_replaces_the_line() {
        let mut b = one(br#"{"password":"x"}"#, EventKind::Json, 1);
        let span = b.push_arena(br#"{"password":"****"}"#);
        b.events_mut()[0].rewrite = Some(span);
        assert_eq!(encoded(&b), "{\"password\":\"****\"}\n");
    }

    #[test]
    fn an_emptied_rewrite_takes_additions_without_a_leading_comma() {
        for emptied in [&b"{}"[..], b"{ }", b"{\n}\n"] {
            let mut b = one(br#"{"foo":1}"#, EventKind::Json, 1);
            let span = b.push_arena(emptied);
            b.events_mut()[0].rewrite = Some(span);
            let o = b.add_origin(Arc::new(Origin {
                stream_key: 1,
                fields_json: "\"stream\":\"stdout\"".into(),
                default_service: None,
                namespace: None,
            }));
            b.events_mut()[0].origin = o;
            b.append_field(0, "redacted", b"[\"unlisted\"]");
            let text = encoded(&b);
            let body = &emptied[..emptied.iter().rposition(|&c| c == b'}').unwrap()];
            assert_eq!(
                text,
                format!(
                    "{}\"stream\":\"stdout\",\"redacted\":[\"unlisted\"]}}\n",
                    String::from_utf8_lossy(body)
                )
            );
        }
        // And with nothing to add it stays the empty object.
        let mut b = one(br#"{"foo":1}"#, EventKind::Json, 1);
        let span = b.push_arena(b"{}");
        b.events_mut()[0].rewrite = Some(span);
        assert_eq!(encoded(&b), "{}\n");
    }
}
