//! What a target said about a request, in the three classes every sink
//! maps its answers onto (README, "When a target refuses"):
//!
//! * **record-level refusal** ([`SendResult::Rejected`], the `rejected`
//!   items of [`SendResult::Partial`]): the target blames these records;
//!   they are dead-lettered once found;
//! * **target unavailable or misconfigured** ([`FailureKind::Auth`],
//!   [`FailureKind::Missing`], [`FailureKind::Refusing`]): the target
//!   refuses everyone, whatever the records: retried with backoff, the data
//!   waits in the buffer, the operator is told what to fix;
//! * **transient** ([`FailureKind::Throttled`], [`FailureKind::Server`],
//!   [`FailureKind::Connection`], [`FailureKind::Timeout`]): retried the
//!   same way.
//!
//! Only the first class ever dead-letters. This module also owns how a
//! failing target is reported ([`TargetHealth`]): one log line when an
//! episode starts or changes, a reminder at most once a minute, one line
//! when it ends, and `sink_target_errors_total{sink,kind}` per request.

use std::time::{Duration, Instant};

use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::{Counter, Gauge, Registry};

/// What a target said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Every record was stored.
    Accepted,
    /// The target judged record by record (Elasticsearch `_bulk`, Kafka):
    /// records at the indices in `retry` were not stored and go again,
    /// those in `rejected` were refused for themselves (with the reason);
    /// the rest were stored.
    Partial {
        /// Indices (into the request's records) to send again.
        retry: Vec<usize>,
        /// Indices refused for good, with the target's reason.
        rejected: Vec<(usize, String)>,
        /// Why the `retry` records failed when the cause is the target
        /// (an index that does not exist, a read-only block, credentials),
        /// reported and paced as a whole-request failure; `None` when they
        /// failed transiently.
        failure: Option<Failure>,
    },
    /// The target refused the whole request as bad data (a 4xx); some
    /// record in it is at fault and is searched for by splitting.
    Rejected(Rejection),
    /// The whole request failed and nothing was stored; no record is at
    /// fault. Retried, never dead-lettered.
    Failed(Failure),
}

impl SendResult {
    /// A whole-request failure of `kind`.
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> SendResult {
        SendResult::Failed(Failure {
            kind,
            reason: reason.into(),
        })
    }

    /// A refusal of the request's data.
    pub fn rejected(blame: Blame, reason: impl Into<String>) -> SendResult {
        SendResult::Rejected(Rejection {
            reason: reason.into(),
            blame,
        })
    }
}

/// A refusal of a request's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The target's words.
    pub reason: String,
    /// How sure it is that the data is at fault.
    pub blame: Blame,
}

/// How sure a refusal is that the records, not the target, are at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The target's answer names a data error (a ClickHouse parse or type
    /// error code, an Elasticsearch mapping error).
    Record,
    /// A 4xx whose answer does not say: when every record of a request is
    /// refused for the same such reason, the target is treated as
    /// misconfigured instead ([`FailureKind::Refusing`]).
    Unclear,
}

/// A whole-request failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its class.
    pub kind: FailureKind,
    /// The target's words (or the transport's).
    pub reason: String,
}

/// Why a target could not take a request. Every kind is retried with
/// backoff and opens the breaker; none dead-letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Credentials refused or a grant missing (HTTP 401/403, ClickHouse's
    /// auth and access codes, Kafka's authorization errors).
    Auth,
    /// The table, database, index, endpoint or topic does not exist
    /// (HTTP 404, ClickHouse's unknown table/database, an unknown topic).
    Missing,
    /// The target is up but refuses every write: read-only, quota, too
    /// many parts, a blocked index, a setting or query it does not accept,
    /// or every record refused for one unexplained reason.
    Refusing,
    /// The target asks to slow down (HTTP 429).
    Throttled,
    /// A server error (5xx) or an answer that cannot be read.
    Server,
    /// No connection, or it broke mid-request.
    Connection,
    /// No answer within `request_timeout`.
    Timeout,
}

impl FailureKind {
    /// Every kind, in label order.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Auth,
        FailureKind::Missing,
        FailureKind::Refusing,
        FailureKind::Throttled,
        FailureKind::Server,
        FailureKind::Connection,
        FailureKind::Timeout,
    ];

    /// The `kind` label of `sink_target_errors_total`.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Auth => "auth",
            FailureKind::Missing => "missing",
            FailureKind::Refusing => "refusing",
            FailureKind::Throttled => "throttled",
            FailureKind::Server => "server",
            FailureKind::Connection => "connection",
            FailureKind::Timeout => "timeout",
        }
    }

    /// What the operator should do, for the log line.
    pub fn advice(self) -> &'static str {
        match self {
            FailureKind::Auth => "check the sink's credentials and the user's grants; data is held in the buffer and retried",
            FailureKind::Missing => "create the table, database, index or topic, or correct the sink's configuration; data is held in the buffer and retried",
            FailureKind::Refusing => "the target refuses all writes (read-only, quota, overload or a setting); data is held in the buffer and retried",
            FailureKind::Throttled | FailureKind::Server | FailureKind::Connection | FailureKind::Timeout => {
                "data is held in the buffer and retried until the target answers"
            }
        }
    }

    /// Whether an operator must act (as opposed to waiting it out).
    pub fn needs_operator(self) -> bool {
        matches!(self, FailureKind::Auth | FailureKind::Missing | FailureKind::Refusing)
    }
}

/// How often a continuing failure is logged again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// A failing target, as the sink reports it. See the module docs.
pub struct TargetHealth {
    sink: String,
    errors: [Counter; FailureKind::ALL.len()],
    failing: Gauge,
    episode: Option<Episode>,
}

struct Episode {
    since: Instant,
    kind: FailureKind,
    failures: u64,
    logged_at: Instant,
}

impl TargetHealth {
    /// The reporter of sink `sink`.
    pub fn new(registry: &Registry, sink: &str) -> TargetHealth {
        let errors = FailureKind::ALL.map(|k| {
            registry.counter(
                "sink_target_errors_total",
                "Requests a target failed as a whole (it was unavailable, misconfigured or erring), by kind; the data was kept and retried.",
                &[("sink", sink), ("kind", k.label())],
            )
        });
        for (k, c) in FailureKind::ALL.iter().zip(&errors) {
            component_metrics::errors(registry, ComponentKind::Sink, sink, k.label(), c);
        }
        let failing = registry.gauge(
            "sink_target_failing",
            "1 while a sink's last request failed as a whole (the target is down or refuses everyone), else 0.",
            &[("sink", sink)],
        );
        failing.set(0);
        TargetHealth {
            sink: sink.to_string(),
            errors,
            failing,
            episode: None,
        }
    }

    /// Whether the last request failed as a whole.
    pub fn is_failing(&self) -> bool {
        self.episode.is_some()
    }

    /// A request failed as a whole; `retry_in` is the wait before the next.
    pub fn failed(&mut self, failure: &Failure, retry_in: Duration, now: Instant) {
        let kind = failure.kind;
        self.errors[kind as usize].inc();
        self.failing.set(1);
        let log = match &mut self.episode {
            None => {
                self.episode = Some(Episode {
                    since: now,
                    kind,
                    failures: 1,
                    logged_at: now,
                });
                true
            }
            Some(e) => {
                e.failures += 1;
                let changed = e.kind != kind;
                e.kind = kind;
                if changed || now.duration_since(e.logged_at) >= REMIND_EVERY {
                    e.logged_at = now;
                    true
                } else {
                    false
                }
            }
        };
        if !log {
            return;
        }
        let e = self.episode.as_ref().expect("set above");
        let failing_for = humantime::format_duration(Duration::from_secs(now.duration_since(e.since).as_secs()));
        let (failures, reason, advice) = (e.failures, failure.reason.as_str(), kind.advice());
        if kind.needs_operator() {
            tracing::error!(sink = %self.sink, kind = kind.label(), reason, failures, %failing_for, ?retry_in,
                "target refuses every request: {advice}");
        } else {
            tracing::warn!(sink = %self.sink, kind = kind.label(), reason, failures, %failing_for, ?retry_in,
                "target unavailable: {advice}");
        }
    }

    /// A request went through (stored, or refused record by record).
    pub fn answered(&mut self, now: Instant) {
        if let Some(e) = self.episode.take() {
            self.failing.set(0);
            let failing_for = humantime::format_duration(Duration::from_secs(now.duration_since(e.since).as_secs()));
            tracing::info!(sink = %self.sink, failures = e.failures, %failing_for, "target takes requests again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_counted_under_its_label_and_the_gauge_follows_the_episode() {
        let r = Registry::new();
        let mut h = TargetHealth::new(&r, "ch");
        let t0 = Instant::now();
        for kind in FailureKind::ALL {
            assert_eq!(
                r.value("sink_target_errors_total", &[("sink", "ch"), ("kind", kind.label())]),
                Some(0)
            );
        }
        let auth = Failure {
            kind: FailureKind::Auth,
            reason: "HTTP 401: Code: 193, e.displayText() = DB::Exception: Wrong password".into(),
        };
        h.failed(&auth, Duration::from_secs(1), t0);
        h.failed(&auth, Duration::from_secs(2), t0 + Duration::from_secs(1));
        h.failed(
            &Failure {
                kind: FailureKind::Connection,
                reason: "connection refused".into(),
            },
            Duration::from_secs(1),
            t0 + Duration::from_secs(2),
        );
        assert!(h.is_failing());
        assert_eq!(
            r.value("sink_target_errors_total", &[("sink", "ch"), ("kind", "auth")]),
            Some(2)
        );
        assert_eq!(
            r.value("sink_target_errors_total", &[("sink", "ch"), ("kind", "connection")]),
            Some(1)
        );
        assert_eq!(
            r.value("sink_target_errors_total", &[("sink", "ch"), ("kind", "missing")]),
            Some(0)
        );
        assert_eq!(r.value("sink_target_failing", &[("sink", "ch")]), Some(1));
        h.answered(t0 + Duration::from_secs(3));
        assert!(!h.is_failing());
        assert_eq!(r.value("sink_target_failing", &[("sink", "ch")]), Some(0));
    }
}
