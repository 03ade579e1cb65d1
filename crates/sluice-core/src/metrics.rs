//! sluice's own counters and gauges: registered once when a component is
//! built (never looked up per event), bumped with one relaxed atomic add, and
//! rendered as Prometheus text or read back by name in tests and summaries.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Set the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
}

#[derive(Debug)]
struct Entry {
    name: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    metric: Metric,
}

/// All metrics of one running pipeline.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The counter `name{labels}`, created on first use.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let mut entries = self.entries.lock().expect("metrics lock");
        if let Some(Metric::Counter(c)) = find(&entries, name, labels) {
            return c.clone();
        }
        let c = Counter::default();
        entries.push(entry(name, help, labels, Metric::Counter(c.clone())));
        c
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        let mut entries = self.entries.lock().expect("metrics lock");
        if let Some(Metric::Gauge(g)) = find(&entries, name, labels) {
            return g.clone();
        }
        let g = Gauge::default();
        entries.push(entry(name, help, labels, Metric::Gauge(g.clone())));
        g
    }

    /// Current value of `name{labels}` (counters and gauges), if registered.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let entries = self.entries.lock().expect("metrics lock");
        entries
            .iter()
            .find(|e| e.name == name && same_labels(&e.labels, labels))
            .map(|e| match &e.metric {
                Metric::Counter(c) => c.get() as i64,
                Metric::Gauge(g) => g.get(),
            })
    }

    /// Sum of a counter over all its label sets.
    pub fn total(&self, name: &str) -> u64 {
        let entries = self.entries.lock().expect("metrics lock");
        entries
            .iter()
            .filter(|e| e.name == name)
            .map(|e| match &e.metric {
                Metric::Counter(c) => c.get(),
                Metric::Gauge(g) => g.get().max(0) as u64,
            })
            .sum()
    }

    /// Every metric as `(name{labels}, value)`, in registration order.
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        let entries = self.entries.lock().expect("metrics lock");
        entries
            .iter()
            .map(|e| {
                let v = match &e.metric {
                    Metric::Counter(c) => c.get() as i64,
                    Metric::Gauge(g) => g.get(),
                };
                (series(e), v)
            })
            .collect()
    }

    /// The Prometheus text exposition of every metric, prefixed `sluice_`.
    pub fn render_prometheus(&self) -> String {
        let entries = self.entries.lock().expect("metrics lock");
        let mut out = String::new();
        let mut described: Vec<&str> = Vec::new();
        for e in entries.iter() {
            if !described.contains(&e.name) {
                described.push(e.name);
                let kind = match e.metric {
                    Metric::Counter(_) => "counter",
                    Metric::Gauge(_) => "gauge",
                };
                let _ = writeln!(out, "# HELP sluice_{} {}", e.name, e.help);
                let _ = writeln!(out, "# TYPE sluice_{} {}", e.name, kind);
            }
            let v = match &e.metric {
                Metric::Counter(c) => c.get() as i64,
                Metric::Gauge(g) => g.get(),
            };
            let _ = writeln!(out, "sluice_{} {}", series(e), v);
        }
        out
    }
}

fn entry(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], metric: Metric) -> Entry {
    Entry {
        name,
        help,
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        metric,
    }
}

fn find<'a>(entries: &'a [Entry], name: &str, labels: &[(&'static str, &str)]) -> Option<&'a Metric> {
    entries
        .iter()
        .find(|e| e.name == name && same_labels(&e.labels, labels))
        .map(|e| &e.metric)
}

fn same_labels(have: &[(&'static str, String)], want: &[(&str, &str)]) -> bool {
    have.len() == want.len() && have.iter().zip(want).all(|((hk, hv), (wk, wv))| hk == wk && hv == wv)
}

fn series(e: &Entry) -> String {
    if e.labels.is_empty() {
        return e.name.to_string();
    }
    let mut s = format!("{}{{", e.name);
    for (i, (k, v)) in e.labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{escaped}\"");
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_name_and_labels() {
        let r = Registry::new();
        let a = r.counter(
            "parse_errors_total",
            "Lines kept as text.",
            &[("reason", "invalid_json")],
        );
        let b = r.counter(
            "parse_errors_total",
            "Lines kept as text.",
            &[("reason", "invalid_json")],
        );
        let c = r.counter(
            "parse_errors_total",
            "Lines kept as text.",
            &[("reason", "invalid_utf8")],
        );
        a.inc();
        b.add(2);
        c.inc();
        assert_eq!(r.value("parse_errors_total", &[("reason", "invalid_json")]), Some(3));
        assert_eq!(r.total("parse_errors_total"), 4);
        assert_eq!(r.value("nope", &[]), None);
    }

    #[test]
    fn prometheus_text_is_well_formed() {
        let r = Registry::new();
        r.counter("events_in_total", "Events read.", &[("source", "std\"in")])
            .add(5);
        r.gauge("queue_depth", "Batches waiting.", &[]).set(-1);
        assert_eq!(
            r.render_prometheus(),
            "# HELP sluice_events_in_total Events read.\n# TYPE sluice_events_in_total counter\n\
             sluice_events_in_total{source=\"std\\\"in\"} 5\n\
             # HELP sluice_queue_depth Batches waiting.\n# TYPE sluice_queue_depth gauge\nsluice_queue_depth -1\n"
        );
    }
}
