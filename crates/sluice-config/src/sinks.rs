//! Settings of the storage sinks (ClickHouse, Kafka, Loki, Elasticsearch),
//! the delivery machinery they share (batching, retries, circuit breaker,
//! buffer, dead letters) and the Kafka source.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::duration::humantime_serde_compat;
use crate::model::{check, Invalid};
use crate::typed::KafkaCompression;
use crate::Endpoint;

/// How a storage sink batches, retries and buffers. Every field has a default,
/// so `[sinks.x.delivery]` may be left out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// A request is sent once it holds this many bytes (before compression).
    pub batch_max_bytes: ByteSize,
    /// ... or this many events ...
    pub batch_max_events: usize,
    /// ... or once its oldest event has waited this long.
    #[serde(with = "humantime_serde_compat")]
    pub batch_timeout: Duration,
    /// A request that has not been answered in this time is abandoned,
    /// counted in `sink_timeouts_total` and retried.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// First wait before a retry; doubled each failure, with full jitter.
    #[serde(with = "humantime_serde_compat")]
    pub retry_initial_backoff: Duration,
    /// Longest wait between retries.
    #[serde(with = "humantime_serde_compat")]
    pub retry_max_backoff: Duration,
    /// Consecutive failed requests that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker sends nothing before one probe request
    /// (half-open) decides whether it closes again.
    #[serde(with = "humantime_serde_compat")]
    pub breaker_open_for: Duration,
    /// At the end of the input, how long to keep trying to deliver what is
    /// buffered while the target fails. Then a memory buffer reports its
    /// batches undelivered (their sources re-read them next start) and a
    /// disk buffer keeps its segments for the next run.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
    /// Where records the target rejects for themselves (a 4xx for that
    /// record) are written, one JSON line each with the reason; default
    /// `<data_dir>/dead_letter/<sink id>.ndjson`.
    pub dead_letter_path: Option<PathBuf>,
    /// The buffer between the pipeline and the target.
    pub buffer: BufferConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_max_bytes: ByteSize::mib(8),
            batch_max_events: 200_000,
            batch_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            retry_initial_backoff: Duration::from_millis(100),
            retry_max_backoff: Duration::from_secs(30),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            dead_letter_path: None,
            buffer: BufferConfig::default(),
        }
    }
}

/// Where batches wait for the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// In memory: a batch is acknowledged to its source only once the target
    /// accepted it.
    #[default]
    Memory,
    /// Segment files under `<data_dir>/buffer/<sink id>/`: a batch is
    /// acknowledged once it is written there, and the contents survive a
    /// crash or kill -9.
    Disk,
}

/// What a full buffer does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking batches: backpressure reaches the sources.
    #[default]
    Block,
    /// Drop the incoming batch, counted in `buffer_dropped_events_total`.
    DropNewest,
}

/// The sink's buffer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// `memory` or `disk`.
    #[serde(rename = "type")]
    pub kind: BufferKind,
    /// Bytes the buffer may hold (encoded records); default 32MiB in
    /// memory (beyond them it keeps only each batch's acknowledgement),
    /// 1GiB on disk.
    pub max_bytes: Option<ByteSize>,
    /// What happens when it is full.
    pub when_full: WhenFull,
    /// Disk buffer only: fsync written segments at most this often (a crash
    /// of the process loses nothing either way; this bounds what a power
    /// loss can take).
    #[serde(with = "humantime_serde_compat")]
    pub fsync_interval: Duration,
}

impl BufferConfig {
    /// The configured limit, or the default for the buffer's kind.
    pub fn limit(&self) -> ByteSize {
        self.max_bytes.unwrap_or(match self.kind {
            BufferKind::Memory => ByteSize::mib(32),
            BufferKind::Disk => ByteSize::gib(1),
        })
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            kind: BufferKind::Memory,
            max_bytes: None,
            when_full: WhenFull::Block,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// The ClickHouse sink: `INSERT ... FORMAT JSONEachRow` over HTTP, gzip.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseSinkConfig {
    /// Base URL of the HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub endpoint: Endpoint,
    /// Database of the table.
    #[serde(default = "default_ch_database")]
    pub database: String,
    /// Table (see `deploy/clickhouse/schema.sql`).
    #[serde(default = "default_ch_table")]
    pub table: String,
    /// User (`X-ClickHouse-User`); absent uses the server's default user.
    #[serde(default)]
    pub user: Option<String>,
    /// Password (`X-ClickHouse-Key`); put it in the environment: `${CH_PASSWORD}`.
    #[serde(default)]
    pub password: Option<String>,
    /// Column → source of its value. Sources: the event fields (`ts`,
    /// `level`, `service`, `env`, `trace_id`, `request_id`, `status`,
    /// `duration_ms`, `route`, `path`, `msg`, `error_type`, `event`,
    /// `stacktrace`, `namespace`, `sample_rate`: the budget's, or the one
    /// an upstream sluice wrote, 1 when unsampled), `message` (msg, else
    /// the text line), the origin's fields (`pod`, `container`, ...), and `raw` (the
    /// whole event as sluice would write it). Absent: the schema's defaults.
    #[serde(default = "default_ch_columns")]
    pub columns: BTreeMap<String, String>,
    /// How request bodies are compressed: `lz4` (ClickHouse's own block
    /// format, `decompress=1`: a fraction of gzip's CPU on both ends),
    /// `gzip` (at `gzip_level`), or `none`.
    #[serde(default)]
    pub compression: ClickhouseCompression,
    /// gzip level of request bodies with `compression = "gzip"`, 0 (none) to 9.
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// Batching, retries and buffering.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

/// A ClickHouse request body's compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickhouseCompression {
    /// ClickHouse's native LZ4 blocks.
    #[default]
    Lz4,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Plain rows.
    None,
}

fn default_ch_database() -> String {
    "default".into()
}
fn default_ch_table() -> String {
    "logs".into()
}
fn default_gzip_level() -> u32 {
    1
}

/// The default column mapping: `deploy/clickhouse/schema.sql`'s columns.
pub fn default_ch_columns() -> BTreeMap<String, String> {
    [
        ("ts", "ts"),
        ("service", "service"),
        ("env", "env"),
        ("level", "level"),
        ("namespace", "namespace"),
        ("pod", "pod"),
        ("container", "container"),
        ("trace_id", "trace_id"),
        ("request_id", "request_id"),
        ("status", "status"),
        ("duration_ms", "duration_ms"),
        ("route", "route"),
        ("message", "message"),
        ("error_type", "error_type"),
        ("sample_rate", "sample_rate"),
        ("raw", "raw"),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_string(), s.to_string()))
    .collect()
}

/// The Kafka sink: one message per event, the event's JSON as the value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `host:port,host:port` of the brokers.
    pub brokers: String,
    /// Topic the events are produced to.
    pub topic: String,
    /// Event field whose value is the message key (`service` by default:
    /// the aggregation tier relies on one service's events sharing a
    /// partition).
    #[serde(default = "default_kafka_key")]
    pub key_field: String,
    /// Compression codec (`zstd`, `lz4`, `snappy`, `gzip`, `none`).
    #[serde(default)]
    pub compression: KafkaCompression,
    /// More librdkafka producer properties (`linger.ms`, `security.protocol`, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Batching, retries and buffering.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

fn default_kafka_key() -> String {
    "service".into()
}

/// The Loki sink: the push API, streams labelled only by low-cardinality
/// fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiSinkConfig {
    /// Base URL, e.g. `http://loki:3100`; requests go to `/loki/api/v1/push`.
    pub endpoint: Endpoint,
    /// Event fields that become stream labels. Only low-cardinality fields
    /// are allowed (guide §11, §72): `service`, `env`, `level`, `namespace`,
    /// `container`, `stream`.
    #[serde(default = "default_loki_labels")]
    pub labels: Vec<String>,
    /// `X-Scope-OrgID` for multi-tenant Loki.
    #[serde(default)]
    pub tenant: Option<String>,
    /// gzip level of request bodies, 0 (none) to 9.
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// Batching, retries and buffering.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

/// Labels a Loki stream may carry.
pub const LOKI_LABELS: &[&str] = &["service", "env", "level", "namespace", "container", "stream"];

fn default_loki_labels() -> Vec<String> {
    ["service", "env", "level", "namespace"].map(String::from).to_vec()
}

/// The Elasticsearch / OpenSearch sink: the `_bulk` API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchSinkConfig {
    /// Base URL, e.g. `http://es:9200`.
    pub endpoint: Endpoint,
    /// Index name pattern: `{service}` and `{date}` (the event's UTC day,
    /// `YYYY.MM.DD`) are replaced.
    #[serde(default = "default_es_index")]
    pub index: String,
    /// Basic-auth user.
    #[serde(default)]
    pub user: Option<String>,
    /// Basic-auth password; put it in the environment.
    #[serde(default)]
    pub password: Option<String>,
    /// gzip level of request bodies, 0 (none) to 9.
    #[serde(default = "default_gzip_level")]
    pub gzip_level: u32,
    /// Batching, retries and buffering.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

fn default_es_index() -> String {
    "logs-{service}-{date}".into()
}

/// The ClickHouse column source that is the whole event as sluice writes it.
pub const CLICKHOUSE_RAW: &str = "raw";

/// What a ClickHouse column may be filled from: every routing field, the
/// text and sample rate sluice adds, the origin fields, and the raw event.
pub fn clickhouse_sources() -> impl Iterator<Item = &'static str> + Clone {
    use sluice_core::added_fields;
    sluice_core::Field::ALL
        .iter()
        .map(|f| f.name())
        .chain([added_fields::MESSAGE, CLICKHOUSE_RAW])
        // `namespace` is a routing field too (the record's wins).
        .chain(
            added_fields::ORIGIN
                .into_iter()
                .filter(|o| sluice_core::Field::from_key(o.as_bytes()).is_none()),
        )
}

impl DeliveryConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(
            self.batch_max_bytes.0 >= 1024,
            "batch_max_bytes",
            "must be at least 1KiB",
        )?;
        check(self.batch_max_events > 0, "batch_max_events", "must be at least 1")?;
        check(
            !self.request_timeout.is_zero(),
            "request_timeout",
            "must be more than 0",
        )?;
        check(
            !self.retry_initial_backoff.is_zero() && self.retry_max_backoff >= self.retry_initial_backoff,
            "retry_max_backoff",
            "retry_initial_backoff must be more than 0 and at most retry_max_backoff",
        )?;
        check(self.breaker_failures > 0, "breaker_failures", "must be at least 1")?;
        check(
            self.buffer.limit().0 >= self.batch_max_bytes.0,
            "buffer.max_bytes",
            "must be at least batch_max_bytes",
        )
    }
}

/// A request body's gzip level.
pub(crate) fn check_gzip_level(level: u32) -> Result<(), Invalid> {
    check(level <= 9, "gzip_level", "must be between 0 and 9")
}

impl ClickhouseSinkConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check_gzip_level(self.gzip_level)?;
        for (column, source) in &self.columns {
            if !clickhouse_sources().any(|k| k == source) {
                let known: Vec<_> = clickhouse_sources().collect();
                return Err(Invalid::new(
                    format!("columns.{column}"),
                    format!("unknown source `{source}` (expected one of {})", known.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

impl LokiSinkConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check_gzip_level(self.gzip_level)?;
        if let Some(label) = self.labels.iter().find(|l| !LOKI_LABELS.contains(&l.as_str())) {
            return Err(Invalid::new(
                "labels",
                format!(
                    "`{label}` is not a low-cardinality field (allowed: {})",
                    LOKI_LABELS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}
