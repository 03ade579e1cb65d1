//! The deployment files in `deploy/` against the real parts they name:
//! the ConfigMaps are the shipped configs, byte for byte; the alert rules
//! pass `promtool check rules` and their unit tests (`promtool test
//! rules`), and each alert has a runbook in five parts; every metric the
//! alerts and the Grafana dashboard read is on a live `/metrics` body, and
//! every dashboard expression parses (promtool, wrapped as recording
//! rules); the systemd unit passes `systemd-analyze verify` where systemd
//! is installed. `scripts/test.sh` also runs yamllint and
//! kubernetes-validate over the manifests.
//!
//! `SLUICE_UPDATE_DEPLOY=1` rewrites the ConfigMaps from the configs.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The ConfigMap `name` carrying `config` as `sluice.toml`.
fn configmap(name: &str, config: &str) -> String {
    let mut out = format!(
        "# Generated from {config} by tests/deploy.rs (SLUICE_UPDATE_DEPLOY=1\n\
         # cargo test --release --test deploy); edit the config, not this file.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: logging\n  \
         labels:\n    app.kubernetes.io/name: sluice\ndata:\n  sluice.toml: |\n"
    );
    for line in read(config).lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_configmaps_are_the_shipped_configs() {
    for (path, name, config) in [
        (
            "deploy/kubernetes/node/configmap.yaml",
            "sluice-node",
            "config/k8s-node.toml",
        ),
        (
            "deploy/kubernetes/node-to-kafka/configmap.yaml",
            "sluice-node",
            "config/node-to-kafka.toml",
        ),
        (
            "deploy/kubernetes/aggregator/configmap.yaml",
            "sluice-aggregator",
            "config/aggregator.toml",
        ),
    ] {
        let want = configmap(name, config);
        if std::env::var_os("SLUICE_UPDATE_DEPLOY").is_some() {
            std::fs::write(root().join(path), &want).unwrap();
        }
        assert!(
            read(path) == want,
            "{path} differs from {config}: run SLUICE_UPDATE_DEPLOY=1 cargo test --release --test deploy"
        );
    }
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool (scripts/test.sh installs Debian's prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

/// The alert names in the rules file.
fn alerts() -> Vec<String> {
    read("deploy/prometheus/sluice-alerts.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_alert_has_unit_tests_both_ways_and_a_runbook_in_five_parts() {
    let dir = root().join("deploy/prometheus");
    let checked = promtool(&["check", "rules", "sluice-alerts.yaml"], &dir);
    let alerts = alerts();
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{checked}"
    );
    assert!(alerts.len() >= 10, "{alerts:?}");
    promtool(&["test", "rules", "sluice-alerts.test.yaml"], &dir);

    let tests = read("deploy/prometheus/sluice-alerts.test.yaml");
    for alert in &alerts {
        // Each alert is evaluated where it must not fire and where it must.
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|c| c.starts_with(&format!("{alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: no case where it must not fire"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")),
            "{alert}: no case where it fires"
        );
        assert!(
            read("deploy/prometheus/sluice-alerts.yaml").contains(&format!("runbook_url: deploy/runbooks/{alert}.md")),
            "{alert}: no runbook_url"
        );
        let book = read(&format!("deploy/runbooks/{alert}.md"));
        for part in [
            "**Symptom.**",
            "**Impact.**",
            "**Diagnose.**",
            "**Mitigate.**",
            "**Escalate.**",
        ] {
            assert!(book.contains(part), "deploy/runbooks/{alert}.md has no {part}");
        }
    }
}

/// The `expr` values of the dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/sluice.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// The metric names an expression reads: sluice's own (`sluice_*`) and
/// the standard process metrics it serves (kube-state-metrics' `kube_*`
/// and Prometheus's `up` are not sluice's).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let end = (i..bytes.len()).find(|&j| !word(bytes[j])).unwrap_or(bytes.len());
            let w = &expr[i..end];
            if w.starts_with("sluice_") || w.starts_with("process_") {
                names.push(w.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

fn get_metrics(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

#[test]
fn the_dashboard_and_the_alerts_read_metrics_a_live_sluice_serves() {
    // Every expression parses.
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "{exprs:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$node", ".*")
            .replace("$service", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: '{}'\n",
            e.replace('\'', "''")
        ));
    }
    std::fs::write(dir.path().join("dashboard.yaml"), rules).unwrap();
    promtool(&["check", "rules", "dashboard.yaml"], dir.path());

    // A sluice with a file source, the budget and two storage sinks whose
    // targets refuse (so breakers, buffers, retries and lag all exist).
    let d = dir.path();
    std::fs::create_dir_all(d.join("in")).unwrap();
    let mut lines = String::new();
    for i in 0..200 {
        lines.push_str(&format!(
            "{{\"ts\":\"2026-12-07T10:00:00Z\",\"service\":\"checkout\",\"level\":\"{}\",\"duration_ms\":{},\"trace_id\":\"{i:032x}\",\"msg\":\"m\"}}\nnot json {i}\n",
            if i % 10 == 0 { "error" } else { "info" },
            i * 7
        ));
    }
    std::fs::write(d.join("in/app.log"), lines).unwrap();
    let port = free_port();
    let refused = free_port();
    let config = write_config(
        d,
        "sluice.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[admin]
address = "127.0.0.1:{port}"
[report]
progress = false
[sources.pods]
type = "file"
include = ["{d}/in/*.log"]
format = "raw"
[budget]
default = "1MiB/day"
[sinks.clickhouse]
type = "clickhouse"
endpoint = "http://127.0.0.1:{refused}"
table = "logs"
[sinks.clickhouse.delivery]
batch_timeout = "100ms"
retry_initial_backoff = "50ms"
breaker_failures = 2
[sinks.clickhouse.delivery.buffer]
type = "disk"
max_bytes = "64MiB"
[sinks.archive]
type = "file"
directory = "{d}/out"
[sinks.loki]
type = "loki"
endpoint = "http://127.0.0.1:{refused}"
[sinks.loki.delivery]
batch_timeout = "100ms"
retry_initial_backoff = "50ms"
breaker_failures = 2
"#,
            d = d.display()
        ),
    );
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());

    let mut wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let rules = read("deploy/prometheus/sluice-alerts.yaml");
    wanted.extend(
        rules
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(metric_names),
    );
    assert!(wanted.len() >= 25, "{wanted:?}");
    // Until every family has a sample (the breaker opens after two
    // refused requests; the budget's series appear with its first batch).
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let body = get_metrics(port).unwrap_or_default();
        let served: BTreeSet<&str> = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let missing: Vec<&String> = wanted.iter().filter(|w| !served.contains(w.as_str())).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break format!("{missing:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Its targets refuse: a drain would wait out shutdown_timeout.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(missing, "[]", "read by deploy/ but not served");
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is not verified here");
        return;
    };
    assert!(out.status.success());
    // The unit names the installed binary; verify it against this build's.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/sluice.service").replace("/usr/local/bin/sluice", env!("CARGO_BIN_EXE_sluice"));
    let path = dir.path().join("sluice.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
}

#[test]
fn the_binary_needs_only_what_the_images_base_provides() {
    // The Dockerfile runs sluice on distroless `cc-debian12`: glibc and
    // libgcc (and libstdc++, libssl3), nothing else. zlib, zstd and
    // librdkafka must be linked in (a libz.so.1 dependency kept the image
    // from starting).
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .output()
        .expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let provided = [
        "linux-vdso.so",
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "ld-linux",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libstdc++.so.6",
    ];
    for lib in text.lines().filter_map(|l| l.split_whitespace().next()) {
        assert!(
            provided.iter().any(|p| lib.contains(p)),
            "sluice links {lib}, which the image's base does not have: {text}"
        );
    }
}
