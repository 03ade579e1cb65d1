//! The precision corpus (`tests/redaction_precision.tsv`): text that looks
//! like a secret and is not. With the default policy every row passes
//! byte for byte, as a JSON `msg` and as a text line.

use super::{run, stage};

#[test]
fn no_look_alike_is_masked() {
    let corpus = include_str!("../../../../tests/redaction_precision.tsv");
    let mut st = stage("");
    let rows: Vec<(&str, &str)> = corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split_once('\t').expect("category<TAB>text"))
        .collect();
    assert!(rows.len() >= 500, "{} rows", rows.len());
    let mut masked = Vec::new();
    for (category, text) in &rows {
        let record = serde_json::json!({"level": "info", "msg": text}).to_string();
        let plain = serde_json::json!({"message": text}).to_string();
        let out = run(&mut st, &[&record, text]);
        if out[0] != record {
            masked.push(format!("{category} (JSON): {}", out[0]));
        }
        if out[1] != plain {
            masked.push(format!("{category} (text): {}", out[1]));
        }
    }
    assert!(
        masked.is_empty(),
        "{} false masks:\n{}",
        masked.len(),
        masked.join("\n")
    );
}

/// The generator's traffic: ids, paths, durations, messages, stack traces
/// and legacy text lines, with secrets planted only in fields no allow
/// list names. Every value-detector hit on it is a false mask.
#[test]
fn a_large_workload_without_planted_values_gets_no_false_mask() {
    use sluice_core::{Batch, Event, Registry, Span, Stage};
    use sluice_generator::{Workload, WorkloadSettings};
    use sluice_parse::ParseStage;

    let text = "[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[redact]\n";
    let cfg = sluice_config::parse(text, std::path::Path::new("t"), &|_| None).unwrap();
    let registry = Registry::new();
    let mut st = crate::RedactStage::new(cfg.redact.as_ref().unwrap(), &registry).unwrap();
    let mut parse = ParseStage::new(&registry);
    let mut w = Workload::new(WorkloadSettings {
        seed: 22,
        ..WorkloadSettings::default()
    });
    let mut all = Vec::new();
    w.fill(&mut all, 32 << 20, u64::MAX);
    let (mut lines, mut events, mut data) = (0u64, Vec::new(), Vec::new());
    for line in all.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        events.push(Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(line);
        data.push(b'\n');
        lines += 1;
        if data.len() >= 256 << 10 {
            let mut b = Batch::new(std::mem::take(&mut data), std::mem::take(&mut events));
            parse.parse_batch(&mut b);
            st.process(b, &mut Vec::new());
        }
    }
    let metrics = registry.render_prometheus();
    let hits: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("redactions_total{"))
        .filter(|l| {
            !["\"unlisted\"", "\"unlisted_hashed\"", "\"secret_key\""]
                .iter()
                .any(|r| l.contains(&format!("rule={r}")))
        })
        .collect();
    assert!(lines > 100_000, "{lines} lines");
    assert!(
        metrics.contains("rule=\"unlisted\""),
        "the planted fields were found: {metrics}"
    );
    assert_eq!(hits, Vec::<&str>::new(), "false masks over {lines} lines");
}
