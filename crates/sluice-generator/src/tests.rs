use super::*;
use std::collections::HashMap;

fn generate(seed: u64, lines: u64) -> Vec<u8> {
    let mut w = Workload::new(WorkloadSettings {
        seed,
        ..WorkloadSettings::default()
    });
    let mut out = Vec::new();
    while w.lines() < lines {
        w.fill(&mut out, 64 * 1024, lines - w.lines());
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = generate(7, 5_000);
    assert!(a == generate(7, 5_000), "same seed must give the same bytes");
    assert!(a != generate(8, 5_000), "another seed must give other bytes");
    assert_eq!(a.iter().filter(|&&b| b == b'\n').count(), 5_000);
    assert_eq!(a.last(), Some(&b'\n'));
}

#[test]
fn fill_stops_at_the_line_cap_and_resumes_mid_record() {
    let whole = generate(3, 2_000);
    let mut w = Workload::new(WorkloadSettings {
        seed: 3,
        ..WorkloadSettings::default()
    });
    let mut pieces = Vec::new();
    while w.lines() < 2_000 {
        // One line at a time: traces are split across calls.
        assert_eq!(w.fill(&mut pieces, 1, 2_000 - w.lines()), 1);
    }
    assert!(pieces == whole, "line-by-line output differs from bulk output");
}

#[test]
fn the_mix_matches_the_field_guide() {
    let out = generate(42, 200_000);
    let text = std::str::from_utf8(&out).unwrap();
    let mut services: HashMap<String, usize> = HashMap::new();
    let (mut json, mut summaries, mut errors, mut slow, mut secrets, mut traces) = (0, 0, 0, 0, 0, 0);
    for line in text.lines() {
        if line.starts_with("Traceback")
            || line.starts_with("panic:")
            || line.starts_with("\tat ")
            || line.starts_with("    at ")
        {
            traces += 1;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        json += 1;
        *services.entry(v["service"].as_str().unwrap().to_string()).or_default() += 1;
        for k in [
            "email",
            "headers",
            "body",
            "phone",
            "card_number",
            "rrn",
            "detail",
            "aws_access_key_id",
            "callback",
            "cookie",
        ] {
            if v.get(k).is_some() {
                secrets += 1;
            }
        }
        if v["event"] != "request_summary" {
            continue;
        }
        summaries += 1;
        if v["level"] == "ERROR" {
            errors += 1;
            assert!(v["error_type"].is_string() && v["dependency"].is_string(), "{line}");
            assert!(v["status"].as_u64().unwrap() >= 500, "{line}");
        }
        if v["duration_ms"].as_u64().unwrap() >= 1000 && v["level"] == "WARN" {
            slow += 1;
        }
        let route = v["route"].as_str().unwrap();
        let path = v["path"].as_str().unwrap();
        assert!(!path.contains('{'), "{line}");
        assert_eq!(path == route, !route.contains("{id}"), "{line}");
    }
    let pct = |n: usize| n as f64 * 100.0 / summaries as f64;
    assert!((3.0..=6.0).contains(&pct(errors)), "errors {:.2}%", pct(errors));
    assert!((1.0..=2.0).contains(&pct(slow)), "slow {:.2}%", pct(slow));
    assert!((2.0..=4.0).contains(&pct(secrets)), "secrets {:.2}%", pct(secrets));
    assert!(json > 150_000 && traces > 1_000, "json {json}, trace lines {traces}");
    assert_eq!(services.len(), 16, "the 4 legacy services log text");
    let mut volumes: Vec<usize> = services.values().copied().collect();
    volumes.sort_unstable();
    assert!(
        volumes[volumes.len() - 1] > 10 * volumes[0],
        "Zipf-like volumes: {volumes:?}"
    );
}
