//! Liveness and readiness, judged from what the components publish.
//!
//! * **Live** while no stage has spent `stall_after` on one batch (its
//!   `stage_busy_since_seconds` gauge). A stage waiting for input or for
//!   room downstream is not busy: backpressure is not a hang.
//! * **Ready** once every source and sink was started, until the run
//!   drains (shutdown fired), and while no sink has its breaker open *and*
//!   its buffer nearly full ([`FULL_AT`]): such a sink can take nothing
//!   more, and a new pod or a load balancer should know.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_core::metric_names;

use crate::AdminState;

/// The default of `admin.stall_after`, in seconds.
pub const STALL_AFTER_SECS: u64 = 30;

/// A buffer this full (of its `max_bytes`) counts as full: the next
/// request batch may not fit.
pub const FULL_AT: f64 = 0.9;

/// A verdict and the reason per component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether the check passes (200) or not (503).
    pub ok: bool,
    /// `ok`, `starting`, `draining`, `stalled` or `not_ready`.
    pub status: &'static str,
    /// (component, what it says), in a stable order.
    pub components: Vec<(String, String)>,
}

impl Health {
    /// `{"status":"ok","components":{"stage parse":"ok",...}}`
    pub fn to_json(&self) -> String {
        let components: serde_json::Map<String, serde_json::Value> = self
            .components
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut s = serde_json::json!({"status": self.status, "components": components}).to_string();
        s.push('\n');
        s
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn label<'a>(labels: &'a [(&'static str, String)], key: &str) -> &'a str {
    labels.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v.as_str())
}

/// Whether the stage threads still make progress.
pub fn liveness(state: &AdminState, stall_after: Duration) -> Health {
    let now = now_secs();
    let mut ok = true;
    let mut components = Vec::new();
    for (labels, since) in state.registry.series_of(metric_names::STAGE_BUSY_SINCE_SECONDS) {
        let stage = label(&labels, "stage");
        let busy = if since > 0 { now - since } else { 0 };
        let says = if busy >= stall_after.as_secs() as i64 {
            ok = false;
            format!("stalled: on one batch for {busy}s")
        } else if since > 0 {
            "working".to_string()
        } else {
            "waiting".to_string()
        };
        components.push((format!("stage {stage}"), says));
    }
    Health {
        ok,
        status: if ok { "ok" } else { "stalled" },
        components,
    }
}

/// Whether the run can take data.
pub fn readiness(state: &AdminState) -> Health {
    if state.shutdown.is_triggered() {
        return Health {
            ok: false,
            status: "draining",
            components: Vec::new(),
        };
    }
    if !state.is_started() {
        return Health {
            ok: false,
            status: "starting",
            components: Vec::new(),
        };
    }
    let r = &state.registry;
    let mut ok = true;
    let mut components = Vec::new();
    let breakers = r.series_of(metric_names::CIRCUIT_STATE);
    let limits = r.series_of(metric_names::BUFFER_MAX_BYTES);
    for (labels, held) in r.series_of(metric_names::BUFFER_BYTES) {
        let sink = label(&labels, "sink").to_string();
        let max = limits
            .iter()
            .find(|(l, _)| label(l, "sink") == sink)
            .map_or(i64::MAX, |(_, v)| *v);
        let open = breakers.iter().any(|(l, v)| label(l, "sink") == sink && *v == 1);
        let full = held as f64 >= max as f64 * FULL_AT;
        let says = match (open, full) {
            (true, true) => {
                ok = false;
                format!("target failing (breaker open) and buffer full ({held} of {max} bytes)")
            }
            (true, false) => format!("target failing (breaker open); buffering ({held} of {max} bytes)"),
            (false, _) => "ok".to_string(),
        };
        components.push((format!("sink {sink}"), says));
    }
    Health {
        ok,
        status: if ok { "ok" } else { "not_ready" },
        components,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Registry, Shutdown};

    #[test]
    fn ready_only_between_start_and_drain_and_not_while_a_sink_is_stuck() {
        let r = Registry::new();
        let state = AdminState::new(r.clone(), Shutdown::new(), Duration::from_secs(30));
        assert_eq!(readiness(&state).status, "starting");
        state.mark_started();
        let held = r.gauge(metric_names::BUFFER_BYTES, "h", &[("sink", "ch")]);
        r.gauge(metric_names::BUFFER_MAX_BYTES, "h", &[("sink", "ch")])
            .set(1000);
        let breaker = r.gauge(metric_names::CIRCUIT_STATE, "h", &[("sink", "ch")]);
        assert_eq!(
            readiness(&state),
            Health {
                ok: true,
                status: "ok",
                components: vec![("sink ch".into(), "ok".into())]
            }
        );
        breaker.set(1);
        held.set(899);
        assert!(readiness(&state).ok, "breaker open, buffer with room");
        held.set(900);
        assert_eq!(
            readiness(&state).to_json(),
            "{\"components\":{\"sink ch\":\"target failing (breaker open) and buffer full (900 of 1000 bytes)\"},\"status\":\"not_ready\"}\n"
        );
        breaker.set(2);
        assert!(readiness(&state).ok, "half-open: probing");
        state.shutdown.trigger();
        assert_eq!(readiness(&state).status, "draining");
    }

    #[test]
    fn live_until_a_stage_holds_one_batch_too_long() {
        let r = Registry::new();
        let state = AdminState::new(r.clone(), Shutdown::new(), Duration::from_secs(30));
        let parse = r.gauge(metric_names::STAGE_BUSY_SINCE_SECONDS, "b", &[("stage", "parse")]);
        r.gauge(metric_names::STAGE_BUSY_SINCE_SECONDS, "b", &[("stage", "budget")]);
        let stall = Duration::from_secs(30);
        assert!(liveness(&state, stall).ok);
        parse.set(now_secs() - 5);
        assert_eq!(
            liveness(&state, stall).components,
            [
                ("stage parse".to_string(), "working".to_string()),
                ("stage budget".into(), "waiting".into())
            ]
        );
        parse.set(now_secs() - 31);
        let h = liveness(&state, stall);
        assert!(!h.ok);
        assert_eq!(h.status, "stalled");
        assert!(
            h.components[0].1.starts_with("stalled: on one batch for 3"),
            "{:?}",
            h.components
        );
    }
}
