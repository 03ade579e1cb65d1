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
fn integers_past_64_bits_are_json_numbers_not_text() {
    // Valid JSON: simd-json refuses such an integer unless told to read it
    // as a float (`big-int-as-float`), which would make the record text.
    let (b, registry) = parsed(&[br#"{"status":99999999999999999999,"order_id":-123456789012345678901234567890}"#]);
    let e = &b.events()[0];
    assert_eq!(e.kind, EventKind::Json);
    assert_eq!(e.field(Field::Status), FieldValue::Float(1e20));
    assert_eq!(registry.total("parse_errors_total"), 0);
    assert_eq!(registry.value("parse_json_events_total", &[]), Some(1));
    let mut out = Vec::new();
    write_batch(&b, &mut out);
    assert_eq!(
        out, b"{\"status\":99999999999999999999,\"order_id\":-123456789012345678901234567890}\n",
        "the digits pass through as written"
    );
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

/// What one path made of a line: why it became text, the event, the arena.
type Outcome = (Option<TextReason>, Event, Vec<u8>);

/// Both paths on one line: (full extract with the fast path, tape only,
/// whether the fast path alone accepted it).
fn both_paths(line: &[u8]) -> (Outcome, Outcome, bool) {
    let fresh = || Event::unparsed(Span::new(0, line.len()), 0, Event::NO_ORIGIN);
    let mut x = JsonFieldExtractor::new();
    let (mut fast, mut fast_arena) = (fresh(), Vec::new());
    let fast_reason = x.extract(line, &mut fast, &mut fast_arena);
    let (mut tape, mut tape_arena) = (fresh(), Vec::new());
    let tape_reason = x.extract_via(line, &mut tape, &mut tape_arena, false);
    let accepted = flat::extract_flat(line, 0, &mut fresh()).is_some();
    (
        (fast_reason, fast, fast_arena),
        (tape_reason, tape, tape_arena),
        accepted,
    )
}

fn assert_same(line: &[u8]) -> bool {
    let ((fr, fe, fa), (tr, te, ta), accepted) = both_paths(line);
    let shown = String::from_utf8_lossy(line);
    assert_eq!(fr, tr, "{shown}");
    assert_eq!(fe.kind, te.kind, "{shown}");
    assert_eq!(fe.keys, te.keys, "{shown}");
    assert_eq!(fe.flags, te.flags, "{shown}");
    // Debug prints floats exactly (-0.0 is not 0.0 there).
    assert_eq!(format!("{:?}", fe.fields), format!("{:?}", te.fields), "{shown}");
    assert_eq!(fa, ta, "{shown}");
    accepted
}

/// A record assembled from pieces that are valid, invalid or just unusual
/// JSON, so both paths see many near-misses of the flat shape.
fn assembled(seed: &mut u64) -> Vec<u8> {
    fn next(seed: &mut u64, n: usize) -> usize {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % n as u64) as usize
    }
    const KEYS: &[&str] = &[
        "ts",
        "level",
        "service",
        "env",
        "trace_id",
        "status",
        "duration_ms",
        "route",
        "msg",
        "namespace",
        "user",
        "",
        "ключ",
        "stacktrace",
        "error_type",
    ];
    const ODD_KEYS: &[&str] = &["k\\\"ey", "tab\there", "a\\u0062"];
    const VALUES: &[&str] = &[
        "\"plain\"",
        "\"\"",
        "\"caf\u{e9} \u{d55c}\u{ae00}\"",
        "0",
        "-0",
        "503",
        "-17",
        "12.5",
        "1e3",
        "-2.5E-3",
        "1E+2",
        "123456789012345678",
        "true",
        "false",
        "null",
    ];
    const ODD_VALUES: &[&str] = &[
        "\"esc\\naped\"",
        "\"\\u00e9\"",
        "\"tab\there\"",
        "\"nul\u{0}\"",
        "\"bad\\x\"",
        "\"unterminated",
        "01",
        "1.",
        ".5",
        "-",
        "1e400",
        "1234567890123456789",
        "99999999999999999999",
        "1.000000000000000000000000000000001",
        "tru",
        "nul",
        "{}",
        "{\"a\":1}",
        "[1,2]",
        "[]",
        "x",
        "\"a\"\"b\"",
    ];
    const GAPS: &[&str] = &["", "", "", " ", "\t", "\r", "  \n"];
    const ODD_GAPS: &[&str] = &["\u{c}", "\u{0}", "\u{a0}"];
    // Mostly valid pieces, a near-miss now and then: every record has up to
    // a dozen pieces, so about half of them stay valid flat objects.
    fn pick(seed: &mut u64, good: &[&'static str], odd: &[&'static str]) -> &'static str {
        if next(seed, 40) == 0 {
            odd[next(seed, odd.len())]
        } else {
            good[next(seed, good.len())]
        }
    }
    let mut line = Vec::new();
    line.extend_from_slice(pick(seed, GAPS, ODD_GAPS).as_bytes());
    line.push(b'{');
    let members = next(seed, 6);
    for m in 0..members {
        if m > 0 {
            line.extend_from_slice(pick(seed, &[","], &[",,", ";", ""]).as_bytes());
        }
        line.extend_from_slice(pick(seed, GAPS, ODD_GAPS).as_bytes());
        line.extend_from_slice(format!("\"{}\"", pick(seed, KEYS, ODD_KEYS)).as_bytes());
        line.extend_from_slice(pick(seed, GAPS, ODD_GAPS).as_bytes());
        line.extend_from_slice(pick(seed, &[":"], &["=", "", "::"]).as_bytes());
        line.extend_from_slice(pick(seed, GAPS, ODD_GAPS).as_bytes());
        line.extend_from_slice(pick(seed, VALUES, ODD_VALUES).as_bytes());
    }
    line.extend_from_slice(pick(seed, GAPS, ODD_GAPS).as_bytes());
    line.extend_from_slice(pick(seed, &["}"], &["} x", "}}", "", "},"]).as_bytes());
    if next(seed, 40) == 0 {
        // A byte that is never UTF-8, somewhere.
        let at = next(seed, line.len() + 1);
        line.insert(at, 0xff);
    }
    line
}

#[test]
fn the_flat_path_agrees_with_the_tape_on_assembled_records() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut accepted, total) = (0, 40_000);
    for _ in 0..total {
        if assert_same(&assembled(&mut seed)) {
            accepted += 1;
        }
    }
    // Both shapes are well covered: the comparison is not vacuous.
    assert!(
        accepted > total / 10 && accepted < total * 9 / 10,
        "flat path took {accepted} of {total}"
    );
}

#[test]
fn the_flat_path_agrees_with_the_tape_on_hand_picked_lines() {
    let lines: &[(&[u8], bool)] = &[
        (
            br#"{"ts":"2026-11-25T01:02:03.004Z","level":"ERROR","status":503,"duration_ms":12.5}"#,
            true,
        ),
        (br#"{}"#, true),
        (br#"  { "a" : 1 , "b":[1]}"#, false),
        (br#"{"level":"info","level":"warn"}"#, true),
        (br#"{"msg":"tail"}  "#, true),
        (br#"{"msg":"tail"} x"#, false),
        ("{\"msg\":\"\u{d55c}\u{ae00} \u{b85c}\u{adf8}\"}".as_bytes(), true),
        (b"{\"msg\":\"\xff\"}", false),
        (b"{\"msg\":\"\xc3\"}", false),
        (br#"{"duration_ms":1e2,"status":-0}"#, true),
        (br#"{"duration_ms":0.1,"status":200.0}"#, true),
        (br#"{"duration_ms":123.456789012345678901234}"#, true),
        (br#"{"status":1e400}"#, false),
        (br#"{"service":"a\/b"}"#, false),
        (b"{\"msg\":\"a\x01b\"}", false),
        // A UTF-16 surrogate and an overlong NUL, both not UTF-8.
        (b"{\"msg\":\"\xed\xa0\x80\"}", false),
        (b"{\"msg\":\"\xc0\x80\"}", false),
        (br#"{"duration_ms":1e99}"#, true),
        (br#"{"duration_ms":1e100}"#, false),
        (br#"{"duration_ms":-0.0}"#, true),
    ];
    for (line, fast) in lines {
        assert_eq!(assert_same(line), *fast, "{}", String::from_utf8_lossy(line));
    }
}

proptest::proptest! {
    /// Floats as loggers print them come out of both paths bit for bit; the
    /// common ones (plain notation, at most 30 digits) through the fast path.
    #[test]
    fn floats_match_simd_json(
        f in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        g in -1e9f64..1e9,
        digits in 0usize..8,
    ) {
        for text in [format!("{f}"), format!("{f:.digits$}"), format!("{f:e}"), format!("{g}"), format!("{g:.digits$}")] {
            let line = format!("{{\"duration_ms\":{text}}}");
            let accepted = assert_same(line.as_bytes());
            let n = text.bytes().filter(u8::is_ascii_digit).count();
            if !text.contains('e') && n <= 18 {
                proptest::prop_assert!(accepted, "{}", line);
            }
        }
    }
}
