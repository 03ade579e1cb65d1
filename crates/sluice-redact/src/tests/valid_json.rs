//! Whatever the record and whatever the policy, every output line is one
//! valid JSON object: checked with serde_json, a strict parser.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value};
use sluice_core::encode::write_batch;
use sluice_core::{Origin, Registry, Stage};
use sluice_parse::ParseStage;

use super::{framed, stage};

/// Keys records draw from: allowed by the default list, secret, unlisted,
/// nested-allowed, empty, and ones that need escapes.
const KEYS: [&str; 14] = [
    "msg",
    "time",
    "level",
    "password",
    "apiKey",
    "foo",
    "headers",
    "error",
    "kind",
    "user-agent",
    "",
    "q\"uote",
    "tab\tkey",
    "ключ",
];

/// Allow-list entries policies draw from (top-level, nested, whole objects).
const ENTRIES: [&str; 8] = [
    "msg",
    "foo",
    "headers.user-agent",
    "error.*",
    "error.kind",
    "level",
    "kind",
    "time",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::String),
        Just(Value::String("kim@example.com card 4111 1111 1111 1111".into())),
        Just(Value::String("-----BEGIN PRIVATE KEY-----".into())),
        Just(Value::String("tab\there \"quoted\" \\ back".into())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((0..KEYS.len(), inner), 0..4).prop_map(|members| Value::Object(
                members.into_iter().map(|(k, v)| (KEYS[k].to_string(), v)).collect()
            )),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    prop::collection::vec((0..KEYS.len(), value()), 0..6).prop_map(|members| {
        let mut m = Map::new();
        for (k, v) in members {
            m.insert(KEYS[k].to_string(), v);
        }
        Value::Object(m)
    })
}

/// parse → redact → encode, each event optionally carrying a file origin.
fn run_with_origin(lines: &[String], extra: &str, origin: bool) -> String {
    let mut st = stage(extra);
    let mut b = framed(lines);
    if origin {
        let o = b.add_origin(Arc::new(Origin {
            stream_key: 7,
            fields_json: "\"stream\":\"stdout\",\"file\":\"/var/log/pods/a_b_c/d/0.log\"".into(),
            default_service: Some("web".into()),
            namespace: None,
        }));
        for e in b.events_mut() {
            e.origin = o;
        }
    }
    ParseStage::new(&Registry::new()).parse_batch(&mut b);
    let mut out = Vec::new();
    st.process(b, &mut out);
    let mut text = Vec::new();
    for b in &out {
        write_batch(b, &mut text);
    }
    String::from_utf8(text).expect("output is UTF-8")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_output_line_is_one_json_object(
        records in prop::collection::vec(record(), 1..6),
        entries in prop::collection::vec(0..ENTRIES.len(), 0..5),
        mark in any::<bool>(),
        hash in any::<bool>(),
        origin in any::<bool>(),
    ) {
        let allow: Vec<String> = entries.iter().map(|&i| format!("{:?}", ENTRIES[i])).collect();
        let mut extra = format!("allow = [{}]\nmark = {mark}\n", allow.join(","));
        if hash {
            extra.push_str("unlisted = \"hash\"\nhash_key = \"k\"\n");
        }
        let lines: Vec<String> = records.iter().map(Value::to_string).collect();
        let text = run_with_origin(&lines, &extra, origin);
        let out: Vec<&str> = text.lines().collect();
        prop_assert_eq!(out.len(), lines.len());
        for line in out {
            let parsed: Result<Value, _> = serde_json::from_str(line);
            prop_assert!(matches!(parsed, Ok(Value::Object(_))), "not one JSON object: {}", line);
        }
    }
}

#[test]
fn a_record_with_nothing_allowed_is_an_empty_object_plus_what_sluice_adds() {
    let lines = [
        r#"{"foo":1}"#.to_string(),
        r#"{"time":"x","lvl":"info","text":"hello"}"#.to_string(),
    ];
    assert_eq!(
        run_with_origin(&lines, "allow = [\"msg\"]\n", false),
        "{\"redacted\":[\"unlisted\"]}\n{\"redacted\":[\"unlisted\"]}\n"
    );
    assert_eq!(
        run_with_origin(&lines[..1], "allow = [\"msg\"]\nmark = false\n", true),
        "{\"service\":\"web\",\"stream\":\"stdout\",\"file\":\"/var/log/pods/a_b_c/d/0.log\"}\n"
    );
    assert_eq!(
        run_with_origin(&lines[..1], "allow = [\"msg\"]\nmark = false\n", false),
        "{}\n"
    );
}
