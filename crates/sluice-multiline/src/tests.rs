use super::*;
use sluice_core::encode::write_batch;
use sluice_parse::ParseStage;

fn config() -> MultilineConfig {
    toml_config("")
}

fn toml_config(extra: &str) -> MultilineConfig {
    let text = format!("[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[multiline]\n{extra}\n");
    sluice_config::parse(&text, std::path::Path::new("t"), &|_| None)
        .unwrap()
        .multiline
        .unwrap()
}

/// Frame `lines` (stream, text) into a batch with one origin per stream;
/// an empty text is skipped and counted on the stream's next line, as the
/// framers do.
fn batch(lines: &[(u64, &str)], origins: &mut HashMap<u64, Arc<Origin>>) -> Batch {
    let mut data = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut b_origins = Vec::new();
    let mut blanks: HashMap<u64, u16> = HashMap::new();
    for (stream, text) in lines {
        if text.is_empty() {
            *blanks.entry(*stream).or_default() += 1;
            continue;
        }
        let o = origins
            .entry(*stream)
            .or_insert_with(|| {
                Arc::new(Origin {
                    stream_key: *stream,
                    fields_json: format!("\"s\":{stream}").into(),
                    default_service: None,
                    namespace: None,
                })
            })
            .clone();
        b_origins.push(o);
        let mut e = Event::unparsed(Span::new(data.len(), text.len()), 0, 0);
        e.blank_before = blanks.remove(stream).unwrap_or(0);
        events.push(e);
        data.extend_from_slice(text.as_bytes());
        data.push(b'\n');
    }
    let mut b = Batch::new(data, Vec::new());
    for (e, o) in events.iter_mut().zip(b_origins) {
        e.origin = b.add_origin(o);
    }
    *b.events_mut() = events;
    b
}

/// Run batches through parse → multiline (then finish), return output lines.
fn run(stage: &mut MultilineStage, batches: Vec<Vec<(u64, &str)>>) -> Vec<serde_json::Value> {
    let registry = Registry::new();
    let mut parse = ParseStage::new(&registry);
    let mut origins = HashMap::new();
    let mut out = Vec::new();
    for lines in batches {
        let mut b = batch(&lines, &mut origins);
        parse.parse_batch(&mut b);
        stage.process(b, &mut out);
    }
    stage.finish(&mut out);
    let mut text = Vec::new();
    for b in &out {
        write_batch(b, &mut text);
    }
    String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stage() -> MultilineStage {
    MultilineStage::new(&config(), &Registry::new()).unwrap()
}

#[test]
fn a_java_trace_with_its_header_becomes_one_event() {
    let out = run(
        &mut stage(),
        vec![vec![
            (1, "2026-11-25 01:02:03.004 INFO  [main] c.e.Svc - started"),
            (
                1,
                "2026-11-25 01:02:04.005 ERROR [main] c.e.Svc - Failed to bill order 7",
            ),
            (1, "java.lang.IllegalStateException: total mismatch"),
            (1, "\tat c.e.Svc.bill(Svc.java:10)"),
            (1, "Caused by: java.io.IOException: disk full"),
            (1, "\tat c.e.Disk.write(Disk.java:3)"),
            (1, "\t... 12 more"),
            (1, "{\"level\":\"info\",\"msg\":\"json after\"}"),
        ]],
    );
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0]["message"],
        "2026-11-25 01:02:03.004 INFO  [main] c.e.Svc - started"
    );
    let t = &out[1];
    assert_eq!(
        t["message"],
        "2026-11-25 01:02:04.005 ERROR [main] c.e.Svc - Failed to bill order 7\njava.lang.IllegalStateException: total mismatch\n\tat c.e.Svc.bill(Svc.java:10)\nCaused by: java.io.IOException: disk full\n\tat c.e.Disk.write(Disk.java:3)\n\t... 12 more"
    );
    assert_eq!(t["error_type"], "java.lang.IllegalStateException");
    assert_eq!(t["error_message"], "total mismatch");
    assert_eq!(t["ts"], "2026-11-25 01:02:04.005");
    assert_eq!(t["level"], "ERROR");
    assert_eq!(t["multiline_lines"], 6);
    assert_eq!(t["s"], 1, "the stream's origin fields are kept");
    assert_eq!(out[2]["msg"], "json after");
}

#[test]
fn streams_never_mix_and_order_is_kept_per_stream() {
    let out = run(
        &mut stage(),
        vec![vec![
            (1, "Traceback (most recent call last):"),
            (2, "panic: boom"),
            (1, "  File \"a.py\", line 1, in <module>"),
            (2, "goroutine 1 [running]:"),
            (1, "    f()"),
            (2, "main.main()"),
            (1, "ValueError: bad"),
            (2, "\t/src/main.go:5 +0x1d"),
            (1, "next line of 1"),
            (2, "next line of 2"),
        ]],
    );
    let by_stream = |s: u64| -> Vec<String> {
        out.iter()
            .filter(|v| v["s"] == s)
            .map(|v| v["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        by_stream(1),
        [
            "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    f()\nValueError: bad",
            "next line of 1"
        ]
    );
    assert_eq!(
        by_stream(2),
        [
            "panic: boom\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d",
            "next line of 2"
        ]
    );
    let py = out.iter().find(|v| v["s"] == 1 && v["error_type"].is_string()).unwrap();
    assert_eq!(
        (py["error_type"].as_str(), py["error_message"].as_str()),
        (Some("ValueError"), Some("bad"))
    );
}

#[test]
fn a_trace_spanning_batches_is_held_and_placed_in_order() {
    let out = run(
        &mut stage(),
        vec![
            vec![
                (1, "before"),
                (1, "TypeError: x is undefined"),
                (1, "    at f (a.js:1:1)"),
            ],
            vec![(1, "    at g (a.js:2:2)"), (1, "after")],
        ],
    );
    let msgs: Vec<&str> = out.iter().map(|v| v["message"].as_str().unwrap()).collect();
    assert_eq!(
        msgs,
        [
            "before",
            "TypeError: x is undefined\n    at f (a.js:1:1)\n    at g (a.js:2:2)",
            "after"
        ]
    );
}

#[test]
fn a_trace_at_the_very_end_is_emitted_at_finish() {
    let out = run(
        &mut stage(),
        vec![vec![
            (3, "Traceback (most recent call last):"),
            (3, "  File \"x.py\", line 9, in f"),
        ]],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["multiline_lines"], 2);
}

#[test]
fn idle_streams_are_flushed_by_the_timeout_and_keep_acknowledgements() {
    let mut st = MultilineStage::new(&toml_config("flush_timeout = \"50ms\""), &Registry::new()).unwrap();
    let registry = Registry::new();
    let mut parse = ParseStage::new(&registry);
    let (tx, mut rx) = sluice_core::ack::channel();
    let mut b = batch(
        &[(1, "java.lang.RuntimeException: x"), (1, "\tat A.b(A.java:1)")],
        &mut HashMap::new(),
    );
    b.add_ack(tx.token(5));
    parse.parse_batch(&mut b);
    let mut out = Vec::new();
    st.process(b, &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_empty(), "both lines are held");
    drop(out);
    assert_eq!(rx.try_recv(), None, "the held lines keep the batch unacknowledged");
    let mut out = Vec::new();
    st.tick(Instant::now(), &mut out);
    assert!(out.is_empty(), "not yet due");
    st.tick(Instant::now() + Duration::from_millis(60), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 1);
    drop(out);
    assert_eq!(rx.try_recv().map(|a| a.seq), Some(5));
}

#[test]
fn long_traces_are_split_and_marked_never_dropped() {
    let mut st = MultilineStage::new(&toml_config("max_lines = 3"), &Registry::new()).unwrap();
    let lines = [
        (1, "java.lang.Error: deep"),
        (1, "\tat A.a(A.java:1)"),
        (1, "\tat A.b(A.java:2)"),
        (1, "\tat A.c(A.java:3)"),
        (1, "\tat A.d(A.java:4)"),
    ];
    let out = run(&mut st, vec![lines.to_vec()]);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0]["message"],
        "java.lang.Error: deep\n\tat A.a(A.java:1)\n\tat A.b(A.java:2)"
    );
    assert_eq!(out[0]["sluice_truncated"], true);
    assert_eq!(out[1]["message"], "\tat A.c(A.java:3)\n\tat A.d(A.java:4)");
    assert_eq!(out[1]["sluice_truncated"], true);
}

#[test]
fn json_events_are_never_merged_and_get_error_type_from_stacktrace() {
    let out = run(
        &mut stage(),
        vec![vec![
            (1, "java.lang.IllegalStateException: a"),
            (
                1,
                r#"{"level":"ERROR","stacktrace":"java.lang.NullPointerException: npe\n\tat A.b(A.java:1)"}"#,
            ),
            (1, "\tat X.y(X.java:1)"),
        ]],
    );
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["message"], "java.lang.IllegalStateException: a");
    assert_eq!(out[1]["error_type"], "java.lang.NullPointerException");
    assert_eq!(
        out[2]["message"], "\tat X.y(X.java:1)",
        "a frame after a JSON line starts nothing"
    );
}

#[test]
fn a_header_without_a_trace_stays_a_plain_line() {
    let out = run(
        &mut stage(),
        vec![vec![(1, "2026-11-25 ERROR something odd"), (1, "2026-11-25 INFO fine")]],
    );
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0],
        serde_json::json!({"message": "2026-11-25 ERROR something odd", "s": 1})
    );
}

#[test]
fn custom_rules() {
    let mut st = MultilineStage::new(
        &toml_config("languages = []\nstart_pattern = 'BEGIN'\ncontinue_pattern = '\\| '"),
        &Registry::new(),
    )
    .unwrap();
    let out = run(
        &mut st,
        vec![vec![(1, "BEGIN job"), (1, "| step 1"), (1, "| step 2"), (1, "END")]],
    );
    let msgs: Vec<&str> = out.iter().map(|v| v["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["BEGIN job\n| step 1\n| step 2", "END"]);
}

/// Each output event's first line and whether it is flagged a stack trace.
fn flagged(st: &mut MultilineStage, lines: &[(u64, &str)]) -> Vec<(String, bool)> {
    let mut parse = ParseStage::new(&Registry::new());
    let mut b = batch(lines, &mut HashMap::new());
    parse.parse_batch(&mut b);
    let mut out = Vec::new();
    st.process(b, &mut out);
    st.finish(&mut out);
    let mut events = Vec::new();
    for b in &out {
        for e in b.events() {
            let mut line = Vec::new();
            sluice_core::encode::write_event(b, e, &mut line);
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let first = v["message"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default();
            events.push((first.to_string(), e.flags & sluice_core::event::FLAG_STACK_TRACE != 0));
        }
    }
    events.sort();
    events
}

#[test]
fn a_stitched_trace_is_flagged_for_the_budget_and_a_lone_header_is_not() {
    let lines = [
        (1, "2026-11-25 01:02:04.005 ERROR [main] c.e.Svc - failed"),
        (1, "java.lang.IllegalStateException: total mismatch"),
        (1, "\tat c.e.Svc.bill(Svc.java:10)"),
        (2, "Traceback (most recent call last):"),
        (2, "  File \"w.py\", line 3, in <module>"),
        // A trace whose exception line is missing: no type to read.
        (2, "    run()"),
        // A header that introduces no trace stays a line of its own.
        (3, "2026-11-25 01:02:05.000 ERROR [main] c.e.Svc - retrying"),
        (3, "plain text"),
    ];
    let flag = |first: &str, f: bool| (first.to_string(), f);
    assert_eq!(
        flagged(&mut stage(), &lines),
        [
            flag("2026-11-25 01:02:04.005 ERROR [main] c.e.Svc - failed", true),
            flag("2026-11-25 01:02:05.000 ERROR [main] c.e.Svc - retrying", false),
            flag("Traceback (most recent call last):", true),
            flag("plain text", false),
        ]
    );
    // A custom rule joins records, not necessarily traces.
    let mut custom = MultilineStage::new(
        &toml_config("languages = []\nstart_pattern = 'BEGIN'\ncontinue_pattern = '\\| '"),
        &Registry::new(),
    )
    .unwrap();
    assert_eq!(
        flagged(&mut custom, &[(1, "BEGIN job"), (1, "| step 1"), (1, "END")]),
        [flag("BEGIN job", false), flag("END", false)]
    );
}

mod shapes;

#[test]
fn a_long_first_line_reserves_no_more_than_a_group_may_hold() {
    let mut st = stage();
    let max = st.max_bytes;
    // A Java header line as long as a group may be: it opens a group.
    let long = format!(
        "2026-11-25 01:02:04.005 ERROR [main] c.e.Svc - {}",
        "x".repeat(max - 100)
    );
    let mut origins = HashMap::new();
    let mut b = batch(&[(1, long.as_str())], &mut origins);
    ParseStage::new(&Registry::new()).parse_batch(&mut b);
    st.process(b, &mut Vec::new());
    let g = st.streams[&1].group.as_ref().expect("an open group");
    assert_eq!(g.text.len(), long.len());
    assert!(g.text.capacity() <= max, "{} reserved of {max}", g.text.capacity());
}
