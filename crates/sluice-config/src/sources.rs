//! The source configurations: the node-level file source, stdin, the
//! built-in generator and the Kafka consumer group.

use std::collections::BTreeMap;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::duration::humantime_serde_compat;
use crate::model::{check, Invalid};
use crate::typed::{Glob, OffsetReset};

/// How the lines of a tailed file are framed by the container runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Decide per file from its first line (CRI, Docker, else raw).
    #[default]
    Auto,
    /// `<RFC3339Nano> <stdout|stderr> <P|F> <content>` (containerd, CRI-O).
    Cri,
    /// Docker json-file: `{"log":"...\n","stream":"stdout","time":"..."}`.
    Docker,
    /// Plain lines, as written.
    Raw,
}

/// Where to start in a file that has no checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From its first byte.
    #[default]
    Beginning,
    /// From its current end. Applies only to files found by the first scan
    /// at startup: a file that appears later is new data and is read whole.
    End,
}

/// The file source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to tail.
    pub include: Vec<Glob>,
    /// Glob patterns of files to skip even if included.
    #[serde(default)]
    pub exclude: Vec<Glob>,
    /// Runtime line format.
    #[serde(default)]
    pub format: FileFormat,
    /// Start of files without a checkpoint.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longest line after joining partial (`P`) pieces; longer lines are cut
    /// and marked `"sluice_truncated":true`.
    #[serde(default = "default_max_merged")]
    pub max_merged_line_bytes: ByteSize,
    /// How often the include globs are re-scanned for new files.
    #[serde(default = "default_scan_interval", with = "humantime_serde_compat")]
    pub scan_interval: Duration,
    /// How long an idle reader sleeps before looking for new bytes again.
    #[serde(default = "default_poll_interval", with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    /// How long a partial line (CRI `P`, a Docker piece without `\n`) waits
    /// for its end; then it is emitted as it is, marked truncated, so the
    /// file's checkpoint can pass it (a writer that died mid-line).
    #[serde(default = "default_partial_timeout", with = "humantime_serde_compat")]
    pub partial_timeout: Duration,
    /// How long a rotated-away or deleted file is kept open after its last
    /// byte, in case its writer still appends.
    #[serde(default = "default_rotate_wait", with = "humantime_serde_compat")]
    pub rotate_wait: Duration,
    /// Most files held open at once; more wait their turn.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// How many of the files furthest behind get a `file_lag_by_file_bytes`
    /// series of their own (labelled by path); further lagging files are
    /// only counted (`file_lag_files_unlisted`). 0: no per-file series.
    #[serde(default = "default_lag_series")]
    pub lag_series: usize,
    /// Most bytes read from one file per round, so one chatty file cannot
    /// starve the rest.
    #[serde(default = "default_read_per_round")]
    pub read_bytes_per_round: ByteSize,
    /// How often acknowledged offsets are written to the checkpoint file.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde_compat")]
    pub checkpoint_interval: Duration,
    /// End the source once every file was read to its end (backfills,
    /// benchmarks) instead of tailing forever.
    #[serde(default)]
    pub exit_at_eof: bool,
    /// `service` for records that do not carry one: glob over
    /// `namespace/pod/container` → service name; unmatched records get the
    /// container name.
    #[serde(default)]
    pub service_map: BTreeMap<Glob, String>,
}

fn default_max_merged() -> ByteSize {
    ByteSize::mib(1)
}
fn default_scan_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_partial_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_open_files() -> usize {
    1024
}
fn default_lag_series() -> usize {
    10
}
fn default_read_per_round() -> ByteSize {
    ByteSize::kib(256)
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(1)
}

/// The stdin source has no settings yet; the table keeps room for them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {}

/// How generated events get their timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorClock {
    /// From `start`, advancing `1 / simulated_rate` per event: the same seed
    /// gives the same bytes.
    #[default]
    Simulated,
    /// The wall clock at generation.
    Wall,
}

/// The built-in workload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Seed: the same seed and settings give the same lines.
    pub seed: u64,
    /// Events to generate, then the source ends; absent runs until stopped.
    pub count: Option<u64>,
    /// Events per second; absent runs as fast as possible.
    pub rate: Option<f64>,
    /// Number of services (volumes follow a Zipf-like law).
    pub services: usize,
    /// Timestamp clock.
    pub clock: GeneratorClock,
    /// RFC 3339 start of the simulated clock.
    pub start: String,
    /// Events per simulated second.
    pub simulated_rate: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            count: None,
            rate: None,
            services: 20,
            clock: GeneratorClock::Simulated,
            start: "2026-11-25T00:00:00Z".into(),
            simulated_rate: 1000.0,
        }
    }
}

/// The Kafka source: a consumer group; offsets are committed only once every
/// sink accepted the events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port,host:port` of the brokers.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group id.
    pub group_id: String,
    /// Where a group without committed offsets starts: `earliest` or `latest`.
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// Commit acknowledged offsets at most this often.
    #[serde(default = "default_commit_interval", with = "humantime_serde_compat")]
    pub commit_interval: Duration,
    /// How long a rebalance that takes partitions away waits for what was
    /// read from them to be delivered, so it is committed and their new
    /// owner does not read it again. Keep it well under the group's
    /// `max.poll.interval.ms` (300 s by default).
    #[serde(default = "default_revoke_timeout", with = "humantime_serde_compat")]
    pub revoke_timeout: Duration,
    /// More librdkafka consumer properties.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_revoke_timeout() -> Duration {
    Duration::from_secs(10)
}

impl FileSourceConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(
            !self.include.is_empty(),
            "include",
            "at least one glob pattern is required",
        )?;
        check(self.max_open_files > 0, "max_open_files", "must be at least 1")?;
        check(
            self.lag_series <= 1000,
            "lag_series",
            "at most 1000: each is a series on every scrape",
        )?;
        // Shorter would spin: an idle source re-reading and re-scanning
        // with no pause burns a core.
        let least = Duration::from_millis(10);
        for (key, interval) in [
            ("poll_interval", self.poll_interval),
            ("scan_interval", self.scan_interval),
            ("checkpoint_interval", self.checkpoint_interval),
            ("partial_timeout", self.partial_timeout),
        ] {
            check(
                interval >= least,
                key,
                &format!("must be at least {}", humantime::format_duration(least)),
            )?;
        }
        check(
            self.max_merged_line_bytes.0 >= 1024,
            "max_merged_line_bytes",
            "must be at least 1KiB",
        )?;
        check(
            self.read_bytes_per_round.0 >= 4096,
            "read_bytes_per_round",
            "must be at least 4KiB",
        )
    }
}

impl GeneratorConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(
            self.rate.is_none_or(|r| r > 0.0 && r.is_finite()),
            "rate",
            "must be a positive number of events per second",
        )?;
        check(
            (1..=10_000).contains(&self.services),
            "services",
            "must be between 1 and 10000",
        )?;
        check(
            self.simulated_rate > 0.0 && self.simulated_rate.is_finite(),
            "simulated_rate",
            "must be a positive number",
        )?;
        check(
            time::OffsetDateTime::parse(&self.start, &time::format_description::well_known::Rfc3339).is_ok(),
            "start",
            &format!("`{}` is not an RFC 3339 timestamp", self.start),
        )
    }
}

impl KafkaSourceConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(!self.topics.is_empty(), "topics", "at least one topic is required")?;
        // The group waits for a member's rejoin at most max.poll.interval.ms;
        // a handover longer than that gets the member expelled mid-way.
        let poll_interval_ms = self
            .options
            .get("max.poll.interval.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(300_000);
        check(
            self.revoke_timeout < Duration::from_millis(poll_interval_ms / 2),
            "revoke_timeout",
            "must be under half of max.poll.interval.ms (300 s unless options set it)",
        )
    }
}
