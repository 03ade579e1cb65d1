//! One service's budget window and the adaptive keep-probability of its
//! normal events.
//!
//! Errors and slow requests are always kept and spend first; normal events
//! share what remains. The probability is re-derived from the spend rate the
//! window can still afford and the rates observed recently (exponentially
//! weighted), so a burst lowers it and a lull raises it, and the window's
//! spend lands on the budget instead of stopping the service after a burst.

use serde::{Deserialize, Serialize};
use sluice_config::{Budget, BudgetWindow};

/// Where budget windows start: calendar windows at multiples of their
/// length in local time (a day at local midnight) of a fixed offset or a
/// time zone; rolling windows when a service is first seen.
#[derive(Debug, Clone)]
pub struct WindowRule {
    /// Calendar or rolling.
    pub window: BudgetWindow,
    /// The local time of calendar windows.
    pub zone: Zone,
}

/// The local time calendar windows follow.
#[derive(Debug, Clone)]
pub enum Zone {
    /// Seconds east of UTC.
    Offset(i64),
    /// An IANA time zone: its offset at each instant, and whole-day
    /// windows from local midnight to local midnight.
    Tz(jiff::tz::TimeZone),
}

impl Zone {
    /// Seconds east of UTC at `t`.
    fn offset_at(&self, t: f64) -> i64 {
        match self {
            Zone::Offset(o) => *o,
            Zone::Tz(tz) => {
                jiff::Timestamp::from_second(t.floor() as i64).map_or(0, |ts| i64::from(tz.to_offset(ts).seconds()))
            }
        }
    }
}

/// The instant local (civil) time `local` of `tz` begins, `local` counted
/// in seconds from 1970-01-01T00:00 local: a time a transition skips maps
/// to the instant after the gap, a repeated one to its first occurrence.
fn local_instant(tz: &jiff::tz::TimeZone, local: i64) -> Option<f64> {
    let civil = jiff::Timestamp::from_second(local)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime();
    Some(civil.to_zoned(tz.clone()).ok()?.timestamp().as_second() as f64)
}

impl WindowRule {
    /// The calendar window of `period` seconds that holds `now`: (start,
    /// end). Windows are slots of local time, `period` long from the local
    /// epoch (a day: midnight to midnight).
    pub fn calendar_window(&self, now: f64, period: u64) -> (f64, f64) {
        let off = self.zone.offset_at(now) as f64;
        let p = period as f64;
        let local_start = ((now + off) / p).floor() * p;
        if let Zone::Tz(tz) = &self.zone {
            // In a zone the slots are of civil time, so consecutive windows
            // meet exactly: a day across a daylight-saving change is 23 or
            // 25 hours, a 6-hour window 5 or 7.
            let start = local_instant(tz, local_start as i64);
            let end = local_instant(tz, (local_start + p) as i64);
            if let (Some(start), Some(end)) = (start, end) {
                if start <= now && now < end {
                    return (start, end);
                }
            }
        }
        (local_start - off, local_start - off + p)
    }

    /// The window of `period` seconds that holds `now` for a ledger whose
    /// current window starts at `start`.
    fn window(&self, now: f64, start: f64, period: u64) -> (f64, f64) {
        match self.window {
            BudgetWindow::Calendar => self.calendar_window(now, period),
            BudgetWindow::Rolling => {
                let p = period as f64;
                let start = start + ((now - start) / p).floor() * p;
                (start, start + p)
            }
        }
    }
}

/// Time constant of the byte rate estimates, in seconds (of the budget
/// clock): a window is hours or a day, so the spend rate is smoothed over
/// minutes.
const TAU_SECS: f64 = 300.0;

/// The budget clock time a ledger's offers are gathered over before its
/// rates are first estimated.
const FIRST_READING_SECS: f64 = 1.0;

/// Time constant of the event rate estimates: an events/s budget is a
/// rate, so it follows a burst within seconds.
const EVENTS_TAU_SECS: f64 = 10.0;

/// A rate estimate per second (of bytes or of events).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ewma {
    /// Current estimate.
    pub rate: f64,
    primed: bool,
}

impl Ewma {
    /// Fold in `amount` offered over the last `dt` seconds, with time
    /// constant `tau`.
    fn observe(&mut self, amount: f64, dt: f64, tau: f64) {
        if dt <= 0.0 {
            return;
        }
        let inst = amount / dt;
        if !self.primed {
            self.rate = inst;
            self.primed = true;
        } else {
            let alpha = 1.0 - (-dt / tau).exp();
            self.rate += alpha * (inst - self.rate);
        }
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerState {
    /// Start of the current window (seconds since the epoch).
    pub window_start: f64,
    /// Bytes kept in the current window.
    pub spent: f64,
    /// Keep-probability of normal events.
    pub p: f64,
    /// Must-keep (error, slow) bytes per second offered.
    pub must_rate: Ewma,
    /// Normal bytes per second offered.
    pub normal_rate: Ewma,
    /// Must-keep events per second offered (absent in states saved before
    /// events/s budgets).
    #[serde(default)]
    pub must_events: Ewma,
    /// Normal events per second offered.
    #[serde(default)]
    pub normal_events: Ewma,
    /// Clock of the last update.
    pub last: f64,
}

/// One service's ledger. See the module docs.
#[derive(Debug, Clone)]
pub struct BudgetLedger {
    /// The service's budget (bytes per window).
    pub budget: Budget,
    /// What the window has spent and decided so far (persisted).
    pub state: LedgerState,
    /// The end of the current window (read per event).
    end: f64,
    /// Offered since the last rate update: bytes `[normal, must-keep]`,
    /// then events `[normal, must-keep]`.
    pending: [f64; 4],
    /// The last batch that touched this ledger (the stage's batch count).
    pub batch: u64,
    /// The end of the first second after a restart, whose offers are not
    /// measured (see `update`): infinite from the restore to the first
    /// update, which sets it.
    unmeasured_until: f64,
    /// The keep-probability's floor and ceiling.
    floor: f64,
    ceiling: f64,
    /// How p is derived: by this node alone, or from the fleet's totals.
    pub coordination: Coordination,
    /// The window this ledger last closed: its start and final spend (a
    /// fleet node whose clock is still in that window counts it).
    pub closed: Option<(f64, f64)>,
}

/// How a ledger derives its keep-probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Coordination {
    /// By this node's figures, after every batch: node scope, and a fleet
    /// node that hears no other node, less what silent nodes last said they
    /// spent in this window (`peers_spent`).
    Alone {
        /// Bytes other nodes reported keeping in this window.
        peers_spent: f64,
    },
    /// From the fleet's totals at the last round, this node's own report
    /// included as published: every node that read the same reports
    /// derives the same p, and p holds until the next round, so a request
    /// decided on two nodes between two rounds is kept or dropped whole.
    Fleet(FleetSums),
}

impl Default for Coordination {
    fn default() -> Coordination {
        Coordination::Alone { peers_spent: 0.0 }
    }
}

/// A fleet's figures for one service, summed over every node's report
/// (this node's included), each report's spend carried forward to `clock`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetSums {
    /// The round's common budget clock: the latest clock reported.
    pub clock: f64,
    /// Bytes the fleet kept in this window by `clock`.
    pub spent: f64,
    /// Must-keep bytes per second.
    pub must_rate: f64,
    /// Normal bytes per second.
    pub normal_rate: f64,
    /// Must-keep events per second.
    pub must_events: f64,
    /// Normal events per second.
    pub normal_events: f64,
}

impl BudgetLedger {
    /// A ledger whose first window holds `now` (starts at `now`, rolling),
    /// its keep-probability within `floor` and `ceiling`.
    pub fn new(budget: Budget, now: f64, rule: &WindowRule, floor: f64, ceiling: f64) -> BudgetLedger {
        let (start, end) = rule.window(now, now, budget.period_secs);
        BudgetLedger {
            budget,
            state: LedgerState {
                window_start: start,
                spent: 0.0,
                p: ceiling,
                must_rate: Ewma::default(),
                normal_rate: Ewma::default(),
                must_events: Ewma::default(),
                normal_events: Ewma::default(),
                last: now,
            },
            end,
            pending: [0.0; 4],
            batch: 0,
            unmeasured_until: f64::NEG_INFINITY,
            floor,
            ceiling,
            coordination: Coordination::default(),
            closed: None,
        }
    }

    /// Start a new window when `now` has left the current one (a clock
    /// stepped back by more than a window starts one too), with p
    /// re-derived at once, so the rest of the batch is decided in the new
    /// window, not at the p its spent predecessor set; whether it did.
    #[inline]
    pub fn roll(&mut self, now: f64, rule: &WindowRule) -> bool {
        let (start, end) = (self.state.window_start, self.end);
        let leaves = now >= end || now < start - (end - start);
        if leaves {
            self.start_window(now, rule);
        }
        leaves
    }

    #[cold]
    fn start_window(&mut self, now: f64, rule: &WindowRule) {
        self.closed = Some((self.state.window_start, self.state.spent));
        (self.state.window_start, self.end) = rule.window(now, self.state.window_start, self.budget.period_secs);
        self.state.spent = 0.0;
        if let Coordination::Fleet(f) = &mut self.coordination {
            // Every node rolls at its own clock's midnight: the new window
            // starts unspent, at the fleet's rates, as of its start.
            f.spent = 0.0;
            f.clock = self.state.window_start;
        } else {
            self.coordination = Coordination::default();
        }
        self.derive_p(now);
    }

    /// Take up `state` saved by an earlier run (its window's end follows
    /// from its start).
    pub fn restore(&mut self, state: LedgerState, rule: &WindowRule) {
        let start = state.window_start;
        self.end = match rule.window {
            // The end of the window that holds the start (its own, unless
            // the zone or period changed since).
            BudgetWindow::Calendar => rule.calendar_window(start, self.budget.period_secs).1,
            BudgetWindow::Rolling => start + self.budget.period_secs as f64,
        };
        self.state = state;
        self.unmeasured_until = f64::INFINITY;
    }

    /// Record an offered event of `bytes` (before the decision).
    #[inline]
    pub fn offer(&mut self, bytes: f64, must_keep: bool) {
        let m = usize::from(must_keep);
        self.pending[m] += bytes;
        self.pending[2 + m] += 1.0;
    }

    /// Record kept bytes.
    #[inline]
    pub fn spend(&mut self, bytes: f64) {
        self.state.spent += bytes;
    }

    /// Fold what was offered into the rates and re-derive the probability
    /// (what a restored ledger is offered in its first second is not
    /// measured).
    pub fn update(&mut self, now: f64) {
        if self.unmeasured_until == f64::INFINITY {
            self.unmeasured_until = now + FIRST_READING_SECS;
        }
        if now < self.unmeasured_until {
            // The first second of a service's traffic after a restart only
            // re-anchors the rates' clock; the saved rates and p carry
            // through it. Measured from the saved clock, the downtime would
            // be averaged in as a lull (the rates read near zero and p sat
            // at the ceiling for minutes: the byte rates forget over 5).
            // Measured from the restart, a burst ending a silence of
            // unknown length would read as a rate its gaps never show (a
            // job logging every ten minutes read three times its bytes and
            // sixty times its events/s). A service that merely went quiet
            // while running is measured over its silence: that is its rate.
            self.pending = [0.0; 4];
            self.state.last = now;
        }
        let dt = now - self.state.last;
        // The first reading waits for a second of traffic: a new service's
        // first batch spans microseconds of wall time, and a rate primed
        // from it reads a thousand times too high (p sat near the floor
        // for tens of minutes: the byte rates forget over 5). Until then p
        // stays where it started.
        let primed = self.state.normal_rate.primed || self.state.must_rate.primed;
        if dt >= FIRST_READING_SECS || (primed && dt > 0.0) {
            let [normal, must, normal_events, must_events] = std::mem::take(&mut self.pending);
            self.state.must_rate.observe(must, dt, TAU_SECS);
            self.state.normal_rate.observe(normal, dt, TAU_SECS);
            self.state.must_events.observe(must_events, dt, EVENTS_TAU_SECS);
            self.state.normal_events.observe(normal_events, dt, EVENTS_TAU_SECS);
            self.state.last = now;
        }
        self.derive_p(now);
    }

    /// The keep-probability that lands the window's spend on its budget at
    /// the rates measured, within the floor and the ceiling. Once a batch or
    /// a window, never per event: kept out of the decision loop. From the
    /// fleet's totals, p is the round's and only a round changes it.
    #[cold]
    fn derive_p(&mut self, now: f64) {
        self.state.p = match self.coordination {
            Coordination::Alone { peers_spent } => self.local_with(peers_spent, now),
            Coordination::Fleet(f) => self.p_from(&f, f.clock),
        };
    }

    /// Derive p again (a fleet round changed the coordination).
    pub fn rederive(&mut self, now: f64) {
        self.derive_p(now);
    }

    /// The p this node alone would set (what fleet scope falls back to).
    pub fn local_p(&self, now: f64) -> f64 {
        self.local_with(0.0, now)
    }

    fn local_with(&self, peers_spent: f64, now: f64) -> f64 {
        let s = &self.state;
        let own = FleetSums {
            clock: now,
            spent: s.spent + peers_spent,
            must_rate: s.must_rate.rate,
            normal_rate: s.normal_rate.rate,
            must_events: s.must_events.rate,
            normal_events: s.normal_events.rate,
        };
        self.p_from(&own, now)
    }

    /// The keep-probability for `f`'s spend and rates at `now`.
    fn p_from(&self, f: &FleetSums, now: f64) -> f64 {
        let (floor, ceiling) = (self.floor, self.ceiling);
        let time_left = (self.end - now).max(1.0);
        let remaining = (self.budget.bytes as f64 - f.spent).max(0.0);
        let affordable = remaining / time_left - f.must_rate;
        let mut p = if f.normal_rate <= 0.0 {
            ceiling
        } else {
            affordable / f.normal_rate
        };
        if let Some(limit) = self.budget.events_per_sec {
            // Errors and slow requests count against the rate first too.
            if f.normal_events > 0.0 {
                p = p.min((limit - f.must_events) / f.normal_events);
            }
        }
        p.clamp(floor, ceiling)
    }

    /// The end of the current window.
    pub fn window_end(&self) -> f64 {
        self.end
    }
}

#[cfg(test)]
mod tests;
