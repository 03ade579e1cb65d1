use super::*;
use sluice_core::encode::write_batch;

fn batch_of(lines: &[&[u8]]) -> Batch {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    Batch::new(data, events)
}

fn parsed(lines: &[&[u8]]) -> (Batch, Registry) {
    let registry = Registry::new();
    let mut stage = ParseStage::new(&registry);
    let mut b = batch_of(lines);
    stage.parse_batch(&mut b);
    (b, registry)
}

#[test]
fn extracts_routing_fields_without_copying() {
    let line = br#"{"ts":"2026-11-25T01:02:03.004Z","level":"ERROR","service":"checkout","status":503,"duration_ms":12.5,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","headers":{"level":"nested-not-routed"},"tags":["a","b"],"event":"request_summary","route":null,"env":true}"#;
    let (b, _) = parsed(&[line]);
    let e = &b.events()[0];
    assert_eq!(e.kind, EventKind::Json);
    assert_eq!(e.keys, 11);
    assert_eq!(b.str_field(e, Field::Ts), Some(&b"2026-11-25T01:02:03.004Z"[..]));
    assert_eq!(b.str_field(e, Field::Level), Some(&b"ERROR"[..]));
    assert_eq!(b.str_field(e, Field::Service), Some(&b"checkout"[..]));
    assert_eq!(e.field(Field::Status), FieldValue::Int(503));
    assert_eq!(b.num_field(e, Field::DurationMs), Some(12.5));
    assert_eq!(e.field(Field::Route), FieldValue::Null);
    assert_eq!(e.field(Field::Env), FieldValue::Bool(true));
    assert_eq!(e.field(Field::Msg), FieldValue::Absent);
    assert!(
        matches!(e.field(Field::TraceId), FieldValue::Str(_)),
        "no escapes: a span of the line"
    );
    assert_eq!(b.arena(), b"", "nothing was copied");
}

#[test]
fn escaped_strings_are_decoded_into_the_arena() {
    let (b, _) = parsed(&[br#"{"msg":"line1\nq\"uote\u00e9","service":"a\/b"}"#]);
    let e = &b.events()[0];
    assert_eq!(b.str_field(e, Field::Msg), Some("line1\nq\"uote\u{e9}".as_bytes()));
    assert_eq!(b.str_field(e, Field::Service), Some(&b"a/b"[..]));
    assert!(matches!(e.field(Field::Msg), FieldValue::Decoded(_)));
}

#[test]
fn nested_values_are_skipped_not_confused_with_top_level_keys() {
    let (b, _) = parsed(&[br#"{"body":{"service":"inner","x":[{"level":"x"}]},"level":"warn"}"#]);
    let e = &b.events()[0];
    assert_eq!(b.str_field(e, Field::Service), None);
    assert_eq!(b.str_field(e, Field::Level), Some(&b"warn"[..]));
}

#[test]
fn everything_that_is_not_an_object_becomes_text_and_is_counted() {
    let lines: [&[u8]; 7] = [
        b"plain text line",
        b"{\"unterminated\":",
        b"[1,2,3]",
        b"42",
        b"{\"bad\":\"\xff\xfe\"}",
        b"{\"nul\":\"a\0b\"}",
        b"   ",
    ];
    let (b, r) = parsed(&lines);
    assert!(b.events().iter().all(|e| e.kind == EventKind::Text));
    assert_eq!(r.value("parse_errors_total", &[("reason", "not_object")]), Some(4));
    assert_eq!(r.value("parse_errors_total", &[("reason", "invalid_json")]), Some(2));
    assert_eq!(r.value("parse_errors_total", &[("reason", "invalid_utf8")]), Some(1));
    assert_eq!(r.value("parse_json_events_total", &[]), Some(0));
    let mut out = Vec::new();
    write_batch(&b, &mut out);
    let out = String::from_utf8(out).unwrap();
    let messages: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "plain text line",
            "{\"unterminated\":",
            "[1,2,3]",
            "42",
            "{\"bad\":\"\u{fffd}\u{fffd}\"}",
            "{\"nul\":\"a\0b\"}",
            "   "
        ]
    );
}

#[test]
fn valid_json_passes_byte_for_byte() {
    let lines: [&[u8]; 3] = [
        br#"{"a":1}"#,
        br#"  { "spaced" : [ 1 , 2 ] , "u":"\u0041" }  "#,
        br#"{}"#,
    ];
    let (b, r) = parsed(&lines);
    let mut out = Vec::new();
    write_batch(&b, &mut out);
    let expected: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    assert_eq!(out, expected);
    assert_eq!(r.value("parse_json_events_total", &[]), Some(3));
}

#[test]
fn the_extractor_reuses_its_buffers_across_long_and_short_lines() {
    let long = format!("{{\"msg\":\"{}\",\"level\":\"info\"}}", "x".repeat(200_000));
    let (b, _) = parsed(&[long.as_bytes(), br#"{"level":"debug"}"#, long.as_bytes()]);
    assert_eq!(b.str_field(&b.events()[1], Field::Level), Some(&b"debug"[..]));
    assert_eq!(b.str_field(&b.events()[2], Field::Msg).map(<[u8]>::len), Some(200_000));
}

proptest::proptest! {
    /// Whatever the bytes, a line is classified, never lost, and a JSON
    /// object's output equals its input.
    #[test]
    fn any_bytes_are_kept(line in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let line: Vec<u8> = line.into_iter().filter(|&b| b != b'\n').collect();
        let (b, _) = parsed(&[&line]);
        let e = &b.events()[0];
        let mut out = Vec::new();
        write_batch(&b, &mut out);
        match e.kind {
            EventKind::Json => proptest::prop_assert_eq!(&out[..out.len() - 1], &line[..]),
            EventKind::Text => {
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let expected = String::from_utf8_lossy(&line);
                proptest::prop_assert_eq!(v["message"].as_str().unwrap(), expected.as_ref());
            }
            EventKind::Unparsed => proptest::prop_assert!(false, "left unparsed"),
        }
    }
}
