//! Reading an event's values for the storage encoders: routing fields as
//! JSON values, the origin's fields (namespace, pod, ...), and the clock (the event's own `ts` is [`crate::timestamp`]'s).

use std::sync::Arc;

use sluice_core::{Batch, Event, Field, FieldValue};

/// Write field `f` of `event` as a JSON value (string, number, bool);
/// `false` when it is absent, null or composite.
pub fn write_field(batch: &Batch, event: &Event, f: Field, out: &mut Vec<u8>) -> bool {
    match event.field(f) {
        FieldValue::Str(s) => {
            // Came from valid JSON without escapes: already a valid literal.
            out.push(b'"');
            out.extend_from_slice(s.of(batch.data()));
            out.push(b'"');
        }
        FieldValue::Decoded(s) => sluice_core::encode::write_json_string(s.of(batch.arena()), out),
        FieldValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        FieldValue::Float(x) if x.is_finite() => out.extend_from_slice(ryu::Buffer::new().format(x).as_bytes()),
        FieldValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        _ => return false,
    }
    true
}

/// An origin and its fields as (key, value) pairs.
type ParsedOrigin = (Arc<sluice_core::Origin>, Vec<(String, String)>);

/// The origin fields of the events being encoded, parsed once per origin
/// (consecutive events nearly always share one).
#[derive(Default)]
pub struct OriginFields {
    current: Option<ParsedOrigin>,
}

impl OriginFields {
    /// Value of origin field `key` for `event`.
    pub fn get<'a>(&'a mut self, batch: &Batch, event: &Event, key: &str) -> Option<&'a str> {
        let origin = batch.origin_arc(event)?;
        let stale = self.current.as_ref().is_none_or(|(o, _)| !Arc::ptr_eq(o, &origin));
        if stale {
            let object = format!("{{{}}}", origin.fields_json);
            let pairs: Vec<(String, String)> =
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&object)
                    .map(|m| {
                        m.into_iter()
                            .filter_map(|(k, v)| match v {
                                serde_json::Value::String(s) => Some((k, s)),
                                serde_json::Value::Number(n) => Some((k, n.to_string())),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            self.current = Some((origin, pairs));
        }
        let (_, pairs) = self.current.as_ref()?;
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Now, as Unix nanoseconds.
pub fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Origin, Span};

    #[test]
    fn reads_origin_fields() {
        let mut b = Batch::new(
            b"{}".to_vec(),
            vec![Event::unparsed(Span::new(0, 2), 0, Event::NO_ORIGIN)],
        );
        let o = b.add_origin(Arc::new(Origin {
            stream_key: 1,
            fields_json: r#""namespace":"shop","pod":"api-1""#.into(),
            default_service: None,
            namespace: None,
        }));
        b.events_mut()[0].origin = o;
        let e = b.events()[0].clone();
        let mut of = OriginFields::default();
        assert_eq!(of.get(&b, &e, "pod"), Some("api-1"));
        assert_eq!(of.get(&b, &e, "namespace"), Some("shop"));
        assert_eq!(of.get(&b, &e, "container"), None);
    }
}
