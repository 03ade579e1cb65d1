//! The `loki` and `elasticsearch` sinks against a local HTTP server that
//! checks each request against the documented wire format (Loki's push API,
//! the `_bulk` API): neither server can run on this machine, so the test
//! plays the server, including its failures.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use common::http_server::HttpServer;
use common::{copy_sink, count_lines, generated, sluice, write_config};

/// `sluice generate` output plus `extra` lines, as stdin for a run of
/// `config`; returns the run's stderr after asserting it exited 0.
fn run_with_input(config: &Path, count: u64, extra: &str) -> String {
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(config)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&generated(count, 3)).unwrap();
    stdin.write_all(extra.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn nanos(ts: &str) -> Option<i128> {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

#[test]
fn loki_gets_low_cardinality_streams_and_every_line_once_after_retries() {
    // The first two pushes fail as an overloaded Loki would answer.
    let server = HttpServer::start(|n, _| {
        if n < 2 {
            (503, "overloaded".into())
        } else {
            (204, String::new())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "loki.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.loki]
type = "loki"
endpoint = "{url}"
tenant = "team-a"
[sinks.loki.delivery]
batch_max_events = 1500
retry_initial_backoff = "50ms"
{copy}"#,
            d = dir.path().display(),
            copy = copy_sink(dir.path()),
            url = server.url()
        ),
    );
    let stderr = run_with_input(&config, 6000, "");
    assert!(stderr.contains(" 2 retries"), "{stderr}");

    let expected = count_lines(&dir.path().join("copy"));
    let mut pushed: HashMap<String, u64> = HashMap::new();
    let accepted = server.accepted();
    assert!(accepted.len() >= 4, "6000 lines in requests of at most 1500");
    for req in &accepted {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/loki/api/v1/push");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("x-scope-orgid"), Some("team-a"));
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        for stream in body["streams"].as_array().unwrap() {
            let labels = stream["stream"].as_object().unwrap();
            for key in labels.keys() {
                assert!(
                    ["service", "env", "level", "namespace"].contains(&key.as_str()),
                    "label {key}"
                );
            }
            for value in stream["values"].as_array().unwrap() {
                let [ts, line] = value.as_array().unwrap().as_slice() else {
                    panic!("{value}")
                };
                let line = line.as_str().unwrap();
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                // Each label is the record's own value (level lowercased).
                for (key, v) in labels {
                    let own = record[key].as_str().unwrap();
                    let own = if key == "level" {
                        own.to_ascii_lowercase()
                    } else {
                        own.to_string()
                    };
                    assert_eq!(v.as_str().unwrap(), own);
                }
                // ...and a record's field is never missing from its labels.
                for key in ["service", "env"] {
                    if let Some(own) = record[key].as_str() {
                        assert_eq!(labels.get(key).and_then(|v| v.as_str()), Some(own));
                    }
                }
                let ts: i128 = ts.as_str().unwrap().parse().unwrap();
                if let Some(own) = record["ts"].as_str().and_then(nanos) {
                    assert_eq!(ts, own, "the entry carries the record's time");
                }
                *pushed.entry(line.to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(pushed, expected, "every line exactly once, as the file sink wrote it");
}

#[test]
fn elasticsearch_bulk_items_are_retried_or_dead_lettered_one_by_one() {
    let server = HttpServer::start(|n, req| {
        assert_eq!(req.path, "/_bulk");
        let lines: Vec<&[u8]> = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len() % 2, 0, "action and document pairs");
        let mut items = Vec::new();
        let mut errors = false;
        for (i, pair) in lines.chunks(2).enumerate() {
            let action: serde_json::Value = serde_json::from_slice(pair[0]).unwrap();
            let index = action["create"]["_index"].as_str().unwrap().to_string();
            let doc = String::from_utf8_lossy(pair[1]);
            let (status, error) = if doc.contains("\"reject_me\"") {
                (
                    400,
                    r#","error":{"type":"mapper_parsing_exception","reason":"failed to parse field [reject_me]"}"#,
                )
            } else if n == 0 && i == 1 {
                (
                    429,
                    r#","error":{"type":"es_rejected_execution_exception","reason":"queue full"}"#,
                )
            } else {
                (201, "")
            };
            errors |= status != 201;
            items.push(format!(
                r#"{{"create":{{"_index":"{index}","status":{status}{error}}}}}"#
            ));
        }
        (
            200,
            format!(r#"{{"took":1,"errors":{errors},"items":[{}]}}"#, items.join(",")),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "es.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.es]
type = "elasticsearch"
endpoint = "{url}"
user = "sluice"
password = "s3cret"
[sinks.es.delivery]
batch_max_events = 1000
retry_initial_backoff = "50ms"
{copy}"#,
            d = dir.path().display(),
            copy = copy_sink(dir.path()),
            url = server.url()
        ),
    );
    let reject = r#"{"ts":"2026-11-25T09:00:00Z","service":"pay","reject_me":{"deep":1}}"#;
    let stderr = run_with_input(&config, 4000, &format!("{reject}\n"));
    assert!(stderr.contains("1 dead-lettered"), "{stderr}");

    let today = {
        let t = time::OffsetDateTime::now_utc();
        format!("{:04}.{:02}.{:02}", t.year(), t.month() as u8, t.day())
    };
    let mut stored: HashMap<String, u64> = HashMap::new();
    let log = server.log.lock().unwrap();
    for (n, (req, _)) in log.iter().enumerate() {
        assert_eq!(req.header("authorization"), Some("Basic c2x1aWNlOnMzY3JldA=="));
        assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
        let lines: Vec<&[u8]> = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        for (i, pair) in lines.chunks(2).enumerate() {
            let doc = String::from_utf8(pair[1].to_vec()).unwrap();
            if doc.contains("\"reject_me\"") || (n == 0 && i == 1) {
                continue; // refused by the server for this request
            }
            let action: serde_json::Value = serde_json::from_slice(pair[0]).unwrap();
            let record: serde_json::Value = serde_json::from_str(&doc).unwrap();
            let service = record["service"].as_str().unwrap_or("unknown").to_ascii_lowercase();
            let day = record["ts"]
                .as_str()
                .and_then(nanos)
                .map(|ns| {
                    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
                    format!("{:04}.{:02}.{:02}", t.year(), t.month() as u8, t.day())
                })
                .unwrap_or_else(|| today.clone());
            assert_eq!(action["create"]["_index"], format!("logs-{service}-{day}"));
            *stored.entry(doc).or_default() += 1;
        }
    }
    let mut expected = count_lines(&dir.path().join("copy"));
    assert_eq!(expected.remove(reject), Some(1));
    assert_eq!(stored, expected, "every document exactly once, the 429 item retried");

    let dead = std::fs::read_to_string(dir.path().join("state/dead_letter/es.ndjson")).unwrap();
    let dead: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record"], reject);
    assert_eq!(
        dead[0]["reason"],
        "HTTP 400: mapper_parsing_exception: failed to parse field [reject_me]"
    );
}
