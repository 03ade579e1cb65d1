//! What an event is to the budget: its class (error, slow, debug, normal),
//! level and status class, its route template, and the event clock's
//! timestamp parsing. Everything is read once per event into [`Facts`], so
//! the decision and the statistics never look at the same field twice.

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

/// The route template of an event: its `route`, else its `path` with ids
/// replaced by `{id}` (never an id as a label). A templated path is written
/// into `scratch`, which is reused so no event allocates.
#[inline]
pub fn route_key<'a>(batch: &'a Batch, e: &Event, scratch: &'a mut String) -> Option<&'a [u8]> {
    if let Some(r) = batch.str_field(e, Field::Route) {
        return Some(r);
    }
    path_template(batch, e, scratch)
}

#[inline(never)]
fn path_template<'a>(batch: &'a Batch, e: &Event, scratch: &'a mut String) -> Option<&'a [u8]> {
    let p = batch.str_field(e, Field::Path)?;
    scratch.clear();
    write_route_template(&String::from_utf8_lossy(p), scratch);
    Some(scratch.as_bytes())
}

/// `/v1/users/123/orders/9?x=1` → `/v1/users/{id}/orders/{id}`.
pub fn route_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    write_route_template(path, &mut out);
    out
}

fn write_route_template(path: &str, out: &mut String) {
    let path = path.split(['?', '#']).next().unwrap_or("");
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
}

/// 10^k, for a fraction of k digits.
const POWERS_OF_TEN: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Parses RFC 3339 timestamps, reusing the calendar arithmetic of the last
/// second seen (consecutive records share it).
pub struct TsCache {
    /// The cached stamp's first 19 bytes (`YYYY-MM-DDTHH:MM:SS`), as two
    /// overlapping words: compared inline, not through `memcmp`.
    prefix: (u64, u128),
    /// What a `…SS.mmmZ` stamp of the cached second reads as: its first
    /// eight bytes, and its last sixteen with the three digits masked out
    /// ([`MS_DIGITS`]). Unmatchable while nothing is cached.
    millis: (u64, u128),
    seconds: f64,
    valid: bool,
}

/// The three millisecond digits in the last sixteen bytes of a 24-byte stamp.
const MS_DIGITS: u128 = 0xff_ffff << 96;

/// `millis` while nothing is cached: the digits' bytes are masked to zero
/// before the compare, so a set bit there never matches.
const NO_MILLIS: (u64, u128) = (0, MS_DIGITS);

impl Default for TsCache {
    fn default() -> TsCache {
        TsCache {
            prefix: (0, 0),
            millis: NO_MILLIS,
            seconds: 0.0,
            valid: false,
        }
    }
}

/// Whether each of the three low bytes of `d` is an ASCII digit: high
/// nibble 3, and low nibble at most 9 (adding 6 leaves the high nibble).
#[inline]
fn three_digits(d: u32) -> bool {
    d & 0xf0_f0f0 == 0x30_3030 && (d + 0x06_0606) & 0xf0_f0f0 == 0x30_3030
}

impl TsCache {
    /// Seconds since the epoch, or `None` for a timestamp it cannot read.
    #[inline]
    pub fn parse(&mut self, ts: &[u8]) -> Option<f64> {
        // Inline, the common case: `…SS.mmmZ` in the cached second (the
        // general path below gives the same value for it).
        if let Ok(ts24) = <&[u8; 24]>::try_from(ts) {
            let head = u64::from_le_bytes(ts24[..8].try_into().expect("8 bytes"));
            let tail = u128::from_le_bytes(ts24[8..].try_into().expect("16 bytes"));
            let digits = (tail >> 96) as u32 & 0xff_ffff;
            if (head, tail & !MS_DIGITS) == self.millis && three_digits(digits) {
                let ms = (digits & 0xf) * 100 + (digits >> 8 & 0xf) * 10 + (digits >> 16 & 0xf);
                return Some(self.seconds + f64::from(ms) / 1e3);
            }
        }
        self.parse_general(ts)
    }

    #[inline(never)]
    fn parse_general(&mut self, ts: &[u8]) -> Option<f64> {
        if ts.len() < 19 {
            return None;
        }
        // Only a `Z` stamp may reuse the cached second: the same 19 bytes
        // with an offset are another instant.
        let prefix = (
            u64::from_le_bytes(ts[..8].try_into().expect("8 bytes")),
            u128::from_le_bytes(ts[3..19].try_into().expect("16 bytes")),
        );
        if self.valid && ts.len() >= 20 && ts.ends_with(b"Z") && prefix == self.prefix {
            // Between the cached second and the final `Z`: nothing, or
            // `.` and 1-9 digits. Anything else is left to the full parse,
            // which accepts or refuses it.
            let end = ts.len() - 1;
            if end == 19 {
                return Some(self.seconds);
            }
            let digits = end.saturating_sub(20);
            if ts[19] == b'.' && (1..=9).contains(&digits) {
                let (mut n, mut all) = (0u64, true);
                for &b in &ts[20..end] {
                    all &= b.is_ascii_digit();
                    n = n * 10 + u64::from(b.wrapping_sub(b'0'));
                }
                if all {
                    return Some(self.seconds + n as f64 / POWERS_OF_TEN[digits]);
                }
            }
        }
        let text = std::str::from_utf8(ts).ok()?;
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        self.seconds = t.unix_timestamp() as f64;
        // Only the second is cached; a non-UTC offset changes it, so cache
        // only plain `Z` stamps.
        self.valid = ts.ends_with(b"Z");
        self.prefix = prefix;
        self.millis = if self.valid {
            let mut stamp = [0u8; 24];
            stamp[..19].copy_from_slice(&ts[..19]);
            stamp[19] = b'.';
            stamp[23] = b'Z';
            (
                u64::from_le_bytes(stamp[..8].try_into().expect("8 bytes")),
                u128::from_le_bytes(stamp[8..].try_into().expect("16 bytes")),
            )
        } else {
            NO_MILLIS
        };
        Some(t.unix_timestamp_nanos() as f64 / 1e9)
    }
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
        let n = c.parse(b"2026-11-25T00:00:01.000000001Z").unwrap();
        assert!((n - (a - 0.25)).abs() < 1e-6);
        let k = c.parse(b"2026-11-25T09:00:01+09:00").unwrap();
        assert!((k - (a - 0.25)).abs() < 1e-6);
        // Same first 19 bytes as a cached `Z` stamp, but nine hours earlier.
        let z = c.parse(b"2026-11-25T09:00:01.000Z").unwrap();
        let seoul = c.parse(b"2026-11-25T09:00:01.000+09:00").unwrap();
        assert!((z - seoul - 9.0 * 3600.0).abs() < 1e-6, "{z} {seoul}");
        assert_eq!(c.parse(b"yesterday"), None);
        // Same first 19 bytes as the cached stamp, but not a timestamp after
        // them: refused as the full parse refuses it, never half-read.
        c.parse(b"2026-11-25T00:00:01.250Z").unwrap();
        for bad in [
            &b"2026-11-25T00:00:01.5xZ"[..],
            b"2026-11-25T00:00:01.5x0Z",
            b"2026-11-25T00:00:01:250Z",
            b"2026-11-25T00:00:01.250z0",
            b"2026-11-25T00:00:01.Z",
            b"2026-11-25T00:00:01xZ",
            b"2026-11-25T00:00:01.2:0Z",
            b"2026-11-25T00:00:01./00Z",
            b"2026-11-25T00:00:01.00\x80Z",
        ] {
            assert_eq!(c.parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A millisecond stamp in the cached second is that second plus its
        // fraction, exactly as the general path computes it.
        let second = TsCache::default().parse(b"2026-11-25T00:00:01Z").unwrap();
        for (stamp, ms) in [
            (&b"2026-11-25T00:00:01.250Z"[..], 250.0),
            (b"2026-11-25T00:00:01.999Z", 999.0),
        ] {
            assert_eq!(c.parse(stamp), Some(second + ms / 1e3));
        }
        let whole = c.parse(b"2026-11-25T00:00:01Z").unwrap();
        assert!((whole - (a - 0.25)).abs() < 1e-6, "{whole} {a}");
    }

    #[test]
    fn three_digits_is_exactly_three_ascii_digits() {
        for d in 0..1u32 << 24 {
            let plain = d.to_le_bytes()[..3].iter().all(u8::is_ascii_digit);
            assert_eq!(three_digits(d), plain, "{d:06x}");
        }
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
