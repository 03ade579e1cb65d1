//! How the budget's rules judge single records and small streams: slow
//! thresholds by route and by service, which budget rule a service gets,
//! events-per-second budgets, stack traces as errors, and the two clocks'
//! edge cases (a stamp far past the wall clock; a new service's first
//! second on the wall clock).

use super::*;

#[test]
fn per_route_slow_thresholds_apply_by_template() {
    // `/v1/search/{id}` is slow from 3000 ms, `/v1/export` from 200 ms;
    // every other route from the default 1000 ms. Each record's duration
    // is on the other side of its own threshold from the default's.
    let json = [
        // 2000 ms: slow by default, normal under 3000 (route, path, a
        // route field carrying an id, and one with a query).
        r#"{"service":"api","duration_ms":2000,"route":"/v1/search/{id}"}"#,
        r#"{"service":"api","duration_ms":2000,"path":"/v1/search/42?q=x"}"#,
        r#"{"service":"api","duration_ms":2000,"route":"/v1/search/77"}"#,
        r#"{"service":"api","duration_ms":2000,"route":"/v1/search/{id}?page=2"}"#,
        // 3000 ms: slow.
        r#"{"service":"api","duration_ms":3000,"route":"/v1/search/{id}"}"#,
        // 500 ms: normal by default, slow under 200.
        r#"{"service":"api","duration_ms":500,"path":"/v1/export"}"#,
        // 1000 ms elsewhere: slow by the default.
        r#"{"service":"api","duration_ms":1000,"route":"/v1/users/{id}"}"#,
        r#"{"service":"api","duration_ms":999,"route":"/v1/users/{id}"}"#,
    ];
    let lines = plain_lines(json.iter().map(|j| j.to_string()));
    let registry = Registry::new();
    let extra = "[budget.slow_routes]\n\"/v1/search/{id}\" = 3000\n\"/v1/export\" = 200\n";
    let cfg = config(&[], extra);
    let mut stage = BudgetStage::new(&cfg, &registry, None).unwrap();
    // One event per batch, so each is classified on its own.
    let mut parse = ParseStage::new(&Registry::new());
    let mut slow = Vec::new();
    for line in &lines {
        let mut b = parsed_batch(&mut parse, std::slice::from_ref(line));
        let before = registry.total("budget_events_total");
        stage.decide(&mut b);
        stage.publish_stats();
        assert_eq!(registry.total("budget_events_total"), before + 1);
        let slow_now = registry
            .value(
                "budget_events_total",
                &[("service", "api"), ("class", "slow"), ("level", "none")],
            )
            .unwrap();
        slow.push(slow_now);
    }
    // The running count of slow events after each record.
    assert_eq!(slow, [0, 0, 0, 0, 1, 2, 3, 3]);
}

#[test]
fn a_stamp_past_the_wall_clock_does_not_move_the_event_clock() {
    let record = |ts: &str| format!(r#"{{"ts":"{ts}","level":"ERROR","service":"api","msg":"m"}}"#);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], ""), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let mut decide = |records: &[String]| {
        let lines = plain_lines(records.iter().cloned());
        let mut b = parsed_batch(&mut parse, &lines);
        stage.decide(&mut b);
        stage.publish_stats();
        assert_eq!(b.events().len(), records.len(), "errors are all kept");
        let bytes: usize = records.iter().map(|r| r.len() + 1).sum();
        (
            bytes,
            registry.value("budget_spent_bytes", &[("service", "api")]).unwrap(),
        )
    };
    // A sentinel stamp among a replay of 2025: the window stays in 2025,
    // so its spend goes on accumulating.
    let replay = [
        record("2025-11-25T00:00:01Z"),
        record("2025-11-25T00:00:02Z"),
        record("9999-12-31T23:59:59Z"),
        record("2025-11-25T00:00:03Z"),
    ];
    let (bytes, spent) = decide(&replay);
    assert_eq!(spent, bytes as i64);
    assert_eq!(registry.total("budget_future_ts_total"), 1);
    let (more, spent) = decide(&[record("2025-11-25T00:00:04Z")]);
    assert_eq!(spent, (bytes + more) as i64, "the same window");
    // Two hours ahead is within the lead: the clock moves, a new day's
    // window starts with that record, and the 2025 one after it counts in it.
    let ahead = [record(&soon), record("2025-11-25T00:00:05Z")];
    let (bytes, spent) = decide(&ahead);
    assert_eq!(spent, bytes as i64);
    assert_eq!(registry.total("budget_future_ts_total"), 1);
}

#[test]
fn an_events_per_second_budget_keeps_errors_and_samples_the_rest_to_the_rate() {
    // Two minutes of `api` at 1000 normal and 20 error events per second
    // (one trace each), budgeted at 100 events/s: after the rates settle,
    // ~80 normal events/s are kept, every error, and the kept normal
    // events re-weight to the truth.
    let mut json = Vec::new();
    for t in 0..120 {
        for i in 0..1020 {
            let (level, status) = if i % 51 == 50 { ("ERROR", 500) } else { ("INFO", 200) };
            json.push(format!(
                r#"{{"ts":"2025-11-25T00:{:02}:{:02}.{:03}Z","level":"{level}","service":"api","status":{status},"trace_id":"{t}-{i}"}}"#,
                t / 60,
                t % 60,
                i * 1000 / 1020
            ));
        }
    }
    let lines = plain_lines(json.into_iter());
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], "default = \"100 events/s\"\n"), &registry, None).unwrap();
    let kept = run(&mut stage, &lines, 0);
    let is_error = |i: usize| i % 1020 % 51 == 50;
    let errors = kept.iter().filter(|(i, _)| is_error(*i)).count();
    assert_eq!(errors, 120 * 20, "every error kept");
    let second_minute: Vec<f64> = kept
        .iter()
        .filter(|(i, _)| !is_error(*i) && *i >= 60 * 1020)
        .map(|(_, rate)| *rate)
        .collect();
    let per_second = second_minute.len() as f64 / 60.0;
    let reweighted = second_minute.iter().sum::<f64>() / (60.0 * 1000.0);
    eprintln!("normal events kept: {per_second:.1}/s; re-weighted {reweighted:.3} of the truth");
    assert!((76.0..=84.0).contains(&per_second), "{per_second}/s");
    assert!((0.97..=1.03).contains(&reweighted), "{reweighted}");
}

#[test]
fn an_exact_service_name_wins_over_globs_and_longer_globs_over_shorter() {
    let extra = "[budget.services]\n\"*\" = \"1MiB/day\"\n\"checkout\" = \"9GiB/day\"\n\"check*\" = \"2MiB/day\"\n\"legacy-*\" = \"3MiB/day\"\n\"c?eckout\" = \"4MiB/day\"\n";
    let text =
        format!("[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nclock = \"event\"\n{extra}");
    let cfg = sluice_config::parse(&text, std::path::Path::new("t"), &|_| None)
        .unwrap()
        .budget
        .unwrap();
    let stage = BudgetStage::new(&cfg, &Registry::new(), None).unwrap();
    let mib = |b: Budget| b.bytes >> 20;
    assert_eq!(mib(stage.budget_for("checkout")), 9 * 1024, "exact name");
    assert_eq!(mib(stage.budget_for("checkpoint")), 2, "check*");
    assert_eq!(mib(stage.budget_for("cXeckout")), 4, "c?eckout over *");
    assert_eq!(mib(stage.budget_for("legacy-billing")), 3);
    assert_eq!(mib(stage.budget_for("search")), 1, "only *");
}

#[test]
fn per_service_slow_thresholds_apply_below_per_route_ones() {
    // `search` is slow from 3000 ms, `batch-*` from 60 s, everything else
    // from the default 1000 ms; the route `/v1/export` from 200 ms for
    // every service.
    let json = [
        (
            r#"{"service":"search","duration_ms":2000,"route":"/v1/q"}"#,
            "search",
            false,
        ),
        (r#"{"service":"search","duration_ms":2000}"#, "search", false),
        (
            r#"{"service":"search","duration_ms":3000,"path":"/v1/q/42"}"#,
            "search",
            true,
        ),
        (
            r#"{"service":"search","duration_ms":500,"route":"/v1/export"}"#,
            "search",
            true,
        ),
        (r#"{"service":"batch-7","duration_ms":30000}"#, "batch-7", false),
        (
            r#"{"service":"batch-7","duration_ms":60000,"route":"/run"}"#,
            "batch-7",
            true,
        ),
        (r#"{"service":"api","duration_ms":2000,"route":"/v1/q"}"#, "api", true),
        (r#"{"service":"api","duration_ms":999}"#, "api", false),
    ];
    let registry = Registry::new();
    let extra =
        "[budget.slow_routes]\n\"/v1/export\" = 200\n[budget.slow_services]\nsearch = 3000\n\"batch-*\" = 60000\n";
    let mut stage = BudgetStage::new(&config(&[], extra), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    for (i, (line, service, slow)) in json.iter().enumerate() {
        let slow_count = |r: &Registry| {
            r.value(
                "budget_events_total",
                &[("service", service), ("class", "slow"), ("level", "none")],
            )
            .unwrap_or(0)
        };
        let before = slow_count(&registry);
        let mut b = parsed_batch(&mut parse, &plain_lines(std::iter::once(line.to_string())));
        stage.decide(&mut b);
        stage.publish_stats();
        assert_eq!(slow_count(&registry) - before, i64::from(*slow), "record {i}: {line}");
    }
}

#[test]
fn a_stack_trace_is_an_error_with_or_without_an_exception_type() {
    // With p at the floor (a 1-byte budget), only errors stay: a record
    // with a `stacktrace` (no `error_type` readable from it), and a text
    // event the multiline stage flagged as a stitched trace.
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], "default = \"1B/day\"\nfloor = 0.0001\n"), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let records = [
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a1","stacktrace":"at frame 1\nat frame 2"}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a2","stacktrace":["f1","f2"]}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a3","stacktrace":null}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a6","stacktrace":""}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a7","stacktrace":false}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a4","msg":"stitched"}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","level":"INFO","trace_id":"a5","msg":"plain"}"#,
    ];
    let mut kept = Vec::new();
    // p follows the rates observed up to the batch before: the third
    // round is the first judged at the floor.
    for round in 0..3 {
        // New trace ids each round: a trace keeps its first decision's p.
        // And a later second: the rates (and p) move with the clock.
        let lines = plain_lines(records.iter().map(|r| {
            r.replace("\"trace_id\":\"a", &format!("\"trace_id\":\"r{round}a"))
                .replace(":01Z", &format!(":0{}Z", 1 + 4 * round))
        }));
        let mut b = parsed_batch(&mut parse, &lines);
        b.events_mut()[5].flags |= sluice_core::event::FLAG_STACK_TRACE;
        stage.decide(&mut b);
        let mut out = Vec::new();
        sluice_core::encode::write_batch(&b, &mut out);
        if round == 2 {
            kept = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["trace_id"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
        }
    }
    // `a3`, `a6` and `a7` (a null, empty or false stacktrace) and `a5`
    // are normal.
    assert_eq!(kept, ["r2a1", "r2a2", "r2a4"]);
    stage.publish_stats();
    let errors = registry
        .value(
            "budget_events_total",
            &[("service", "api"), ("class", "error"), ("level", "info")],
        )
        .unwrap();
    assert_eq!(errors, 9);
}

#[test]
fn a_new_service_on_the_wall_clock_starts_unsampled_when_under_budget() {
    // 20 events of ~120 bytes every 25 ms (~100 kB/s, ~8 GB/day) against
    // 100 GiB/day for 1.5 s (past the first rate reading): nothing should
    // be sampled. The first batch alone spans microseconds of wall time; a
    // rate primed from it read ~1000x too high and held p near the floor
    // for tens of minutes (266 of these 1200 events were kept).
    let text = "[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nclock = \"wall\"\ndefault = \"100GiB/day\"\n";
    let cfg = sluice_config::parse(text, std::path::Path::new("t"), &|_| None)
        .unwrap()
        .budget
        .unwrap();
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&cfg, &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let mut kept = 0;
    for round in 0..60 {
        let lines = plain_lines((0..20).map(|i| {
            format!(
                r#"{{"level":"INFO","service":"api","status":200,"trace_id":"r{round}-{i}","msg":"{}"}}"#,
                "x".repeat(40)
            )
        }));
        let mut b = parsed_batch(&mut parse, &lines);
        stage.decide(&mut b);
        kept += b.events().len();
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    stage.publish_stats();
    assert_eq!(kept, 1200);
    assert_eq!(
        registry.value("budget_keep_probability_ppm", &[("service", "api")]),
        Some(1_000_000)
    );
}
