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
