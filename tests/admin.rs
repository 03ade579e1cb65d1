//! End to end for the admin endpoint against real parts: `promtool check
//! metrics` on a live `/metrics` body, a real Prometheus server (Debian's
//! `prometheus`, started here as a plain process with its own config and
//! storage in a temp dir, stopped by PID) scraping sluice every second and
//! agreeing with the run's own summary, liveness failing on a hung stage,
//! an endpoint under abuse that costs the pipeline nothing, and README
//! documenting exactly the families that every component together exposes.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on now.
/// `GET path` on `127.0.0.1:port`: (status, body); `None` when nothing
/// answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_with(port, path, "")
}

/// `GET path` with `headers` (each ending `\r\n`).
fn get_with(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Poll `GET path` until `done` says so (30 s at most).
fn wait_for(port: u16, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let start = Instant::now();
    loop {
        if let Some((status, body)) = get(port, path) {
            if done(status, &body) {
                return (status, body);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{path} never got there");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until nothing listens on `port` (the run ended and took its
/// endpoint with it).
fn wait_for_gone(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the endpoint outlived its run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of series `series` (exact text before the value) in an exposition.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// stdin → `stages` → plain NDJSON files in `out/`, the admin endpoint on
/// `port` with `admin` added to its table.
fn stdin_config(dir: &Path, port: u16, stages: &str, admin: &str) -> std::path::PathBuf {
    write_config(
        dir,
        "admin.toml",
        &format!(
            "data_dir = \"{d}/state\"\n[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ndirectory = \"{d}/out\"\ncompression = \"none\"\n{stages}\n[admin]\naddress = \"127.0.0.1:{port}\"\n{admin}",
            d = dir.display()
        ),
    )
}

const ALL_STAGES: &str = "[budget]\n[redact]\n[multiline]\n";

#[test]
fn metrics_pass_promtool_and_prometheus_agrees_with_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = stdin_config(dir.path(), port, ALL_STAGES, "");
    let mut child = spawn_piped(&config);
    let _guard = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();

    let (status, ready) = wait_for(port, "/health/ready", |s, _| s == 200);
    assert_eq!(
        (status, ready.as_str()),
        (200, "{\"components\":{},\"status\":\"ok\"}\n")
    );
    let input = generated(3000, 7);
    let lines = input.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as f64;
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    // Every line read, and the budget's statistics published (about once
    // a second, not per batch).
    // The component view counts a batch as a stage passes it on: once the
    // input is through, what one stage sent the next received.
    let series = |body: &str, family: &str, kind: &str, id: &str| {
        sample(
            body,
            &format!("sluice_{family}{{component_kind=\"{kind}\",component=\"{id}\"}}"),
        )
    };
    let (_, body) = wait_for(port, "/metrics", |_, b| {
        sample(b, "sluice_events_in_total{source=\"in\"}") == Some(lines)
            && b.contains("# TYPE sluice_request_duration_seconds histogram")
            && series(b, "component_sent_events_total", "stage", "parse") == Some(lines)
            && series(b, "component_sent_events_total", "stage", "multiline")
                == series(b, "component_received_events_total", "stage", "redact")
            && series(b, "component_sent_events_total", "stage", "budget")
                == series(b, "component_received_events_total", "sink", "out")
    });

    // The component view: the same numbers as each component's own
    // families, under the standard names.
    let component = |family: &str, kind: &str, id: &str| series(&body, family, kind, id);
    assert_eq!(
        component("component_received_events_total", "source", "in"),
        Some(lines)
    );
    assert_eq!(component("component_sent_events_total", "source", "in"), Some(lines));
    assert_eq!(
        component("component_received_bytes_total", "source", "in"),
        Some(input.len() as f64)
    );
    assert_eq!(
        component("component_received_events_total", "stage", "parse"),
        Some(lines)
    );
    assert_eq!(component("component_sent_events_total", "stage", "parse"), Some(lines));
    assert_eq!(
        component("component_sent_events_total", "stage", "multiline"),
        component("component_received_events_total", "stage", "redact")
    );

    // The naming and help lint of a real scraper's tool.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let lint = promtool.wait_with_output().unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    for family in [
        "# TYPE sluice_build_info gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
        "# TYPE sluice_request_duration_seconds histogram",
        "# TYPE sluice_stage_queue_batches gauge",
    ] {
        assert!(body.contains(family), "{family} missing");
    }
    // OpenMetrics when asked, as Prometheus asks (the server below scrapes
    // it that way).
    let (status, om) = get_with(
        port,
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert!(
        om.contains("\n# TYPE sluice_events_in counter\nsluice_events_in_total{source=\"in\"} "),
        "{om}"
    );
    assert_eq!(get(port, "/nope").unwrap().0, 404);
    // `sluice top` to a pipe: one snapshot of the running instance.
    let top = sluice()
        .args(["top", "--interval", "200ms", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    let view = String::from_utf8(top.stdout).unwrap();
    let names: Vec<(&str, &str)> = view
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap(), w.next().unwrap())
        })
        .filter(|(kind, _)| *kind != "service")
        .collect();
    assert_eq!(
        names,
        [
            ("source", "in"),
            ("stage", "budget"),
            ("stage", "multiline"),
            ("stage", "parse"),
            ("stage", "redact"),
            ("sink", "out")
        ],
        "{view}"
    );
    assert!(view.lines().any(|l| l.starts_with("service ")), "{view}");
    let (live, live_body) = get(port, "/health/live").unwrap();
    assert_eq!(live, 200, "{live_body}");
    assert!(live_body.contains("\"stage parse\":"), "{live_body}");

    // A real Prometheus scraping every second.
    let prom_port = free_port();
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!("--storage.tsdb.path={}", prom_dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package)");
    let _prom_guard = KillOnDrop(prometheus.id());
    let query = |q: &str| -> Option<f64> {
        let (status, body) = get(prom_port, &format!("/api/v1/query?query={q}"))?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let start = Instant::now();
    let delivered = loop {
        let up = query("up%7Bjob%3D%22sluice%22%7D");
        let out = query("sluice_events_out_total%7Bsink%3D%22out%22%7D");
        if let (Some(1.0), Some(out)) = (up, out) {
            let (_, now) = get(port, "/metrics").unwrap();
            if Some(out) == sample(&now, "sluice_events_out_total{sink=\"out\"}") {
                assert_eq!(
                    sample(
                        &now,
                        "sluice_component_sent_events_total{component_kind=\"sink\",component=\"out\"}"
                    ),
                    Some(out)
                );
                break out;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped sluice"
        );
        std::thread::sleep(Duration::from_millis(250));
    };

    prometheus.kill().unwrap();
    prometheus.wait().unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summary = String::from_utf8_lossy(&out.stderr);
    // The summary's sink row counts the events written: the same number
    // Prometheus holds.
    let row = summary
        .lines()
        .find(|l| l.trim_start().starts_with("sink   out"))
        .unwrap_or_else(|| panic!("no sink row in {summary}"));
    let written: f64 = row.split_whitespace().nth(2).unwrap().replace(',', "").parse().unwrap();
    assert_eq!(written, delivered, "{row}");
}

/// The metric names README's metric sections name in backticks: words
/// that end the way a Prometheus family does.
fn readme_families() -> std::collections::BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = |from: &str, to: &str| {
        let start = readme.find(from).unwrap_or_else(|| panic!("README lost {from:?}"));
        let end = start + readme[start..].find(to).unwrap_or_else(|| panic!("README lost {to:?}"));
        readme[start..end].to_string()
    };
    let text = section("## Budgets and sampling", "## Shipping to storage")
        + &section("## Operating it: the admin endpoint", "## Deploy");
    let ends = [
        "_total",
        "_bytes",
        "_seconds",
        "_ppm",
        "_state",
        "_nodes",
        "_failing",
        "_open",
        "_waiting",
        "_unlisted",
        "_batches",
        "_info",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|quoted| {
            let name = quoted.split('{').next().unwrap();
            name.strip_prefix("sluice_").unwrap_or(name).to_string()
        })
        .filter(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') && ends.iter().any(|e| w.ends_with(e)))
        // Settings named beside the metrics are not families.
        .filter(|w| !["lookback_bytes"].contains(&w.as_str()))
        .collect()
}

/// Every component at once (a file, generator and Kafka source, every
/// stage with the fleet budget, and a sink of every kind, the network ones
/// aimed at a closed port): the families its `/metrics` exposes are the
/// ones README documents, no more and no fewer.
#[test]
fn readme_documents_every_family_of_every_component() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    // A secret to redact and a line that is not JSON, so that the families
    // labelled by rule and by reason have a series.
    std::fs::write(
        dir.path().join("in/app.log"),
        "{\"level\":\"info\",\"service\":\"a\",\"msg\":\"login password=hunter2\"}\nnot json\n",
    )
    .unwrap();
    let port = free_port();
    let closed = free_port();
    let config = write_config(
        dir.path(),
        "all.toml",
        &format!(
            r#"data_dir = "{d}/state"
[admin]
address = "127.0.0.1:{port}"
[report]
progress = false
[sources.gen]
type = "generator"
count = 1000
[sources.files]
type = "file"
include = ["{d}/in/*.log"]
format = "raw"
[sources.kafka]
type = "kafka"
brokers = "127.0.0.1:{closed}"
topics = ["logs"]
group_id = "readme"
[multiline]
languages = ["auto"]
[redact]
[budget]
scope = "fleet"
[budget.fleet]
brokers = "127.0.0.1:{closed}"
node_id = "readme"
[sinks.file]
type = "file"
directory = "{d}/out"
[sinks.stdout]
type = "stdout"
[sinks.clickhouse]
type = "clickhouse"
endpoint = "http://127.0.0.1:{closed}"
[sinks.loki]
type = "loki"
endpoint = "http://127.0.0.1:{closed}"
[sinks.elasticsearch]
type = "elasticsearch"
endpoint = "http://127.0.0.1:{closed}"
[sinks.kafka]
type = "kafka"
brokers = "127.0.0.1:{closed}"
topic = "out"
"#
        ),
    );
    let mut child = spawn_logged(&config, std::fs::File::create(dir.path().join("sluice.log")).unwrap());
    let _guard = KillOnDrop(child.id());
    let documented = readme_families();
    let exposed = |body: &str| -> std::collections::BTreeSet<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix("# TYPE sluice_")?.split(' ').next())
            .map(str::to_string)
            .collect()
    };
    // A family appears with its first series; the labelled ones wait for
    // the input to reach their stage.
    let start = Instant::now();
    let body = loop {
        let body = get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
        let exposed = exposed(&body);
        let absent: Vec<&String> = documented
            .iter()
            .filter(|f| !exposed.contains(*f) && !exposed.contains(&format!("{f}_total")))
            .collect();
        if absent.is_empty() {
            break body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "README documents families no component exposes: {absent:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let undocumented: Vec<String> = exposed(&body)
        .into_iter()
        .filter(|f| !documented.contains(f) && !f.strip_suffix("_total").is_some_and(|b| documented.contains(b)))
        .collect();
    assert!(
        undocumented.is_empty(),
        "families missing from README: {undocumented:?}"
    );
    // Its sinks can never deliver, so there is no clean end to wait for.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_hung_stage_fails_liveness_but_backpressure_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = stdin_config(dir.path(), port, ALL_STAGES, "stall_after = \"1s\"\n");
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .env("SLUICE_TEST_STALL_STAGE", "redact")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();
    let (status, _) = wait_for(port, "/health/live", |s, _| s == 200);
    assert_eq!(status, 200);
    stdin.write_all(b"{\"msg\":\"one\"}\n").unwrap();
    stdin.flush().unwrap();
    let (status, body) = wait_for(port, "/health/live", |s, _| s == 503);
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "stalled");
    assert!(
        v["components"]["stage redact"]
            .as_str()
            .unwrap()
            .starts_with("stalled: on one batch for "),
        "{body}"
    );
    // The stages before it wait for room: blocked, not hung.
    assert_eq!(v["components"]["stage parse"], "waiting", "{body}");
    // A hung stage never drains: only a kill ends this run.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn abuse_of_the_admin_port_costs_the_pipeline_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No stage that merges or drops lines: every line must come out.
    let config = stdin_config(dir.path(), port, "", "");
    let mut child = spawn_piped(&config);
    let _guard = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();
    wait_for(port, "/health/ready", |s, _| s == 200);

    // Idle connections (more than it serves at once: the rest wait in the
    // kernel's accept queue, whose 128 places bound what a test can open
    // without its connects stalling), a slow header, and a huge body.
    let idle: Vec<TcpStream> = (0..180)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut huge = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The server never reads a body: the write stalls once the socket
    // buffers are full.
    huge.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = huge.write_all(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        if huge.write_all(&chunk).is_err() {
            break;
        }
    }

    let input = generated(20_000, 3);
    let lines = input.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    // Once the abuse ends (or times out) the endpoint answers again.
    drop((idle, slow, huge));
    let (status, _) = wait_for(port, "/metrics", |s, _| s == 200);
    assert_eq!(status, 200);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let written: usize = count_lines(&dir.path().join("out")).values().map(|&n| n as usize).sum();
    assert_eq!(written, lines, "every line, with the admin port under abuse");
    wait_for_gone(port);
}

#[test]
fn not_ready_while_clickhouse_is_down_and_the_disk_buffer_full_ready_again_after() {
    let mut ch = common::clickhouse::ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        "ready.toml",
        &format!(
            r#"data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}"
[sinks.ch.delivery]
batch_max_bytes = "4KiB"
batch_timeout = "100ms"
retry_initial_backoff = "100ms"
retry_max_backoff = "300ms"
breaker_failures = 1
breaker_open_for = "300ms"
[sinks.ch.delivery.buffer]
type = "disk"
max_bytes = "64KiB"
[admin]
address = "127.0.0.1:{port}"
"#,
            d = dir.path().display(),
            endpoint = ch.endpoint()
        ),
    );
    let mut child = spawn_piped(&config);
    let _guard = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();
    let (status, body) = wait_for(port, "/health/ready", |s, _| s == 200);
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"components\":{\"sink ch\":\"ok\"},\"status\":\"ok\"}\n")
    );

    ch.stop();
    // Far more than the buffer holds: the writer blocks on backpressure,
    // so it writes from a thread of its own.
    let lines: String = (0..4000)
        .map(|i| format!("{{\"seq\":{i},\"msg\":\"{}\"}}\n", "x".repeat(100)))
        .collect();
    let writer = std::thread::spawn(move || {
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin
    });
    let (status, body) = wait_for(port, "/health/ready", |s, _| s == 503);
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not_ready", "{body}");
    assert!(
        v["components"]["sink ch"]
            .as_str()
            .unwrap()
            .starts_with("target failing (breaker open) and buffer full ("),
        "{body}"
    );
    // Liveness is not readiness: a blocked pipeline is alive.
    assert_eq!(get(port, "/health/live").unwrap().0, 200);

    ch.restart();
    let (status, _) = wait_for(port, "/health/ready", |s, _| s == 200);
    assert_eq!(status, 200);
    drop(writer.join().unwrap());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let counts = ch.seq_counts("logs");
    assert_eq!(counts.len(), 4000, "every line arrived");
    assert!(counts.values().all(|&n| n == 1), "each exactly once");
}
