//! The body of `GET /metrics`: every family of the run's registry
//! (`sluice_*`), `sluice_build_info`, and the process families, as
//! Prometheus text 0.0.4 or, when the scraper asks for it, OpenMetrics 1.0.

use std::fmt::Write;

use sluice_core::Registry;

/// The commit sluice was built from (`SLUICE_COMMIT` at build time, set by
/// the build script from git), else `unknown`.
const COMMIT: &str = match option_env!("SLUICE_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Prometheus text exposition 0.0.4.
pub fn render(registry: &Registry) -> String {
    let mut out = registry.render_prometheus();
    let _ = writeln!(
        out,
        "# HELP sluice_build_info The sluice build: version and commit (always 1).\n# TYPE sluice_build_info gauge\nsluice_build_info{{version=\"{}\",commit=\"{COMMIT}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    crate::process::render(&mut out);
    out
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus sends it
/// first, with text 0.0.4 as the fallback).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.contains("application/openmetrics-text")
}

/// The same families as OpenMetrics 1.0: a counter family is named
/// without its `_total` (its samples keep it), and the body ends `# EOF`.
pub fn render_openmetrics(registry: &Registry) -> String {
    let text = render(registry);
    // Counter families, from their TYPE lines (a HELP line comes first).
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let meta = line
            .strip_prefix("# TYPE ")
            .map(|r| ("TYPE", r))
            .or_else(|| line.strip_prefix("# HELP ").map(|r| ("HELP", r)));
        if let Some((kind, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some(base) = name.strip_suffix("_total").filter(|_| counters.contains(name)) {
                let _ = writeln!(out, "# {kind} {base} {tail}");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let r = Registry::new();
        r.counter("events_in_total", "Events read.", &[("source", "in")]).add(3);
        r.gauge("files_open", "Open files.", &[]).set(2);
        let body = render_openmetrics(&r);
        assert!(
            body.starts_with(
                "# HELP sluice_events_in Events read.\n# TYPE sluice_events_in counter\n\
                 sluice_events_in_total{source=\"in\"} 3\n\
                 # HELP sluice_files_open Open files.\n# TYPE sluice_files_open gauge\nsluice_files_open 2\n"
            ),
            "{body}"
        );
        assert!(
            body.contains("\n# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "),
            "{body}"
        );
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1);
    }
}
