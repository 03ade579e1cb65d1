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
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_config::FleetConfig;
use sluice_core::fleet::FleetExchange;
use sluice_core::{Counter, Gauge, Registry};

use crate::fleet_report::{self, Report, ServiceReport};
use crate::ledger::{BudgetLedger, PeerSums, WindowRule};

/// Two nodes' windows are the same window when their starts are this close
/// (calendar windows start at the same instant on every node).
const SAME_WINDOW_SECS: f64 = 1.0;

/// A peer's latest report, kept as its figures for this node's ledgers
/// only: a peer's services this node has no ledger for cost nothing (a
/// ledger made later counts that peer from its next report, an interval
/// on).
struct Held {
    /// The bytes it was parsed from (unchanged bytes are not parsed again;
    /// the exchange holds them anyway).
    payload: Arc<[u8]>,
    /// When the peer published it.
    sent: SystemTime,
    /// The peer's budget clock when it reported.
    clock: f64,
    figures: Vec<Figures>,
}

/// A peer's figures for one of this node's ledgers (a
/// [`ServiceReport`] without its key).
struct Figures {
    /// The ledger's index.
    id: u32,
    must_rate: f32,
    normal_rate: f32,
    must_events: f32,
    normal_events: f32,
    p: f32,
    window_start: f64,
    spent: f64,
    /// The window the peer closed last (start, spend); NaN for none.
    closed: (f64, f64),
}

impl Held {
    fn of(report: Report, payload: Arc<[u8]>, sent: SystemTime, ids: &crate::FastMap<Box<[u8]>, usize>) -> Held {
        let mut figures: Vec<Figures> = report
            .services
            .into_iter()
            .filter_map(|s| {
                let &id = ids.get(s.key.as_bytes())?;
                Some(Figures {
                    id: id as u32,
                    must_rate: s.must_rate,
                    normal_rate: s.normal_rate,
                    must_events: s.must_events,
                    normal_events: s.normal_events,
                    p: s.p,
                    window_start: s.window_start,
                    spent: s.spent,
                    closed: s.closed.unwrap_or((f64::NAN, f64::NAN)),
                })
            })
            .collect();
        // Collected in place, the list would keep the report's larger
        // allocation.
        figures.shrink_to_fit();
        Held {
            payload,
            sent,
            clock: report.clock,
            figures,
        }
    }
}

/// See the module docs.
pub(crate) struct Fleet {
    exchange: FleetExchange,
    interval: Duration,
    stale_after: Duration,
    next: Instant,
    /// Reports already parsed, by node.
    parsed: HashMap<String, Held>,
    /// This run's id in its reports.
    run: u64,
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
            run: run_id(),
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
        rule: &WindowRule,
        now: f64,
    ) -> bool {
        let wall = Instant::now();
        if wall < self.next {
            return false;
        }
        self.next = wall + self.interval;
        // A ledger's rates move only when its service logs here: one that
        // went quiet (a service that moved to another node) would report
        // its last rates for ever, and the fleet would count traffic that
        // left. Brought up to now, its rates are measured over the
        // silence, and its window is the current one.
        for l in ledgers.iter_mut() {
            l.roll(now, rule);
            l.update(now);
        }
        self.take_up_echo(ledgers, ids);
        self.publish(ledgers, names, now);
        self.apply(ledgers, ids, now);
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
                must_rate: l.state.must_rate.rate as f32,
                normal_rate: l.state.normal_rate.rate as f32,
                must_events: l.state.must_events.rate as f32,
                normal_events: l.state.normal_events.rate as f32,
                p: l.state.p as f32,
                closed: l.closed,
            })
            .collect();
        self.exchange.set_outgoing(fleet_report::encode(&Report {
            run: self.run,
            clock: now,
            services,
        }));
    }

    /// Sum the other nodes' figures into each ledger's peers. A fresh
    /// report (younger than `stale_after`) counts whole: its rates, and its
    /// spend carried forward from its clock to ours at the rate it was
    /// keeping (a report is an interval or more old when it is read, and
    /// near a window's end every node would otherwise overspend by what
    /// the others kept since). A stale one (its node gone, or Kafka out of
    /// reach) counts only what it had spent in our window: spend is
    /// history, rates are not. A stale report older than the longest
    /// window is forgotten.
    fn apply(&mut self, ledgers: &mut [BudgetLedger], ids: &crate::FastMap<Box<[u8]>, usize>, now: f64) {
        let wall = SystemTime::now();
        let peers = self.exchange.peers();
        self.parsed.retain(|node, _| peers.iter().any(|p| &p.node == node));
        for p in &peers {
            if let Some(held) = self.parsed.get_mut(&p.node) {
                if Arc::ptr_eq(&held.payload, &p.payload) {
                    continue;
                }
            }
            match fleet_report::decode(&p.payload) {
                Ok(report) => {
                    let held = Held::of(report, p.payload.clone(), p.sent, ids);
                    self.parsed.insert(p.node.clone(), held);
                }
                Err(e) => {
                    self.bad_reports.inc();
                    self.parsed.remove(&p.node);
                    self.exchange.forget(&p.node);
                    tracing::warn!(stage = "budget", node = %p.node, error = %e, "budget: a fleet report could not be read; that node is not counted");
                }
            }
        }
        let longest = ledgers.iter().map(|l| l.budget.period_secs).max().unwrap_or(0) as f64;
        let mut sums: Vec<Option<PeerSums>> = vec![None; ledgers.len()];
        let (mut fresh, mut oldest) = (0usize, Duration::ZERO);
        let mut gone = Vec::new();
        for (node, held) in &self.parsed {
            let age = wall.duration_since(held.sent).unwrap_or_default();
            let is_fresh = age < self.stale_after;
            if is_fresh {
                fresh += 1;
                oldest = oldest.max(age);
            } else if held.clock < now - longest {
                gone.push(node.clone());
                continue;
            }
            let behind = (now - held.clock).max(0.0);
            for s in &held.figures {
                let id = s.id as usize;
                // A node in another window (a clock on the other side of
                // midnight) has spent elsewhere: ahead of this one, it
                // spent what it closed ours with; behind, nothing yet.
                let ours = ledgers[id].state.window_start;
                let spent = if (s.window_start - ours).abs() < SAME_WINDOW_SECS {
                    let since = if is_fresh {
                        behind.min((ledgers[id].window_end() - held.clock).max(0.0))
                    } else {
                        0.0
                    };
                    Some(s.spent + since * f64::from(s.must_rate + s.p * s.normal_rate))
                } else {
                    // NaN compares false: no closed window.
                    ((s.closed.0 - ours).abs() < SAME_WINDOW_SECS).then_some(s.closed.1)
                };
                if !is_fresh && spent.is_none() {
                    continue;
                }
                let sum = sums[id].get_or_insert_with(PeerSums::default);
                sum.spent += spent.unwrap_or(0.0);
                if is_fresh {
                    sum.must_rate += f64::from(s.must_rate);
                    sum.normal_rate += f64::from(s.normal_rate);
                    sum.must_events += f64::from(s.must_events);
                    sum.normal_events += f64::from(s.normal_events);
                }
            }
        }
        for node in gone {
            self.parsed.remove(&node);
            self.exchange.forget(&node);
        }
        let heard = fresh > 0;
        for (l, s) in ledgers.iter_mut().zip(sums) {
            // Heard from the fleet, a service no other node has is this
            // node's alone: zero peers, not the local rule. Hearing
            // nobody, the local rule, less what the silent spent.
            l.peers = if heard { Some(s.unwrap_or_default()) } else { s };
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
                nodes = fresh + 1,
                "budget: deciding with the fleet's figures"
            );
        }
        self.heard = heard;
        self.nodes.set(fresh as i64 + 1);
        self.view_age.set(oldest.as_secs() as i64);
    }

    /// Take up what this node's previous run last reported (read back
    /// from the topic at a start): its spend in a window still running is
    /// fresher than the state file, which a SIGKILL leaves up to 5 s old.
    fn take_up_echo(&mut self, ledgers: &mut [BudgetLedger], ids: &crate::FastMap<Box<[u8]>, usize>) {
        let Some(echo) = self.exchange.take_echo() else {
            return;
        };
        let Ok(report) = fleet_report::decode(&echo) else {
            return;
        };
        if report.run == self.run {
            return;
        }
        let mut taken = 0.0;
        for s in &report.services {
            let Some(&id) = ids.get(s.key.as_bytes()) else {
                continue;
            };
            let l = &mut ledgers[id];
            if (s.window_start - l.state.window_start).abs() < SAME_WINDOW_SECS && s.spent > l.state.spent {
                taken += s.spent - l.state.spent;
                l.state.spent = s.spent;
            }
        }
        if taken > 0.0 {
            tracing::info!(
                stage = "budget",
                bytes = taken as u64,
                "budget: took up spend from this node's last published report (newer than its saved state)"
            );
        }
    }

    /// The stage is done: stop the link.
    pub(crate) fn close(&self) {
        self.exchange.close();
    }
}

/// A run id unlikely to repeat: the start's wall-clock time and pid,
/// hashed with a random key.
fn run_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
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
        assert!(fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0));
        assert_eq!(ledgers[0].state.p, 0.5);
        assert_eq!(ledgers[0].peers, None);
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
        fleet.next = Instant::now();
        assert!(fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0));
        assert!((ledgers[0].state.p - 0.05).abs() < 1e-12, "{}", ledgers[0].state.p);
        assert_eq!(ledgers[0].local_p(43_200.0), 0.5);
        assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(3));

        // A peer in another window offers, but has spent elsewhere.
        exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 100_000.0);
        // A peer already past our window's end counts what it closed it
        // with (its clock ahead of ours: nothing carried forward).
        let mut ahead = fleet_report::decode(&report_at(86_410.0, 500.0, 50.0, 86_400.0)).unwrap();
        ahead.services[0].closed = Some((0.0, 120_000.0));
        exchange.receive("c", &fleet_report::encode(&ahead), now);
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 220_000.0);
        exchange.receive("c", &report(116_000.0, 50.0, -86_400.0), now);

        // A report from 100 s of budget clock ago: its spend is carried
        // forward at the rate it was keeping (0.0625 × 30 bytes/s).
        exchange.receive("b", &report_at(43_100.0, 100_000.0, 30.0, 0.0), SystemTime::now());
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        assert_eq!(ledgers[0].peers.unwrap().spent, 100_000.0 + 100.0 * 1.875);

        // Nobody heard within stale_intervals × interval: alone again,
        // counted once, less what the silent spent in this window (b's
        // 100,000 as it last said; c spent in another day): 332,000 left
        // over 43,200 s for 20 bytes/s offered.
        fleet.stale_after = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        let spent_only = PeerSums {
            spent: 100_000.0,
            ..PeerSums::default()
        };
        assert_eq!(ledgers[0].peers, Some(spent_only));
        assert!((ledgers[0].state.p - 332_000.0 / 43_200.0 / 20.0).abs() < 1e-12);
        assert_eq!(registry.value("budget_fleet_degraded_total", &[]), Some(1));
        assert_eq!(registry.value("budget_fleet_nodes", &[]), Some(1));

        // A day later their reports are forgotten.
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0 + 86_401.0);
        assert_eq!(ledgers[0].peers, None);
        assert!(exchange.peers().is_empty());
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
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        assert_eq!(ledgers[0].state.spent, 150_000.0);
        // Its own reports read back change nothing; nor does a previous
        // run's report of another day.
        ledgers[0].state.spent = 1_000.0;
        exchange.receive("a", &exchange.outgoing().unwrap(), SystemTime::now());
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
        exchange.receive(
            "a",
            &report_at(-43_000.0, 150_000.0, 20.0, -86_400.0),
            SystemTime::now(),
        );
        fleet.next = Instant::now();
        fleet.round_if_due(&mut ledgers, &names, &ids, &rule(), 43_200.0);
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
        fleet.round_if_due(&mut ledgers, &names, &ids_of(&names), &rule(), 43_200.0);
        assert_eq!(registry.value("budget_fleet_bad_reports_total", &[]), Some(1));
        assert_eq!((ledgers[0].peers, ledgers[0].state.p), (None, 0.5));
    }
}

/// The coordination's cost at 10,000 services (a measurement).
#[cfg(test)]
#[path = "fleet_cost.rs"]
mod cost;
