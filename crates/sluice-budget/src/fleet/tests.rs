//! The fleet round's unit tests: sums, schedule, holds and starts.

use super::*;
use crate::ledger::Zone;
use sluice_config::{Budget, BudgetWindow};

fn ids_of(names: &[Vec<u8>]) -> crate::FastMap<Box<[u8]>, usize> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone().into_boxed_slice(), i))
        .collect()
}

/// What the fleet spent by the round's clock, as `l` last summed it.
fn fleet_spent(l: &BudgetLedger) -> f64 {
    match l.coordination {
        Coordination::Fleet(f) => f.spent,
        other => panic!("not from the fleet's figures: {other:?}"),
    }
}

fn fleet_config() -> FleetConfig {
    let toml = "[sources.s]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nscope = \"fleet\"\n[budget.fleet]\nbrokers = \"k:9092\"\nnode_id = \"a\"\ninterval = \"1s\"\n";
    let cfg = sluice_config::parse(toml, std::path::Path::new("t.toml"), &|_| None).unwrap();
    cfg.budget.unwrap().fleet.unwrap()
}

fn rule() -> WindowRule {
    WindowRule {
        window: BudgetWindow::Calendar,
        zone: Zone::Offset(0),
    }
}

/// A ledger of `budget` bytes a day, 0.5 of the day gone, that has
/// spent `spent` and sees `normal` normal bytes a second.
fn ledger(spent: f64, normal: f64) -> BudgetLedger {
    let rule = WindowRule {
        window: BudgetWindow::Calendar,
        zone: Zone::Offset(0),
    };
    let budget = Budget {
        bytes: 432_000,
        period_secs: 86_400,
        events_per_sec: None,
    };
    let mut l = BudgetLedger::new(budget, 43_200.0, &rule, 0.001, 1.0);
    l.state.spent = spent;
    l.state.normal_rate.rate = normal;
    l
}

fn report(spent: f64, normal: f32, window_start: f64) -> Vec<u8> {
    report_at(43_200.0, spent, normal, window_start)
}

/// A report made at the peer's clock `clock`, its p 0.0625.
fn report_at(clock: f64, spent: f64, normal: f32, window_start: f64) -> Vec<u8> {
    fleet_report::encode(&Report {
        run: 7,
        clock,
        services: vec![ServiceReport {
            key: "checkout".into(),
            window_start,
            spent,
            must_rate: 0.0,
            normal_rate: normal,
            must_events: 0.0,
            normal_events: 0.0,
            p: 0.0625,
            closed: None,
        }],
    })
}

#[test]
fn every_node_derives_p_from_the_fleets_totals_and_alone_when_it_hears_nobody() {
    let registry = Registry::new();
    let exchange = FleetExchange::new("a");
    let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &registry);
    let names = vec![b"checkout".to_vec()];
    let ids = ids_of(&names);
    // Half the day left (43,200 s) and all 432,000 bytes unspent here:
    // alone, 10 bytes/s are affordable of the 20 offered: p = 0.5.
    let mut ledgers = vec![ledger(0.0, 20.0)];
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(ledgers[0].state.p, 0.5);
    assert_eq!(ledgers[0].coordination, Coordination::default());
    // What this node published.
    let mine = fleet_report::decode(&exchange.outgoing().unwrap()).unwrap();
    assert_eq!(
        (mine.services[0].key.as_str(), mine.services[0].normal_rate),
        ("checkout", 20.0)
    );

    // Two peers in the same window: the fleet spent 216,000 (so
    // 216,000 / 43,200 s = 5 bytes/s is affordable) of 20 + 30 + 50
    // offered: p = 0.05 on every node.
    let now = SystemTime::now();
    exchange.receive("b", &report(100_000.0, 30.0, 0.0), now);
    exchange.receive("c", &report(116_000.0, 50.0, 0.0), now);
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert!((ledgers[0].state.p - 0.05).abs() < 1e-12, "{}", ledgers[0].state.p);
    assert_eq!(ledgers[0].local_p(43_200.0), 0.5);
    assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(3));

    // A peer in another window offers, but has spent elsewhere.
    exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(fleet_spent(&ledgers[0]), 100_000.0);
    // A peer already past our window's end counts what it closed it
    // with, and its clock is the round's (the latest), read as our
    // window's end: the others' spend is carried forward to it, at
    // the rates they were keeping (b: 0.0625 × 30 bytes/s; this node:
    // its p × 20, both as reported, in `f32`).
    let mut ahead = fleet_report::decode(&report_at(86_410.0, 500.0, 50.0, 86_400.0)).unwrap();
    ahead.services[0].closed = Some((0.0, 120_000.0));
    exchange.receive("c", &fleet_report::encode(&ahead), now);
    let own_rate = f64::from(ledgers[0].state.p as f32 * 20.0);
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    let carried = 43_200.0 * (1.875 + own_rate);
    assert_eq!(fleet_spent(&ledgers[0]), 220_000.0 + carried);
    assert_eq!(ledgers[0].state.p, 1.0);
    exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);

    // A report from 100 s of budget clock ago: its spend is carried
    // forward at the rate it was keeping (0.0625 × 30 bytes/s).
    exchange.receive("b", &report_at(43_100.0, 100_000.0, 30.0, 0.0), SystemTime::now());
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(fleet_spent(&ledgers[0]), 100_000.0 + 100.0 * 1.875);

    // Nobody heard within stale_intervals × interval: alone again,
    // counted once, less what the silent spent in this window (b's
    // 100,000 as it last said; c spent in another day): 332,000 left
    // over 43,200 s for 20 bytes/s offered.
    fleet.stale_after = Duration::ZERO;
    std::thread::sleep(Duration::from_millis(5));
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(ledgers[0].coordination, Coordination::Alone { peers_spent: 100_000.0 });
    assert!((ledgers[0].state.p - 332_000.0 / 43_200.0 / 20.0).abs() < 1e-12);
    assert_eq!(registry.value("budget_fleet_degraded_total", &[]), Some(1));
    assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(1));

    // A day later their reports are forgotten.
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0 + 86_401.0);
    assert_eq!(ledgers[0].coordination, Coordination::default());
    assert!(exchange.take_peers().is_empty());
}

#[test]
fn nodes_that_read_the_same_reports_derive_the_same_p_and_hold_it() {
    let (xa, xb) = (FleetExchange::new("a"), FleetExchange::new("b"));
    let mut fa = Fleet::new(&fleet_config(), xa.clone(), &Registry::new());
    let mut fb = Fleet::new(&fleet_config(), xb.clone(), &Registry::new());
    let names = vec![b"checkout".to_vec()];
    let ids = ids_of(&names);
    let (mut la, mut lb) = (vec![ledger(50_000.0, 20.0)], vec![ledger(70_000.0, 35.0)]);
    // Each publishes at its own clock (b's a second behind) ...
    fa.round(&mut la, &names, &ids, &rule(), 43_200.0);
    fb.round(&mut lb, &names, &ids, &rule(), 43_199.0);
    let b_keeps = f64::from(lb[0].state.p as f32 * 35.0);
    xa.receive("b", &xb.outgoing().unwrap(), SystemTime::now());
    xb.receive("a", &xa.outgoing().unwrap(), SystemTime::now());
    // ... and a's own figures move on before the reports are summed:
    // the round counts what a published, as b reads it.
    la[0].state.spent += 10_000.0;
    la[0].state.normal_rate.rate = 99.0;
    fa.apply(&mut la, &ids, 43_300.0, true);
    fb.apply(&mut lb, &ids, 43_250.0, true);
    assert_eq!(la[0].state.p.to_bits(), lb[0].state.p.to_bits());
    // At the latest clock reported (a's), with b's spend carried a
    // second forward at the rate b kept: what is left of 432,000 over
    // 43,200 s, for 20 + 35 bytes/s offered.
    let Coordination::Fleet(sums) = la[0].coordination else {
        panic!("{:?}", la[0].coordination);
    };
    assert_eq!((sums.clock, sums.normal_rate), (43_200.0, 55.0));
    assert_eq!(sums.spent, 50_000.0 + (70_000.0 + b_keeps));
    assert!((la[0].state.p - (432_000.0 - sums.spent) / 43_200.0 / 55.0).abs() < 1e-12);
    // Batches between rounds leave it where the round put it.
    let p = la[0].state.p;
    la[0].offer(5_000.0, false);
    la[0].update(43_310.0);
    assert_eq!(la[0].state.p, p);
    assert_ne!(la[0].local_p(43_310.0), p);
}

#[test]
fn without_news_from_anyone_a_round_holds_the_last_p() {
    let exchange = FleetExchange::new("a");
    let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &Registry::new());
    let names = vec![b"checkout".to_vec()];
    let ids = ids_of(&names);
    let mut ledgers = vec![ledger(0.0, 20.0)];
    exchange.receive("b", &report(100_000.0, 30.0, 0.0), SystemTime::now());
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    let p = ledgers[0].state.p;
    // This node's figures move; the others' do not arrive.
    ledgers[0].state.normal_rate.rate = 200.0;
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(ledgers[0].state.p, p);
    // b is heard again: the round sums the new figures.
    exchange.receive("b", &report(100_000.0, 30.0, 0.0), SystemTime::now());
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert!(ledgers[0].state.p < p / 2.0, "{} {p}", ledgers[0].state.p);
}

#[test]
fn a_start_waits_for_the_fleets_reports_before_deciding() {
    let exchange = FleetExchange::new("a");
    let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &Registry::new());
    let names = vec![b"checkout".to_vec()];
    let ids = ids_of(&names);
    let mut ledgers = vec![ledger(0.0, 20.0)];
    // The link reads b's report (b spent half the day's budget), then
    // reaches the topic's end, 100 ms after the start.
    let link = {
        let exchange = exchange.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            exchange.receive("b", &report(216_000.0, 20.0, 0.0), SystemTime::now());
            exchange.mark_caught_up();
        })
    };
    let start = std::time::Instant::now();
    assert!(fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0));
    link.join().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(100));
    // Decided with b, not this node's 0.5 alone, and at the p b holds
    // (this node's own figures join at the next round): 216,000 left
    // over 43,200 s for b's 20 bytes/s.
    assert_eq!(ledgers[0].state.p, 0.25);
}

#[test]
fn a_restart_takes_up_the_spend_its_last_run_published() {
    let registry = Registry::new();
    let exchange = FleetExchange::new("a");
    let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &registry);
    let names = vec![b"checkout".to_vec()];
    let ids = ids_of(&names);
    // The state file says 50,000; the previous run (run 7) last
    // published 150,000 in the same day.
    let mut ledgers = vec![ledger(50_000.0, 20.0)];
    exchange.receive("a", &report_at(43_000.0, 150_000.0, 20.0, 0.0), SystemTime::now());
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(ledgers[0].state.spent, 150_000.0);
    // Its own reports read back change nothing; nor does a previous
    // run's report of another day.
    ledgers[0].state.spent = 1_000.0;
    exchange.receive("a", &exchange.outgoing().unwrap(), SystemTime::now());
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    exchange.receive(
        "a",
        &report_at(-43_000.0, 150_000.0, 20.0, -86_400.0),
        SystemTime::now(),
    );
    fleet.round(&mut ledgers, &names, &ids, &rule(), 43_200.0);
    assert_eq!(ledgers[0].state.spent, 1_000.0);
}

#[test]
fn an_unreadable_report_is_counted_and_its_node_not_counted() {
    let registry = Registry::new();
    let exchange = FleetExchange::new("a");
    let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &registry);
    exchange.receive("b", b"{not a report", SystemTime::now());
    let mut ledgers = vec![ledger(0.0, 20.0)];
    let names = [b"checkout".to_vec()];
    fleet.round(&mut ledgers, &names, &ids_of(&names), &rule(), 43_200.0);
    assert_eq!(registry.value("budget_fleet_bad_reports_total", &[]), Some(1));
    assert_eq!(
        (ledgers[0].coordination, ledgers[0].state.p),
        (Coordination::default(), 0.5)
    );
}
