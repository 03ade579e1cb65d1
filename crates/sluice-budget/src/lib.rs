//! The budget stage: each service has a log budget (bytes per window);
//! errors and slow requests are always kept; normal events are sampled with a
//! keep-probability that adapts so the window's spend lands on the budget;
//! the decision for a normal event is a hash of its `trace_id` (else
//! `request_id`) with a configured seed, so every line of a request is kept
//! or dropped together, on every node; kept sampled events carry
//! `sample_rate` (= 1/p) so counts re-weighted downstream stay unbiased (an
//! event sampled upstream already has one: it becomes the product of both);
//! and exact counts are taken *before* sampling. It must not change a kept
//! event's bytes beyond setting `sample_rate`.

mod classify;
mod event_clock;
mod fleet;
mod fleet_report;
mod key_cache;
mod ledger;
mod lookback;
mod persist;
mod resolve;
mod route;
mod stats;
mod trace_memory;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_config::{parse_utc_offset, time_zone, Budget, BudgetClock, BudgetConfig, Glob};
use sluice_core::{Batch, Field, FieldValue, Registry, Stage};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub use classify::{Class, Facts};
pub use ledger::{BudgetLedger, LedgerState};
pub use route::route_template;
use stats::Stats;

/// The stage could not be built or its state not restored.
#[derive(Debug, thiserror::Error)]
#[error("budget: {0}")]
pub struct BudgetError(String);

/// See the crate docs.
pub struct BudgetStage {
    default: Budget,
    /// `[[budget.overrides]]` in order, then `budget.services`.
    rules: Vec<BudgetRule>,
    /// Whether ledgers are kept apart by env / by namespace (some override
    /// looks at it).
    split_env: bool,
    split_namespace: bool,
    clock: BudgetClock,
    windows: ledger::WindowRule,
    slow: classify::SlowThresholds,
    floor: f64,
    ceiling: f64,
    seed: u64,
    /// Ledger key → dense id (indexes `ledgers` and the stats). The key is
    /// the service, followed by `\x1f` and the env and/or namespace when
    /// ledgers are split by them.
    ids: FastMap<Box<[u8]>, usize>,
    /// In front of `ids`.
    id_cache: key_cache::KeyCache,
    /// (service, route template) → (ledger id, histogram index, slow
    /// threshold), in front of `id_cache`, the statistics' route lookup and
    /// the per-route thresholds, when ledgers are not split by env or
    /// namespace.
    pairs: key_cache::PairCache,
    /// A ledger key being built.
    key: Vec<u8>,
    ledgers: Vec<BudgetLedger>,
    names: Vec<Vec<u8>>,
    /// `budget.max_services`: ledgers of services past it go to the
    /// overflow ledger.
    max_services: usize,
    /// The overflow ledger's key: `_overflow`, with empty env/namespace
    /// parts where ledgers are split by them.
    overflow_key: Vec<u8>,
    /// The overflow ledger, once it exists (its first use warns).
    overflow_ledger: Option<usize>,
    stats: Stats,
    state_path: Option<PathBuf>,
    last_save: Instant,
    /// Event clock: the newest `ts` seen (events without one use it); until
    /// the first, the newest clock restored.
    event_now: f64,
    /// No `ts` was read yet: the first sets the clock, older or not.
    event_clock_unread: bool,
    ts_cache: event_clock::TsCache,
    unkeyed: u64,
    /// Counts batches: a ledger whose `batch` differs was not yet touched
    /// by the current one.
    batch_seq: u64,
    /// Recent decisions by trace hash: a request's later lines get the
    /// decision (and sample rate) of its first, even if p moved between.
    recent: trace_memory::TraceMemory,
    /// Per-batch scratch, kept to reuse its memory.
    scratch: Scratch,
    lookback: lookback::Lookback,
    released: sluice_core::Counter,
    /// Records whose `ts` was too far past the wall clock to move the
    /// event clock ([`EVENT_CLOCK_LEAD`]).
    future_ts: sluice_core::Counter,
    /// Fleet scope: the other nodes' figures ([`BudgetStage::with_fleet`]).
    fleet: Option<fleet::Fleet>,
}

impl BudgetStage {
    /// Build the stage; with `state_dir`, spend survives restarts there.
    pub fn new(
        cfg: &BudgetConfig,
        registry: &Registry,
        state_dir: Option<PathBuf>,
    ) -> Result<BudgetStage, BudgetError> {
        let default = cfg.default;
        let mut rules = Vec::new();
        for o in &cfg.overrides {
            rules.push(BudgetRule {
                service: o.service.clone(),
                env: o.env.clone(),
                namespace: o.namespace.clone(),
                budget: o.budget,
            });
        }
        for (service, budget) in classify::by_specificity(&cfg.services) {
            rules.push(BudgetRule {
                service,
                env: None,
                namespace: None,
                budget,
            });
        }
        let state_path = state_dir.map(|d| d.join("budget.json"));
        let split_env = rules.iter().any(|r| r.env.is_some());
        let split_namespace = rules.iter().any(|r| r.namespace.is_some());
        let mut overflow_key = OVERFLOW_SERVICE.as_bytes().to_vec();
        for _ in 0..usize::from(split_env) + usize::from(split_namespace) {
            overflow_key.push(KEY_SEPARATOR as u8);
        }
        let mut stage = BudgetStage {
            default,
            split_env,
            split_namespace,
            rules,
            clock: cfg.clock,
            windows: ledger::WindowRule {
                window: cfg.window,
                zone: match (&cfg.timezone, &cfg.utc_offset) {
                    (Some(tz), _) => ledger::Zone::Tz(time_zone(tz).map_err(BudgetError)?),
                    (None, o) => {
                        ledger::Zone::Offset(parse_utc_offset(o.as_deref().unwrap_or("+00:00")).map_err(BudgetError)?)
                    }
                },
            },
            slow: classify::SlowThresholds {
                default_ms: cfg.slow_ms,
                routes: cfg
                    .slow_routes
                    .iter()
                    .map(|(r, ms)| (r.as_bytes().into(), *ms))
                    .collect(),
                services: classify::by_specificity(&cfg.slow_services),
                by_ledger: Vec::new(),
            },
            floor: cfg.floor,
            ceiling: cfg.ceiling,
            seed: cfg.seed,
            ids: FastMap::default(),
            id_cache: key_cache::KeyCache::default(),
            pairs: key_cache::PairCache::default(),
            key: Vec::new(),
            ledgers: Vec::new(),
            names: Vec::new(),
            max_services: cfg.max_services.max(1),
            overflow_key,
            overflow_ledger: None,
            stats: Stats::new(registry),
            state_path,
            last_save: Instant::now(),
            event_now: 0.0,
            event_clock_unread: true,
            ts_cache: event_clock::TsCache::default(),
            unkeyed: 0,
            batch_seq: 0,
            recent: trace_memory::TraceMemory::default(),
            scratch: Scratch::default(),
            lookback: lookback::Lookback::new(cfg.lookback.as_secs_f64(), cfg.lookback_bytes.0 as usize),
            released: registry.counter(
                "budget_lookback_released_total",
                "Sampled-away lines kept because a later line of their trace was an error or slow.",
                &[],
            ),
            future_ts: registry.counter(
                "budget_future_ts_total",
                "Records stamped more than a day past the wall clock: judged at the event clock's time without moving it (clock = \"event\").",
                &[],
            ),
            fleet: None,
        };
        // Alerting reads it: a service held at the floor for an hour has a
        // budget far below what it logs.
        registry
            .gauge(
                "budget_keep_probability_floor_ppm",
                "The configured floor of the keep-probability, parts per million.",
                &[],
            )
            .set((cfg.floor * 1e6) as i64);
        stage.restore()?;
        Ok(stage)
    }

    /// Fleet scope: share figures with the other nodes through `exchange`
    /// (which a Kafka link serves) as `cfg` says.
    pub fn with_fleet(
        mut self,
        cfg: &sluice_config::FleetConfig,
        exchange: sluice_core::fleet::FleetExchange,
        registry: &Registry,
    ) -> BudgetStage {
        self.fleet = Some(fleet::Fleet::new(cfg, exchange, registry));
        self
    }

    /// A fleet round when one is due (publish, read, derive p again).
    fn fleet_round(&mut self) {
        if self.fleet.is_none() {
            return;
        }
        let now = self.now();
        if let Some(f) = &mut self.fleet {
            if f.round_if_due(&mut self.ledgers, &self.names, &self.ids, &self.windows, now) {
                for (id, l) in self.ledgers.iter().enumerate() {
                    self.stats.probability(id, l.state.p, l.state.spent);
                    self.stats.local_probability(id, l.local_p(now));
                }
            }
        }
    }

    /// The budget clock. A wall clock is read once per batch: a batch is
    /// milliseconds of input, and a clock read per event would cost more
    /// than the decision.
    fn now(&self) -> f64 {
        match self.clock {
            BudgetClock::Event => self.event_now,
            BudgetClock::Wall => wall_clock(),
        }
    }

    /// Publish the exact counts taken so far to the registry now (they are
    /// otherwise published every 100 ms and at the end).
    pub fn publish_stats(&mut self) {
        self.stats.publish();
    }

    /// Set the event clock to the batch's first `ts` (not past `latest`),
    /// older than the clock or not; until one is read, the clock is the one
    /// restored.
    #[cold]
    fn set_event_clock(&mut self, batch: &Batch, latest: f64) {
        let first = batch.events().iter().find_map(|e| {
            let t = batch.str_field(e, Field::Ts).and_then(|ts| self.ts_cache.parse(ts))?;
            (t <= latest).then_some(t)
        });
        if let Some(t) = first {
            self.event_now = t;
            self.event_clock_unread = false;
        }
    }

    /// Decide every event of a batch; dropped events leave the batch.
    pub fn decide(&mut self, batch: &mut Batch) {
        // A fleet round's p takes effect at the batch after its instant
        // on every node, not at the next tick.
        self.fleet_round();
        let mut sc = std::mem::take(&mut self.scratch);
        sc.kept.clear();
        sc.rates.clear();
        // (position, lines) released by lookback, inserted before the event
        // that made the trace worth keeping.
        let mut releases: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        // Hash every event's trace first (prefetching its memory slot), so
        // the decisions below find the slots in cache.
        sc.hashes.clear();
        let (seed, recent) = (self.seed, &self.recent);
        sc.hashes.extend(batch.events().iter().map(|e| {
            match batch
                .str_field(e, Field::TraceId)
                .or_else(|| batch.str_field(e, Field::RequestId))
            {
                Some(k) => {
                    let h = trace_hash(k, seed);
                    recent.prefetch(h);
                    h
                }
                None => NO_TRACE,
            }
        }));
        let mut now = self.now();
        let event_clock = self.clock == BudgetClock::Event;
        // The latest `ts` the event clock may take (read once per batch).
        let latest = if event_clock {
            wall_clock() + EVENT_CLOCK_LEAD
        } else {
            0.0
        };
        let mut future = 0;
        let lookback = self.lookback.enabled();
        if event_clock && self.event_clock_unread {
            self.set_event_clock(batch, latest);
        }
        self.batch_seq += 1;
        let data = batch.data();
        for (i, (e, &h)) in batch.events().iter().zip(&sc.hashes).enumerate() {
            let key = (h != NO_TRACE).then_some(h);
            if event_clock {
                if let Some(t) = batch.str_field(e, Field::Ts).and_then(|ts| self.ts_cache.parse(ts)) {
                    if t > self.event_now {
                        if t <= latest {
                            self.event_now = t;
                        } else {
                            future += 1;
                        }
                    }
                }
                now = self.event_now;
            }
            // What a sink stores: the line, the fields the source adds
            // to it (its file, pod and container), and the newline.
            let added = batch
                .origin(e)
                .map_or(0, |o| o.fields_json.len() + usize::from(!o.fields_json.is_empty()));
            let size = e.rewrite.map_or(e.line.len, |r| r.len) as u64 + added as u64 + 1;
            let (id, hist, slow_ms) = match self.pair_probe(data, e) {
                Some(hit) => hit,
                None => {
                    // The route matters only to latency statistics and
                    // per-route slow thresholds, both of which need a
                    // duration.
                    let route = match e.field(Field::DurationMs) {
                        FieldValue::Absent | FieldValue::Null => None,
                        _ => route::route_key(batch, e, &mut sc.route),
                    };
                    let route = route.map(|r| match e.field(Field::Route) {
                        FieldValue::Str(s) => (r, key_cache::Key::in_buf(data, s)),
                        _ => (r, key_cache::Key::of(r)),
                    });
                    self.ids_of(batch, e, route, now)
                }
            };
            let facts = classify::facts(batch, e, slow_ms);
            self.stats.record(id, &facts, hist, size);
            let ledger = &mut self.ledgers[id];
            if ledger.batch != self.batch_seq {
                ledger.batch = self.batch_seq;
                sc.touched.push(id);
                self.stats.touched(id);
            }
            ledger.roll(now, &self.windows);
            let must = facts.class.must_keep();
            ledger.offer(size as f64, must);
            let kept = if must {
                if lookback {
                    self.lookback.expire(now);
                    if let Some(h) = key {
                        let held = self.lookback.release(h);
                        if !held.is_empty() {
                            let bytes: usize = held.iter().map(|l| l.len() + 1).sum();
                            ledger.spend(bytes as f64);
                            self.released.add(held.len() as u64);
                            releases.push((i, held));
                        }
                    }
                }
                true
            } else {
                let (h, p) = match key {
                    Some(h) => (h, self.recent.first_p(h, ledger.state.p)),
                    None => {
                        self.unkeyed += 1;
                        let h =
                            xxhash_rust::xxh3::xxh3_64_with_seed(&self.unkeyed.to_le_bytes(), self.seed ^ 0x9e37_79b9);
                        (h, ledger.state.p)
                    }
                };
                let keep = sampled(h, p);
                if keep && p < 1.0 {
                    sc.rates.push((i, 1.0 / p));
                }
                if !keep && key.is_some() && lookback {
                    let mut line = Vec::with_capacity(size as usize + 18);
                    sluice_core::encode::write_event(batch, e, &mut line);
                    // `{...}\n` → `{...,"lookback":true}`: a released line is
                    // extra to the sample and must not be re-weighted.
                    line.truncate(line.len().saturating_sub(2));
                    line.extend_from_slice(b",\"");
                    line.extend_from_slice(sluice_core::added_fields::LOOKBACK.as_bytes());
                    line.extend_from_slice(b"\":true}");
                    self.lookback.hold(h, now, line);
                }
                keep
            };
            if kept {
                ledger.spend(size as f64);
                sc.kept.push(i);
            }
            self.stats.decided(id, size, kept);
        }
        if future > 0 {
            self.future_ts.add(future);
        }
        let now = self.now();
        for &id in &sc.touched {
            let l = &mut self.ledgers[id];
            l.update(now);
            self.stats.probability(id, l.state.p, l.state.spent);
        }
        self.stats.publish_if_due();
        let mut buf = ryu::Buffer::new();
        sc.touched.clear();
        for &(i, rate) in &sc.rates {
            // As `f32`: the trace memory keeps `p` in 32 bits, and its
            // shortest form prints 1/0.1 as 10.0, not 9.99999985.
            let mut rate = rate as f32;
            let upstream = batch.events()[i].fields[Field::SampleRate as usize];
            if upstream == FieldValue::Absent {
                batch.append_field(i, sluice_core::added_fields::SAMPLE_RATE, buf.format(rate).as_bytes());
            } else {
                // Sampled before (an upstream sluice, on the aggregation
                // tier): each kept event now stands for both rates' product,
                // in the one `sample_rate` the record has. A value that is
                // no rate is replaced by this stage's.
                if let Some(u) = upstream
                    .as_f64(batch.data(), batch.arena())
                    .filter(|u| u.is_finite() && *u > 0.0)
                {
                    rate = (f64::from(rate) * u) as f32;
                }
                let value = buf.format(rate).as_bytes();
                if !batch.replace_value(i, sluice_core::added_fields::SAMPLE_RATE, value) {
                    batch.append_field(i, sluice_core::added_fields::SAMPLE_RATE, value);
                }
            }
            // The sinks read the rate from the slot, as they would one an
            // upstream sluice wrote into the record.
            batch.events_mut()[i].fields[Field::SampleRate as usize] = FieldValue::Float(f64::from(rate));
        }
        if self.lookback.enabled() {
            self.lookback.expire(now);
        }
        if releases.is_empty() {
            // Most events are dropped: move the kept ones down, in order.
            let events = batch.events_mut();
            for (to, &from) in sc.kept.iter().enumerate() {
                if to != from {
                    events[to] = events[from].clone();
                }
            }
            events.truncate(sc.kept.len());
        } else {
            // Rebuild with the released lines before the line that freed them.
            let events = std::mem::take(batch.events_mut());
            let mut out = Vec::with_capacity(events.len());
            let mut releases = releases.into_iter().peekable();
            let mut kept = sc.kept.iter().copied().peekable();
            for (i, e) in events.into_iter().enumerate() {
                while let Some((_, lines)) = releases.next_if(|(at, _)| *at == i) {
                    for l in lines {
                        let span = batch.push_arena(&l);
                        let mut held =
                            sluice_core::Event::unparsed(sluice_core::Span::EMPTY, 0, sluice_core::Event::NO_ORIGIN);
                        held.kind = sluice_core::EventKind::Json;
                        held.keys = 1;
                        held.rewrite = Some(span);
                        out.push(held);
                    }
                }
                if kept.next_if_eq(&i).is_some() {
                    out.push(e);
                }
            }
            *batch.events_mut() = out;
        }
        self.scratch = sc;
    }
}

/// How far past the wall clock a record's `ts` may move the event clock.
/// A replay is of the past, and a day covers any time zone mislabelled as
/// UTC; a later stamp is a client's broken clock or a sentinel such as
/// `9999-12-31`, and would move every window there for the rest of the run
/// (the clock only moves forward). Such a record is judged at the clock's
/// current time and counted in `budget_future_ts_total`.
pub const EVENT_CLOCK_LEAD: f64 = 86_400.0;

/// Seconds since the epoch by the machine's clock.
fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Separates a ledger key's parts (a control character: never in a name).
const KEY_SEPARATOR: char = '\x1f';

/// The ledger (and `service` label) of services past `max_services`.
pub const OVERFLOW_SERVICE: &str = "_overflow";

/// One budget rule: an override, or a `services` entry (no env/namespace).
struct BudgetRule {
    service: Glob,
    env: Option<Glob>,
    namespace: Option<Glob>,
    budget: Budget,
}

/// Buffers `decide` needs per batch, kept between batches.
#[derive(Default)]
struct Scratch {
    /// The events that stay, in order.
    kept: Vec<usize>,
    /// The hash of each event's trace (`trace_id`, else `request_id`), or
    /// [`NO_TRACE`].
    hashes: Vec<u64>,
    /// (event, sample rate) of kept sampled events.
    rates: Vec<(usize, f64)>,
    /// Services seen in the batch.
    touched: Vec<usize>,
    /// A templated path.
    route: String,
}

/// The hash of a trace's id with the configured seed (never [`NO_TRACE`]).
#[inline]
fn trace_hash(id: &[u8], seed: u64) -> u64 {
    // 0 becomes 1: the same top 53 bits, so the same decision at every p.
    xxhash_rust::xxh3::xxh3_64_with_seed(id, seed).max(1)
}

/// An event without a `trace_id` or `request_id`, among trace hashes.
const NO_TRACE: u64 = 0;

/// Whether a normal event with trace hash `h` is kept at probability `p`:
/// the hash's top 53 bits as a fraction of one, against `p` (an exact
/// conversion, one instruction, where `h as f64` is several).
#[inline]
fn sampled(h: u64, p: f64) -> bool {
    ((h >> 11) as i64 as f64) < p * (1u64 << 53) as f64
}

impl Stage for BudgetStage {
    fn name(&self) -> &'static str {
        "budget"
    }

    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        self.decide(&mut batch);
        out.push(batch);
    }

    fn tick(&mut self, _now: Instant, _out: &mut Vec<Batch>) {
        self.fleet_round();
        self.stats.publish_if_due();
        if self.last_save.elapsed().as_secs() >= 5 {
            self.last_save = Instant::now();
            if let Err(e) = self.save() {
                tracing::error!(stage = "budget", error = %e, "cannot save the budget state; spend since the last save would be lost by a restart");
            }
        }
    }

    fn finish(&mut self, _out: &mut Vec<Batch>) {
        if let Some(f) = &self.fleet {
            f.close();
        }
        self.publish_stats();
        if let Err(e) = self.save() {
            tracing::error!(stage = "budget", error = %e, "cannot save the budget state; spend since the last save would be lost by a restart");
        }
    }
}

#[cfg(test)]
mod tests;
