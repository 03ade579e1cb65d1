use super::*;
use sluice_core::encode::write_batch;
use sluice_core::{Event, Span};
use sluice_parse::ParseStage;

fn stage(extra: &str) -> RedactStage {
    let text = format!("[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[redact]\n{extra}\n");
    let cfg = sluice_config::parse(&text, std::path::Path::new("t"), &|_| None).unwrap();
    RedactStage::new(cfg.redact.as_ref().unwrap(), &Registry::new()).unwrap()
}

/// One unparsed event per line, as a framer cuts them.
fn framed<S: AsRef<str>>(lines: &[S]) -> Batch {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        let l = l.as_ref();
        events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(l.as_bytes());
        data.push(b'\n');
    }
    Batch::new(data, events)
}

/// parse → redact → encode, one output line per input line.
fn run(st: &mut RedactStage, lines: &[&str]) -> Vec<String> {
    let mut b = framed(lines);
    ParseStage::new(&Registry::new()).parse_batch(&mut b);
    let mut out = Vec::new();
    st.process(b, &mut out);
    let mut text = Vec::new();
    write_batch(&out[0], &mut text);
    String::from_utf8(text).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn the_labelled_corpus() {
    let corpus = include_str!("../../../tests/redaction_corpus.tsv");
    let mut st = stage("");
    let (mut pos, mut neg) = (0, 0);
    for row in corpus.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let cols: Vec<&str> = row.split('\t').collect();
        let (kind, rule, text) = (cols[0], cols[1], cols[2]);
        let record = serde_json::json!({"level": "info", "msg": text}).to_string();
        // As a JSON field and as a plain-text line.
        for input in [record.as_str(), text] {
            let out = run(&mut st, &[input]);
            let expected_plain = serde_json::json!({"message": text}).to_string();
            match kind {
                "pos" => {
                    let secret = cols[3];
                    assert!(!out[0].contains(secret), "{rule}: `{secret}` survived in {}", out[0]);
                    let v: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
                    assert!(
                        v["redacted"].as_array().unwrap().iter().any(|r| r == rule),
                        "{rule} not credited: {}",
                        out[0]
                    );
                    pos += 1;
                }
                "neg" => {
                    let want = if input == text { expected_plain.as_str() } else { input };
                    assert_eq!(out[0], want, "negative `{rule}` was touched");
                    neg += 1;
                }
                other => panic!("bad corpus row kind {other}"),
            }
        }
    }
    assert_eq!((pos, neg), (2 * 46, 2 * 16));
}

#[test]
fn whitelist_removes_unlisted_fields_and_opens_objects_field_by_field() {
    let mut st = stage("");
    let out = run(
        &mut st,
        &[
            r#"{"ts":"2026-11-25T01:02:03Z","level":"INFO","service":"api","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","status":200,"duration_ms":12,"headers":{"user-agent":"curl","x-forwarded-for":"1.2.3.4"},"body":{"q":"x"},"internal_note":"keep out"}"#,
        ],
    );
    assert_eq!(
        out[0],
        r#"{"ts":"2026-11-25T01:02:03Z","level":"INFO","service":"api","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","status":200,"duration_ms":12,"redacted":["unlisted"]}"#
    );
    let mut open = stage(
        r#"[redact.services."api*"]
allow = ["headers.user-agent"]"#,
    );
    let out = run(
        &mut open,
        &[r#"{"service":"api-gw","headers":{"user-agent":"curl","authorization":"Bearer abcdefghijkl","x":"y"}}"#],
    );
    assert_eq!(
        out[0],
        r#"{"service":"api-gw","headers":{"user-agent":"curl","authorization":"****"},"redacted":["secret_key","unlisted"]}"#
    );
}

#[test]
fn secret_key_names_are_masked_at_any_depth_even_when_allowed() {
    let mut st = stage(r#"allow = ["msg", "ctx", "ctx.*"]"#);
    let out = run(
        &mut st,
        &[r#"{"msg":"ok","ctx":{"user":{"apiKey":"k-123","name":"x"},"sessionId":"s1"},"Password":"p"}"#],
    );
    assert_eq!(
        out[0],
        r#"{"msg":"ok","ctx":{"user":{"apiKey":"****","name":"x"},"sessionId":"****"},"Password":"****","redacted":["secret_key"]}"#
    );
}

#[test]
fn untouched_events_pass_byte_for_byte_and_pipeline_fields_are_never_damaged() {
    let mut st = stage("");
    let line = r#"{ "ts" : "2026-11-25T01:02:03.123Z", "trace_id":"4111111111111111","request_id":"010-1234-5678","status":503,"route":"/v1/users/{id}","duration_ms":1234567890123,"msg":"fine"}"#;
    assert_eq!(run(&mut st, &[line])[0], line);
}

#[test]
fn unlisted_fields_can_be_hashed_for_joins() {
    let mut st = stage("unlisted = \"hash\"\nhash_key = \"k1\"\nmark = false");
    let out = run(
        &mut st,
        &[r#"{"msg":"a","customer":"c-42"}"#, r#"{"msg":"b","customer":"c-42"}"#],
    );
    let a: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
    let b: serde_json::Value = serde_json::from_str(&out[1]).unwrap();
    let h = a["customer"].as_str().unwrap();
    assert!(h.starts_with("hmac:") && h.len() == 5 + 16, "{h}");
    assert_eq!(a["customer"], b["customer"], "equal values hash equal");
    assert!(a.get("redacted").is_none());
}

#[test]
fn counters_name_rule_and_field_never_the_value() {
    let registry = Registry::new();
    let text = "[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[redact]\n";
    let cfg = sluice_config::parse(text, std::path::Path::new("t"), &|_| None).unwrap();
    let mut st = RedactStage::new(cfg.redact.as_ref().unwrap(), &registry).unwrap();
    run(&mut st, &[r#"{"msg":"mail kim@example.com","body":{"x":1}}"#]);
    assert_eq!(
        registry.value("redactions_total", &[("rule", "email"), ("field", "msg")]),
        Some(1)
    );
    assert_eq!(
        registry.value("redactions_total", &[("rule", "unlisted"), ("field", "body")]),
        Some(1)
    );
    assert!(!registry.render_prometheus().contains("kim@"));
}

#[test]
fn a_rule_names_at_most_a_thousand_fields_and_counts_the_rest_together() {
    let registry = Registry::new();
    let text = "[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[redact]\n";
    let cfg = sluice_config::parse(text, std::path::Path::new("t"), &|_| None).unwrap();
    let mut st = RedactStage::new(cfg.redact.as_ref().unwrap(), &registry).unwrap();
    // 1,500 records, each with its own unlisted key.
    let lines: Vec<String> = (0..1500).map(|n| format!(r#"{{"msg":"ok","k{n}":1}}"#)).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    run(&mut st, &refs);
    let unlisted = |field: &str| registry.value("redactions_total", &[("rule", "unlisted"), ("field", field)]);
    assert_eq!(
        (unlisted("k0"), unlisted("k999"), unlisted("k1000")),
        (Some(1), Some(1), None)
    );
    assert_eq!(unlisted(OTHER_FIELDS), Some(500));
    let series = registry
        .render_prometheus()
        .lines()
        .filter(|l| l.starts_with("sluice_redactions_total{"))
        .count();
    assert_eq!(series, MAX_FIELDS_PER_RULE + 1);
}

proptest::proptest! {
    /// Random records with planted secrets: no output holds a planted value.
    #[test]
    fn planted_secrets_never_survive(
        user in "[a-z]{3,10}",
        pw in "[A-Za-z0-9]{6,16}",
        digits in "[0-9]{4}",
        filler in "[a-z ]{0,30}",
        where_ in 0usize..4,
    ) {
        let email = format!("{user}.{digits}@example.com");
        let secrets = [
            (format!("{filler} contact {email}"), email.clone()),
            (format!("login password={pw}{digits} {filler}"), format!("{pw}{digits}")),
            (format!("{filler} call 010-{digits}-1234"), format!("010-{digits}")),
            (format!("https://{user}:{pw}X@h.example.com/{filler}"), format!("{pw}X")),
        ];
        let (text, secret) = &secrets[where_];
        let record = serde_json::json!({"msg": text, "level": "info", "password": pw, "extra": {"token": digits}}).to_string();
        let mut st = stage("");
        let out = run(&mut st, &[&record, text]);
        for line in &out {
            proptest::prop_assert!(!line.contains(secret.as_str()), "{} in {}", secret, line);
            if pw.len() >= 6 {
                proptest::prop_assert!(!line.contains(&format!("\"{pw}\"")), "password value in {}", line);
            }
        }
    }
}

#[test]
fn a_removed_routing_field_is_gone_for_the_sinks_too() {
    // `namespace` is not on this list: the record loses it, and so does the
    // routing slot sinks read columns, labels and keys from.
    let mut st = stage("allow = [\"msg\", \"service\"]");
    let line = r#"{"service":"api","namespace":"shop","msg":"ok"}"#;
    let mut b = Batch::new(
        format!("{line}\n").into_bytes(),
        vec![Event::unparsed(Span::new(0, line.len()), 0, Event::NO_ORIGIN)],
    );
    ParseStage::new(&Registry::new()).parse_batch(&mut b);
    assert_eq!(b.str_field(&b.events()[0], Field::Namespace), Some(&b"shop"[..]));
    let mut out = Vec::new();
    st.process(b, &mut out);
    let b = &out[0];
    assert_eq!(b.str_field(&b.events()[0], Field::Namespace), None);
    assert_eq!(b.str_field(&b.events()[0], Field::Service), Some(&b"api"[..]));
    let mut text = Vec::new();
    write_batch(b, &mut text);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "{\"service\":\"api\",\"msg\":\"ok\",\"redacted\":[\"unlisted\"]}\n"
    );
}

#[test]
fn what_the_node_tier_adds_passes_an_aggregator() {
    let mut st = stage("");
    let line = r#"{"msg":"ok","namespace":"shop","pod":"api-7","pod_uid":"u1","container":"api","stream":"stdout","file":"/var/log/pods/shop_api-7_u1/api/0.log","runtime_ts":"2026-11-25T00:00:00.1Z"}"#;
    assert_eq!(run(&mut st, &[line]), vec![line.to_string()]);
}

/// Keys the equivalence property draws from: allowed, protected, secret,
/// unlisted, one that opens field by field, and one that needs an escape.
const PROPERTY_KEYS: [&str; 10] = [
    "msg",
    "path",
    "trace_id",
    "status",
    "password",
    "apiKey",
    "unknown",
    "headers",
    "client_ip",
    "m\\u0073g",
];

/// Values: clean text, ids, secrets of several detectors, an escape, a
/// digit run, numbers, literals, containers.
const PROPERTY_VALUES: [&str; 14] = [
    r#""request completed""#,
    r#""/v1/users/12""#,
    r#""4bf92f3577b34da6a3ce929d0e0e4736""#,
    r#""kim@example.com""#,
    r#""card 4111 1111 1111 1111""#,
    r#""token refreshed""#,
    r#""Bearer abcdefghijkl""#,
    r#""tab\there""#,
    r#""1234567890123""#,
    "200",
    "-1.5e3",
    "null",
    r#"{"user-agent":"curl"}"#,
    r#"["a","b"]"#,
];

proptest::proptest! {
    /// The fast path never clears a record the full walk would change.
    #[test]
    fn the_fast_path_agrees_with_the_full_walk(
        members in proptest::collection::vec((0usize..10, 0usize..14), 0..8),
        spaced in proptest::bool::ANY,
    ) {
        let sep = if spaced { " , " } else { "," };
        let body: Vec<String> = members
            .iter()
            .map(|&(k, v)| format!("\"{}\":{}", PROPERTY_KEYS[k], PROPERTY_VALUES[v]))
            .collect();
        let record = format!("{{{}}}", body.join(sep));
        let mut st = stage("[redact.services.\"*\"]\nallow = [\"headers.user-agent\"]");
        let allow = st.lists[0].clone();
        let clean = flat::certainly_clean(record.as_bytes(), &allow, &st.detectors, &mut st.memo, &mut st.clean_values);
        let mut hits = Vec::new();
        let changed = st.walk(record.as_bytes(), &allow, &mut hits).is_some();
        proptest::prop_assert!(!(clean && changed), "fast path cleared {} but the walk changed it", record);
    }
}

#[test]
fn every_pair_of_members_is_judged_alike_by_both_paths() {
    // Exhaustive over records of one and two members from the property's
    // pools: the fast path never clears what the walk changes, and on a flat
    // record (no escape, no container) it decides exactly as the walk does.
    let mut st = stage("[redact.services.\"*\"]\nallow = [\"headers.user-agent\"]");
    let allow = st.lists[0].clone();
    let (mut cleared, mut changed_seen) = (0, 0);
    let member = |k: usize, v: usize| format!("\"{}\":{}", PROPERTY_KEYS[k], PROPERTY_VALUES[v]);
    let mut records = Vec::new();
    for a in 0..PROPERTY_KEYS.len() * PROPERTY_VALUES.len() {
        let first = member(a / PROPERTY_VALUES.len(), a % PROPERTY_VALUES.len());
        records.push(format!("{{{first}}}"));
        for b in 0..PROPERTY_KEYS.len() * PROPERTY_VALUES.len() {
            let second = member(b / PROPERTY_VALUES.len(), b % PROPERTY_VALUES.len());
            records.push(format!("{{{first},{second}}}"));
        }
    }
    for record in &records {
        let clean = flat::certainly_clean(
            record.as_bytes(),
            &allow,
            &st.detectors,
            &mut st.memo,
            &mut st.clean_values,
        );
        let mut hits = Vec::new();
        let changed = st.walk(record.as_bytes(), &allow, &mut hits).is_some();
        assert!(
            !(clean && changed),
            "fast path cleared {record} but the walk changed it"
        );
        let flat = !record.contains('\\') && !record[1..].contains(['{', '[']);
        if flat {
            assert_eq!(clean, !changed, "{record}");
        }
        cleared += usize::from(clean);
        changed_seen += usize::from(changed);
    }
    assert_eq!(records.len(), 140 + 140 * 140);
    assert!(
        cleared > 1000 && changed_seen > 10_000,
        "cleared {cleared}, changed {changed_seen}"
    );
}

mod loggers;
mod precision;
mod valid_json;
