//! What an event is to the budget: its class (error, slow, debug, normal),
//! level and status class, read once per event into [`Facts`] so the
//! decision and the statistics never look at the same field twice; and the
//! slow thresholds by route and service. Route templates are
//! [`crate::route`]'s, the event clock's timestamps [`crate::event_clock`]'s.

use std::collections::HashMap;

use sluice_config::Glob;
use sluice_core::event::FLAG_STACK_TRACE;
use sluice_core::{Batch, Event, Field, FieldValue};

/// The budget class of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// ERROR/FATAL/CRITICAL level, status >= 500, an `error_type`, a
    /// `stacktrace`, or a stack trace the multiline stage stitched: always
    /// kept.
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

    /// Errors and slow requests are kept whatever the budget says.
    pub fn must_keep(self) -> bool {
        matches!(self, Class::Error | Class::Slow)
    }
}

/// The `level` labels of the statistics, indexed by [`Facts::level`].
pub const LEVELS: [&str; 9] = [
    "trace", "debug", "info", "warn", "error", "fatal", "critical", "other", "none",
];
const LEVEL_OTHER: u8 = 7;
const LEVEL_NONE: u8 = 8;

/// The `status` labels of the statistics, indexed by [`Facts::status`].
pub const STATUSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// What the budget needs to know about one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    /// Error, slow, debug or normal.
    pub class: Class,
    /// Index into [`LEVELS`].
    pub level: u8,
    /// Index into [`STATUSES`].
    pub status: u8,
    /// `duration_ms`, when the record has one.
    pub duration_ms: Option<f64>,
}

/// A level of 4 to 8 bytes as one word: its first and last four bytes
/// (overlapping; with the length they fix every byte), each ORed with
/// 0x20. For a name made of ASCII letters that OR is an exact
/// case-insensitive compare: only `A`-`Z` and `a`-`z` become `a`-`z`.
#[inline]
const fn folded(l: &[u8]) -> u64 {
    let n = l.len();
    let lo = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as u64;
    let hi = u32::from_le_bytes([l[n - 4], l[n - 3], l[n - 2], l[n - 1]]) as u64;
    (lo | hi << 32) | 0x2020_2020_2020_2020
}

const INFO: u64 = folded(b"info");
const WARN: u64 = folded(b"warn");
const ERROR: u64 = folded(b"error");
const DEBUG: u64 = folded(b"debug");
const TRACE: u64 = folded(b"trace");
const FATAL: u64 = folded(b"fatal");
const PANIC: u64 = folded(b"panic");
const SEVERE: u64 = folded(b"severe");
const WARNING: u64 = folded(b"warning");
const CRITICAL: u64 = folded(b"critical");

/// A level's statistics index and whether it makes the event an error, in
/// any case. One word compare per candidate: this runs for every event.
#[inline]
fn level_code(l: &[u8]) -> (u8, bool) {
    if !(4..=8).contains(&l.len()) {
        return (LEVEL_OTHER, false);
    }
    let w = folded(l);
    match (l.len(), w) {
        (4, INFO) => (2, false),
        (4, WARN) => (3, false),
        (5, ERROR) => (4, true),
        (5, DEBUG) => (1, false),
        (5, TRACE) => (0, false),
        (5, FATAL) => (5, true),
        (5, PANIC) => (LEVEL_OTHER, true),
        (6, SEVERE) => (LEVEL_OTHER, true),
        (7, WARNING) => (3, false),
        (8, CRITICAL) => (6, true),
        _ => (LEVEL_OTHER, false),
    }
}

/// A numeric routing field: integers and floats inline, quoted numbers
/// through the general (out-of-line) parse.
#[inline]
fn number(batch: &Batch, e: &Event, f: Field) -> Option<f64> {
    match e.field(f) {
        FieldValue::Int(i) => Some(i as f64),
        FieldValue::Float(x) => Some(x),
        FieldValue::Str(_) | FieldValue::Decoded(_) => batch.num_field(e, f),
        _ => None,
    }
}

/// A status code's [`STATUSES`] index and whether it makes the event an
/// error. Integers (nearly every record) are read inline; a float or a
/// quoted number goes through [`status_of_number`].
#[inline]
fn status(batch: &Batch, e: &Event) -> (u8, bool) {
    match e.field(Field::Status) {
        FieldValue::Int(s) => {
            let class = if (100..600).contains(&s) {
                (s / 100 - 1) as u8
            } else {
                5
            };
            (class, s >= 500)
        }
        FieldValue::Absent => (5, false),
        _ => status_of_number(batch.num_field(e, Field::Status)),
    }
}

#[inline(never)]
fn status_of_number(s: Option<f64>) -> (u8, bool) {
    let class = match s.map(|s| s as u32 / 100) {
        Some(c @ 1..=5) => c as u8 - 1,
        _ => 5,
    };
    (class, s.is_some_and(|s| s >= 500.0))
}

/// The literal characters of glob `p`: all but `*`, `?` and `[...]`
/// classes (a `]` first in a class is part of it, as glob reads it).
fn literal(p: &str) -> usize {
    let mut n = 0;
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => {}
            '[' => {
                // `[!` negates; a `]` right after the opening is a member.
                chars.next_if_eq(&'!');
                chars.next_if_eq(&']');
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            _ => n += 1,
        }
    }
    n
}

/// Whether a `stacktrace` field holds a trace: a non-empty string, or
/// frames (an array or object). Loggers that always write the field leave
/// it empty, `null` or `false` on records without one.
#[inline]
fn has_stacktrace(v: FieldValue) -> bool {
    match v {
        FieldValue::Str(s) | FieldValue::Decoded(s) => s.len > 0,
        FieldValue::Composite => true,
        _ => false,
    }
}

/// Classify one event; `slow_ms` is the slow threshold of its route.
#[inline]
pub fn facts(batch: &Batch, e: &Event, slow_ms: f64) -> Facts {
    let (level, error_level) = batch.str_field(e, Field::Level).map_or((LEVEL_NONE, false), level_code);
    let (status, error_status) = status(batch, e);
    let duration_ms = number(batch, e, Field::DurationMs);
    let class = if error_level
        || error_status
        || !matches!(e.field(Field::ErrorType), FieldValue::Absent | FieldValue::Null)
        || has_stacktrace(e.field(Field::Stacktrace))
        || e.flags & FLAG_STACK_TRACE != 0
    {
        Class::Error
    } else if duration_ms.is_some_and(|d| d >= slow_ms) {
        Class::Slow
    } else if level <= 1 {
        Class::Debug
    } else {
        Class::Normal
    };
    Facts {
        class,
        level,
        status,
        duration_ms,
    }
}

/// The slow thresholds: `slow_routes` by route template, else
/// `slow_services` by service, else `slow_ms`.
pub struct SlowThresholds {
    /// `slow_ms`: services and routes without their own threshold.
    pub default_ms: f64,
    /// `slow_routes`: route template → threshold.
    pub routes: HashMap<Box<[u8]>, f64, foldhash::fast::FixedState>,
    /// `slow_services`, most specific first (see [`by_specificity`]).
    pub services: Vec<(Glob, f64)>,
    /// Each ledger's threshold for routes without their own: its
    /// service's, else `slow_ms` (resolved once, when the ledger is made).
    pub by_ledger: Vec<f64>,
}

impl SlowThresholds {
    /// The threshold of route template `route` of ledger `ledger`.
    pub fn of(&self, ledger: usize, route: &[u8]) -> f64 {
        self.routes.get(route).copied().unwrap_or(self.by_ledger[ledger])
    }

    /// Ledger `ledger`'s threshold for events without a route of their own
    /// threshold.
    #[inline]
    pub fn of_ledger(&self, ledger: usize) -> f64 {
        self.by_ledger[ledger]
    }

    /// The threshold of service `service`, for a new ledger.
    pub fn of_service(&self, service: &str) -> f64 {
        self.services
            .iter()
            .find(|(p, _)| p.matches(service))
            .map_or(self.default_ms, |(_, ms)| *ms)
    }
}

/// `(name or glob, value)` entries as patterns, most specific first: exact
/// names, then globs by their count of literal characters (`legacy-*`
/// before `*`; a `[...]` class counts as none, like `?`), ties in name
/// order. A TOML table has no order a user can rely on (it is read
/// sorted), so `"*"` must not shadow `"checkout"`.
pub fn by_specificity<'a, T: Copy + 'a>(entries: impl IntoIterator<Item = (&'a Glob, &'a T)>) -> Vec<(Glob, T)> {
    let mut out: Vec<(Glob, T)> = entries.into_iter().map(|(k, v)| (k.clone(), *v)).collect();
    // Stable: ties stay in name order.
    out.sort_by_key(|(k, _)| (!k.is_exact(), std::cmp::Reverse(literal(k.as_str()))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specificity_counts_literal_characters_only() {
        assert_eq!(
            ["checkout", "legacy-*", "*", "c?eck*", "[a-z]*", "[!]x]y", "ab[]-]*"].map(literal),
            [8, 7, 0, 4, 0, 1, 2]
        );
        let entries: std::collections::BTreeMap<Glob, u8> =
            [("*", 0), ("[a-z]*", 1), ("ab*", 2), ("a*", 3), ("*b", 4), ("abc", 5)]
                .into_iter()
                .map(|(k, v)| (Glob::try_from(k.to_string()).unwrap(), v))
                .collect();
        let order: Vec<u8> = by_specificity(&entries).into_iter().map(|(_, v)| v).collect();
        // Exact, then 2 literals, then 1 (`*b` and `a*` tie: name order), then none.
        assert_eq!(order, [5, 2, 4, 3, 0, 1]);
    }

    #[test]
    fn levels_by_any_case() {
        assert_eq!(level_code(b"INFO"), (2, false));
        assert_eq!(level_code(b"Warning"), (3, false));
        assert_eq!(level_code(b"error"), (4, true));
        assert_eq!(level_code(b"PANIC"), (LEVEL_OTHER, true));
        assert_eq!(level_code(b"SEVERE"), (LEVEL_OTHER, true));
        assert_eq!(level_code(b"Critical"), (6, true));
        assert_eq!(level_code(b"notice"), (LEVEL_OTHER, false));
        // Only letters fold: other bytes never alias one.
        assert_eq!(level_code(b"INF\x0f"), (LEVEL_OTHER, false));
        assert_eq!(level_code(b"inf@"), (LEVEL_OTHER, false));
        assert_eq!(level_code(b"errOR"), (4, true));
        assert_eq!(level_code(b"info "), (LEVEL_OTHER, false));
        assert_eq!(level_code(b"inf"), (LEVEL_OTHER, false));
        assert_eq!(level_code(b"criticals"), (LEVEL_OTHER, false));
        assert_eq!(level_code(b""), (LEVEL_OTHER, false));
        assert_eq!(level_code(b"warnings"), (LEVEL_OTHER, false));
        assert_eq!(LEVELS[level_code(b"trace").0 as usize], "trace");
        assert_eq!(LEVELS[level_code(b"DEBUG").0 as usize], "debug");
        assert_eq!(LEVELS[level_code(b"fatal").0 as usize], "fatal");
    }
}
