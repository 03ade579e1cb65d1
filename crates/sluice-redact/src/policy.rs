//! Which fields may pass, which key names are secrets wherever they appear,
//! and which fields the pipeline needs intact.

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
    "message",
    "multiline_lines",
    "sample_rate",
    // With `sluice_config::ORIGIN_FIELDS`: what the file source adds on a
    // node, so an aggregator redacting the node tier's output keeps it.
    "runtime_ts",
];

/// Fields the pipeline routes and joins on: value detectors never touch them
/// (a trace id is not a card number, a duration is not a phone).
const PROTECTED: &[&str] = &[
    "ts",
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
    "multiline_lines",
    "sample_rate",
    "runtime_ts",
];

/// The allow list of one service. Sorted vectors: a binary search over a
/// few dozen names beats hashing them, for every key of every record.
#[derive(Debug, Clone)]
pub struct AllowList {
    top: Vec<String>,
    /// `parent.child` entries, and `parent.*` for a whole object.
    nested: Vec<String>,
}

impl AllowList {
    /// Build from entries (`field`, `parent.child`, `parent.*`).
    pub fn new<'a>(entries: impl IntoIterator<Item = &'a str>) -> AllowList {
        let (mut top, mut nested): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for e in entries {
            if e.contains('.') {
                nested.push(e.to_string());
            } else {
                top.push(e.to_string());
            }
        }
        top.sort();
        top.dedup();
        nested.sort();
        nested.dedup();
        AllowList { top, nested }
    }

    /// Whether top-level `key` passes (scalars and arrays).
    pub fn allows(&self, key: &str) -> bool {
        self.top.binary_search_by(|t| t.as_str().cmp(key)).is_ok()
    }

    /// Whether `parent.child` passes inside an object.
    pub fn allows_child(&self, parent: &str, child: &str) -> bool {
        let whole = format!("{parent}.*");
        let one = format!("{parent}.{child}");
        self.nested.binary_search(&whole).is_ok() || self.nested.binary_search(&one).is_ok()
    }

    /// Whether anything inside object `parent` may pass.
    pub fn opens(&self, parent: &str) -> bool {
        let prefix = format!("{parent}.");
        self.nested.iter().any(|n| n.starts_with(&prefix))
    }
}

pub use sluice_config::is_secret_key;

/// Whether value detectors must leave this field alone.
pub fn is_protected(key: &str) -> bool {
    PROTECTED.contains(&key) || sluice_config::ORIGIN_FIELDS.contains(&key)
}

/// The default allow list: the schema, and what the file source adds.
pub fn default_allow() -> impl Iterator<Item = &'static str> {
    DEFAULT_ALLOW.iter().chain(&sluice_config::ORIGIN_FIELDS).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_pass_only_one_by_one() {
        let a = AllowList::new(["msg", "headers.user-agent", "body.*"]);
        assert!(a.allows("msg") && !a.allows("headers"));
        assert!(a.allows_child("headers", "user-agent") && !a.allows_child("headers", "x-forwarded-for"));
        assert!(a.allows_child("body", "anything"));
        assert!(a.opens("headers") && !a.opens("cookies"));
    }
}
