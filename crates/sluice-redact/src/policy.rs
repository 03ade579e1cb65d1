//! Which fields may pass, which key names are secrets wherever they appear,
//! and which fields the pipeline needs intact.

use std::collections::HashSet;

use sluice_core::added_fields;

/// The field guide's schema (Appendix D) plus what sluice's own stages add.
pub const DEFAULT_ALLOW: &[&str] = &[
    "ts",
    "level",
    "service",
    "env",
    "version",
    "trace_id",
    "span_id",
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "duration_ms",
    "client_ip",
    "user_id",
    "msg",
    "error_type",
    "error_message",
    "dependency",
    "timeout_ms",
    "stacktrace",
    "event",
    added_fields::MESSAGE,
    added_fields::MULTILINE_LINES,
    added_fields::SAMPLE_RATE,
    // With `added_fields::ORIGIN`: what the file source adds on a node, so
    // an aggregator redacting the node tier's output keeps it.
    added_fields::RUNTIME_TS,
];

/// The harmless fields of the major logging libraries' JSON output, so a
/// service that logs with one keeps its timestamps, levels, messages,
/// logger names, call sites and error descriptions under the default list.
/// Dotted entries open one field of an object (`err.stack`), and also match
/// a top-level key spelled with the dot (ECS's `"log.level"`). Never whole
/// request, response, header, MDC or property objects: those carry what
/// applications put there. Each row: the library, where its field names
/// come from, and the fields (README, "Default allow list", shows the same
/// table and a test keeps the two equal).
pub const LOGGER_FIELDS: &[(&str, &str, &[&str])] = &[
    (
        "zap (Go)",
        "go.uber.org/zap NewProductionEncoderConfig",
        &[
            "ts",
            "level",
            "logger",
            "caller",
            "msg",
            "stacktrace",
            "error",
            "errorVerbose",
        ],
    ),
    (
        "zerolog (Go)",
        "github.com/rs/zerolog field name variables",
        &["time", "level", "message", "caller", "error", "stack"],
    ),
    (
        "logrus (Go)",
        "github.com/sirupsen/logrus JSONFormatter",
        &["time", "level", "msg", "func", "file", "error"],
    ),
    (
        "slog (Go)",
        "log/slog JSONHandler, HandlerOptions.AddSource",
        &["time", "level", "msg", "source.function", "source.file", "source.line"],
    ),
    (
        "logback + logstash-logback-encoder (Java)",
        "LogstashEncoder standard fields",
        &[
            "@timestamp",
            "@version",
            "message",
            "logger_name",
            "thread_name",
            "level",
            "level_value",
            "stack_trace",
            "caller_class_name",
            "caller_method_name",
            "caller_file_name",
            "caller_line_number",
            "tags",
        ],
    ),
    (
        "logback JsonEncoder (Java)",
        "ch.qos.logback.classic.encoder.JsonEncoder",
        &[
            "sequenceNumber",
            "timestamp",
            "nanoseconds",
            "level",
            "threadName",
            "loggerName",
            "message",
            "formattedMessage",
            "throwable.className",
            "throwable.message",
            "throwable.stepArray",
        ],
    ),
    (
        "log4j2 JsonLayout / JsonTemplateLayout (Java)",
        "JsonLayout and the LogstashJsonEventLayoutV1 template",
        &[
            "instant.epochSecond",
            "instant.nanoOfSecond",
            "timeMillis",
            "thread",
            "threadId",
            "threadPriority",
            "level",
            "loggerName",
            "loggerFqcn",
            "message",
            "endOfBatch",
            "thrown.name",
            "thrown.message",
            "thrown.localizedMessage",
            "thrown.extendedStackTrace",
            "thrown.commonElementCount",
            "thrown.cause.name",
            "thrown.cause.message",
            "thrown.cause.localizedMessage",
            "thrown.cause.extendedStackTrace",
            "thrown.cause.commonElementCount",
        ],
    ),
    (
        "Elastic Common Schema (ECS loggers, any language)",
        "ecs-logging spec and ECS field reference",
        &[
            "@timestamp",
            "message",
            "ecs.version",
            "log.level",
            "log.logger",
            "log.origin.file.name",
            "log.origin.file.line",
            "log.origin.function",
            "process.pid",
            "process.thread.name",
            "process.thread.id",
            "service.name",
            "service.version",
            "service.environment",
            "event.dataset",
            "event.duration",
            "event.kind",
            "event.category",
            "event.action",
            "event.outcome",
            "error.type",
            "error.message",
            "error.stack_trace",
            "error.code",
            "error.id",
            "trace.id",
            "span.id",
            "transaction.id",
            "host.hostname",
            "host.name",
            "url.path",
            "client.ip",
            "user.id",
            "http.response.status_code",
        ],
    ),
    (
        "pino (Node)",
        "pino default keys and its standard err/req/res serializers",
        &[
            "level",
            "time",
            "pid",
            "hostname",
            "name",
            "msg",
            "err.type",
            "err.message",
            "err.stack",
            "err.code",
            "req.id",
            "req.method",
            "req.url",
            "req.remoteAddress",
            "req.remotePort",
            "res.statusCode",
            "responseTime",
        ],
    ),
    (
        "winston (Node)",
        "winston format.json with format.timestamp and format.errors",
        &["level", "message", "timestamp", "label", "stack", "service"],
    ),
    (
        "bunyan (Node)",
        "bunyan core fields (`v`, `src`) and its err serializer",
        &[
            "v",
            "level",
            "name",
            "hostname",
            "pid",
            "time",
            "msg",
            "component",
            "req_id",
            "src.file",
            "src.line",
            "src.func",
            "err.name",
            "err.message",
            "err.stack",
            "err.code",
        ],
    ),
    (
        "structlog (Python)",
        "structlog JSONRenderer with add_log_level, TimeStamper, CallsiteParameterAdder",
        &[
            "event",
            "level",
            "timestamp",
            "logger",
            "exception",
            "filename",
            "func_name",
            "lineno",
        ],
    ),
    (
        "python-json-logger (Python)",
        "pythonjsonlogger JsonFormatter over logging.LogRecord attributes",
        &[
            "message",
            "asctime",
            "created",
            "msecs",
            "levelname",
            "levelno",
            "name",
            "module",
            "funcName",
            "filename",
            "lineno",
            "process",
            "processName",
            "thread",
            "threadName",
            "taskName",
            "exc_info",
            "stack_info",
        ],
    ),
    (
        "Serilog (.NET)",
        "Serilog.Formatting.Compact (CLEF) and JsonFormatter",
        &[
            "@t",
            "@m",
            "@mt",
            "@l",
            "@x",
            "@i",
            "@r",
            "@tr",
            "@sp",
            "SourceContext",
            "RequestId",
            "RequestPath",
            "ConnectionId",
            "Timestamp",
            "Level",
            "MessageTemplate",
            "RenderedMessage",
            "Exception",
        ],
    ),
    (
        "Microsoft.Extensions.Logging (.NET)",
        "JsonConsoleFormatter",
        &["Timestamp", "EventId", "LogLevel", "Category", "Message", "Exception"],
    ),
    (
        "tracing-subscriber (Rust)",
        "tracing_subscriber::fmt::format::Json",
        &[
            "timestamp",
            "level",
            "target",
            "fields.message",
            "fields.error",
            "filename",
            "line_number",
            "threadName",
            "threadId",
            "span.name",
        ],
    ),
    (
        "OpenTelemetry and Datadog log correlation",
        "OTel logs data model, dd-trace log injection",
        &[
            "traceId",
            "spanId",
            "trace_flags",
            "severity",
            "dd.trace_id",
            "dd.span_id",
            "dd.service",
            "dd.env",
            "dd.version",
        ],
    ),
];

/// Fields the pipeline routes and joins on: value detectors never touch them
/// (a trace id is not a card number, a duration is not a phone).
const PROTECTED: &[&str] = &[
    "ts",
    "time",
    "timestamp",
    "@timestamp",
    "@t",
    "@i",
    "@tr",
    "@sp",
    "Timestamp",
    "asctime",
    "created",
    "timeMillis",
    "traceId",
    "spanId",
    "trace.id",
    "span.id",
    "dd.trace_id",
    "dd.span_id",
    "level",
    "service",
    "env",
    "version",
    "trace_id",
    "span_id",
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "timeout_ms",
    "event",
    "user_id",
    added_fields::MULTILINE_LINES,
    added_fields::SAMPLE_RATE,
    added_fields::RUNTIME_TS,
];

/// The allow list of one service, over dotted paths: `msg` is a top-level
/// field, `err.stack` the field `stack` inside the object `err` (or a
/// top-level key spelled `"err.stack"`), `body.*` the object `body` whole.
/// Hash sets (foldhash over short keys): the default list has a few
/// hundred names, and every key of a record not seen before is looked up.
#[derive(Debug, Clone)]
pub struct AllowList {
    /// Entries naming one field.
    exact: PathSet,
    /// Paths that pass whole (`path.*` entries, stored without `.*`).
    whole: PathSet,
    /// Every proper prefix of an entry (`log` and `log.origin` for
    /// `log.origin.file`): the objects the list opens.
    parents: PathSet,
}

type PathSet = HashSet<Box<str>, foldhash::fast::FixedState>;

impl AllowList {
    /// Build from entries (`field`, `parent.child`, `parent.*`).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> AllowList {
        let mut list = AllowList {
            exact: PathSet::default(),
            whole: PathSet::default(),
            parents: PathSet::default(),
        };
        for e in entries {
            let path = match e.strip_suffix(".*") {
                Some(path) => {
                    list.whole.insert(path.into());
                    path
                }
                None => {
                    list.exact.insert(e.into());
                    e
                }
            };
            for (at, _) in path.match_indices('.') {
                list.parents.insert(path[..at].into());
            }
        }
        list
    }

    /// Whether the scalar or array at `path` passes.
    pub fn allows(&self, path: &str) -> bool {
        self.exact.contains(path) || self.covers(path)
    }

    /// Whether `path` is inside (or is) an object that passes whole.
    pub fn covers(&self, path: &str) -> bool {
        !self.whole.is_empty()
            && (self.whole.contains(path) || path.match_indices('.').any(|(i, _)| self.whole.contains(&path[..i])))
    }

    /// Whether anything inside the object at `path` may pass.
    pub fn opens(&self, path: &str) -> bool {
        self.parents.contains(path) || self.covers(path)
    }
}

pub use sluice_config::is_secret_key;

/// Whether value detectors must leave this field alone.
pub fn is_protected(key: &str) -> bool {
    PROTECTED.contains(&key) || added_fields::ORIGIN.contains(&key)
}

/// The default allow list: the schema, the logging libraries' fields, and
/// what the file source adds.
pub fn default_allow() -> impl Iterator<Item = &'static str> {
    DEFAULT_ALLOW
        .iter()
        .copied()
        .chain(LOGGER_FIELDS.iter().flat_map(|(_, _, fields)| fields.iter().copied()))
        .chain(added_fields::ORIGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_pass_only_one_by_one() {
        let a = AllowList::new(["msg", "headers.user-agent", "body.*", "log.origin.file.name"]);
        assert!(a.allows("msg") && !a.allows("headers"));
        assert!(a.allows("headers.user-agent") && !a.allows("headers.x-forwarded-for"));
        assert!(a.allows("body.anything") && a.allows("body.deep.er") && a.covers("body"));
        assert!(a.opens("headers") && !a.opens("cookies") && !a.opens("header"));
        assert!(a.opens("log") && a.opens("log.origin") && a.opens("log.origin.file"));
        assert!(a.allows("log.origin.file.name") && !a.allows("log.origin.file.line"));
    }

    #[test]
    fn the_default_list_holds_no_secret_name() {
        for field in default_allow() {
            assert!(!is_secret_key(field), "{field}");
        }
    }
}
