//! Exact counts taken before sampling, so the metrics are not blinded by
//! it: events by service, class and level; events by status class; bytes
//! in, kept and dropped per service; latency histograms per service and route
//! template with the guide's buckets; and the current probability and spend.
//! Counted in plain arrays per service (no allocation per event), published
//! to the registry at most every [`PUBLISH_EVERY`] and when the stage ends:
//! publishing is an atomic add per counter and histogram bucket of every
//! route, which per batch cost 8% of the decisions; a scrape every few
//! seconds does not see the difference.

use sluice_core::metric_names;
use std::collections::HashMap;

use sluice_core::{Counter, Gauge, HistogramSeries, Registry};

use crate::classify::{Class, Facts, SlowThresholds, LEVELS, STATUSES};
use crate::key_cache::{Key, KeyCache};

/// The route cache's answer for a template past a service's 1000: counted,
/// without a histogram.
const NO_HIST: u32 = u32::MAX;

/// The guide's latency buckets, in milliseconds.
pub const BUCKETS_MS: [f64; 11] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Per octave `[2^k, 2^(k+1))` of milliseconds (k = 0..15, the last
/// open-ended): how many bounds lie below it, and the bound inside it (at
/// most one: each bound is at least twice the one before), or +Inf.
const OCTAVES: ([u8; 16], [f64; 16]) = {
    let (mut below, mut inside) = ([0u8; 16], [f64::INFINITY; 16]);
    let mut k = 0;
    while k < 16 {
        let (lo, hi) = ((1u64 << k) as f64, (1u64 << (k + 1)) as f64);
        let mut i = 0;
        while i < BUCKETS_MS.len() {
            let b = BUCKETS_MS[i];
            if b < lo {
                below[k] += 1;
            } else if b < hi || k == 15 {
                assert!(inside[k] == f64::INFINITY, "two bounds in one octave");
                inside[k] = b;
            }
            i += 1;
        }
        k += 1;
    }
    (below, inside)
};

/// The first bucket that holds `d` (index 11 is +Inf): the number of
/// bounds below it. The float's exponent is its octave, which holds at
/// most one bound, so that is two table reads and one compare (a search
/// of the bounds cost four dependent steps). NaN (a quoted "NaN") goes to
/// +Inf; below 1 ms, nothing is below.
#[inline]
fn bucket_of(d: f64) -> usize {
    if d.is_nan() {
        return BUCKETS_MS.len();
    }
    if d < 1.0 {
        return 0;
    }
    // d >= 1: the sign is clear and the biased exponent at least 1023.
    let k = ((d.to_bits() >> 52) as usize - 1023).min(15);
    usize::from(OCTAVES.0[k]) + usize::from(OCTAVES.1[k] < d)
}

/// The most one latency adds to a histogram's sum (about 31 years).
const MAX_SUMMED_MS: f64 = 1e12;

/// How stale the published counters may be while events flow.
pub const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

const CLASSES: [Class; 4] = [Class::Error, Class::Slow, Class::Debug, Class::Normal];
// `record` indexes the counts by `class as usize`: `Class` must be declared
// in `CLASSES` order.
const _: () = {
    let mut i = 0;
    while i < CLASSES.len() {
        assert!(CLASSES[i] as usize == i);
        i += 1;
    }
};
const BYTES: [&str; 3] = ["in", "kept", "dropped"];

struct Hist {
    pending: [u64; 12],
    /// Summed as a float (a float-to-integer conversion per event costs
    /// several instructions); whole milliseconds are published, the
    /// fraction carried to the next publish.
    pending_sum: f64,
    /// The route template's slow threshold.
    slow_ms: f64,
    /// `request_duration_seconds{service,route}` in the registry.
    series: HistogramSeries,
}

/// Where each count sits in a service's `pending` (and `counters`): events
/// by class and level, then by status class, then bytes in/kept/dropped.
const EVENTS_AT: usize = 0;
const STATUS_AT: usize = CLASSES.len() * LEVELS.len();
const BYTES_AT: usize = STATUS_AT + STATUSES.len();
const COUNTS: usize = BYTES_AT + BYTES.len();

/// One service's counters and what is not yet published.
struct ServiceStats {
    /// Counted since the last publish, laid out as `counters` (one flat
    /// array: an event's counts are three adds into it).
    pending: [u64; COUNTS],
    counters: Vec<Counter>,
    /// Route template → index into `hists`.
    routes: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    hists: Vec<Hist>,
    probability: Gauge,
    spent: Gauge,
    /// Fleet scope: the p this node would set alone (registered on first
    /// use, so node scope exposes no such series).
    local_probability: Option<Gauge>,
}

pub struct Stats {
    registry: Registry,
    services: Vec<ServiceStats>,
    /// Each ledger's labels: `service`, and `env`/`namespace` where budget
    /// overrides keep spend apart by them.
    labels: Vec<Vec<(&'static str, String)>>,
    /// (route template, service) → index into the service's `hists`, in
    /// front of its `routes`: 1024 slots (48 KiB); with 256, 20 services'
    /// routes missed 5% of lookups. The stage's pair cache answers first
    /// where services are not split by env or namespace; this one serves
    /// the split ledgers and the pair cache's misses.
    route_cache: KeyCache<1024>,
    /// Services counted since the last publish, and a mark per service.
    unpublished: Vec<usize>,
    unpublished_mark: Vec<bool>,
    last_publish: std::time::Instant,
}

/// A ledger's labels followed by `more`.
fn labelled<'a>(base: &'a [(&'static str, String)], more: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    base.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(more.iter().copied())
        .collect()
}

impl Stats {
    pub fn new(registry: &Registry) -> Stats {
        Stats {
            registry: registry.clone(),
            services: Vec::new(),
            labels: Vec::new(),
            route_cache: KeyCache::default(),
            unpublished: Vec::new(),
            unpublished_mark: Vec::new(),
            last_publish: std::time::Instant::now(),
        }
    }

    /// Register ledger number `id` (ids are dense, in order of first sight).
    pub fn add_service(&mut self, base: Vec<(&'static str, String)>, budget_bytes: u64) {
        let r = &self.registry;
        let s = labelled(&base, &[]);
        // What the dashboard compares spend with; unlimited reads as 0.
        r.gauge(
            "budget_limit_bytes",
            "The service's budget: bytes per window (0: no byte budget).",
            &s,
        )
        .set(i64::try_from(budget_bytes).unwrap_or(0));
        let mut counters: Vec<Counter> = CLASSES
            .iter()
            .flat_map(|c| LEVELS.iter().map(move |l| (c.label(), *l)))
            .map(|(c, l)| {
                r.counter(
                    metric_names::BUDGET_EVENTS_TOTAL,
                    "Events seen by the budget stage before sampling.",
                    &labelled(&base, &[("class", c), ("level", l)]),
                )
            })
            .collect();
        counters.extend(STATUSES.iter().map(|st| {
            r.counter(
                "budget_status_total",
                "Events by status class before sampling.",
                &labelled(&base, &[("status", st)]),
            )
        }));
        counters.extend(BYTES.iter().map(|k| {
            r.counter(
                "budget_bytes_total",
                "Bytes by service: in (before sampling), kept, dropped.",
                &labelled(&base, &[("kind", k)]),
            )
        }));
        debug_assert_eq!(counters.len(), COUNTS);
        self.services.push(ServiceStats {
            pending: [0; COUNTS],
            counters,
            routes: HashMap::default(),
            hists: Vec::new(),
            probability: r.gauge(
                "budget_keep_probability_ppm",
                "Keep-probability of normal events, parts per million.",
                &s,
            ),
            spent: r.gauge("budget_spent_bytes", "Bytes kept in the current window.", &s),
            local_probability: None,
        });
        self.labels.push(base);
        self.unpublished_mark.push(false);
    }

    /// Count one event before the decision; `route` is the index of its
    /// route template's histogram ([`Stats::route_index`]), when it has a
    /// duration. `decide` marks the service unpublished once per batch.
    #[inline]
    pub fn record(&mut self, id: usize, facts: &Facts, route: Option<u32>, size: u64) {
        let s = &mut self.services[id];
        s.pending[EVENTS_AT + facts.class as usize * LEVELS.len() + facts.level as usize] += 1;
        s.pending[STATUS_AT + facts.status as usize] += 1;
        s.pending[BYTES_AT] += size;
        let (Some(d), Some(route)) = (facts.duration_ms, route) else {
            return;
        };
        let h = &mut s.hists[route as usize];
        // Per bucket here; made cumulative when published.
        h.pending[bucket_of(d)] += 1;
        // NaN and negatives count 0; infinity a bounded amount, so the
        // float sum stays finite and its fraction exact.
        // (`clamp` would pass a NaN through.)
        h.pending_sum += if d > 0.0 { d.min(MAX_SUMMED_MS) } else { 0.0 };
    }

    /// The histogram index of route template `route` of service `id`
    /// (`key`: the template's cache key, none past 32 bytes), registering
    /// it on first sight with its slow threshold from `slow`; none once the
    /// service has 1000 templates (an unbounded set would be an id leak).
    #[inline]
    pub fn route_index(&mut self, id: usize, route: &[u8], key: Option<Key>, slow: &SlowThresholds) -> Option<u32> {
        match key.and_then(|k| self.route_cache.get(&k, id as u32)) {
            Some(NO_HIST) => None,
            Some(i) => Some(i),
            None => self.route_index_slow(id, route, key, slow),
        }
    }

    /// The slow threshold of service `id`'s route template `hist`.
    #[inline]
    pub fn slow_ms(&self, id: usize, hist: u32) -> f64 {
        self.services[id].hists[hist as usize].slow_ms
    }

    #[cold]
    fn route_index_slow(&mut self, id: usize, route: &[u8], key: Option<Key>, slow: &SlowThresholds) -> Option<u32> {
        let registry = &self.registry;
        let base = &self.labels[id];
        let s = &mut self.services[id];
        // A record's own `route` is meant to be a template already; one
        // that carries ids (`/v1/users/123`) is templated here, on the cold
        // path, so no id becomes a label (the caches keep the raw key).
        let template = crate::route::route_template(&String::from_utf8_lossy(route));
        let i = match s.routes.get(template.as_bytes()) {
            Some(&i) => i,
            // Cached as such, so a route past the cap is templated once,
            // not on every event that carries it.
            None if s.routes.len() >= 1000 => NO_HIST,
            None => {
                let series = registry.histogram_ms_as_seconds(
                    metric_names::REQUEST_DURATION_SECONDS,
                    "Request latency by route template, before sampling.",
                    &labelled(base, &[("route", template.as_str())]),
                    &BUCKETS_MS,
                );
                let i = s.hists.len() as u32;
                s.hists.push(Hist {
                    pending: [0; 12],
                    pending_sum: 0.0,
                    slow_ms: slow.of(id, template.as_bytes()),
                    series,
                });
                s.routes.insert(template.into_bytes().into(), i);
                i
            }
        };
        if let Some(k) = &key {
            self.route_cache.insert(k, id as u32, i);
        }
        (i != NO_HIST).then_some(i)
    }

    /// Count the decision.
    #[inline]
    pub fn decided(&mut self, id: usize, size: u64, kept: bool) {
        self.services[id].pending[BYTES_AT + 1 + usize::from(!kept)] += size;
    }

    /// Service `id` was counted since the last publish.
    pub fn touched(&mut self, id: usize) {
        if !self.unpublished_mark[id] {
            self.unpublished_mark[id] = true;
            self.unpublished.push(id);
        }
    }

    /// The service's current probability and spend.
    pub fn probability(&mut self, id: usize, p: f64, spent: f64) {
        let s = &self.services[id];
        s.probability.set((p * 1e6) as i64);
        s.spent.set(spent as i64);
    }

    /// Fleet scope: the keep-probability this node alone would set, beside
    /// the fleet's (`budget_keep_probability_ppm`).
    pub fn local_probability(&mut self, id: usize, p: f64) {
        let labels: Vec<(&'static str, &str)> = self.labels[id].iter().map(|(k, v)| (*k, v.as_str())).collect();
        let registry = &self.registry;
        let gauge = self.services[id].local_probability.get_or_insert_with(|| {
            registry.gauge(
                "budget_local_keep_probability_ppm",
                "Fleet scope: the keep-probability of normal events this node would set alone, parts per million.",
                &labels,
            )
        });
        gauge.set((p * 1e6) as i64);
    }

    /// Publish if [`PUBLISH_EVERY`] has passed since the last time.
    pub fn publish_if_due(&mut self) {
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish();
        }
    }

    /// Publish every locally counted number now.
    pub fn publish(&mut self) {
        for id in std::mem::take(&mut self.unpublished) {
            self.unpublished_mark[id] = false;
            self.publish_service(id);
        }
        self.last_publish = std::time::Instant::now();
    }

    /// Publish service `id`'s locally counted numbers.
    fn publish_service(&mut self, id: usize) {
        let s = &mut self.services[id];
        for (c, n) in s.counters.iter().zip(s.pending.iter_mut()) {
            if *n > 0 {
                c.add(std::mem::take(n));
            }
        }
        for h in s.hists.iter_mut() {
            let mut cumulative = 0;
            for (c, n) in h.series.buckets.iter().zip(h.pending.iter_mut()) {
                cumulative += std::mem::take(n);
                if cumulative > 0 {
                    c.add(cumulative);
                }
            }
            // The +Inf bucket is every observation.
            if cumulative > 0 {
                h.series.count.add(cumulative);
            }
            let whole = h.pending_sum.trunc();
            h.series.sum.add(whole as u64);
            h.pending_sum -= whole;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_first_bound_at_or_above() {
        let plain = |d: f64| BUCKETS_MS.iter().position(|b| d <= *b).unwrap_or(BUCKETS_MS.len());
        let mut ds = vec![f64::NEG_INFINITY, -1.0, 0.0, f64::INFINITY, 1e12];
        for b in BUCKETS_MS {
            ds.extend([b, b - 0.001, b + 0.001, b.next_down(), b.next_up()]);
        }
        for d in ds {
            assert_eq!(bucket_of(d), plain(d), "{d}");
        }
        assert_eq!(bucket_of(f64::NAN), 11);
        assert_eq!(bucket_of(5.0), 0);
        assert_eq!(bucket_of(5.5), 1);
        assert_eq!(bucket_of(10_000.0), 10);
        assert_eq!(bucket_of(10_000.5), 11);
        assert_eq!(bucket_of(-f64::NAN), 11);
        assert_eq!(bucket_of(f64::MIN_POSITIVE), 0);
        assert_eq!(bucket_of(16_384.0), 11);
        // Every integer millisecond up to past the last bound, and halves.
        for ms in 0..40_000u32 {
            for d in [f64::from(ms), f64::from(ms) + 0.5] {
                assert_eq!(bucket_of(d), plain(d), "{d}");
            }
        }
    }
}
