//! sluice's own counters, gauges and histograms: registered once when a component is
//! built (never looked up per event), bumped with one relaxed atomic add, and
//! rendered as Prometheus text or read back by name in tests and summaries.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
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

/// A gauge family whose members come and go (the most-behind files, say):
/// its owner replaces the whole set at once and keeps it bounded; each
/// member is one series, told apart by one label.
#[derive(Debug, Clone, Default)]
pub struct GaugeSet(Arc<Mutex<Vec<(String, i64)>>>);

impl GaugeSet {
    /// Make `members` (label value, value) the whole set.
    pub fn replace(&self, members: impl IntoIterator<Item = (String, i64)>) {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.clear();
        set.extend(members);
    }

    /// The members now, in the order they were given.
    pub fn members(&self) -> Vec<(String, i64)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One histogram's series (one label set): cumulative bucket counters in
/// the order of the bounds it was registered with, `+Inf` last, then the
/// sum and the count of observations. Whoever observes keeps them
/// consistent: `count` equals the `+Inf` bucket.
#[derive(Debug, Clone)]
pub struct HistogramSeries {
    /// `{name}_bucket{le=...}`, cumulative.
    pub buckets: Vec<Counter>,
    /// `{name}_sum`.
    pub sum: Counter,
    /// `{name}_count`.
    pub count: Counter,
}

#[derive(Debug, Clone)]
enum Metric {
    Counter(Counter),
    Gauge(Gauge),
    /// A series of a histogram family (`_bucket`, `_sum` or `_count`):
    /// a counter, rendered under the family's `histogram` TYPE.
    HistogramPart(Counter),
    /// Gauges whose members come and go, each labelled by the label named
    /// here.
    GaugeSet(GaugeSet, &'static str),
}

impl Metric {
    fn value(&self) -> i64 {
        match self {
            Metric::Counter(c) | Metric::HistogramPart(c) => c.get() as i64,
            Metric::Gauge(g) => g.get(),
            Metric::GaugeSet(s, _) => s.members().iter().map(|(_, v)| v).sum(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// The family's name (a histogram's, without the part's suffix).
    name: &'static str,
    /// `_bucket`, `_sum` or `_count` for a histogram's series; else empty.
    suffix: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    metric: Metric,
    /// What the stored integer is divided by when rendered (a histogram
    /// observed in milliseconds and exposed in seconds has 1000 on its
    /// `_sum`); 1 for everything else.
    divisor: u32,
}

impl Entry {
    /// Whether this is series `name` (a histogram's with its suffix).
    fn is_named(&self, name: &str) -> bool {
        name.strip_prefix(self.name) == Some(self.suffix)
    }
}

/// The registered metrics, in registration order, and an index by series.
#[derive(Debug, Default)]
struct Entries {
    list: Vec<Entry>,
    /// Hash of (name, labels) → positions in `list` with that hash. A
    /// linear search made registration quadratic: 20 services with 200
    /// route templates each (13 histogram counters per template) took 13 s.
    by_series: HashMap<u64, Vec<usize>>,
}

impl Entries {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Entry> {
        self.by_series
            .get(&series_hash(name, labels.iter().copied()))?
            .iter()
            .map(|&i| &self.list[i])
            .find(|e| e.is_named(name) && same_labels(&e.labels, labels))
    }

    fn push(&mut self, e: Entry) {
        let name = format!("{}{}", e.name, e.suffix);
        let h = series_hash(&name, e.labels.iter().map(|(k, v)| (*k, v.as_str())));
        self.by_series.entry(h).or_default().push(self.list.len());
        self.list.push(e);
    }
}

/// A series' index key: stored labels and looked-up labels hash alike.
fn series_hash<'a>(name: &str, labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    labels.len().hash(&mut h);
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

/// All metrics of one running pipeline.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    entries: Arc<Mutex<Entries>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The counter `name{labels}`, created on first use.
    pub fn counter(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let mut entries = self.entries.lock().expect("metrics lock");
        // A histogram's `_count` (or `_sum`, `_bucket`) asked for as a
        // counter is that series, not a second one of the same name.
        if let Some(Metric::Counter(c) | Metric::HistogramPart(c)) = entries.find(name, labels).map(|e| &e.metric) {
            return c.clone();
        }
        let c = Counter::default();
        entries.push(entry(name, help, labels, Metric::Counter(c.clone())));
        c
    }

    /// Expose `counter` also as the series `name{labels}`: one number
    /// under a second name. A series already registered under that name
    /// keeps its own counter.
    pub fn alias_counter(
        &self,
        counter: &Counter,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) {
        let mut entries = self.entries.lock().expect("metrics lock");
        if entries.find(name, labels).is_none() {
            entries.push(entry(name, help, labels, Metric::Counter(counter.clone())));
        }
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        let mut entries = self.entries.lock().expect("metrics lock");
        if let Some(Metric::Gauge(g)) = entries.find(name, labels).map(|e| &e.metric) {
            return g.clone();
        }
        let g = Gauge::default();
        entries.push(entry(name, help, labels, Metric::Gauge(g.clone())));
        g
    }

    /// The gauge set `name{labels,<member_label>=...}`, created on first
    /// use.
    pub fn gauge_set(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        member_label: &'static str,
    ) -> GaugeSet {
        let mut entries = self.entries.lock().expect("metrics lock");
        if let Some(Metric::GaugeSet(s, _)) = entries.find(name, labels).map(|e| &e.metric) {
            return s.clone();
        }
        let s = GaugeSet::default();
        entries.push(entry(name, help, labels, Metric::GaugeSet(s.clone(), member_label)));
        s
    }

    /// The histogram `name{labels}` with buckets at `bounds` (ascending;
    /// `+Inf` is added), created on first use. Its series are
    /// `name_bucket{labels,le}`, `name_sum{labels}` and `name_count{labels}`.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds: &[f64],
    ) -> HistogramSeries {
        self.histogram_scaled(name, help, labels, bounds, 1)
    }

    /// A histogram observed in whole milliseconds (integer sums are one
    /// atomic add) and exposed in seconds, Prometheus's base unit: `name`
    /// should end in `_seconds`; `bounds_ms` are in milliseconds.
    pub fn histogram_ms_as_seconds(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds_ms: &[f64],
    ) -> HistogramSeries {
        self.histogram_scaled(name, help, labels, bounds_ms, 1000)
    }

    fn histogram_scaled(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds: &[f64],
        divisor: u32,
    ) -> HistogramSeries {
        let les: Vec<String> = bounds
            .iter()
            .map(|b| (b / f64::from(divisor)).to_string())
            .chain(["+Inf".to_string()])
            .collect();
        let mut entries = self.entries.lock().expect("metrics lock");
        let mut part = |suffix: &'static str, le: Option<&str>| {
            let mut all: Vec<(&'static str, &str)> = labels.to_vec();
            all.extend(le.map(|le| ("le", le)));
            let full = format!("{name}{suffix}");
            if let Some(Metric::HistogramPart(c)) = entries.find(&full, &all).map(|e| &e.metric) {
                return c.clone();
            }
            let c = Counter::default();
            let mut e = entry(name, help, &all, Metric::HistogramPart(c.clone()));
            e.suffix = suffix;
            if suffix == "_sum" {
                e.divisor = divisor;
            }
            entries.push(e);
            c
        };
        let buckets = les.iter().map(|le| part("_bucket", Some(le))).collect();
        let sum = part("_sum", None);
        let count = part("_count", None);
        HistogramSeries { buckets, sum, count }
    }

    /// Current value of series `name{labels}` (a histogram's with its
    /// `_bucket`, `_sum` or `_count` suffix), if registered.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let entries = self.entries.lock().expect("metrics lock");
        entries.find(name, labels).map(|e| e.metric.value())
    }

    /// Sum of a counter over all its label sets.
    pub fn total(&self, name: &str) -> u64 {
        let entries = self.entries.lock().expect("metrics lock");
        entries
            .list
            .iter()
            .filter(|e| e.is_named(name))
            .map(|e| e.metric.value().max(0) as u64)
            .sum()
    }

    /// Every metric as `(name{labels}, value)`, in registration order.
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        let entries = self.entries.lock().expect("metrics lock");
        entries.list.iter().map(|e| (series(e), e.metric.value())).collect()
    }

    /// Every series of metric `name` (a histogram's with its suffix): its
    /// labels and value, in registration order.
    pub fn series_of(&self, name: &str) -> Vec<(Vec<(&'static str, String)>, i64)> {
        let entries = self.entries.lock().expect("metrics lock");
        entries
            .list
            .iter()
            .filter(|e| e.is_named(name))
            .map(|e| (e.labels.clone(), e.metric.value()))
            .collect()
    }

    /// The Prometheus text exposition of every metric, prefixed `sluice_`.
    pub fn render_prometheus(&self) -> String {
        let entries = self.entries.lock().expect("metrics lock");
        // The exposition format wants each metric's series together, under
        // one HELP and TYPE: families in the order their first series was
        // registered, series within a family in registration order.
        let mut family_rank: HashMap<&str, usize> = HashMap::new();
        for e in &entries.list {
            let next = family_rank.len();
            family_rank.entry(e.name).or_insert(next);
        }
        let mut order: Vec<&Entry> = entries.list.iter().collect();
        order.sort_by_key(|e| family_rank[e.name]);
        let mut out = String::new();
        let mut family = None;
        for e in order {
            if family != Some(e.name) {
                family = Some(e.name);
                let kind = match e.metric {
                    Metric::Counter(_) => "counter",
                    Metric::Gauge(_) | Metric::GaugeSet(..) => "gauge",
                    Metric::HistogramPart(_) => "histogram",
                };
                let _ = writeln!(out, "# HELP sluice_{} {}", e.name, e.help);
                let _ = writeln!(out, "# TYPE sluice_{} {}", e.name, kind);
            }
            if let Metric::GaugeSet(set, member_label) = &e.metric {
                for (member, value) in set.members() {
                    let mut labels = e.labels.clone();
                    labels.push((member_label, member));
                    let _ = writeln!(out, "sluice_{} {value}", series_with(e.name, e.suffix, &labels));
                }
                continue;
            }
            let value = e.metric.value();
            if e.divisor > 1 {
                let _ = writeln!(out, "sluice_{} {}", series(e), value as f64 / f64::from(e.divisor));
            } else {
                let _ = writeln!(out, "sluice_{} {}", series(e), value);
            }
        }
        out
    }
}

fn entry(name: &'static str, help: &'static str, labels: &[(&'static str, &str)], metric: Metric) -> Entry {
    Entry {
        name,
        suffix: "",
        help,
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        metric,
        divisor: 1,
    }
}

fn same_labels(have: &[(&'static str, String)], want: &[(&str, &str)]) -> bool {
    have.len() == want.len() && have.iter().zip(want).all(|((hk, hv), (wk, wv))| hk == wk && hv == wv)
}

fn series(e: &Entry) -> String {
    series_with(e.name, e.suffix, &e.labels)
}

fn series_with(name: &str, suffix: &str, labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return format!("{name}{suffix}");
    }
    let mut s = format!("{name}{suffix}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
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
    fn a_gauge_set_renders_its_members_now_and_forgets_the_ones_replaced() {
        let r = Registry::new();
        let set = r.gauge_set("file_lag_by_file_bytes", "Lag by file.", &[("source", "pods")], "file");
        set.replace([("/a.log".to_string(), 5), ("/b\"q.log".to_string(), 2)]);
        assert_eq!(
            r.render_prometheus(),
            "# HELP sluice_file_lag_by_file_bytes Lag by file.\n# TYPE sluice_file_lag_by_file_bytes gauge\n\
             sluice_file_lag_by_file_bytes{source=\"pods\",file=\"/a.log\"} 5\n\
             sluice_file_lag_by_file_bytes{source=\"pods\",file=\"/b\\\"q.log\"} 2\n"
        );
        set.replace([("/c.log".to_string(), 1)]);
        assert!(r.render_prometheus().ends_with("{source=\"pods\",file=\"/c.log\"} 1\n"));
        assert_eq!(r.value("file_lag_by_file_bytes", &[("source", "pods")]), Some(1));
    }

    #[test]
    fn an_alias_is_the_same_number_under_a_second_name_registered_once() {
        let r = Registry::new();
        let events = r.counter("events_in_total", "Events read.", &[("source", "in")]);
        r.alias_counter(
            &events,
            "component_received_events_total",
            "In.",
            &[("component", "in")],
        );
        // Registering it again (a reload) adds no second series.
        r.alias_counter(
            &events,
            "component_received_events_total",
            "In.",
            &[("component", "in")],
        );
        events.add(3);
        assert_eq!(
            r.value("component_received_events_total", &[("component", "in")]),
            Some(3)
        );
        assert_eq!(
            r.render_prometheus(),
            "# HELP sluice_events_in_total Events read.\n# TYPE sluice_events_in_total counter\n\
             sluice_events_in_total{source=\"in\"} 3\n\
             # HELP sluice_component_received_events_total In.\n# TYPE sluice_component_received_events_total counter\n\
             sluice_component_received_events_total{component=\"in\"} 3\n"
        );
    }

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

    #[test]
    fn a_family_registered_in_turns_is_rendered_as_one_group() {
        let r = Registry::new();
        for route in ["/a", "/b"] {
            r.counter("duration_bucket", "Latency.", &[("route", route)]).inc();
            r.counter("duration_sum", "Latency sum.", &[("route", route)]).add(7);
        }
        assert_eq!(
            r.render_prometheus(),
            "# HELP sluice_duration_bucket Latency.\n# TYPE sluice_duration_bucket counter\n\
             sluice_duration_bucket{route=\"/a\"} 1\nsluice_duration_bucket{route=\"/b\"} 1\n\
             # HELP sluice_duration_sum Latency sum.\n# TYPE sluice_duration_sum counter\n\
             sluice_duration_sum{route=\"/a\"} 7\nsluice_duration_sum{route=\"/b\"} 7\n"
        );
    }

    #[test]
    fn a_histogram_is_one_family_of_buckets_sum_and_count() {
        let r = Registry::new();
        for (route, n) in [("/a", 1), ("/b", 2)] {
            let h = r.histogram("latency_ms", "Latency.", &[("route", route)], &[2.5, 5.0]);
            h.buckets[1].add(n);
            h.buckets[2].add(n);
            h.sum.add(3 * n);
            h.count.add(n);
        }
        // The same histogram again shares its counters.
        r.histogram("latency_ms", "Latency.", &[("route", "/a")], &[2.5, 5.0])
            .count
            .add(10);
        r.counter("other_total", "Other.", &[]).inc();
        assert_eq!(
            r.render_prometheus(),
            "# HELP sluice_latency_ms Latency.\n# TYPE sluice_latency_ms histogram\n\
             sluice_latency_ms_bucket{route=\"/a\",le=\"2.5\"} 0\n\
             sluice_latency_ms_bucket{route=\"/a\",le=\"5\"} 1\n\
             sluice_latency_ms_bucket{route=\"/a\",le=\"+Inf\"} 1\n\
             sluice_latency_ms_sum{route=\"/a\"} 3\nsluice_latency_ms_count{route=\"/a\"} 11\n\
             sluice_latency_ms_bucket{route=\"/b\",le=\"2.5\"} 0\n\
             sluice_latency_ms_bucket{route=\"/b\",le=\"5\"} 2\n\
             sluice_latency_ms_bucket{route=\"/b\",le=\"+Inf\"} 2\n\
             sluice_latency_ms_sum{route=\"/b\"} 6\nsluice_latency_ms_count{route=\"/b\"} 2\n\
             # HELP sluice_other_total Other.\n# TYPE sluice_other_total counter\nsluice_other_total 1\n"
        );
        assert_eq!(r.value("latency_ms_count", &[("route", "/a")]), Some(11));
        assert_eq!(
            r.value("latency_ms_bucket", &[("route", "/b"), ("le", "+Inf")]),
            Some(2)
        );
        assert_eq!(r.value("latency_ms", &[("route", "/b")]), None);
        // The same series asked for as a counter is the histogram's.
        r.counter("latency_ms_count", "Latency.", &[("route", "/b")]).add(5);
        assert_eq!(r.value("latency_ms_count", &[("route", "/b")]), Some(7));
        assert_eq!(r.total("latency_ms_sum"), 9);
        assert_eq!(r.snapshot().len(), 11);
    }

    #[test]
    fn many_series_of_one_name_are_found_by_their_labels() {
        let r = Registry::new();
        for i in 0..5000 {
            r.counter("hits_total", "Hits.", &[("route", &format!("/r{i}")), ("le", "5")])
                .add(i);
        }
        // The same series again is the same counter, not a new one.
        r.counter("hits_total", "Hits.", &[("route", "/r4321"), ("le", "5")])
            .add(1);
        assert_eq!(r.value("hits_total", &[("route", "/r4321"), ("le", "5")]), Some(4322));
        assert_eq!(r.value("hits_total", &[("route", "/r4321")]), None);
        assert_eq!(r.value("hits_total", &[("le", "5"), ("route", "/r4321")]), None);
        assert_eq!(r.snapshot().len(), 5000);
        assert_eq!(r.total("hits_total"), (0..5000).sum::<u64>() + 1);
    }
}
