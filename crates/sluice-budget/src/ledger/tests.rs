//! The ledger's tests: windows across zones and daylight saving, the
//! probability under bursts and budgets, and restarts.

use super::*;

#[test]
fn calendar_days_start_at_local_midnight() {
    // 2026-11-25T00:30:00+09:00 is 2026-11-24T15:30:00Z.
    let now = 1_764_000_000.0 - 1_764_000_000.0 % 86_400.0 + 15.5 * 3600.0;
    let b = Budget {
        bytes: 100,
        period_secs: 86_400,
        events_per_sec: None,
    };
    let l = BudgetLedger::new(b, now, &rule(Zone::Offset(9 * 3600)), 0.01, 1.0);
    assert_eq!(l.state.window_start, now - 0.5 * 3600.0);
    assert_eq!(l.end, l.state.window_start + 86_400.0);
    // Asia/Seoul (no daylight saving) is the same window.
    let seoul = BudgetLedger::new(b, now, &rule(zone("Asia/Seoul")), 0.01, 1.0);
    assert_eq!((seoul.state.window_start, seoul.end), (l.state.window_start, l.end));
}

fn rule(zone: Zone) -> WindowRule {
    WindowRule {
        window: BudgetWindow::Calendar,
        zone,
    }
}

fn zone(name: &str) -> Zone {
    Zone::Tz(jiff::tz::TimeZone::get(name).unwrap())
}

fn at(rfc3339: &str) -> f64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second() as f64
}

#[test]
fn days_across_a_daylight_saving_change_run_midnight_to_midnight() {
    let berlin = rule(zone("Europe/Berlin"));
    let day = |t: &str| berlin.calendar_window(at(t), 86_400);
    // Spring forward on 2026-03-29: a 23-hour day.
    assert_eq!(
        day("2026-03-29T12:00:00Z"),
        (at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z"))
    );
    assert_eq!(day("2026-03-28T23:00:00Z"), day("2026-03-29T21:59:59Z"));
    assert_eq!(day("2026-03-29T22:00:00Z").0, at("2026-03-29T22:00:00Z"));
    // Fall back on 2026-10-25: a 25-hour day.
    assert_eq!(
        day("2026-10-25T12:00:00Z"),
        (at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"))
    );
    // Two-day windows: local days paired from 1970-01-01.
    let two = berlin.calendar_window(at("2026-10-25T12:00:00Z"), 2 * 86_400);
    assert_eq!(two.1 - two.0, 49.0 * 3600.0);
    // Hour windows: on the hour in Berlin, on the half hour in Kolkata.
    assert_eq!(
        berlin.calendar_window(at("2026-10-25T12:34:00Z"), 3600).0,
        at("2026-10-25T12:00:00Z")
    );
    let kolkata = rule(zone("Asia/Kolkata"));
    assert_eq!(
        kolkata.calendar_window(at("2026-10-25T12:34:00Z"), 3600),
        (at("2026-10-25T12:30:00Z"), at("2026-10-25T13:30:00Z"))
    );
}

#[test]
fn windows_shorter_than_a_day_meet_exactly_across_a_change() {
    let berlin = rule(zone("Europe/Berlin"));
    let six = |t: &str| berlin.calendar_window(at(t), 6 * 3600);
    // Fall back on 2026-10-25: local 00:00-06:00 is seven hours, the
    // same window before and after the change.
    let long = (at("2026-10-24T22:00:00Z"), at("2026-10-25T05:00:00Z"));
    assert_eq!(six("2026-10-24T22:00:00Z"), long);
    assert_eq!(six("2026-10-25T04:00:00Z"), long);
    assert_eq!(six("2026-10-25T05:00:00Z").0, long.1);
    // Spring forward on 2026-03-29: local 00:00-06:00 is five hours.
    let short = (at("2026-03-28T23:00:00Z"), at("2026-03-29T04:00:00Z"));
    assert_eq!(six("2026-03-29T01:30:00Z"), short);
    assert_eq!(six("2026-03-28T23:00:00Z"), short);
    // The repeated hour of 2026-10-25 (02:00-03:00, twice): one window
    // of two hours.
    let hour = |t: &str| berlin.calendar_window(at(t), 3600);
    let repeated = (at("2026-10-25T00:00:00Z"), at("2026-10-25T02:00:00Z"));
    assert_eq!(hour("2026-10-25T00:30:00Z"), repeated);
    assert_eq!(hour("2026-10-25T01:30:00Z"), repeated);
    // A ledger restored from the short window's start keeps its end.
    let b = Budget {
        bytes: 1000,
        period_secs: 6 * 3600,
        events_per_sec: None,
    };
    let l = BudgetLedger::new(b, at("2026-03-29T01:30:00Z"), &berlin, 0.01, 1.0);
    assert_eq!((l.state.window_start, l.end), short);
    let mut again = BudgetLedger::new(b, at("2026-01-01T00:00:00Z"), &berlin, 0.01, 1.0);
    again.restore(l.state.clone(), &berlin);
    assert_eq!(again.end, short.1);
}

#[test]
fn spend_resets_at_the_zones_midnight_after_a_short_day() {
    let berlin = rule(zone("Europe/Berlin"));
    let b = Budget {
        bytes: 1000,
        period_secs: 86_400,
        events_per_sec: None,
    };
    let mut l = BudgetLedger::new(b, at("2026-03-29T01:00:00Z"), &berlin, 0.01, 1.0);
    l.spend(400.0);
    assert!(!l.roll(at("2026-03-29T21:59:59Z"), &berlin));
    assert_eq!(l.state.spent, 400.0, "still 2026-03-29 in Berlin");
    assert!(l.roll(at("2026-03-29T22:00:00Z"), &berlin));
    assert_eq!(
        l.state.spent, 0.0,
        "midnight of the 30th, 23 hours after the 29th began"
    );
    assert_eq!(l.state.window_start, at("2026-03-29T22:00:00Z"));
    assert_eq!(l.end, at("2026-03-30T22:00:00Z"));
    // A restored ledger finds its window's end from its start.
    let mut again = BudgetLedger::new(b, at("2026-01-01T00:00:00Z"), &berlin, 0.01, 1.0);
    again.restore(l.state.clone(), &berlin);
    assert_eq!(again.end, l.end);
}

#[test]
fn an_events_budget_caps_the_rate_of_normal_events_kept() {
    // 1000 normal and 20 must-keep events per second, small ones: the
    // byte budget (none) never binds; 100 events/s leaves 80/s for
    // the normal ones.
    let b = Budget::parse("100 events/s").unwrap();
    let mut l = BudgetLedger::new(b, 0.0, &rule(Zone::Offset(0)), 0.001, 1.0);
    let mut kept_normal = 0.0;
    for t in 1..=120 {
        for _ in 0..1000 {
            l.offer(200.0, false);
        }
        for _ in 0..20 {
            l.offer(200.0, true);
        }
        l.update(f64::from(t));
        if t > 60 {
            kept_normal += 1000.0 * l.state.p;
        }
    }
    let per_second = kept_normal / 60.0;
    assert!((per_second - 80.0).abs() < 0.01, "{per_second} normal events/s kept");
    // With a byte budget that binds harder, the tighter one wins.
    let both = Budget::parse("1GiB/day, 100 events/s").unwrap();
    let mut l = BudgetLedger::new(both, 0.0, &rule(Zone::Offset(0)), 0.001, 1.0);
    for t in 1..=120 {
        for _ in 0..1000 {
            l.offer(200.0, false);
        }
        l.update(f64::from(t));
    }
    let bytes_p = (1024.0 * 1024.0 * 1024.0 / (86_400.0 - 120.0)) / 200_000.0;
    assert!(
        (l.state.p - bytes_p).abs() < bytes_p * 0.01,
        "{} vs {bytes_p}",
        l.state.p
    );
}

#[test]
fn a_state_saved_before_event_rates_existed_still_loads() {
    let saved = r#"{"window_start":86400.0,"spent":12.0,"p":0.5,"must_rate":{"rate":1.0,"primed":true},"normal_rate":{"rate":2.0,"primed":true},"last":90000.0}"#;
    let state: LedgerState = serde_json::from_str(saved).unwrap();
    assert_eq!((state.spent, state.p, state.normal_rate.rate), (12.0, 0.5, 2.0));
    assert_eq!((state.must_events.rate, state.normal_events.rate), (0.0, 0.0));
}

/// A ledger whose budget affords 1 kB/s over a UTC day.
fn a_kilobyte_a_second() -> BudgetLedger {
    let b = Budget {
        bytes: 86_400 * 1000,
        period_secs: 86_400,
        events_per_sec: None,
    };
    BudgetLedger::new(b, 0.0, &rule(Zone::Offset(0)), 0.01, 1.0)
}

/// One batch of `bytes` normal bytes (one event), spent at `p`, and the
/// ledger updated at `t` plus a millisecond.
fn a_batch(l: &mut BudgetLedger, t: f64, bytes: f64) {
    l.offer(bytes, false);
    l.spend(bytes * l.state.p);
    l.update(t + 0.001);
}

/// A ledger like `l`, restarted with `l`'s saved state.
fn restarted(l: &BudgetLedger) -> BudgetLedger {
    let mut again = a_kilobyte_a_second();
    again.restore(l.state.clone(), &rule(Zone::Offset(0)));
    again
}

#[test]
fn after_a_restart_the_saved_rates_carry_on() {
    // 2 kB/s offered against 1 kB/s affordable: p settles near 0.5.
    let mut l = a_kilobyte_a_second();
    for t in 0..3000 {
        a_batch(&mut l, f64::from(t), 2000.0);
    }
    let (before, saved_rate) = (l.state.p, l.state.normal_rate.rate);
    assert!((0.45..0.55).contains(&before), "{before}");
    // Restarted three hours later, the same traffic: averaged over the
    // downtime the rate read ~0.19 B/s and p sat at 1.0 for minutes.
    // The budget left unspent meanwhile affords more: 83.6 MB over the
    // 72,600 s left, 1151.5 B/s of the ~2000 offered.
    let resumed = 3000.0 + 3.0 * 3600.0;
    let mut again = restarted(&l);
    a_batch(&mut again, resumed, 2000.0);
    assert_eq!(
        again.state.normal_rate.rate, saved_rate,
        "carried through the first second"
    );
    let want = (86_400_000.0 - again.state.spent) / (86_400.0 - resumed - 0.001) / saved_rate;
    assert!((again.state.p - want).abs() < 1e-12, "{} vs {want}", again.state.p);
    assert!((0.575..0.577).contains(&want), "{want}");
    for t in 1..5 {
        a_batch(&mut again, resumed + f64::from(t), 2000.0);
        let rate = again.state.normal_rate.rate;
        assert!((rate - 2000.0).abs() < 0.1, "{rate} B/s at {t}");
    }
}

#[test]
fn a_state_saved_before_its_first_reading_is_read_after_the_restart() {
    // Half a second of traffic, too little for a first reading, saved;
    // three hours later the traffic resumes. The first reading spans a
    // second after the restart's first second, not the downtime.
    let mut l = a_kilobyte_a_second();
    a_batch(&mut l, 0.0, 1000.0);
    a_batch(&mut l, 0.5, 1000.0);
    assert!(!l.state.normal_rate.primed);
    let resumed = 3.0 * 3600.0;
    let mut again = restarted(&l);
    for t in [0.0, 0.5, 1.0] {
        a_batch(&mut again, resumed + t, 1000.0);
        assert!(!again.state.normal_rate.primed, "at {t}");
    }
    a_batch(&mut again, resumed + 1.75, 1000.0);
    // The batches at 1.0 and 1.75 s, over the 1.25 s since the first
    // second's last update (at 0.5 s).
    let rate = again.state.normal_rate.rate;
    assert!((rate - 1600.0).abs() < 1e-6, "{rate}");
}

/// Bursts `ks` of 600 kB every 600 s (1 kB/s, the budget's rate), each
/// in `batches` batches a millisecond apart; the byte and event rates
/// and p after each.
fn bursts(l: &mut BudgetLedger, ks: std::ops::RangeInclusive<u32>, batches: u32) -> Vec<(f64, f64, f64)> {
    ks.map(|k| {
        for j in 0..batches {
            let bytes = 600_000.0 / f64::from(batches);
            a_batch(l, f64::from(k) * 600.0 + f64::from(j) * 0.001, bytes);
        }
        (l.state.normal_rate.rate, l.state.normal_events.rate, l.state.p)
    })
    .collect()
}

#[test]
fn a_service_that_logs_a_burst_every_ten_minutes_is_averaged_over_its_gaps() {
    // Measured afresh at each burst (the 5-minute silence rule this
    // replaced), every other burst read twice the average.
    let mut l = a_kilobyte_a_second();
    let check = |(bytes, events, p): (f64, f64, f64)| {
        assert!((bytes - 1000.0).abs() < 1.0, "{bytes} B/s");
        assert!((events * 600.0 - 1.0).abs() < 0.01, "{events} events/s");
        assert!(p > 0.95, "p {p}");
    };
    bursts(&mut l, 1..=10, 1)[1..].iter().copied().for_each(check);
    // Restarted, the bursts resuming after three hours: from the saved
    // clock the first one read 50 B/s, from the restart three times
    // the average bytes and sixty times the events.
    let mut again = restarted(&l);
    bursts(&mut again, 30..=40, 1).into_iter().for_each(check);
}

#[test]
fn a_restart_does_not_inflate_a_burst_spread_over_batches() {
    // Three batches a burst: right after each the rates read above the
    // average (a burst adds itself over the 5-minute time constant),
    // the same each time. A restart leaves that as it was.
    let mut l = a_kilobyte_a_second();
    let steady = bursts(&mut l, 1..=10, 3)[9];
    let mut again = restarted(&l);
    for (k, (bytes, events, p)) in bursts(&mut again, 30..=40, 3).into_iter().enumerate() {
        // Re-anchored by the first batch only, the rest of the first
        // burst read 3209 B/s (p 0.32).
        assert!(bytes <= steady.0 * 1.001, "{bytes} B/s at {k} against {steady:?}");
        assert!(
            events <= steady.1 * 1.001,
            "{events} events/s at {k} against {steady:?}"
        );
        assert!(p >= steady.2 * 0.999, "p {p} at {k} against {steady:?}");
    }
}

#[test]
fn a_new_window_re_derives_p_at_once() {
    // 2 kB/s offered against 1 kB/s a day, the day's budget spent:
    // p at the floor. Past midnight it is 0.5 from the first event
    // on, not at the floor until the batch ends.
    let mut l = a_kilobyte_a_second();
    for t in 0..3000 {
        a_batch(&mut l, f64::from(t), 2000.0);
    }
    l.state.spent = 86_400_000.0;
    l.update(3000.5);
    assert_eq!(l.state.p, 0.01);
    assert!(l.roll(86_400.0, &rule(Zone::Offset(0))));
    assert_eq!((l.state.window_start, l.state.spent), (86_400.0, 0.0));
    let rate = l.state.normal_rate.rate;
    assert!(
        (l.state.p - 1000.0 / rate).abs() < 1e-12,
        "p {} at {rate} B/s",
        l.state.p
    );
    assert!((0.45..0.55).contains(&l.state.p), "{}", l.state.p);
}

#[test]
fn a_burst_lowers_the_probability_and_a_lull_raises_it() {
    let mut l = a_kilobyte_a_second();
    // 10 kB/s offered against 1 kB/s affordable.
    for t in 1..600 {
        l.offer(10_000.0, false);
        l.spend(10_000.0 * l.state.p);
        l.update(t as f64);
    }
    let burst_p = l.state.p;
    assert!(burst_p < 0.15, "{burst_p}");
    for t in 600..3000 {
        l.offer(100.0, false);
        l.spend(100.0 * l.state.p);
        l.update(t as f64);
    }
    assert!(l.state.p > 0.9, "{}", l.state.p);
}
