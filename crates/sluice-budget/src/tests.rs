//! A simulated day of bursty traffic for 20 services on the event clock.

use std::collections::HashMap;

use sluice_core::{Event, Span};
use sluice_parse::ParseStage;

use super::*;

const DAY_START: i64 = 1_764_028_800; // 2025-11-25T00:00:00Z

struct Line {
    json: String,
    service: usize,
    trace: u64,
    must: bool,
}

/// Deterministic traffic: per service a base rate with bursts, 1-3 lines per
/// trace, ~4% error traces, ~1.5% slow traces.
fn day(seconds: i64) -> Vec<Line> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut acc = [0.0f64; 20];
    let mut out = Vec::new();
    let mut trace = 0u64;
    for t in 0..seconds {
        let hour = t / 3600;
        for (s, a) in acc.iter_mut().enumerate() {
            let mut rate = 0.2 + 0.04 * s as f64;
            if s % 2 == 0 && (hour == 9 || hour == 14) {
                rate *= 5.0; // bursts
            }
            *a += rate;
            while *a >= 1.0 {
                *a -= 1.0;
                trace += 1;
                let roll = next() % 1000;
                let (level, status, dur) = if roll < 40 {
                    ("ERROR", 500, 120)
                } else if roll < 55 {
                    ("WARN", 200, 1500)
                } else {
                    ("INFO", 200, 20 + (next() % 300) as i64)
                };
                let lines = 1 + next() % 3;
                for k in 0..lines {
                    let ts = time::OffsetDateTime::from_unix_timestamp(DAY_START + t).unwrap();
                    let ts = format!(
                        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                        ts.year(),
                        ts.month() as u8,
                        ts.day(),
                        ts.hour(),
                        ts.minute(),
                        ts.second(),
                        k
                    );
                    // Only the request summary line carries the error/slow mark.
                    let last = k + 1 == lines;
                    let (lvl, st, d) = if last { (level, status, dur) } else { ("INFO", 200, 5) };
                    out.push(Line {
                        json: format!(
                            "{{\"ts\":\"{ts}\",\"level\":\"{lvl}\",\"service\":\"svc{s:02}\",\"trace_id\":\"{trace:032x}\",\"status\":{st},\"duration_ms\":{d},\"path\":\"/v1/users/{}\",\"msg\":\"request line {k}\"}}",
                            trace % 977
                        ),
                        service: s,
                        trace,
                        must: last && level != "INFO",
                    });
                }
            }
        }
    }
    out
}

fn config(budgets: &[(usize, u64)], extra: &str) -> BudgetConfig {
    let mut text = String::from(
        "[sources.i]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nclock = \"event\"\nseed = 7\n",
    );
    text.push_str(extra);
    text.push_str("[budget.services]\n");
    for (s, b) in budgets {
        text.push_str(&format!("\"svc{s:02}\" = \"{b}B/day\"\n"));
    }
    sluice_config::parse(&text, std::path::Path::new("t"), &|_| None)
        .unwrap()
        .budget
        .unwrap()
}

/// Records given as JSON text, outside the simulated day's bookkeeping.
fn plain_lines(json: impl Iterator<Item = String>) -> Vec<Line> {
    json.map(|json| Line {
        json,
        service: 0,
        trace: 0,
        must: false,
    })
    .collect()
}

/// `lines` framed into one batch and parsed.
fn parsed_batch(parse: &mut ParseStage, lines: &[Line]) -> Batch {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        events.push(Event::unparsed(
            Span::new(data.len(), l.json.len()),
            0,
            Event::NO_ORIGIN,
        ));
        data.extend_from_slice(l.json.as_bytes());
        data.push(b'\n');
    }
    let mut b = Batch::new(data, events);
    parse.parse_batch(&mut b);
    b
}

/// Run `lines` through parse → budget; returns the kept events as
/// (index into `lines`, sample_rate).
fn run(stage: &mut BudgetStage, lines: &[Line], from: usize) -> Vec<(usize, f64)> {
    let mut parse = ParseStage::new(&Registry::new());
    let mut kept = Vec::new();
    for (c, chunk) in lines.chunks(2000).enumerate() {
        let mut b = parsed_batch(&mut parse, chunk);
        // Remember which input line each event is by its start offset.
        stage.decide(&mut b);
        let mut out = Vec::new();
        sluice_core::encode::write_batch(&b, &mut out);
        let starts: Vec<usize> = b.events().iter().map(|e| e.line.start as usize).collect();
        let mut offsets = HashMap::new();
        let mut off = 0;
        for (i, l) in chunk.iter().enumerate() {
            offsets.insert(off, from + c * 2000 + i);
            off += l.json.len() + 1;
        }
        for (e, line) in starts.iter().zip(String::from_utf8(out).unwrap().lines()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            kept.push((offsets[e], v.get("sample_rate").and_then(|r| r.as_f64()).unwrap_or(1.0)));
        }
    }
    kept
}

fn budgets_for(lines: &[Line]) -> Vec<(usize, u64)> {
    // Each service may keep all its errors and slow requests plus ~25% of the rest.
    let mut must = [0u64; 20];
    let mut normal = [0u64; 20];
    for l in lines {
        let b = l.json.len() as u64 + 1;
        if l.must {
            must[l.service] += b
        } else {
            normal[l.service] += b
        }
    }
    (0..20).map(|s| (s, must[s] + normal[s] / 4)).collect()
}

fn check(lines: &[Line], kept: &[(usize, f64)], budgets: &[(usize, u64)]) {
    let mut spent = [0u64; 20];
    let mut weighted = [0f64; 20];
    let mut truth = [0u64; 20];
    let mut kept_must = 0;
    let mut trace_kept: HashMap<u64, (bool, bool)> = HashMap::new();
    let kept_set: HashMap<usize, f64> = kept.iter().copied().collect();
    for (i, l) in lines.iter().enumerate() {
        let k = kept_set.get(&i);
        if let Some(rate) = k {
            spent[l.service] += l.json.len() as u64 + 1;
            if !l.must {
                weighted[l.service] += rate;
            }
        }
        if l.must {
            assert!(k.is_some(), "an error or slow line was dropped: {}", l.json);
            kept_must += 1;
        } else {
            truth[l.service] += 1;
            let e = trace_kept.entry(l.trace).or_insert((k.is_some(), k.is_some()));
            e.0 |= k.is_some();
            e.1 &= k.is_some();
        }
    }
    assert!(kept_must > 1000);
    let split = trace_kept.values().filter(|(any, all)| any != all).count();
    assert_eq!(split, 0, "all normal lines of a trace share one decision");
    for (s, b) in budgets {
        let ratio = spent[*s] as f64 / *b as f64;
        let est = weighted[*s] / truth[*s] as f64;
        eprintln!(
            "svc{s:02}: spend {:.3} of budget, re-weighted normal count {:.3} of truth",
            ratio, est
        );
        assert!(
            (0.95..=1.05).contains(&ratio),
            "svc{s:02} spent {ratio:.3} of its budget"
        );
        assert!(
            (0.97..=1.03).contains(&est),
            "svc{s:02} re-weighted count off by {est:.3}"
        );
    }
}

#[test]
fn a_simulated_day_spends_each_budget_and_keeps_every_error() {
    let lines = day(86_400);
    let budgets = budgets_for(&lines);
    let mut stage = BudgetStage::new(&config(&budgets, ""), &Registry::new(), None).unwrap();
    let kept = run(&mut stage, &lines, 0);
    check(&lines, &kept, &budgets);
}

/// A stage keeping its state in `dir`.
fn saving_stage(budgets: &[(usize, u64)], registry: &Registry, dir: &tempfile::TempDir) -> BudgetStage {
    BudgetStage::new(&config(budgets, ""), registry, Some(dir.path().to_owned())).unwrap()
}

/// Lines, budgets, and the kept lines of the first half.
type HalfDay = (Vec<Line>, Vec<(usize, u64)>, Vec<(usize, f64)>);

/// A simulated day and its budgets, its first half decided by a stage
/// that saved its state in `dir` and published to `registry`.
fn first_half_saved(dir: &tempfile::TempDir, registry: &Registry) -> HalfDay {
    let lines = day(86_400);
    let budgets = budgets_for(&lines);
    let mut first = saving_stage(&budgets, registry, dir);
    let kept = run(&mut first, &lines[..lines.len() / 2], 0);
    first.finish(&mut Vec::new());
    (lines, budgets, kept)
}

#[test]
fn spend_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, budgets, mut kept) = first_half_saved(&dir, &Registry::new());
    let mut second = saving_stage(&budgets, &Registry::new(), &dir);
    let half = lines.len() / 2;
    kept.extend(run(&mut second, &lines[half..], half));
    check(&lines, &kept, &budgets);
}

#[test]
fn the_event_clock_resumes_where_it_stopped() {
    // Half a day, saved; after the restart, a first batch with no `ts`.
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let (lines, budgets, mut kept) = first_half_saved(&dir, &registry);
    let spent = |r: &Registry| r.value("budget_spent_bytes", &[("service", "svc00")]).unwrap();
    let before = spent(&registry);
    assert!(before > 100_000, "{before}");
    let registry = Registry::new();
    let mut second = saving_stage(&budgets, &registry, &dir);
    // An error line is kept whatever p says: its bytes add to the spend.
    let no_clock = r#"{"level":"ERROR","service":"svc00","msg":"no ts"}"#;
    let unclocked = run(
        &mut second,
        &plain_lines(std::iter::once(no_clock.to_owned())),
        lines.len(),
    );
    assert_eq!(unclocked.len(), 1);
    second.publish_stats();
    // From a clock at zero its window was 1970's, the day's spend lost.
    assert_eq!(spent(&registry), before + no_clock.len() as i64 + 1);
    let half = lines.len() / 2;
    kept.extend(run(&mut second, &lines[half..], half));
    check(&lines, &kept, &budgets);
}

#[test]
fn a_new_day_is_decided_at_its_own_probability_from_its_first_event() {
    // svc00 spent yesterday's 43.2 MB by midnight (p at the floor) at 1 kB/s
    // of normal lines; today the same rate affords p 0.5. The first batch
    // of the day was decided at yesterday's floor: 23 of 2,000 kept.
    let dir = tempfile::tempdir().unwrap();
    let yesterday = (DAY_START - 86_400) as f64;
    let rate = r#"{"rate":1000.0,"primed":true}"#;
    let none = r#"{"rate":0.0,"primed":true}"#;
    let state = format!(
        r#"{{"svc00":{{"window_start":{yesterday},"spent":43200000.0,"p":0.01,"must_rate":{none},"normal_rate":{rate},"must_events":{none},"normal_events":{none},"last":{}}}}}"#,
        DAY_START - 1
    );
    std::fs::write(dir.path().join("budget.json"), state).unwrap();
    let budgets = [(0, 43_200_000)];
    let mut stage = saving_stage(&budgets, &Registry::new(), &dir);
    let lines = plain_lines((0..2000u64).map(|n| {
        format!(
            r#"{{"ts":"2025-11-25T00:00:{:02}.{:03}Z","level":"INFO","service":"svc00","trace_id":"{n:032x}","msg":"m"}}"#,
            n / 1000,
            n % 1000
        )
    }));
    let kept = run(&mut stage, &lines, 0).len();
    assert!((900..1100).contains(&kept), "{kept} of 2000 kept");
}

#[test]
fn a_backfill_after_a_restart_opens_its_own_day() {
    // Half a day, saved; after the restart, an error of two days before:
    // the first `ts` sets the clock, there.
    let dir = tempfile::tempdir().unwrap();
    let (_, budgets, _) = first_half_saved(&dir, &Registry::new());
    let registry = Registry::new();
    let mut second = saving_stage(&budgets, &registry, &dir);
    let old = r#"{"ts":"2025-11-23T10:00:00.000Z","level":"ERROR","service":"svc00","msg":"backfill"}"#;
    assert_eq!(
        run(&mut second, &plain_lines(std::iter::once(old.to_owned())), 0).len(),
        1
    );
    second.publish_stats();
    assert_eq!(
        registry.value("budget_spent_bytes", &[("service", "svc00")]),
        Some(old.len() as i64 + 1)
    );
}

#[test]
fn the_floor_holds_for_a_starved_service() {
    let lines = day(6 * 3600);
    // svc00 may keep nothing beyond its errors: its normal lines still pass at 1%.
    let mut budgets = budgets_for(&lines);
    budgets[0].1 = 1;
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&budgets, "floor = 0.01\n"), &registry, None).unwrap();
    let kept = run(&mut stage, &lines, 0);
    let normal: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.service == 0 && !l.must)
        .map(|(i, _)| i)
        .collect();
    let kept_normal = kept
        .iter()
        .filter(|(i, _)| lines[*i].service == 0 && !lines[*i].must)
        .count();
    let share = kept_normal as f64 / normal.len() as f64;
    assert!((0.003..0.03).contains(&share), "floor share {share}");
    assert_eq!(
        registry.value("budget_keep_probability_ppm", &[("service", "svc00")]),
        Some(10_000)
    );
}

#[test]
fn lookback_keeps_the_earlier_lines_of_a_failing_trace() {
    let ts = |s: i64| {
        let t = time::OffsetDateTime::from_unix_timestamp(DAY_START + s).unwrap();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let line = |s: i64, trace: u64, level: &str, status: u32| {
        Line {
        json: format!("{{\"ts\":\"{}\",\"level\":\"{level}\",\"service\":\"svc00\",\"trace_id\":\"{trace:032x}\",\"status\":{status},\"msg\":\"m\"}}", ts(s)),
        service: 0,
        trace,
        must: status >= 500,
    }
    };
    // A starved service: normal lines pass at the 1% floor only.
    let mut lines = Vec::new();
    for t in 0..200u64 {
        lines.push(line(t as i64 * 10, 1000 + t, "INFO", 200));
    }
    // Trace 7: two normal lines, then its error 1 s later (inside the window).
    lines.push(line(3000, 7, "INFO", 200));
    lines.push(line(3000, 7, "INFO", 200));
    lines.push(line(3001, 7, "ERROR", 503));
    // Trace 8: its error comes 10 s later (outside the window).
    lines.push(line(4000, 8, "INFO", 200));
    lines.push(line(4010, 8, "ERROR", 503));
    let budgets = vec![(0, 1u64)];
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&budgets, "lookback = \"2s\"\n"), &registry, None).unwrap();
    // The filler first (p settles at the floor after that batch), then the traces.
    let mut parse = ParseStage::new(&Registry::new());
    let mut out = Vec::new();
    for chunk in [&lines[..200], &lines[200..]] {
        let mut b = parsed_batch(&mut parse, chunk);
        stage.decide(&mut b);
        sluice_core::encode::write_batch(&b, &mut out);
    }
    let out = String::from_utf8(out).unwrap();
    let of = |trace: u64| -> Vec<String> {
        let id = format!("{trace:032x}");
        out.lines().filter(|l| l.contains(&id)).map(str::to_string).collect()
    };
    let seven = of(7);
    assert_eq!(seven.len(), 3, "{seven:?}");
    assert!(seven[0].ends_with(",\"lookback\":true}") && seven[1].ends_with(",\"lookback\":true}"));
    assert!(seven[2].contains("\"status\":503") && !seven[2].contains("lookback"));
    let eight = of(8);
    assert!(eight.iter().all(|l| !l.contains("lookback")), "{eight:?}");
    assert!(eight.last().unwrap().contains("\"status\":503"));
    assert_eq!(registry.value("budget_lookback_released_total", &[]), Some(2));
}

#[test]
fn overrides_by_env_and_namespace_keep_their_own_ledgers() {
    // One line per second for a day from each of three streams: checkout in
    // prod, checkout in staging (both in namespace `shop`, from the record),
    // and search whose namespace `batch-7` comes from its log file's origin.
    let cfg = sluice_config::parse(
        r#"
[sources.i]
type = "stdin"
[sinks.o]
type = "stdout"
[budget]
clock = "event"
default = "100MiB/day"
[budget.services]
"checkout" = "50MiB/day"
[[budget.overrides]]
service = "checkout"
env = "staging"
budget = "1MiB/day"
[[budget.overrides]]
namespace = "batch-*"
budget = "2MiB/day"
"#,
        std::path::Path::new("t"),
        &|_| None,
    )
    .unwrap();
    let registry = Registry::new();
    let mut stage = BudgetStage::new(cfg.budget.as_ref().unwrap(), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let origin = std::sync::Arc::new(sluice_core::Origin {
        namespace: Some("batch-7".into()),
        ..Default::default()
    });
    let mut offered = [0u64; 3];
    for hour in 0..24 {
        let (mut data, mut events) = (Vec::new(), Vec::new());
        let mut stream_of = Vec::new();
        for s in hour * 3600..(hour + 1) * 3600 {
            let t = time::OffsetDateTime::from_unix_timestamp(DAY_START + s).unwrap();
            let ts = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
            for (k, (service, env, ns)) in [
                ("checkout", "prod", ",\"namespace\":\"shop\""),
                ("checkout", "staging", ",\"namespace\":\"shop\""),
                ("search", "prod", ""),
            ]
            .into_iter()
            .enumerate()
            {
                let line = format!(
                    "{{\"ts\":\"2025-11-25T{ts}.000Z\",\"level\":\"INFO\",\"service\":\"{service}\",\"env\":\"{env}\"{ns},\"trace_id\":\"{s:x}{k}\",\"status\":200,\"msg\":\"{}\"}}",
                    "x".repeat(100)
                );
                offered[k] += line.len() as u64 + 1;
                let mut e = Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN);
                if k == 2 {
                    e.origin = 0;
                }
                events.push(e);
                stream_of.push(k);
                data.extend_from_slice(line.as_bytes());
                data.push(b'\n');
            }
        }
        let mut b = Batch::new(data, events);
        b.add_origin(origin.clone());
        parse.parse_batch(&mut b);
        stage.decide(&mut b);
    }
    let spent = |labels: &[(&str, &str)]| registry.value("budget_spent_bytes", labels).unwrap() as f64;
    let prod = spent(&[("service", "checkout"), ("env", "prod"), ("namespace", "shop")]);
    let staging = spent(&[("service", "checkout"), ("env", "staging"), ("namespace", "shop")]);
    let batch = spent(&[("service", "search"), ("env", "prod"), ("namespace", "batch-7")]);
    eprintln!(
        "prod {prod} of {}, staging {staging} of 1 MiB, batch {batch} of 2 MiB",
        offered[0]
    );
    // checkout in prod is under its 50 MiB: everything kept.
    assert_eq!(prod, offered[0] as f64);
    let ratio = |spent: f64, budget: f64| spent / budget;
    let s = ratio(staging, 1024.0 * 1024.0);
    let n = ratio(batch, 2.0 * 1024.0 * 1024.0);
    assert!((0.95..=1.05).contains(&s), "staging spent {s:.3} of its override");
    assert!((0.95..=1.05).contains(&n), "batch-7 spent {n:.3} of its override");
}

#[test]
fn exact_counts_are_taken_before_sampling_and_published_whole() {
    let json = [
        r#"{"ts":"2025-11-25T00:00:01Z","level":"INFO","service":"api","status":200,"duration_ms":20,"path":"/v1/users/123"}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","level":"info","service":"api","status":200,"duration_ms":3,"path":"/v1/users/9"}"#,
        r#"{"ts":"2025-11-25T00:00:02Z","level":"ERROR","service":"api","status":503,"duration_ms":120,"path":"/v1/users/7/orders/1"}"#,
        r#"{"ts":"2025-11-25T00:00:02Z","level":"WARN","service":"api","status":200,"duration_ms":1500,"path":"/v1/users/5"}"#,
        r#"{"ts":"2025-11-25T00:00:03Z","level":"DEBUG","service":"api","msg":"cache warm"}"#,
        r#"{"ts":"2025-11-25T00:00:03Z","level":"INFO","service":"api","status":404,"duration_ms":8,"route":"/v1/items/{id}"}"#,
        // A template longer than the route cache's keys.
        r#"{"ts":"2025-11-25T00:00:04Z","level":"ERROR","service":"api","status":500,"duration_ms":40,"route":"/v1/organizations/{id}/projects/{id}/members"}"#,
    ];
    let lines = plain_lines(json.iter().map(|j| j.to_string()));
    let registry = Registry::new();
    // A budget of one byte: every normal line goes to the 1% floor.
    let mut stage = BudgetStage::new(&config(&[], "default = \"1B/day\"\nfloor = 0.01\n"), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    // Two batches, published together at the end.
    for part in [&lines[..3], &lines[3..]] {
        let mut b = parsed_batch(&mut parse, part);
        stage.decide(&mut b);
    }
    stage.publish_stats();

    let v = |name: &str, labels: &[(&str, &str)]| registry.value(name, labels).unwrap_or(-1);
    let events = |class: &str, level: &str| {
        v(
            "budget_events_total",
            &[("service", "api"), ("class", class), ("level", level)],
        )
    };
    assert_eq!(events("normal", "info"), 3);
    assert_eq!(events("error", "error"), 2);
    assert_eq!(events("slow", "warn"), 1);
    assert_eq!(events("debug", "debug"), 1);
    assert_eq!(events("normal", "warn"), 0);
    let status = |s: &str| v("budget_status_total", &[("service", "api"), ("status", s)]);
    assert_eq!(
        [status("2xx"), status("4xx"), status("5xx"), status("none")],
        [3, 1, 2, 1]
    );
    let bytes = |k: &str| v("budget_bytes_total", &[("service", "api"), ("kind", k)]);
    let total: usize = json.iter().map(|j| j.len() + 1).sum();
    assert_eq!(bytes("in"), total as i64);
    assert_eq!(bytes("kept") + bytes("dropped"), total as i64);
    // The first batch is judged at the starting probability (1): all three
    // kept. Its spend then drops p to the floor: of the second batch only
    // the slow and the error line stay (the debug and the 404 lines' hashes
    // are above 1%).
    let kept: usize = json[..4].iter().chain(&json[6..]).map(|j| j.len() + 1).sum();
    assert_eq!(bytes("kept"), kept as i64);
    let bucket = |route: &str, le: &str| {
        v(
            "request_duration_seconds_bucket",
            &[("service", "api"), ("route", route), ("le", le)],
        )
    };
    let users = "/v1/users/{id}";
    assert_eq!(
        ["0.005", "0.01", "0.025", "1", "2.5", "+Inf"].map(|le| bucket(users, le)),
        [1, 1, 2, 2, 3, 3],
        "3 ms, 20 ms and 1500 ms, cumulative"
    );
    assert_eq!(
        v("request_duration_seconds_sum", &[("service", "api"), ("route", users)]),
        1523
    );
    assert_eq!(
        v(
            "request_duration_seconds_count",
            &[("service", "api"), ("route", users)]
        ),
        3
    );
    let text = registry.render_prometheus();
    assert!(
        text.contains("# TYPE sluice_request_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsluice_request_duration_seconds_sum{service=\"api\",route=\"/v1/users/{id}\"} 1.523\n"),
        "the sum in seconds: {text}"
    );
    let orders = "/v1/users/{id}/orders/{id}";
    assert_eq!([bucket(orders, "0.1"), bucket(orders, "0.25")], [0, 1]);
    assert_eq!(
        [bucket("/v1/items/{id}", "0.005"), bucket("/v1/items/{id}", "0.01")],
        [0, 1]
    );
    let members = "/v1/organizations/{id}/projects/{id}/members";
    assert_eq!(
        [
            bucket(members, "0.025"),
            bucket(members, "0.05"),
            bucket(members, "+Inf")
        ],
        [0, 1, 1]
    );
    // No raw path became a label.
    assert!(registry
        .snapshot()
        .iter()
        .all(|(series, _)| !series.contains("/123") && !series.contains("/7/")));
}

#[test]
fn services_past_the_cap_share_the_overflow_ledger() {
    // Three ledgers at most: `a` and `b` get their own; `c` (three events,
    // one an error) and the 40-byte name `d…` (two events) share the
    // overflow ledger, which the cap does not count against itself.
    let long = "d".repeat(40);
    let services = ["a", "b", "c", "a", "c", long.as_str(), "c", long.as_str(), "b"];
    let lines = plain_lines(services.iter().enumerate().map(|(i, s)| {
        let level = if i == 6 { "ERROR" } else { "INFO" };
        format!(r#"{{"ts":"2025-11-25T00:00:01Z","level":"{level}","service":"{s}","trace_id":"t{i}"}}"#)
    }));
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], "max_services = 2\n"), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    // Two batches: the second meets the overflowed names again.
    for part in [&lines[..5], &lines[5..]] {
        let mut b = parsed_batch(&mut parse, part);
        stage.decide(&mut b);
        // Every event is still there, with its own service (1 GiB/day
        // keeps all).
        let mut out = Vec::new();
        sluice_core::encode::write_batch(&b, &mut out);
        let expected: String = part.iter().map(|l| format!("{}\n", l.json)).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
    stage.publish_stats();
    let events = |service: &str, class: &str, level: &str| {
        registry
            .value(
                "budget_events_total",
                &[("service", service), ("class", class), ("level", level)],
            )
            .unwrap_or(-1)
    };
    assert_eq!(
        [
            events("a", "normal", "info"),
            events("b", "normal", "info"),
            events("_overflow", "normal", "info"),
            events("_overflow", "error", "error"),
        ],
        [2, 2, 4, 1]
    );
    assert_eq!(
        events("c", "normal", "info"),
        -1,
        "no series for a service past the cap"
    );
    assert_eq!(stage.names, [b"a".to_vec(), b"b".to_vec(), b"_overflow".to_vec()]);
}

#[test]
fn a_route_field_that_carries_ids_is_templated_before_it_is_a_label() {
    let json = [
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","duration_ms":3,"route":"/v1/orders/12345"}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","duration_ms":30,"route":"/v1/orders/67890?full=1"}"#,
        r#"{"ts":"2025-11-25T00:00:01Z","service":"api","duration_ms":300,"route":"/v1/orders/{id}"}"#,
    ];
    let lines = plain_lines(json.iter().map(|j| j.to_string()));
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], ""), &registry, None).unwrap();
    let mut b = parsed_batch(&mut ParseStage::new(&Registry::new()), &lines);
    stage.decide(&mut b);
    stage.publish_stats();
    let bucket = |le: &str| {
        registry
            .value(
                "request_duration_seconds_bucket",
                &[("service", "api"), ("route", "/v1/orders/{id}"), ("le", le)],
            )
            .unwrap_or(-1)
    };
    assert_eq!(["0.005", "0.05", "0.5"].map(bucket), [1, 2, 3]);
    let routes: Vec<String> = registry
        .snapshot()
        .into_iter()
        .filter(|(series, _)| series.starts_with("request_duration_seconds_sum"))
        .map(|(series, _)| series)
        .collect();
    assert_eq!(
        routes,
        [r#"request_duration_seconds_sum{service="api",route="/v1/orders/{id}"}"#]
    );
}

#[test]
fn odd_values_are_judged_without_panic_and_errors_stay() {
    let long = "x".repeat(100_000);
    let path = "/seg".repeat(5_000);
    // (record fields after `"id":N,`, whether the record must be kept)
    let cases: Vec<(String, bool)> = vec![
        (r#""status":-1"#.into(), false),
        (r#""status":99999999999999999999"#.into(), true),
        (r#""status":"503""#.into(), true),
        (r#""status":"abc""#.into(), false),
        (r#""status":500.5"#.into(), true),
        (r#""status":true"#.into(), false),
        (r#""status":{}"#.into(), false),
        (r#""duration_ms":-5,"route":"/a""#.into(), false),
        (r#""duration_ms":1e308,"route":"/a""#.into(), true),
        (r#""duration_ms":"NaN","route":"/a""#.into(), false),
        (r#""duration_ms":"inf","route":"/a""#.into(), true),
        (r#""duration_ms":"  12 ","route":"/a""#.into(), false),
        (r#""duration_ms":null,"route":"/a""#.into(), false),
        (r#""ts":"""#.into(), false),
        (r#""ts":"2025-13-45T99:99:99Z""#.into(), false),
        (r#""ts":"2025-11-25T00:00:01.1234567890123Z""#.into(), false),
        (r#""ts":"0000-01-01T00:00:00Z""#.into(), false),
        (r#""ts":"9999-12-31T23:59:59Z""#.into(), false),
        (r#""ts":123"#.into(), false),
        (r#""service":"""#.into(), false),
        (format!(r#""service":"{long}""#), false),
        (r#""service":"a\u0000b","level":"ERROR""#.into(), true),
        (r#""service":"a\"b""#.into(), false),
        (r#""level":"""#.into(), false),
        (r#""level":"ERRORS""#.into(), false),
        (r#""level":"érror""#.into(), false),
        (r#""level":5"#.into(), false),
        (r#""level":"fatal""#.into(), true),
        (format!(r#""duration_ms":5,"path":"{path}/123?x""#), false),
        (r#""duration_ms":5,"route":"""#.into(), false),
        (r#""duration_ms":5,"path":"?""#.into(), false),
        (format!(r#""trace_id":"{long}""#), false),
        (r#""trace_id":5"#.into(), false),
        (r#""error_type":"java.lang.NullPointerException""#.into(), true),
        (r#""error_type":null"#.into(), false),
    ];
    let lines = plain_lines(
        cases
            .iter()
            .enumerate()
            .map(|(i, (fields, _))| format!(r#"{{"id":{i},{fields}}}"#)),
    );
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], "default = \"1B/day\"\nfloor = 0.01\n"), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let mut kept_ids = Vec::new();
    // Twice: the second time every service's p is at the floor.
    for _ in 0..2 {
        let mut b = parsed_batch(&mut parse, &lines);
        stage.decide(&mut b);
        let mut out = Vec::new();
        sluice_core::encode::write_batch(&b, &mut out);
        kept_ids = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("a kept line lost its id: {}", &l[..l.len().min(300)]))
                    as usize
            })
            .collect();
    }
    stage.publish_stats();
    assert_eq!(registry.total("budget_events_total"), 2 * cases.len() as u64);
    let must: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].1).collect();
    let kept_must: Vec<usize> = kept_ids.iter().copied().filter(|&i| cases[i].1).collect();
    assert_eq!(kept_must, must, "every error and slow record kept, in order");
}

#[test]
fn a_service_has_at_most_1000_route_histograms_and_counts_every_event() {
    // 1,005 templates, then the last five again: the first 1,000 get
    // histograms; the rest are counted without one, each time.
    let routes: Vec<usize> = (0..1005).chain(1000..1005).collect();
    let lines = plain_lines(
        routes
            .iter()
            .map(|r| format!(r#"{{"service":"api","duration_ms":7,"route":"/r{r}"}}"#)),
    );
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[], ""), &registry, None).unwrap();
    let mut b = parsed_batch(&mut ParseStage::new(&Registry::new()), &lines);
    stage.decide(&mut b);
    stage.publish_stats();
    let sums: Vec<(String, i64)> = registry
        .snapshot()
        .into_iter()
        .filter(|(series, _)| series.starts_with("request_duration_seconds_sum"))
        .collect();
    assert_eq!(sums.len(), 1000);
    assert!(sums.iter().all(|(_, v)| *v == 7));
    assert_eq!(
        sums.last().unwrap().0,
        r#"request_duration_seconds_sum{service="api",route="/r999"}"#
    );
    assert_eq!(
        registry.value(
            "budget_events_total",
            &[("service", "api"), ("class", "normal"), ("level", "none")]
        ),
        Some(1010)
    );
}

mod rules;

#[test]
fn fleet_scope_derives_p_from_the_fleet_and_shows_the_local_one_beside_it() {
    let lines = day(3 * 3600);
    let budgets = budgets_for(&lines);
    let cfg = config(
        &budgets,
        "scope = \"fleet\"\n[budget.fleet]\nbrokers = \"k:9092\"\nnode_id = \"a\"\ninterval = \"100ms\"\n",
    );
    let registry = Registry::new();
    let exchange = sluice_core::fleet::FleetExchange::new("a");
    exchange.mark_caught_up();
    let mut stage = BudgetStage::new(&cfg, &registry, None).unwrap().with_fleet(
        cfg.fleet.as_ref().unwrap(),
        exchange.clone(),
        &registry,
    );
    run(&mut stage, &lines, 0);
    // Another node offers svc00 a billion bytes a second: the fleet's p
    // for it falls to the floor; alone, this node would keep more.
    let id = stage.ids[&b"svc00"[..]];
    let report = crate::fleet_report::encode(&crate::fleet_report::Report {
        run: 1,
        clock: stage.event_now,
        services: vec![crate::fleet_report::ServiceReport {
            key: "svc00".into(),
            window_start: stage.ledgers[id].state.window_start,
            spent: 0.0,
            must_rate: 0.0,
            normal_rate: 1e9,
            must_events: 0.0,
            normal_events: 0.0,
            p: 0.01,
            closed: None,
        }],
    });
    exchange.receive("b", &report, std::time::SystemTime::now());
    stage.fleet.as_mut().unwrap().force_round();
    stage.tick(Instant::now(), &mut Vec::new());
    let svc = [("service", "svc00")];
    let fleet = registry.value("budget_keep_probability_ppm", &svc).unwrap();
    let local = registry.value("budget_local_keep_probability_ppm", &svc).unwrap();
    assert_eq!(fleet, (cfg.floor * 1e6) as i64);
    assert!(local > fleet, "local {local}, fleet {fleet}");
    assert_eq!(stage.ledgers[id].state.p, cfg.floor);
    assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(2));
    // What this node published names every ledger it keeps.
    let mine = crate::fleet_report::decode(&exchange.outgoing().unwrap()).unwrap();
    assert_eq!(mine.services.len(), stage.ledgers.len());
}

#[test]
fn an_upstream_sample_rate_is_multiplied_in_place_not_added_again() {
    // The aggregation tier budgets events a node already sampled at 1/4:
    // each kept one now stands for 4 × 1/p, in the record's one key.
    let lines = plain_lines((0..4000).map(|n| {
        let level = if n % 100 == 0 { "error" } else { "info" };
        format!(
            r#"{{"ts":"2025-11-25T00:{:02}:{:02}Z","level":"{level}","service":"svc00","trace_id":"t{n}","msg":"x","sample_rate":4,"n":{n}}}"#,
            n / 600,
            n / 10 % 60
        )
    }));
    let registry = Registry::new();
    let mut stage = BudgetStage::new(&config(&[(0, 1)], "floor = 0.1\n"), &registry, None).unwrap();
    let mut parse = ParseStage::new(&Registry::new());
    let mut out = Vec::new();
    for chunk in lines.chunks(100) {
        let mut b = parsed_batch(&mut parse, chunk);
        stage.decide(&mut b);
        sluice_core::encode::write_batch(&b, &mut out);
        // The sinks read the slot: it holds the product too.
        let slot = |e: &Event| e.fields[Field::SampleRate as usize].as_f64(b.data(), b.arena());
        assert!(b
            .events()
            .iter()
            .all(|e| matches!(slot(e), Some(r) if r == 4.0 || r == 40.0)));
    }
    let text = String::from_utf8(out).unwrap();
    let (mut errors, mut normal, mut resampled) = (0, 0, 0);
    for line in text.lines() {
        assert_eq!(line.matches("\"sample_rate\"").count(), 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let rate = v["sample_rate"].as_f64().unwrap();
        if v["level"] == "error" {
            errors += 1;
            assert_eq!(rate, 4.0, "{line}");
        } else {
            // Kept whole (p = 1) until the ledger has seen a rate, then at
            // the floor.
            normal += 1;
            assert!(rate == 4.0 || rate == 40.0, "{line}");
            resampled += usize::from(rate == 40.0);
        }
    }
    assert_eq!(errors, 40);
    assert!(resampled >= 300, "{resampled} of {normal} kept normal events resampled");
}
