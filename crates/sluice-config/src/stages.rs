//! The configuration of the optional stages: multiline, redact and budget.
//! Like every config struct, each refuses unknown keys.

use std::collections::BTreeMap;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::duration::humantime_serde_compat;
use crate::fleet::{BudgetScope, FleetConfig};
use crate::model::{check, Invalid};
use crate::typed::{Glob, RegexPattern};

/// The multiline stage: stitches plain-text stack traces into one event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Built-in detectors: `["auto"]` (all), or any of `java`, `python`,
    /// `go`, `node`, `ruby`, `dotnet`; `[]` for the custom rules alone.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Custom rule: a line matching this regex (anchored at the line start)
    /// starts an event.
    #[serde(default)]
    pub start_pattern: Option<RegexPattern>,
    /// Custom rule: a line matching this regex continues the current event.
    #[serde(default)]
    pub continue_pattern: Option<RegexPattern>,
    /// A stream's open event is emitted after this long without a new line.
    #[serde(default = "default_flush_timeout", with = "humantime_serde_compat")]
    pub flush_timeout: Duration,
    /// Most lines in one event; longer traces are split, each part marked
    /// `"sluice_truncated":true`.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// Most bytes in one event (split the same way).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Most streams with state at once; beyond it the least recently seen
    /// stream's event is emitted and its state freed.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
}

/// Which clock budget windows run on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetClock {
    /// The machine's clock.
    #[default]
    Wall,
    /// The records' `ts` (replays and tests cover a day in seconds).
    Event,
}

/// How budget windows are aligned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    /// Windows start at multiples of their length in local time of
    /// `timezone` or `utc_offset` (a day budget resets at local midnight).
    #[default]
    Calendar,
    /// Windows start when a service is first seen.
    Rolling,
}

/// The budget/sampling stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Budget of services not listed, as [`Budget::parse`] reads it:
    /// `<size>/<period>` (`"1GiB/day"`, `"50MiB/h"`), `<N> events/s`, or
    /// both (`"1GiB/day, 500 events/s"`).
    #[serde(default = "default_budget")]
    pub default: Budget,
    /// Budgets by service name or glob: an exact name first, then the
    /// glob with the most literal characters (`legacy-*` before `*`).
    #[serde(default)]
    pub services: BTreeMap<Glob, Budget>,
    /// Budgets by env or namespace as well as service (`[[budget.overrides]]`),
    /// tried in order before `services`; the first that matches wins. Once
    /// any override names `env` (or `namespace`), every service's spend is
    /// kept per env (per namespace): `checkout` in staging and in prod are
    /// then two ledgers, each with its own budget.
    #[serde(default)]
    pub overrides: Vec<BudgetOverride>,
    /// Clock of the windows.
    #[serde(default)]
    pub clock: BudgetClock,
    /// Calendar or rolling windows.
    #[serde(default)]
    pub window: BudgetWindow,
    /// Fixed UTC offset of calendar windows (`"+09:00"`); `+00:00` when
    /// neither this nor `timezone` is set.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// IANA time zone of calendar windows (`"Asia/Seoul"`,
    /// `"Europe/Berlin"`): days start at its local midnight, so a day
    /// across a daylight-saving change is 23 or 25 hours. Instead of
    /// `utc_offset`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `duration_ms` at or above which a request is slow (kept whole).
    #[serde(default = "default_slow_ms")]
    pub slow_ms: f64,
    /// Per-route slow thresholds (route template → ms), before
    /// `slow_services`.
    #[serde(default)]
    pub slow_routes: BTreeMap<String, f64>,
    /// Per-service slow thresholds (service name or glob → ms): an exact
    /// name first, then the glob with the most literal characters.
    #[serde(default)]
    pub slow_services: BTreeMap<Glob, f64>,
    /// Lowest keep-probability for normal events.
    #[serde(default = "default_floor")]
    pub floor: f64,
    /// Highest keep-probability for normal events.
    #[serde(default = "default_ceiling")]
    pub ceiling: f64,
    /// Seed of the trace hash: the same seed on every node keeps or drops
    /// a trace everywhere.
    #[serde(default)]
    pub seed: u64,
    /// Lookback: hold the normal lines sampling would drop this long (on the
    /// budget clock), by trace; if a later line of the trace is an error or
    /// slow, keep them all. `"0s"` turns it off.
    #[serde(default = "default_lookback", with = "humantime_serde_compat")]
    pub lookback: Duration,
    /// Most bytes held for lookback; the oldest lines go first.
    #[serde(default = "default_lookback_bytes")]
    pub lookback_bytes: ByteSize,
    /// Most service ledgers (with their metric series). Services first
    /// seen after that share one ledger, `_overflow`, so a service name
    /// that carries an id cannot grow memory and `/metrics` without bound;
    /// their records keep their own `service` field.
    #[serde(default = "default_max_services")]
    pub max_services: usize,
    /// Whose budgets these are: this node's (`node`, the default) or the
    /// whole fleet's (`fleet`, coordinated over Kafka by `[budget.fleet]`).
    #[serde(default)]
    pub scope: BudgetScope,
    /// The fleet's coordination, required by `scope = "fleet"`.
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
}

fn default_max_services() -> usize {
    10_000
}

/// One `[[budget.overrides]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverride {
    /// Service name or glob (default: every service).
    #[serde(default = "Glob::any")]
    pub service: Glob,
    /// `env` name or glob (the record's `env`); absent: any env.
    #[serde(default)]
    pub env: Option<Glob>,
    /// Namespace name or glob (the record's `namespace`, else the Kubernetes
    /// namespace of its log file); absent: any namespace.
    #[serde(default)]
    pub namespace: Option<Glob>,
    /// The budget, as [`Budget::parse`] reads it (`"200MiB/day"`,
    /// `"500 events/s"`, or both).
    pub budget: Budget,
}

fn default_lookback() -> Duration {
    Duration::ZERO
}
fn default_lookback_bytes() -> ByteSize {
    ByteSize::mib(8)
}

fn default_budget() -> Budget {
    Budget {
        bytes: 1 << 30,
        period_secs: 86_400,
        events_per_sec: None,
    }
}
fn default_slow_ms() -> f64 {
    1000.0
}
fn default_floor() -> f64 {
    0.01
}
fn default_ceiling() -> f64 {
    1.0
}

/// A parsed budget: bytes per period, events per second, or both.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Budget {
    /// Bytes allowed per window; `u64::MAX` for a budget of events only.
    pub bytes: u64,
    /// Window length in seconds (a day for a budget of events only).
    pub period_secs: u64,
    /// Events per second allowed on average (recent rates, not a window).
    pub events_per_sec: Option<f64>,
}

impl Budget {
    /// Parse `<size>/<period>` (`day`/`d`, `h`/`hour`, `m`/`min`, or a
    /// humantime duration such as `6h`), `<N> events/s`, or both separated
    /// by a comma (`"10GiB/day, 2000 events/s"`: whichever is tighter).
    pub fn parse(s: &str) -> Result<Budget, String> {
        let mut bytes = None;
        let mut events = None;
        for part in s.split(',').map(str::trim) {
            if let Some(n) = part.strip_suffix("events/s") {
                let n: f64 = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite() && *n > 0.0)
                    .ok_or_else(|| format!("`{part}`: expected a positive number of events/s"))?;
                if events.replace(n).is_some() {
                    return Err(format!("`{s}`: two events/s budgets"));
                }
            } else if part.contains("event") {
                return Err(format!("`{part}`: events are budgeted per second (`500 events/s`)"));
            } else if bytes.replace(Self::parse_bytes(part)?).is_some() {
                return Err(format!("`{s}`: two byte budgets"));
            }
        }
        let (bytes, period_secs) = bytes.unwrap_or((u64::MAX, 86_400));
        Ok(Budget {
            bytes,
            period_secs,
            events_per_sec: events,
        })
    }

    /// `<size>/<period>`: (bytes, period in seconds).
    fn parse_bytes(s: &str) -> Result<(u64, u64), String> {
        let (size, period) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected <size>/<period>, e.g. \"20GiB/day\", or <N> events/s"))?;
        let bytes: ByteSize = size.trim().parse().map_err(|e| format!("`{s}`: size: {e}"))?;
        let period_secs = match period.trim() {
            "day" | "d" => 86_400,
            "h" | "hour" => 3_600,
            "m" | "min" | "minute" => 60,
            other => humantime::parse_duration(other)
                .map_err(|_| format!("`{s}`: unknown period `{other}` (use day, h, min or a duration such as 6h)"))?
                .as_secs(),
        };
        if period_secs == 0 {
            return Err(format!("`{s}`: period must be at least a second"));
        }
        Ok((bytes.0, period_secs))
    }
}

impl TryFrom<String> for Budget {
    type Error = String;
    fn try_from(s: String) -> Result<Budget, String> {
        Budget::parse(&s)
    }
}

/// The IANA time zone `name` (`"Asia/Seoul"`), from the system's database
/// or the bundled one.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| format!("`{name}` is not a known IANA time zone (like \"Asia/Seoul\")"))
}

/// Parse `"+09:00"` / `"-05:30"` into seconds east of UTC.
pub fn parse_utc_offset(s: &str) -> Result<i64, String> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(format!("`{s}`: expected +HH:MM or -HH:MM")),
    };
    let (h, m) = rest.split_once(':').ok_or_else(|| format!("`{s}`: expected +HH:MM"))?;
    let h: i64 = h.parse().map_err(|_| format!("`{s}`: bad hours"))?;
    let m: i64 = m.parse().map_err(|_| format!("`{s}`: bad minutes"))?;
    if h > 14 || m > 59 {
        return Err(format!("`{s}`: out of range"));
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// What happens to a field that is not on the whitelist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlistedField {
    /// Drop it.
    #[default]
    Remove,
    /// Replace its value by `hmac:<hex>` (HMAC-SHA256 with `hash_key`), so
    /// equal values still join.
    Hash,
}

/// The redaction stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// Top-level fields that pass (dotted paths allow single fields inside
    /// objects, e.g. `headers.user-agent`); absent: the field guide's schema.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// What happens to fields not allowed.
    #[serde(default)]
    pub unlisted: UnlistedField,
    /// HMAC key for `unlisted = "hash"` (use `${VAR}`, never a literal).
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Add `"redacted":[...]` (rule names) to every event it changed.
    #[serde(default = "default_true")]
    pub mark: bool,
    /// Detectors to switch off by name (`email`, `phone`, `card`, `rrn`,
    /// `jwt`, `auth_header`, `aws_access_key`, `aws_secret_key`,
    /// `kv_secret`, `url_credentials`, `private_key`).
    #[serde(default)]
    pub disable: Vec<String>,
    /// Extra value patterns: `{ name = "...", pattern = "...", mask = "..." }`.
    #[serde(default)]
    pub custom: Vec<CustomPattern>,
    /// Per-service additions to `allow`, by service name or glob.
    #[serde(default)]
    pub services: BTreeMap<Glob, ServiceRedact>,
}

fn default_true() -> bool {
    true
}

/// A custom value detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Rule name (counters, `redacted` marks).
    pub name: String,
    /// Regex (regex-automata syntax).
    pub pattern: RegexPattern,
    /// Replacement text.
    #[serde(default = "default_mask")]
    pub mask: String,
}

fn default_mask() -> String {
    "****".into()
}

/// Per-service redaction overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRedact {
    /// Fields allowed for this service in addition to the global list.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// The language names `multiline.languages` accepts.
pub const MULTILINE_LANGUAGES: [&str; 7] = ["auto", "java", "python", "go", "node", "ruby", "dotnet"];

fn default_languages() -> Vec<String> {
    vec!["auto".into()]
}
fn default_flush_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_max_lines() -> usize {
    1000
}
fn default_max_bytes() -> ByteSize {
    ByteSize::mib(1)
}
fn default_max_streams() -> usize {
    10_000
}

impl MultilineConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if let Some(l) = self
            .languages
            .iter()
            .find(|l| !MULTILINE_LANGUAGES.contains(&l.as_str()))
        {
            return Err(Invalid::new(
                "languages",
                format!(
                    "unknown language `{l}` (expected one of {})",
                    MULTILINE_LANGUAGES.join(", ")
                ),
            ));
        }
        check(
            self.continue_pattern.is_none() || self.start_pattern.is_some(),
            "continue_pattern",
            "needs a start_pattern",
        )?;
        check(
            !self.languages.is_empty() || self.start_pattern.is_some(),
            "",
            "no detector: give languages or a start_pattern",
        )?;
        check(
            self.max_lines >= 2 && self.max_streams > 0 && self.max_bytes.0 >= 1024,
            "",
            "max_lines must be at least 2, max_streams at least 1, max_bytes at least 1KiB",
        )
    }
}

impl RedactConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(
            self.unlisted != UnlistedField::Hash || self.hash_key.as_deref().is_some_and(|k| !k.is_empty()),
            "hash_key",
            "required when unlisted = \"hash\"",
        )
    }
}

impl BudgetConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        match (&self.utc_offset, &self.timezone) {
            (Some(_), Some(_)) => return Err(Invalid::new("", "set `timezone` or `utc_offset`, not both")),
            (Some(o), None) => {
                parse_utc_offset(o).map_err(|e| Invalid::new("utc_offset", e))?;
            }
            (None, Some(tz)) => {
                time_zone(tz).map_err(|e| Invalid::new("timezone", e))?;
            }
            (None, None) => {}
        }
        check(
            0.0 < self.floor && self.floor <= self.ceiling && self.ceiling <= 1.0,
            "",
            "need 0 < floor <= ceiling <= 1",
        )?;
        check(
            self.slow_ms > 0.0 && self.slow_ms.is_finite(),
            "slow_ms",
            "must be positive",
        )?;
        let routes = self.slow_routes.iter().map(|(k, ms)| ("slow_routes", k.as_str(), ms));
        let services = self
            .slow_services
            .iter()
            .map(|(k, ms)| ("slow_services", k.as_str(), ms));
        if let Some((table, key, _)) = routes
            .chain(services)
            .find(|(_, _, ms)| !(**ms > 0.0 && ms.is_finite()))
        {
            return Err(Invalid::new(format!("{table}.{key}"), "must be positive"));
        }
        check(self.max_services > 0, "max_services", "must be at least 1")?;
        match (self.scope, &self.fleet) {
            (BudgetScope::Fleet, None) => Err(Invalid::new(
                "scope",
                "`fleet` needs a [budget.fleet] table (brokers, node_id)",
            )),
            (BudgetScope::Node, Some(_)) => Err(Invalid::new(
                "fleet",
                "set `scope = \"fleet\"` to use [budget.fleet] (the scope is `node`)",
            )),
            (_, Some(f)) => f.validate().map_err(|e| e.under("fleet")),
            (BudgetScope::Node, None) => Ok(()),
        }
    }
}
