//! Retry pacing and the circuit breaker (guide §27, §66-§68).
//!
//! A sink sends one request at a time, so its breaker is a gate on that one
//! sender: after `breaker_failures` consecutive failures it opens and sends
//! nothing for `breaker_open_for`; then one probe request (half-open)
//! either closes it or opens it again. Between retries the wait doubles from
//! `retry_initial_backoff` to `retry_max_backoff`, with "equal jitter" (half
//! fixed, half random) so a fleet of nodes that lost the same target does
//! not come back in lockstep, yet never retries in a tight loop.

use sluice_core::metric_names;
use std::time::{Duration, Instant};

use rand::Rng;
use sluice_core::{Counter, Gauge, Registry};

/// Exponential backoff with jitter. See the module docs.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The wait before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt += 1;
        let half = cap / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// A request succeeded: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The breaker's state, as its gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow (`circuit_state` 0).
    Closed,
    /// Nothing is sent until the instant (`circuit_state` 1).
    Open(Instant),
    /// One probe request is allowed (`circuit_state` 2).
    HalfOpen,
}

/// See the module docs.
#[derive(Debug)]
pub struct Breaker {
    state: BreakerState,
    failures: u32,
    threshold: u32,
    open_for: Duration,
    gauge: Gauge,
    opened: Counter,
}

impl Breaker {
    /// A closed breaker for sink `sink`.
    pub fn new(threshold: u32, open_for: Duration, registry: &Registry, sink: &str) -> Breaker {
        let labels = [("sink", sink)];
        let gauge = registry.gauge(
            metric_names::CIRCUIT_STATE,
            "A sink's circuit breaker: 0 closed, 1 open, 2 half-open.",
            &labels,
        );
        gauge.set(0);
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            threshold,
            open_for,
            gauge,
            opened: registry.counter(
                metric_names::CIRCUIT_OPEN_TOTAL,
                "Times a sink's circuit breaker opened.",
                &labels,
            ),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// How long to wait before a request may be sent; zero when it may be
    /// sent now (which moves an expired open breaker to half-open).
    pub fn wait(&mut self, now: Instant) -> Duration {
        match self.state {
            BreakerState::Open(until) if now < until => until - now,
            BreakerState::Open(_) => {
                self.set(BreakerState::HalfOpen);
                Duration::ZERO
            }
            _ => Duration::ZERO,
        }
    }

    /// The target answered (accepted, or rejected the data itself).
    pub fn success(&mut self) {
        self.failures = 0;
        if self.state != BreakerState::Closed {
            self.set(BreakerState::Closed);
        }
    }

    /// The target failed (error, timeout, 5xx).
    pub fn failure(&mut self, now: Instant) {
        self.failures += 1;
        let trip = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.failures >= self.threshold,
            BreakerState::Open(_) => false,
        };
        if trip {
            self.opened.inc();
            self.set(BreakerState::Open(now + self.open_for));
        }
    }

    fn set(&mut self, state: BreakerState) {
        self.state = state;
        self.gauge.set(match state {
            BreakerState::Closed => 0,
            BreakerState::Open(_) => 1,
            BreakerState::HalfOpen => 2,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for cap in [100u64, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay();
            let cap = Duration::from_millis(cap);
            assert!(d >= cap / 2 && d <= cap, "{d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn breaker_opens_after_the_threshold_probes_and_closes() {
        let r = Registry::new();
        let mut br = Breaker::new(3, Duration::from_secs(10), &r, "s");
        let t0 = Instant::now();
        br.failure(t0);
        br.failure(t0);
        assert_eq!(br.state(), BreakerState::Closed);
        assert_eq!(br.wait(t0), Duration::ZERO);
        br.failure(t0);
        assert_eq!(br.state(), BreakerState::Open(t0 + Duration::from_secs(10)));
        assert_eq!(r.value("circuit_state", &[("sink", "s")]), Some(1));
        assert_eq!(br.wait(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        // Expired: one probe.
        assert_eq!(br.wait(t0 + Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(br.state(), BreakerState::HalfOpen);
        assert_eq!(r.value("circuit_state", &[("sink", "s")]), Some(2));
        // The probe fails: open again at once, not after three more.
        let t1 = t0 + Duration::from_secs(11);
        br.failure(t1);
        assert_eq!(br.state(), BreakerState::Open(t1 + Duration::from_secs(10)));
        assert_eq!(r.value("circuit_open_total", &[("sink", "s")]), Some(2));
        br.wait(t1 + Duration::from_secs(10));
        br.success();
        assert_eq!(br.state(), BreakerState::Closed);
        assert_eq!(r.value("circuit_state", &[("sink", "s")]), Some(0));
    }
}
