//! The redaction stage: whitelist first (guide §85.1; the cited rules are
//! stated in docs/domain-rules.md). A JSON record keeps
//! only the fields its service's allow list names (others are removed or,
//! per config, replaced by a keyed HMAC); objects such as `headers` or
//! `body` never pass whole, only field by field; a value under a secret key
//! name is masked wherever it is nested; and allowed string values and text
//! lines go through the value detectors (emails, phones, cards, resident
//! numbers, JWTs, bearer tokens, AWS keys, `key=value` secrets, URL
//! credentials, private keys). Fields the pipeline needs (ids, timestamps,
//! durations, status, route) are never touched. An event no rule touches
//! passes byte for byte; only a changed event is re-serialized. Counters
//! say which rule fired on which field, never the value.

mod clean_values;
mod flat;
mod pem;
mod policy;
mod serialize;
pub mod values;

use sluice_core::metric_names;
use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use simd_json::{Buffers, Tape, INPUT_PADDING};
use sluice_config::{RedactConfig, UnlistedField};
use sluice_core::encode::write_json_string;
use sluice_core::{Batch, Counter, EventKind, Field, FieldValue, Registry, Stage};

pub use policy::{default_allow, is_secret_key, AllowList, DEFAULT_ALLOW};
use serialize::Walk;
use values::ValueDetectors;

/// The most fields `redactions_total` names per rule; the rest count under
/// [`OTHER_FIELDS`].
pub const MAX_FIELDS_PER_RULE: usize = 1000;

/// The `field` label of a rule's redactions past its first
/// [`MAX_FIELDS_PER_RULE`] fields.
pub const OTHER_FIELDS: &str = "_other";

/// The stage could not be built.
#[derive(Debug, thiserror::Error)]
#[error("redact: {0}")]
pub struct RedactError(String);

/// See the crate docs.
pub struct RedactStage {
    detectors: ValueDetectors,
    /// Allow lists: the default first, then one per `services` entry.
    lists: Vec<Arc<AllowList>>,
    /// Service glob → index into `lists`.
    services: Vec<(glob::Pattern, usize)>,
    /// Resolved allow list per service name seen.
    by_service: HashMap<Box<[u8]>, usize, foldhash::fast::FixedState>,
    hash_key: Option<Vec<u8>>,
    mark: bool,
    registry: Registry,
    /// `redactions_total` by rule, then by field (looked up without
    /// allocating; at most [`MAX_FIELDS_PER_RULE`] fields a rule).
    counters: HashMap<String, HashMap<String, Counter>>,
    changed: Counter,
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
    memo: serialize::KeyMemo,
    /// Values the detectors already found clean (the fast path's memo).
    clean_values: clean_values::CleanValues,
    /// Streams in the middle of a private key printed line by line.
    open_keys: pem::OpenKeys,
}

impl RedactStage {
    /// Build the stage from its configuration.
    pub fn new(cfg: &RedactConfig, registry: &Registry) -> Result<RedactStage, RedactError> {
        let custom: Vec<(String, String, String)> = cfg
            .custom
            .iter()
            .map(|c| (c.name.clone(), c.pattern.as_str().to_string(), c.mask.clone()))
            .collect();
        let detectors = ValueDetectors::new(&cfg.disable, &custom).map_err(RedactError)?;
        let base: Vec<String> = match &cfg.allow {
            Some(list) => list.clone(),
            None => default_allow().map(str::to_string).collect(),
        };
        let mut lists = vec![Arc::new(AllowList::new(base.iter().map(String::as_str)))];
        let mut services = Vec::new();
        for (pattern, s) in &cfg.services {
            let p = pattern.pattern().clone();
            let list = AllowList::new(
                base.iter()
                    .map(String::as_str)
                    .chain(s.allow.iter().map(String::as_str)),
            );
            services.push((p, lists.len()));
            lists.push(Arc::new(list));
        }
        Ok(RedactStage {
            detectors,
            lists,
            services,
            by_service: HashMap::default(),
            hash_key: match cfg.unlisted {
                UnlistedField::Hash => cfg.hash_key.clone().map(String::into_bytes),
                UnlistedField::Remove => None,
            },
            mark: cfg.mark,
            registry: registry.clone(),
            counters: HashMap::new(),
            changed: registry.counter(
                metric_names::REDACTED_EVENTS_TOTAL,
                "Events the redaction stage changed.",
                &[],
            ),
            scratch: Vec::new(),
            buffers: Buffers::new(4096),
            tape: Tape(Vec::new()),
            memo: serialize::KeyMemo::default(),
            clean_values: clean_values::CleanValues::default(),
            open_keys: pem::OpenKeys::default(),
        })
    }

    /// The index in `lists` of a service's allow list.
    fn allow_for(&mut self, service: Option<&[u8]>) -> usize {
        let Some(service) = service else { return 0 };
        if let Some(&i) = self.by_service.get(service) {
            return i;
        }
        let name = String::from_utf8_lossy(service);
        let list = self
            .services
            .iter()
            .find(|(p, _)| p.matches(&name))
            .map_or(0, |(_, l)| *l);
        if self.by_service.len() < 10_000 {
            self.by_service.insert(service.into(), list);
        }
        list
    }

    fn count(&mut self, rule: &str, field: &str) {
        if let Some(c) = self.counters.get(rule).and_then(|f| f.get(field)) {
            c.inc();
            return;
        }
        let fields = self.counters.entry(rule.to_string()).or_default();
        // Field paths come from the input: a stream of distinct keys must
        // not grow the registry without end.
        let field = if fields.len() < MAX_FIELDS_PER_RULE {
            field
        } else {
            OTHER_FIELDS
        };
        let registry = &self.registry;
        fields
            .entry(field.to_string())
            .or_insert_with(|| {
                registry.counter(
                    metric_names::REDACTIONS_TOTAL,
                    "Values masked or fields removed, by rule and field (never the values).",
                    &[("rule", rule), ("field", field)],
                )
            })
            .inc();
    }

    fn hmac(&self, value: &[u8]) -> Option<String> {
        let key = self.hash_key.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(value);
        let bytes = mac.finalize().into_bytes();
        Some(format!("hmac:{}", hex_prefix(&bytes, 16)))
    }

    /// Redact one event in place; returns whether it changed.
    fn redact_event(&mut self, batch: &mut Batch, index: usize) -> bool {
        let mut hits: Vec<(String, String)> = Vec::new();
        let list = {
            let event = &batch.events()[index];
            let service = batch.service(event);
            self.allow_for(service)
        };
        let event = &batch.events()[index];
        // Borrowed, not copied: only a changed event allocates.
        let rewritten = match (event.kind, event.rewrite) {
            (EventKind::Text, None) | (EventKind::Unparsed, None) => {
                let line = batch.line(event);
                let stream = batch.origin(event).map_or(0, |o| o.stream_key);
                let key_line = if self.open_keys.is_empty() {
                    None
                } else {
                    self.open_keys.mask_line(stream, line)
                };
                let (masked, rules) = match key_line {
                    Some(masked) => (masked, vec!["private_key".to_string()]),
                    None => {
                        let Some((masked, rules)) = self.detectors.redact(line) else {
                            return false;
                        };
                        if rules.iter().any(|r| r == "private_key") && pem::opens_key(line) {
                            self.open_keys.open(stream);
                        }
                        (masked, rules)
                    }
                };
                hits.extend(rules.into_iter().map(|r| (r, "message".to_string())));
                let mut out = b"{\"message\":".to_vec();
                write_json_string(&masked, &mut out);
                out.push(b'}');
                out
            }
            (_, rewrite) => {
                let json = match rewrite {
                    Some(r) => r.of(batch.arena()),
                    None => batch.line(event),
                };
                if flat::certainly_clean(
                    json,
                    &self.lists[list],
                    &self.detectors,
                    &mut self.memo,
                    &mut self.clean_values,
                ) {
                    return false;
                }
                let allow = self.lists[list].clone();
                match self.walk(json, &allow, &mut hits) {
                    Some(out) => out,
                    None => return false,
                }
            }
        };
        for (rule, field) in &hits {
            self.count(rule, field);
        }
        let span = batch.push_arena(&rewritten);
        let e = &mut batch.events_mut()[index];
        e.kind = EventKind::Json;
        e.rewrite = Some(span);
        e.keys = 1;
        // Routing fields read from the old bytes may hold what was masked
        // or removed: the sinks must not find it there.
        for f in Field::ALL {
            if hits.iter().any(|(_, field)| field == f.name()) {
                e.fields[f as usize] = FieldValue::Absent;
            }
        }
        if self.mark {
            let mut rules: Vec<&str> = hits.iter().map(|(r, _)| r.as_str()).collect();
            rules.sort_unstable();
            rules.dedup();
            let mut mark = b"[".to_vec();
            for (i, r) in rules.iter().enumerate() {
                if i > 0 {
                    mark.push(b',');
                }
                write_json_string(r.as_bytes(), &mut mark);
            }
            mark.push(b']');
            batch.append_field(index, sluice_core::added_fields::REDACTED, &mark);
        }
        self.changed.inc();
        true
    }

    /// Parse `json` and rebuild it under the policy; `None` when nothing
    /// changes.
    fn walk(&mut self, json: &[u8], allow: &AllowList, hits: &mut Vec<(String, String)>) -> Option<Vec<u8>> {
        // Taken out of `self` while the tape borrows them, so the walk can
        // still reach the HMAC key.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut buffers = std::mem::replace(&mut self.buffers, Buffers::new(0));
        scratch.clear();
        scratch.extend_from_slice(json);
        scratch.resize(json.len() + INPUT_PADDING, 0);
        let mut tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let mut memo = std::mem::take(&mut self.memo);
        let parsed = simd_json::fill_tape_padded(&mut scratch, json.len(), &mut buffers, &mut tape).is_ok();
        let result = if parsed {
            let mut walk = Walk {
                detectors: &self.detectors,
                allow,
                hmac: &|v| self.hmac(v),
                hits,
                changed: false,
            };
            if walk.needs_change(&tape.0, &mut memo) {
                let out = walk.top(&tape.0);
                walk.changed.then_some(out)
            } else {
                None
            }
        } else {
            None
        };
        self.tape = tape.reset();
        self.scratch = scratch;
        self.buffers = buffers;
        self.memo = memo;
        result
    }
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n / 2).map(|b| format!("{b:02x}")).collect()
}

impl Stage for RedactStage {
    fn name(&self) -> &'static str {
        "redact"
    }

    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) {
        for i in 0..batch.len() {
            self.redact_event(&mut batch, i);
        }
        out.push(batch);
    }
}

#[cfg(test)]
mod tests;
