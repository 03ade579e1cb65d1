//! What an event is to the budget: error, slow, debug or normal; its route
//! template; and the event clock's timestamp parsing.

use std::collections::HashMap;

use sluice_core::{Batch, Event, Field, FieldValue};

/// The budget class of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// ERROR/FATAL/CRITICAL level, status >= 500, an `error_type`, or a
    /// stitched stack trace: always kept.
    Error,
    /// `duration_ms` at or above the threshold: always kept.
    Slow,
    /// DEBUG/TRACE level: sampled.
    Debug,
    /// Everything else: sampled.
    Normal,
}

impl Class {
    /// The `class` label.
    pub fn label(self) -> &'static str {
        match self {
            Class::Error => "error",
            Class::Slow => "slow",
            Class::Debug => "debug",
            Class::Normal => "normal",
        }
    }
}

/// Classify one event.
pub fn classify(batch: &Batch, e: &Event, slow_ms: f64, slow_routes: &HashMap<String, f64>) -> Class {
    let level = batch.str_field(e, Field::Level);
    let is_level = |names: &[&str]| level.is_some_and(|l| names.iter().any(|n| l.eq_ignore_ascii_case(n.as_bytes())));
    if is_level(&["ERROR", "FATAL", "CRITICAL", "PANIC", "SEVERE"])
        || batch.num_field(e, Field::Status).is_some_and(|s| s >= 500.0)
        || !matches!(e.field(Field::ErrorType), FieldValue::Absent | FieldValue::Null)
    {
        return Class::Error;
    }
    if let Some(d) = batch.num_field(e, Field::DurationMs) {
        let threshold = if slow_routes.is_empty() {
            slow_ms
        } else {
            route_of(batch, e)
                .and_then(|r| slow_routes.get(&r).copied())
                .unwrap_or(slow_ms)
        };
        if d >= threshold {
            return Class::Slow;
        }
    }
    if is_level(&["DEBUG", "TRACE"]) {
        return Class::Debug;
    }
    Class::Normal
}

/// The route template of an event: its `route`, else its `path` with ids
/// replaced by `{id}` (never an id as a label).
pub fn route_of(batch: &Batch, e: &Event) -> Option<String> {
    if let Some(r) = batch.str_field(e, Field::Route) {
        return Some(String::from_utf8_lossy(r).into_owned());
    }
    batch
        .str_field(e, Field::Path)
        .map(|p| route_template(&String::from_utf8_lossy(p)))
}

/// `/v1/users/123/orders/9?x=1` → `/v1/users/{id}/orders/{id}`.
pub fn route_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let id_like = !seg.is_empty()
            && (seg.bytes().all(|b| b.is_ascii_digit())
                || (seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
                || seg.contains('@')
                || (seg.len() >= 8
                    && seg.bytes().any(|b| b.is_ascii_digit())
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && seg.bytes().filter(|b| b.is_ascii_digit()).count() * 2 >= seg.len()));
        out.push_str(if id_like { "{id}" } else { seg });
    }
    out
}

/// Parses RFC 3339 timestamps, reusing the calendar arithmetic of the last
/// second seen (consecutive records share it).
#[derive(Default)]
pub struct TsCache {
    prefix: [u8; 19],
    seconds: f64,
    valid: bool,
}

impl TsCache {
    /// Seconds since the epoch, or `None` for a timestamp it cannot read.
    pub fn parse(&mut self, ts: &[u8]) -> Option<f64> {
        if ts.len() < 19 {
            return None;
        }
        if !self.valid || ts[..19] != self.prefix {
            let text = std::str::from_utf8(ts).ok()?;
            let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
            self.seconds = t.unix_timestamp() as f64;
            // Only the second is cached; a non-UTC offset changes it, so
            // cache only plain `Z` stamps.
            self.valid = ts.ends_with(b"Z");
            self.prefix.copy_from_slice(&ts[..19]);
            return Some(t.unix_timestamp_nanos() as f64 / 1e9);
        }
        let frac = ts.get(19..).filter(|f| f.first() == Some(&b'.')).map_or(0.0, |f| {
            let digits: Vec<u8> = f[1..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
            let n: f64 = std::str::from_utf8(&digits)
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            n / 10f64.powi(digits.len() as i32)
        });
        Some(self.seconds + frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_never_keep_ids() {
        assert_eq!(route_template("/v1/users/123/orders/9"), "/v1/users/{id}/orders/{id}");
        assert_eq!(route_template("/v1/items/4bf92f3577b34da6?x=1"), "/v1/items/{id}");
        assert_eq!(route_template("/v1/users/kim@example.com"), "/v1/users/{id}");
        assert_eq!(route_template("/healthz"), "/healthz");
        assert_eq!(route_template("/v1/orders/ord-20261125-0042"), "/v1/orders/{id}");
    }

    #[test]
    fn timestamps_with_and_without_cache() {
        let mut c = TsCache::default();
        let a = c.parse(b"2026-11-25T00:00:01.250Z").unwrap();
        let b = c.parse(b"2026-11-25T00:00:01.750Z").unwrap();
        assert!((b - a - 0.5).abs() < 1e-6);
        let k = c.parse(b"2026-11-25T09:00:01+09:00").unwrap();
        assert!((k - (a - 0.25)).abs() < 1e-6);
        assert_eq!(c.parse(b"yesterday"), None);
    }
}
