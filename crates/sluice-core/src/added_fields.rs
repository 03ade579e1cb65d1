//! The names of the fields sluice itself adds to events: the one list every
//! stage, sink and configuration check refers to. A routing field the
//! records carry is a [`crate::Field`]; these are what the pipeline writes.

/// The budget stage: how many events a kept event stands for. Also a
/// routing field ([`crate::Field::SampleRate`]): a record sampled by an
/// upstream sluice carries it, and the sinks read it from the event's slot.
pub const SAMPLE_RATE: &str = crate::Field::SampleRate.name();
/// The budget stage: a line released from lookback by a later error.
pub const LOOKBACK: &str = "lookback";
/// The multiline stage: how many lines a stitched trace has.
pub const MULTILINE_LINES: &str = "multiline_lines";
/// The multiline stage: the message of the exception that escaped.
pub const ERROR_MESSAGE: &str = "error_message";
/// A text event's line (and a stitched trace's text).
pub const MESSAGE: &str = "message";
/// The redact stage: which rules changed the event.
pub const REDACTED: &str = "redacted";
/// A line the framer cut at `max_line_bytes`.
pub const TRUNCATED: &str = "sluice_truncated";
/// The file source: the container runtime's timestamp of the line.
pub const RUNTIME_TS: &str = "runtime_ts";

/// What the file source writes into every event from its log file's
/// Kubernetes path. Sinks may take columns and labels from them, and the
/// redaction stage lets them pass, so an aggregator keeps what the node
/// tier added.
pub const ORIGIN: [&str; 6] = ["namespace", "pod", "pod_uid", "container", "stream", "file"];
