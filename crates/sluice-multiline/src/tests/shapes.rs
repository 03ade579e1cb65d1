//! Boundaries of traces the detectors know only in part: blank lines,
//! preambles that turn out to be something else, shapes nobody knows.

use super::{run, stage};

fn messages(out: &[serde_json::Value]) -> Vec<String> {
    out.iter().map(|v| v["message"].as_str().unwrap().to_string()).collect()
}

#[test]
fn blank_lines_inside_a_trace_are_kept_and_those_after_it_are_not() {
    let trace = [
        "Traceback (most recent call last):",
        "  File \"/app/a.py\", line 2, in <module>",
        "KeyError: 'k'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        "  File \"/app/a.py\", line 4, in <module>",
        "ValueError: bad",
    ];
    let mut lines: Vec<(u64, &str)> = trace.iter().map(|l| (1, *l)).collect();
    lines.extend([(1, ""), (1, ""), (1, "2026-11-25 01:02:03 INFO next")]);
    let out = run(&mut stage(), vec![lines]);
    assert_eq!(
        messages(&out),
        [trace.join("\n"), "2026-11-25 01:02:03 INFO next".to_string()]
    );
    assert_eq!(out[0]["multiline_lines"], 9);
    assert_eq!(out[0]["error_type"], "ValueError");
}

#[test]
fn blank_lines_never_join_lines_that_are_no_trace() {
    let out = run(
        &mut stage(),
        vec![vec![(1, "first"), (1, ""), (1, "second"), (2, ""), (2, "    indented")]],
    );
    assert_eq!(messages(&out), ["first", "second", "    indented"]);
}

#[test]
fn a_node_location_line_without_its_caret_is_not_a_trace() {
    let out = run(
        &mut stage(),
        vec![vec![
            (1, "/app/server.js:12"),
            (1, "listening"),
            (1, "ready"),
            (2, "/app/a.js:3"),
            (2, ""),
        ]],
    );
    assert_eq!(
        messages(&out),
        ["/app/server.js:12", "listening", "ready", "/app/a.js:3"]
    );
    assert!(out.iter().all(|v| v.get("multiline_lines").is_none()));
}

#[test]
fn a_shape_no_detector_knows_loses_no_line_and_merges_nothing() {
    let lines = [
        "=== BEGIN DUMP ===",
        "  key1 = 1",
        "    at nothing we know",
        "  | not a python group",
        "=== END DUMP ===",
        "Caused by: a sentence in a plain log",
        "  +-- a tree drawn in text",
    ];
    let out = run(&mut stage(), vec![lines.iter().map(|l| (1, *l)).collect()]);
    assert_eq!(messages(&out), lines);
}

#[test]
fn a_plain_line_after_a_trace_is_not_part_of_it() {
    let out = run(
        &mut stage(),
        vec![vec![
            (1, "/app/x.js:2"),
            (1, "  throw new Error('boom');"),
            (1, "  ^"),
            (1, ""),
            (1, "Error: boom"),
            (1, "    at handler (/app/x.js:2:9)"),
            (1, ""),
            (1, "Node.js v20.20.2"),
            (1, "GET /healthz 200"),
        ]],
    );
    assert_eq!(
        messages(&out),
        [
            "/app/x.js:2\n  throw new Error('boom');\n  ^\n\nError: boom\n    at handler (/app/x.js:2:9)\n\nNode.js v20.20.2",
            "GET /healthz 200"
        ]
    );
    assert_eq!(
        (out[0]["error_type"].as_str(), out[0]["error_message"].as_str()),
        (Some("Error"), Some("boom"))
    );
}
