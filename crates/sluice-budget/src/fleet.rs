//! Fleet scope: a service's budget is the whole fleet's. Every `interval`
//! this node leaves a report of each ledger (window start, spend, offered
//! rates) in the [`FleetExchange`], and sums what the other nodes reported
//! per ledger key into the ledger's [`PeerSums`]; each ledger then derives p
//! from its own figures plus its peers', which are the fleet's totals, so
//! every node derives the same p and trace-consistent sampling holds
//! across them.
//!
//! Consistency: a node sees the others' figures one publish interval plus
//! the consumer's lag late, so all converge within about one interval. A
//! node that stops hearing the others (Kafka unreachable, a partition)
//! keeps the last figures it had for `stale_intervals` intervals, then
//! decides by itself (the node-local rule, which over-spends by the number
//! of nodes the service runs on until it hears again), counted in
//! `budget_fleet_degraded_total` and logged. Errors and slow requests are
//! kept throughout: only normal events are ever sampled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_config::FleetConfig;
use sluice_core::fleet::FleetExchange;
use sluice_core::{Counter, Gauge, Registry};

use crate::ledger::{BudgetLedger, PeerSums};

/// One node's report, as published (the node id is the message key).
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    /// The node's budget clock when it reported.
    clock: f64,
    /// Per ledger key.
    services: Vec<ServiceReport>,
}

/// One ledger's figures in a report.
#[derive(Debug, Serialize, Deserialize)]
struct ServiceReport {
    /// The ledger key (service, and env/namespace where ledgers are split).
    key: String,
    /// The start of its current window (the budget clock's seconds).
    window_start: f64,
    /// Bytes kept in that window.
    spent: f64,
    must_rate: f64,
    normal_rate: f64,
    must_events: f64,
    normal_events: f64,
    /// The node's keep-probability of normal events.
    p: f64,
    /// The window it closed last: start and final spend. A node whose
    /// clock is still in that window counts this spend, not the new
    /// window's: without it a node a little behind the others ignored
    /// their spend from their midnight to its own and overspent by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closed: Option<(f64, f64)>,
}

/// Two nodes' windows are the same window when their starts are this close
/// (calendar windows start at the same instant on every node).
const SAME_WINDOW_SECS: f64 = 1.0;

/// See the module docs.
pub(crate) struct Fleet {
    exchange: FleetExchange,
    interval: Duration,
    stale_after: Duration,
    next: Instant,
    /// Reports already parsed, by node: (the bytes, parsed).
    parsed: HashMap<String, (Arc<[u8]>, Report)>,
    /// Whether the last round counted another node.
    heard: bool,
    nodes: Gauge,
    view_age: Gauge,
    degraded: Counter,
    bad_reports: Counter,
}

impl Fleet {
    pub(crate) fn new(cfg: &FleetConfig, exchange: FleetExchange, registry: &Registry) -> Fleet {
        Fleet {
            exchange,
            interval: cfg.interval,
            stale_after: cfg.interval * cfg.stale_intervals,
            next: Instant::now(),
            parsed: HashMap::new(),
            heard: false,
            nodes: registry.gauge(
                "budget_fleet_nodes",
                "Nodes whose budget figures this node counts (itself included).",
                &[],
            ),
            view_age: registry.gauge(
                "budget_fleet_view_age_seconds",
                "Age of the oldest other node's figures counted (0 with none).",
                &[],
            ),
            degraded: registry.counter(
                "budget_fleet_degraded_total",
                "Times this node stopped hearing every other node and fell back to deciding alone.",
                &[],
            ),
            bad_reports: registry.counter(
                "budget_fleet_bad_reports_total",
                "Reports from other nodes that could not be read (ignored).",
                &[],
            ),
        }
    }

    /// Publish and read the fleet's figures when an interval has passed;
    /// whether it did (the ledgers' p were derived again).
    pub(crate) fn round_if_due(
        &mut self,
        ledgers: &mut [BudgetLedger],
        names: &[Vec<u8>],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        now: f64,
    ) -> bool {
        let wall = Instant::now();
        if wall < self.next {
            return false;
        }
        self.next = wall + self.interval;
        self.publish(ledgers, names, now);
        self.apply(ledgers, ids, wall, now);
        for l in ledgers.iter_mut() {
            l.rederive(now);
        }
        true
    }

    fn publish(&self, ledgers: &[BudgetLedger], names: &[Vec<u8>], now: f64) {
        let services = ledgers
            .iter()
            .zip(names)
            .map(|(l, name)| ServiceReport {
                key: String::from_utf8_lossy(name).into_owned(),
                window_start: l.state.window_start,
                spent: l.state.spent,
                must_rate: l.state.must_rate.rate,
                normal_rate: l.state.normal_rate.rate,
                must_events: l.state.must_events.rate,
                normal_events: l.state.normal_events.rate,
                p: l.state.p,
                closed: l.closed,
            })
            .collect();
        if let Ok(bytes) = serde_json::to_vec(&Report { clock: now, services }) {
            self.exchange.set_outgoing(bytes);
        }
    }

    /// Sum the other nodes' fresh figures into each ledger's peers. A
    /// report is an interval or more old when it is read: each peer's
    /// spend is carried forward from its clock to ours at the rate it was
    /// keeping (its must-keep rate plus p times its normal rate), or near
    /// a window's end every node would overspend by what the others kept
    /// since they last reported.
    fn apply(&mut self, ledgers: &mut [BudgetLedger], ids: &crate::FastMap<Box<[u8]>, usize>, wall: Instant, now: f64) {
        let since = wall.checked_sub(self.stale_after).unwrap_or(wall);
        let peers = self.exchange.peers_since(since);
        self.parsed.retain(|node, _| peers.iter().any(|p| &p.node == node));
        let mut oldest = Duration::ZERO;
        for p in &peers {
            oldest = oldest.max(wall.saturating_duration_since(p.received));
            if self
                .parsed
                .get(&p.node)
                .is_some_and(|(bytes, _)| Arc::ptr_eq(bytes, &p.payload))
            {
                continue;
            }
            match serde_json::from_slice::<Report>(&p.payload) {
                Ok(r) => {
                    self.parsed.insert(p.node.clone(), (p.payload.clone(), r));
                }
                Err(e) => {
                    self.bad_reports.inc();
                    self.parsed.remove(&p.node);
                    tracing::warn!(stage = "budget", node = %p.node, error = %e, "budget: a fleet report could not be read; that node is not counted");
                }
            }
        }
        let mut sums: Vec<Option<PeerSums>> = vec![None; ledgers.len()];
        for (_, report) in self.parsed.values() {
            let behind = (now - report.clock).max(0.0);
            for s in &report.services {
                let Some(&id) = ids.get(s.key.as_bytes()) else {
                    continue;
                };
                let sum = sums[id].get_or_insert_with(PeerSums::default);
                // A node in another window (a clock on the other side of
                // midnight) offers at its rates but has spent elsewhere:
                // ahead of this one, it spent what it closed ours with;
                // behind, nothing yet.
                let ours = ledgers[id].state.window_start;
                if (s.window_start - ours).abs() < SAME_WINDOW_SECS {
                    let since = behind.min((ledgers[id].window_end() - report.clock).max(0.0));
                    sum.spent += s.spent + since * (s.must_rate + s.p * s.normal_rate);
                } else if let Some((_, spent)) = s.closed.filter(|c| (c.0 - ours).abs() < SAME_WINDOW_SECS) {
                    sum.spent += spent;
                }
                sum.must_rate += s.must_rate;
                sum.normal_rate += s.normal_rate;
                sum.must_events += s.must_events;
                sum.normal_events += s.normal_events;
            }
        }
        let heard = !self.parsed.is_empty();
        for (l, s) in ledgers.iter_mut().zip(sums) {
            // Heard from the fleet, a service no other node has is this
            // node's alone: zero peers, not the local rule.
            l.peers = if heard { Some(s.unwrap_or_default()) } else { None };
        }
        if self.heard && !heard {
            self.degraded.inc();
            tracing::warn!(
                stage = "budget",
                stale_after = ?self.stale_after,
                "budget: no other node heard from; deciding by this node alone until the fleet is heard again"
            );
        } else if !self.heard && heard {
            tracing::info!(
                stage = "budget",
                nodes = self.parsed.len() + 1,
                "budget: deciding with the fleet's figures"
            );
        }
        self.heard = heard;
        self.nodes.set(self.parsed.len() as i64 + 1);
        self.view_age.set(oldest.as_secs() as i64);
    }

    /// The stage is done: stop the link.
    pub(crate) fn close(&self) {
        self.exchange.close();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{WindowRule, Zone};
    use sluice_config::{Budget, BudgetWindow};

    fn ids_of(names: &[Vec<u8>]) -> crate::FastMap<Box<[u8]>, usize> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone().into_boxed_slice(), i))
            .collect()
    }

    fn fleet_config() -> FleetConfig {
        let toml = "[sources.s]\ntype = \"stdin\"\n[sinks.o]\ntype = \"stdout\"\n[budget]\nscope = \"fleet\"\n[budget.fleet]\nbrokers = \"k:9092\"\nnode_id = \"a\"\ninterval = \"1s\"\n";
        let cfg = sluice_config::parse(toml, std::path::Path::new("t.toml"), &|_| None).unwrap();
        cfg.budget.unwrap().fleet.unwrap()
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

    fn report(spent: f64, normal: f64, window_start: f64) -> Vec<u8> {
        report_at(43_200.0, spent, normal, window_start)
    }

    /// A report made at the peer's clock `clock`, its p 0.05.
    fn report_at(clock: f64, spent: f64, normal: f64, window_start: f64) -> Vec<u8> {
        serde_json::to_vec(&Report {
            clock,
            services: vec![ServiceReport {
                key: "checkout".into(),
                window_start,
                spent,
                must_rate: 0.0,
                normal_rate: normal,
                must_events: 0.0,
                normal_events: 0.0,
                p: 0.05,
                closed: None,
            }],
        })
        .unwrap()
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
        assert!(fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0));
        assert_eq!(ledgers[0].state.p, 0.5);
        assert_eq!(ledgers[0].peers, None);
        // What this node published.
        let mine: Report = serde_json::from_slice(&exchange.outgoing().unwrap()).unwrap();
        assert_eq!(
            (mine.services[0].key.as_str(), mine.services[0].normal_rate),
            ("checkout", 20.0)
        );

        // Two peers in the same window: the fleet spent 216,000 (so
        // 216,000 / 43,200 s = 5 bytes/s is affordable) of 20 + 30 + 50
        // offered: p = 0.05 on every node.
        let now = Instant::now();
        exchange.receive("b", &report(100_000.0, 30.0, 0.0), now);
        exchange.receive("c", &report(116_000.0, 50.0, 0.0), now);
        fleet.next = Instant::now();
        assert!(fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0));
        assert!((ledgers[0].state.p - 0.05).abs() < 1e-12, "{}", ledgers[0].state.p);
        assert_eq!(ledgers[0].local_p(43_200.0), 0.5);
        assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(3));

        // A peer in another window offers, but has spent elsewhere.
        exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 100_000.0);
        // A peer already past our window's end counts what it closed it
        // with (its clock ahead of ours: nothing carried forward).
        let mut ahead: Report = serde_json::from_slice(&report_at(86_410.0, 500.0, 50.0, 86_400.0)).unwrap();
        ahead.services[0].closed = Some((0.0, 120_000.0));
        exchange.receive("c", &serde_json::to_vec(&ahead).unwrap(), now);
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 220_000.0);
        exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);

        // A report from 100 s of budget clock ago: its spend is carried
        // forward at the rate it was keeping (0.05 × 30 bytes/s).
        exchange.receive("b", &report_at(43_100.0, 100_000.0, 30.0, 0.0), Instant::now());
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 100_000.0 + 100.0 * 1.5);

        // Nobody heard within stale_intervals × interval: alone again,
        // counted once.
        fleet.stale_after = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, 43_200.0);
        assert_eq!((ledgers[0].peers, ledgers[0].state.p), (None, 0.5));
        assert_eq!(registry.value("budget_fleet_degraded_total", &[]), Some(1));
        assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(1));
    }

    #[test]
    fn an_unreadable_report_is_counted_and_its_node_not_counted() {
        let registry = Registry::new();
        let exchange = FleetExchange::new("a");
        let mut fleet = Fleet::new(&fleet_config(), exchange.clone(), &registry);
        exchange.receive("b", b"{not json", Instant::now());
        let mut ledgers = vec![ledger(0.0, 20.0)];
        let names = [b"checkout".to_vec()];
        fleet.round_if_due(&mut ledgers, &names, &ids_of(&names), 43_200.0);
        assert_eq!(registry.value("budget_fleet_bad_reports_total", &[]), Some(1));
        assert_eq!((ledgers[0].peers, ledgers[0].state.p), (None, 0.5));
    }
}
