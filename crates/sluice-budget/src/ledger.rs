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

/// Time constant of the rate estimates, in seconds (of the budget clock).
const TAU_SECS: f64 = 300.0;

/// A rate estimate in bytes per second.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ewma {
    /// Current estimate.
    pub rate: f64,
    primed: bool,
}

impl Ewma {
    fn observe(&mut self, bytes: f64, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        let inst = bytes / dt;
        if !self.primed {
            self.rate = inst;
            self.primed = true;
        } else {
            let alpha = 1.0 - (-dt / TAU_SECS).exp();
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
    /// Clock of the last update.
    pub last: f64,
}

/// One service's ledger. See the module docs.
#[derive(Debug, Clone)]
pub struct BudgetLedger {
    pub budget: Budget,
    pub state: LedgerState,
    /// The budget's period in seconds, as the clock counts (read per event).
    period: f64,
    /// Bytes offered since the last rate update: `[normal, must-keep]`.
    pending: [f64; 2],
    /// The last batch that touched this ledger (the stage's batch count).
    pub batch: u64,
}

impl BudgetLedger {
    /// A ledger whose first window starts at `now`.
    pub fn new(budget: Budget, now: f64, window: BudgetWindow, offset: i64, ceiling: f64) -> BudgetLedger {
        BudgetLedger {
            budget,
            state: LedgerState {
                window_start: window_start(now, budget.period_secs, window, offset),
                spent: 0.0,
                p: ceiling,
                must_rate: Ewma::default(),
                normal_rate: Ewma::default(),
                last: now,
            },
            period: budget.period_secs as f64,
            pending: [0.0; 2],
            batch: 0,
        }
    }

    /// Start a new window when `now` has left the current one.
    #[inline]
    pub fn roll(&mut self, now: f64, window: BudgetWindow, offset: i64) {
        let (start, period) = (self.state.window_start, self.period);
        if now >= start + period || now < start - period {
            self.start_window(now, window, offset);
        }
    }

    #[cold]
    fn start_window(&mut self, now: f64, window: BudgetWindow, offset: i64) {
        self.state.window_start = match window {
            BudgetWindow::Calendar => window_start(now, self.budget.period_secs, window, offset),
            BudgetWindow::Rolling => {
                let k = ((now - self.state.window_start) / self.period).floor();
                self.state.window_start + k * self.period
            }
        };
        self.state.spent = 0.0;
    }

    /// Record offered bytes (before the decision).
    #[inline]
    pub fn offer(&mut self, bytes: f64, must_keep: bool) {
        self.pending[usize::from(must_keep)] += bytes;
    }

    /// Record kept bytes.
    #[inline]
    pub fn spend(&mut self, bytes: f64) {
        self.state.spent += bytes;
    }

    /// Fold what was offered into the rates and re-derive the probability.
    pub fn update(&mut self, now: f64, floor: f64, ceiling: f64) {
        let dt = now - self.state.last;
        if dt > 0.0 {
            let [normal, must] = std::mem::take(&mut self.pending);
            self.state.must_rate.observe(must, dt);
            self.state.normal_rate.observe(normal, dt);
            self.state.last = now;
        }
        let end = self.state.window_start + self.period;
        let time_left = (end - now).max(1.0);
        let remaining = (self.budget.bytes as f64 - self.state.spent).max(0.0);
        let affordable = remaining / time_left - self.state.must_rate.rate;
        let normal = self.state.normal_rate.rate;
        self.state.p = if normal <= 0.0 {
            ceiling
        } else {
            (affordable / normal).clamp(floor, ceiling)
        };
    }
}

/// The start of the window holding `now`.
fn window_start(now: f64, period: u64, window: BudgetWindow, offset: i64) -> f64 {
    match window {
        BudgetWindow::Rolling => now,
        BudgetWindow::Calendar => {
            let local = now + offset as f64;
            let p = period as f64;
            (local / p).floor() * p - offset as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_days_start_at_local_midnight() {
        // 2026-11-25T00:30:00+09:00 is 2026-11-24T15:30:00Z.
        let now = 1_764_000_000.0 - 1_764_000_000.0 % 86_400.0 + 15.5 * 3600.0;
        let b = Budget {
            bytes: 100,
            period_secs: 86_400,
        };
        let l = BudgetLedger::new(b, now, BudgetWindow::Calendar, 9 * 3600, 1.0);
        assert_eq!(l.state.window_start, now - 0.5 * 3600.0);
    }

    #[test]
    fn a_burst_lowers_the_probability_and_a_lull_raises_it() {
        let b = Budget {
            bytes: 86_400 * 1000,
            period_secs: 86_400,
        };
        let mut l = BudgetLedger::new(b, 0.0, BudgetWindow::Calendar, 0, 1.0);
        // 10 kB/s offered against 1 kB/s affordable.
        for t in 1..600 {
            l.offer(10_000.0, false);
            l.spend(10_000.0 * l.state.p);
            l.update(t as f64, 0.01, 1.0);
        }
        let burst_p = l.state.p;
        assert!(burst_p < 0.15, "{burst_p}");
        for t in 600..3000 {
            l.offer(100.0, false);
            l.spend(100.0 * l.state.p);
            l.update(t as f64, 0.01, 1.0);
        }
        assert!(l.state.p > 0.9, "{}", l.state.p);
    }
}
