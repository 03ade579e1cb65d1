//! Targets that refuse everyone — a table not created yet, a wrong
//! password, a missing database, 401/403/404 from Loki or Elasticsearch, a
//! Kafka topic that does not exist — are unavailable, not refusing
//! records: the data waits (in memory, or in a disk buffer across a
//! restart) and arrives once the target is fixed, and nothing is ever
//! dead-lettered for it. Real ClickHouse (Debian's 18.16, started by the
//! test), the local HTTP server of the sink tests for Loki and
//! Elasticsearch, librdkafka's mock cluster for Kafka.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::clickhouse::ClickHouse;
use common::http_server::HttpServer;
use common::{copy_sink, count_lines, run_with_stdin, sluice, write_config};

/// Retry quickly: the tests' outages last seconds.
const FAST_RETRIES: &str = r#"batch_timeout = "200ms"
retry_initial_backoff = "50ms"
retry_max_backoff = "500ms"
breaker_failures = 3
breaker_open_for = "500ms"
"#;

/// `n` JSON lines with a sequence number each.
fn seq_lines(n: u64) -> String {
    (0..n)
        .map(|i| format!("{{\"ts\":\"2026-11-25T01:02:03Z\",\"service\":\"orders\",\"seq\":{i}}}\n"))
        .collect()
}

/// Run `config` with `input` on stdin to its end: the output and its
/// standard error as text.
fn run_with_input(config: &Path, input: &str) -> (Output, String) {
    let out = run_with_stdin(config, input);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stderr)
}

/// Lines of `stderr` that say the target refuses everyone.
fn refusal_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("target refuses every request"))
        .collect()
}

fn assert_each_once(counts: &HashMap<u64, u64>, n: u64) {
    assert_eq!(counts.len() as u64, n, "distinct records stored");
    for s in 0..n {
        assert_eq!(counts.get(&s), Some(&1), "seq {s}");
    }
}

#[test]
fn a_table_created_after_the_start_gets_every_record_and_nothing_is_dead_lettered() {
    let ch = ClickHouse::start();
    ch.query("DROP TABLE logs");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "sluice.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.gen]
type = "generator"
count = 5000
rate = 1250
seed = 7
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}"
[sinks.ch.delivery]
batch_max_events = 1000
{FAST_RETRIES}
{copy}"#,
            d = dir.path().display(),
            copy = copy_sink(dir.path()),
            endpoint = ch.endpoint()
        ),
    );
    let child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    ch.create_table("logs");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );
    assert!(stderr.contains(" 0 dead-lettered"), "{stderr}");
    assert!(!dir.path().join("state/dead_letter").exists(), "no dead letters");

    // Every line the file sink got is in the table once.
    let expected = count_lines(&dir.path().join("copy"));
    assert!(
        expected.values().sum::<u64>() > 4900,
        "the workload's lines, less its empty ones"
    );
    let out = ch.query("SELECT raw, count() FROM logs GROUP BY raw FORMAT JSONEachRow");
    let stored: HashMap<String, u64> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let n = v["count()"]
                .as_str()
                .map_or_else(|| v["count()"].as_u64().unwrap(), |s| s.parse().unwrap());
            (v["raw"].as_str().unwrap().to_string(), n)
        })
        .collect();
    assert_eq!(stored, expected);

    // One error line for the episode, naming the sink and the server's words.
    let lines = refusal_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("Table default.logs doesn't exist"), "{}", lines[0]);
    assert!(lines[0].contains("ch"), "{}", lines[0]);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("target takes requests again"))
            .count(),
        1,
        "{stderr}"
    );
}

/// The passwords these tests use: sluice's output never holds one.
const PASSWORDS: [&str; 3] = ["wrong-password", "right-password", "wr0ng-S3cret"];

/// The shape of the wrong-password and missing-database tests: a first run
/// whose sink (`sink_toml`: the endpoint's path and query, then keys) the
/// target refuses ends holding every record in its disk buffer (exit 0,
/// "held", nothing stored, nothing dead-lettered); `fix` mends the target;
/// a second run with `fixed_sink_toml` and no new input delivers each
/// record exactly once into `table`. Neither run prints a password.
fn held_until_fixed(
    ch: &ClickHouse,
    sink_toml: (&str, &str),
    fixed_sink_toml: (&str, &str),
    table: &str,
    server_says: &str,
    fix: impl FnOnce(&ClickHouse),
) {
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, (url_tail, sink): (&str, &str)| {
        write_config(
            dir.path(),
            name,
            &format!(
                r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}{url_tail}"
{sink}
[sinks.ch.delivery]
batch_max_events = 700
shutdown_timeout = "2s"
{FAST_RETRIES}
[sinks.ch.delivery.buffer]
type = "disk"
"#,
                d = dir.path().display(),
                endpoint = ch.endpoint()
            ),
        )
    };
    let (out, stderr) = run_with_input(&config("first.toml", sink_toml), &seq_lines(3000));
    assert_eq!(out.status.code(), Some(0), "held durably is no failure: {stderr}");
    assert!(
        stderr.contains("nothing lost, not all delivered: sink `ch`:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("held in its disk buffer for the next start"),
        "{stderr}"
    );
    assert!(stderr.contains(" 0 dead-lettered"), "{stderr}");
    assert!(!dir.path().join("state/dead_letter").exists(), "no dead letters");
    let lines = refusal_lines(&stderr);
    assert!(!lines.is_empty() && lines.len() <= 2, "{stderr}");
    assert!(lines[0].contains(server_says), "{}", lines[0]);
    for pw in PASSWORDS {
        assert!(!stderr.contains(pw), "`{pw}` printed: {stderr}");
    }

    fix(ch);
    let (out, stderr) = run_with_input(&config("second.toml", fixed_sink_toml), "");
    for pw in PASSWORDS {
        assert!(!stderr.contains(pw), "`{pw}` printed: {stderr}");
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );
    assert_each_once(&ch.seq_counts(table), 3000);
    assert_eq!(
        std::fs::read_dir(dir.path().join("state/buffer/ch")).unwrap().count(),
        0,
        "the drained disk buffer leaves nothing behind"
    );
}

#[test]
fn a_wrong_password_holds_everything_until_a_restart_with_the_right_one() {
    let ch = ClickHouse::start();
    held_until_fixed(
        &ch,
        ("", "user = \"sluice\"\npassword = \"wrong-password\""),
        ("", "user = \"sluice\"\npassword = \"right-password\""),
        "logs",
        "Wrong password for user sluice",
        |_| {},
    );
}

#[test]
fn credentials_in_the_endpoints_query_are_sent_and_never_printed() {
    // ClickHouse reads `user` and `password` from the URL: the second run
    // stores everything only if sluice kept the operator's query string
    // beside its own `query=INSERT ...`.
    let ch = ClickHouse::start();
    held_until_fixed(
        &ch,
        ("/?user=sluice&password=wr0ng-S3cret", ""),
        ("/?user=sluice&password=right-password", ""),
        "logs",
        "Wrong password for user sluice",
        |_| {},
    );
}

#[test]
fn a_missing_database_holds_everything_until_it_exists() {
    let ch = ClickHouse::start();
    held_until_fixed(
        &ch,
        ("", "database = \"archive\""),
        ("", "database = \"archive\""),
        "archive.logs",
        "Database archive doesn't exist",
        |ch| {
            ch.query("CREATE DATABASE archive");
            ch.create_table("archive.logs");
        },
    );
}

/// Loki answering 401, then 403, then 404 before it takes pushes: held and
/// retried, every line delivered once, nothing dead-lettered.
#[test]
fn loki_auth_and_missing_endpoint_answers_hold_and_retry() {
    let server = HttpServer::start(|n, _| match n {
        0 => (401, "no org id".into()),
        1 => (403, "forbidden".into()),
        2 => (404, "404 page not found".into()),
        _ => (204, String::new()),
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
[sinks.loki.delivery]
batch_max_events = 5000
{FAST_RETRIES}
"#,
            d = dir.path().display(),
            url = server.url()
        ),
    );
    let (out, stderr) = run_with_input(&config, &seq_lines(1000));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 0 dead-lettered"), "{stderr}");
    assert!(!dir.path().join("state/dead_letter").exists());
    let statuses: Vec<u16> = server.log.lock().unwrap().iter().map(|(_, s)| *s).collect();
    assert_eq!(&statuses[..3], &[401, 403, 404]);
    let mut seqs: Vec<u64> = Vec::new();
    for req in server.accepted() {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        for stream in body["streams"].as_array().unwrap() {
            for value in stream["values"].as_array().unwrap() {
                let line: serde_json::Value = serde_json::from_str(value[1].as_str().unwrap()).unwrap();
                seqs.push(line["seq"].as_u64().unwrap());
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..1000).collect::<Vec<u64>>(), "every line once");
    // The kinds of the episode: auth twice, then missing.
    let lines = refusal_lines(&stderr);
    assert_eq!(
        lines.len(),
        2,
        "one line when it starts, one when the kind changes: {stderr}"
    );
    assert!(lines[0].contains("HTTP 401: no org id"), "{}", lines[0]);
    assert!(lines[1].contains("HTTP 404: 404 page not found"), "{}", lines[1]);
}

/// Elasticsearch answering 401 to the whole request, then an index that
/// does not exist for one service's items, while one document has a
/// mapping error: only that document is dead-lettered, the rest is stored
/// once the index exists.
#[test]
fn elasticsearch_holds_on_auth_and_missing_index_and_dead_letters_only_mapping_errors() {
    let server = HttpServer::start(|n, req| {
        if n == 0 {
            return (
                401,
                r#"{"error":{"type":"security_exception","reason":"missing authentication credentials"}}"#.into(),
            );
        }
        let lines: Vec<&[u8]> = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let doc = String::from_utf8_lossy(pair[1]);
            let (status, error) = if doc.contains("\"reject_me\"") {
                (
                    400,
                    r#","error":{"type":"mapper_parsing_exception","reason":"failed to parse field [reject_me]"}"#,
                )
            } else if doc.contains("\"billing\"") && n < 4 {
                (
                    404,
                    r#","error":{"type":"index_not_found_exception","reason":"no such index [logs-billing]"}"#,
                )
            } else {
                (201, "")
            };
            errors |= status != 201;
            items.push(format!(r#"{{"create":{{"_index":"x","status":{status}{error}}}}}"#));
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
[sinks.es.delivery]
batch_max_events = 5000
{FAST_RETRIES}
"#,
            d = dir.path().display(),
            url = server.url()
        ),
    );
    let mut input = String::new();
    for i in 0..600u64 {
        let service = if i % 3 == 0 { "billing" } else { "orders" };
        input.push_str(&format!("{{\"service\":\"{service}\",\"seq\":{i}}}\n"));
    }
    let reject = r#"{"service":"orders","seq":600,"reject_me":{"deep":1}}"#;
    input.push_str(reject);
    input.push('\n');
    let (out, stderr) = run_with_input(&config, &input);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 1 dead-lettered"), "{stderr}");

    // Stored: what each answer accepted, item by item.
    let mut stored: Vec<u64> = Vec::new();
    for (n, (req, status)) in server.log.lock().unwrap().iter().enumerate() {
        if *status != 200 {
            continue;
        }
        let lines: Vec<&[u8]> = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        for pair in lines.chunks(2) {
            let doc: serde_json::Value = serde_json::from_slice(pair[1]).unwrap();
            let refused = doc.get("reject_me").is_some() || (doc["service"] == "billing" && n < 4);
            if !refused {
                stored.push(doc["seq"].as_u64().unwrap());
            }
        }
    }
    stored.sort_unstable();
    assert_eq!(
        stored,
        (0..600).collect::<Vec<u64>>(),
        "every document once but the refused one"
    );
    let dead = std::fs::read_to_string(dir.path().join("state/dead_letter/es.ndjson")).unwrap();
    let dead: Vec<serde_json::Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["record"], reject);
    let lines = refusal_lines(&stderr);
    assert_eq!(lines.len(), 2, "auth, then missing: {stderr}");
    assert!(lines[0].contains("security_exception"), "{}", lines[0]);
    assert!(lines[1].contains("index_not_found_exception"), "{}", lines[1]);
}

/// A sluice producing 500 lines to `topic` on `mock` with auto-creation
/// off; `break_it` runs before it starts, `fix` 5 s in, while it must still
/// be holding the records. Returns its stderr after checking that every
/// record arrived once and none was dead-lettered.
fn kafka_held_until_fixed(
    topic: &str,
    break_it: impl FnOnce(&rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
    fix: impl FnOnce(&rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>),
) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::{ClientConfig, Message};

    let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).unwrap();
    let brokers = mock.bootstrap_servers();
    break_it(&mock);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "kafka.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.kafka]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
[sinks.kafka.options]
"allow.auto.create.topics" = "false"
"topic.metadata.propagation.max.ms" = "500"
[sinks.kafka.delivery]
request_timeout = "2s"
{FAST_RETRIES}
"#,
            d = dir.path().display(),
        ),
    );
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(seq_lines(500).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert!(child.try_wait().unwrap().is_none(), "still holding the records");
    fix(&mock);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 0 dead-lettered"), "{stderr}");
    assert!(!dir.path().join("state/dead_letter").exists());

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "verify")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[topic]).unwrap();
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seqs.len() < 500 && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    drop(reader);
    seqs.sort_unstable();
    assert_eq!(seqs, (0..500).collect::<Vec<u64>>(), "every record once");
    stderr
}

/// A topic that does not exist, with auto-creation off: the records wait
/// and are produced once the topic is created.
#[test]
fn kafka_unknown_topic_holds_and_retries_until_it_exists() {
    let stderr = kafka_held_until_fixed("not-yet", |_| {}, |mock| mock.create_topic("not-yet", 1, 1).unwrap());
    let lines = refusal_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        // stderr is a pipe: sluice logs JSON lines (`--log-format auto`).
        lines[0].contains("\"kind\":\"missing\"") && lines[0].contains("Unknown topic or partition"),
        "the unknown topic is reported as missing: {}",
        lines[0]
    );
}

/// A broker whose ACLs deny the topic (the mock answers its metadata with
/// TOPIC_AUTHORIZATION_FAILED): held until the grant is given.
#[test]
fn kafka_authorization_failure_holds_and_retries_until_granted() {
    use rdkafka::types::RDKafkaRespErr;
    let stderr = kafka_held_until_fixed(
        "denied",
        |mock| {
            mock.create_topic("denied", 1, 1).unwrap();
            mock.topic_error("denied", RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                .unwrap();
        },
        |mock| {
            mock.topic_error("denied", RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
                .unwrap()
        },
    );
    let lines = refusal_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("\"kind\":\"auth\""),
        "reported as credentials or grants: {}",
        lines[0]
    );
}
