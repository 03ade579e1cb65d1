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
    /// The admin HTTP endpoint: `/metrics`, `/health/live`, `/health/ready`.
    #[serde(default)]
    pub admin: AdminConfig,
}

/// The admin HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve it. When its address is taken, sluice says so and runs
    /// without it: the pipeline is never held hostage by its admin port.
    pub enabled: bool,
    /// Where it listens: loopback unless the operator opens it (a
    /// DaemonSet's probes and scraper reach the pod IP: `0.0.0.0:9598`).
    pub address: std::net::SocketAddr,
    /// `/health/live` fails once a stage has spent this long on one batch
    /// (a hung stage; a slow but moving drain never holds one batch long).
    #[serde(with = "humantime_serde_compat")]
    pub stall_after: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            address: std::net::SocketAddr::from(([127, 0, 0, 1], 9598)),
            stall_after: Duration::from_secs(30),
        }
    }
}

impl AdminConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            self.stall_after >= Duration::from_secs(1),
            "stall_after",
            "must be at least 1s",
        )
    }
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

/// A configuration serde accepted that sluice still cannot run: the dotted
/// key at fault, relative to the table that checked it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key (`batch_bytes`, `overrides[0].budget`); empty for the
    /// table itself.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// `key` is wrong because of `message`.
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same fault seen from the table `prefix` that holds this one.
    pub(crate) fn under(self, prefix: &str) -> Invalid {
        let key = if self.key.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.key)
        };
        Invalid { key, ..self }
    }
}

/// Checks of one table that serde cannot express (ranges, and settings
/// that only make sense together); each table checks its own keys.
pub(crate) fn check(ok: bool, key: &str, message: &str) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(key, message))
    }
}

impl Config {
    /// Checks serde cannot express, table by table.
    pub fn validate(&self) -> Result<(), Invalid> {
        check(!self.sources.is_empty(), "sources", "at least one source is required")?;
        check(!self.sinks.is_empty(), "sinks", "at least one sink is required")?;
        self.pipeline.validate().map_err(|e| e.under("pipeline"))?;
        self.admin.validate().map_err(|e| e.under("admin"))?;
        if let Some(m) = &self.multiline {
            m.validate().map_err(|e| e.under("multiline"))?;
        }
        if let Some(r) = &self.redact {
            r.validate().map_err(|e| e.under("redact"))?;
        }
        if let Some(b) = &self.budget {
            b.validate().map_err(|e| e.under("budget"))?;
        }
        let stdin_count = self
            .sources
            .values()
            .filter(|s| matches!(s, SourceConfig::Stdin(_)))
            .count();
        check(
            stdin_count <= 1,
            "sources",
            "standard input can feed only one stdin source",
        )?;
        for (id, source) in &self.sources {
            source.validate().map_err(|e| e.under(&format!("sources.{id}")))?;
        }
        for (id, sink) in &self.sinks {
            sink.validate().map_err(|e| e.under(&format!("sinks.{id}")))?;
        }
        Ok(())
    }
}

impl PipelineConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            (4 * 1024..=64 * 1024 * 1024).contains(&self.batch_bytes.0),
            "batch_bytes",
            "must be between 4KiB and 64MiB",
        )?;
        check(
            (1..=1024).contains(&self.channel_capacity),
            "channel_capacity",
            "must be between 1 and 1024",
        )?;
        check(
            (1024..=1024 * 1024 * 1024).contains(&self.max_line_bytes.0),
            "max_line_bytes",
            "must be between 1KiB and 1GiB",
        )
    }
}

impl SourceConfig {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            SourceConfig::Stdin(_) => Ok(()),
            SourceConfig::Generator(g) => g.validate(),
            SourceConfig::File(f) => f.validate(),
            SourceConfig::Kafka(k) => k.validate(),
        }
    }
}

impl SinkConfig {
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(d) = self.delivery() {
            d.validate().map_err(|e| e.under("delivery"))?;
        }
        match self {
            SinkConfig::Stdout(_) | SinkConfig::Kafka(_) => Ok(()),
            SinkConfig::File(f) => f.validate(),
            SinkConfig::Clickhouse(c) => c.validate(),
            SinkConfig::Loki(l) => l.validate(),
            SinkConfig::Elasticsearch(e) => check_gzip_level(e.gzip_level),
        }
    }
}

impl FileSinkConfig {
    fn validate(&self) -> Result<(), Invalid> {
        check(
            (1..=19).contains(&self.zstd_level),
            "zstd_level",
            "must be between 1 and 19",
        )?;
        check(
            self.rotate_bytes.0 >= 64 * 1024,
            "rotate_bytes",
            "must be at least 64KiB",
        )?;
        check(
            !self.prefix.is_empty() && !self.prefix.contains('/'),
            "prefix",
            "must be a non-empty file name without `/`",
        )?;
        check(
            self.max_files != Some(0),
            "max_files",
            "must be at least 1 (or absent to keep all)",
        )
    }
}
