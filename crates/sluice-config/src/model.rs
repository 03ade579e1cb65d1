//! The configuration structs. Every struct refuses unknown keys, so a typo is
//! an error with a line number, never a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::duration::humantime_serde_compat;
use crate::sinks::*;
use crate::sources::*;
use crate::stages::*;

/// A whole sluice configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory for state that must survive a restart (checkpoints, spend).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Batching, backpressure and the stage chain.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Inputs, by component id.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Outputs, by component id. Every event goes to every sink.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Multi-line stack-trace stitching; absent: the stage is off.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Whitelist redaction of secrets and PII; absent: the stage is off.
    #[serde(default)]
    pub redact: Option<RedactConfig>,
    /// Per-service budgets and sampling; absent: the stage is off.
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    /// What sluice shows while it runs and when it ends.
    #[serde(default)]
    pub report: ReportConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data/state")
}

/// Batching and backpressure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A source cuts a batch once it holds this many bytes of lines.
    pub batch_bytes: ByteSize,
    /// Batches that may wait between two steps; with `batch_bytes` this
    /// bounds the memory in flight.
    pub channel_capacity: usize,
    /// Longest line kept whole; longer lines are cut, marked
    /// `"sluice_truncated":true` and counted, the rest of the line discarded.
    pub max_line_bytes: ByteSize,
    /// Run the parse stage (JSON field extraction). Off, every line is a text
    /// event.
    pub parse: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_bytes: ByteSize::kib(256),
            channel_capacity: 4,
            max_line_bytes: ByteSize::mib(16),
            parse: true,
        }
    }
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Lines from standard input, until it closes.
    Stdin(StdinConfig),
    /// The built-in realistic workload.
    Generator(GeneratorConfig),
    /// Container log files on this node (CRI or Docker json-file), tailed
    /// through rotation, with checkpoints.
    File(FileSourceConfig),
    /// A Kafka consumer group (sluice as an aggregation tier).
    Kafka(KafkaSourceConfig),
}

/// One output.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// NDJSON on standard output.
    Stdout(StdoutConfig),
    /// NDJSON files, optionally zstd-compressed, rotated by size.
    File(FileSinkConfig),
    /// ClickHouse over HTTP (`INSERT ... FORMAT JSONEachRow`, gzip).
    Clickhouse(ClickhouseSinkConfig),
    /// Kafka (rdkafka producer, idempotent, zstd).
    Kafka(KafkaSinkConfig),
    /// Grafana Loki's push API.
    Loki(LokiSinkConfig),
    /// Elasticsearch or OpenSearch `_bulk` API.
    Elasticsearch(ElasticsearchSinkConfig),
}

impl SinkConfig {
    /// The delivery settings of a storage sink; `None` for stdout and file,
    /// which write synchronously.
    pub fn delivery(&self) -> Option<&DeliveryConfig> {
        match self {
            SinkConfig::Stdout(_) | SinkConfig::File(_) => None,
            SinkConfig::Clickhouse(c) => Some(&c.delivery),
            SinkConfig::Kafka(c) => Some(&c.delivery),
            SinkConfig::Loki(c) => Some(&c.delivery),
            SinkConfig::Elasticsearch(c) => Some(&c.delivery),
        }
    }
}

/// The stdout sink has no settings yet; the table keeps room for them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

/// File compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain NDJSON (`.ndjson`).
    None,
    /// zstd frames (`.ndjson.zst`), readable with `zstd -dc` or `zstdcat`.
    #[default]
    Zstd,
}

/// The file sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Directory the files are written to (created if missing).
    pub directory: PathBuf,
    /// File name prefix: `<prefix>-<UTC start time>-<sequence>.ndjson[.zst]`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Compression of the files.
    #[serde(default)]
    pub compression: Compression,
    /// zstd level, 1 (fastest) to 19.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Start a new file once the current one has this many bytes on disk.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: ByteSize,
    /// Keep at most this many files from this sink (oldest deleted first);
    /// absent keeps all.
    #[serde(default)]
    pub max_files: Option<usize>,
}

fn default_prefix() -> String {
    "sluice".into()
}
fn default_zstd_level() -> i32 {
    3
}
fn default_rotate_bytes() -> ByteSize {
    ByteSize::mib(128)
}

/// Live progress and the final summary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// A one-line live summary on stderr while running (only on a terminal
    /// unless forced by `sluice run --progress`).
    pub progress: bool,
    /// How often the live line refreshes.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// A table of counters on stderr at exit.
    pub summary: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            progress: false,
            interval: Duration::from_millis(500),
            summary: true,
        }
    }
}

/// Deserialize each `[sources.*]` / `[sinks.*]` table straight into its
/// variant struct, so an error keeps the span of the offending key. Only run
/// after the whole document failed, to explain why.
pub(crate) fn component_error(text: &str) -> Option<toml::de::Error> {
    use serde::de::IntoDeserializer;
    use toml::de::{DeTable, DeValue};

    fn check<'i, T: Deserialize<'i>>(value: toml::Spanned<DeValue<'i>>) -> Option<toml::de::Error> {
        T::deserialize(value.into_deserializer()).err()
    }

    let doc = DeTable::parse(text).ok()?;
    for section in ["sources", "sinks"] {
        let Some(DeValue::Table(components)) = doc.get_ref().get(section).map(|v| v.get_ref()) else {
            continue;
        };
        for component in components.values() {
            let DeValue::Table(table) = component.get_ref() else {
                continue;
            };
            let Some(DeValue::String(kind)) = table.get("type").map(|v| v.get_ref()) else {
                continue;
            };
            // The variant structs do not know `type`: drop it before reading.
            let mut rest = table.clone();
            rest.remove("type");
            let value = toml::Spanned::new(component.span(), DeValue::Table(rest));
            let err = match (section, kind.as_ref()) {
                ("sources", "stdin") => check::<StdinConfig>(value),
                ("sources", "generator") => check::<GeneratorConfig>(value),
                ("sources", "file") => check::<FileSourceConfig>(value),
                ("sources", "kafka") => check::<KafkaSourceConfig>(value),
                ("sinks", "clickhouse") => check::<ClickhouseSinkConfig>(value),
                ("sinks", "kafka") => check::<KafkaSinkConfig>(value),
                ("sinks", "loki") => check::<LokiSinkConfig>(value),
                ("sinks", "elasticsearch") => check::<ElasticsearchSinkConfig>(value),
                ("sinks", "stdout") => check::<StdoutConfig>(value),
                ("sinks", "file") => check::<FileSinkConfig>(value),
                _ => None,
            };
            if err.is_some() {
                return err;
            }
        }
    }
    None
}

impl Config {
    /// Checks serde cannot express; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, msg: &str| Err((key.to_string(), msg.to_string()));
        if self.sources.is_empty() {
            return err("sources", "at least one source is required");
        }
        if self.sinks.is_empty() {
            return err("sinks", "at least one sink is required");
        }
        let p = &self.pipeline;
        if !(4 * 1024..=64 * 1024 * 1024).contains(&p.batch_bytes.0) {
            return err("pipeline.batch_bytes", "must be between 4KiB and 64MiB");
        }
        if !(1..=1024).contains(&p.channel_capacity) {
            return err("pipeline.channel_capacity", "must be between 1 and 1024");
        }
        if !(1024..=1024 * 1024 * 1024).contains(&p.max_line_bytes.0) {
            return err("pipeline.max_line_bytes", "must be between 1KiB and 1GiB");
        }
        if let Some(m) = &self.multiline {
            for l in &m.languages {
                if !MULTILINE_LANGUAGES.contains(&l.as_str()) {
                    return err(
                        "multiline.languages",
                        &format!(
                            "unknown language `{l}` (expected one of {})",
                            MULTILINE_LANGUAGES.join(", ")
                        ),
                    );
                }
            }
            for (key, p) in [
                ("multiline.start_pattern", &m.start_pattern),
                ("multiline.continue_pattern", &m.continue_pattern),
            ] {
                if let Some(p) = p {
                    if let Err(e) = regex_automata::meta::Regex::new(p) {
                        return err(key, &format!("invalid regex: {e}"));
                    }
                }
            }
            if m.continue_pattern.is_some() && m.start_pattern.is_none() {
                return err("multiline.continue_pattern", "needs a start_pattern");
            }
            if m.languages.is_empty() && m.start_pattern.is_none() {
                return err("multiline", "no detector: give languages or a start_pattern");
            }
            if m.max_lines < 2 || m.max_streams == 0 || m.max_bytes.0 < 1024 {
                return err(
                    "multiline",
                    "max_lines must be at least 2, max_streams at least 1, max_bytes at least 1KiB",
                );
            }
        }
        if let Some(r) = &self.redact {
            if r.unlisted == UnlistedField::Hash && r.hash_key.as_deref().is_none_or(str::is_empty) {
                return err("redact.hash_key", "required when unlisted = \"hash\"");
            }
            for c in &r.custom {
                if let Err(e) = regex_automata::meta::Regex::new(&c.pattern) {
                    return err("redact.custom", &format!("pattern of `{}`: {e}", c.name));
                }
            }
            for k in r.services.keys() {
                if let Err(e) = glob::Pattern::new(k) {
                    return err("redact.services", &format!("`{k}` is not a valid glob: {e}"));
                }
            }
        }
        if let Some(b) = &self.budget {
            Budget::parse(&b.default).map_err(|e| ("budget.default".to_string(), e))?;
            for (k, v) in &b.services {
                Budget::parse(v).map_err(|e| (format!("budget.services.{k}"), e))?;
                glob::Pattern::new(k)
                    .map_err(|e| (format!("budget.services.{k}"), format!("not a valid glob: {e}")))?;
            }
            for (i, o) in b.overrides.iter().enumerate() {
                let at = format!("budget.overrides[{i}]");
                Budget::parse(&o.budget).map_err(|e| (format!("{at}.budget"), e))?;
                for (key, glob) in [
                    ("service", Some(&o.service)),
                    ("env", o.env.as_ref()),
                    ("namespace", o.namespace.as_ref()),
                ] {
                    if let Some(g) = glob {
                        glob::Pattern::new(g)
                            .map_err(|e| (format!("{at}.{key}"), format!("`{g}` is not a valid glob: {e}")))?;
                    }
                }
            }
            match (&b.utc_offset, &b.timezone) {
                (Some(_), Some(_)) => {
                    return err("budget", "set `timezone` or `utc_offset`, not both");
                }
                (Some(o), None) => {
                    parse_utc_offset(o).map_err(|e| ("budget.utc_offset".to_string(), e))?;
                }
                (None, Some(tz)) => {
                    time_zone(tz).map_err(|e| ("budget.timezone".to_string(), e))?;
                }
                (None, None) => {}
            }
            if !(0.0 < b.floor && b.floor <= b.ceiling && b.ceiling <= 1.0) {
                return err("budget", "need 0 < floor <= ceiling <= 1");
            }
            if !(b.slow_ms > 0.0 && b.slow_ms.is_finite()) {
                return err("budget.slow_ms", "must be positive");
            }
            for (table, thresholds) in [("slow_routes", &b.slow_routes), ("slow_services", &b.slow_services)] {
                for (k, ms) in thresholds {
                    if !(*ms > 0.0 && ms.is_finite()) {
                        return err(&format!("budget.{table}.{k}"), "must be positive");
                    }
                }
            }
            for k in b.slow_services.keys() {
                glob::Pattern::new(k)
                    .map_err(|e| (format!("budget.slow_services.{k}"), format!("not a valid glob: {e}")))?;
            }
            if b.max_services == 0 {
                return err("budget.max_services", "must be at least 1");
            }
        }
        let stdin_count = self
            .sources
            .values()
            .filter(|s| matches!(s, SourceConfig::Stdin(_)))
            .count();
        if stdin_count > 1 {
            return err("sources", "standard input can feed only one stdin source");
        }
        for (id, source) in &self.sources {
            if let SourceConfig::File(f) = source {
                let key = |k: &str| format!("sources.{id}.{k}");
                if f.include.is_empty() {
                    return Err((key("include"), "at least one glob pattern is required".into()));
                }
                for (k, patterns) in [("include", &f.include), ("exclude", &f.exclude)] {
                    for p in patterns {
                        if let Err(e) = glob::Pattern::new(p) {
                            return Err((key(k), format!("`{p}` is not a valid glob: {e}")));
                        }
                    }
                }
                for p in f.service_map.keys() {
                    if let Err(e) = glob::Pattern::new(p) {
                        return Err((key("service_map"), format!("`{p}` is not a valid glob: {e}")));
                    }
                }
                if f.max_open_files == 0 {
                    return Err((key("max_open_files"), "must be at least 1".into()));
                }
                // Shorter would spin: an idle source re-reading and
                // re-scanning with no pause burns a core.
                for (name, interval, least) in [
                    ("poll_interval", f.poll_interval, Duration::from_millis(10)),
                    ("scan_interval", f.scan_interval, Duration::from_millis(10)),
                    ("checkpoint_interval", f.checkpoint_interval, Duration::from_millis(10)),
                    ("partial_timeout", f.partial_timeout, Duration::from_millis(10)),
                ] {
                    if interval < least {
                        return Err((
                            key(name),
                            format!("must be at least {}", humantime::format_duration(least)),
                        ));
                    }
                }
                if f.max_merged_line_bytes.0 < 1024 {
                    return Err((key("max_merged_line_bytes"), "must be at least 1KiB".into()));
                }
                if f.read_bytes_per_round.0 < 4096 {
                    return Err((key("read_bytes_per_round"), "must be at least 4KiB".into()));
                }
            }
            if let SourceConfig::Generator(g) = source {
                let key = |k: &str| format!("sources.{id}.{k}");
                if g.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                    return Err((key("rate"), "must be a positive number of events per second".into()));
                }
                if !(1..=10_000).contains(&g.services) {
                    return Err((key("services"), "must be between 1 and 10000".into()));
                }
                if !(g.simulated_rate > 0.0 && g.simulated_rate.is_finite()) {
                    return Err((key("simulated_rate"), "must be a positive number".into()));
                }
                if time::OffsetDateTime::parse(&g.start, &time::format_description::well_known::Rfc3339).is_err() {
                    return Err((key("start"), format!("`{}` is not an RFC 3339 timestamp", g.start)));
                }
            }
        }
        for (id, source) in &self.sources {
            if let SourceConfig::Kafka(k) = source {
                let key = |k: &str| format!("sources.{id}.{k}");
                if k.topics.is_empty() {
                    return Err((key("topics"), "at least one topic is required".into()));
                }
                if !["earliest", "latest"].contains(&k.auto_offset_reset.as_str()) {
                    return Err((key("auto_offset_reset"), "must be `earliest` or `latest`".into()));
                }
            }
        }
        for (id, sink) in &self.sinks {
            let key = |k: &str| format!("sinks.{id}.{k}");
            if let Some(d) = sink.delivery() {
                validate_delivery(d).map_err(|(k, m)| (key(&k), m))?;
            }
            let gzip = match sink {
                SinkConfig::Clickhouse(c) => Some(c.gzip_level),
                SinkConfig::Loki(c) => Some(c.gzip_level),
                SinkConfig::Elasticsearch(c) => Some(c.gzip_level),
                _ => None,
            };
            if let Some(gzip) = gzip {
                if gzip > 9 {
                    return Err((key("gzip_level"), "must be between 0 and 9".into()));
                }
            }
            if let SinkConfig::Clickhouse(c) = sink {
                for (column, source) in &c.columns {
                    let known = clickhouse_sources();
                    if !known.clone().any(|k| k == source) {
                        return Err((
                            key(&format!("columns.{column}")),
                            format!(
                                "unknown source `{source}` (expected one of {})",
                                known.collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            if let SinkConfig::Loki(l) = sink {
                for label in &l.labels {
                    if !LOKI_LABELS.contains(&label.as_str()) {
                        return Err((
                            key("labels"),
                            format!(
                                "`{label}` is not a low-cardinality field (allowed: {})",
                                LOKI_LABELS.join(", ")
                            ),
                        ));
                    }
                }
            }
            if let SinkConfig::Kafka(k) = sink {
                if !["zstd", "lz4", "snappy", "gzip", "none"].contains(&k.compression.as_str()) {
                    return Err((
                        key("compression"),
                        "must be one of zstd, lz4, snappy, gzip, none".into(),
                    ));
                }
            }
            if let SinkConfig::File(f) = sink {
                if !(1..=19).contains(&f.zstd_level) {
                    return Err((key("zstd_level"), "must be between 1 and 19".into()));
                }
                if f.rotate_bytes.0 < 64 * 1024 {
                    return Err((key("rotate_bytes"), "must be at least 64KiB".into()));
                }
                if f.prefix.is_empty() || f.prefix.contains('/') {
                    return Err((key("prefix"), "must be a non-empty file name without `/`".into()));
                }
                if f.max_files == Some(0) {
                    return Err((key("max_files"), "must be at least 1 (or absent to keep all)".into()));
                }
            }
        }
        Ok(())
    }
}
