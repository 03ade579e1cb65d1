//! The names of the metrics more than one place reads: the component that
//! registers a metric and the run summary (or progress line) that prints it
//! use the same constant, so a renamed metric fails to compile instead of
//! silently blanking a row.

/// Events the budget stage judged, by service and outcome.
pub const BUDGET_EVENTS_TOTAL: &str = "budget_events_total";
/// Bytes a source read.
pub const BYTES_IN_TOTAL: &str = "bytes_in_total";
/// The budget's request latency histogram by service and route template
/// (observed before sampling; the records' `duration_ms`, exposed in seconds).
pub const REQUEST_DURATION_SECONDS: &str = "request_duration_seconds";
/// The file source: bytes of open files past their checkpoints, summed.
pub const FILE_LAG_BYTES: &str = "file_lag_bytes";
/// The file source: the largest lag of one open file.
pub const FILE_LAG_MAX_BYTES: &str = "file_lag_max_bytes";
/// The file source: one open file's lag, for the files furthest behind.
pub const FILE_LAG_BY_FILE_BYTES: &str = "file_lag_by_file_bytes";
/// The file source: lagging files beyond those with a series of their own.
pub const FILE_LAG_FILES_UNLISTED: &str = "file_lag_files_unlisted";
/// A storage sink's request latency histogram, by sink.
pub const SINK_REQUEST_DURATION_SECONDS: &str = "sink_request_duration_seconds";
/// Bytes waiting in a sink's buffer.
pub const BUFFER_BYTES: &str = "buffer_bytes";
/// Bytes a sink's buffer may hold.
pub const BUFFER_MAX_BYTES: &str = "buffer_max_bytes";
/// A sink's circuit breaker: 0 closed, 1 open, 2 half-open.
pub const CIRCUIT_STATE: &str = "circuit_state";
/// Batches waiting in a stage's input channel (where backpressure shows).
pub const STAGE_QUEUE_BATCHES: &str = "stage_queue_batches";
/// Unix time a stage began its current batch; 0 while it waits for one.
pub const STAGE_BUSY_SINCE_SECONDS: &str = "stage_busy_since_seconds";
/// Events a component took in, by `component_kind` and `component`.
pub const COMPONENT_RECEIVED_EVENTS_TOTAL: &str = "component_received_events_total";
/// Events a component passed on.
pub const COMPONENT_SENT_EVENTS_TOTAL: &str = "component_sent_events_total";
/// Bytes a source read.
pub const COMPONENT_RECEIVED_BYTES_TOTAL: &str = "component_received_bytes_total";
/// Errors by component and kind.
pub const COMPONENT_ERRORS_TOTAL: &str = "component_errors_total";
/// Configuration reloads applied.
pub const CONFIG_RELOADS_TOTAL: &str = "config_reloads_total";
/// Configuration reloads refused (the old pipeline kept running).
pub const CONFIG_RELOAD_FAILURES_TOTAL: &str = "config_reload_failures_total";
/// Times a sink's circuit breaker opened.
pub const CIRCUIT_OPEN_TOTAL: &str = "circuit_open_total";
/// Empty lines a source skipped.
pub const EMPTY_LINES_TOTAL: &str = "empty_lines_total";
/// Events a source framed.
pub const EVENTS_IN_TOTAL: &str = "events_in_total";
/// Bytes the file sink wrote to disk.
pub const FILE_BYTES_WRITTEN_TOTAL: &str = "file_bytes_written_total";
/// Rows a storage sink stored with the receive time because their `ts` could not be read.
pub const INVALID_TS_TOTAL: &str = "invalid_ts_total";
/// Lines cut at `max_line_bytes`.
pub const LINES_TRUNCATED_TOTAL: &str = "lines_truncated_total";
/// Stack traces the multiline stage stitched.
pub const MULTILINE_EVENTS_TOTAL: &str = "multiline_events_total";
/// Stitched events emitted by the flush timeout.
pub const MULTILINE_FLUSH_TIMEOUTS_TOTAL: &str = "multiline_flush_timeouts_total";
/// Lines that went into stitched events.
pub const MULTILINE_LINES_TOTAL: &str = "multiline_lines_total";
/// Traces split at `max_lines`/`max_bytes`.
pub const MULTILINE_SPLIT_TOTAL: &str = "multiline_split_total";
/// Lines the parse stage could not read as a JSON object, by reason.
pub const PARSE_ERRORS_TOTAL: &str = "parse_errors_total";
/// Events the parse stage read as JSON objects.
pub const PARSE_JSON_EVENTS_TOTAL: &str = "parse_json_events_total";
/// Events the redaction stage changed.
pub const REDACTED_EVENTS_TOTAL: &str = "redacted_events_total";
/// Values masked or fields removed, by rule and field.
pub const REDACTIONS_TOTAL: &str = "redactions_total";
/// Requests a sink retried.
pub const SINK_RETRIES_TOTAL: &str = "sink_retries_total";
/// Requests a sink gave up on at `request_timeout`.
pub const SINK_TIMEOUTS_TOTAL: &str = "sink_timeouts_total";
