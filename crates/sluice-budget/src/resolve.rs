//! Which ledger, route statistics and slow threshold an event belongs to:
//! the pair and key caches first (read in place, no allocation), then the
//! maps, registering a service, its budget and its labels on first sight,
//! and past `max_services` the shared overflow ledger. It decides nothing:
//! the decision loop in the crate root asks it for ids.

use sluice_config::Budget;
use sluice_core::{Batch, Field, FieldValue};

use crate::{key_cache, BudgetLedger, BudgetStage, KEY_SEPARATOR, OVERFLOW_SERVICE};

impl BudgetStage {
    /// A ledger key's parts: service, then env and namespace where split.
    fn key_parts<'k>(&self, key: &'k str) -> (&'k str, Option<&'k str>, Option<&'k str>) {
        let mut parts = key.split(KEY_SEPARATOR);
        let service = parts.next().unwrap_or("");
        let env = if self.split_env { parts.next() } else { None };
        let namespace = if self.split_namespace { parts.next() } else { None };
        (service, env, namespace)
    }

    /// The budget of a ledger: the first rule that matches, else the
    /// default.
    pub(crate) fn budget_for(&self, key: &str) -> Budget {
        let (service, env, namespace) = self.key_parts(key);
        let matches =
            |p: &Option<sluice_config::Glob>, v: Option<&str>| p.as_ref().is_none_or(|p| p.matches(v.unwrap_or("")));
        self.rules
            .iter()
            .find(|r| r.service.matches(service) && matches(&r.env, env) && matches(&r.namespace, namespace))
            .map_or(self.default, |r| r.budget)
    }

    /// The ledger of an event, registering it on first sight.
    #[inline]
    fn ledger_of(&mut self, batch: &Batch, e: &sluice_core::Event, now: f64) -> usize {
        if !self.split_env && !self.split_namespace {
            // The common case, read in place: a service seen before.
            if let FieldValue::Str(s) = e.field(Field::Service) {
                let hit = key_cache::Key::in_buf(batch.data(), s).and_then(|k| self.id_cache.get(&k, 0));
                if let Some(id) = hit {
                    return id as usize;
                }
            }
            return self.service_id(batch.service(e).unwrap_or(b"unknown"), now);
        }
        let service = batch.service(e).unwrap_or(b"unknown");
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend_from_slice(service);
        if self.split_env {
            key.push(KEY_SEPARATOR as u8);
            key.extend_from_slice(batch.str_field(e, Field::Env).unwrap_or(b""));
        }
        if self.split_namespace {
            key.push(KEY_SEPARATOR as u8);
            key.extend_from_slice(batch.namespace(e).unwrap_or(b""));
        }
        let id = self.service_id(&key, now);
        self.key = key;
        id
    }

    /// [`BudgetStage::ids_of`] for the common event, read in place: a
    /// service and (with a duration) a `route` without escapes, both of 32
    /// bytes at most, seen together before. `None` sends the event the
    /// general way, which templates a `path`, registers what is new and
    /// fills the pair cache.
    #[inline]
    pub(crate) fn pair_probe(&self, data: &[u8], e: &sluice_core::Event) -> Option<(usize, Option<u32>, f64)> {
        if self.split_env || self.split_namespace {
            return None;
        }
        let FieldValue::Str(s) = e.field(Field::Service) else {
            return None;
        };
        let route = match e.field(Field::DurationMs) {
            FieldValue::Absent | FieldValue::Null => None,
            _ => match e.field(Field::Route) {
                FieldValue::Str(r) => Some(r),
                _ => return None,
            },
        };
        let (id, hist, slow_ms) = self.pairs.probe(data, s, route)?;
        Some((id as usize, hist, slow_ms))
    }

    /// An event's ledger, the histogram index of its route template
    /// (`route`: the template and its cache key) and its slow threshold,
    /// registering the ledger or the route on first sight. One probe of the
    /// pair cache in the common case.
    #[inline]
    pub(crate) fn ids_of(
        &mut self,
        batch: &Batch,
        e: &sluice_core::Event,
        route: Option<(&[u8], Option<key_cache::Key>)>,
        now: f64,
    ) -> (usize, Option<u32>, f64) {
        let service = match e.field(Field::Service) {
            FieldValue::Str(s) if !self.split_env && !self.split_namespace => key_cache::Key::in_buf(batch.data(), s),
            _ => None,
        };
        // The pair cache holds an event with no route, or one whose
        // template has a key (32 bytes at most).
        let pair_route = match route {
            None => Some(None),
            Some((_, k)) => k.map(Some),
        };
        if let (Some(service), Some(r)) = (&service, &pair_route) {
            if let Some((id, hist, slow_ms)) = self.pairs.get(service, r.as_ref()) {
                return (id as usize, hist, slow_ms);
            }
        }
        self.ids_of_slow(batch, e, route, service.zip(pair_route), now)
    }

    #[inline(never)]
    fn ids_of_slow(
        &mut self,
        batch: &Batch,
        e: &sluice_core::Event,
        route: Option<(&[u8], Option<key_cache::Key>)>,
        pair: Option<(key_cache::Key, Option<key_cache::Key>)>,
        now: f64,
    ) -> (usize, Option<u32>, f64) {
        if let Some(hit) = pair.as_ref().and_then(|(s, r)| self.pairs.get_second(s, r.as_ref())) {
            return (hit.0 as usize, hit.1, hit.2);
        }
        let id = self.ledger_of(batch, e, now);
        let hist = route.and_then(|(r, k)| self.stats.route_index(id, r, k, &self.slow));
        // The threshold was looked up once, by template, when the route's
        // histogram was registered; past the template cap, by the route as
        // read.
        let slow_ms = match hist {
            Some(h) => self.stats.slow_ms(id, h),
            None => route.map_or(self.slow.of_ledger(id), |(r, _)| self.slow.of(id, r)),
        };
        if let Some((service, r)) = pair {
            self.pairs.insert(&service, r.as_ref(), id as u32, hist, slow_ms);
        }
        (id, hist, slow_ms)
    }

    /// The dense id of a service, registering it on first sight.
    #[inline]
    pub(crate) fn service_id(&mut self, service: &[u8], now: f64) -> usize {
        let key = key_cache::Key::of(service);
        if let Some(id) = key.and_then(|k| self.id_cache.get(&k, 0)) {
            return id as usize;
        }
        self.service_id_slow(service, key, now)
    }

    fn service_id_slow(&mut self, service: &[u8], key: Option<key_cache::Key>, now: f64) -> usize {
        if let Some(&id) = self.ids.get(service) {
            if let Some(k) = key {
                self.id_cache.insert(&k, 0, id as u32);
            }
            return id;
        }
        if self.ledgers.len() >= self.max_services && service != self.overflow_key.as_slice() {
            return self.overflow_id(service, key, now);
        }
        let name = String::from_utf8_lossy(service).into_owned();
        let budget = self.budget_for(&name);
        let (svc, env, namespace) = self.key_parts(&name);
        let mut labels = vec![("service", svc.to_string())];
        labels.extend(env.map(|v| ("env", v.to_string())));
        labels.extend(namespace.map(|v| ("namespace", v.to_string())));
        let id = self.ledgers.len();
        self.ledgers
            .push(BudgetLedger::new(budget, now, &self.windows, self.floor, self.ceiling));
        self.names.push(service.to_vec());
        self.slow.by_ledger.push(self.slow.of_service(svc));
        self.ids.insert(service.into(), id);
        if let Some(k) = key {
            self.id_cache.insert(&k, 0, id as u32);
        }
        self.stats.add_service(labels, budget.bytes);
        id
    }

    /// The overflow ledger's id, for service `service` first seen past
    /// `max_services` (not remembered by name: that would be the unbounded
    /// growth the cap prevents; the id cache remembers it while it can).
    #[cold]
    fn overflow_id(&mut self, service: &[u8], key: Option<key_cache::Key>, now: f64) -> usize {
        let id = match self.overflow_ledger {
            Some(id) => id,
            None => {
                tracing::warn!(
                    stage = "budget",
                    max_services = self.max_services,
                    service = %String::from_utf8_lossy(service).replace(KEY_SEPARATOR, "/"),
                    "budget.max_services ledgers reached: this service and those first seen after it share the ledger `{OVERFLOW_SERVICE}`"
                );
                let overflow = self.overflow_key.clone();
                let id = self.service_id_slow(&overflow, key_cache::Key::of(&overflow), now);
                self.overflow_ledger = Some(id);
                id
            }
        };
        if let Some(k) = key {
            self.id_cache.insert(&k, 0, id as u32);
        }
        id
    }
}
