//! Fleet scope: a service's budget is the whole fleet's. Every node keeps
//! the same round schedule, slots of `interval` on the wall clock from the
//! Unix epoch: at a round's start it leaves a report of each ledger
//! (window start, spend, offered rates) in the [`FleetExchange`]; half an
//! interval later it sums the latest report of every node, its own as
//! published included, into each ledger's [`FleetSums`] and derives p from
//! them. The sums are taken in node order at the latest clock reported, so
//! every node that read the same reports derives the same p at the same
//! moment, and keeps it until the next round: a request whose lines are
//! decided on two nodes is kept or dropped whole unless its lines straddle
//! a round's switch or a report arrived late somewhere.
//!
//! Consistency: a report reaches the others within the Kafka link's
//! latency, well inside half an interval, so all converge on each round.
//! A node that stops hearing the others (Kafka unreachable, a partition)
//! keeps the last figures it had for `stale_intervals` intervals, then
//! decides by itself (the node-local rule, which over-spends by the number
//! of nodes the service runs on until it hears again), counted in
//! `budget_fleet_degraded_total` and logged. Errors and slow requests are
//! kept throughout: only normal events are ever sampled.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sluice_config::FleetConfig;
use sluice_core::fleet::FleetExchange;
use sluice_core::{Counter, Gauge, Registry};

use crate::fleet_report::{self, Report, ServiceReport};
use crate::ledger::{BudgetLedger, Coordination, FleetSums, WindowRule};

/// Two nodes' windows are the same window when their starts are this close
/// (calendar windows start at the same instant on every node).
const SAME_WINDOW_SECS: f64 = 1.0;

/// How long a start waits for the link to read the fleet's reports before
/// its first decision. A node restarted after a while reads its backlog in
/// seconds: decided alone, without what the others spent today, it kept
/// too much of every service it shares (the service living on a killed
/// node overspent its day by 5%). Kafka out of reach costs a start this
/// long, once.
const START_WAIT: Duration = Duration::from_secs(5);

/// A peer's latest report, kept as its figures for this node's ledgers
/// only: a peer's services this node has no ledger for cost nothing (a
/// ledger made later counts that peer from its next report, an interval
/// on). Its bytes are not kept, here nor in the exchange.
struct Held {
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
    fn of(report: Report, sent: SystemTime, ids: &crate::FastMap<Box<[u8]>, usize>) -> Held {
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
    /// The last round published and the last applied (see the module
    /// docs); `None` forces a round at the next call.
    published: Option<u64>,
    applied: Option<u64>,
    /// Whether the first round waited for the fleet's reports (see
    /// [`START_WAIT`]).
    waited: bool,
    /// This node's previous run's last report, read back at a start: the
    /// others still count it, and so does this run's first round.
    previous_run: Option<Held>,
    /// Reports already parsed, by node (this node's own included), in
    /// node order: every node sums them in the same order.
    parsed: BTreeMap<String, Held>,
    /// This run's id in its reports.
    run: u64,
    /// Whether the last round counted another node, and how many.
    heard: bool,
    fresh: usize,
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
            published: None,
            applied: None,
            waited: false,
            previous_run: None,
            parsed: BTreeMap::new(),
            run: run_id(),
            heard: false,
            fresh: 0,
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

    /// The round of the wall clock now and whether its second half (when
    /// reports are summed) has begun.
    fn round_now(&self) -> (u64, bool) {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let interval = self.interval.as_millis().max(1);
        ((ms / interval) as u64, ms % interval >= interval / 2)
    }

    /// Publish at a round's start and sum the fleet's reports half an
    /// interval later, whichever is due; whether the ledgers' p were
    /// derived again. Cheap when neither is: called once a batch, so
    /// every node switches p within a batch of the same instant.
    pub(crate) fn round_if_due(
        &mut self,
        ledgers: &mut [BudgetLedger],
        names: &[Vec<u8>],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        rule: &WindowRule,
        now: f64,
    ) -> bool {
        if !self.waited {
            self.waited = true;
            self.wait_for_the_fleet();
        }
        let (round, second_half) = self.round_now();
        if self.published.is_none_or(|p| p < round) {
            self.published = Some(round);
            self.prepare(ledgers, ids, rule, now);
            self.publish(ledgers, names, ids, now);
        }
        if self.applied.is_none() || (second_half && self.applied < Some(round)) {
            // A start sums at once, out of the schedule, and without its
            // own report, which the others have not summed yet: it starts
            // at the p they hold, and joins them at the next round.
            let first = self.applied.is_none();
            self.applied = Some(round);
            let me = self.exchange.node().to_string();
            match self.previous_run.take() {
                // What the others hold for this node: its previous run's.
                Some(previous) if first => {
                    let own = self.parsed.insert(me.clone(), previous);
                    self.apply(ledgers, ids, now, true);
                    if let Some(own) = own {
                        self.parsed.insert(me, own);
                    }
                }
                _ => self.apply(ledgers, ids, now, !first),
            }
            return true;
        }
        false
    }

    /// A whole round at once: publish, then sum what is held.
    #[cfg(test)]
    pub(crate) fn round(
        &mut self,
        ledgers: &mut [BudgetLedger],
        names: &[Vec<u8>],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        rule: &WindowRule,
        now: f64,
    ) {
        self.waited = true;
        let round = self.round_now().0;
        (self.published, self.applied) = (Some(round), Some(round));
        self.prepare(ledgers, ids, rule, now);
        self.publish(ledgers, names, ids, now);
        self.apply(ledgers, ids, now, true);
    }

    /// Make the next call a whole round, whatever the wall clock says
    /// (and without waiting for a link).
    #[cfg(test)]
    pub(crate) fn force_round(&mut self) {
        self.published = None;
        self.applied = None;
        self.waited = true;
    }

    /// Wait, up to [`START_WAIT`], until the link has read what the topic
    /// holds.
    fn wait_for_the_fleet(&self) {
        let start = std::time::Instant::now();
        while !self.exchange.is_caught_up() {
            if start.elapsed() >= START_WAIT || self.exchange.is_closed() {
                tracing::warn!(
                    stage = "budget",
                    waited = ?START_WAIT,
                    "budget: the fleet's reports could not be read at the start; deciding alone until they are"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn prepare(
        &mut self,
        ledgers: &mut [BudgetLedger],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        rule: &WindowRule,
        now: f64,
    ) {
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
    }

    fn publish(
        &mut self,
        ledgers: &[BudgetLedger],
        names: &[Vec<u8>],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        now: f64,
    ) {
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
        let report = Report {
            run: self.run,
            clock: now,
            services,
        };
        let payload: Arc<[u8]> = fleet_report::encode(&report).into();
        self.exchange.set_outgoing(payload.clone());
        // Summed with the others' as they will read it (rates as `f32`).
        let own = Held::of(report, SystemTime::now(), ids);
        self.parsed.insert(self.exchange.node().to_string(), own);
    }

    /// Sum every node's figures into each ledger's [`FleetSums`]. A fresh
    /// report (younger than `stale_after`) counts whole: its rates, and
    /// its spend carried forward from its clock to the round's common
    /// clock at the rate it was keeping (near a window's end every node
    /// would otherwise overspend by what the others kept since they
    /// reported). A stale one (its node gone, or Kafka out of reach)
    /// counts only what it had spent in the window: spend is history,
    /// rates are not. A stale report older than the longest window is
    /// forgotten.
    fn apply(
        &mut self,
        ledgers: &mut [BudgetLedger],
        ids: &crate::FastMap<Box<[u8]>, usize>,
        now: f64,
        with_own: bool,
    ) {
        let wall = SystemTime::now();
        let me = self.exchange.node().to_string();
        let peers = self.exchange.take_peers();
        let held_before = self.parsed.len();
        self.parsed
            .retain(|node, _| *node == me || peers.iter().any(|p| &p.node == node));
        // Whether any other node's figures changed since the last round.
        let mut news = self.parsed.len() != held_before;
        for p in &peers {
            let Some(payload) = &p.payload else {
                continue;
            };
            news = true;
            match fleet_report::decode(payload) {
                Ok(report) => {
                    let held = Held::of(report, p.sent, ids);
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
        let is_fresh = |held: &Held| wall.duration_since(held.sent).unwrap_or_default() < self.stale_after;
        // The common clock, the latest reported: every node that holds the
        // same reports picks the same one.
        let clock = self
            .parsed
            .iter()
            .filter(|(node, h)| if **node == me { with_own } else { is_fresh(h) })
            .map(|(_, h)| h.clock)
            .fold(f64::NAN, f64::max);
        let clock = if clock.is_nan() { now } else { clock };
        // A clock past a ledger's window (a node already past midnight)
        // reads as the window's end.
        let mut sums: Vec<FleetSums> = ledgers
            .iter()
            .map(|l| FleetSums {
                clock: clock.min(l.window_end()),
                ..FleetSums::default()
            })
            .collect();
        let mut stale_spent = vec![0.0f64; ledgers.len()];
        let (mut fresh, mut oldest) = (0usize, Duration::ZERO);
        let mut gone = Vec::new();
        for (node, held) in &self.parsed {
            let own = *node == me;
            if own && !with_own {
                continue;
            }
            let age = wall.duration_since(held.sent).unwrap_or_default();
            let fresh_report = own || age < self.stale_after;
            if fresh_report && !own {
                fresh += 1;
                oldest = oldest.max(age);
            } else if !fresh_report && held.clock < now - longest {
                gone.push(node.clone());
                continue;
            }
            for s in &held.figures {
                let id = s.id as usize;
                let behind = (sums[id].clock - held.clock).max(0.0);
                // A node in another window (a clock on the other side of
                // midnight) has spent elsewhere: ahead of this one, it
                // spent what it closed ours with; behind, nothing yet.
                let ours = ledgers[id].state.window_start;
                let spent = if (s.window_start - ours).abs() < SAME_WINDOW_SECS {
                    let since = if fresh_report {
                        behind.min((ledgers[id].window_end() - held.clock).max(0.0))
                    } else {
                        0.0
                    };
                    Some(s.spent + since * f64::from(s.must_rate + s.p * s.normal_rate))
                } else {
                    // NaN compares false: no closed window.
                    ((s.closed.0 - ours).abs() < SAME_WINDOW_SECS).then_some(s.closed.1)
                };
                if !fresh_report {
                    stale_spent[id] += spent.unwrap_or(0.0);
                }
                let sum = &mut sums[id];
                sum.spent += spent.unwrap_or(0.0);
                if fresh_report {
                    sum.must_rate += f64::from(s.must_rate);
                    sum.normal_rate += f64::from(s.normal_rate);
                    sum.must_events += f64::from(s.must_events);
                    sum.normal_events += f64::from(s.normal_events);
                }
            }
        }
        news |= !gone.is_empty();
        for node in gone {
            self.parsed.remove(&node);
            self.exchange.forget(&node);
        }
        let heard = fresh > 0;
        // Nothing new from anyone (Kafka out of reach, most likely for
        // every node alike): each node would sum its own fresh figures with
        // the others' old ones and p would differ between nodes. Every
        // node holds the last round's p instead, until news or staleness.
        let hold = heard && self.heard && !news && fresh == self.fresh;
        self.fresh = fresh;
        for ((l, sum), peers_spent) in ledgers.iter_mut().zip(sums).zip(stale_spent) {
            if hold && matches!(l.coordination, Coordination::Fleet(_)) {
                continue;
            }
            // Heard from the fleet, the fleet's totals (a service no other
            // node has is this node's alone, at the round's figures).
            // Hearing nobody, the local rule, less what the silent spent.
            l.coordination = if heard {
                Coordination::Fleet(sum)
            } else {
                Coordination::Alone { peers_spent }
            };
            l.rederive(now);
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
        if self.applied.is_none() {
            self.previous_run = Some(Held::of(report.clone(), SystemTime::now(), ids));
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
mod tests;

/// The coordination's cost at 10,000 services (a measurement).
#[cfg(test)]
#[path = "fleet_cost.rs"]
mod cost;
