//! The default allow list against the logging libraries: README's table
//! is the code's table, and what the real libraries print passes.

use crate::policy::LOGGER_FIELDS;

#[test]
fn the_readme_table_is_the_default_list() {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Default allow list: logging libraries")
        .nth(1)
        .expect("README has the section");
    let rows: Vec<(String, Vec<String>)> = section
        .lines()
        .skip_while(|l| !l.starts_with("| Library"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let fields = cells[2]
                .split_whitespace()
                .map(|f| f.trim_matches('`').to_string())
                .collect();
            (cells[1].to_string(), fields)
        })
        .collect();
    let code: Vec<(String, Vec<String>)> = LOGGER_FIELDS
        .iter()
        .map(|(lib, _, fields)| (lib.to_string(), fields.iter().map(|f| f.to_string()).collect()))
        .collect();
    assert_eq!(rows, code);
}

/// The captured output of each library (`scripts/logger-records/`).
const FIXTURES: &[(&str, &str)] = &[
    ("zap", include_str!("../../../../tests/fixtures/loggers/zap.jsonl")),
    (
        "zerolog",
        include_str!("../../../../tests/fixtures/loggers/zerolog.jsonl"),
    ),
    (
        "logrus",
        include_str!("../../../../tests/fixtures/loggers/logrus.jsonl"),
    ),
    ("slog", include_str!("../../../../tests/fixtures/loggers/slog.jsonl")),
    (
        "logstash-logback",
        include_str!("../../../../tests/fixtures/loggers/logstash-logback.jsonl"),
    ),
    (
        "log4j2-ecs",
        include_str!("../../../../tests/fixtures/loggers/log4j2-ecs.jsonl"),
    ),
    (
        "log4j2-json",
        include_str!("../../../../tests/fixtures/loggers/log4j2-json.jsonl"),
    ),
    ("pino", include_str!("../../../../tests/fixtures/loggers/pino.jsonl")),
    (
        "winston",
        include_str!("../../../../tests/fixtures/loggers/winston.jsonl"),
    ),
    (
        "bunyan",
        include_str!("../../../../tests/fixtures/loggers/bunyan.jsonl"),
    ),
    (
        "structlog",
        include_str!("../../../../tests/fixtures/loggers/structlog.jsonl"),
    ),
    (
        "python-json-logger",
        include_str!("../../../../tests/fixtures/loggers/python-json-logger.jsonl"),
    ),
    (
        "tracing-json",
        include_str!("../../../../tests/fixtures/loggers/tracing-json.jsonl"),
    ),
];

#[test]
fn what_the_real_libraries_print_passes_the_default_list() {
    let mut st = super::stage("");
    let mut records = 0;
    for (library, text) in FIXTURES {
        for line in text.lines() {
            let out = super::run(&mut st, &[line]);
            // tracing's `spans` repeats every open span with the fields the
            // application gave it: not passed whole by default (`span.name`
            // is). Everything else of every library passes byte for byte.
            if *library == "tracing-json" && line.contains("\"spans\":") {
                let mut want: serde_json::Value = serde_json::from_str(line).unwrap();
                want.as_object_mut().unwrap().remove("spans");
                want["redacted"] = serde_json::json!(["unlisted"]);
                let got: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
                assert_eq!(got, want, "{library}");
            } else {
                assert_eq!(out[0], line, "{library}");
            }
            records += 1;
        }
    }
    assert_eq!(records, 43);
}
