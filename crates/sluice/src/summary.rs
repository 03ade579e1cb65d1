//! The end-of-run table (`sluice run`) and the benchmark report
//! (`sluice bench`). MB here is 10^6 bytes.

use sluice_core::metric_names;
use std::fmt::Write as _;

use indicatif::HumanCount;
use sluice_core::Registry;
use sluice_runtime::{RunReport, Verdict};

use crate::resources::Usage;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn counter(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> u64 {
    registry.value(name, labels).unwrap_or(0).max(0) as u64
}

/// The summary table `sluice run` prints on stderr.
pub fn render(report: &RunReport, registry: &Registry, usage: &Usage) -> String {
    let mut s = String::new();
    let verdict = match report.verdict() {
        Verdict::Clean => {
            let dropped: Vec<String> = report
                .sinks
                .iter()
                .filter(|(_, s)| s.dropped_events > 0)
                .map(|(id, s)| format!("{} events at sink `{id}`", s.dropped_events))
                .collect();
            if dropped.is_empty() {
                "clean: every event was delivered to every sink".to_string()
            } else {
                format!(
                    "clean: every event was delivered to every sink or dropped by when_full = \"drop_newest\" ({})",
                    dropped.join(", ")
                )
            }
        }
        Verdict::Held(why) => format!("nothing lost, not all delivered: {}", why.join("; ")),
        Verdict::NotClean(why) => format!("NOT clean: {}", why.join("; ")),
    };
    let _ = writeln!(
        s,
        "\nsluice finished in {:.2}s, {verdict}\n",
        report.elapsed.as_secs_f64()
    );
    for (id, src) in &report.sources {
        let l = [("source", id.as_str())];
        let _ = writeln!(
            s,
            "  source {id:<14} {:>12} events {:>10.1} MB read   {:>12} acknowledged{}",
            HumanCount(src.emitted_events).to_string(),
            mb(counter(registry, metric_names::BYTES_IN_TOTAL, &l)),
            HumanCount(src.delivered_events).to_string(),
            if src.failed_batches > 0 {
                format!(", {} batches FAILED", src.failed_batches)
            } else {
                String::new()
            }
        );
        let (empty, cut) = (
            counter(registry, metric_names::EMPTY_LINES_TOTAL, &l),
            counter(registry, metric_names::LINES_TRUNCATED_TOTAL, &l),
        );
        if empty + cut > 0 {
            let _ = writeln!(s, "  {:<21} {empty} empty lines skipped, {cut} over-long lines cut", "");
        }
    }
    if registry.value(metric_names::PARSE_JSON_EVENTS_TOTAL, &[]).is_some() {
        let reason = |r: &str| counter(registry, metric_names::PARSE_ERRORS_TOTAL, &[("reason", r)]);
        let _ = writeln!(
            s,
            "  stage  {:<14} {:>12} JSON   {:>12} text (not an object {}, invalid JSON {}, invalid UTF-8 {})",
            "parse",
            HumanCount(counter(registry, metric_names::PARSE_JSON_EVENTS_TOTAL, &[])).to_string(),
            HumanCount(registry.total(metric_names::PARSE_ERRORS_TOTAL)).to_string(),
            reason("not_object"),
            reason("invalid_json"),
            reason("invalid_utf8"),
        );
    }
    if let Some(stitched) = registry.value(metric_names::MULTILINE_EVENTS_TOTAL, &[]) {
        let _ = writeln!(
            s,
            "  stage  {:<14} {:>12} traces stitched from {} lines ({} split, {} by timeout)",
            "multiline",
            HumanCount(stitched.max(0) as u64).to_string(),
            HumanCount(counter(registry, metric_names::MULTILINE_LINES_TOTAL, &[])),
            counter(registry, metric_names::MULTILINE_SPLIT_TOTAL, &[]),
            counter(registry, metric_names::MULTILINE_FLUSH_TIMEOUTS_TOTAL, &[]),
        );
    }
    if let Some(changed) = registry.value(metric_names::REDACTED_EVENTS_TOTAL, &[]) {
        let _ = writeln!(
            s,
            "  stage  {:<14} {:>12} events changed ({} values masked or fields removed)",
            "redact",
            HumanCount(changed.max(0) as u64).to_string(),
            HumanCount(registry.total(metric_names::REDACTIONS_TOTAL)),
        );
    }
    if registry.total(metric_names::BUDGET_EVENTS_TOTAL) > 0 {
        let kind = |k: &str| -> u64 {
            registry
                .snapshot()
                .iter()
                .filter(|(name, _)| {
                    name.starts_with("budget_bytes_total{") && name.ends_with(&format!("kind=\"{k}\"}}"))
                })
                .map(|(_, v)| (*v).max(0) as u64)
                .sum()
        };
        let _ = writeln!(
            s,
            "  stage  {:<14} {:>12} events judged; {:.1} MB in, {:.1} MB kept, {:.1} MB sampled away (errors and slow all kept)",
            "budget",
            HumanCount(registry.total(metric_names::BUDGET_EVENTS_TOTAL)).to_string(),
            mb(kind("in")),
            mb(kind("kept")),
            mb(kind("dropped")),
        );
    }
    for (id, sink) in &report.sinks {
        let l = [("sink", id.as_str())];
        let disk = registry.value(metric_names::FILE_BYTES_WRITTEN_TOTAL, &l);
        let storage = registry.value("circuit_state", &l).is_some();
        let mut line = format!(
            "  sink   {id:<14} {:>12} events {:>10.1} MB {}",
            HumanCount(sink.events).to_string(),
            mb(sink.bytes),
            if storage { "sent" } else { "NDJSON" }
        );
        if storage {
            let v = |name: &str| registry.value(name, &l).unwrap_or(0);
            let _ = write!(
                line,
                "; {} retries, {} timeouts, circuit opened {}x, {} dead-lettered, {} dropped (drop_newest), {} not delivered",
                v(metric_names::SINK_RETRIES_TOTAL),
                v(metric_names::SINK_TIMEOUTS_TOTAL),
                v(metric_names::CIRCUIT_OPEN_TOTAL),
                sink.dead_lettered,
                sink.dropped_events,
                sink.abandoned_events,
            );
            let invalid_ts = v(metric_names::INVALID_TS_TOTAL);
            if invalid_ts > 0 {
                let _ = write!(line, ", {invalid_ts} invalid ts");
            }
            if sink.quarantined_bytes > 0 {
                let _ = write!(line, ", {} bytes quarantined", sink.quarantined_bytes);
            }
            if sink.held_bytes > 0 {
                let _ = write!(line, ", {:.1} MB held in the disk buffer", mb(sink.held_bytes));
            }
        }
        if let Some(disk) = disk {
            let disk = disk.max(1) as u64;
            let _ = write!(
                line,
                " → {:.1} MB on disk ({:.1}x), {} file{}",
                mb(disk),
                sink.bytes as f64 / disk as f64,
                sink.files.len(),
                if sink.files.len() == 1 { "" } else { "s" }
            );
            if let Some(dir) = sink.files.first().and_then(|f| f.parent()) {
                let _ = write!(line, " in {}", dir.display());
            }
        }
        let _ = writeln!(s, "{line}");
    }
    let bytes_in = registry.total(metric_names::BYTES_IN_TOTAL);
    let secs = usage.wall.as_secs_f64().max(1e-9);
    let cpu = usage.cpu.as_secs_f64().max(1e-9);
    let _ = writeln!(
        s,
        "\n  {:.1} MB/s · {} events/s · CPU {:.2}s ({:.1} MB per CPU-second) · peak RSS {:.1} MB",
        mb(bytes_in) / secs,
        HumanCount((registry.total(metric_names::EVENTS_IN_TOTAL) as f64 / secs) as u64),
        cpu,
        mb(bytes_in) / cpu,
        mb(usage.peak_rss)
    );
    s
}

/// The report `sluice bench` prints on stdout.
pub fn render_bench(report: &RunReport, registry: &Registry, usage: &Usage) -> String {
    let bytes_in = registry.total(metric_names::BYTES_IN_TOTAL);
    let events = registry.total(metric_names::EVENTS_IN_TOTAL);
    let secs = usage.wall.as_secs_f64().max(1e-9);
    let cpu = usage.cpu.as_secs_f64().max(1e-9);
    let mut s = String::new();
    let _ = writeln!(s, "input        {:.1} MB, {} events", mb(bytes_in), HumanCount(events));
    let _ = writeln!(s, "wall         {secs:.2} s");
    let _ = writeln!(
        s,
        "throughput   {:.1} MB/s · {} events/s",
        mb(bytes_in) / secs,
        HumanCount((events as f64 / secs) as u64)
    );
    let _ = writeln!(
        s,
        "cpu          {cpu:.2} s user+sys → {:.1} MB per CPU-second",
        mb(bytes_in) / cpu
    );
    let _ = writeln!(s, "peak rss     {:.1} MB", mb(usage.peak_rss));
    let delivered: u64 = report.sources.iter().map(|(_, s)| s.delivered_events).sum();
    let _ = writeln!(
        s,
        "delivered    {} of {} events acknowledged by every sink{}",
        HumanCount(delivered),
        HumanCount(events),
        if report.is_clean() { "" } else { " (NOT clean)" }
    );
    for e in &report.errors {
        let _ = writeln!(s, "error        {e}");
    }
    s
}
